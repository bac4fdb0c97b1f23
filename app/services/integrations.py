"""Integrations (senders of alerts) and their keys.

A key is made by `vigil integration key NAME`, shown once and stored as its SHA-256 hash
only (a key is 32 random bytes, so a plain hash is as good as a slow one). Finding an
integration by key compares hashes in constant time, and a wrong key, a wrong name and a
name that does not exist are refused alike, so nobody can learn which integrations exist.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlmodel import col, select

from app.core.clock import Clock
from app.core.errors import NotAllowed, NotFound
from app.services.unit_of_work import SUPERVISING, actor_of
from data import audit
from data.db import Database
from data.domain import Category
from data.intake import Integration

KEY_PREFIX = "vigil_"


@dataclass(frozen=True)
class IntegrationView:
    name: str
    format: str
    category: Category | None
    severity: int | None
    policy: str | None
    rate_limit: int
    key_hash: str | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _view(row: Integration) -> IntegrationView:
    return IntegrationView(
        name=row.name,
        format=row.format,
        category=Category(row.category) if row.category else None,
        severity=row.severity,
        policy=row.policy,
        rate_limit=row.rate_limit,
        key_hash=row.key_hash,
    )


def load_integrations(db: Database) -> list[IntegrationView]:
    with db.read() as session:
        rows = session.exec(select(Integration).order_by(col(Integration.name))).all()
        return [_view(row) for row in rows]


def matching(integration: IntegrationView | None, key: str) -> bool:
    """Whether `key` is this integration's; constant time, and False for no integration."""
    stored = integration.key_hash if integration is not None else None
    offered = hash_key(key)
    return hmac.compare_digest(offered, stored or "0" * len(offered)) and stored is not None


def new_key(db: Database, clock: Clock, actor: str, name: str) -> str:
    """Make a new key for integration `name` (the old one stops working); supervisors and
    admins only; audited without the key."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with db.write() as session:
        audit.lock_head(session)
        who = actor_of(session, actor)
        if who.role not in SUPERVISING:
            raise NotAllowed(f"'{actor}' is a {who.role}; only supervisors and admins make keys")
        row = session.exec(select(Integration).where(Integration.name == name.strip())).first()
        if row is None:
            known = session.exec(select(Integration.name)).all()
            hint = f" (declared: {', '.join(sorted(known))})" if known else ""
            raise NotFound(
                f"no integration named {name!r}{hint}; declare it in the team file "
                "as [[integration]] or [[heartbeat]]"
            )
        now = clock.now()
        row.key_hash = hash_key(key)
        row.key_set_at = now
        session.add(row)
        audit.append(
            session,
            at=now,
            actor=who.handle,
            action="integration.key",
            detail={"integration": row.name},
        )
    return key

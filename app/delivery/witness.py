"""The audit chain's head sent out of the database: `vigil audit checkpoint --send` posts the
checkpoint line to every webhook and Apprise contact of the desk's supervisors and admins,
so a copy of it sits where nobody with the database's keys can rewrite it.

A webhook gets a signed JSON body (Standard Webhooks, as a page is signed); an Apprise
contact gets the line as a message. Each contact's allowances hold as for pages: plain
http://, short secrets and private addresses only where the team file allows them. Sent
at once, one contact after another, each within `TIMEOUT`: a command waits for it, an
outbox does not (no page depends on it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
from sqlalchemy.orm import undefer
from sqlmodel import col, select

from app.core.errors import NotAllowed
from app.delivery import apprise as apprise_channel
from app.delivery.addresses import public_only
from app.delivery.webhook import USER_AGENT, encode_payload, request_headers
from app.rules.destinations import contact_problems
from data.access import reads_secrets
from data.checkpoints import Checkpoint
from data.db import Database
from data.domain import ContactKind, Role
from data.models import ContactMethod, Responder

TIMEOUT = 10.0
"""Seconds each contact has to take the checkpoint."""
EVENT = "vigil.audit.checkpoint"


@dataclass(frozen=True)
class Witness:
    """One contact and whether it took the checkpoint (`problem` says why not)."""

    handle: str
    kind: str
    shown: str
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class _Contact:
    handle: str
    kind: str
    shown: str
    url: str
    secret: str | None
    allow_insecure: bool
    allow_private: bool


def send_checkpoint(
    db: Database, checkpoint: Checkpoint, *, transport: httpx.BaseTransport | None = None
) -> list[Witness]:
    """Send `checkpoint` to each supervisor's and admin's webhook and Apprise contacts;
    one outcome per contact, in the order of their handles."""
    return [_send(contact, checkpoint, transport) for contact in _witnesses(db)]


def _witnesses(db: Database) -> list[_Contact]:
    with db.read() as session:
        if not reads_secrets(session):
            raise NotAllowed(
                "this login may not read contacts' URLs and secrets (a person's, on a desk "
                "with roles): send the checkpoint as the engine's login or the owner"
            )
        rows = session.exec(
            select(Responder, ContactMethod)
            .join(ContactMethod, col(ContactMethod.responder_id) == col(Responder.id))
            .options(undefer(ContactMethod.url), undefer(ContactMethod.secret))  # type: ignore[arg-type]
            .where(
                col(Responder.active),
                col(Responder.role).in_([Role.SUPERVISOR.value, Role.ADMIN.value]),
                col(ContactMethod.kind).in_([ContactKind.WEBHOOK, ContactKind.APPRISE]),
                col(ContactMethod.gone_at).is_(None),
            )
            .order_by(col(Responder.handle), col(ContactMethod.position))
        ).all()
        return [
            _Contact(
                responder.handle,
                contact.kind,
                contact.url_shown or contact.kind,
                contact.url or "",
                contact.secret,
                contact.allow_insecure,
                contact.allow_private,
            )
            for responder, contact in rows
        ]


def _send(
    contact: _Contact, checkpoint: Checkpoint, transport: httpx.BaseTransport | None
) -> Witness:
    def outcome(problem: str | None) -> Witness:
        return Witness(contact.handle, contact.kind, contact.shown, problem)

    line = checkpoint.line()
    if contact.kind == ContactKind.APPRISE:
        sent = apprise_channel.send(
            contact.url,
            "Vigil audit checkpoint",
            line,
            f"`{line}`",
            allow_private=contact.allow_private,
        )
        return outcome(None if sent.ok else sent.detail)
    problems = contact_problems(
        contact.url,
        contact.secret,
        allow_insecure=contact.allow_insecure,
        allow_private=contact.allow_private,
    )
    if problems:
        key, message = problems[0]
        return outcome(f"refused ({key}): {message}")
    body = encode_payload(
        {
            "type": EVENT,
            "checkpoint": line,
            "seq": checkpoint.seq,
            "hash": checkpoint.hash,
        }
    )
    webhook_id = f"checkpoint-{checkpoint.seq}-{checkpoint.hash[:16]}"
    headers = request_headers(webhook_id, body, int(time.time()), contact.secret)
    # The address is checked on the lookup the connection itself makes (no second one).
    with public_only(not contact.allow_private) as refusal:
        try:
            with httpx.Client(
                timeout=TIMEOUT,
                follow_redirects=False,
                trust_env=False,
                headers={"User-Agent": USER_AGENT},
                transport=transport,
            ) as client:
                answer = client.post(contact.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            refused = refusal()
            if refused is not None:
                return outcome(f"refused (url): {refused}; allow_private = true allows it")
            return outcome(f"not sent: {type(exc).__name__}")
    if 200 <= answer.status_code < 300:
        return outcome(None)
    return outcome(f"the receiver answered HTTP {answer.status_code}")

"""Small builders for test desks, written straight to the tables."""

from __future__ import annotations

from collections.abc import Sequence

from data.db import Database
from data.models import ContactMethod, Policy, PolicyStep, Responder, Routing


def add_responder(
    db: Database,
    handle: str,
    role: str = "specialist",
    *,
    timezone: str = "Australia/Sydney",
    contacts: Sequence[str] = ("console",),
    active: bool = True,
) -> int:
    with db.write() as session:
        responder = Responder(
            handle=handle, name=handle.title(), role=role, timezone=timezone, active=active
        )
        session.add(responder)
        session.flush()
        assert responder.id is not None
        for position, kind in enumerate(contacts):
            session.add(ContactMethod(responder_id=responder.id, position=position, kind=kind))
        return responder.id


def add_policy(
    db: Database,
    name: str,
    steps: Sequence[tuple[int, Sequence[str]]],
    *,
    repeat: int = 0,
    route: Sequence[str] = (),
    ack_timeout_seconds: int | None = None,
    require_all: Sequence[int] = (),
) -> int:
    """`steps` are (delay seconds, targets); `require_all` lists 1-based multi-ack steps."""
    with db.write() as session:
        policy = Policy(name=name, repeat=repeat, ack_timeout_seconds=ack_timeout_seconds)
        session.add(policy)
        session.flush()
        assert policy.id is not None
        for position, (delay, targets) in enumerate(steps, start=1):
            session.add(
                PolicyStep(
                    policy_id=policy.id,
                    position=position,
                    delay_seconds=delay,
                    targets=list(targets),
                    require_all=position in require_all,
                )
            )
        for category in route:
            session.add(Routing(category=category, policy_id=policy.id))
        return policy.id

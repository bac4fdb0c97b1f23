"""Small builders for test desks, written straight to the tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

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


def add_rotation(
    db: Database,
    name: str,
    members: Sequence[str],
    *,
    timezone: str = "UTC",
    shift: str = "1d",
    handoff: str = "08:00",
    start: date = date(2026, 11, 1),
    days: str | None = None,
    hours: str | None = None,
) -> int:
    """A rotation of existing responders, stored as the team file would store it."""
    from sqlmodel import select

    from data.models import Rotation, RotationMember

    with db.write() as session:
        rotation = Rotation(
            name=name,
            timezone=timezone,
            shift=shift,
            handoff=handoff,
            start=start,
            days=days,
            hours=hours,
        )
        session.add(rotation)
        session.flush()
        assert rotation.id is not None
        for position, handle in enumerate(members):
            member = session.exec(select(Responder).where(Responder.handle == handle)).one()
            assert member.id is not None
            session.add(
                RotationMember(rotation_id=rotation.id, position=position, responder_id=member.id)
            )
        return rotation.id


def add_schedule(
    db: Database,
    name: str,
    layers: Sequence[str],
    *,
    overrides: Sequence[tuple[str, datetime, datetime]] = (),
    holiday_region: str | None = None,
    holiday_cover: str | None = None,
    timezone: str | None = None,
) -> int:
    """A schedule over existing rotations; `overrides` are (handle, from, to)."""
    from sqlmodel import select

    from data.models import Override, Rotation, Schedule, ScheduleLayer

    with db.write() as session:

        def responder_id(handle: str) -> int:
            found = session.exec(select(Responder).where(Responder.handle == handle)).one()
            assert found.id is not None
            return found.id

        schedule = Schedule(
            name=name,
            timezone=timezone,
            holiday_region=holiday_region,
            holiday_cover_id=responder_id(holiday_cover) if holiday_cover else None,
        )
        session.add(schedule)
        session.flush()
        assert schedule.id is not None
        for position, layer in enumerate(layers):
            rotation = session.exec(select(Rotation).where(Rotation.name == layer)).one()
            assert rotation.id is not None
            session.add(
                ScheduleLayer(schedule_id=schedule.id, position=position, rotation_id=rotation.id)
            )
        for handle, starts_at, ends_at in overrides:
            session.add(
                Override(
                    schedule_id=schedule.id,
                    responder_id=responder_id(handle),
                    starts_at=starts_at,
                    ends_at=ends_at,
                )
            )
        return schedule.id


def add_open_cases(
    db: Database, count: int, *, policy: str, at: datetime, category: str = "edr"
) -> None:
    """`count` triggered cases on `policy`, their first step due at `at`, in one statement.

    For load tests: the rows the case service would write, without its per-case work.
    """
    from sqlalchemy import insert
    from sqlmodel import func, select

    from app.policies import snapshot_policy
    from data.models import Case

    with db.write() as session:
        chosen = session.exec(select(Policy).where(Policy.name == policy)).one()
        snapshot = snapshot_policy(session, chosen)
        first = (session.exec(select(func.max(Case.id))).one() or 0) + 1
        session.execute(
            insert(Case),
            [
                {
                    "ref": f"ESC-{number:04d}",
                    "title": f"Load case {number}",
                    "category": category,
                    "severity": 1,
                    "status": "triggered",
                    "policy_id": chosen.id,
                    "policy_snapshot": snapshot,
                    "created_at": at,
                    "updated_at": at,
                    "next_escalation_at": at,
                }
                for number in range(first, first + count)
            ],
        )

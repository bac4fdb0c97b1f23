"""Heartbeat monitors: a sender that says "still alive" on a schedule, and whose silence
opens a case.

A dead intake path is the quiet failure of on-call tools: nothing arrives, so nothing
pages. A `[[heartbeat]]` in the team file (name, interval, grace, and the severity,
category and policy of its case) is an integration of its own format: it shares the
integrations' names and keys (`vigil integration key NAME`). `POST /heartbeat/NAME` with
that key records a beat. On every cycle the engine, acting as itself, opens one case for
each monitor whose last beat (before the first: its declaration) is older than interval
plus grace, and marks the monitor down in the same transaction, so two engines never open
two cases and a crash never leaves one without the other. The next beat brings the monitor
back and resolves its open case, as its sender. Every instant comes from the database's
clock, as every due decision does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from app.core.errors import NotFound, NothingToDo
from app.core.times import iso
from app.services.cases import CaseService
from app.services.unit_of_work import ENGINE, Tx
from data.clock import DatabaseClock
from data.domain import Category, format_duration

if TYPE_CHECKING:
    from data.intake import Integration

DEDUP_PREFIX = "heartbeat:"
"""A monitor's case is found by this dedup key and its name."""


@dataclass(frozen=True)
class HeartbeatView:
    name: str
    interval: timedelta
    grace: timedelta
    severity: int
    category: str
    policy: str | None
    watched_since: datetime | None
    last_beat_at: datetime | None
    down_since: datetime | None

    @property
    def deadline(self) -> datetime | None:
        """When silence opens a case: the last beat (or the declaration) plus interval
        plus grace; None when down (its case is open) or never watched."""
        since = self.last_beat_at or self.watched_since
        if self.down_since is not None or since is None:
            return None
        return since + self.interval + self.grace

    def state(self) -> str:
        if self.down_since is not None:
            return "down"
        return "up" if self.last_beat_at is not None else "waiting"


def _view(row: Integration) -> HeartbeatView:
    assert row.interval_seconds is not None
    return HeartbeatView(
        name=row.name,
        interval=timedelta(seconds=row.interval_seconds),
        grace=timedelta(seconds=row.grace_seconds or 0),
        severity=row.severity or 2,
        category=row.category or Category.OTHER.value,
        policy=row.policy,
        watched_since=row.watched_since,
        last_beat_at=row.last_beat_at,
        down_since=row.down_since,
    )


def _monitors(session: Session) -> list[Integration]:
    # Intake's tables, loaded when monitors are read: an engine started for one command's
    # page (`vigil page`, `vigil ack`) never reads them.
    from data.intake import HEARTBEAT, Integration

    query = select(Integration).where(
        Integration.format == HEARTBEAT, col(Integration.interval_seconds).is_not(None)
    )
    return list(session.exec(query.order_by(col(Integration.name))).all())


def load_heartbeats(session: Session) -> list[HeartbeatView]:
    return [_view(row) for row in _monitors(session)]


def next_deadline(session: Session) -> datetime | None:
    """The earliest moment a silent monitor opens a case (the engine wakes for it)."""
    deadlines = [view.deadline for view in load_heartbeats(session)]
    return min((d for d in deadlines if d is not None), default=None)


@dataclass(frozen=True)
class Beat:
    name: str
    at: datetime
    next_due: datetime
    resolved: str | None  # the case its return resolved

    def as_json(self) -> dict[str, str | None]:
        return {
            "status": "ok",
            "heartbeat": self.name,
            "at": iso(self.at),
            "next_due": iso(self.next_due),
            "resolved": self.resolved,
        }


def record_beat(cases: CaseService, actor: str, name: str) -> Beat:
    """A beat of monitor `name` (its key already checked): the monitor is up again, and
    its open case, if any, is resolved by `actor` (the intake service) as its sender.

    The beat is stamped with the database's time, which the engine compares it with: a
    host whose clock runs fast must not postpone the alarm, nor a slow one raise it."""
    with cases.db.write() as session:
        row = _locked_monitor(session, name)
        if row is None:
            raise NotFound(f"no heartbeat monitor named {name!r}")
        now = DatabaseClock(cases.db, cases.clock).now_in(session.connection())
        row.last_beat_at = now
        row.down_since = None
        session.add(row)
        view = _view(row)
    # Looked for at every beat, not only after a down one: a case opened just before this
    # beat, or left open by a crash, is closed by the next beat all the same.
    resolved = None
    ref = cases.open_ref_for_key(DEDUP_PREFIX + name)
    if ref is not None:
        try:
            cases.resolve(actor, ref, sender=f"heartbeat {name}")
            resolved = ref
        except NothingToDo:
            pass
    return Beat(name, now, now + view.interval + view.grace, resolved)


def open_missed(cases: CaseService) -> list[str]:
    """Open the case of every monitor silent past its deadline; the refs opened."""
    now = cases.clock.now()
    with cases.db.read() as session:
        due = [view for view in load_heartbeats(session) if _is_due(view, now)]
    opened = []
    for view in due:
        try:
            result = cases.open_case(
                ENGINE,
                title=f"Heartbeat {view.name} is silent",
                category=view.category,
                severity=view.severity,
                details=_silence(view),
                policy=view.policy,
                dedup_key=DEDUP_PREFIX + view.name,
                source=f"heartbeat:{view.name}",
                claim=partial(_mark_down, name=view.name),
            )
        except NothingToDo:  # a beat came, or another engine opened it first
            continue
        opened.append(result.ref)
    return opened


def _is_due(view: HeartbeatView, now: datetime) -> bool:
    return view.deadline is not None and view.deadline <= now


def _locked_monitor(session: Session, name: str) -> Integration | None:
    """Monitor `name`'s row, locked for this transaction; None if there is no such monitor."""
    from data.intake import HEARTBEAT, Integration

    row = session.exec(
        select(Integration)
        .where(Integration.name == name, Integration.format == HEARTBEAT)
        .with_for_update()
    ).first()
    return row if row is not None and row.interval_seconds is not None else None


def _mark_down(tx: Tx, *, name: str) -> None:
    """Inside the opening's transaction: the monitor is still silent, and now down."""
    row = _locked_monitor(tx.session, name)
    if row is None or not _is_due(_view(row), tx.now):
        raise NothingToDo(f"heartbeat {name} is no longer overdue")
    row.down_since = tx.now
    tx.session.add(row)


def _silence(view: HeartbeatView) -> str:
    since = view.last_beat_at
    heard = (
        f"last beat {iso(since)}"
        if since
        else f"no beat since it was declared at {iso(view.watched_since)}"
    )
    return (
        f"Heartbeat monitor {view.name} expects a beat every {format_duration(view.interval)} "
        f"(grace {format_duration(view.grace)}); {heard}. Whatever sends it may be down, "
        "or the way its alerts reach this desk."
    )

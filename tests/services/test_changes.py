"""Consoles hear of case changes at once on PostgreSQL: every writer's change notifies,
on a new database and on one brought up from an older schema, and a listener wakes
only for its own desk."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from alembic import command

from app.core.clock import FakeClock
from app.engine.runner import EscalationEngine
from app.services.cases import CaseService
from data.changes import ChangeListener
from data.db import Database, make_engine
from data.schema import alembic_config, upgrade
from tests.factories import add_policy, add_responder

HEARING = 10.0
"""An upper bound only: a wait returns the moment the notification arrives."""


@dataclass
class Notify:
    payload: str


@dataclass
class FakeConnection:
    """Notifications arrive in `arrivals`, one batch each time the listener waits (an
    empty batch: the wait's whole timeout passes); what arrived and was not taken stays
    queued, as in the driver."""

    arrivals: list[list[Notify]]
    queued: list[Notify] = field(default_factory=list)
    now: float = 0.0

    def notifies(self, *, timeout: float, stop_after: int | None = None) -> Iterator[Notify]:
        if timeout > 0:
            self.queued.extend(self.arrivals.pop(0) if self.arrivals else [])
        if not self.queued:
            self.now += timeout
            return iter([])
        taken = self.queued[: stop_after or len(self.queued)]
        del self.queued[: len(taken)]
        return iter(taken)


def fake_listener(arrivals: list[list[Notify]]) -> ChangeListener:
    connection = FakeConnection(arrivals)
    return ChangeListener(connection, "desk_a", lambda: None, clock=lambda: connection.now)


def test_a_listener_wakes_for_its_own_desk_only() -> None:
    other = [Notify("desk_b")]
    assert fake_listener([other, other, []]).wait(5) is False
    assert fake_listener([other, [Notify("desk_a")]]).wait(5) is True


def test_a_burst_of_changes_is_one_wake_up() -> None:
    ours = Notify("desk_a")
    listener = fake_listener([[ours, ours, ours], []])
    assert listener.wait(5) is True
    assert listener.wait(5) is False  # the rest of the burst was drained with the first


def test_a_listener_needs_postgresql(db: Database) -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        ChangeListener.open(db)


def _open_case(db: Database, clock: FakeClock) -> str:
    return CaseService(db, clock).open_case("ana", title="Threat", category="other", severity=2).ref


def test_a_case_service_change_is_heard(pg_db: Database, clock: FakeClock) -> None:
    add_responder(pg_db, "ana")
    listener = ChangeListener.open(pg_db)
    try:
        ref = _open_case(pg_db, clock)
        assert listener.wait(HEARING) is True
        CaseService(pg_db, clock).add_note("ana", ref, "called the reporter back")
        assert listener.wait(HEARING) is True
    finally:
        listener.close()


def test_the_engines_bulk_writes_are_heard(pg_db: Database, clock: FakeClock) -> None:
    add_responder(pg_db, "ana")
    add_policy(pg_db, "p", [(60, ["user:ana"]), (60, ["user:ana"])], route=["default"])
    _open_case(pg_db, clock)
    engine = EscalationEngine(pg_db, clock)
    engine.run_due()
    listener = ChangeListener.open(pg_db)
    try:
        clock.advance(seconds=60)
        assert engine.run_due().pages == 1
        assert listener.wait(HEARING) is True
    finally:
        listener.close()


def test_a_database_brought_up_from_the_first_schema_notifies_too(
    pg_url: str, clock: FakeClock
) -> None:
    engine = make_engine(pg_url)
    command.upgrade(alembic_config(engine), "0001")
    upgrade(engine)
    engine.dispose()
    db = Database.open(pg_url)
    try:
        add_responder(db, "ana")
        listener = ChangeListener.open(db)
        try:
            _open_case(db, clock)
            assert listener.wait(HEARING) is True
        finally:
            listener.close()
    finally:
        db.dispose()

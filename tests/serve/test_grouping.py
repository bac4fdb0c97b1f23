"""Group commit of intake (`app.serve.grouping`): requests waiting at the same moment are
written in one transaction, each event in a savepoint of its own; a group that fails as a
whole is written again event by event."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import event, text
from sqlmodel import col, select

from app.core.clock import FakeClock
from app.engine.runner import EscalationEngine
from app.intake.events import IntakeEvent
from app.intake.store import IntakeOutcome
from app.serve.grouping import GroupCommit
from app.services.cases import CaseService
from data import audit
from data.db import Database
from data.domain import Category
from data.models import Case, Page
from tests.factories import add_policy, add_responder


@pytest.fixture
def intake(any_db: Database, clock: FakeClock) -> GroupCommit:
    add_responder(any_db, "ana")
    add_responder(any_db, "relay", "supervisor")
    add_policy(any_db, "desk", [(300, ["user:ana"])], route=["default"])
    engine = EscalationEngine(any_db, clock, name="grouping-test")
    service = CaseService(any_db, clock, escalation=engine.page_within)
    return GroupCommit(service, "relay", threading.Lock())


def trigger(title: str, position: str = "event", policy: str | None = None) -> IntakeEvent:
    return IntakeEvent.trigger(
        "test",
        position,
        title=title,
        category=Category.OTHER,
        severity=2,
        details="",
        dedup_key=None,
        sensitive=False,
        policy=policy,
    )


async def send_together(
    intake: GroupCommit, requests: list[list[IntakeEvent]]
) -> list[IntakeOutcome | BaseException]:
    """Each request from its own task, all queued before the writer first runs."""
    outcomes = [IntakeOutcome() for _ in requests]
    pairs = list(zip(requests, outcomes, strict=True))
    sent = await asyncio.gather(
        *(intake.apply(events, outcome, "test") for events, outcome in pairs),
        return_exceptions=True,
    )
    return [
        error if error is not None else outcome
        for error, outcome in zip(sent, outcomes, strict=True)
    ]


def stored(db: Database) -> list[tuple[str, int]]:
    """(title, pages) of each case; the audit chain verified."""
    with db.read() as session:
        assert audit.verify(session).ok
        rows = session.exec(select(Case).order_by(col(Case.id))).all()
        pages = session.exec(select(Page.case_id)).all()
        return [(case.title, pages.count(case.id)) for case in rows]


def test_requests_waiting_together_are_one_transaction_and_each_answered(
    any_db: Database, intake: GroupCommit
) -> None:
    commits: list[object] = []
    event.listen(any_db.engine, "commit", commits.append)
    outcomes = asyncio.run(
        send_together(
            intake,
            [
                [trigger("First")],
                [trigger("Second", "event 1"), trigger("Refused", "event 2", policy="nowhere")],
                [trigger("Third")],
            ],
        )
    )
    first, second, third = outcomes
    assert isinstance(first, IntakeOutcome)
    assert first.opened == ["ESC-0001"]
    assert isinstance(second, IntakeOutcome)
    assert second.opened == ["ESC-0002"]
    assert [(e.position, e.reason.split(":")[0]) for e in second.errors] == [("event 2", "policy")]
    assert isinstance(third, IntakeOutcome)
    assert third.opened == ["ESC-0003"]
    cases = stored(any_db)
    assert cases == [
        ("First", 1),
        ("Second", 1),
        ("Third", 1),
    ]
    assert len(commits) == 1  # one transaction for the three requests


def test_a_group_that_fails_as_a_whole_is_written_again_event_by_event(
    sqlite_db: Database, clock: FakeClock
) -> None:
    add_responder(sqlite_db, "ana")
    add_responder(sqlite_db, "relay", "supervisor")
    add_policy(sqlite_db, "desk", [(300, ["user:ana"])], route=["default"])
    engine = EscalationEngine(sqlite_db, clock, name="grouping-test")
    intake = GroupCommit(
        CaseService(sqlite_db, clock, escalation=engine.page_within), "relay", threading.Lock()
    )
    with sqlite_db.write() as session:  # the first page of one case cannot be written
        session.execute(
            text(
                "CREATE TRIGGER poison BEFORE INSERT ON page WHEN "
                "(SELECT title FROM \"case\" WHERE id = NEW.case_id) = 'Poison' "
                "BEGIN SELECT RAISE(ABORT, 'this page cannot be written'); END"
            )
        )
    outcomes = asyncio.run(
        send_together(intake, [[trigger("Before")], [trigger("Poison")], [trigger("After")]])
    )
    before, poison, after = outcomes
    assert isinstance(before, IntakeOutcome)
    assert len(before.opened) == 1
    assert isinstance(poison, Exception)
    assert "cannot be written" in str(poison)
    assert isinstance(after, IntakeOutcome)
    assert len(after.opened) == 1
    assert stored(sqlite_db) == [
        ("Before", 1),
        ("After", 1),
    ]

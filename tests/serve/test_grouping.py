"""Group commit of intake (`app.serve.grouping`): requests waiting at the same moment are
written in one transaction, each event in a savepoint of its own; a group that fails as a
whole is written again event by event."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import event, text
from sqlmodel import col, select

from app.core.clock import FakeClock
from app.engine.runner import EscalationEngine
from app.intake.events import Action, IntakeEvent
from app.intake.store import IntakeOutcome
from app.serve.grouping import GroupCommit
from app.services.cases import CaseService
from data import audit
from data.db import Database
from data.domain import Category
from data.keys import SealingKeyError
from data.models import Case, Page
from tests.factories import add_policy, add_responder


class Gate:
    """The writer's lock, as the tests hold it: shut, the writer waits at it with the group
    it took, and whatever is sent meanwhile queues for the next group."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.opened = threading.Event()

    def __enter__(self) -> None:
        self.reached.set()
        self.opened.wait(10)

    def __exit__(self, *_exc: object) -> None:
        return None


@pytest.fixture
def gate() -> Gate:
    return Gate()


def desk(db: Database, clock: FakeClock) -> CaseService:
    add_responder(db, "ana")
    add_responder(db, "relay", "supervisor")
    add_policy(db, "desk", [(300, ["user:ana"])], route=["default"])
    engine = EscalationEngine(db, clock, name="grouping-test")
    return CaseService(db, clock, escalation=engine.page_within)


@pytest.fixture
def intake(any_db: Database, clock: FakeClock, gate: Gate) -> Iterator[GroupCommit]:
    writer = GroupCommit(desk(any_db, clock), "relay", gate)
    yield writer
    writer.close()


def trigger(
    title: str, position: str = "event", policy: str | None = None, key: str | None = None
) -> IntakeEvent:
    return IntakeEvent.trigger(
        "test",
        position,
        title=title,
        category=Category.OTHER,
        severity=2,
        details="",
        dedup_key=key,
        sensitive=False,
        policy=policy,
    )


async def send_together(
    intake: GroupCommit, gate: Gate, requests: list[list[IntakeEvent]]
) -> list[IntakeOutcome | BaseException]:
    """Each request from its own task, all queued while the writer is held at the gate with
    a first request ("Held"), so they go together in the next group."""
    held = asyncio.ensure_future(intake.apply([trigger("Held")], IntakeOutcome(), "test"))
    await asyncio.to_thread(gate.reached.wait, 10)
    outcomes = [IntakeOutcome() for _ in requests]
    pairs = list(zip(requests, outcomes, strict=True))
    sent = asyncio.gather(
        *(intake.apply(events, outcome, "test") for events, outcome in pairs),
        return_exceptions=True,
    )
    await asyncio.sleep(0)  # each request runs to its wait: all are queued
    gate.opened.set()
    await held
    return [
        error if error is not None else outcome
        for error, outcome in zip(await sent, outcomes, strict=True)
    ]


def stored(db: Database) -> list[tuple[str, int]]:
    """(title, pages) of each case; the audit chain verified."""
    with db.read() as session:
        assert audit.verify(session).ok
        rows = session.exec(select(Case).order_by(col(Case.id))).all()
        pages = session.exec(select(Page.case_id)).all()
        return [(case.title, pages.count(case.id)) for case in rows]


def test_requests_waiting_together_are_one_transaction_and_each_answered(
    any_db: Database, intake: GroupCommit, gate: Gate
) -> None:
    commits: list[object] = []
    event.listen(any_db.engine, "commit", commits.append)
    opened: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if statement.startswith('INSERT INTO "case" '):
            opened.append(statement)

    event.listen(any_db.engine, "before_cursor_execute", seen)
    outcomes = asyncio.run(
        send_together(
            intake,
            gate,
            [
                [trigger("First")],
                [trigger("Second", "event 1"), trigger("Refused", "event 2", policy="nowhere")],
                [trigger("Third")],
            ],
        )
    )
    event.remove(any_db.engine, "before_cursor_execute", seen)
    first, second, third = outcomes
    assert isinstance(first, IntakeOutcome)
    assert first.opened == ["ESC-0002"]
    assert isinstance(second, IntakeOutcome)
    assert second.opened == ["ESC-0003"]
    assert [(e.position, e.reason.split(":")[0]) for e in second.errors] == [("event 2", "policy")]
    assert isinstance(third, IntakeOutcome)
    assert third.opened == ["ESC-0004"]
    assert stored(any_db) == [("Held", 1), ("First", 1), ("Second", 1), ("Third", 1)]
    assert len(commits) == 2  # the held group, then one for the three requests
    assert len(opened) == 2  # and their cases opened together, in one INSERT


def test_resolves_waiting_together_are_one_change_and_each_answered_in_order(
    any_db: Database, intake: GroupCommit, gate: Gate
) -> None:
    """An outage over: Alertmanager sends the group's alerts resolved. One change resolves
    them all (each alone held the writer: 3,000 took 21 s), each answered as alone: a
    second resolve of one key, or of a key no case holds, drops."""
    keys = [f"node-{n}/down" for n in range(40)]
    asyncio.run(send_together(intake, gate, [[trigger(f"Down {key}", key=key) for key in keys]]))
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(statement)

    def resolving(position: str, key: str) -> IntakeEvent:
        return IntakeEvent.closing("resolve", key, "test", position)

    event.listen(any_db.engine, "before_cursor_execute", seen)
    try:
        outcomes = asyncio.run(
            send_together(
                intake,
                gate,
                [
                    [resolving(f"event {n}", key) for n, key in enumerate(keys[:30], 1)],
                    [resolving("event 1", keys[0]), resolving("event 2", "nobody")],
                    [resolving(f"event {n}", key) for n, key in enumerate(keys[30:], 1)],
                ],
            )
        )
    finally:
        event.remove(any_db.engine, "before_cursor_execute", seen)
    first, again, rest = outcomes
    assert isinstance(first, IntakeOutcome)
    assert isinstance(again, IntakeOutcome)
    assert isinstance(rest, IntakeOutcome)
    assert first.resolved == [f"ESC-{n:04d}" for n in range(2, 32)]
    assert (again.resolved, again.dropped) == ([], [keys[0], "nobody"])
    assert rest.resolved == [f"ESC-{n:04d}" for n in range(32, 42)]
    with any_db.read() as session:
        statuses = set(session.exec(select(Case.status).where(Case.title != "Held")).all())
    assert statuses == {"resolved"}
    assert stored(any_db)  # the audit chain verifies
    assert len(statements) < 40, statements  # not a change of its own each


def test_a_group_that_fails_as_a_whole_is_written_again_event_by_event(
    sqlite_db: Database, clock: FakeClock, gate: Gate
) -> None:
    intake = GroupCommit(desk(sqlite_db, clock), "relay", gate)
    with sqlite_db.write() as session:  # the first page of one case cannot be written
        session.execute(
            text(
                "CREATE TRIGGER poison BEFORE INSERT ON page WHEN "
                "(SELECT title FROM \"case\" WHERE id = NEW.case_id) = 'Poison' "
                "BEGIN SELECT RAISE(ABORT, 'this page cannot be written'); END"
            )
        )
    outcomes = asyncio.run(
        send_together(intake, gate, [[trigger("Before")], [trigger("Poison")], [trigger("After")]])
    )
    intake.close()
    before, poison, after = outcomes
    assert isinstance(before, IntakeOutcome)
    assert len(before.opened) == 1
    assert isinstance(poison, Exception)
    assert "cannot be written" in str(poison)
    assert isinstance(after, IntakeOutcome)
    assert len(after.opened) == 1
    assert stored(sqlite_db) == [("Held", 1), ("Before", 1), ("After", 1)]


@pytest.mark.parametrize("closing", ["acknowledge", "resolve"])
def test_an_alert_closed_in_the_group_that_opened_it_was_paged_first(
    any_db: Database, intake: GroupCommit, gate: Gate, closing: Action
) -> None:
    """The cases a group opens are stored, and paged, before the group's next event of
    another kind: an acknowledgement or resolve right behind the trigger, in the next
    request or in the same one, finds the case open and paged, never skipped or dropped."""
    done = "acknowledged" if closing == "acknowledge" else "resolved"
    outcomes = asyncio.run(
        send_together(
            intake,
            gate,
            [
                [trigger("Disk full", key="db-1/disk")],
                [IntakeEvent.closing(closing, "db-1/disk", "test", "event")],
                [
                    trigger("Disk slow", "event 1", key="db-2/disk"),
                    IntakeEvent.closing(closing, "db-2/disk", "test", "event 2"),
                    trigger("Disk slow again", "event 3", key="db-2/disk"),
                ],
            ],
        )
    )
    first, closed, both = [o for o in outcomes if isinstance(o, IntakeOutcome)]
    assert (first.opened, getattr(closed, done)) == (["ESC-0002"], ["ESC-0002"])
    assert (getattr(both, done), both.dropped) == (["ESC-0003"], [])
    # an acknowledged case takes the repeat in; a resolved one leaves it a new case
    if closing == "acknowledge":
        assert (both.opened, both.deduplicated) == (["ESC-0003"], ["ESC-0003"])
    else:
        assert (both.opened, both.deduplicated) == (["ESC-0003", "ESC-0004"], [])
    titles = [("Held", 1), ("Disk full", 1), ("Disk slow", 1)]
    if closing == "resolve":
        titles.append(("Disk slow again", 1))
    assert stored(any_db) == titles
    with any_db.read() as session:
        statuses = session.exec(select(Case.status).order_by(col(Case.id))).all()
    assert statuses[1:3] == [done, done]


def test_a_failing_engine_wake_up_leaves_every_request_answered_once(
    any_db: Database, clock: FakeClock, gate: Gate
) -> None:
    def wake_up() -> None:
        raise RuntimeError("the engine's scheduler is gone")

    intake = GroupCommit(desk(any_db, clock), "relay", gate, after_paging=wake_up)
    first = asyncio.run(send_together(intake, gate, [[trigger("First")], [trigger("Second")]]))
    third = IntakeOutcome()
    asyncio.run(intake.apply([trigger("Third")], third, "test"))
    intake.close()
    assert [o.opened for o in first if isinstance(o, IntakeOutcome)] == [["ESC-0002"], ["ESC-0003"]]
    assert third.opened == ["ESC-0004"]
    assert stored(any_db) == [("Held", 1), ("First", 1), ("Second", 1), ("Third", 1)]


def test_an_event_that_cannot_be_sealed_sinks_no_other_in_its_group(
    any_db: Database, clock: FakeClock, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake = GroupCommit(desk(any_db, clock), "relay", gate)

    def no_key() -> tuple[str, bytes]:
        raise SealingKeyError("no key file, but the database already holds sealed values")

    monkeypatch.setattr(any_db.keyring, "sealing_key", no_key)
    detailed = IntakeEvent.trigger(
        "test",
        "event",
        title="Detailed",
        category=Category.OTHER,
        severity=2,
        details="disk at 99%",
        dedup_key=None,
        sensitive=False,
    )
    outcomes = asyncio.run(
        send_together(intake, gate, [[trigger("Plain A")], [detailed], [trigger("Plain B")]])
    )
    intake.close()
    plain_a, sealed, plain_b = outcomes
    assert isinstance(sealed, SealingKeyError)
    assert isinstance(plain_a, IntakeOutcome)
    assert isinstance(plain_b, IntakeOutcome)
    assert stored(any_db) == [("Held", 1), ("Plain A", 1), ("Plain B", 1)]


def test_a_writer_that_cannot_start_fails_one_request_and_the_next_starts_it(
    any_db: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake = GroupCommit(desk(any_db, clock), "relay", threading.Lock())
    start = threading.Thread.start

    def out_of_threads(thread: threading.Thread) -> None:
        monkeypatch.setattr(threading.Thread, "start", start)  # once
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", out_of_threads)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        asyncio.run(intake.apply([trigger("Lost")], IntakeOutcome(), "test"))
    later = IntakeOutcome()
    asyncio.run(asyncio.wait_for(intake.apply([trigger("Later")], later, "test"), 20))
    intake.close()
    assert later.opened == ["ESC-0001"]
    assert stored(any_db) == [("Later", 1)]

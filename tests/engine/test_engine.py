"""The escalation engine against its contract, on SQLite and PostgreSQL.

Each test gets a fresh database and a FakeClock; time moves only by `desk.advance(...)`,
which then runs one engine cycle. Every test ends by asserting the exact list of pages
ever sent (handle, cycle, step, round), so nothing else was sent; the harness also fails a
test that logged an ERROR it did not ask for, or that broke the audit chain.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import apscheduler.schedulers.base as apscheduler_base
import pytest
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import update
from sqlmodel import col, func, select

import app.engine.cycle as engine_module
import app.engine.runner as runner_module
from app.core.clock import FakeClock
from app.core.errors import NothingToDo
from app.engine.runner import (
    CycleResult,
    EngineRunner,
    EscalationEngine,
    last_heartbeat,
    read_chain,
    run_headless,
)
from app.rules.rotations import on_call
from app.services.cases import CaseService
from app.services.oncall import load_all_schedules, load_rotation, load_schedule
from app.services.paging import timeline_with_pages
from app.services.targets import resolve_targets
from data import audit
from data.clock import set_time_source
from data.db import Database
from data.domain import TimelineKind
from data.escalation import EngineHeartbeat, StepRun
from data.journal import add_timeline
from data.models import AuditRecord, Case, Delivery, Page, PolicyStep, Responder, TimelineEvent
from data.oncall import Holiday, Rotation
from data.wal import AUTOMATIC_PAGES
from tests.consistency import assert_consistent
from tests.factories import (
    add_policy,
    add_responder,
    add_rotation,
    add_schedule,
    wait_until,
    wal_automatic_pages,
)

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
PageKey = tuple[str, int, int, int]


# --- harness ----------------------------------------------------------------------


@pytest.fixture
def allow_errors() -> None:
    """Request this fixture in a test that expects the engine to log at ERROR."""


@pytest.fixture(autouse=True)
def _fail_on_unexpected_errors(
    caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> Iterator[None]:
    caplog.set_level(logging.INFO, logger="vigil")
    yield
    if "allow_errors" in request.fixturenames:
        return
    errors = [
        f"{record.name}: {record.getMessage()}"
        for when in ("setup", "call")
        for record in caplog.get_records(when)
        if record.levelno >= logging.ERROR
    ]
    assert not errors, f"unexpected ERROR log records: {errors}"


@dataclass
class Desk:
    db: Database
    clock: FakeClock
    service: CaseService
    engine: EscalationEngine

    def open(self, policy: str | None = "standard", **fields: Any) -> str:
        values: dict[str, Any] = {"title": "Emergency data request", "category": "edr"}
        values.update({"severity": 1, "policy": policy, **fields})
        return self.service.open_case("ana", **values).ref

    def run(self) -> CycleResult:
        return self.engine.run_due()

    def advance(self, **delta: float) -> CycleResult:
        self.clock.advance(timedelta(**delta))
        return self.engine.run_due()

    def pages(self, ref: str | None = None) -> list[PageKey]:
        """Every page sent (for one case), in the order they were recorded."""
        query = (
            select(Responder.handle, Page.cycle, Page.step, Page.round)
            .join(Responder, col(Responder.id) == col(Page.responder_id))
            .order_by(col(Page.id))
        )
        if ref is not None:
            query = query.join(Case, col(Case.id) == col(Page.case_id)).where(Case.ref == ref)
        with self.db.read() as session:
            return [tuple(row) for row in session.exec(query).all()]  # type: ignore[misc]

    def assert_pages(self, expected: list[PageKey]) -> None:
        assert self.pages() == expected

    def case(self, ref: str) -> Case:
        with self.db.read() as session:
            return session.exec(select(Case).where(Case.ref == ref)).one()

    def timeline(self, ref: str, kind: str | None = None) -> list[TimelineEvent]:
        """The case's timeline as people read it ("paged" lines read from the pages)."""
        with self.db.read() as session:
            case = session.exec(select(Case).where(Case.ref == ref)).one()
            assert case.id is not None
            events = timeline_with_pages(session, case.id)
        return [event for event in events if kind is None or event.kind == kind]

    def step_runs(self, ref: str) -> list[StepRun]:
        with self.db.read() as session:
            case = session.exec(select(Case).where(Case.ref == ref)).one()
            query = select(StepRun).where(StepRun.case_id == case.id).order_by(col(StepRun.id))
            return list(session.exec(query).all())


def _build_desk(db: Database, clock: FakeClock) -> Desk:
    add_responder(db, "ana", contacts=("console", "desktop"))
    add_responder(db, "ben")
    add_responder(db, "cat")
    add_responder(db, "nix", contacts=())  # no way to reach them
    add_responder(db, "sue", "supervisor")
    add_responder(db, "sam", "supervisor", active=False)
    add_policy(db, "standard", [(300, ["user:ana"]), (600, ["user:ben"])], repeat=1)
    return Desk(
        db, clock, CaseService(db, clock), EscalationEngine(db, clock, name="engine", batch_size=7)
    )


@pytest.fixture
def desk(any_db: Database, clock: FakeClock) -> Iterator[Desk]:
    built = _build_desk(any_db, clock)
    yield built
    with any_db.read() as session:
        report = audit.verify(session)
    assert report.ok, report.reason


@pytest.fixture
def sqlite_desk(db: Database, clock: FakeClock) -> Iterator[Desk]:
    built = _build_desk(db, clock)
    yield built
    with db.read() as session:
        assert audit.verify(session).ok


# --- the timeline's "paged" lines ---------------------------------------------------


def _stored_kinds(desk: Desk, ref: str) -> list[str]:
    """The kinds of the case's stored timeline rows, in the order they were written."""
    with desk.db.read() as session:
        case = session.exec(select(Case).where(Case.ref == ref)).one()
        query = select(TimelineEvent.kind).where(TimelineEvent.case_id == case.id)
        return list(session.exec(query.order_by(col(TimelineEvent.id))).all())


def test_paged_lines_are_read_from_the_pages_and_not_stored_a_second_time(desk: Desk) -> None:
    ref = desk.open()
    desk.run()  # step 1 pages ana
    desk.advance(seconds=300)  # step 2 pages ben
    desk.service.acknowledge("ben", ref)  # at the same instant as ben's page
    assert _stored_kinds(desk, ref) == ["opened", "acknowledged"]
    assert [e.text for e in desk.timeline(ref)] == [
        "Opened by ana from vigil; policy standard",
        "Paged ana (step 1, round 1)",
        "Paged ben (step 2, round 1)",
        "Acknowledged by ben",
    ]
    [first, second] = desk.timeline(ref, "paged")
    assert (first.at, second.at) == (T0, T0 + timedelta(seconds=300))
    assert second.data == {"step": 2, "round": 0, "cycle": 0, "reason": "escalation"}


def test_a_paged_line_stored_by_an_earlier_version_is_not_said_twice(desk: Desk) -> None:
    ref = desk.open()
    desk.run()
    case = desk.case(ref)
    with desk.db.write() as session:  # as versions that stored the line wrote it
        data = {"step": 1, "round": 0, "cycle": 0, "reason": "escalation"}
        text = "Paged ana (step 1, round 1)"
        add_timeline(session, case, T0, TimelineKind.PAGED, text, None, data)
    assert [e.text for e in desk.timeline(ref, "paged")] == [text]
    desk.advance(seconds=300)
    assert [e.text for e in desk.timeline(ref, "paged")] == [text, "Paged ben (step 2, round 1)"]


def test_at_one_instant_a_paged_line_follows_what_came_before_the_paging(desk: Desk) -> None:
    """An alert joining the case before its step is paged (a group of alerts pages at its
    end) reads before the page, a note after; the stored lines keep their own order."""
    ref = desk.open()
    case = desk.case(ref)
    with desk.db.write() as session:
        add_timeline(session, case, T0, TimelineKind.DUPLICATE, "Joined by a second alert")
    desk.run()  # step 1 pages ana, at the same instant
    with desk.db.write() as session:
        add_timeline(session, case, T0, TimelineKind.NOTE, "Note by ana", "ana")
        add_timeline(session, case, T0, TimelineKind.DUPLICATE, "Joined by a third alert")
    assert [e.text for e in desk.timeline(ref)] == [
        "Opened by ana from vigil; policy standard",
        "Joined by a second alert",
        "Paged ana (step 1, round 1)",
        "Note by ana",
        "Joined by a third alert",
    ]


def test_a_step_paged_soon_after_a_catch_up_says_how_late_it_is(desk: Desk) -> None:
    """Late by less than `LATE_AFTER`, the live step still says how late: it was paged
    after overtaken steps (the catch-up's line at the same instant); on time, it does not."""
    add_policy(desk.db, "quick", [(300, ["user:ana"]), (60, ["user:ben"]), (600, ["user:cat"])])
    ref = desk.open("quick")
    desk.run()
    desk.advance(seconds=390)  # step 2 was due 09:05, step 3 09:06: 30 s ago
    assert [e.text for e in desk.timeline(ref, "paged")] == [
        "Paged ana (step 1, round 1)",
        "Paged cat (step 3, round 1, 30 s late)",
    ]
    assert desk.timeline(ref, "paged")[1].data["late_by_seconds"] == 30
    assert len(desk.timeline(ref, "catch_up")) == 1
    on_time = desk.open("quick")
    desk.run()
    desk.advance(seconds=300)
    assert [e.text for e in desk.timeline(on_time, "paged")][-1] == "Paged ben (step 2, round 1)"


# --- the chain ----------------------------------------------------------------------


def test_new_case_pages_step_one_at_once(desk: Desk) -> None:
    ref = desk.open()
    result = desk.run()
    assert (result.cases, result.pages) == (1, 1)
    case = desk.case(ref)
    assert (case.escalation_step, case.escalation_round) == (1, 0)
    assert case.next_escalation_at == T0 + timedelta(seconds=300)
    assert case.assignee_id is not None  # the first person paged
    with desk.db.read() as session:
        deliveries = session.exec(select(Delivery).order_by(col(Delivery.id))).all()
        assert [d.channel for d in deliveries] == ["console", "desktop"]
        assert deliveries[0].idempotency_key.startswith(f"{ref}:0:1:0:ana:")
        page = session.exec(select(Page)).one()
        assert (page.due_at, page.sent_at, page.reason) == (T0, T0, "escalation")
    assert [e.kind for e in desk.timeline(ref)] == ["opened", "paged"]
    desk.assert_pages([("ana", 0, 1, 0)])


def test_each_step_pages_on_time_and_never_a_second_early(desk: Desk) -> None:
    desk.open()
    desk.run()
    assert desk.advance(seconds=299).pages == 0
    assert desk.advance(seconds=1).pages == 1  # step 2, 300 s after step 1
    assert desk.advance(seconds=599).pages == 0
    assert desk.advance(seconds=1).pages == 1  # round 2 starts 600 s after step 2
    assert desk.advance(seconds=299).pages == 0
    desk.assert_pages([("ana", 0, 1, 0), ("ben", 0, 2, 0), ("ana", 0, 1, 1)])


def test_the_next_step_counts_from_the_page_not_from_the_due_time(desk: Desk) -> None:
    ref = desk.open()
    desk.clock.advance(seconds=20)  # the engine comes 20 s late to step 1
    desk.run()
    assert desk.case(ref).next_escalation_at == T0 + timedelta(seconds=320)
    assert desk.advance(seconds=299).pages == 0
    assert desk.advance(seconds=1).pages == 1
    desk.assert_pages([("ana", 0, 1, 0), ("ben", 0, 2, 0)])


def test_repeat_then_exhaustion_pages_the_supervisors_once(desk: Desk) -> None:
    ref = desk.open()
    desk.run()
    desk.advance(minutes=5)
    desk.advance(minutes=10)
    desk.advance(minutes=5)
    result = desk.advance(minutes=10)  # the last step's delay ran out
    assert (result.exhausted, result.pages) == (1, 1)
    case = desk.case(ref)
    assert case.exhausted
    assert case.next_escalation_at is None
    assert case.status == "triggered"
    assert (case.escalation_step, case.escalation_round) == (3, 1)
    with desk.db.read() as session:
        last = session.exec(select(Page).order_by(col(Page.id).desc())).first()
        assert last is not None
        assert last.reason == "exhausted"
    assert "sue" in desk.timeline(ref, "exhausted")[0].text
    assert desk.advance(days=2).pages == 0
    desk.assert_pages(
        [
            ("ana", 0, 1, 0),
            ("ben", 0, 2, 0),
            ("ana", 0, 1, 1),
            ("ben", 0, 2, 1),
            ("sue", 0, 3, 1),  # sam is a supervisor too, but inactive
        ]
    )


def test_acknowledge_in_the_middle_of_a_step_stops_escalation(desk: Desk) -> None:
    ref = desk.open()
    desk.run()
    desk.clock.advance(minutes=2)
    desk.service.acknowledge("ana", ref)
    assert desk.advance(minutes=3).pages == 0
    assert desk.advance(hours=6).pages == 0
    assert desk.case(ref).status == "acknowledged"
    desk.assert_pages([("ana", 0, 1, 0)])


def test_resolve_stops_escalation_for_good(desk: Desk) -> None:
    ref = desk.open()
    desk.run()
    desk.clock.advance(minutes=1)
    desk.service.resolve("ana", ref, note="Handled")
    assert desk.advance(days=3).pages == 0
    with pytest.raises(NothingToDo):
        desk.service.escalate_now("sue", ref)
    assert desk.advance(days=3).pages == 0
    desk.assert_pages([("ana", 0, 1, 0)])


def test_reassign_pages_the_new_assignee_and_restarts_from_step_one(desk: Desk) -> None:
    ref = desk.open()
    desk.run()
    desk.clock.advance(minutes=1)
    desk.service.reassign("sue", ref, "cat")
    assert desk.advance(seconds=299).pages == 0  # cat has step 1's delay to acknowledge
    assert desk.advance(seconds=1).pages == 1
    assert desk.case(ref).escalation_cycle == 1
    desk.assert_pages([("ana", 0, 1, 0), ("cat", 1, 0, 0), ("ana", 1, 1, 0)])


def test_reassigned_case_acknowledged_by_the_new_assignee_stays_quiet(desk: Desk) -> None:
    ref = desk.open()
    desk.run()
    desk.service.reassign("sue", ref, "cat")
    desk.clock.advance(minutes=1)
    desk.service.acknowledge("cat", ref)
    assert desk.advance(hours=1).pages == 0
    desk.assert_pages([("ana", 0, 1, 0), ("cat", 1, 0, 0)])


def test_multi_ack_step_keeps_escalating_until_every_target_acknowledges(desk: Desk) -> None:
    add_policy(
        desk.db,
        "pair",
        [(300, ["user:ana", "user:ben"]), (600, ["user:cat"])],
        require_all=[1],
    )
    ref = desk.open("pair")
    desk.run()
    desk.clock.advance(minutes=1)
    desk.service.acknowledge("ana", ref)
    assert desk.case(ref).status == "triggered"
    assert desk.advance(minutes=4).pages == 1  # ben never acknowledged: step 2 on time
    desk.assert_pages([("ana", 0, 1, 0), ("ben", 0, 1, 0), ("cat", 0, 2, 0)])


def test_multi_ack_step_stops_once_everyone_acknowledged(desk: Desk) -> None:
    add_policy(desk.db, "pair", [(300, ["user:ana", "user:ben"])], require_all=[1])
    ref = desk.open("pair")
    desk.run()
    desk.service.acknowledge("ana", ref)
    desk.service.acknowledge("ben", ref)
    assert desk.case(ref).status == "acknowledged"
    assert desk.advance(hours=1).pages == 0
    desk.assert_pages([("ana", 0, 1, 0), ("ben", 0, 1, 0)])


def test_ack_timeout_retriggers_and_a_new_cycle_pages_step_one(desk: Desk) -> None:
    add_policy(
        desk.db, "timed", [(300, ["user:ana"]), (600, ["user:ben"])], ack_timeout_seconds=900
    )
    ref = desk.open("timed")
    desk.run()
    desk.clock.advance(minutes=1)
    desk.service.acknowledge("ana", ref)
    assert desk.advance(seconds=899).pages == 0
    assert desk.advance(seconds=1).pages == 1
    case = desk.case(ref)
    assert (case.status, case.escalation_cycle, case.escalation_step) == ("triggered", 1, 1)
    assert (case.acknowledged_at, case.queue_rank) == (None, 0)
    assert len(desk.timeline(ref, "ack_timeout")) == 1
    assert desk.advance(minutes=5).pages == 1  # and the new cycle escalates as usual
    desk.assert_pages([("ana", 0, 1, 0), ("ana", 1, 1, 0), ("ben", 1, 2, 0)])


def test_a_step_with_nobody_reachable_moves_on_at_once(desk: Desk) -> None:
    add_policy(desk.db, "gap", [(300, ["user:nix", "user:sam"]), (600, ["user:ben"])])
    ref = desk.open("gap")
    result = desk.run()
    assert (result.pages, result.skipped) == (1, 1)
    assert desk.case(ref).next_escalation_at == T0 + timedelta(seconds=600)
    [skipped] = desk.timeline(ref, "skipped")
    assert skipped.text == "Nobody on call or reachable for step 1 (round 1): moved on at once"
    runs = desk.step_runs(ref)
    assert [(r.step, r.paged, r.missed) for r in runs] == [(1, 0, False), (2, 1, False)]
    desk.assert_pages([("ben", 0, 2, 0)])


def test_a_chain_with_nobody_reachable_at_all_goes_straight_to_the_supervisors(
    desk: Desk,
) -> None:
    add_policy(desk.db, "empty", [(300, ["user:nix"]), (300, ["user:ghost"])], repeat=2)
    ref = desk.open("empty")
    result = desk.run()
    assert (result.skipped, result.exhausted, result.pages) == (6, 1, 1)
    assert desk.case(ref).exhausted
    desk.assert_pages([("sue", 0, 3, 2)])


def test_after_downtime_the_overtaken_steps_people_are_paged_once_and_late(
    desk: Desk,
) -> None:
    add_policy(desk.db, "long", [(300, ["user:ana"]), (600, ["user:ben"])], repeat=3)
    ref = desk.open("long")
    desk.run()  # step 1 at 09:00; the engine is then down until 09:40
    result = desk.advance(minutes=40)
    # Would have been: ben 09:05, ana 09:15, ben 09:20, ana 09:30, ben 09:35 (current).
    # ben pages for the current step; ana once, late, for the first step that named her.
    assert (result.pages, result.missed, result.late, result.notices) == (3, 4, 1, 1)
    [caught_up] = desk.timeline(ref, "catch_up")
    assert caught_up.text == (
        "Escalation was 35 min behind (the engine was not running or could not reach the "
        "database); caught up by paging late, once each: step 2 (round 1): ben paged once "
        "only; step 1 (round 2): ana, 25 min late; step 2 (round 2): ben paged once only; "
        "step 1 (round 3): ana paged once only. Continuing at step 2 (round 3)"
    )
    assert [m["due_at"][11:16] for m in caught_up.data["late"]] == [
        "09:05",
        "09:15",
        "09:20",
        "09:30",
    ]
    [paged] = [e for e in desk.timeline(ref, "paged") if "ben" in e.text]
    assert paged.text == "Paged ben (step 2, round 3, 5 min late)"
    runs = desk.step_runs(ref)
    assert [(r.step, r.round, r.missed, r.paged) for r in runs] == [
        (1, 0, False, 1),
        (2, 0, True, 0),
        (1, 1, True, 1),
        (2, 1, True, 0),
        (1, 2, True, 0),
        (2, 2, False, 1),
    ]
    assert runs[-1].due_at == T0 + timedelta(minutes=35)
    with desk.db.read() as session:
        late = session.exec(select(Page).where(Page.reason == "catch-up")).one()
    assert (late.due_at, late.sent_at) == (T0 + timedelta(minutes=15), T0 + timedelta(minutes=40))
    assert desk.case(ref).next_escalation_at == T0 + timedelta(minutes=50)
    assert desk.advance(minutes=9).pages == 0
    assert desk.advance(minutes=1).pages == 1
    desk.assert_pages(
        [
            ("ana", 0, 1, 0),
            ("ben", 0, 2, 2),
            ("ana", 0, 1, 1),  # late, for step 1 of round 2
            ("sue", 0, -2, 2),  # the supervisors told that escalation was delayed
            ("ana", 0, 1, 3),
        ]
    )


def test_downtime_past_the_last_step_catches_up_and_exhausts_once(desk: Desk) -> None:
    ref = desk.open()
    desk.run()
    result = desk.advance(days=1)
    assert (result.missed, result.exhausted, result.late, result.pages) == (3, 1, 2, 4)
    assert desk.case(ref).exhausted
    assert "Continuing at exhaustion" in desk.timeline(ref, "catch_up")[0].text
    assert desk.advance(days=1).pages == 0
    desk.assert_pages(
        [
            ("ana", 0, 1, 0),
            ("sue", 0, 3, 1),
            ("ben", 0, 2, 0),
            ("ana", 0, 1, 1),
            ("sue", 0, -3, 1),
        ]
    )


def _pair_policy(db: Database) -> None:
    """Two steps, two rounds: 09:00 step 1, +5 min step 2, +10 min round 2, and so on."""
    add_policy(
        db,
        "pair",
        [(300, ["user:ana", "user:cat"]), (600, ["user:ben", "user:cat"])],
        repeat=1,
    )


def _pages_by_reason(desk: Desk, ref: str) -> list[tuple[str, int, int, str, timedelta]]:
    """(handle, step, round, reason, how late) of each page of one case, in order."""
    with desk.db.read() as session:
        rows = session.exec(
            select(Responder.handle, Page.step, Page.round, Page.reason, Page.due_at, Page.sent_at)
            .join(Responder, col(Responder.id) == col(Page.responder_id))
            .join(Case, col(Case.id) == col(Page.case_id))
            .where(Case.ref == ref)
            .order_by(col(Page.id))
        ).all()
    return [(h, step, round_, reason, sent - due) for h, step, round_, reason, due, sent in rows]


def test_the_console_closed_30_minutes_pages_every_overtaken_target_once(desk: Desk) -> None:
    """Rule 5: two cases on a two-step, two-round policy; the only engine (the console's)
    is closed from 09:00 to 09:30. Everyone an overtaken step would have paged is paged
    once, late; the supervisors are told once; each case goes on from where it would be."""
    _pair_policy(desk.db)
    first = desk.open("pair")
    desk.run()  # 09:00: ana and cat; then the console is closed
    desk.clock.advance(minutes=6)
    second = desk.open("pair")
    desk.engine.run_due(case_ids=[desk.case(second).id or 0])  # `vigil page` pages step 1
    result = desk.advance(minutes=24)  # 09:30: the console is back
    minute = timedelta(minutes=1)

    # The first would have paged ben+cat 09:05, ana+cat 09:15, ben+cat 09:20 and run out
    # at 09:30: everyone of those steps once, late, and the supervisors for exhaustion.
    assert _pages_by_reason(desk, first)[2:] == [
        ("sue", 3, 1, "exhausted", 0 * minute),
        ("ben", 2, 0, "catch-up", 25 * minute),
        ("cat", 2, 0, "catch-up", 25 * minute),
        ("ana", 1, 1, "catch-up", 15 * minute),
        ("sue", -3, 1, "delayed", 25 * minute),  # told once, for both cases
    ]
    assert desk.case(first).exhausted
    # The second would have paged ben+cat 09:11, ana+cat 09:21, and is due for ben+cat
    # (round 2) since 09:26: that step pages now, so ben and cat are not paged for 09:11.
    assert _pages_by_reason(desk, second)[2:] == [
        ("ben", 2, 1, "escalation", 4 * minute),
        ("cat", 2, 1, "escalation", 4 * minute),
        ("ana", 1, 1, "catch-up", 9 * minute),
    ]
    case = desk.case(second)
    assert (case.escalation_step, case.escalation_round) == (2, 1)
    assert case.next_escalation_at == T0 + timedelta(minutes=40)
    assert (result.cases, result.delayed, result.missed, result.late, result.notices) == (
        2,
        2,
        5,
        4,
        1,
    )
    [notice] = desk.timeline(first, "delayed")
    assert notice.text == (
        f"Escalation was delayed by up to 25 min for 2 cases ({first}, {second}): "
        "caught up now; told the supervisors on duty: sue"
    )
    assert notice.data == {"cases": [first, second], "behind_seconds": 1500, "told": ["sue"]}
    [caught_up] = desk.timeline(second, "catch_up")
    assert caught_up.text == (
        "Escalation was 19 min behind (the engine was not running or could not reach the "
        "database); caught up by paging late, once each: step 2 (round 1): ben, cat paged "
        "once only; step 1 (round 2): ana, 9 min late (cat paged once only). Continuing at "
        "step 2 (round 2)"
    )
    assert "Paged ben, cat (step 2, round 2, 4 min late)" in [
        event.text for event in desk.timeline(second, "paged")
    ]
    with desk.db.read() as session:  # one delivery per channel of every page
        deliveries = session.exec(select(func.count()).select_from(Delivery)).one()
        pages = session.exec(select(func.count()).select_from(Page)).one()
    assert (pages, deliveries) == (12, 16)  # ana has a console and a desktop: 4 pages
    assert_consistent(desk.db)

    # Then on as usual: the second runs out at 09:40, nothing is paged twice.
    assert desk.advance(minutes=9).pages == 0
    assert desk.advance(minutes=1).pages == 1
    assert desk.advance(days=1).pages == 0
    assert _pages_by_reason(desk, second)[-1][:4] == ("sue", 3, 1, "exhausted")


def test_late_pages_say_how_late_wherever_they_are_shown(sqlite_desk: Desk) -> None:
    from app.delivery.local import claim_my_pages
    from app.delivery.webhook import build_payload
    from app.services.presenters import case_json

    desk = sqlite_desk
    ref = desk.open()
    desk.run()
    desk.advance(minutes=20)  # ben 09:05 and ana 09:15 overtaken; ben 09:20 due now
    with desk.db.read() as session:
        case = session.exec(select(Case).where(Case.ref == ref)).one()
        body = case_json(session, case)
        late = session.exec(select(Page).where(Page.reason == "catch-up")).one()
        payload = build_payload(case, late, "ana")
        sue = session.exec(select(Responder).where(Responder.handle == "sue")).one()
        ana = session.exec(select(Responder).where(Responder.handle == "ana")).one()
    assert [(p["handle"], p["reason"], p["late_by_seconds"]) for p in body["pages"]] == [
        ("ana", "escalation", 0),
        ("ben", "escalation", 0),
        ("ana", "catch-up", 300),
        ("sue", "delayed", 900),
    ]
    assert payload["late_by_seconds"] == 300
    assert [a.summary for a in claim_my_pages(desk.db, desk.clock, sue.id or 0)] == [
        f"Escalation was delayed: caught up now ({ref}'s timeline says which)"
    ]
    assert [a.summary for a in claim_my_pages(desk.db, desk.clock, ana.id or 0)] == [
        f"{ref} sev1: Emergency data request",
        f"{ref} sev1: Emergency data request (late: escalation was delayed)",
    ]


def test_two_engines_catching_up_at_once_page_each_person_once(desk: Desk) -> None:
    """Exactly once holds for a catch-up too: two engines race over the same overdue cases."""
    _pair_policy(desk.db)
    url = desk.db.engine.url.render_as_string(hide_password=False)
    second_db = Database.open(url)
    rival = EscalationEngine(second_db, desk.clock, name="rival", batch_size=3)
    refs = [desk.open("pair") for _ in range(20)]
    desk.run()
    desk.clock.advance(minutes=17)  # 09:05 and 09:15 overtaken; 09:20 not yet due
    failures: list[BaseException] = []
    barrier = threading.Barrier(2)

    def race(engine: EscalationEngine) -> None:
        barrier.wait()
        try:
            engine.run_due()
        except BaseException as exc:  # reported in the test's own thread
            failures.append(exc)

    try:
        threads = [threading.Thread(target=race, args=(e,)) for e in (desk.engine, rival)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        second_db.dispose()
    assert not failures
    for ref in refs:
        assert [p[:4] for p in _pages_by_reason(desk, ref) if p[3] != "delayed"] == [
            ("ana", 1, 0, "escalation"),
            ("cat", 1, 0, "escalation"),
            ("ana", 1, 1, "escalation"),
            ("cat", 1, 1, "escalation"),
            ("ben", 2, 0, "catch-up"),
        ]
    with desk.db.read() as session:
        notices = session.exec(select(func.count()).where(Page.reason == "delayed")).one()
    assert 1 <= notices <= 20 // 3 + 2  # once per batch that caught up, never per person
    assert_consistent(desk.db)


# --- the database's clock (rule 7) ------------------------------------------------------


def _set_db_time(db: Database, at: datetime | None) -> None:
    with db.engine.begin() as connection:
        schema = connection.exec_driver_sql("SELECT current_schema()").scalar()
        assert isinstance(schema, str)
        set_time_source(connection, schema, at)


@pytest.mark.pg
def test_an_engine_whose_host_clock_is_11_minutes_fast_pages_on_the_databases_time(
    pg_db: Database, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    desk = _build_desk(pg_db, clock)
    fast = FakeClock(T0 + timedelta(minutes=11))  # the engine's host
    engine = EscalationEngine(pg_db, fast, name="fast")
    _set_db_time(pg_db, T0)
    ref = desk.open()  # opened at a console with a good clock
    assert engine.run_due().pages == 1
    assert engine.clock.skew == timedelta(minutes=11)
    for seconds in (60, 120, 240, 299):  # the host says 09:12 ... 09:15:59
        fast.set(T0 + timedelta(minutes=11, seconds=seconds))
        _set_db_time(pg_db, T0 + timedelta(seconds=seconds))
        assert engine.run_due().pages == 0
    fast.set(T0 + timedelta(minutes=16))
    _set_db_time(pg_db, T0 + timedelta(minutes=5))
    assert engine.run_due().pages == 1
    with pg_db.read() as session:
        sent = session.exec(select(Page.sent_at).order_by(col(Page.id))).all()
        beat = session.exec(select(func.max(EngineHeartbeat.last_cycle_at))).one()
    assert sent == [T0, T0 + timedelta(minutes=5)]  # never the host's future
    assert beat == T0 + timedelta(minutes=5)
    assert desk.case(ref).next_escalation_at == T0 + timedelta(minutes=15)
    skew_logs = [r for r in caplog.records if r.name == "vigil.clock"]
    assert [r.getMessage() for r in skew_logs] == [
        "this host's clock is 11 min ahead of the database's; using the database's time "
        "for what is due and what is recorded"
    ]  # once, not every cycle
    # Back in step: no longer reported.
    _set_db_time(pg_db, None)
    engine.run_due()
    assert engine.clock.skew is None


@pytest.mark.pg
def test_a_case_opened_on_a_host_11_minutes_fast_is_stamped_and_paged_on_the_databases_time(
    pg_db: Database, clock: FakeClock
) -> None:
    """Step 1 pages in the transaction that opens the case: that transaction's instant is
    the database's too, so the case and its first page never carry the host's future."""
    _build_desk(pg_db, clock)
    fast = FakeClock(T0 + timedelta(minutes=11))
    engine = EscalationEngine(pg_db, fast, name="fast")
    cases = CaseService(pg_db, fast, escalation=engine.page_within)
    _set_db_time(pg_db, T0)
    ref = cases.open_case(
        "ana", title="Emergency data request", category="edr", severity=1, policy="standard"
    ).ref
    with pg_db.read() as session:
        case = session.exec(select(Case).where(Case.ref == ref)).one()
        sent = session.exec(select(Page.sent_at).where(Page.case_id == case.id)).all()
    assert case.created_at == T0
    assert sent == [T0]
    assert case.next_escalation_at == T0 + timedelta(minutes=5)


def test_on_sqlite_the_host_clock_is_the_time(desk: Desk) -> None:
    desk.open()
    assert desk.run().pages == 1
    assert desk.engine.clock.offset == timedelta(0)
    assert desk.engine.clock.now() == desk.clock.now()
    assert desk.engine.clock.skew is None


def test_a_second_engine_on_the_same_database_pages_nothing_twice(desk: Desk) -> None:
    other = EscalationEngine(desk.db, desk.clock, name="second", batch_size=3)
    refs = [desk.open() for _ in range(10)]
    other.run_due()
    desk.run()
    desk.clock.advance(minutes=5)
    desk.run()
    other.run_due()
    desk.clock.advance(minutes=10)
    other.run_due()
    desk.run()
    for ref in refs:
        assert desk.pages(ref) == [("ana", 0, 1, 0), ("ben", 0, 2, 0), ("ana", 0, 1, 1)]
    assert len(desk.pages()) == 30


def test_two_engines_racing_in_threads_page_each_step_exactly_once(desk: Desk) -> None:
    url = desk.db.engine.url.render_as_string(hide_password=False)
    second_db = Database.open(url)
    engines = [desk.engine, EscalationEngine(second_db, desk.clock, name="rival", batch_size=5)]
    refs = [desk.open() for _ in range(60)]
    failures: list[BaseException] = []

    def race(engine: EscalationEngine, barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            engine.run_due()
        except BaseException as exc:  # reported in the test's own thread
            failures.append(exc)

    try:
        for minutes in (0, 5, 10, 5, 10):
            desk.clock.advance(minutes=minutes)
            barrier = threading.Barrier(len(engines))
            threads = [threading.Thread(target=race, args=(e, barrier)) for e in engines]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            assert not failures
    finally:
        second_db.dispose()
    expected = [("ana", 0, 1, 0), ("ben", 0, 2, 0), ("ana", 0, 1, 1), ("ben", 0, 2, 1)]
    for ref in refs:
        assert desk.pages(ref) == [*expected, ("sue", 0, 3, 1)]
    with desk.db.read() as session:
        engines_used = set(session.exec(select(StepRun.engine)).all())
    assert len(desk.pages()) == 300
    assert engines_used <= {"engine", "rival"}


def test_a_policy_edited_after_the_case_triggered_does_not_change_the_case(desk: Desk) -> None:
    desk.open()
    desk.run()
    with desk.db.write() as session:
        session.execute(update(PolicyStep).values(delay_seconds=60, targets=["user:cat"]))
    assert desk.advance(minutes=1).pages == 0
    assert desk.advance(minutes=4).pages == 1
    desk.assert_pages([("ana", 0, 1, 0), ("ben", 0, 2, 0)])


def test_escalate_now_pages_the_next_step_at_once(desk: Desk) -> None:
    ref = desk.open()
    desk.run()
    desk.clock.advance(seconds=10)
    desk.service.escalate_now("sue", ref)
    assert desk.run().pages == 1
    assert desk.case(ref).next_escalation_at == T0 + timedelta(seconds=610)
    desk.assert_pages([("ana", 0, 1, 0), ("ben", 0, 2, 0)])


def test_escalate_now_after_exhaustion_starts_a_new_cycle(desk: Desk) -> None:
    ref = desk.open()
    desk.run()
    desk.advance(days=1)
    assert desk.case(ref).exhausted
    desk.service.escalate_now("sue", ref)
    assert desk.run().pages == 1
    case = desk.case(ref)
    assert (case.exhausted, case.escalation_cycle, case.escalation_step) == (False, 1, 1)
    assert len(desk.timeline(ref, "restart")) == 1
    caught_up = [("ben", 0, 2, 0), ("ana", 0, 1, 1), ("sue", 0, -3, 1)]  # the day's catch-up
    desk.assert_pages([("ana", 0, 1, 0), ("sue", 0, 3, 1), *caught_up, ("ana", 1, 1, 0)])


def test_acknowledging_the_exhausted_page_marks_it(desk: Desk) -> None:
    ref = desk.open()
    desk.run()
    desk.advance(days=1)
    desk.service.acknowledge("sue", ref)
    with desk.db.read() as session:
        page = session.exec(select(Page).where(Page.reason == "exhausted")).one()
        assert page.acknowledged_at == desk.clock.now()
    caught_up = [("ben", 0, 2, 0), ("ana", 0, 1, 1), ("sue", 0, -3, 1)]  # the day's catch-up
    desk.assert_pages([("ana", 0, 1, 0), ("sue", 0, 3, 1), *caught_up])


def test_the_auditor_repairs_a_triggered_case_that_lost_its_next_time(desk: Desk) -> None:
    ref = desk.open()
    desk.run()
    with desk.db.write() as session:
        session.execute(update(Case).values(next_escalation_at=None))
    assert desk.advance(hours=1).pages == 0  # stalled: nothing would ever page again
    assert desk.engine.audit_repair() == 1
    [repair] = desk.timeline(ref, "repair")
    assert repair.actor == "engine"
    assert desk.case(ref).next_escalation_at == desk.clock.now()
    assert desk.run().pages == 1
    assert desk.engine.audit_repair() == 0
    desk.assert_pages([("ana", 0, 1, 0), ("ben", 0, 2, 0)])


def test_engine_changes_are_audited_and_feed_the_change_log(desk: Desk) -> None:
    ref = desk.open()
    before = desk.case(ref).version
    desk.run()
    case = desk.case(ref)
    assert (case.version, case.updated_at) == (before + 1, T0)
    with desk.db.read() as session:
        records = session.exec(select(AuditRecord).where(AuditRecord.actor == "engine")).all()
    assert [(r.action, r.case_ref, r.detail["paged"]) for r in records] == [
        ("engine.escalate", ref, ["ana"])
    ]
    desk.assert_pages([("ana", 0, 1, 0)])


def test_a_batch_is_one_audit_record_that_lists_every_case_and_whom_it_paged(
    desk: Desk,
) -> None:
    """Several cases in one batch make one engine record, not one each: cases done alike are
    grouped, each case's audit log finds its own part, and the chain verifies."""
    add_policy(desk.db, "solo", [(300, ["user:cat"])])
    alike = [desk.open() for _ in range(4)]
    other = desk.open(policy="solo")
    assert desk.run().pages == 5
    with desk.db.read() as session:
        records = session.exec(select(AuditRecord).where(AuditRecord.actor == "engine")).all()
        [record] = records
        said = {ref: audit.records_of_case(session, ref) for ref in [*alike, other]}
    assert (record.action, record.case_ref, record.detail["cases"]) == ("engine.escalate", None, 5)
    groups = sorted(
        (g["refs"], g["action"], g["paged"], g["step"]) for g in record.detail["groups"]
    )
    assert groups == [
        (alike, "engine.escalate", ["ana"], 1),
        ([other], "engine.escalate", ["cat"], 1),
    ]
    for ref, found in said.items():
        opened, paged = found
        assert (opened[0].action, opened[0].case_ref) == ("case.open", ref)
        assert paged[0].seq == record.seq
        assert paged[1:] == (
            "engine.escalate",
            {
                "cycle": 0,
                "step": 1,
                "round": 0,
                "paged": ["cat" if ref == other else "ana"],
                "missed": 0,
                "skipped": 0,
            },
        )
    assert_consistent(desk.db)


def test_case_ids_limits_a_run_to_those_cases(desk: Desk) -> None:
    first, second = desk.open(), desk.open()
    ids = [desk.case(first).id]
    assert desk.engine.run_due(case_ids=[i for i in ids if i is not None]).pages == 1
    assert last_heartbeat(desk.db) is None  # a targeted run is not a full cycle
    desk.assert_pages([("ana", 0, 1, 0)])
    assert desk.run().pages == 1
    assert desk.pages(second) == [("ana", 0, 1, 0)]


def test_the_engine_reports_the_cases_each_batch_changed(desk: Desk) -> None:
    changed: list[list[int]] = []
    engine = EscalationEngine(desk.db, desk.clock, batch_size=2, on_change=changed.append)
    refs = [desk.open() for _ in range(3)]
    engine.run_due()
    ids = [desk.case(ref).id for ref in refs]
    assert changed == [ids[:2], ids[2:]]
    with desk.db.write() as session:
        session.execute(update(Case).values(next_escalation_at=None))
    engine.audit_repair()
    assert sorted(changed[-1]) == ids
    desk.assert_pages([("ana", 0, 1, 0)] * 3)


def test_heartbeat_and_next_due(desk: Desk) -> None:
    assert desk.engine.next_due_at() is None
    desk.open()
    assert desk.engine.next_due_at() == T0
    desk.run()
    assert last_heartbeat(desk.db) == T0
    assert desk.engine.next_due_at() == T0 + timedelta(minutes=5)
    desk.advance(minutes=1)
    assert last_heartbeat(desk.db, "engine") == T0 + timedelta(minutes=1)
    assert last_heartbeat(desk.db, "someone-else") is None
    desk.assert_pages([("ana", 0, 1, 0)])


def test_an_engine_clears_the_heartbeats_of_engines_gone_a_week_once(desk: Desk) -> None:
    """Each process beats under a name of its own: without this, a row a start forever."""

    def beat_of(name: str, days_ago: float) -> EngineHeartbeat:
        at = T0 - timedelta(days=days_ago)
        return EngineHeartbeat(name=name, started_at=at, last_cycle_at=at, cycles=3)

    with desk.db.write() as session:
        session.add(beat_of("engine@gone/1/aaaaaa", 7.01))
        session.add(beat_of("engine@resting/2/bbbbbb", 6.99))
    desk.run()
    with desk.db.read() as session:
        names = set(session.exec(select(EngineHeartbeat.name)).all())
    assert names == {"engine@resting/2/bbbbbb", desk.engine.name}
    with desk.db.write() as session:  # gone since: cleared by the next engine to start
        session.add(beat_of("engine@gone-later/3/cccccc", 8))
    desk.advance(minutes=1)
    with desk.db.read() as session:
        assert session.get(EngineHeartbeat, "engine@gone-later/3/cccccc") is not None


# --- targets at page time ----------------------------------------------------------


def test_schedule_targets_are_resolved_when_the_step_pages(desk: Desk) -> None:
    add_rotation(desk.db, "day", ["ana", "ben"], handoff="08:00")
    add_schedule(desk.db, "primary", ["day"])
    add_policy(desk.db, "oncall", [(3600, ["schedule:primary"])], repeat=1)
    desk.clock.set(datetime(2026, 11, 26, 7, 30, tzinfo=UTC))  # before the 08:00 hand-off
    desk.open("oncall")
    desk.run()
    desk.advance(hours=1)  # 08:30: the next turn
    desk.assert_pages([("ana", 0, 1, 0), ("ben", 0, 1, 1)])


def test_rotation_targets_and_their_gaps(desk: Desk) -> None:
    add_rotation(desk.db, "office", ["cat"], hours="09:00-17:00")
    add_policy(desk.db, "office", [(600, ["rotation:office"]), (600, ["user:ben"])], repeat=1)
    desk.clock.set(datetime(2026, 11, 26, 8, 55, tzinfo=UTC))
    ref = desk.open("office")
    desk.run()  # 08:55: office hours have not begun: the gap passes at once to ben
    desk.advance(minutes=10)  # 09:05: cat is on
    assert len(desk.timeline(ref, "skipped")) == 1
    desk.assert_pages([("ben", 0, 2, 0), ("cat", 0, 1, 1)])


def test_role_supervisor_means_supervisors_on_duty(desk: Desk) -> None:
    add_responder(desk.db, "tom", "supervisor")
    add_rotation(desk.db, "leads", ["tom"], hours="09:00-17:00")
    add_schedule(desk.db, "leads", ["leads"])
    with desk.db.read() as session:
        on_duty = resolve_targets(session, ["role:supervisor"], T0 + timedelta(hours=1))
        off_hours = resolve_targets(session, ["role:supervisor"], T0 + timedelta(hours=10))
    assert [r.handle for r in on_duty] == ["tom"]
    assert [r.handle for r in off_hours] == ["sue", "tom"]  # nobody on duty: all active ones
    desk.assert_pages([])


def test_resolve_targets_keeps_order_drops_repeats_and_inactive(desk: Desk) -> None:
    add_rotation(desk.db, "solo", ["ben"])
    with desk.db.read() as session:
        people = resolve_targets(
            session, ["user:ben", "rotation:solo", "user:sam", "user:ana", "user:ben"], T0
        )
    assert [p.handle for p in people] == ["ben", "ana"]
    desk.assert_pages([])


def test_resolve_targets_unknown_names_page_nobody_and_bad_forms_raise(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    with desk.db.read() as session:
        assert resolve_targets(session, ["schedule:nope", "rotation:nope", "user:nope"], T0) == []
        with pytest.raises(ValueError, match=r"targets\[1\]: expected schedule:NAME"):
            resolve_targets(session, ["user:ana", "team:x"], T0)
        with pytest.raises(ValueError, match="role:admin"):
            resolve_targets(session, ["role:admin"], T0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no schedule named 'nope'" in w for w in warnings)
    desk.assert_pages([])


def test_loaders_build_schedules_with_overrides_and_holidays(desk: Desk) -> None:
    add_rotation(desk.db, "day", ["ana", "ben"])
    add_rotation(desk.db, "night", ["cat"], hours="20:00-08:00")
    add_schedule(
        desk.db,
        "primary",
        ["day", "night"],
        overrides=[("sue", T0 + timedelta(hours=1), T0 + timedelta(hours=2))],
        holiday_region="AU-NSW",
        holiday_cover="ben",
    )
    with desk.db.write() as session:
        session.add(Holiday(day=datetime(2026, 12, 25).date(), name="Christmas", region="au-nsw"))
    with desk.db.read() as session:
        spec = load_schedule(session, "primary")
        assert spec is not None
        assert [layer.name for layer in spec.layers] == ["day", "night"]
        assert [h.name for h in spec.holidays] == ["Christmas"]
        assert load_schedule(session, "missing") is None
        assert load_rotation(session, "missing") is None
        assert [s.name for s in load_all_schedules(session)] == ["primary"]
    moments = {
        "day": T0,  # turn 25 of day: ben
        "override": T0 + timedelta(hours=1, minutes=30),
        "night": T0 + timedelta(hours=12),
        "holiday": datetime(2026, 12, 25, 12, tzinfo=UTC),
    }
    who = {name: getattr(on_call(spec, at), "who", None) for name, at in moments.items()}
    assert who == {"day": "ben", "override": "sue", "night": "cat", "holiday": "ben"}
    desk.assert_pages([])


# --- failures stay with their case -------------------------------------------------


def test_an_unreadable_policy_escalates_with_the_fallback_policy(
    desk: Desk, allow_errors: None, caplog: pytest.LogCaptureFixture
) -> None:
    broken, fine = desk.open(), desk.open()
    with desk.db.write() as session:
        session.execute(
            update(Case)
            .where(col(Case.ref) == broken)
            .values(policy_snapshot={"steps": [{"delay_seconds": "soon"}]})
        )
    desk.run()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert broken in errors[0]
    assert "policy_snapshot.steps[0].delay_seconds" in errors[0]
    assert len(desk.timeline(broken, "fallback_policy")) == 1
    assert desk.pages(broken) == [("sue", 0, 1, 0)]
    desk.assert_pages([("sue", 0, 1, 0), ("ana", 0, 1, 0)])
    assert desk.pages(fine) == [("ana", 0, 1, 0)]


def test_a_broken_rotation_fails_its_step_not_the_cycle(
    desk: Desk, allow_errors: None, caplog: pytest.LogCaptureFixture
) -> None:
    add_rotation(desk.db, "broken", ["cat"])
    with desk.db.write() as session:
        session.execute(update(Rotation).values(timezone="Mars/Olympus"))
    add_policy(desk.db, "bad", [(300, ["rotation:broken"]), (300, ["user:ben"])])
    bad, good = desk.open("bad"), desk.open()
    desk.run()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert bad in errors[0]
    assert "Mars/Olympus" in errors[0]
    assert desk.pages(bad) == [("ben", 0, 2, 0)]
    assert desk.pages(good) == [("ana", 0, 1, 0)]
    desk.assert_pages([("ben", 0, 2, 0), ("ana", 0, 1, 0)])


def test_an_error_in_one_case_does_not_stop_the_others(
    desk: Desk,
    allow_errors: None,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The cursed case is of another severity: cases in one state share one plan.
    refs = [desk.open(severity=2 if index == 2 else 1) for index in range(5)]
    cursed = refs[2]
    real_plan = engine_module.plan_case

    def plan_or_fail(row: Any, now: datetime, resolver: Any) -> Any:
        if row.ref == cursed:
            raise RuntimeError("disk on fire")
        return real_plan(row, now, resolver)

    monkeypatch.setattr(engine_module, "plan_case", plan_or_fail)
    result = desk.run()
    assert (result.cases, result.failed) == (4, 1)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert cursed in errors[0].getMessage()
    assert errors[0].exc_info is not None
    assert desk.run().failed == 0  # left out of claims until its retry time
    assert desk.engine.next_due_at() == T0 + timedelta(minutes=1)
    monkeypatch.setattr(engine_module, "plan_case", real_plan)
    assert desk.advance(minutes=1).pages == 1
    assert desk.pages(cursed) == [("ana", 0, 1, 0)]
    assert len(desk.pages()) == 5


def test_cases_in_one_state_are_planned_once_and_each_writes_its_own_rows(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of cases in one state is planned once; each case still gets its own claims,
    pages and next step."""
    same = [desk.open() for _ in range(4)]
    other = desk.open(severity=3)
    planned: list[str] = []
    real_plan = engine_module.plan_case

    def counted(row: Any, now: datetime, resolver: Any) -> Any:
        planned.append(row.ref)
        return real_plan(row, now, resolver)

    monkeypatch.setattr(engine_module, "plan_case", counted)
    result = desk.advance(minutes=5)  # step 1 overtaken: ana paged late, ben now
    assert (result.cases, result.late, result.notices) == (5, 5, 1)
    assert sorted(planned) == sorted([same[0], other])
    anchor = same[0]  # the earliest case carries the supervisors' one notice
    assert desk.pages(anchor) == [("ben", 0, 2, 0), ("ana", 0, 1, 0), ("sue", 0, -2, 0)]
    for ref in [*same[1:], other]:
        assert desk.pages(ref) == [("ben", 0, 2, 0), ("ana", 0, 1, 0)]
        assert len(desk.timeline(ref, "catch_up")) == 1
        assert desk.timeline(ref, "delayed") == []
    assert len(desk.timeline(anchor, "delayed")) == 1
    with desk.db.read() as session:
        claims = session.exec(select(StepRun.case_id, StepRun.step)).all()
        cases = session.exec(select(Case).where(col(Case.ref).in_(same))).all()
    assert len(claims) == len(set(claims)) == 10
    assert {(case.escalation_step, case.next_escalation_at) for case in cases} == {
        (2, T0 + timedelta(minutes=15))
    }


def test_a_claim_that_already_exists_is_never_paged_again(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    refs = [desk.open() for _ in range(3)]
    desk.run()
    # Corrupt one case back to before its step 1 page: its claim row still exists.
    with desk.db.write() as session:
        session.execute(
            update(Case)
            .where(col(Case.ref) == refs[1])
            .values(escalation_step=0, next_escalation_at=T0)
        )
    result = desk.run()
    assert (result.cases, result.pages) == (1, 0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(refs[1] in w and "already claimed" in w for w in warnings)
    assert desk.case(refs[1]).next_escalation_at == T0 + timedelta(minutes=5)
    desk.assert_pages([("ana", 0, 1, 0)] * 3)


# --- policy snapshots -----------------------------------------------------------


def test_read_chain_names_the_bad_key() -> None:
    with pytest.raises(ValueError, match=r"policy_snapshot.steps: expected a list"):
        read_chain({"steps": None})
    with pytest.raises(ValueError, match=r"steps\[1\].targets: expected a list of strings"):
        read_chain({"steps": [{"delay_seconds": 1, "targets": []}, {"delay_seconds": 1}]})
    with pytest.raises(ValueError, match=r"policy_snapshot.repeat: expected a whole number"):
        read_chain({"steps": [], "repeat": -1})
    chain = read_chain({"steps": [{"delay_seconds": 0, "targets": ["user:a"]}], "repeat": 1})
    assert chain.steps[0].delay == timedelta(seconds=1)  # a step waits at least a second
    assert [chain.after(0, 0), chain.after(1, 0), chain.after(1, 1)] == [(1, 0), (1, 1), None]


# --- the runner and the headless loop -------------------------------------------


def test_runner_wakes_the_engine_and_rearms_at_the_next_due_time(sqlite_desk: Desk) -> None:
    desk = sqlite_desk
    cycles: list[CycleResult] = []
    cycled = threading.Event()

    def on_cycle(result: CycleResult) -> None:
        cycles.append(result)
        cycled.set()

    scheduler = BackgroundScheduler(timezone=UTC)
    runner = EngineRunner(desk.engine, scheduler, on_cycle=on_cycle)
    scheduler.start()
    try:
        runner.start()  # the first cycle runs at once
        assert cycled.wait(10)
        cycled.clear()
        desk.open()
        runner.wake()
        assert cycled.wait(10)
        assert sum(c.pages for c in cycles) == 1
        store = scheduler._lookup_jobstore(runner.jobstore)
        assert isinstance(store, MemoryJobStore)
        jobs = {job.id: job for job in scheduler.get_jobs(runner.jobstore)}
        wake = jobs[runner.job_ids["wake"]]
        wait = wake.next_run_time - datetime.now(UTC)
        assert timedelta(minutes=4) < wait <= timedelta(minutes=5)
        for job in jobs.values():
            assert (job.misfire_grace_time, job.coalesce, job.max_instances) == (None, True, 1)
        assert set(jobs) == set(runner.job_ids.values())
    finally:
        runner.stop()
        scheduler.shutdown()
    assert scheduler.get_jobs() == []
    desk.assert_pages([("ana", 0, 1, 0)])


class _ClockSetBack(datetime):
    """The host's wall clock, set back by `back` (NTP correcting a clock that ran fast)."""

    back = timedelta(0)

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return datetime.now(tz) - cls.back


def test_escalation_goes_on_when_the_hosts_clock_is_set_back(
    sqlite_desk: Desk, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The host's clock goes back 11 minutes: APScheduler, which times its jobs by the wall
    clock, then wakes nothing for 11 minutes. The runner's threads keep a monotonic timer
    of their own, so a case that comes due meanwhile (written by another process: nothing
    here wakes the runner) is paged within twice the sweep interval. The stall is said once,
    whatever else wakes the runner meanwhile (cases paged elsewhere, local changes), and its
    end once, when the scheduler's sweep comes again."""
    caplog.set_level(logging.INFO, logger="vigil.engine")
    desk = sqlite_desk
    cycles: list[CycleResult] = []
    scheduler = BackgroundScheduler(timezone=UTC)
    sweep = timedelta(seconds=0.2)
    runner = EngineRunner(desk.engine, scheduler, sweep_every=sweep, on_cycle=cycles.append)
    pause = threading.Event()
    scheduler.start()
    try:
        runner.start()
        wait_until(lambda: len(cycles) >= 1, "the first cycle", timedelta(seconds=10))
        with monkeypatch.context() as clock_set_back:
            clock_set_back.setattr(_ClockSetBack, "back", timedelta(minutes=11))
            clock_set_back.setattr(apscheduler_base, "datetime", _ClockSetBack)
            clock_set_back.setattr(runner_module, "datetime", _ClockSetBack)
            scheduler.wakeup()  # it looks at the clock now, and waits 11 minutes
            ref = desk.open()  # its step 1 due now (no escalation hook: the engine pages it)
            wait_until(lambda: bool(desk.pages(ref)), "the page", timedelta(seconds=5))
            for _ in range(8):  # other wake-ups during the stall
                runner.paged_elsewhere()
                runner.wake()
                pause.wait(sweep.total_seconds())
            said_in_the_stall = _stall_lines(caplog)
        scheduler.wakeup()  # the clock is right again: the sweep comes again
        wait_until(
            lambda: len(_stall_lines(caplog)) == 2, "the end of the stall", timedelta(seconds=5)
        )
    finally:
        runner.stop()
        scheduler.shutdown()
    name = desk.engine.name
    assert [level for level, _ in said_in_the_stall] == ["WARNING"]
    assert said_in_the_stall[0][1].startswith(
        f"escalation cycles of {name}: the scheduler woke nothing for 0.4 s"
    )
    assert _stall_lines(caplog)[1] == (
        "INFO",
        f"escalation cycles of {name}: the scheduler wakes them again",
    )


def _stall_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if "the scheduler woke nothing" in r.getMessage() or "wakes them again" in r.getMessage()
    ]


async def test_runner_under_an_asyncio_scheduler(sqlite_desk: Desk) -> None:
    desk = sqlite_desk
    loop = asyncio.get_running_loop()
    cycled = asyncio.Event()
    scheduler = AsyncIOScheduler(timezone=UTC)

    def on_cycle(_: CycleResult) -> None:
        loop.call_soon_threadsafe(cycled.set)

    runner = EngineRunner(desk.engine, scheduler, on_cycle=on_cycle)
    scheduler.start()  # as the console does in on_mount
    try:
        runner.start()
        await asyncio.wait_for(cycled.wait(), 10)
        cycled.clear()
        desk.open()
        runner.wake()
        await asyncio.wait_for(cycled.wait(), 10)
    finally:
        runner.stop()
        scheduler.shutdown(wait=False)
    desk.assert_pages([("ana", 0, 1, 0)])


def test_a_case_paged_as_it_opened_only_rearms_the_runner(
    sqlite_desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step 1 paged in the transaction that opened the case (as `vigil serve` does): the
    runner arms its wake-up for the next step without a cycle of its own, once for all the
    cases paged within a tenth of a second, so a storm of alerts costs no cycle (nor
    heartbeat write) each. Something due now still gets one."""
    desk = sqlite_desk
    cycles: list[CycleResult] = []
    scheduler = BackgroundScheduler(timezone=UTC)
    runner = EngineRunner(desk.engine, scheduler, on_cycle=cycles.append)
    wake_id = runner.job_ids["wake"]
    armings: list[datetime | None] = []
    next_due_at = desk.engine.next_due_at

    def counted() -> datetime | None:
        armings.append(next_due_at())
        return armings[-1]

    monkeypatch.setattr(desk.engine, "next_due_at", counted)

    def armed() -> timedelta | None:
        job = scheduler.get_job(wake_id, runner.jobstore)
        return None if job is None else job.next_run_time - datetime.now(UTC)

    scheduler.start()
    try:
        runner.start()
        wait_until(lambda: len(cycles) == 1, "the first cycle", timedelta(seconds=10))
        assert armed() is None  # nothing open, nothing to wake for
        paging = CaseService(desk.db, desk.clock, escalation=desk.engine.page_within)
        ref = paging.open_case(
            "ana", title="EDR", category="edr", severity=1, policy="standard"
        ).ref
        assert desk.pages(ref) == [("ana", 0, 1, 0)]
        before = len(armings)
        for _ in range(50):  # fifty alerts in a burst
            runner.paged_elsewhere()
        wait_until(lambda: armed() is not None, "the wake-up armed", timedelta(seconds=10))
        threading.Event().wait(3 * runner.PAGED_ELSEWHERE_GAP.total_seconds())
        assert len(armings) == before + 1
        wait = armed()
        assert wait is not None
        assert timedelta(minutes=4) < wait <= timedelta(minutes=5)
        unpaged = desk.open()  # no escalation hook: its step 1 is due now, not yet paged
        runner.paged_elsewhere()
        wait_until(lambda: desk.pages(unpaged) != [], "the due case paged", timedelta(seconds=10))
    finally:
        runner.stop()
        scheduler.shutdown()
    assert [cycle.pages for cycle in cycles] == [0, 1]
    with desk.db.read() as session:
        assert session.exec(select(EngineHeartbeat.cycles)).all() == [2]


def test_runner_reports_a_failing_cycle_once_then_once_a_minute(
    sqlite_desk: Desk,
    allow_errors: None,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cycle that keeps failing (here: not the database's fault, a bug) is said once with
    its traceback, then once a minute on the injected clock, then once when it ends."""
    desk = sqlite_desk
    runner = EngineRunner(desk.engine, BackgroundScheduler(timezone=UTC))

    def broken(**_: Any) -> CycleResult:
        raise KeyError("a bug")

    monkeypatch.setattr(desk.engine, "run_due", broken)
    for _ in range(30):  # 2 min 30 s of cycles every 5 s
        runner._cycle()
        desk.clock.advance(seconds=5)
    said = [r for r in caplog.records if "escalation cycles" in r.getMessage()]
    assert [r.levelname for r in said] == ["ERROR", "WARNING", "WARNING"]
    assert said[0].exc_info is not None  # a bug keeps its traceback, once
    assert said[1].getMessage() == (
        "escalation cycles of engine: still failing after 60 s (13 attempts): KeyError: 'a bug'"
    )
    monkeypatch.undo()
    runner._cycle()
    assert caplog.records[-1].getMessage() == (
        "escalation cycles of engine: working again after 3 min (30 failed attempts)"
    )
    desk.assert_pages([])


def test_run_headless_once_pages_what_is_due(sqlite_desk: Desk) -> None:
    desk = sqlite_desk
    desk.open()
    assert run_headless(desk.db, desk.clock, once=True) == 0
    assert last_heartbeat(desk.db) == T0
    desk.assert_pages([("ana", 0, 1, 0)])


def test_run_headless_runs_until_stopped(sqlite_desk: Desk) -> None:
    desk = sqlite_desk
    desk.open()
    stop = threading.Event()
    codes: list[int] = []
    thread = threading.Thread(
        target=lambda: codes.append(run_headless(desk.db, desk.clock, once=False, stop_event=stop))
    )
    thread.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while not desk.pages() and datetime.now(UTC) < deadline:
            stop.wait(0.02)  # waiting for the worker thread, not moving time
    finally:
        stop.set()
        thread.join(timeout=30)
    assert codes == [0]
    desk.assert_pages([("ana", 0, 1, 0)])


def test_run_headless_checkpoints_sqlites_log_off_the_commits(sqlite_desk: Desk) -> None:
    """As `vigil serve` does (`data.wal`): while it runs, no commit of its checkpoints."""
    db, stop = sqlite_desk.db, threading.Event()
    thread = threading.Thread(
        target=run_headless,
        args=(db, sqlite_desk.clock),
        kwargs={"once": False, "stop_event": stop},
    )
    thread.start()
    try:
        wait_until(
            lambda: wal_automatic_pages(db) == 0,
            "the engine's connections made without automatic checkpoints",
            timedelta(seconds=20),
        )
    finally:
        stop.set()
        thread.join(timeout=30)
    assert wal_automatic_pages(db) == AUTOMATIC_PAGES

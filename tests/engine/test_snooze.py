"""Snooze, reopen and merge against the engine, on SQLite and PostgreSQL, with an injected
clock: a snoozed case is out of the open queue and pages nobody until its snooze ends, then
the engine re-triggers it from step 1 and pages; a reopened case is back in hand; a merged
duplicate pages no more and keeps its history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from app.core.clock import FakeClock
from app.core.errors import BadInput, NotAllowed, NothingToDo
from app.engine.cycle import EscalationEngine
from app.services.cases import CaseService
from app.services.paging import timeline_with_pages
from data import audit
from data.db import Database
from data.models import AuditRecord, Case, Page, Responder
from data.queries import QueueFilter, cases, queue_count
from tests.factories import add_policy, add_responder

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture
def service(any_db: Database, clock: FakeClock) -> CaseService:
    add_responder(any_db, "ana")
    add_responder(any_db, "ben")
    add_responder(any_db, "sue", "supervisor")
    add_policy(any_db, "standard", [(300, ["user:ana"]), (600, ["user:ben"])], route=["default"])
    return CaseService(any_db, clock)


@pytest.fixture
def engine(any_db: Database, clock: FakeClock) -> EscalationEngine:
    return EscalationEngine(any_db, clock, name="engine")


def _case(db: Database, ref: str) -> Case:
    with db.read() as session:
        return session.exec(select(Case).where(Case.ref == ref)).one()


def _pages(db: Database) -> list[tuple[str, int, int, int]]:
    query = (
        select(Responder.handle, Page.cycle, Page.step, Page.round)
        .join(Responder, col(Responder.id) == col(Page.responder_id))
        .order_by(col(Page.id))
    )
    with db.read() as session:
        return [tuple(row) for row in session.exec(query).all()]  # type: ignore[misc]


def _open_queue(db: Database) -> int:
    with db.read() as session:
        return queue_count(session, QueueFilter())


def _timeline(db: Database, ref: str) -> list[str]:
    case = _case(db, ref)
    assert case.id is not None
    with db.read() as session:
        return [event.kind for event in timeline_with_pages(session, case.id)]


def test_a_snoozed_case_pages_at_the_snooze_end_and_not_a_second_before(
    service: CaseService, engine: EscalationEngine, clock: FakeClock
) -> None:
    db = service.db
    ref = service.open_case("sue", title="EDR", category="edr", severity=2).ref
    engine.run_due()
    assert _pages(db) == [("ana", 0, 1, 0)]
    until = T0 + timedelta(hours=2)
    service.snooze("ana", ref, until, "waiting for the agency to call back")
    case = _case(db, ref)
    assert (case.status, case.snoozed_until, case.next_escalation_at) == (
        "acknowledged",
        until,
        until,
    )
    assert _open_queue(db) == 0  # out of the open queue
    with db.read() as session:
        assert queue_count(session, QueueFilter(snoozed=True)) == 1
        assert [c.ref for c in cases(session, open_only=True)] == [ref]  # still open

    clock.advance(timedelta(hours=2) - timedelta(seconds=1))
    assert engine.run_due().pages == 0
    assert _open_queue(db) == 0
    clock.advance(timedelta(seconds=1))
    result = engine.run_due()
    assert result.pages == 1
    assert _pages(db) == [("ana", 0, 1, 0), ("ana", 1, 1, 0)]  # a new cycle from step 1
    case = _case(db, ref)
    assert (case.status, case.snoozed_until, case.snooze_reason) == ("triggered", None, "")
    assert _open_queue(db) == 1
    assert _timeline(db, ref)[-2:] == ["snooze_end", "paged"]
    with db.read() as session:
        record = session.exec(select(AuditRecord).where(AuditRecord.action == "case.snooze")).one()
        assert record.detail == {
            "until": until.isoformat(),
            "reason": "waiting for the agency to call back",
        }
        assert audit.verify(session).ok


def test_moving_a_snoozed_case_on_ends_its_snooze(
    service: CaseService, engine: EscalationEngine
) -> None:
    ref = service.open_case("sue", title="EDR", category="edr", severity=2).ref
    service.snooze("sue", ref, T0 + timedelta(hours=1), "on hold")
    service.escalate_now("sue", ref)
    case = _case(service.db, ref)
    assert (case.status, case.snoozed_until, case.queue_rank) == ("triggered", None, 0)
    assert engine.run_due().pages == 1


def test_snooze_refuses_a_time_past_or_too_far_and_a_missing_reason(
    service: CaseService,
) -> None:
    ref = service.open_case("sue", title="EDR", category="edr", severity=2).ref
    with pytest.raises(BadInput, match="until: expected a time after now"):
        service.snooze("ana", ref, T0, "now")
    with pytest.raises(BadInput, match="until: a snooze lasts at most 7 days"):
        service.snooze("ana", ref, T0 + timedelta(days=8), "later")
    with pytest.raises(BadInput, match="reason"):
        service.snooze("ana", ref, T0 + timedelta(hours=1), " ")
    with pytest.raises(BadInput, match="until: expected a time with an offset"):
        service.snooze("ana", ref, datetime(2026, 11, 26, 10, 0), "naive")
    service.acknowledge("ben", ref)
    with pytest.raises(NotAllowed, match="only its assignee or a supervisor may snooze it"):
        service.snooze("ana", ref, T0 + timedelta(hours=1), "not mine")
    assert _case(service.db, ref).snoozed_until is None


def test_reopen_within_the_window_is_audited_and_back_in_the_queue(
    service: CaseService, clock: FakeClock
) -> None:
    db = service.db
    ref = service.open_case("sue", title="EDR", category="edr", severity=2).ref
    service.acknowledge("ana", ref)
    service.resolve("ana", ref)
    with pytest.raises(NothingToDo):
        service.reopen(
            "ana", service.open_case("sue", title="x", category="edr", severity=3).ref, "x"
        )
    clock.advance(timedelta(hours=23))
    case = service.reopen("ana", ref, "the agency sent a second request")
    assert (case.status, case.stage, case.resolved_at) == ("acknowledged", "investigating", None)
    assert _open_queue(db) == 2
    assert _timeline(db, ref)[-1] == "reopened"
    with db.read() as session:
        record = session.exec(select(AuditRecord).where(AuditRecord.action == "case.reopen")).one()
        assert (record.actor, record.case_ref) == ("ana", ref)
        assert record.detail == {"reason": "the agency sent a second request"}


def test_reopen_is_refused_after_the_window(service: CaseService, clock: FakeClock) -> None:
    ref = service.open_case("sue", title="EDR", category="edr", severity=2).ref
    service.resolve("sue", ref)
    clock.advance(timedelta(hours=24, seconds=1))
    with pytest.raises(NotAllowed, match="resolved more than 24 h ago"):
        service.reopen("sue", ref, "too late")
    assert _case(service.db, ref).status == "resolved"


# --- merging duplicates ---------------------------------------------------------------


def test_merge_closes_the_duplicate_keeps_its_history_and_tells_both_timelines(
    service: CaseService, engine: EscalationEngine, clock: FakeClock
) -> None:
    db = service.db
    keep = service.open_case("sue", title="EDR: Metro PD", category="edr", severity=1).ref
    dup = service.open_case("sue", title="EDR: Metro PD again", category="edr", severity=1).ref
    engine.run_due()
    service.add_note("ana", dup, "same officer, same request")
    clock.advance(timedelta(minutes=1))
    target = service.merge("ana", dup, keep.lower())
    assert target.ref == keep
    merged = _case(db, dup)
    assert (merged.status, merged.stage, merged.next_escalation_at) == ("resolved", "closed", None)
    assert _case(db, keep).status == "triggered"
    assert _timeline(db, dup)[-1] == "merged"
    assert _timeline(db, keep)[-1] == "merged_in"
    with db.read() as session:
        from data.queries import notes_of

        assert [n.body for n in notes_of(session, merged.id or 0)] == ["same officer, same request"]
        actions = session.exec(
            select(AuditRecord.action, AuditRecord.case_ref).where(
                col(AuditRecord.action).startswith("case.merge")
            )
        ).all()
        assert sorted(actions) == [("case.merge", dup), ("case.merge_in", keep)]
    assert [page for page in _pages(db) if page[0] == "ana"] == [("ana", 0, 1, 0)] * 2
    clock.advance(timedelta(minutes=5))
    engine.run_due()  # the duplicate pages no more; the case kept goes on
    assert len(_pages(db)) == 3


def test_merge_refuses_itself_a_resolved_target_and_a_missing_case(
    service: CaseService,
) -> None:
    a = service.open_case("sue", title="A", category="edr", severity=2).ref
    b = service.open_case("sue", title="B", category="edr", severity=2).ref
    with pytest.raises(BadInput, match="into: a case cannot be merged into itself"):
        service.merge("ana", a, a)
    service.resolve("sue", b)
    with pytest.raises(NotAllowed, match="reopen it first"):
        service.merge("ana", a, b)
    with pytest.raises(NothingToDo, match="already resolved"):
        service.merge("ana", b, a)
    from app.core.errors import NotFound

    with pytest.raises(NotFound):
        service.merge("ana", a, "ESC-9999")
    assert _case(service.db, a).status == "triggered"

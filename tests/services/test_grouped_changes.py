"""Changes made together (`UnitOfWork.together`): one transaction and one commit for many
changes, each in a savepoint of its own; the group's openings paged together, in one bulk
write, before any other kind of change and before the commit. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text
from sqlmodel import col, select

from app.core.clock import FakeClock
from app.core.errors import BadInput
from app.engine.runner import EscalationEngine
from app.services.cases import CaseService
from data import audit
from data.db import Database
from data.domain import Status, TimelineKind
from data.models import AuditRecord, Case, Page, TimelineEvent
from tests.factories import add_policy, add_responder


@pytest.fixture
def told() -> list[int]:
    return []


@pytest.fixture
def service(any_db: Database, clock: FakeClock, told: list[int]) -> CaseService:
    add_responder(any_db, "ana")
    add_responder(any_db, "sue", "supervisor")
    add_policy(any_db, "desk", [(300, ["user:ana"]), (600, ["user:sue"])], route=["default"])
    engine = EscalationEngine(any_db, clock, name="group-test")
    return CaseService(any_db, clock, on_change=told.append, escalation=engine.page_within)


def stored(db: Database) -> tuple[list[str], list[int], list[str]]:
    """(case refs, the case of each page, audit actions) as stored; the chain verified."""
    with db.read() as session:
        refs = list(session.exec(select(Case.ref).order_by(col(Case.id))).all())
        pages = list(session.exec(select(Page.case_id).order_by(col(Page.id))).all())
        assert audit.verify(session).ok
        records = session.exec(select(AuditRecord.action).order_by(col(AuditRecord.seq))).all()
    return refs, pages, list(records)


def test_a_refused_change_undoes_only_itself_and_the_rest_commit_once_paged(
    any_db: Database, service: CaseService, told: list[int]
) -> None:
    before = stored(any_db)[2]
    with service.work.together("sue") as group:
        first = service.open_case("sue", title="EDR from Metro PD", category="edr", severity=1)
        with pytest.raises(BadInput, match="policy"):
            service.open_case(
                "sue", title="Unknown policy", category="other", severity=3, policy="nowhere"
            )
        with pytest.raises(RuntimeError, match="half-written"):
            write_then_fail(service, first.ref)
        second = service.open_case(
            "sue", title="Threat to life", category="threat_to_life", severity=1
        )
        assert told == []  # nobody is told before the commit
        assert stored(any_db)[0] == []  # nor can anyone else see it yet
    refs, pages, records = stored(any_db)
    assert refs == [first.ref, second.ref]
    assert pages == [first.case_id, second.case_id]  # step 1 of each, before the one commit
    # each opening with its first page; the undone change left no record
    assert records == [*before, "case.open", "engine.escalate", "case.open", "engine.escalate"]
    assert told == [first.case_id, second.case_id]
    assert [tx.paged for tx in group.changes] == [
        {first.case_id: ["ana"]},
        {second.case_id: ["ana"]},
    ]
    with any_db.read() as session:
        undone = session.exec(
            select(TimelineEvent).where(TimelineEvent.text == "written, then undone")
        ).all()
    assert undone == []


def test_a_groups_openings_are_paged_at_once_before_a_change_that_may_act_on_them(
    any_db: Database, service: CaseService
) -> None:
    """A storm's step-1 pages are written together, as the engine writes a burst's; but an
    acknowledgement in the group must find the cases opened before it paged, or the pages
    written after it would find the case acknowledged and page nobody."""
    with service.work.together("sue") as group:
        first = service.open_case("sue", title="Disk full", category="other", severity=2)
        second = service.open_case("sue", title="Disk slow", category="other", severity=2)
        assert (first.paged, second.paged) == ((), ())  # not yet: with the group
        service.acknowledge("sue", first.ref)
        third = service.open_case("sue", title="Disk gone", category="other", severity=2)
    refs, pages, records = stored(any_db)
    assert refs == [first.ref, second.ref, third.ref]
    assert pages == [first.case_id, second.case_id, third.case_id]
    # one record for the first two cases' pages, written together
    opened_and_paged = ["case.open", "case.open", "engine.escalate"]
    assert records == [*opened_and_paged, "case.ack", "case.open", "engine.escalate"]
    assert [tx.paged for tx in group.changes] == [
        {first.case_id: ["ana"]},
        {second.case_id: ["ana"]},
        {},
        {third.case_id: ["ana"]},
    ]
    with any_db.read() as session:
        acknowledged = session.get(Case, first.case_id)
        assert acknowledged is not None
        assert acknowledged.status == Status.ACKNOWLEDGED.value
        assert acknowledged.escalation_step == 1


def write_then_fail(service: CaseService, ref: str) -> None:
    """A change that writes a note and its audit record, then fails."""
    with service.work("sue") as tx:
        case = tx.case(ref)
        tx.journal(case, TimelineKind.NOTE, "written, then undone")
        tx.finish(case, "case.note", {})
        raise RuntimeError("half-written")


def test_an_event_sees_the_cases_opened_before_it_in_its_group(
    any_db: Database, service: CaseService
) -> None:
    with service.work.together("sue"):
        opened = service.open_case(
            "sue", title="Disk full", category="other", severity=2, dedup_key="db-1/disk"
        )
        again = service.open_case(
            "sue", title="Disk full", category="other", severity=2, dedup_key="db-1/disk"
        )
        assert service.open_ref_for_key("db-1/disk") == opened.ref
        service.resolve("sue", opened.ref, sender="test")
    assert not again.created
    with any_db.read() as session:
        (case,) = session.exec(select(Case)).all()
    assert case.status == Status.RESOLVED.value


def open_then_fail(service: CaseService) -> None:
    with service.work.together("sue"):
        service.open_case("sue", title="EDR from Metro PD", category="edr", severity=1)
        raise RuntimeError("gone")


def test_a_group_that_fails_stores_nothing(any_db: Database, service: CaseService) -> None:
    with pytest.raises(RuntimeError, match="gone"):
        open_then_fail(service)
    assert stored(any_db) == ([], [], [])
    # the thread is free to work alone again
    assert service.open_case("sue", title="Again", category="other", severity=3).created


def test_groups_do_not_nest_and_hold_one_actor(service: CaseService) -> None:
    with service.work.together("sue"):
        with pytest.raises(RuntimeError, match="already grouped"), service.work.together("sue"):
            pass
        with pytest.raises(RuntimeError, match="group's actor"):
            service.open_case("ana", title="Not hers", category="other", severity=3)


def test_a_group_routes_each_way_once_and_sees_a_policy_changed_since(
    any_db: Database, service: CaseService
) -> None:
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(statement)

    event.listen(any_db.engine, "before_cursor_execute", seen)
    with service.work.together("sue"):
        for number in range(3):
            service.open_case("sue", title=f"Alert {number}", category="other", severity=2)
    event.remove(any_db.engine, "before_cursor_execute", seen)
    assert len([s for s in statements if "JOIN routing" in s]) == 1  # policy, steps, route
    with any_db.write() as session:  # the desk changes the policy's first step
        session.execute(text("UPDATE policy_step SET delay_seconds = 60"))
    service.open_case("sue", title="Later", category="other", severity=2)
    with any_db.read() as session:
        snapshots = [case.policy_snapshot for case in session.exec(select(Case)).all()]
    assert [s["steps"][0]["delay_seconds"] for s in snapshots] == [300, 300, 300, 60]


def test_a_listener_that_fails_neither_undoes_nor_repeats_a_committed_group(
    any_db: Database, clock: FakeClock
) -> None:
    add_responder(any_db, "sue", "supervisor")

    def failing(_case_id: int) -> None:
        raise RuntimeError("the console went away")

    service = CaseService(any_db, clock, on_change=failing)
    with service.work.together("sue"):
        service.open_case("sue", title="EDR from Metro PD", category="edr", severity=1)
    assert stored(any_db)[0] == ["ESC-0001"]

"""The case service: each action's rules, allowed and refused, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event
from sqlmodel import func, select

from app.core.clock import FakeClock
from app.core.errors import BadInput, NotAllowed, NotFound, NothingToDo
from app.engine.runner import EscalationEngine
from app.services.cases import CaseService
from data import audit, queries
from data.db import Database
from data.intake import CaseLink
from data.models import AuditRecord, Case, CaseChange, CaseNote, Page, TimelineEvent
from data.sealing import is_sealed
from tests.factories import add_policy, add_responder


@pytest.fixture
def desk(any_db: Database, clock: FakeClock) -> CaseService:
    add_responder(any_db, "ana")
    add_responder(any_db, "ben")
    add_responder(any_db, "sam", "supervisor")
    add_responder(any_db, "old", active=False)
    add_policy(any_db, "emergency", [(300, ["user:ana"]), (600, ["role:supervisor"])], repeat=1)
    add_policy(any_db, "standard", [(1800, ["user:ben"])], route=["default"])
    return CaseService(any_db, clock)


def _audit_actions(db: Database) -> list[str]:
    with db.read() as session:
        return [r.action for r in session.exec(select(AuditRecord).order_by(AuditRecord.seq))]


def _case(db: Database, ref: str) -> Case:
    with db.read() as session:
        case = session.exec(select(Case).where(Case.ref == ref)).one()
        return case


def test_open_assigns_ref_routes_policy_and_audits(desk: CaseService) -> None:
    first = desk.open_case("ana", title="EDR: Metro Police", category="edr", severity="sev1")
    second = desk.open_case("ana", title="Routine", category="other", severity="4")
    assert (first.ref, second.ref) == ("ESC-0001", "ESC-0002")
    case = _case(desk.db, first.ref)
    assert case.status == "triggered"
    assert case.next_escalation_at == desk.clock.now()
    assert case.policy_snapshot["name"] == "standard"  # routed by default
    assert _audit_actions(desk.db) == ["case.open", "case.open"]


def test_a_new_case_is_inserted_whole_and_updated_once_by_its_first_page(
    desk: CaseService, any_db: Database, clock: FakeClock
) -> None:
    """Its id is known before its INSERT, so its details are sealed in it and its version
    set; the first page is its one UPDATE, and the row is not read back for an opener who
    is told only its reference (each is a statement per alert in a storm)."""
    paging = CaseService(any_db, clock, escalation=EscalationEngine(any_db, clock).page_within)
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(any_db.engine, "before_cursor_execute", seen)
    try:
        opened = paging.open_case(
            "ana",
            title="Threat to life",
            category="threat_to_life",
            severity=1,
            details="the caller's address",
            policy="emergency",
            links=[("https://grafana.example/d/1", "dashboard")],
        )
    finally:
        event.remove(any_db.engine, "before_cursor_execute", seen)
    inserted = [i for i, s in enumerate(statements) if s.startswith('INSERT INTO "case"')]
    assert len(inserted) == 1
    # The ORM's UPDATEs (details sealed after the INSERT, the version bumped) are gone; the
    # page's own is sent by the engine's bulk writer (past SQLAlchemy, on PostgreSQL).
    updates = [s for s in statements if s.startswith('UPDATE "case"')]
    assert all("escalation_step" in s for s in updates), updates
    after_insert = statements[inserted[0] :]
    assert not [s for s in after_insert if s.startswith('SELECT "case".id')]  # no read-back
    assert len([s for s in statements if "next_escalation_at <=" in s]) == 1  # due, locked
    assert opened.paged == ("ana",)
    with any_db.read() as session:
        case = session.get(Case, opened.case_id)
        assert case is not None
        assert (case.version, case.escalation_step) == (2, 1)
        changes = session.exec(select(CaseChange).where(CaseChange.case_id == case.id)).all()
        assert len(changes) == 1  # the consoles are told once, the page included
        assert queries.case_details(session, case) == "the caller's address"
        links = session.exec(select(CaseLink.href).where(CaseLink.case_id == case.id)).all()
    assert links == ["https://grafana.example/d/1"]
    with any_db.engine.connect() as connection:
        stored = connection.execute(
            select(Case.details).where(Case.id == opened.case_id)
        ).scalar_one()
    assert is_sealed(stored)


def test_explicit_policy_is_frozen_onto_the_case(desk: CaseService) -> None:
    result = desk.open_case("ana", title="T", category="edr", severity=1, policy="emergency")
    case = _case(desk.db, result.ref)
    assert [s["targets"] for s in case.policy_snapshot["steps"]] == [
        ["user:ana"],
        ["role:supervisor"],
    ]


def test_csea_is_always_sensitive(desk: CaseService) -> None:
    result = desk.open_case("ana", title="Report", category="csea", severity=1)
    assert _case(desk.db, result.ref).sensitive is True


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("title", {"title": "  "}),
        ("title", {"title": "x" * 201}),
        ("title", {"title": "two\nlines"}),
        ("category", {"category": "spam"}),
        ("severity", {"severity": "sev5"}),
        ("severity", {"severity": "urgent"}),
        ("policy", {"policy": "nope"}),
        ("dedup_key", {"dedup_key": "k" * 256}),
    ],
)
def test_open_rejects_bad_input_naming_the_field(
    desk: CaseService, field: str, kwargs: dict[str, object]
) -> None:
    base: dict[str, object] = {"title": "T", "category": "edr", "severity": "sev1"}
    base.update(kwargs)
    with pytest.raises(BadInput) as caught:
        desk.open_case("ana", **base)  # type: ignore[arg-type]
    assert caught.value.field == field
    with desk.db.read() as session:
        assert session.exec(select(func.count()).select_from(Case)).one() == 0
        assert session.exec(select(func.count()).select_from(AuditRecord)).one() == 0


def test_unknown_or_inactive_actor_is_refused(desk: CaseService) -> None:
    with pytest.raises(NotAllowed, match="not an active responder"):
        desk.open_case("mallory", title="T", category="edr", severity=1)
    with pytest.raises(NotAllowed):
        desk.open_case("old", title="T", category="edr", severity=1)


def test_dedup_key_returns_the_open_case(desk: CaseService) -> None:
    first = desk.open_case("ana", title="A", category="edr", severity=1, dedup_key="pd-1")
    again = desk.open_case("ben", title="A again", category="edr", severity=1, dedup_key="pd-1")
    assert again.ref == first.ref
    assert again.created is False
    desk.resolve("ana", first.ref)
    fresh = desk.open_case("ana", title="A", category="edr", severity=1, dedup_key="pd-1")
    assert fresh.created is True
    assert fresh.ref != first.ref
    assert _audit_actions(desk.db).count("case.duplicate") == 1


def test_acknowledge_then_again_is_nothing_to_do(desk: CaseService, clock: FakeClock) -> None:
    ref = desk.open_case("ana", title="T", category="edr", severity=1).ref
    clock.advance(minutes=2)
    case = desk.acknowledge("ben", ref)
    assert case.status == "acknowledged"
    assert case.acknowledged_at == clock.now()
    stored = _case(desk.db, ref)
    assert stored.assignee_id is not None
    assert stored.next_escalation_at is None
    with pytest.raises(NothingToDo):
        desk.acknowledge("ana", ref)
    with pytest.raises(NotFound):
        desk.acknowledge("ana", "ESC-9999")


def test_ack_timeout_sets_the_next_due_time(any_db: Database, clock: FakeClock) -> None:
    add_responder(any_db, "ana")
    add_policy(any_db, "p", [(300, ["user:ana"])], route=["default"], ack_timeout_seconds=3600)
    service = CaseService(any_db, clock)
    ref = service.open_case("ana", title="T", category="other", severity=3).ref
    service.acknowledge("ana", ref)
    assert _case(any_db, ref).next_escalation_at == clock.now() + timedelta(hours=1)


def test_resolve_rules(desk: CaseService) -> None:
    ref = desk.open_case("ana", title="T", category="edr", severity=1).ref
    desk.acknowledge("ana", ref)
    with pytest.raises(NotAllowed, match="assigned to ana"):
        desk.resolve("ben", ref)
    case = desk.resolve("sam", ref, note="Disclosed under emergency exception")
    assert case.status == "resolved"
    assert case.stage == "closed"
    with pytest.raises(NothingToDo):
        desk.resolve("ana", ref)
    with desk.db.read() as session:
        assert session.exec(select(CaseNote)).one().body.startswith("Disclosed")


def test_reassign_rules_and_page(desk: CaseService) -> None:
    ref = desk.open_case("ana", title="T", category="edr", severity=1).ref
    desk.acknowledge("ana", ref)
    with pytest.raises(NotAllowed, match="only supervisors"):
        desk.reassign("ben", ref, "ben")
    with pytest.raises(NotFound):
        desk.reassign("sam", ref, "nobody")
    with pytest.raises(NotFound):
        desk.reassign("sam", ref, "old")
    case = desk.reassign("sam", ref, "ben")
    assert case.status == "triggered"
    assert case.escalation_cycle == 1
    with desk.db.read() as session:
        pages = session.exec(select(Page)).all()
    assert [(p.reason, p.step, p.cycle) for p in pages] == [("reassign", 0, 1)]
    # A specialist may hand over a case that is their own.
    desk.acknowledge("ben", ref)
    desk.reassign("ben", ref, "ana")


def test_note_and_stage(desk: CaseService) -> None:
    ref = desk.open_case("ana", title="T", category="edr", severity=2).ref
    with pytest.raises(BadInput, match="text"):
        desk.add_note("ana", ref, "   ")
    desk.add_note("ben", ref, "Called the agency back on the directory number")
    with pytest.raises(BadInput, match="stage"):
        desk.set_stage("ana", ref, "done")
    desk.acknowledge("ana", ref)
    desk.set_stage("ana", ref, "investigating")
    with pytest.raises(NothingToDo):
        desk.set_stage("ana", ref, "investigating")
    with pytest.raises(NotAllowed):
        desk.set_stage("ben", ref, "contained")
    assert _case(desk.db, ref).first_response_at is not None


def test_reveal_is_audited_only_for_sensitive_cases(desk: CaseService) -> None:
    secret = desk.open_case(
        "ana", title="Report", category="csea", severity=1, details="hash ref 9f2c"
    ).ref
    plain = desk.open_case("ana", title="Plain", category="other", severity=4, details="d").ref
    assert desk.reveal("ben", secret) == "hash ref 9f2c"
    assert desk.reveal("ben", plain) == "d"
    actions = _audit_actions(desk.db)
    assert actions.count("case.reveal") == 1
    with desk.db.read() as session:
        kinds = [e.kind for e in session.exec(select(TimelineEvent))]
    assert kinds.count("reveal") == 1


def test_escalate_now_retriggers_an_acknowledged_case(desk: CaseService) -> None:
    ref = desk.open_case("ana", title="T", category="edr", severity=1).ref
    desk.acknowledge("ana", ref)
    case = desk.escalate_now("ben", ref)
    assert case.status == "triggered"
    assert case.next_escalation_at == desk.clock.now()


def test_every_change_feeds_the_change_log_and_the_chain(desk: CaseService) -> None:
    ref = desk.open_case("ana", title="T", category="edr", severity=1).ref
    desk.add_note("ana", ref, "n")
    desk.acknowledge("ana", ref)
    desk.resolve("ana", ref)
    with desk.db.read() as session:
        changes = session.exec(select(func.count()).select_from(CaseChange)).one()
        report = audit.verify(session)
    assert changes == 4
    assert report.ok
    assert report.checked == 4
    assert _case(desk.db, ref).version == 4


def test_a_failed_action_leaves_nothing_half_written(desk: CaseService) -> None:
    ref = desk.open_case("ana", title="T", category="edr", severity=1).ref
    before = _audit_actions(desk.db)
    with pytest.raises(NotAllowed):
        desk.set_stage("nobody", ref, "investigating")
    with pytest.raises(BadInput):
        desk.add_note("ana", ref, "x" * 20_001)
    assert _audit_actions(desk.db) == before

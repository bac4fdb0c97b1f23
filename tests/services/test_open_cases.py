"""Cases opened together (`CaseService.open_cases`): a storm's new alerts written a table at
a time, stored exactly as `open_case` stores each one. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import undefer
from sqlmodel import col, select

from app.core.clock import FakeClock
from app.core.errors import BadInput
from app.engine.runner import EscalationEngine
from app.services.cases import CaseService, NewCase, OpenResult
from data import audit
from data.db import Database
from data.intake import CaseLink
from data.models import AuditRecord, Case, CaseChange, Page, TimelineEvent
from data.queries import OWES_REPORT_RANK
from data.sealing import is_sealed
from tests.consistency import assert_consistent
from tests.factories import add_policy, add_responder


@pytest.fixture
def desk(any_db: Database, clock: FakeClock) -> CaseService:
    add_responder(any_db, "ana")
    add_responder(any_db, "ben")
    add_responder(any_db, "sam", "supervisor")
    add_policy(any_db, "emergency", [(300, ["user:ana"]), (600, ["role:supervisor"])], repeat=1)
    add_policy(any_db, "standard", [(1800, ["user:ben"])], route=["default"])
    engine = EscalationEngine(any_db, clock, name="open-cases-test")
    return CaseService(any_db, clock, escalation=engine.page_within)


def storm(run: str) -> list[NewCase]:
    """Alerts of every kind a sender sends: sensitive or not, with details and links, routed
    by category or by an explicit policy, with and without a dedup key."""
    return [
        NewCase("Threat to life", "threat_to_life", 1, "the caller's address", "emergency"),
        NewCase("CSEA report", "csea", 1, "hash 4f2a", dedup_key=f"{run}-csea", source="tipline"),
        NewCase(
            "Disk full on db-1",
            "other",
            "sev3",
            dedup_key=f"{run}-disk",
            source="prometheus:prod",
            links=[("https://grafana.example/d/1", "dashboard"), ("https://runbook.example", "")],
        ),
        NewCase("EDR from Metro PD", "edr", 2, sensitive=True),
    ]


def stored_case(db: Database, case_id: int) -> dict[str, Any]:
    """Everything stored about one case but what names it (id, ref, dedup key)."""
    with db.read() as session:
        case = session.exec(
            select(Case).options(undefer(Case.details)).where(Case.id == case_id)
        ).one()
        fields = case.model_dump(exclude={"id", "ref", "dedup_key"})
        timeline = session.exec(
            select(TimelineEvent.kind, TimelineEvent.actor, TimelineEvent.text, TimelineEvent.at)
            .where(TimelineEvent.case_id == case_id)
            .order_by(col(TimelineEvent.id))
        ).all()
        links = session.exec(
            select(CaseLink.position, CaseLink.href, CaseLink.text)
            .where(CaseLink.case_id == case_id)
            .order_by(col(CaseLink.position))
        ).all()
        pages = session.exec(
            select(Page.responder_id, Page.step, Page.round, Page.sent_at).where(
                Page.case_id == case_id
            )
        ).all()
        changes = session.exec(select(CaseChange.at).where(CaseChange.case_id == case_id)).all()
        records = session.exec(
            select(AuditRecord.action, AuditRecord.actor, AuditRecord.detail).where(
                AuditRecord.case_ref == case.ref, AuditRecord.action == "case.open"
            )
        ).all()
    return {
        "case": fields,
        "timeline": list(timeline),
        "links": list(links),
        "pages": sorted(pages),
        "changes": list(changes),
        "records": list(records),
    }


@contextmanager
def statements_sent(db: Database) -> Iterator[list[str]]:
    """The SQL statements SQLAlchemy sends meanwhile, spaces folded."""
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)


def test_cases_opened_together_are_stored_as_each_alone(
    any_db: Database, desk: CaseService
) -> None:
    alone = [desk.open_case("sam", **vars(wanted)) for wanted in storm("alone")]
    if any_db.is_postgres:  # ids the sequence gave to openings undone: numbers and ids part
        with any_db.write() as session:
            session.execute(text("""SELECT nextval(pg_get_serial_sequence('"case"', 'id'))"""))
    with desk.work.together("sam") as group:
        together = desk.open_cases("sam", storm("together"))
    assert all(isinstance(result, OpenResult) and result.created for result in together)
    opened = [result for result in together if isinstance(result, OpenResult)]
    for one, other in zip(alone, opened, strict=True):
        assert stored_case(any_db, other.case_id) == stored_case(any_db, one.case_id)
    # as a case was stored before the two ways shared their writer (the ORM's, one by one)
    first = stored_case(any_db, opened[0].case_id)["case"]
    assert (first["status"], first["queue_rank"], first["stage"]) == ("triggered", 0, "triage")
    assert (first["version"], first["escalation_step"], first["escalation_round"]) == (2, 1, 0)
    assert (first["details"], first["sensitive"]) == ("the caller's address", False)
    assert stored_case(any_db, opened[1].case_id)["case"]["sensitive"]  # CSEA always is
    # numbered in order after the others, each paged: the group's change says who
    assert [result.ref for result in opened] == ["ESC-0005", "ESC-0006", "ESC-0007", "ESC-0008"]
    assert group.changes[0].paged == {
        result.case_id: [*one.paged] for one, result in zip(alone, opened, strict=True)
    }
    with any_db.read() as session:
        assert audit.verify(session).ok
        sealed = session.exec(select(Case.details).where(Case.id == opened[0].case_id)).one()
    assert is_sealed(sealed)  # the bulk INSERT sealed it, bound to the case's own id
    assert_consistent(any_db)


def test_each_alert_of_a_storm_is_answered_in_order_and_refused_alone(
    any_db: Database, desk: CaseService
) -> None:
    before = desk.open_case("sam", title="Disk full", category="other", severity=3, dedup_key="k")
    results = desk.open_cases(
        "sam",
        [
            NewCase("First", "other", 3, dedup_key="a"),
            NewCase("No such category", "weather", 3),
            NewCase("No such policy", "other", 3, policy="nowhere"),
            NewCase("First again", "other", 3, dedup_key="a"),  # joins the one just opened
            NewCase("Disk full again", "other", 3, dedup_key="k"),  # joins the open case
            NewCase("Last", "other", 3, links=[("ftp://files.example", "")]),
            NewCase("Really last", "edr", 1),
        ],
    )
    first, category, policy, again, joined, link, last = results
    assert isinstance(first, OpenResult)
    assert (first.ref, first.created) == ("ESC-0002", True)
    assert isinstance(category, BadInput)
    assert category.field == "category"
    assert isinstance(policy, BadInput)
    assert policy.field == "policy"
    assert again == OpenResult(first.ref, first.case_id, created=False)
    assert joined == OpenResult(before.ref, before.case_id, created=False)
    assert isinstance(link, BadInput)
    assert link.field == "links[0].href"
    assert isinstance(last, OpenResult)
    assert (last.ref, last.created, last.paged) == ("ESC-0003", True, ("ben",))
    with any_db.read() as session:
        titles = session.exec(select(Case.title).order_by(col(Case.id))).all()
        duplicates = session.exec(
            select(TimelineEvent.text).where(TimelineEvent.kind == "duplicate")
        ).all()
    assert titles == ["Disk full", "First", "Really last"]
    assert len(duplicates) == 2
    assert_consistent(any_db)


def test_a_storm_is_one_insert_a_table(any_db: Database, desk: CaseService) -> None:
    """What makes it fast: the rows of a hundred cases are one statement a table, not a
    statement (and an ORM object) each."""
    wanted = [NewCase(f"Alert {n}", "other", 2, dedup_key=f"alert-{n}") for n in range(100)]
    with statements_sent(any_db) as statements, desk.work.together("sam"):
        results = desk.open_cases("sam", wanted)
    assert len({r.ref for r in results if isinstance(r, OpenResult)}) == 100
    inserts = [s for s in statements if s.startswith('INSERT INTO "case" ')]
    assert len(inserts) == 1
    # The opening's and its first page's (the engine's bulk writer, past SQLAlchemy's
    # events on PostgreSQL): not a hundred of anything.
    assert len(statements) < 30, statements
    assert_consistent(any_db)


def test_a_group_sent_again_joins_its_open_cases_a_table_at_a_time(
    any_db: Database, desk: CaseService
) -> None:
    """Alertmanager sends every alert of a group still firing again with each notice of
    the group: each joined its case in a change of its own (5,000 alerts of one fingerprint
    held the writer for 22 s). Now one statement a table, and each case is told once how
    many events joined it."""
    wanted = [NewCase(f"Alert {n}", "other", 2, dedup_key=f"alert-{n}") for n in range(100)]
    with desk.work.together("sam"):
        first = desk.open_cases("sam", wanted)
    refs = {
        w.dedup_key: r.ref for w, r in zip(wanted, first, strict=True) if isinstance(r, OpenResult)
    }
    again = [*wanted, wanted[0], wanted[0], NewCase("Alert 0", "other", 2, "x", None, "alert-0")]
    with statements_sent(any_db) as statements, desk.work.together("sam"):
        results = desk.open_cases("sam", again)
    assert all(isinstance(r, OpenResult) and not r.created for r in results)
    assert [r.ref for r in results if isinstance(r, OpenResult)] == [
        refs[w.dedup_key] for w in again
    ]
    assert len(statements) < 20, statements
    with any_db.read() as session:
        zero = session.exec(select(Case).where(Case.dedup_key == "alert-0")).one()
        lines = session.exec(
            select(TimelineEvent.case_id, TimelineEvent.text).where(
                TimelineEvent.kind == "duplicate"
            )
        ).all()
        records = session.exec(
            select(AuditRecord.case_ref, AuditRecord.detail).where(
                AuditRecord.action == "case.duplicate"
            )
        ).all()
        changes = session.exec(select(CaseChange.case_id).where(CaseChange.case_id == zero.id))
        assert audit.verify(session).ok
    assert len(lines) == 100  # one a case
    assert (zero.id, "4 duplicate events for dedup key 'alert-0' from vigil") in lines
    assert len(records) == 100
    assert (zero.ref, {"dedup_key": "alert-0", "events": 4}) in records
    assert zero.version == 3  # opened (1), paged (2), joined once (3)
    assert len(changes.all()) == 2  # fed once opened and paged, once joined
    assert_consistent(any_db)


def _resolved_as(db: Database, case_id: int) -> dict[str, Any]:
    """What resolving stored of a case, but what names it."""
    stored = stored_case(db, case_id)
    with db.read() as session:
        ref = session.exec(select(Case.ref).where(Case.id == case_id)).one()
        records = session.exec(
            select(AuditRecord.actor, AuditRecord.detail).where(
                AuditRecord.case_ref == ref, AuditRecord.action == "case.resolve"
            )
        ).all()
    return {**stored, "resolve records": list(records)}


def test_resolves_from_their_senders_together_are_stored_as_each_alone(
    any_db: Database, desk: CaseService, clock: FakeClock
) -> None:
    """An Alertmanager group's resolved alerts as an outage ends: one change each held the
    intake's writer for seconds (3,000 took 21 s). Resolved together, each case is stored
    as `resolve` with its sender stores it, a report still owed keeps its case in the open
    queue, and a key with no open case (or one resolved just before) resolves nothing."""
    kinds = [("csea", 1), ("other", 3), ("other", 2)]
    alone: list[int] = []
    together: list[int] = []
    for run, ids in (("alone", alone), ("together", together)):
        for n, (category, severity) in enumerate(kinds):
            opened = desk.open_case(
                "sam",
                title=f"Alert {n}",
                category=category,
                severity=severity,
                dedup_key=f"{run}-{n}",
                source="alertmanager:prod",
            )
            ids.append(opened.case_id)
    clock.advance(minutes=5)
    for n in range(len(kinds)):
        case = _case_ref(any_db, alone[n])
        desk.resolve("sam", case, sender="alertmanager integration prod")
    sender = "alertmanager integration prod"
    closing = [(f"together-{n}", sender) for n in range(len(kinds))]
    closing += [("together-0", sender), ("nobody", sender)]
    with desk.work.together("sam"):
        refs = desk.resolve_from_senders("sam", closing)
    assert refs == [_case_ref(any_db, case_id) for case_id in together] + [None, None]
    for one, other in zip(alone, together, strict=True):
        assert _resolved_as(any_db, other) == _resolved_as(any_db, one)
    owed = _resolved_as(any_db, together[0])["case"]
    assert (owed["status"], owed["queue_rank"]) == ("resolved", OWES_REPORT_RANK)
    with any_db.read() as session:
        assert audit.verify(session).ok
    assert_consistent(any_db)


def _case_ref(db: Database, case_id: int) -> str:
    with db.read() as session:
        return session.exec(select(Case.ref).where(Case.id == case_id)).one()

"""One check over every table: what must hold in a Vigil database whatever happened to it.

Fault and fuzz tests call `assert_consistent(db)` after crashes, races and bad input. Each
rule is one query that lists the rows breaking it; `check_consistency` returns a line per
broken rule (with a few of the rows), so a failure says what is wrong and where.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Table, and_, exists, func, literal, not_, or_, select
from sqlalchemy.engine import Connection

from data import audit
from data.db import Database
from data.domain import Category, Status
from data.queries import OWES_REPORT_RANK, QUEUE_RANKS, SNOOZED_RANK
from data.schema import every_table

SHOWN = 3
"""How many offending rows a problem line quotes."""

TABLES = every_table().tables
CASE = TABLES["case"]
STEP_RUN = TABLES["step_run"]
PAGE = TABLES["page"]
DELIVERY = TABLES["delivery"]
TIMELINE = TABLES["timeline_event"]
CHANGE = TABLES["case_change"]
AUDIT = TABLES["audit_record"]
RESPONDER = TABLES["responder"]

DELIVERY_STATUSES = (
    "pending",
    "held",
    "delivered",
    "failed",
    "unavailable",
    "sent",
    "cancelled",
)
ESCALATION_REASONS = ("escalation", "exhausted", "catch-up")
"""Pages the engine sends for a claimed step (a reassign page has no claim)."""
ON_TIME_REASONS = ("escalation", "exhausted")
"""Pages of a claim the engine did not overtake (a catch-up page's claim was overtaken)."""


Rule = Callable[[Connection], Iterable[Any]]


def _rows(connection: Connection, query: Any) -> list[Any]:
    return list(connection.execute(query.limit(SHOWN + 1)).all())


def _foreign_key_orphans(connection: Connection) -> list[str]:
    """Every foreign key of every table points at a row that exists (and `case_change`,
    which has none for speed, at a case)."""
    problems = []
    links = [
        (table, fk.parent, fk.column)
        for table in TABLES.values()
        for fk in table.foreign_keys
        if fk.parent.table is table
    ]
    links.append((CHANGE, CHANGE.c.case_id, CASE.c.id))
    for table, column, target in links:
        target_table = target.table
        assert isinstance(target_table, Table)
        missing = ~exists().where(target == column)
        rows = _rows(connection, select(column).where(column.is_not(None), missing))
        if rows:
            problems.append(
                f"{table.name}.{column.name} points at a missing {target_table.name}: "
                f"{[r[0] for r in rows[:SHOWN]]}"
            )
    return problems


def _case_rules() -> dict[str, Rule]:
    c = CASE.c
    # A resolved case that still owes a report to an authority keeps an open rank.
    allowed = {status: [value] for status, value in QUEUE_RANKS.items()}
    allowed[Status.RESOLVED.value].append(OWES_REPORT_RANK)
    allowed[Status.ACKNOWLEDGED.value].append(SNOOZED_RANK)
    rank = or_(
        *(and_(c.status == status, c.queue_rank.not_in(ranks)) for status, ranks in allowed.items())
    )
    statuses = [s.value for s in Status]
    categories = [k.value for k in Category]
    worked = c.status.in_([Status.ACKNOWLEDGED.value, Status.RESOLVED.value])
    resolved = c.status == Status.RESOLVED.value
    triggered = c.status == Status.TRIGGERED.value
    cases = select(c.ref)

    def where(*conditions: Any) -> Rule:
        return lambda connection: _rows(connection, cases.where(*conditions))

    return {
        "a case has an unknown status": where(c.status.not_in(statuses)),
        "a case's queue_rank disagrees with its status": where(rank),
        "a case is snoozed without the snoozed rank, or ranked snoozed without a snooze": where(
            or_(
                and_(c.queue_rank == SNOOZED_RANK, c.snoozed_until.is_(None)),
                and_(c.queue_rank != SNOOZED_RANK, c.snoozed_until.is_not(None)),
            )
        ),
        "an acknowledged or resolved case has no acknowledged_at/acknowledged_by": where(
            worked, or_(c.acknowledged_at.is_(None), c.acknowledged_by_id.is_(None))
        ),
        "a triggered case still carries an acknowledgement": where(
            triggered, or_(c.acknowledged_at.is_not(None), c.acknowledged_by_id.is_not(None))
        ),
        "a resolved case has no resolved_at, or still escalates": where(
            resolved, or_(c.resolved_at.is_(None), c.next_escalation_at.is_not(None))
        ),
        "an open case has a resolved_at": where(~resolved, c.resolved_at.is_not(None)),
        "a triggered case has stalled (no next escalation time, not exhausted)": where(
            triggered, c.next_escalation_at.is_(None), not_(c.exhausted)
        ),
        "a case was acknowledged before it opened": where(c.acknowledged_at < c.created_at),
        "a case was resolved before it was acknowledged": where(c.resolved_at < c.acknowledged_at),
        "a case has an unknown category": where(c.category.not_in(categories)),
        "a case's severity is not 1-4": where(or_(c.severity < 1, c.severity > 4)),
        "a CSEA case is not sensitive": where(c.category == Category.CSEA.value, ~c.sensitive),
        "two open cases share a dedup key": lambda connection: _rows(
            connection,
            select(c.dedup_key)
            .where(c.dedup_key.is_not(None), ~resolved)
            .group_by(c.dedup_key)
            .having(func.count() > 1),
        ),
    }


def _escalation_rules() -> dict[str, Rule]:
    s, p = STEP_RUN.c, PAGE.c
    same_claim = and_(
        s.case_id == p.case_id, s.cycle == p.cycle, s.step == p.step, s.round == p.round
    )
    pages_of_claim = (
        select(func.count())
        .select_from(PAGE)
        .where(same_claim, p.reason.in_(ESCALATION_REASONS))
        .scalar_subquery()
    )
    return {
        "a (case, cycle, step, round) was claimed twice": lambda connection: _rows(
            connection,
            select(s.case_id, s.cycle, s.step, s.round)
            .group_by(s.case_id, s.cycle, s.step, s.round)
            .having(func.count() > 1),
        ),
        "a responder was paged twice for one (case, cycle, step, round)": lambda connection: _rows(
            connection,
            select(p.case_id, p.cycle, p.step, p.round, p.responder_id)
            .group_by(p.case_id, p.cycle, p.step, p.round, p.responder_id)
            .having(func.count() > 1),
        ),
        "an escalation page has no claim (or only an overtaken one)": lambda connection: _rows(
            connection,
            select(p.id, p.case_id, p.step, p.round).where(
                p.reason.in_(ON_TIME_REASONS), ~exists().where(same_claim, ~s.missed)
            ),
        ),
        "a catch-up page is not for an overtaken step": lambda connection: _rows(
            connection,
            select(p.id, p.case_id, p.step, p.round).where(
                p.reason == "catch-up", ~exists().where(same_claim, s.missed)
            ),
        ),
        "a delay notice does not ride on a paged claim": lambda connection: _rows(
            connection,
            select(p.id, p.case_id, p.step, p.round).where(
                p.reason == "delayed",
                ~exists().where(
                    s.case_id == p.case_id,
                    s.cycle == p.cycle,
                    s.step == -p.step,
                    s.round == p.round,
                    ~s.missed,
                ),
            ),
        ),
        "a claim's page count disagrees with the pages recorded": lambda connection: _rows(
            connection,
            select(s.case_id, s.cycle, s.step, s.round, s.paged, pages_of_claim).where(
                s.paged != pages_of_claim
            ),
        ),
        "a page was sent before it was due": lambda connection: _rows(
            connection, select(p.id, p.due_at, p.sent_at).where(p.sent_at < p.due_at)
        ),
    }


def _delivery_rules() -> dict[str, Rule]:
    d = DELIVERY.c
    deliveries = select(d.id, d.channel, d.status)

    def where(*conditions: Any) -> Rule:
        return lambda connection: _rows(connection, deliveries.where(*conditions))

    return {
        "a delivery has an unknown status": where(d.status.not_in(DELIVERY_STATUSES)),
        "a pending delivery has no next attempt time (it would never be sent)": where(
            d.status == "pending", d.next_attempt_at.is_(None)
        ),
        "a held delivery has no due time (it would never be released)": where(
            d.status == "held", d.next_attempt_at.is_(None)
        ),
        "a delivered delivery has no delivered_at": where(
            d.status == "delivered", d.delivered_at.is_(None)
        ),
        "two deliveries share an idempotency key": lambda connection: _rows(
            connection,
            select(d.idempotency_key)
            .where(d.idempotency_key != "")
            .group_by(d.idempotency_key)
            .having(func.count() > 1),
        ),
    }


def _audit_rules() -> dict[str, Rule]:
    a, c, ch, t = AUDIT.c, CASE.c, CHANGE.c, TIMELINE.c
    # By the case's own record, or by an engine batch's that lists it (`audit.engine_batch`).
    audited = exists().where(a.at == ch.at, audit.about_case(c.ref))
    revealed = exists().where(a.case_ref == c.ref, a.at == t.at, a.action == "case.reveal")
    return {
        "a case change has no audit record": lambda connection: _rows(
            connection,
            select(c.ref, ch.at).select_from(CHANGE.join(CASE, c.id == ch.case_id)).where(~audited),
        ),
        "a case's opening was not audited": lambda connection: _rows(
            connection,
            select(c.ref).where(~exists().where(a.case_ref == c.ref, a.action == "case.open")),
        ),
        "a reveal has no audit record": lambda connection: _rows(
            connection,
            select(c.ref, t.at)
            .select_from(TIMELINE.join(CASE, c.id == t.case_id))
            .where(t.kind == literal("reveal"), ~revealed),
        ),
    }


RULES: dict[str, Rule] = {
    **_case_rules(),
    **_escalation_rules(),
    **_delivery_rules(),
    **_audit_rules(),
}


def check_consistency(db: Database) -> list[str]:
    """Every broken rule as a line naming a few offending rows; empty when all hold."""
    problems: list[str] = []
    with db.read() as session:
        report = audit.verify(session)
        if not report.ok:
            problems.append(f"the audit chain is broken: {report.reason}")
        connection = session.connection()
        problems += _foreign_key_orphans(connection)
        for rule, find in RULES.items():
            rows = list(find(connection))
            if rows:
                shown = [tuple(row) for row in rows[:SHOWN]]
                more = " ..." if len(rows) > SHOWN else ""
                problems.append(f"{rule}: {shown}{more}")
    return problems


def assert_consistent(db: Database) -> None:
    problems = check_consistency(db)
    assert not problems, "the database is inconsistent:\n  " + "\n  ".join(problems)

"""The engine's storage: claiming due cases and writing a batch of plans in bulk.

At ten thousand cases a batch the per-row work of the ORM, and even of SQLAlchemy Core,
costs several times what the database itself spends, so this module speaks to the driver:
`executemany` on SQLite (one C loop per table), and one statement per table over
`unnest` arrays on PostgreSQL (one plan however many rows, sent without waiting for each
answer). Timestamps pass through the columns' own bind processor and JSON is dumped as
SQLAlchemy's JSON type dumps it, so rows are stored exactly as the ORM stores them and
read back the same way everywhere else.

Everything here runs inside the engine's write transaction: the audit chain's lock is
taken first, then the due rows (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so engines sharing
a database take disjoint cases), and the batch's `StepRun` claims carry the unique
(case, cycle, step, round) constraint that is the last line against a double page.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Table
from sqlmodel import Session

from app.engine.planning import (
    ACKNOWLEDGED,
    TRIGGERED,
    DueCase,
    Person,
    Plan,
    StepClaim,
    describe_positions,
)
from app.rules.notify import notices
from app.services.paging import delivery_key, notice_status
from data import audit
from data.escalation import StepRun
from data.models import (
    AuditHead,
    AuditRecord,
    Case,
    CaseChange,
    Delivery,
    Page,
    TimelineEvent,
)
from data.queries import QUEUE_RANKS
from data.types import table_of

log = logging.getLogger("vigil.engine")

ACTOR = "engine"
CASES = table_of(Case)
STEP_RUNS = table_of(StepRun)
PAGES = table_of(Page)
DELIVERIES = table_of(Delivery)
TIMELINE = table_of(TimelineEvent)
CHANGES = table_of(CaseChange)
AUDIT_RECORDS = table_of(AuditRecord)

CLAIM_COLUMNS = (
    "case_id",
    "cycle",
    "step",
    "round",
    "due_at",
    "ran_at",
    "engine",
    "targets",
    "paged",
    "missed",
)
PAGE_COLUMNS = ("case_id", "responder_id", "cycle", "step", "round", "reason", "due_at", "sent_at")
DELIVERY_COLUMNS = (
    "page_id",
    "channel",
    "contact_id",
    "status",
    "attempts",
    "next_attempt_at",
    "idempotency_key",
)
TIMELINE_COLUMNS = ("case_id", "at", "kind", "actor", "text", "data")
AUDIT_COLUMNS = ("seq", "at", "actor", "action", "case_ref", "detail", "prev_hash", "hash")
DUE_COLUMNS = (
    "id",
    "ref",
    "status",
    "escalation_cycle",
    "escalation_step",
    "escalation_round",
    "next_escalation_at",
    "exhausted",
    "assignee_id",
    "acknowledged_at",
    "acknowledged_by_id",
    "snoozed_until",
    "severity",
    "policy_snapshot",
)


class BulkWriter:
    """Bulk statements on the session's own connection (and so its transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.connection = session.connection()
        self.dialect = self.connection.dialect
        self.postgres = self.dialect.name == "postgresql"
        self.marker = "%s" if self.postgres else "?"
        self.quote = self.dialect.identifier_preparer.quote
        self._when = TIMELINE.c.at.type.dialect_impl(self.dialect).bind_processor(self.dialect)
        self._moments: dict[datetime | None, Any] = {}
        self._read: dict[str, datetime] = {}
        self._documents: dict[Any, str] = {}
        self._array_types: dict[tuple[str, str], tuple[str, bool]] = {}

    # -- values -----------------------------------------------------------------------

    def when(self, moment: datetime | None) -> Any:
        """A timestamp as the database takes it (a batch has only a few distinct ones)."""
        if self.postgres and moment is not None and moment.tzinfo is UTC:
            return moment  # what the column's bind processor would make of it
        try:
            return self._moments[moment]
        except KeyError:
            value = self._when(moment) if self._when and moment is not None else moment
            self._moments[moment] = value
            return value

    def moment(self, stored: Any) -> datetime:
        """A timestamp as the driver returns it, as an aware UTC datetime (the due rows of
        a burst share one: each text is parsed once)."""
        if isinstance(stored, str):
            found = self._read.get(stored)
            if found is None:
                found = self._read[stored] = datetime.fromisoformat(stored).replace(tzinfo=UTC)
            return found
        assert isinstance(stored, datetime)
        return stored.astimezone(UTC)

    def json(self, value: Any, *, same_as: Any = None) -> str:
        """A JSON document as text; `same_as` keys a memo of repeated ones."""
        if same_as is not None:
            found = self._documents.get(same_as)
            if found is None:
                found = self._documents[same_as] = json.dumps(value)
            return found
        return json.dumps(value)

    def among(self, ids: Sequence[int], column: str = "id") -> tuple[str, list[Any]]:
        """A `column IN (ids)` condition and its parameters."""
        if self.postgres:
            # Not `= ANY(array)`: that is a linear search of the array for every row.
            return f"{column} IN (SELECT unnest(%b::integer[]))", [list(ids)]
        return f"{column} IN ({', '.join('?' * len(ids))})", list(ids)

    # -- statements -------------------------------------------------------------------

    def fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """A query's rows as the driver gives them: plain tuples, fetched at once (a
        burst's claim reads thousands)."""
        result = self.connection.exec_driver_sql(sql, tuple(params))
        try:
            rows: list[tuple[Any, ...]] = list(result.cursor.fetchall())
        finally:
            result.close()
        return rows

    def insert(self, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        names = ", ".join(self.quote(name) for name in columns)
        if self.postgres:
            source, arrays = self._unnest([table.c[name] for name in columns], rows)
            sql = f"INSERT INTO {self.quote(table.name)} ({names}) {source}"
            self._send(sql, arrays)
            return
        markers = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {self.quote(table.name)} ({names}) VALUES ({markers})"
        self.connection.exec_driver_sql(sql, rows)

    def insert_pages(self, pages: list[tuple[Any, ...]], deliveries: list[tuple[Any, ...]]) -> None:
        """Pages (values of `PAGE_COLUMNS`) and their deliveries (the index of their page,
        then the values of `DELIVERY_COLUMNS` but the page id).

        On PostgreSQL one statement does both, the deliveries finding their page by case,
        responder and step (a batch pages a person once per case and step: a catch-up pages
        each person once, and a delay notice has a step of its own), so no id has to come
        back before the rest is sent. On SQLite the ids after the largest are ours (this
        transaction holds the only writer lock).
        """
        if not pages:
            return
        page_table, delivery_table = self.quote(PAGES.name), self.quote(DELIVERIES.name)
        if not self.postgres:
            last = self.fetch(f"SELECT coalesce(max(id), 0) FROM {page_table}", ())[0][0]
            ids = range(int(last) + 1, int(last) + 1 + len(pages))
            self.insert(
                PAGES, ("id", *PAGE_COLUMNS), [(i, *p) for i, p in zip(ids, pages, strict=True)]
            )
            rows = [(ids[index], *rest) for index, *rest in deliveries]
            self.insert(DELIVERIES, DELIVERY_COLUMNS, rows)
            return
        if not deliveries:
            self.insert(PAGES, PAGE_COLUMNS, pages)
            return
        page_source, page_params = self._unnest([PAGES.c[c] for c in PAGE_COLUMNS], pages)
        # Keyed by case, responder and step (PAGE_COLUMNS 0, 1 and 3), numbered so the deliveries
        # take their ids in page order: the webhook outbox sends each contact's in id order.
        keyed = [
            (number, pages[index][0], pages[index][1], pages[index][3], *rest)
            for number, (index, *rest) in enumerate(deliveries)
        ]
        delivery_columns = DELIVERY_COLUMNS[1:]
        delivery_source, delivery_params = self._unnest(
            [
                DELIVERIES.c.id,
                PAGES.c.case_id,
                PAGES.c.responder_id,
                PAGES.c.step,
                *(DELIVERIES.c[c] for c in delivery_columns),
            ],
            keyed,
        )
        names = ", ".join(self.quote(c) for c in PAGE_COLUMNS)
        targets = ", ".join(self.quote(c) for c in delivery_columns)
        picked = ", ".join(f"d.{self.quote(c)}" for c in delivery_columns)
        sql = (
            f"WITH new_page AS (INSERT INTO {page_table} ({names}) {page_source} "
            "RETURNING id, case_id, responder_id, step) "
            f"INSERT INTO {delivery_table} (page_id, {targets}) "
            f"SELECT new_page.id, {picked} FROM ({delivery_source}) AS d JOIN new_page "
            "ON new_page.case_id = d.case_id AND new_page.responder_id = d.responder_id "
            "AND new_page.step = d.step "
            "ORDER BY d.id"
        )
        self._send(sql, [*page_params, *delivery_params])

    @property
    def _driver(self) -> Any:
        """The psycopg connection under this session's (PostgreSQL only)."""
        return self.connection.connection.driver_connection

    def _send(self, sql: str, params: list[Any]) -> None:
        """One statement straight to psycopg (through SQLAlchemy it would stop for the
        statement's answer, which is what `pipelined` saves)."""
        with self._driver.cursor() as cursor:
            cursor.execute(sql, params)

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        """On PostgreSQL, send the statements inside without waiting for each answer, so
        the server runs one while the next is built; any error comes out at the end."""
        if not self.postgres:
            yield
            return
        with self._driver.pipeline():
            yield

    def update(
        self, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]], *, touch: Any
    ) -> None:
        """Per row (values of `columns`, then the id): set them, `updated_at` = `touch` and
        `version` + 1."""
        if not rows:
            return
        name = self.quote(table.name)
        if self.postgres:
            source, arrays = self._unnest([table.c[c] for c in (*columns, "id")], rows)
            sets = ", ".join(f"{self.quote(c)} = u.{self.quote(c)}" for c in columns)
            sql = (
                f"UPDATE {name} AS t SET {sets}, updated_at = %s, version = t.version + 1 "
                f"FROM ({source}) AS u WHERE t.id = u.id"
            )
            self._send(sql, [touch, *arrays])
            return
        sets = ", ".join(f"{self.quote(c)} = ?" for c in (*columns, "updated_at"))
        sql = f"UPDATE {name} SET {sets}, version = version + 1 WHERE id = ?"
        self.connection.exec_driver_sql(sql, [(*row[:-1], touch, row[-1]) for row in rows])

    def _unnest(
        self, columns: Sequence[Column[Any]], rows: list[tuple[Any, ...]]
    ) -> tuple[str, list[Any]]:
        """`SELECT ... FROM unnest(...)` of the rows, with its parameters in order.

        A column with one value in every row is bound once, as a scalar; the others go as
        typed arrays (whole numbers as an array literal, which the server parses faster
        than the driver dumps a list; JSON as text, cast back per element).
        """
        selected: list[str] = []
        names: list[str] = []
        items: list[str] = []
        scalars: list[Any] = []
        arrays: list[Any] = []
        for column, values in zip(columns, zip(*rows, strict=True), strict=True):
            array_type, is_json = self._array_type(column)
            name = self.quote(column.name)
            cast = "::json" if is_json else ""
            first = values[0]
            if all(value == first for value in values):
                selected.append(f"%b::{array_type}{cast} AS {name}")
                scalars.append(first)
                continue
            selected.append(f"u.{name}{cast} AS {name}")
            names.append(name)
            if array_type == "INTEGER" and all(type(value) is int for value in values):
                items.append("%s::INTEGER[]")
                arrays.append("{" + ",".join(map(str, values)) + "}")
            else:
                items.append(f"%b::{array_type}[]")
                arrays.append(list(values))
        if not names:  # every column the same: still one row per row
            source = f"SELECT {', '.join(selected)} FROM generate_series(1, %s) AS u(n)"
            return source, [*scalars, len(rows)]
        source = (
            f"SELECT {', '.join(selected)} FROM unnest({', '.join(items)}) AS u({', '.join(names)})"
        )
        return source, [*scalars, *arrays]

    def _array_type(self, column: Column[Any]) -> tuple[str, bool]:
        key = (column.table.name, column.name)
        found = self._array_types.get(key)
        if found is None:
            compiled = column.type.compile(dialect=self.dialect)
            is_json = compiled.upper() in ("JSON", "JSONB")
            found = self._array_types[key] = ("TEXT" if is_json else compiled, is_json)
        return found


# --- claiming -----------------------------------------------------------------------


def _due_where(
    writer: BulkWriter, now: datetime, ids: Sequence[int] | None, failing: Iterable[int]
) -> tuple[str, list[Any]]:
    """Cases due at `now` (of `ids`, not `failing`), whatever their status: the condition
    and its parameters."""
    conditions = ["next_escalation_at IS NOT NULL", f"next_escalation_at <= {writer.marker}"]
    params: list[Any] = [writer.when(now)]
    if ids is not None:
        condition, values = writer.among(ids)
        conditions.append(condition)
        params.extend(values)
    failing = list(failing)
    if failing:
        condition, values = writer.among(failing)
        conditions.append(f"NOT ({condition})")
        params.extend(values)
    return " AND ".join(conditions), params


def anything_due(
    writer: BulkWriter, now: datetime, ids: Sequence[int] | None, failing: Iterable[int]
) -> bool:
    """Whether any case is due: a cheap read, so an idle engine never takes the writer lock."""
    where, params = _due_where(writer, now, ids, failing)
    m = writer.marker
    sql = f"SELECT 1 FROM {writer.quote(CASES.name)} WHERE status IN ({m}, {m}) AND {where} LIMIT 1"
    return bool(writer.fetch(sql, [TRIGGERED, ACKNOWLEDGED, *params]))


def claim_due(
    writer: BulkWriter,
    now: datetime,
    ids: Sequence[int] | None,
    failing: Iterable[int],
    limit: int,
) -> list[DueCase]:
    """The `limit` earliest due cases, earliest first, locked for this transaction.

    First their ids, per status in the due index's own order (`IN` over both statuses
    would sort every due row for every batch), then the rows themselves.
    """
    where, params = _due_where(writer, now, ids, failing)
    table = writer.quote(CASES.name)
    columns = [writer.quote(name) for name in DUE_COLUMNS]
    if writer.postgres:
        columns[-1] += "::text"
    if ids is not None and len(ids) <= limit:
        # Named cases, as few as a case being opened: their rows at once, in one statement.
        return _locked_due(writer, f"SELECT {', '.join(columns)} FROM {table}", where, params)
    # SQLite: this transaction holds the only writer lock, so the earliest rows are read
    # whole at once; PostgreSQL: their ids first, then the rows locked (below).
    picked = ", ".join(columns) if not writer.postgres else "id"
    earliest: list[tuple[Any, ...]] = []
    for status in (TRIGGERED, ACKNOWLEDGED):
        sql = (
            f"SELECT next_escalation_at, id, {picked} FROM {table} "
            f"WHERE status = {writer.marker} AND {where} "
            f"ORDER BY status, next_escalation_at, id LIMIT {writer.marker}"
        )
        earliest.extend(writer.fetch(sql, [status, *params, limit]))
    earliest = sorted(earliest, key=lambda row: (row[0], row[1]))[:limit]
    if not writer.postgres:
        return [_due_case(writer, row[2:]) for row in earliest]
    chosen = [row[1] for row in earliest]
    if not chosen:
        return []
    chosen_in, chosen_params = writer.among(chosen)
    selected = f"SELECT {', '.join(columns)} FROM {table}"
    return _locked_due(writer, selected, f"{where} AND {chosen_in}", [*params, *chosen_params])


def _locked_due(writer: BulkWriter, selected: str, where: str, params: list[Any]) -> list[DueCase]:
    """The due rows `where` says, earliest first, locked for this transaction."""
    sql = f"{selected} WHERE status IN ({writer.marker}, {writer.marker}) AND {where}"
    if writer.postgres:
        # Several engines share the database: each takes cases the others have not.
        sql += " FOR UPDATE SKIP LOCKED"
    rows = writer.fetch(sql, [TRIGGERED, ACKNOWLEDGED, *params])
    due = [_due_case(writer, row) for row in rows]
    return sorted(due, key=lambda case: (case.next_escalation_at, case.id))


def _due_case(writer: BulkWriter, row: Sequence[Any]) -> DueCase:
    """A due row (`DUE_COLUMNS`) as a `DueCase`, its times aware UTC datetimes."""
    (case_id, ref, status, cycle, step, round_, next_at, exhausted) = row[:8]
    assignee, acknowledged_at, acknowledged_by, snoozed_until, severity, snapshot = row[8:]
    return DueCase(
        case_id,
        ref,
        status,
        cycle,
        step,
        round_,
        writer.moment(next_at),
        bool(exhausted),
        assignee,
        None if acknowledged_at is None else writer.moment(acknowledged_at),
        acknowledged_by,
        None if snoozed_until is None else writer.moment(snoozed_until),
        severity,
        snapshot,
    )


def drop_existing_claims(writer: BulkWriter, plans: list[Plan]) -> None:
    """Claims someone already holds were paged (or passed): drop them, never page twice."""
    condition, params = writer.among([plan.row.id for plan in plans], "case_id")
    sql = (
        f"SELECT case_id, cycle, step, round FROM {writer.quote(STEP_RUNS.name)} WHERE {condition}"
    )
    existing = {
        (case_id, cycle, (step, round_))
        for case_id, cycle, step, round_ in writer.fetch(sql, params)
    }

    def held(plan: Plan, claim: StepClaim) -> bool:
        return (plan.row.id, claim.cycle, claim.position) in existing

    for plan in plans:
        if held(plan, plan.live):
            log.warning(
                "%s: %s was already claimed; not paging it again",
                plan.row.ref,
                describe_positions([plan.live.position]),
            )
            plan.pages = []
            plan.notice = []
        for claim in plan.claims:
            claim.held = held(plan, claim)
        plan.late = [(claim, people) for claim, people in plan.late if not claim.held]


# --- writing a batch ----------------------------------------------------------------


def write_plans(
    writer: BulkWriter,
    head: AuditHead,
    plans: list[Plan],
    now: datetime,
    engine_name: str,
    *,
    fed: bool = False,
) -> None:
    """Write plans: one statement per table, committed with the batch (on PostgreSQL,
    call it inside `writer.pipelined()`: nothing here waits for an answer). `fed`: the
    change feed already names each case in this transaction (a change paging its own
    cases), so consoles are told once."""
    _insert_claims(writer, plans, writer.when(now), engine_name)
    _insert_pages(writer, plans, now)
    _insert_timeline(writer, plans, now)
    _update_cases(writer, plans, now, fed=fed)
    _append_audit(writer, head, plans, now)
    writer.session.add(head)


def _insert_claims(writer: BulkWriter, plans: list[Plan], ran_at: Any, engine_name: str) -> None:
    writer.insert(
        STEP_RUNS,
        CLAIM_COLUMNS,
        [
            (
                plan.row.id,
                claim.cycle,
                *claim.position,
                writer.when(claim.due_at),
                ran_at,
                engine_name,
                writer.json(list(claim.targets), same_as=claim.targets),
                claim.paged,
                claim.missed,
            )
            for plan in plans
            for claim in plan.claims
            if not claim.held
        ],
    )


CATCH_UP = "catch-up"
"""The reason of a page sent late for a step overtaken while escalation was held up."""
DELAYED = "delayed"
"""The reason of the supervisors' notice that escalation was delayed."""


def _pages_of(plan: Plan) -> Iterator[tuple[Person, int, int, str, datetime]]:
    """(person, step, round, reason, due_at) of every page one plan sends."""
    live = plan.live
    for person in plan.pages:
        yield person, *live.position, plan.reason, live.due_at
    for claim, people in plan.late:
        for person in people:
            yield person, *claim.position, CATCH_UP, claim.due_at
    if plan.notice and plan.notice_due is not None:
        for person in plan.notice:
            yield person, -live.position[0], live.position[1], DELAYED, plan.notice_due


def _insert_pages(writer: BulkWriter, plans: list[Plan], now: datetime) -> None:
    pages: list[tuple[Any, ...]] = []
    deliveries: list[tuple[Any, ...]] = []
    now_at = writer.when(now)
    told: dict[tuple[int, str], list[tuple[str, Any, str, Any]]] = {}
    """(kind, contact id, status, when) of each notice, by person (one object per
    person in a batch: the resolver's) and urgency."""
    for plan in plans:
        cycle = plan.cycle
        for person, step, round_, reason, due in _pages_of(plan):
            index = len(pages)
            pages.append(
                (plan.row.id, person.id, cycle, step, round_, reason, writer.when(due), now_at)
            )
            told_key = (id(person), plan.urgency)
            ways = told.get(told_key)
            if ways is None:
                ways = told[told_key] = [
                    (
                        notice.kind,
                        notice.contact_id,
                        notice_status(notice),
                        now_at if notice.due_at == now else writer.when(notice.due_at),
                    )
                    for notice in notices(
                        person.contacts, person.profile, plan.urgency, now, person.support
                    )
                ]
            key = (plan.row.ref, cycle, step, round_, person.handle)
            deliveries.extend(
                (index, kind, contact, status, 0, when, delivery_key(*key, contact))
                for kind, contact, status, when in ways
            )
    writer.insert_pages(pages, deliveries)


def _insert_timeline(writer: BulkWriter, plans: list[Plan], now: datetime) -> None:
    """The plans' own lines (a catch-up, a step skipped, a restart). Who was paged is not
    written twice: the timeline reads its "paged" lines from the pages
    (`app.services.paging.timeline_with_pages`)."""
    at = writer.when(now)
    rows = [
        (plan.row.id, at, kind.value, ACTOR, text, writer.json(data))
        for plan in plans
        for kind, text, data in plan.events
    ]
    writer.insert(TIMELINE, TIMELINE_COLUMNS, rows)


def _update_cases(writer: BulkWriter, plans: list[Plan], now: datetime, *, fed: bool) -> None:
    """The bulk form of `record_change`: state, version, updated_at, queue rank, feed.

    Only the columns that change are set (grouped by which ones): rewriting an indexed
    column costs an index update even when its value stays the same.
    """
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = defaultdict(list)
    for plan in plans:
        row = plan.row
        step, round_ = plan.live.position
        changes: dict[str, Any] = {
            "escalation_step": step,
            "escalation_round": round_,
            "next_escalation_at": writer.when(plan.next_at),
        }
        if plan.exhausted != row.exhausted:
            changes["exhausted"] = plan.exhausted
        if plan.cycle != row.escalation_cycle:
            changes["escalation_cycle"] = plan.cycle
        assignee = plan.assignee
        if assignee != row.assignee_id:
            changes["assignee_id"] = assignee
        if row.snoozed_until is not None:  # the snooze is over: the case is back
            changes["snoozed_until"] = None
            changes["snooze_reason"] = ""
        if plan.status != row.status:
            changes["status"] = plan.status
            changes["queue_rank"] = QUEUE_RANKS[plan.status]
            changes["acknowledged_at"] = writer.when(plan.acknowledged_at)
            changes["acknowledged_by_id"] = plan.acknowledged_by
        groups[tuple(changes)].append((*changes.values(), row.id))
    updated_at = writer.when(now)
    for columns, rows in groups.items():
        writer.update(CASES, columns, rows, touch=updated_at)
    if not fed:
        writer.insert(CHANGES, ("case_id", "at"), [(plan.row.id, updated_at) for plan in plans])


def _append_audit(writer: BulkWriter, head: AuditHead, plans: list[Plan], now: datetime) -> None:
    """The slice's one chained audit record (actor "engine"): a case's own record when it
    is alone, else the batch's (`audit.engine_batch`), which lists every case in groups of
    cases with equal details."""
    if not plans:
        return
    if len(plans) == 1:
        [plan] = plans
        action, ref, detail = plan.action, plan.row.ref, plan.detail()[1]
    else:
        groups: dict[tuple[Any, ...], tuple[str, dict[str, Any], list[str]]] = {}
        keys: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # plans alike: one detail made
        for plan in plans:
            alike = plan.alike()
            key = None if alike is None else keys.get(alike)
            if key is None:
                detail_key, plan_detail = plan.detail()
                key = (plan.action, *detail_key)
                groups.setdefault(key, (plan.action, plan_detail, []))
                if alike is not None:
                    keys[alike] = key
            groups[key][2].append(plan.row.ref)
        action, ref, detail = audit.ENGINE_BATCH, None, audit.engine_batch(groups.values())
    record = audit.chained(head, now, ACTOR, action, ref, detail)
    record.update(at=writer.when(now), detail=writer.json(detail))  # as the driver takes them
    writer.insert(AUDIT_RECORDS, AUDIT_COLUMNS, [tuple(record[c] for c in AUDIT_COLUMNS)])

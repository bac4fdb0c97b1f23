"""The escalation engine: pages what is due, exactly once and never early.

The database is the only queue. A case is due when it is triggered (or acknowledged with an
acknowledgement timeout) and its `next_escalation_at` has passed. `EscalationEngine.run_due`
claims due cases in batches, one write transaction each: it takes the audit chain's lock
first (the order the case service uses, so the two never deadlock), then the due rows
(PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: `BEGIN IMMEDIATE` already serialises
writers), resolves each step's targets at page time and, in the same transaction, inserts
the `StepRun` claim of each (case, cycle, step, round), whose unique constraint is the last
line of defence against a double page, records the pages, deliveries, timeline, change feed
and audit records, and moves each case on. A crash anywhere rolls all of it back, so the
next engine finds the case still due. Nothing is ever paged before `now >= due`.

Semantics (the design's contract):

* A new case pages step 1 at once; while it stays triggered each step's delay after the
  previous page leads to the next step; after the last step the chain starts over `repeat`
  more times; then it is exhausted: the supervisors on duty are paged once (reason
  "exhausted"), `exhausted` is set and nothing more is due. The supervisors' page sits one
  step past the last (`escalation_step == len(steps) + 1`), so their acknowledgement finds it.
* Targets are resolved when the step is paged, not when the case opened. A step whose
  targets resolve to nobody reachable (a coverage gap, nobody with a contact method) does
  not wait its delay: the chain moves on at once and the timeline says so.
* After downtime the engine resumes at the step the case would have reached by now (each
  missed step taking its full delay), pages that step once, and records the missed steps in
  the timeline and as `StepRun` rows marked missed; it never bursts every missed page. A
  step waits at least `MIN_STEP_DELAY`, so a zero delay cannot make every step "missed".
* An acknowledged case whose acknowledgement timeout passes goes back to triggered and a
  new cycle pages step 1 again. A case escalated by hand after it was exhausted starts a
  new cycle too. Acknowledge, resolve, reassign and multi-ack are the case service's side:
  the engine keeps escalating on time whatever is still triggered.
* A case whose frozen policy cannot be read escalates with the fallback policy (the
  supervisors) and logs at ERROR: a page is never silently dropped. A step that cannot be
  resolved (a broken rotation, an unknown target form) logs at ERROR and is passed like an
  empty step. Any other error in one case is logged at ERROR with its ref and the case is
  left out of claims for `RETRY_FAILED_AFTER`; the other cases go on.

`EngineRunner` drives the engine with APScheduler 3. Its traps, and how they are avoided:

* `misfire_grace_time` defaults to one second: a job that starts later than that (a busy
  thread pool, a suspended laptop, a long pause) is skipped with only a warning, and a
  skipped date job is gone for good. Every job here has `misfire_grace_time=None` (run
  however late) and `coalesce=True` (a backlog of runs is one run).
* A date job leaves its job store when it fires, before it runs, so rescheduling it then
  raises `JobLookupError`. The wake job is re-armed with `add_job(replace_existing=True)`
  after every cycle instead.
* With `max_instances=1` a job that fires while its previous run is still going is skipped.
  So jobs never do the work: they only wake the runner's own worker thread and return at
  once. (The webhook outbox has its own job, so a slow receiver never delays a page.)
* `SQLAlchemyJobStore` pickles jobs and deletes any it cannot unpickle, and a job store
  shared by several processes runs each job wherever it is picked up first. The runner
  keeps its jobs in its own `MemoryJobStore`, never shared, and no page ever lives in a job:
  the due times are in the cases themselves, so a restart loses nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import socket
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from types import FrameType
from typing import Any

import httpx
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Table, Text, cast
from sqlalchemy import select as sql_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Row
from sqlmodel import Session, SQLModel, col, func, select

from app.cases import add_timeline, record_change
from app.clock import Clock, SystemClock
from app.notifiers.webhook import make_client, process_webhook_outbox
from app.paging import contacts_of, delivery_key, paged_event
from app.policies import FALLBACK_POLICY
from app.targets import resolve_targets
from data import audit
from data.db import Database, DatabaseError, default_url
from data.domain import Status
from data.models import AuditHead, Case, EngineHeartbeat
from data.queries import QUEUE_RANKS

log = logging.getLogger("vigil.engine")

ACTOR = "engine"
# A batch holds the writer lock (SQLite) and the audit chain's lock while it is written, so
# a console's acknowledgement may wait for one batch: 500 keeps that wait short while the
# per-batch cost stays small beside the per-case cost.
DEFAULT_BATCH_SIZE = 500
RETRY_FAILED_AFTER = timedelta(minutes=1)
MIN_STEP_DELAY = timedelta(seconds=1)
SUPERVISORS = ("role:supervisor",)
TRIGGERED = Status.TRIGGERED.value
ACKNOWLEDGED = Status.ACKNOWLEDGED.value

_tables = SQLModel.metadata.tables
CASES: Table = _tables["case"]
STEP_RUNS: Table = _tables["step_run"]
PAGES: Table = _tables["page"]
DELIVERIES: Table = _tables["delivery"]
TIMELINE: Table = _tables["timeline_event"]
CHANGES: Table = _tables["case_change"]
AUDIT_RECORDS: Table = _tables["audit_record"]
HEARTBEATS: Table = _tables["engine_heartbeat"]
CLAIMED_COLUMNS = (
    CASES.c.id,
    CASES.c.ref,
    CASES.c.status,
    CASES.c.escalation_cycle,
    CASES.c.escalation_step,
    CASES.c.escalation_round,
    CASES.c.next_escalation_at,
    CASES.c.exhausted,
    CASES.c.assignee_id,
    CASES.c.acknowledged_at,
    CASES.c.acknowledged_by_id,
    # As text: cases on one policy share one parse (see _chain_from_json).
    cast(CASES.c.policy_snapshot, Text).label("snapshot"),
)
CLAIM_COLUMNS = [
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
]
PAGE_COLUMNS = ["case_id", "responder_id", "cycle", "step", "round", "reason", "due_at", "sent_at"]
DELIVERY_COLUMNS = [
    "page_id",
    "channel",
    "contact_id",
    "status",
    "attempts",
    "next_attempt_at",
    "idempotency_key",
]


# --- the chain of a frozen policy ---------------------------------------------------

Position = tuple[int, int]
"""(1-based step, 0-based round)."""


@dataclass(frozen=True, slots=True)
class Step:
    delay: timedelta
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Chain:
    """A policy snapshot as the engine walks it."""

    steps: tuple[Step, ...]
    repeat: int

    def after(self, step: int, round_: int) -> Position | None:
        """The position that follows (step, round_); None once the chain has run out."""
        if step < len(self.steps):
            return step + 1, round_
        if self.steps and round_ < self.repeat:
            return 1, round_ + 1
        return None

    def step(self, position: Position) -> Step:
        return self.steps[position[0] - 1]


def _whole(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: expected a whole number of at least 0, got {value!r}")
    return value


def read_chain(snapshot: object) -> Chain:
    """Check a policy snapshot; raise ValueError naming the key path that is wrong."""
    if not isinstance(snapshot, dict):
        raise ValueError(f"policy_snapshot: expected an object, got {type(snapshot).__name__}")
    raw_steps = snapshot.get("steps")
    if not isinstance(raw_steps, list):
        raise ValueError(f"policy_snapshot.steps: expected a list, got {raw_steps!r}")
    steps = []
    for index, raw in enumerate(raw_steps):
        where = f"policy_snapshot.steps[{index}]"
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: expected an object, got {raw!r}")
        delay = _whole(raw.get("delay_seconds"), f"{where}.delay_seconds")
        targets = raw.get("targets")
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise ValueError(f"{where}.targets: expected a list of strings, got {targets!r}")
        steps.append(Step(max(timedelta(seconds=delay), MIN_STEP_DELAY), tuple(targets)))
    repeat = _whole(snapshot.get("repeat", 0), "policy_snapshot.repeat")
    return Chain(tuple(steps), repeat)


@lru_cache(maxsize=512)
def _chain_from_json(text: str) -> Chain:
    """Snapshots are read as JSON text, so a batch of cases on one policy parses it once."""
    try:
        snapshot = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"policy_snapshot: not valid JSON ({exc})") from None
    return read_chain(snapshot)


FALLBACK_CHAIN = read_chain(FALLBACK_POLICY)


# --- results ------------------------------------------------------------------------


@dataclass
class CycleResult:
    """What one `run_due` did."""

    cases: int = 0
    """Cases claimed and moved on."""
    pages: int = 0
    missed: int = 0
    """Steps recorded as missed after downtime (never paged)."""
    skipped: int = 0
    """Steps with nobody to page, passed at once."""
    exhausted: int = 0
    failed: int = 0
    """Cases that raised; left out of claims for `RETRY_FAILED_AFTER`."""
    batches: int = 0

    def add(self, other: CycleResult) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


# --- planning one case --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Person:
    """A reachable responder, as plain values (ORM attribute access is slow at volume)."""

    id: int
    handle: str
    contacts: tuple[tuple[int, str], ...]
    """(contact method id, channel) of each way to reach them, in their order."""


_Reachable = list[_Person]


class _Resolver:
    """Targets resolved once per distinct target list per batch, at the batch's instant."""

    def __init__(self, session: Session, at: datetime) -> None:
        self.session = session
        self.at = at
        self._cache: dict[tuple[str, ...], _Reachable] = {}
        self._contacts: dict[int, tuple[tuple[int, str], ...]] = {}

    def reachable(self, targets: tuple[str, ...]) -> _Reachable:
        """The people `targets` mean now who have a way to be reached, with their contacts."""
        found = self._cache.get(targets)
        if found is None:
            people = resolve_targets(self.session, list(targets), self.at)
            unknown = [p.id for p in people if p.id is not None and p.id not in self._contacts]
            for responder_id, methods in contacts_of(self.session, unknown).items():
                self._contacts[responder_id] = tuple((m.id or 0, m.kind) for m in methods)
            found = [
                _Person(p.id, p.handle, self._contacts[p.id])
                for p in people
                if p.id is not None and self._contacts[p.id]
            ]
            self._cache[targets] = found
        return found


@dataclass(slots=True)
class _Claim:
    """One StepRun row: the claim on a (case, cycle, step, round)."""

    cycle: int
    position: Position
    due_at: datetime
    targets: tuple[str, ...]
    paged: int = 0
    missed: bool = False
    held: bool = False
    """Already in the database (found by a careful retry): not written again."""


@dataclass(slots=True)
class _Plan:
    """What one claimed case will write; built first, then written in bulk with its batch."""

    row: Row[Any]
    status: str
    cycle: int
    acknowledged_at: datetime | None
    acknowledged_by: int | None
    claims: list[_Claim] = field(default_factory=list)
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    pages: _Reachable = field(default_factory=list)
    reason: str = "escalation"
    next_at: datetime | None = None
    exhausted: bool = False
    missed: int = 0
    skipped: int = 0

    @property
    def live(self) -> _Claim:
        """The claim this plan pages (the last one; the others were missed or empty)."""
        return self.claims[-1]

    @property
    def assignee(self) -> int | None:
        """A case without an assignee gets the first person paged."""
        if self.row.assignee_id is not None or not self.pages:
            return self.row.assignee_id
        return self.pages[0].id

    @property
    def action(self) -> str:
        return "engine.exhausted" if self.exhausted else "engine.escalate"

    def detail(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The audit record's detail, with a key equal for equal details (JSON memo)."""
        step, round_ = self.live.position
        paged = [person.handle for person in self.pages]
        key = (self.cycle, step, round_, *paged, self.missed, self.skipped)
        return key, {
            "cycle": self.cycle,
            "step": step,
            "round": round_,
            "paged": paged,
            "missed": self.missed,
            "skipped": self.skipped,
        }


def _at(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _positions(items: Iterable[Position]) -> str:
    return ", ".join(f"step {step} (round {round_ + 1})" for step, round_ in items)


def _step_failed(ref: str, position: Position, exc: ValueError) -> _Reachable:
    """A step that cannot be resolved pages nobody; the chain goes on."""
    log.error("%s: %s cannot be resolved (%s)", ref, _positions([position]), exc)
    return []


def plan_case(row: Row[Any], now: datetime, resolver: _Resolver) -> _Plan:
    """Decide what one due case pages now, and where it goes next."""
    plan = _Plan(
        row,
        status=row.status,
        cycle=row.escalation_cycle,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by_id,
    )
    chain = _read_case_chain(plan)
    step, round_ = row.escalation_step, row.escalation_round
    due: datetime = row.next_escalation_at
    if plan.status == ACKNOWLEDGED:
        plan.status, plan.cycle, step, round_ = TRIGGERED, plan.cycle + 1, 0, 0
        plan.acknowledged_at = plan.acknowledged_by = None
        text = f"Acknowledged but not resolved by {_at(due)}: escalating again from step 1"
        plan.events.append(("ack_timeout", text, {"cycle": plan.cycle}))
    elif row.exhausted or step > len(chain.steps):
        plan.cycle, step, round_ = plan.cycle + 1, 0, 0
        text = "Escalating again from step 1 after the chain ran out"
        plan.events.append(("restart", text, {"cycle": plan.cycle}))

    missed: list[_Claim] = []
    skipped: list[Position] = []
    last_round = round_
    position = chain.after(step, round_)
    while position is not None:
        # After downtime: pass every step whose successor was already due by now.
        if due + chain.step(position).delay <= now:
            claim = _Claim(plan.cycle, position, due, chain.step(position).targets, missed=True)
            plan.claims.append(claim)
            missed.append(claim)
            due += chain.step(position).delay
        else:
            current = chain.step(position)
            plan.claims.append(_Claim(plan.cycle, position, due, current.targets))
            try:
                plan.pages = resolver.reachable(current.targets)
            except ValueError as exc:
                plan.pages = _step_failed(row.ref, position, exc)
            if plan.pages:
                plan.live.paged = len(plan.pages)
                plan.next_at = now + current.delay
                break
            skipped.append(position)
            due = now
        last_round = position[1]
        position = chain.after(*position)

    if missed:
        resumed = "exhaustion" if position is None else _positions([position])
        text = f"The engine was behind: missed {_positions(c.position for c in missed)}, "
        data = [
            {"step": c.position[0], "round": c.position[1], "due_at": c.due_at.isoformat()}
            for c in missed
        ]
        plan.events.append(("missed", text + f"not paged; resuming at {resumed}", {"missed": data}))
    if skipped:
        text = f"Nobody on call or reachable for {_positions(skipped)}: moved on at once"
        data = [{"step": s, "round": r} for s, r in skipped]
        plan.events.append(("skipped", text, {"skipped": data}))
    plan.missed, plan.skipped = len(missed), len(skipped)
    if position is None:
        _plan_exhaustion(plan, (len(chain.steps) + 1, last_round), due, resolver)
    return plan


def _read_case_chain(plan: _Plan) -> Chain:
    try:
        return _chain_from_json(plan.row.snapshot)
    except ValueError as exc:
        log.error("%s: cannot read its policy (%s); using the fallback policy", plan.row.ref, exc)
        text = (
            f"The case's policy could not be read ({exc}); "
            f"escalating with {FALLBACK_POLICY['name']}"
        )
        plan.events.append(("fallback_policy", text, {}))
        return FALLBACK_CHAIN


def _plan_exhaustion(plan: _Plan, position: Position, due: datetime, resolver: _Resolver) -> None:
    """Out of steps: the supervisors on duty are paged once and nothing more is due."""
    plan.claims.append(_Claim(plan.cycle, position, due, SUPERVISORS))
    try:
        plan.pages = resolver.reachable(SUPERVISORS)
    except ValueError as exc:
        plan.pages = _step_failed(plan.row.ref, position, exc)
    plan.live.paged = len(plan.pages)
    plan.reason = "exhausted"
    plan.exhausted = True
    plan.next_at = None
    who = ", ".join(person.handle for person in plan.pages)
    if not who:
        who = "nobody (no supervisor is reachable)"
        log.warning("%s: escalation exhausted and no supervisor is reachable", plan.row.ref)
    rounds = position[1] + 1
    text = (
        f"Escalation exhausted after {rounds} round{'s' if rounds != 1 else ''}: "
        f"paging the supervisors on duty: {who}"
    )
    plan.events.append(("exhausted", text, {"round": position[1]}))


# --- writing a batch ----------------------------------------------------------------


class _Bulk:
    """Batch writes straight to the driver: executemany on SQLite, COPY on PostgreSQL.

    At thousands of rows the per-row parameter work of the ORM, and even of Core, costs
    several times what the database itself spends. Values still pass through the columns'
    own bind processors (`when`, `json`), so rows are stored exactly as the ORM stores them.
    """

    def __init__(self, session: Session) -> None:
        self.connection = session.connection()
        dialect = self.connection.dialect
        self.postgres = dialect.name == "postgresql"
        self.marker = "%s" if self.postgres else "?"
        self._quote = dialect.identifier_preparer.quote
        self._when = TIMELINE.c.at.type.dialect_impl(dialect).bind_processor(dialect)
        self._json = TIMELINE.c.data.type.dialect_impl(dialect).bind_processor(dialect)
        self._moments: dict[datetime | None, Any] = {}
        self._documents: dict[Any, Any] = {}

    def when(self, moment: datetime | None) -> Any:
        """A timestamp as the database takes it (a batch has only a few distinct ones)."""
        try:
            return self._moments[moment]
        except KeyError:
            value = self._when(moment) if self._when and moment is not None else moment
            self._moments[moment] = value
            return value

    def json(self, value: Any, *, same_as: Any = None) -> Any:
        """A JSON value as the database takes it; `same_as` keys a memo of repeated ones."""
        if same_as is not None and same_as in self._documents:
            return self._documents[same_as]
        document = self._json(value) if self._json else value
        if same_as is not None:
            self._documents[same_as] = document
        return document

    def _insert_sql(self, table: Table, columns: Sequence[str]) -> str:
        names = ", ".join(self._quote(name) for name in columns)
        markers = ", ".join([self.marker] * len(columns))
        return f"INSERT INTO {self._quote(table.name)} ({names}) VALUES ({markers})"

    def insert(self, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.postgres:
            # COPY: about twice as fast as executemany for plain inserts.
            names = ", ".join(self._quote(name) for name in columns)
            with (
                self._driver().cursor() as cursor,
                cursor.copy(f"COPY {self._quote(table.name)} ({names}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            return
        self.connection.exec_driver_sql(self._insert_sql(table, columns), rows)

    def _driver(self) -> Any:
        driver = self.connection.connection.driver_connection
        assert driver is not None
        return driver

    def insert_returning_ids(
        self, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> list[int]:
        """Insert and return the new rows' ids, in row order."""
        if self.postgres:
            with self._driver().cursor() as cursor:
                cursor.executemany(
                    self._insert_sql(table, columns) + " RETURNING id", rows, returning=True
                )
                ids = []
                while True:  # one result per row, in row order
                    ids.append(cursor.fetchone()[0])
                    if not cursor.nextset():
                        return ids
        # SQLite: this transaction holds the only writer lock, so the next ids are ours.
        last = self.connection.exec_driver_sql(
            f"SELECT coalesce(max(id), 0) FROM {self._quote(table.name)}"
        ).scalar_one()
        ids = list(range(int(last) + 1, int(last) + 1 + len(rows)))
        self.insert(table, ("id", *columns), [(i, *row) for i, row in zip(ids, rows, strict=True)])
        return ids

    def update(
        self, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]], *, touch: Any
    ) -> None:
        """Per row (values of `columns`, then the id): set them, `updated_at` = `touch` and
        `version` + 1."""
        sets = [f"{self._quote(name)} = {self.marker}" for name in (*columns, "updated_at")]
        sql = (
            f"UPDATE {self._quote(table.name)} SET {', '.join(sets)}, version = version + 1 "
            f"WHERE id = {self.marker}"
        )
        self.connection.exec_driver_sql(sql, [(*row[:-1], touch, row[-1]) for row in rows])


def write_plans(
    session: Session, head: AuditHead, plans: list[_Plan], now: datetime, engine_name: str
) -> None:
    """Write a batch's plans: one executemany per table, committed with the batch."""
    bulk = _Bulk(session)
    ran_at = bulk.when(now)
    bulk.insert(
        STEP_RUNS,
        CLAIM_COLUMNS,
        [
            (
                plan.row.id,
                claim.cycle,
                *claim.position,
                bulk.when(claim.due_at),
                ran_at,
                engine_name,
                bulk.json(list(claim.targets), same_as=claim.targets),
                claim.paged,
                claim.missed,
            )
            for plan in plans
            for claim in plan.claims
            if not claim.held
        ],
    )
    _insert_pages(bulk, plans, now)
    _insert_timeline(bulk, plans, now)
    _update_cases(bulk, plans, now)
    _append_audit(bulk, head, plans, now)
    session.add(head)


def _insert_pages(bulk: _Bulk, plans: list[_Plan], now: datetime) -> None:
    rows = []
    owners: list[tuple[_Plan, _Person]] = []
    now_at = bulk.when(now)
    for plan in plans:
        live = plan.live
        due_at = bulk.when(live.due_at)
        for person in plan.pages:
            rows.append(
                (plan.row.id, person.id, live.cycle, *live.position, plan.reason, due_at, now_at)
            )
            owners.append((plan, person))
    if not rows:
        return
    page_ids = bulk.insert_returning_ids(
        PAGES,
        PAGE_COLUMNS,
        rows,
    )
    bulk.insert(
        DELIVERIES,
        DELIVERY_COLUMNS,
        [
            (
                page_id,
                channel,
                contact_id,
                "pending",
                0,
                now_at,
                delivery_key(
                    plan.row.ref, plan.cycle, *plan.live.position, person.handle, contact_id
                ),
            )
            for page_id, (plan, person) in zip(page_ids, owners, strict=True)
            for contact_id, channel in person.contacts
        ],
    )


def _insert_timeline(bulk: _Bulk, plans: list[_Plan], now: datetime) -> None:
    rows: list[tuple[Any, ...]] = []
    at = bulk.when(now)
    for plan in plans:
        for kind, text, data in plan.events:
            rows.append((plan.row.id, at, kind, ACTOR, text, bulk.json(data)))
        if plan.pages:
            step, round_ = plan.live.position
            text, data = paged_event(
                [person.handle for person in plan.pages],
                cycle=plan.cycle,
                step=step,
                round_=round_,
                reason=plan.reason,
            )
            document = bulk.json(data, same_as=(plan.cycle, step, round_, plan.reason))
            rows.append((plan.row.id, at, "paged", None, text, document))
    bulk.insert(TIMELINE, ("case_id", "at", "kind", "actor", "text", "data"), rows)


def _update_cases(bulk: _Bulk, plans: list[_Plan], now: datetime) -> None:
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
            "next_escalation_at": bulk.when(plan.next_at),
        }
        if plan.exhausted != row.exhausted:
            changes["exhausted"] = plan.exhausted
        if plan.cycle != row.escalation_cycle:
            changes["escalation_cycle"] = plan.cycle
        if plan.assignee != row.assignee_id:
            changes["assignee_id"] = plan.assignee
        if plan.status != row.status:
            changes["status"] = plan.status
            changes["queue_rank"] = QUEUE_RANKS[plan.status]
            changes["acknowledged_at"] = bulk.when(plan.acknowledged_at)
            changes["acknowledged_by_id"] = plan.acknowledged_by
        groups[tuple(changes)].append((*changes.values(), row.id))
    updated_at = bulk.when(now)
    for columns, rows in groups.items():
        bulk.update(CASES, columns, rows, touch=updated_at)
    bulk.insert(CHANGES, ("case_id", "at"), [(plan.row.id, updated_at) for plan in plans])


def _append_audit(bulk: _Bulk, head: AuditHead, plans: list[_Plan], now: datetime) -> None:
    """One chained audit record per case (actor "engine"), appended in one statement."""
    rows = []
    seq, previous = head.seq, head.hash
    at = bulk.when(now)
    for plan in plans:
        seq += 1
        key, detail = plan.detail()
        digest = audit.record_digest(previous, seq, now, ACTOR, plan.action, plan.row.ref, detail)
        document = bulk.json(detail, same_as=key)
        rows.append((seq, at, ACTOR, plan.action, plan.row.ref, document, previous, digest))
        previous = digest
    bulk.insert(
        AUDIT_RECORDS,
        ("seq", "at", "actor", "action", "case_ref", "detail", "prev_hash", "hash"),
        rows,
    )
    head.seq, head.hash = seq, previous


# --- the engine ---------------------------------------------------------------------


class EscalationEngine:
    """Pages due escalation steps from the database; any number may share one database."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        name: str = "engine",
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_change: Callable[[list[int]], None] | None = None,
    ) -> None:
        """`on_change` is told the ids of the cases each committed batch changed (the
        console refreshes those rows); it runs on the engine's thread."""
        if batch_size < 1:
            raise ValueError(f"batch_size: expected at least 1, got {batch_size}")
        self.db = db
        self.clock = clock
        self.name = name
        self.batch_size = batch_size
        self.on_change = on_change
        self.started_at = clock.now()
        self._failing: dict[int, datetime] = {}

    # -- public ---------------------------------------------------------------------

    def run_due(self, *, case_ids: Iterable[int] | None = None) -> CycleResult:
        """Page everything due now (only `case_ids`, when given), batch by batch.

        A full run (no `case_ids`) also records the engine's heartbeat.
        """
        ids = None if case_ids is None else sorted(set(case_ids))
        result = CycleResult()
        if ids is None or ids:
            while self._anything_due(ids):
                batch = self._run_batch(ids, self.batch_size)
                result.add(batch)
                if batch.cases + batch.failed < self.batch_size:
                    break
        if ids is None:
            self._beat()
        if result.cases or result.failed:
            log.info(
                "%s: %d cases, %d pages, %d missed, %d skipped, %d exhausted, %d failed",
                self.name,
                result.cases,
                result.pages,
                result.missed,
                result.skipped,
                result.exhausted,
                result.failed,
            )
        return result

    def next_due_at(self) -> datetime | None:
        """When the engine next has something to do (a failed case's retry included)."""
        self._forget_recovered()
        query = select(func.min(Case.next_escalation_at)).where(
            col(Case.status).in_((TRIGGERED, ACKNOWLEDGED))
        )
        if self._failing:
            query = query.where(col(Case.id).not_in(list(self._failing)))
        with self.db.read() as session:
            due: datetime | None = session.exec(query).one()
        retries = list(self._failing.values())
        return min([due, *retries]) if due is not None else min(retries, default=None)

    def audit_repair(self) -> int:
        """Make due now every triggered case that has lost its next escalation time.

        Such a case would never page again; each repair is recorded in its timeline.
        """
        query = select(Case).where(
            Case.status == TRIGGERED,
            col(Case.next_escalation_at).is_(None),
            col(Case.exhausted).is_(False),
        )
        with self.db.read() as session:
            if session.exec(query.limit(1)).first() is None:
                return 0
        if self.db.is_postgres:
            query = query.with_for_update(skip_locked=True)
        with self.db.write() as session:
            audit.lock_head(session)
            now = self.clock.now()
            cases = session.exec(query).all()
            for case in cases:
                case.next_escalation_at = now
                add_timeline(
                    session,
                    case,
                    now,
                    "repair",
                    "Escalation had stalled (triggered with no next step time); "
                    "the engine's audit made it due now",
                    ACTOR,
                )
                record_change(session, case, now)
                audit.append(
                    session, at=now, actor=ACTOR, action="engine.repair", case_ref=case.ref
                )
            refs = [case.ref for case in cases]
            changed = [case.id for case in cases if case.id is not None]
        if refs:
            log.warning("repaired stalled escalation of %s", ", ".join(refs))
            self._changed(changed)
        return len(refs)

    # -- claiming -------------------------------------------------------------------

    def _forget_recovered(self) -> None:
        now = self.clock.now()
        for case_id in [i for i, retry_at in self._failing.items() if retry_at <= now]:
            del self._failing[case_id]

    def _due(self, now: datetime, ids: list[int] | None, *columns: Any) -> Any:
        """A query of `columns` of the cases due at `now` (of `ids`, not failing)."""
        query = sql_select(*columns).where(
            CASES.c.status.in_((TRIGGERED, ACKNOWLEDGED)),
            CASES.c.next_escalation_at.is_not(None),
            CASES.c.next_escalation_at <= now,
        )
        if ids is not None:
            query = query.where(CASES.c.id.in_(ids))
        if self._failing:
            query = query.where(CASES.c.id.not_in(list(self._failing)))
        return query

    def _anything_due(self, ids: list[int] | None) -> bool:
        """A cheap read first, so an idle engine never takes the writer lock."""
        self._forget_recovered()
        with self.db.read() as session:
            query = self._due(self.clock.now(), ids, CASES.c.id).limit(1)
            return session.execute(query).first() is not None

    def _claim(self, session: Session, now: datetime, ids: list[int] | None, limit: int) -> Any:
        """The `limit` earliest due cases, earliest first, locked for this transaction.

        First their ids, per status in the due index's own order (`IN` over both statuses
        would sort every due row for every batch), then the rows themselves.
        """
        earliest: list[tuple[datetime, int]] = []
        for status in (TRIGGERED, ACKNOWLEDGED):
            query = self._due(now, ids, CASES.c.next_escalation_at, CASES.c.id)
            query = query.where(CASES.c.status == status).order_by(
                CASES.c.status, CASES.c.next_escalation_at, CASES.c.id
            )
            earliest.extend((due, case_id) for due, case_id in session.execute(query.limit(limit)))
        chosen = [case_id for _, case_id in sorted(earliest)[:limit]]
        if not chosen:
            return []
        query = self._due(now, chosen, *CLAIMED_COLUMNS)
        if self.db.is_postgres:
            # Several engines share the database: each takes cases the others have not.
            query = query.with_for_update(skip_locked=True, of=CASES)
        rows = session.execute(query).all()
        return sorted(rows, key=lambda row: (row.next_escalation_at, row.id))

    def _run_batch(
        self, ids: list[int] | None, limit: int, *, careful: bool = False
    ) -> CycleResult:
        """Claim, plan and write one batch in one transaction.

        If the batch fails as a whole, its cases are retried one by one (`careful`), so one
        bad case cannot hold up the rest.
        """
        refs: dict[int, str] = {}
        result = CycleResult(batches=1)
        try:
            with self.db.write() as session:
                head = audit.lock_head(session)
                now = self.clock.now()
                rows = self._claim(session, now, ids, limit)
                refs = {row.id: row.ref for row in rows}
                plans = self._plan_all(session, rows, now, result)
                if careful:
                    _drop_existing_claims(session, plans)
                if plans:
                    write_plans(session, head, plans, now, self.name)
        except Exception:
            if not refs:
                raise  # not one case's fault: the database itself is in trouble
            if careful:
                [(case_id, ref)] = refs.items()
                self._failed(case_id, ref)
                return CycleResult(batches=1, failed=1)
            if len(refs) > 1:
                log.warning("a batch of %d cases failed; retrying them one by one", len(refs))
            result = CycleResult()
            for case_id in refs:
                result.add(self._run_batch([case_id], 1, careful=True))
            return result
        self._changed([plan.row.id for plan in plans])
        for plan in plans:
            result.cases += 1
            result.pages += len(plan.pages)
            result.missed += plan.missed
            result.skipped += plan.skipped
            result.exhausted += plan.exhausted
        return result

    def _plan_all(
        self, session: Session, rows: Sequence[Row[Any]], now: datetime, result: CycleResult
    ) -> list[_Plan]:
        resolver = _Resolver(session, now)
        plans = []
        for row in rows:
            try:
                plans.append(plan_case(row, now, resolver))
            except Exception:
                self._failed(row.id, row.ref)
                result.failed += 1
        return plans

    def _changed(self, case_ids: list[int]) -> None:
        if self.on_change is None or not case_ids:
            return
        try:
            self.on_change(case_ids)
        except Exception:
            log.exception("the engine's change listener failed")

    def _failed(self, case_id: int, ref: str) -> None:
        retry_at = self.clock.now() + RETRY_FAILED_AFTER
        self._failing[case_id] = retry_at
        log.exception("%s: escalation failed; retrying at %s", ref, _at(retry_at))

    # -- heartbeat ------------------------------------------------------------------

    def _beat(self) -> None:
        now = self.clock.now()
        insert = pg_insert if self.db.is_postgres else sqlite_insert
        statement = (
            insert(HEARTBEATS)
            .values(name=self.name, started_at=self.started_at, last_cycle_at=now, cycles=1)
            .on_conflict_do_update(
                index_elements=["name"],
                set_={
                    "started_at": self.started_at,
                    "last_cycle_at": now,
                    "cycles": HEARTBEATS.c.cycles + 1,
                },
            )
        )
        with self.db.write() as session:
            session.execute(statement)


def _drop_existing_claims(session: Session, plans: list[_Plan]) -> None:
    """Claims someone already holds were paged (or passed): drop them, never page twice."""
    existing = {
        (case_id, cycle, (step, round_))
        for case_id, cycle, step, round_ in session.execute(
            sql_select(
                STEP_RUNS.c.case_id, STEP_RUNS.c.cycle, STEP_RUNS.c.step, STEP_RUNS.c.round
            ).where(STEP_RUNS.c.case_id.in_([plan.row.id for plan in plans]))
        )
    }

    def held(plan: _Plan, claim: _Claim) -> bool:
        return (plan.row.id, claim.cycle, claim.position) in existing

    for plan in plans:
        if held(plan, plan.live):
            log.warning(
                "%s: %s was already claimed; not paging it again",
                plan.row.ref,
                _positions([plan.live.position]),
            )
            plan.pages = []
        for claim in plan.claims:
            claim.held = held(plan, claim)


def last_heartbeat(db: Database, name: str | None = None) -> datetime | None:
    """When an engine (`name`, else any) last completed a full cycle."""
    query = select(func.max(EngineHeartbeat.last_cycle_at))
    if name is not None:
        query = query.where(EngineHeartbeat.name == name)
    with db.read() as session:
        moment: datetime | None = session.exec(query).one()
        return moment


# --- the runner ---------------------------------------------------------------------


class EngineRunner:
    """Drives an engine from an APScheduler 3 scheduler (BackgroundScheduler headless,
    AsyncIOScheduler in the console): the jobs only wake the runner's worker thread.

    Jobs: `wake` (a date job re-armed at the next due time after every cycle), `sweep`
    (every `sweep_every`, a safety net), `audit` (every `audit_every`, `audit_repair`) and
    `outbox` (every `outbox_every`, the webhook outbox in the scheduler's own thread pool).
    """

    LOCKED_RETRY = timedelta(milliseconds=100)

    def __init__(
        self,
        engine: EscalationEngine,
        scheduler: BaseScheduler,
        *,
        sweep_every: timedelta = timedelta(seconds=5),
        audit_every: timedelta = timedelta(minutes=3),
        outbox_every: timedelta = timedelta(seconds=2),
        webhook_client: httpx.Client | None = None,
        on_cycle: Callable[[CycleResult], None] | None = None,
    ) -> None:
        self.engine = engine
        self.scheduler = scheduler
        self.sweep_every = sweep_every
        self.audit_every = audit_every
        self.outbox_every = outbox_every
        self.on_cycle = on_cycle
        self.jobstore = f"vigil-engine:{engine.name}"
        self._client = webhook_client
        self._owns_client = webhook_client is None
        self._signal = threading.Event()
        self._outbox_lock = threading.Lock()
        self._stopping = False
        self._audit_due = False
        self._failing_since: datetime | None = None
        self._thread: threading.Thread | None = None

    @property
    def job_ids(self) -> dict[str, str]:
        return {kind: f"{self.jobstore}:{kind}" for kind in ("wake", "sweep", "audit", "outbox")}

    def _job_options(self) -> dict[str, Any]:
        return {
            "jobstore": self.jobstore,
            "replace_existing": True,
            "misfire_grace_time": None,
            "coalesce": True,
            "max_instances": 1,
        }

    def start(self) -> None:
        """Add the jobs and the worker; the first cycle (with an audit) runs at once."""
        if self._thread is not None:
            raise RuntimeError("the engine runner is already started")
        if self._client is None:
            self._client = make_client()
        self.scheduler.add_jobstore(MemoryJobStore(), alias=self.jobstore)
        ids = self.job_ids
        every = {"timezone": UTC}
        self.scheduler.add_job(
            self.wake,
            IntervalTrigger(seconds=self.sweep_every.total_seconds(), **every),
            id=ids["sweep"],
            **self._job_options(),
        )
        self.scheduler.add_job(
            self._request_audit,
            IntervalTrigger(seconds=self.audit_every.total_seconds(), **every),
            id=ids["audit"],
            **self._job_options(),
        )
        self.scheduler.add_job(
            self._send_webhooks,
            IntervalTrigger(seconds=self.outbox_every.total_seconds(), **every),
            id=ids["outbox"],
            **self._job_options(),
        )
        self._thread = threading.Thread(
            target=self._work, name=f"vigil-engine:{self.engine.name}", daemon=True
        )
        self._thread.start()
        self._request_audit()

    def wake(self) -> None:
        """Run a cycle now (thread-safe); call it after a local change such as a new case."""
        self._signal.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Let a running cycle finish, stop the worker, then remove the jobs."""
        self._stopping = True
        self._signal.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for job_id in self.job_ids.values():
            self._remove_job(job_id)
        with contextlib.suppress(KeyError):
            self.scheduler.remove_jobstore(self.jobstore)
        with self._outbox_lock:  # an outbox run already under way finishes first
            if self._owns_client and self._client is not None:
                self._client.close()
            self._client = None

    # -- jobs (they only signal) and the worker -----------------------------------

    def _request_audit(self) -> None:
        self._audit_due = True
        self._signal.set()

    def _send_webhooks(self) -> None:
        with self._outbox_lock:
            if self._client is None:
                return
            try:
                process_webhook_outbox(self.engine.db, self.engine.clock, self._client)
            except Exception:
                log.exception("webhook outbox run failed; retrying at its next run")

    def _work(self) -> None:
        while True:
            self._signal.wait()
            self._signal.clear()
            if self._stopping:
                return
            self._cycle()

    def _cycle(self) -> None:
        result: CycleResult | None = None
        try:
            if self._audit_due:
                self._audit_due = False
                self.engine.audit_repair()
            result = self.engine.run_due()
            self._arm(result)
        except Exception:
            self._report_failure()
        else:
            if self._failing_since is not None:
                log.info("escalation cycles work again")
                self._failing_since = None
        if result is not None:
            if result.pages:
                self._nudge_outbox()
            if self.on_cycle is not None:
                try:
                    self.on_cycle(result)
                except Exception:
                    log.exception("the engine runner's cycle listener failed")

    def _report_failure(self) -> None:
        """An outage fails every cycle: say so at ERROR once, then quietly until it ends."""
        if self._failing_since is None:
            self._failing_since = self.engine.clock.now()
            log.exception("escalation cycle failed; retrying every %s", self.sweep_every)
        else:
            log.warning("escalation cycle failed again (since %s)", _at(self._failing_since))

    def _arm(self, result: CycleResult) -> None:
        """Re-arm the wake job at the next due time.

        The scheduler runs on the wall clock, the engine on its injected clock: the job is
        armed after the same wait, so the two agree whichever clock the engine has.
        """
        due = self.engine.next_due_at()
        wake_id = self.job_ids["wake"]
        if due is None:
            self._remove_job(wake_id)
            return
        wait = due - self.engine.clock.now()
        if wait <= timedelta(0):
            if result.cases:
                self._signal.set()  # more became due while this cycle ran
                return
            wait = self.LOCKED_RETRY  # held by another engine or a console: look again
        self.scheduler.add_job(
            self.wake,
            DateTrigger(run_date=datetime.now(UTC) + wait, timezone=UTC),
            id=wake_id,
            **self._job_options(),
        )

    def _nudge_outbox(self) -> None:
        with contextlib.suppress(JobLookupError):
            self.scheduler.modify_job(
                self.job_ids["outbox"], self.jobstore, next_run_time=datetime.now(UTC)
            )

    def _remove_job(self, job_id: str) -> None:
        with contextlib.suppress(JobLookupError, KeyError):
            self.scheduler.remove_job(job_id, self.jobstore)


# --- headless ---------------------------------------------------------------------


@dataclass
class _SignalHandlers:
    """SIGINT and SIGTERM set a stop event (only the main thread may install handlers)."""

    stop: threading.Event
    received: list[str] = field(default_factory=list)
    previous: dict[int, Any] = field(default_factory=dict)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        # No logging here: a handler may interrupt the logging module while it holds a lock.
        self.received.append(signal.Signals(signum).name)
        self.stop.set()

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def run_headless(
    db_url_or_db: str | Database,
    clock: Clock,
    *,
    once: bool,
    stop_event: threading.Event | None = None,
    name: str | None = None,
) -> int:
    """`vigil engine`: with `once`, page what is due and send the outbox once; otherwise run
    until SIGINT/SIGTERM (or `stop_event`) and stop cleanly. Returns the exit code."""
    db = Database.open(db_url_or_db) if isinstance(db_url_or_db, str) else db_url_or_db
    engine = EscalationEngine(db, clock, name=name or f"engine@{socket.gethostname()}")
    try:
        if once:
            engine.audit_repair()
            result = engine.run_due()
            with make_client() as client:
                outbox = process_webhook_outbox(db, clock, client)
            log.info(
                "once: %d pages for %d cases; webhooks: %d sent, %d retried, %d failed",
                result.pages,
                result.cases,
                outbox.sent,
                outbox.retried,
                outbox.failed,
            )
            return 0
        handlers = _SignalHandlers(stop_event or threading.Event())
        handlers.install()
        scheduler = BackgroundScheduler(timezone=UTC)
        runner = EngineRunner(engine, scheduler)
        scheduler.start()
        runner.start()
        log.info("engine %s running against %s", engine.name, db.display_name)
        try:
            while not handlers.stop.wait(1.0):
                pass
            for signal_name in handlers.received:
                log.info("received %s; stopping", signal_name)
        finally:
            runner.stop()
            scheduler.shutdown(wait=True)
            handlers.restore()
        log.info("engine %s stopped", engine.name)
        return 0
    finally:
        if isinstance(db_url_or_db, str):
            db.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m app.engine [--db URL] [--once]`: the engine alone, for operators and tests."""
    parser = argparse.ArgumentParser(prog="python -m app.engine", description=main.__doc__)
    parser.add_argument("--db", default=None, help="database URL (default: VIGIL_DB or ~/.local)")
    parser.add_argument("--once", action="store_true", help="process what is due, then exit")
    parser.add_argument("--name", default=None, help="this engine's name in the heartbeat table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return run_headless(args.db or default_url(), SystemClock(), once=args.once, name=args.name)
    except DatabaseError as exc:  # a database it cannot open: a sentence, not a traceback
        log.error("%s", exc)
        return 2 if str(exc).startswith("--db") else 1


if __name__ == "__main__":
    sys.exit(main())

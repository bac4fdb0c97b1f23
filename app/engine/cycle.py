"""One escalation cycle: find what is due, claim it, page it, move each case on.

`EscalationEngine` is the whole of escalation without a scheduler or an HTTP client, so
what pages at once (`vigil page`, `vigil escalate`) imports only this; the loop that runs it
(`EngineRunner`), the outbox and the signals live in `app.engine.runner`.
"""

from __future__ import annotations

import gc
import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import ProgrammingError
from sqlmodel import Session, col, func, select

from app.core.clock import Clock
from app.core.errors import VigilError
from app.engine.planning import (
    ACKNOWLEDGED,
    TRIGGERED,
    DueCase,
    Plan,
    Resolver,
    plan_case,
    plan_delay_notice,
    readable_utc,
)
from app.engine.store import (
    BulkWriter,
    anything_due,
    claim_due,
    drop_existing_claims,
    write_plans,
)
from app.services import heartbeats
from app.services.cases import CaseService
from app.services.unit_of_work import ENGINE, UnitOfWork
from data import audit
from data.clock import DatabaseClock
from data.db import Database
from data.dialects import upsert_insert
from data.domain import EngineAction, TimelineKind
from data.escalation import EngineHeartbeat
from data.models import AuditHead, Case
from data.outage import is_database_trouble
from data.types import table_of

log = logging.getLogger("vigil.engine")

# A batch holds the writer lock (SQLite) and the audit chain's lock while it is written, so
# a console's acknowledgement may wait for one batch: 1,000 keeps that wait near 50 ms on
# SQLite (130 ms on PostgreSQL) while the per-statement cost stays small beside the per-case
# cost (at 500 a burst of 10,000 pages takes a quarter longer on PostgreSQL).
DEFAULT_BATCH_SIZE = 1000
WRITE_SLICE = 250
"""Cases whose rows are sent together within a batch (see `_run_batch`)."""
RETRY_FAILED_AFTER = timedelta(minutes=1)
HEARTBEATS = table_of(EngineHeartbeat)
HEARTBEATS_KEPT = timedelta(days=7)
"""How long a heartbeat outlives its engine's last cycle. Every process that runs an engine
beats under a name of its own, so without clearing them the table grows by a row a start."""


# --- names ------------------------------------------------------------------------


HEADLESS = "engine@"
"""How the name of a headless engine (`vigil engine`) starts; a console's or a command's
engine is named after it (`console:ana@…`, `cli:ana@…`)."""


def engine_name(kind: str = "engine") -> str:
    """A name no other engine has, for heartbeats and step runs: `engine@host/pid/3f9a1c`
    (two engines on one host, or one restarted with the same pid, still differ)."""
    return f"{kind}@{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a batch is built and written: a batch
    makes tens of thousands of short-lived objects, none of them in cycles, and the
    collector's passes over them cost about a tenth of the batch."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# --- results ------------------------------------------------------------------------


@dataclass
class CycleResult:
    """What one `run_due` did."""

    cases: int = 0
    """Cases claimed and moved on."""
    pages: int = 0
    missed: int = 0
    """Steps overtaken after downtime (their people paged late: `late`)."""
    late: int = 0
    """Pages sent late by catch-ups."""
    delayed: int = 0
    """Cases whose escalation was held up (steps overtaken, or paged late)."""
    notices: int = 0
    """Supervisors told that escalation was delayed."""
    skipped: int = 0
    """Steps with nobody to page, passed at once."""
    exhausted: int = 0
    failed: int = 0
    """Cases that raised; left out of claims for `RETRY_FAILED_AFTER`."""
    batches: int = 0

    def add(self, other: CycleResult) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


# --- the engine ---------------------------------------------------------------------


class EscalationEngine:
    """Pages due escalation steps from the database; any number may share one database."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        name: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_change: Callable[[list[int]], None] | None = None,
    ) -> None:
        """`on_change` is told the ids of the cases each committed batch changed (the
        console refreshes those rows); it runs on the engine's thread."""
        if batch_size < 1:
            raise ValueError(f"batch_size: expected at least 1, got {batch_size}")
        self.db = db
        self.clock = DatabaseClock(db, clock)
        """The database's time (the host's `clock` plus the offset measured each cycle)."""
        self.work = UnitOfWork(db, clock)
        """The door every change of a case passes through: the engine's batches too, as
        the engine (`ENGINE`), their rows then written in bulk (`app.engine.store`)."""
        self.name = name or engine_name()
        """Unique per engine (`engine_name`): in its heartbeat and in every step run."""
        self.batch_size = batch_size
        self.on_change = on_change
        self.started_at: datetime | None = None
        """When the first cycle ran (the database's time)."""
        self._failing: dict[int, datetime] = {}
        self._cleared = False
        """Whether old heartbeats were cleared (`_clear_old_heartbeats`)."""

    # -- public ---------------------------------------------------------------------

    def run_due(self, *, case_ids: Iterable[int] | None = None) -> CycleResult:
        """Page everything due now (only `case_ids`, when given), batch by batch.

        A full run (no `case_ids`) also records the engine's heartbeat.
        """
        ids = None if case_ids is None else sorted(set(case_ids))
        self.clock.sync()
        if self.started_at is None:
            self.started_at = self.clock.now()
        result = CycleResult()
        if ids is None:
            self._open_silent_heartbeats()
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
                "%s: %d cases, %d pages (%d late, %d delay notices), %d overtaken, %d skipped, "
                "%d exhausted, %d failed",
                self.name,
                result.cases,
                result.pages,
                result.late,
                result.notices,
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
            silent = heartbeats.next_deadline(session)
        moments = [moment for moment in (due, silent) if moment is not None]
        return min([*moments, *self._failing.values()], default=None)

    def audit_repair(self) -> int:
        """Make due now every triggered case that has lost its next escalation time.

        Such a case would never page again; each repair is recorded in its timeline.
        """
        query = select(Case).where(
            Case.status == TRIGGERED,
            col(Case.next_escalation_at).is_(None),
            col(Case.exhausted).is_(False),
        )
        self.clock.sync()
        with self.db.read() as session:
            if session.exec(query.limit(1)).first() is None:
                return 0
        if self.db.is_postgres:
            query = query.with_for_update(skip_locked=True)
        with self.work(ENGINE, at=self.clock.now) as tx:
            cases = tx.session.exec(query).all()
            for case in cases:
                case.next_escalation_at = tx.now
                tx.journal(
                    case,
                    TimelineKind.REPAIR,
                    "Escalation had stalled (triggered with no next step time); "
                    "the engine's audit made it due now",
                )
                tx.finish(case, EngineAction.REPAIR, {})
            refs = [case.ref for case in cases]
        if refs:
            log.warning("repaired stalled escalation of %s", ", ".join(refs))
            self._changed(tx.changed)
        return len(refs)

    # -- claiming -------------------------------------------------------------------

    def _open_silent_heartbeats(self) -> None:
        """Open the case of every heartbeat monitor silent past its deadline; its first
        step pages in this same cycle."""
        service = CaseService(self.db, self.clock, on_change=self._one_changed)
        try:
            opened = heartbeats.open_missed(service)
        except VigilError as exc:  # a monitor's policy since removed, say: tell, go on
            log.warning("%s: a silent heartbeat's case could not open: %s", self.name, exc)
            return
        if opened:
            log.warning("%s: silent heartbeat monitors, opened %s", self.name, " ".join(opened))

    def _one_changed(self, case_id: int) -> None:
        if self.on_change is not None:
            self.on_change([case_id])

    def _forget_recovered(self) -> None:
        now = self.clock.now()
        for case_id in [i for i, retry_at in self._failing.items() if retry_at <= now]:
            del self._failing[case_id]

    def _anything_due(self, ids: list[int] | None) -> bool:
        self._forget_recovered()
        with self.db.read() as session:
            return anything_due(BulkWriter(session), self.clock.now(), ids, self._failing)

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
            with collector_paused(), self.work(ENGINE, at=self.clock.now) as tx:
                session, now = tx.session, tx.now
                head = audit.lock_head(session)  # the chain's head, locked by the unit of work
                writer = BulkWriter(session)
                due = claim_due(writer, now, ids, self._failing, limit)
                refs = {case.id: case.ref for case in due}
                resolver = Resolver(session, now)
                plans = self._plan_all(resolver, due, now, result)
                self._write(writer, head, plans, resolver, careful=careful)
        except Exception as exc:
            if not refs or is_database_trouble(exc):
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
            result.pages += len(plan.pages) + plan.late_pages + len(plan.notice)
            result.late += plan.late_pages
            result.delayed += plan.delayed
            result.notices += len(plan.notice)
            result.missed += plan.missed
            result.skipped += plan.skipped
            result.exhausted += plan.exhausted
        return result

    def page_within(
        self, session: Session, now: datetime, case_ids: Sequence[int]
    ) -> dict[int, list[str]]:
        """Page what is due at `now` for `case_ids` inside the caller's transaction (a case
        being opened pages its first step before it commits), with the same claims as a
        cycle, so no cycle pages it again. Returns the handles paged, by case id.

        Unlike a cycle, a failure is not set aside for a retry: it undoes the caller's
        change, which is the point (never a case stored without its first page). The
        caller's change has fed each case to the consoles already (`record_change`).
        """
        head = audit.lock_head(session)
        writer = BulkWriter(session)
        due = claim_due(writer, now, case_ids, (), len(case_ids))
        resolver = Resolver(session, now)
        plans = [plan_case(case, now, resolver) for case in due]
        self._write(writer, head, plans, resolver, careful=False, fed=True)
        return {plan.row.id: [person.handle for person in plan.pages] for plan in plans}

    def _write(
        self,
        writer: BulkWriter,
        head: AuditHead,
        plans: list[Plan],
        resolver: Resolver,
        *,
        careful: bool,
        fed: bool = False,
    ) -> None:
        """Write the plans of one batch at the resolver's instant (`careful`: claims someone
        already holds are left out; `fed`: see `write_plans`)."""
        now = resolver.at
        if careful:
            drop_existing_claims(writer, plans)
        plan_delay_notice(plans, now, resolver)
        # Sent a slice at a time without waiting (PostgreSQL): the server writes one slice
        # while the rows of the next are built.
        with writer.pipelined():
            for start in range(0, len(plans), WRITE_SLICE):
                sliced = plans[start : start + WRITE_SLICE]
                write_plans(writer, head, sliced, now, self.name, fed=fed)

    def _plan_all(
        self, resolver: Resolver, due: Sequence[DueCase], now: datetime, result: CycleResult
    ) -> list[Plan]:
        """`plan_case` for each case; one that raises is set aside for a retry.

        A burst is mostly cases in one state (opened together on one policy), so each state
        (`DueCase.state`) is planned once and copied for the other cases in it.
        """
        plans: list[Plan] = []
        planned: dict[tuple[object, ...], Plan] = {}
        for case in due:
            state = case.state()
            template = planned.get(state)
            if template is not None:
                plans.append(template.copy_for(case))
                continue
            try:
                plan = plan_case(case, now, resolver)
            except Exception:
                self._failed(case.id, case.ref)
                result.failed += 1
                continue
            planned[state] = plan
            plans.append(plan)
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
        log.exception("%s: escalation failed; retrying at %s", ref, readable_utc(retry_at))

    # -- heartbeat ------------------------------------------------------------------

    def _beat(self) -> None:
        now = self.clock.now()
        statement = (
            upsert_insert(self.db.engine.dialect.name, HEARTBEATS)
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
            if not self._cleared:
                self._clear_old_heartbeats(session, now)
        self._cleared = True

    def _clear_old_heartbeats(self, session: Session, now: datetime) -> None:
        """Once per engine, with its first heartbeat: those of engines gone for
        `HEARTBEATS_KEPT` (a login that may not delete them, on a desk whose roles predate
        this, leaves them)."""
        try:
            with session.begin_nested():
                session.execute(
                    HEARTBEATS.delete().where(HEARTBEATS.c.last_cycle_at < now - HEARTBEATS_KEPT)
                )
        except ProgrammingError as exc:
            log.info("%s: old engine heartbeats left in place: %s", self.name, exc.orig)


def last_heartbeat(
    db: Database, name: str | None = None, *, other_than: str | None = None
) -> datetime | None:
    """When an engine (`name`, else any but `other_than`) last completed a full cycle."""
    query = select(func.max(EngineHeartbeat.last_cycle_at))
    if name is not None:
        query = query.where(EngineHeartbeat.name == name)
    if other_than is not None:
        query = query.where(EngineHeartbeat.name != other_than)
    with db.read() as session:
        moment: datetime | None = session.exec(query).one()
        return moment


# --- the runner ---------------------------------------------------------------------

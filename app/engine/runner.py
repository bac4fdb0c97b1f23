"""The escalation engine: pages what is due, exactly once and never early.

The database is the only queue. A case is due when it is triggered (or acknowledged with an
acknowledgement timeout) and its `next_escalation_at` has passed. `EscalationEngine.run_due`
claims due cases in batches, one write transaction each: it takes the audit chain's lock
first (the order the case service uses, so the two never deadlock), then the due rows
(PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: `BEGIN IMMEDIATE` already serialises
writers), resolves each step's targets at page time and decides each case's plan
(`app.engine.planning`) and, in the same transaction, writes them in bulk
(`app.engine.store`): the `StepRun` claim of each (case, cycle, step, round), whose
unique constraint is the last line of defence against a double page, the pages,
deliveries, timeline, change feed and audit records, and each case moved on. A crash
anywhere rolls all of it back, so the next engine finds the case still due. Nothing is
ever paged before `now >= due`.

Semantics (the design's contract):

* A new case pages step 1 at once; while it stays triggered each step's delay after the
  previous page leads to the next step; after the last step the chain starts over `repeat`
  more times; then it is exhausted: the supervisors on duty are paged once (reason
  "exhausted"), `exhausted` is set and nothing more is due. The supervisors' page sits one
  step past the last (`escalation_step == len(steps) + 1`), so their acknowledgement finds it.
* Targets are resolved when the step is paged, not when the case opened. A step whose
  targets resolve to nobody reachable (a coverage gap, nobody with a contact method) does
  not wait its delay: the chain moves on at once and the timeline says so.
* After downtime (no engine running, the database unreachable) nobody is left out: the
  case goes on from the step it would have reached by now (each overtaken step taking its
  full delay), which pages as usual, and everyone an overtaken step would have paged (the
  people its targets meant at its due time) is paged once now, late (reason "catch-up",
  with its own due time, so how late is on the page), under that step's own claim (a
  `StepRun` marked missed, i.e. overtaken). A person is paged once per catch-up however
  many overtaken steps name them, and not at all if the live step pages them. The
  timeline says what happened ("catch_up"). The supervisors on duty get one notice per
  batch that escalation was delayed (how long, how many cases, which; reason "delayed",
  on the most delayed case, riding on its live claim so it is written exactly once with
  it). A case paged `LATE_AFTER` late or more counts as delayed even with no step
  overtaken. A step waits at least `MIN_STEP_DELAY`, so a zero delay cannot make every
  step overtaken.
* Time is the database's (`data.clock.DatabaseClock`): on PostgreSQL each cycle measures
  the offset to the server's clock and every due decision and recorded time is the host's
  clock plus that offset, so a host with a wrong clock never pages early; a host more than
  2 s off says so once in the log and in `EscalationEngine.clock.skew`.
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
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

import httpx
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from app.core.clock import Clock, SystemClock
from app.core.errors import Refused
from app.core.logs import stderr_log
from app.delivery.webhook import (
    DEFAULT_SETTINGS,
    OutboxSettings,
    WebhookOutbox,
    process_webhook_outbox,
)
from app.engine.cycle import CycleResult, EscalationEngine, engine_name, last_heartbeat
from app.engine.planning import (
    read_chain,
)
from app.services.casework.tipline import TiplineService
from app.services.unit_of_work import ENGINE
from data.db import Database, DatabaseError, default_url
from data.outage import OutageLog
from data.wal import BackgroundCheckpoints

log = logging.getLogger("vigil.engine")

__all__ = [
    "CycleResult",
    "EngineRunner",
    "EscalationEngine",
    "OutageLog",
    "engine_name",
    "last_heartbeat",
    "read_chain",
    "run_headless",
]


class _Waker:
    """A daemon thread that runs `work` once per wake-up; wake-ups while it runs merge.

    With `every`, it also runs `work` when the scheduler's sweep (`sweep`, an interval job)
    has not come for that long, on the monotonic clock: APScheduler times its jobs by the
    wall clock, and a host clock set back (NTP correcting a clock that ran fast, a VM
    resumed) holds every job back by as much. `quiet` is called first on such a run. A
    stall is logged when it starts and when the sweep comes again; other wake-ups (a
    local change, a case paged elsewhere) neither end one nor start one."""

    def __init__(
        self,
        name: str,
        work: Callable[[], None],
        *,
        every: timedelta | None = None,
        quiet: Callable[[], None] | None = None,
        what: str = "",
    ) -> None:
        self._work = work
        self._every = None if every is None else every.total_seconds()
        self._quiet = quiet
        self._what = what
        self._swept_at = self._own_at = time.monotonic()
        self._stalled = False
        self._signal = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._swept_at = self._own_at = time.monotonic()
        self._thread.start()

    def wake(self) -> None:
        self._signal.set()

    def sweep(self) -> None:
        """The scheduler's interval job: a wake-up, and a sign the scheduler keeps time."""
        self._swept_at = time.monotonic()
        self._signal.set()

    def stop(self, timeout: float) -> None:
        """Let a run under way finish (up to `timeout`), then end the thread."""
        self._stopping = True
        self._signal.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            self._signal.wait(self._until_overdue())
            self._signal.clear()
            if self._stopping:
                return
            self._notice_the_scheduler()
            self._work()

    def _until_overdue(self) -> float | None:
        if self._every is None:
            return None
        last = max(self._swept_at, self._own_at)
        return max(0.0, last + self._every - time.monotonic())

    def _notice_the_scheduler(self) -> None:
        if self._every is None:
            return
        now = time.monotonic()
        if now - self._swept_at < self._every:  # the scheduler keeps time
            if self._stalled:
                self._stalled = False
                log.info("%s: the scheduler wakes them again", self._what)
            return
        if now - self._own_at < self._every:  # a wake-up between two runs of our own
            return
        self._own_at = now
        if not self._stalled:
            self._stalled = True
            log.warning(
                "%s: the scheduler woke nothing for %g s (was the host's clock set back, or "
                "its thread held?); they run on a timer of their own until it does",
                self._what,
                self._every,
            )
        if self._quiet is not None:
            self._quiet()


class EngineRunner:
    """Drives an engine from an APScheduler 3 scheduler (BackgroundScheduler headless,
    AsyncIOScheduler in the console): the jobs only wake the runner's own threads, one for
    escalation cycles and one for the webhook outbox (`WebhookOutbox`: a slow receiver
    never delays a page, nor another contact's webhook; no job ever runs long enough to
    be skipped).

    Jobs: `wake` (a date job re-armed at the next due time after every cycle), `sweep`
    (every `sweep_every`, a safety net), `audit` (every `audit_every`, `audit_repair`),
    `outbox` (every `outbox_every`, a safety net beside the outbox's own timer, and at once
    after a cycle that paged) and `tipline` (every `filing_every`: one more try of each
    CyberTipline report that waits for NCMEC, on a thread of its own, so a slow NCMEC never
    delays a page).
    """

    LOCKED_RETRY = timedelta(milliseconds=100)
    PAGED_ELSEWHERE_GAP = timedelta(milliseconds=100)
    """Cases paged outside a cycle within this are re-armed for and delivered together."""

    def __init__(
        self,
        engine: EscalationEngine,
        scheduler: BaseScheduler,
        *,
        sweep_every: timedelta = timedelta(seconds=5),
        audit_every: timedelta = timedelta(minutes=3),
        outbox_every: timedelta = timedelta(seconds=2),
        filing_every: timedelta = timedelta(minutes=1),
        webhook_transport: httpx.AsyncBaseTransport | None = None,
        outbox_settings: OutboxSettings = DEFAULT_SETTINGS,
        on_cycle: Callable[[CycleResult], None] | None = None,
    ) -> None:
        self.engine = engine
        self.scheduler = scheduler
        self.sweep_every = sweep_every
        self.audit_every = audit_every
        self.outbox_every = outbox_every
        self.filing_every = filing_every
        self.on_cycle = on_cycle
        self.jobstore = f"vigil-engine:{engine.name}"
        self._cycles = _Waker(
            f"vigil-engine:{engine.name}",
            self._cycle_or_arm,
            every=2 * sweep_every,
            quiet=self._ask_cycle,
            what=f"escalation cycles of {engine.name}",
        )
        self._asked = threading.Lock()
        self._cycle_asked = False
        """A full cycle was asked for since the last (else a wake-up only re-arms)."""
        self._paged_soon = False
        """Cases paged elsewhere are to be re-armed for and delivered (`paged_elsewhere`)."""
        self.cycles_down = OutageLog(f"escalation cycles of {engine.name}", engine.clock)
        self.outbox_down = OutageLog(f"the webhook outbox of {engine.name}", engine.clock)
        self.filings_down = OutageLog(f"CyberTipline retries of {engine.name}", engine.clock)
        self._filings = _Waker(
            f"vigil-tipline:{engine.name}",
            self._retry_filings,
            every=2 * filing_every,
            what=f"CyberTipline retries of {engine.name}",
        )
        self.tipline = TiplineService(engine.db, engine.clock)
        self._outbox = WebhookOutbox(
            engine.db,
            engine.clock,
            outbox_settings,
            transport=webhook_transport,
            name=f"vigil-outbox:{engine.name}",
            outage=self.outbox_down,
        )
        self._started = False
        self._audit_due = False

    @property
    def job_ids(self) -> dict[str, str]:
        kinds = ("wake", "sweep", "audit", "outbox", "tipline")
        return {kind: f"{self.jobstore}:{kind}" for kind in kinds}

    def _job_options(self) -> dict[str, Any]:
        return {
            "jobstore": self.jobstore,
            "replace_existing": True,
            "misfire_grace_time": None,
            "coalesce": True,
            "max_instances": 1,
        }

    def start(self) -> None:
        """Add the jobs and the threads; the first cycle (with an audit) runs at once."""
        if self._started:
            raise RuntimeError("the engine runner is already started")
        self._started = True
        self.scheduler.add_jobstore(MemoryJobStore(), alias=self.jobstore)
        ids = self.job_ids
        every = {"timezone": UTC}
        self.scheduler.add_job(
            self._sweep,
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
            self._outbox.wake,
            IntervalTrigger(seconds=self.outbox_every.total_seconds(), **every),
            id=ids["outbox"],
            **self._job_options(),
        )
        self.scheduler.add_job(
            self._filings.sweep,
            IntervalTrigger(seconds=self.filing_every.total_seconds(), **every),
            id=ids["tipline"],
            **self._job_options(),
        )
        self._cycles.start()
        self._outbox.start()
        self._filings.start()
        self._request_audit()

    def wake(self) -> None:
        """Run a cycle now (thread-safe); call it after a local change such as a new case."""
        self._ask_cycle()
        self._cycles.wake()

    def _sweep(self) -> None:
        """The sweep job: a full cycle, and word to the cycles' thread that the scheduler
        keeps time."""
        self._ask_cycle()
        self._cycles.sweep()

    def _ask_cycle(self) -> None:
        with self._asked:
            self._cycle_asked = True

    def paged_elsewhere(self) -> None:
        """Cases were paged outside a cycle (step 1, in the transaction that opened them):
        arm the next due time anew and deliver their webhook pages, within
        `PAGED_ELSEWHERE_GAP`.

        Only re-armed, on the cycles' own thread (so an older arming never overwrites it):
        nothing of those cases is due yet (a step waits at least a second). And once for
        all the cases paged within the gap: a storm of alerts would otherwise run a cycle,
        with its reads and its heartbeat's write, and an outbox's look for due rows, after
        every alert, each taking its turn at the interpreter from the alerts themselves."""
        with self._asked:
            if self._paged_soon:
                return
            self._paged_soon = True
        timer = threading.Timer(self.PAGED_ELSEWHERE_GAP.total_seconds(), self._after_paging)
        timer.daemon = True
        timer.start()

    def _after_paging(self) -> None:
        with self._asked:
            self._paged_soon = False
        self._cycles.wake()
        self._outbox.wake()

    def stop(self, timeout: float = 10.0) -> None:
        """Let a running cycle and the deliveries in flight finish, stop the threads,
        remove the jobs."""
        self._cycles.stop(timeout)
        self._outbox.stop(timeout)
        self._filings.stop(timeout)
        for job_id in self.job_ids.values():
            self._remove_job(job_id)
        with contextlib.suppress(KeyError):
            self.scheduler.remove_jobstore(self.jobstore)

    # -- jobs (they only signal) and the worker -----------------------------------

    def _request_audit(self) -> None:
        self._audit_due = True
        self.wake()

    def _cycle_or_arm(self) -> None:
        with self._asked:
            asked, self._cycle_asked = self._cycle_asked, False
        if asked:
            self._cycle()
            return
        try:
            self._arm(None)
        except Exception as exc:
            self.cycles_down.failed(exc)

    def _cycle(self) -> None:
        result: CycleResult | None = None
        try:
            if self._audit_due:
                self._audit_due = False
                self.engine.audit_repair()
            result = self.engine.run_due()
            self._arm(result)
        except Exception as exc:
            self.cycles_down.failed(exc)
        else:
            self.cycles_down.recovered()
        if result is not None:
            if result.pages:
                self._outbox.wake()
            if self.on_cycle is not None:
                try:
                    self.on_cycle(result)
                except Exception:
                    log.exception("the engine runner's cycle listener failed")

    def _retry_filings(self) -> None:
        """One try of each waiting CyberTipline report that is due, as the engine: the
        person who reviewed it need not be at a console while NCMEC is down."""
        try:
            outcomes = self.tipline.retry_due(ENGINE, patient=False)
        except Exception as exc:
            self.filings_down.failed(exc)
            return
        self.filings_down.recovered()
        for outcome in outcomes:
            if isinstance(outcome, Refused):
                log.warning("CyberTipline retry: %s", outcome)
            else:
                log.info("CyberTipline report of %s: %s", outcome.ref, outcome.status)

    def _arm(self, result: CycleResult | None) -> None:
        """Re-arm the wake job at the next due time (after the cycle that gave `result`, or
        with None, outside any cycle).

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
            if result is None or result.cases:
                self.wake()  # due now, or more became due while this cycle ran
                return
            wait = self.LOCKED_RETRY  # held by another engine or a console: look again
        self.scheduler.add_job(
            self.wake,
            DateTrigger(run_date=datetime.now(UTC) + wait, timezone=UTC),
            id=wake_id,
            **self._job_options(),
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
    engine = EscalationEngine(db, clock, name=name or engine_name())
    try:
        if once:
            engine.audit_repair()
            result = engine.run_due()
            outbox = process_webhook_outbox(db, engine.clock)
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
        checkpoints = BackgroundCheckpoints(db, clock)
        checkpoints.start()
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
            checkpoints.stop()
            handlers.restore()
        log.info("engine %s stopped", engine.name)
        return 0
    finally:
        if isinstance(db_url_or_db, str):
            db.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m app.engine.runner [--db URL] [--once]`: the engine alone, for operators."""
    parser = argparse.ArgumentParser(prog="python -m app.engine.runner", description=main.__doc__)
    parser.add_argument("--db", default=None, help="database URL (default: VIGIL_DB or ~/.local)")
    parser.add_argument("--once", action="store_true", help="process what is due, then exit")
    parser.add_argument("--name", default=None, help="this engine's name in the heartbeat table")
    args = parser.parse_args(argv)
    with stderr_log():
        try:
            url = args.db or default_url()
            return run_headless(url, SystemClock(), once=args.once, name=args.name)
        except DatabaseError as exc:  # a database it cannot open: a sentence, not a traceback
            log.error("%s", exc)
            return 2 if str(exc).startswith("--db") else 1


if __name__ == "__main__":
    sys.exit(main())

"""Group commit of intake: the events of requests that arrive while others are being written
are written together, in one transaction.

A storm of alerts is many small requests. Alone, each event pays for a transaction of its
own (the audit chain's lock, the actor, the clock, the commit: on PostgreSQL a wait for the
disk), which costs more than the event. Here requests queue in the order they came, and
one writer thread takes every request queued so far (up to `MOST_EVENTS` events): their
events are written in one transaction, each run of triggers opened together
(`apply_together`: a table at a time, a refused event refused alone) and every other event
in a savepoint of its own. The cases they open are paged together before the commit, in
one bulk write as the engine writes a burst (an acknowledgement in the group finds the
cases opened before it paged: `UnitOfWork.together`). One commit, and then they are all
answered, while the writer goes on to the next group without waiting for the event loop.
Nothing waits for a group to fill: a request that finds the writer idle is written at
once, alone. A waiting request holds no thread.

If a group fails as a whole (one case's first page cannot be written, say), its requests
are written again one event at a time, so one bad event cannot sink the others; when the
database itself is in trouble, each request is told so instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from app.intake.events import ChangeEvent, IntakeEvent
from app.intake.store import IntakeOutcome, apply_or_refuse, apply_together
from app.services.cases import CaseService
from data.errors import DatabaseError
from data.outage import is_database_trouble

log = logging.getLogger("vigil.serve")

MOST_EVENTS = 50
"""Events a group takes at most (a request's events are never split): a group holds the
audit chain's lock while it is written, so any other change on the desk (a console's
acknowledgement, say) may wait for one group (its new cases written a table at a time, a
fraction of a millisecond each). On SQLite, under a storm of 50 senders, groups of 25, 50
and 100 left another process writing every 50 ms waiting a median of 4 to 13 ms (worst
33 to 107); groups of 50 served 1,362-1,365 events a second, of 25 1,136-1,181, and of 100
no more than 50."""


Events = Sequence[IntakeEvent | ChangeEvent]


@dataclass
class _Request:
    events: Events
    integration: str
    outcome: IntakeOutcome
    """The caller's: what the events did is added once it is committed."""
    waiting: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None
    """A grouped request's caller: its loop, and the future settled on it once the
    request's events are written (or refused)."""
    error: BaseException | None = None

    def settle(self) -> None:
        """Wake the caller, from the writer's thread."""
        if self.waiting is None:
            return
        loop, written = self.waiting
        with contextlib.suppress(RuntimeError):  # its loop is gone: nobody is waiting
            loop.call_soon_threadsafe(_settle, written)


def _settle(written: asyncio.Future[None]) -> None:
    if not written.done():  # its caller may have gone
        written.set_result(None)


class GroupCommit:
    """The intake's writer for one server process (see the module's docstring)."""

    def __init__(
        self,
        service: CaseService,
        actor: str,
        writing: AbstractContextManager[Any],
        after_paging: Callable[[], None] | None = None,
    ) -> None:
        """`writing` is held while a group is written (on SQLite, this process's one
        writer); `after_paging` is told after a group that opened cases has committed.

        SQLite is served in groups too. Once, one writer taking group after group starved
        another process's writer (a console acknowledging), which slept in SQLite's busy
        handler between tries; writers now try every millisecond, and get in between two
        groups (see `MOST_EVENTS`). Grouped, and with a group's new cases written a table at
        a time, SQLite served about seven times the events a second of an event a
        transaction (`bench/bench_serve.py`)."""
        self._service = service
        self._actor = actor
        self._writing = writing
        self._after_paging = after_paging
        self._queued: deque[_Request] = deque()
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    async def apply(self, events: Events, outcome: IntakeOutcome, integration: str) -> None:
        """Store these events of one request, together with those of other requests
        waiting at the same moment, and add what they did to `outcome` once it is
        committed. Raises what the database raised if it is in trouble."""
        if not events:
            return
        request = _Request(events, integration, outcome)
        loop = asyncio.get_running_loop()
        written = loop.create_future()
        request.waiting = (loop, written)
        with self._wakeup:
            if self._closed:
                raise RuntimeError("intake is closed: the server is stopping")
            if self._thread is None:  # started before anything waits on it: if it cannot
                writer = threading.Thread(  # start, this request fails and the next tries
                    target=self._run, name="vigil-intake-writer", daemon=True
                )
                writer.start()
                self._thread = writer
            self._queued.append(request)
            self._wakeup.notify()
        await written
        if request.error is not None:
            raise request.error

    def close(self, timeout: float = 30.0) -> None:
        """Stop the writer once what is queued is written (after the server's last request)."""
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()
            writer = self._thread
        if writer is not None:
            writer.join(timeout)
            if writer.is_alive():
                log.warning("intake's writer still busy after %.0f s; leaving it", timeout)

    def _run(self) -> None:
        try:
            while True:
                with self._wakeup:
                    while not self._queued and not self._closed:
                        self._wakeup.wait()
                    if not self._queued:
                        return  # closed, and everything queued is written
                    group = self._take()
                try:
                    self._write(group)
                finally:
                    for request in group:
                        request.settle()
        finally:
            with self._wakeup:  # however it ended, the next request starts another writer
                self._thread = None

    def _take(self) -> list[_Request]:
        """The oldest queued requests, up to `MOST_EVENTS` events (at least one request)."""
        taken: list[_Request] = []
        events = 0
        while self._queued and (not taken or events + len(self._queued[0].events) <= MOST_EVENTS):
            request = self._queued.popleft()
            taken.append(request)
            events += len(request.events)
        return taken

    def _write(self, group: list[_Request]) -> None:
        try:
            with self._writing:
                self._write_together(group)
        except Exception as exc:
            if is_database_trouble(exc) and not isinstance(exc, DatabaseError):
                for request in group:  # unreachable, gone, full: each alone would too
                    request.error = exc
            else:  # one event's (a case's page, a detail that cannot be sealed)
                self._write_one_by_one(group)
        if self._after_paging is not None and any(r.outcome.case_ids for r in group):
            try:
                self._after_paging()
            except Exception:  # what is written stays written, and its callers are answered
                log.exception("after a group of intake: telling the engine failed")

    def _write_together(self, group: list[_Request]) -> None:
        staged = [IntakeOutcome() for _ in group]
        events = [
            (event, request.integration, outcome)
            for request, outcome in zip(group, staged, strict=True)
            for event in request.events
        ]
        with self._service.work.together(self._actor):
            apply_together(self._service, self._actor, events)
        for request, outcome in zip(group, staged, strict=True):
            request.outcome.extend(outcome)

    def _write_one_by_one(self, group: list[_Request]) -> None:
        for request in group:
            try:
                with self._writing:
                    self._store(request, request.outcome)
            except Exception as exc:  # the database, or what failed the group: this one's
                request.error = exc

    def _store(self, request: _Request, outcome: IntakeOutcome) -> None:
        """Each event in a transaction of its own."""
        for event in request.events:
            apply_or_refuse(self._service, self._actor, event, outcome, request.integration)

"""Group commit of intake: the events of requests that arrive while others are being written
are written together, in one transaction.

A storm of alerts is many small requests. Alone, each event pays for a transaction of its
own (the audit chain's lock, the actor, the clock, the engine's claim and plan of step 1,
the commit), which costs more than the event. Here requests queue on the event loop, in
the order they came, and one writer at a time takes every request queued so far (up to
`MOST_EVENTS` events) to a worker thread: their events are written in one transaction,
each in a savepoint of its own (a refused event undoes only itself), the cases they opened
are paged together, one commit, and then they are all answered. Requests that queued
meanwhile go in the next group. Nothing waits for a group to fill: a request that finds
the writer idle is written at once, alone. A waiting request holds no thread.

If a group fails as a whole (one case's first page cannot be written, say), its requests
are written again one event at a time, as without grouping, so one bad event cannot sink
the others; when the database itself is in trouble, each request is told so instead.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from anyio import to_thread

from app.core.errors import BadInput, Refused
from app.intake.events import ChangeEvent, IntakeError, IntakeEvent
from app.intake.store import IntakeOutcome, apply_event
from app.services.cases import CaseService
from data.outage import is_database_trouble

MOST_EVENTS = 50
"""Events a group takes at most (a request's events are never split): a group holds the
desk's writer, and on SQLite the database's one write lock, while it is written, so a
console's acknowledgement may wait for one group (a few milliseconds an event)."""

Events = Sequence[IntakeEvent | ChangeEvent]


@dataclass
class _Request:
    events: Events
    integration: str
    outcome: IntakeOutcome
    """The caller's: what the events did is added once it is committed."""
    written: asyncio.Future[None]
    opened: bool = False
    error: BaseException | None = None


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
        writer); `after_paging` is told after a group that opened cases has committed."""
        self._service = service
        self._actor = actor
        self._writing = writing
        self._after_paging = after_paging
        self._queued: deque[_Request] = deque()
        self._writer: asyncio.Task[None] | None = None

    async def apply(self, events: Events, outcome: IntakeOutcome, integration: str) -> None:
        """Store these events of one request, together with those of other requests
        waiting at the same moment, and add what they did to `outcome` once it is
        committed. Raises what the database raised if it is in trouble."""
        if not events:
            return
        loop = asyncio.get_running_loop()
        request = _Request(events, integration, outcome, loop.create_future())
        self._queued.append(request)
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_queued())
        await request.written
        if request.error is not None:
            raise request.error

    async def _write_queued(self) -> None:
        while self._queued:
            group = self._take()
            try:
                await to_thread.run_sync(self._write, group)
            except BaseException as exc:  # the server stopping: these were not answered
                for request in group:
                    request.error = request.error or exc
                raise
            finally:
                for request in group:
                    if not request.written.done():  # its caller may have gone
                        request.written.set_result(None)

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
            if is_database_trouble(exc):
                for request in group:
                    request.error = exc
            else:
                self._write_one_by_one(group)
        if self._after_paging is not None and any(r.opened for r in group):
            self._after_paging()

    def _write_together(self, group: list[_Request]) -> None:
        staged = [IntakeOutcome() for _ in group]
        with self._service.work.together(self._actor):
            for request, outcome in zip(group, staged, strict=True):
                self._store(request, outcome)
        for request, outcome in zip(group, staged, strict=True):
            request.outcome.extend(outcome)
            request.opened = bool(outcome.case_ids)

    def _write_one_by_one(self, group: list[_Request]) -> None:
        for request in group:
            try:
                with self._writing:
                    self._store(request, request.outcome)
            except Exception as exc:  # the database, or what failed the group: this one's
                request.error = exc
            request.opened = bool(request.outcome.case_ids)

    def _store(self, request: _Request, outcome: IntakeOutcome) -> None:
        """Each event in a transaction of its own (a savepoint, inside a group)."""
        for event in request.events:
            try:
                apply_event(self._service, self._actor, event, outcome, request.integration)
            except (BadInput, Refused) as exc:
                outcome.errors.append(IntakeError(event.position, str(exc)))

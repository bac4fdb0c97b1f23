"""How a failing database is said: once when the failure starts, once a minute while it
lasts, once when it ends, never a traceback per attempt. The engine's cycles and the
webhook outbox each keep one `OutageLog`."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from data.clock import how_long
from data.errors import DatabaseError, describe_trouble, first_line, is_disk_full

log = logging.getLogger("vigil.engine")


class _Clock(Protocol):
    """Anything that tells the time (an injected clock)."""

    def now(self) -> datetime: ...


def is_database_trouble(error: BaseException) -> bool:
    """Whether `error` is the database's (unreachable, gone, locked, full), not a case's."""
    return isinstance(
        error, OperationalError | InterfaceError | PoolTimeout | DatabaseError | OSError
    ) or is_disk_full(error)


def _said(error: BaseException) -> str:
    if is_database_trouble(error):
        return describe_trouble(error)
    return f"{type(error).__name__}: {first_line(error)}"


class OutageLog:
    """Says a failure that repeats (an unreachable database, a full disk) once when it
    starts, once every `REPEAT_EVERY` while it lasts, and once when it ends, on the injected
    clock: an outage is three kinds of line, never a traceback per attempt. A failure that
    is not the database's (a bug) keeps its traceback, the first time only."""

    REPEAT_EVERY = timedelta(minutes=1)

    def __init__(
        self,
        what: str,
        clock: _Clock,
        logger: logging.Logger = log,
        meanwhile: str = "retrying until it is back",
    ) -> None:
        """`meanwhile`: what happens while it lasts, said with its first line."""
        self.what = what
        self.clock = clock
        self.log = logger
        self.meanwhile = meanwhile
        self.since: datetime | None = None
        self.attempts = 0
        self._said_at: datetime | None = None

    def failed(self, error: BaseException) -> None:
        now = self.clock.now()
        self.attempts += 1
        if self.since is None:
            self.since = self._said_at = now
            if is_database_trouble(error):
                self.log.error("%s: %s; %s", self.what, _said(error), self.meanwhile)
            else:
                self.log.error("%s: %s; retrying", self.what, _said(error), exc_info=error)
            return
        assert self._said_at is not None
        if now - self._said_at >= self.REPEAT_EVERY:
            self._said_at = now
            self.log.warning(
                "%s: still failing after %s (%d attempts): %s",
                self.what,
                how_long(now - self.since),
                self.attempts,
                _said(error),
            )

    def recovered(self) -> None:
        if self.since is None:
            return
        self.log.info(
            "%s: working again after %s (%d failed attempts)",
            self.what,
            how_long(self.clock.now() - self.since),
            self.attempts,
        )
        self.since = self._said_at = None
        self.attempts = 0

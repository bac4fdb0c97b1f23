"""The database's clock: on PostgreSQL, time is the server's (the design's rule 7).

Several hosts share one PostgreSQL desk, and one of them with a wrong clock must not page
early for everybody, nor record a `sent_at` in the future. `DatabaseClock` wraps a host's
clock (any object with an aware-UTC `now()`, injected as everywhere else): each `sync()`
reads the server's time in one query and keeps the offset, and `now()` answers the host's
time plus that offset until the next `sync()`. The offset is taken against the host's time
*after* the answer came back, so a slow round trip can only make the estimate late, never
early. On SQLite the database has no clock of its own: the host's clock stands (offset 0).

The server's time is `clock_timestamp()`, unless the database defines a function
`vigil_now()` (found on the search path): then its answer is the server's time, and a NULL
answer means "no clock of its own here: the host's clock stands". It is the SQL layer's
injectable time source: tests define it in their schema to move the database's idea of
time apart from the host's (`install_time_source`, `set_time_source`).

A host whose clock differs from the server's by more than `SKEW_TOLERANCE` is logged once
(again only after it agreed for a while and then drifted), and `skew` tells the console's
header.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection

from data.db import Database

log = logging.getLogger("vigil.clock")

SKEW_TOLERANCE = timedelta(seconds=2)
"""A host whose clock is further than this from the database's says so."""
TIME_SOURCE = "vigil_now"
"""The optional SQL function that, when defined, is the database's time."""


class HostClock(Protocol):
    def now(self) -> datetime: ...


def how_long(delta: timedelta) -> str:
    """A length of time for people: `45 s`, `11 min`, `2 h 5 min`, `3 d 4 h`."""
    seconds = abs(int(delta.total_seconds()))
    if seconds < 90:
        return f"{seconds} s"
    minutes = (seconds + 30) // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def describe_skew(skew: timedelta) -> str:
    """`this host's clock is 11 min ahead of the database's`."""
    direction = "ahead of" if skew > timedelta(0) else "behind"
    return f"this host's clock is {how_long(skew)} {direction} the database's"


def _aware(value: Any) -> datetime:
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DatabaseClock:
    """The host's clock set to the database server's time at each `sync()`."""

    def __init__(self, db: Database, host: HostClock) -> None:
        self.db = db
        self.host = host
        self.offset = timedelta(0)
        """The server's time minus the host's, as of the last `sync()`."""
        self.synced = False
        self._query: str | None = None
        self._reported = False

    def now(self) -> datetime:
        """The database's time (the host's, on SQLite)."""
        return self.host.now() + self.offset

    @property
    def skew(self) -> timedelta | None:
        """How far the host's clock is ahead of the database's (negative: behind), when
        that is more than `SKEW_TOLERANCE`; None when they agree or it is not known."""
        return -self.offset if self.synced and self._reported else None

    def sync(self) -> timedelta:
        """Measure the offset to the database's time now; returns it.

        Raises what the database raises when it cannot be reached.
        """
        if not self.db.is_postgres:
            self.synced = True
            return self.offset
        with self.db.engine.connect() as connection:
            server = connection.exec_driver_sql(self._time_query(connection)).scalar()
            after = self.host.now()
        self.offset = timedelta(0) if server is None else _aware(server) - after
        self.synced = True
        self._report()
        return self.offset

    def now_in(self, connection: Connection) -> datetime:
        """The database's time read in `connection`'s own transaction (the host's, on
        SQLite): what a change records and decides by, at no more than one query."""
        if not self.db.is_postgres:
            return self.host.now()
        server = connection.exec_driver_sql(self._time_query(connection)).scalar()
        return self.host.now() if server is None else _aware(server)

    def _time_query(self, connection: Connection) -> str:
        if self._query is None:
            found = connection.exec_driver_sql(
                f"SELECT to_regprocedure('{TIME_SOURCE}()') IS NOT NULL"
            ).scalar()
            self._query = f"SELECT {TIME_SOURCE}()" if found else "SELECT clock_timestamp()"
        return self._query

    def _report(self) -> None:
        skewed = abs(self.offset) > SKEW_TOLERANCE
        if skewed and not self._reported:
            log.warning(
                "%s; using the database's time for what is due and what is recorded",
                describe_skew(-self.offset),
            )
        elif self._reported and not skewed:
            log.info("this host's clock agrees with the database's again")
        self._reported = skewed


# --- the SQL layer's time source, for tests and drills --------------------------------


def install_time_source(connection: Connection, schema: str) -> None:
    """Define `vigil_now()` in `schema` answering NULL: the host's clock stands until
    `set_time_source` moves the database's time."""
    set_time_source(connection, schema, None)


def set_time_source(connection: Connection, schema: str, at: datetime | None) -> None:
    """Make the database in `schema` say its time is `at` (None: the host's clock)."""
    value = "NULL" if at is None else f"'{at.astimezone(UTC).isoformat()}'"
    connection.exec_driver_sql(
        f'CREATE OR REPLACE FUNCTION "{schema}".{TIME_SOURCE}() RETURNS timestamptz '
        f"LANGUAGE sql STABLE AS $$ SELECT {value}::timestamptz $$"
    )

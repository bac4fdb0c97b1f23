"""Hearing about case changes made elsewhere, at once (PostgreSQL LISTEN/NOTIFY).

Every writer adds to the `case_change` feed in the transaction of its change; on
PostgreSQL a statement trigger on that table then notifies `CHANGE_CHANNEL`, delivered
when the transaction commits (never for one rolled back). The payload is the schema the
feed lives in, so desks sharing one database (or tests, each in its own schema) hear only
their own. A console waits on a `ChangeListener` in a thread and reads the feed when told;
it still polls the feed as a safety net, and SQLite (one machine, no server to notify)
only polls.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy import Engine


class _Store(Protocol):
    """What a listener needs of `data.db.Database` (named so, not imported: no cycle)."""

    @property
    def engine(self) -> Engine: ...

    @property
    def is_postgres(self) -> bool: ...


CHANGE_CHANNEL = "vigil_case_change"

ANNOUNCE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION vigil_announce_case_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANGE_CHANNEL}', current_schema());
    RETURN NULL;
END
$$
"""
ANNOUNCE_TRIGGER = """
CREATE TRIGGER case_change_announce AFTER INSERT ON case_change
FOR EACH STATEMENT EXECUTE FUNCTION vigil_announce_case_change()
"""
"""The trigger's DDL (PostgreSQL only): run when the table is created and by the
migration that brought it to older databases."""


class ChangeListener:
    """A connection of its own that LISTENs for this desk's case changes.

    Blocking: use it from one thread, and close it from that thread. A database error
    propagates (the caller decides how to retry).
    """

    def __init__(
        self,
        connection: Any,
        schema: str,
        close: Callable[[], None],
        *,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        """`connection` is a psycopg connection in autocommit mode already LISTENing;
        `clock` tells seconds for the timeouts (tests pass their own)."""
        self._connection = connection
        self.schema = schema
        self._close = close
        self._clock = clock

    @classmethod
    def open(cls, db: _Store) -> ChangeListener:
        if not db.is_postgres:
            raise ValueError("a ChangeListener needs PostgreSQL; SQLite consoles poll the feed")
        raw = db.engine.raw_connection()
        connection: Any = raw.driver_connection
        # Its own connection, never handed back to the pool with a LISTEN still on it.
        raw.detach()
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_schema()")
                row = cursor.fetchone()
                cursor.execute(f"LISTEN {CHANGE_CHANNEL}")
        except BaseException:
            raw.close()
            raise
        return cls(connection, str(row[0]) if row else "", raw.close)

    def wait(self, timeout: float) -> bool:
        """Block until this desk's feed grows (True) or `timeout` seconds pass (False).

        Notifications of other desks sharing the database are passed over; those already
        queued are all taken at once, so a burst of changes is one wake-up.
        """
        deadline = self._clock() + timeout
        while (remaining := deadline - self._clock()) > 0:
            heard = False
            for notify in self._connection.notifies(timeout=remaining, stop_after=1):
                heard |= notify.payload == self.schema
            if heard:
                deque(self._connection.notifies(timeout=0), maxlen=0)  # the same news
                return True
        return False

    def close(self) -> None:
        self._close()

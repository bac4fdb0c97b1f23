"""SQLite's WAL checkpoints off the commit path, for the processes that write all day.

By default the commit that takes SQLite's write-ahead log past 1,000 pages also copies the
log into the database file and syncs it, before that commit returns. In a storm of alerts
that was one group of requests in every few hundred, waiting 10-20 ms more than the rest:
the p99 to the 202 was that group (`bench/bench_serve.py`). `vigil serve` and `vigil engine`
turn the automatic checkpoint off for their own connections and checkpoint from a thread of
their own, once a second. Every other process (consoles, commands) still checkpoints as it
commits, so the log is kept short even while that thread cannot run.

PostgreSQL has no such thing to move: there this does nothing.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any

from sqlalchemy import event

from data.clock import HostClock
from data.db import Database, held_in_memory
from data.outage import OutageLog

log = logging.getLogger("vigil.db")

CHECKPOINT_EVERY = 1.0
"""Seconds between two checkpoints: the log then holds about a second of writes."""
AUTOMATIC_PAGES = 1000
"""SQLite's own threshold, restored when the checkpoints stop."""


class BackgroundCheckpoints:
    """`with BackgroundCheckpoints(db, clock):` checkpoints `db`'s WAL from a thread, never within
    a commit of this process. On leaving, one last checkpoint, and new connections
    checkpoint as they commit again."""

    def __init__(self, db: Database, clock: HostClock, every: float = CHECKPOINT_EVERY) -> None:
        self.db = db
        self.every = every
        again = "every second" if every == 1 else f"every {every:g} s"
        self.outage = OutageLog("WAL checkpoints", clock, log, meanwhile=f"trying again {again}")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BackgroundCheckpoints:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self.db.is_postgres or self._thread is not None or held_in_memory(self.db.engine.url):
            return  # (remaking the pool would drop a database held in memory)
        event.listen(self.db.engine, "connect", _no_automatic_checkpoint)
        self.db.engine.dispose()  # the pooled connections were made before: made again
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="wal-checkpoints", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join()
        if event.contains(self.db.engine, "connect", _no_automatic_checkpoint):
            event.remove(self.db.engine, "connect", _no_automatic_checkpoint)
        self.checkpoint()
        self.db.engine.dispose()

    def checkpoint(self) -> tuple[int, int] | None:
        """One passive checkpoint (it waits for no reader or writer): the log's pages and
        how many of them are now in the database file; None when it failed."""
        try:
            with self.db.engine.connect() as connection:
                row = connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        except Exception as exc:
            self.outage.failed(exc)
            return None
        self.outage.recovered()
        return int(row[1]), int(row[2])

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.checkpoint()


def _no_automatic_checkpoint(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint = 0")

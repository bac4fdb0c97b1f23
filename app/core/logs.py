"""Log lines of the services without a screen (`vigil serve`, `vigil engine`) on standard
error, written so that a reader who stops reading never stops the service.

A plain `StreamHandler` writes in the caller's thread. When standard error is a pipe whose
reader has stalled (a pager left open, a terminal paused with Ctrl+S, a log shipper that
fell behind), the pipe fills and the next log call blocks: the event loop answering alerts
and the engine thread paging people stop with it. Here a log call only queues its line; one
thread of its own writes them. While the reader is stalled, that thread waits and the queue
fills up to `CAPACITY` lines; lines beyond it are counted and dropped, and the count is
written once the reader is back. Paging goes on throughout.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from logging.handlers import QueueHandler
from typing import TextIO

LINE_FORMAT = "%(asctime)s.%(msecs)03dZ %(name)s %(levelname)s %(message)s"
"""One line a record, stamped in UTC: a follow-the-sun desk reads them from several zones."""
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
CAPACITY = 10_000
"""Lines held while the reader is stalled: a storm's worth of access lines, a few MB."""
CLOSE_WITHIN = 2.0
"""Seconds a stopping service waits for its last lines to be written."""
QUIETER = {"apscheduler": logging.WARNING}
"""Loggers whose routine lines would drown the desk's own (a line each time a job runs)."""

_STOP = logging.makeLogRecord({"msg": "stop"})
"""Queued last: the writer thread ends when it reaches it."""


def line_formatter() -> logging.Formatter:
    formatter = logging.Formatter(LINE_FORMAT, DATE_FORMAT)
    formatter.converter = time.gmtime
    return formatter


class DroppingQueueHandler(QueueHandler):
    """Queues each record, formatted now; a full queue drops the record and counts it."""

    def __init__(self, capacity: int) -> None:
        self.lines: queue.Queue[logging.LogRecord] = queue.Queue(capacity)
        super().__init__(self.lines)
        self._count_lock = threading.Lock()
        self._dropped = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.lines.put_nowait(record)
        except queue.Full:
            with self._count_lock:
                self._dropped += 1

    def take_dropped(self) -> int:
        """Lines dropped since the last call."""
        with self._count_lock:
            dropped, self._dropped = self._dropped, 0
        return dropped


class StderrLog:
    """The root logger's one handler while installed: queued lines, written by a thread.

    The thread writes to the stream itself, not through a `logging.Handler`: a handler
    blocked in a write holds its lock, and `logging.shutdown` at the process's exit takes
    every registered handler's lock, so a stalled reader would hold the exit too."""

    def __init__(
        self,
        stream: TextIO,
        *,
        level: int = logging.INFO,
        capacity: int = CAPACITY,
    ) -> None:
        self.level = level
        self.queued = DroppingQueueHandler(capacity)
        self.stream = stream
        self.formatter = line_formatter()
        self._writer = threading.Thread(target=self._write_lines, name="vigil-log", daemon=True)
        self._levels_before: dict[str, int] = {}

    def install(self) -> None:
        for name, level in {"": self.level, **QUIETER}.items():
            self._levels_before[name] = logging.getLogger(name).level
            logging.getLogger(name).setLevel(level)
        logging.getLogger().addHandler(self.queued)
        self._writer.start()

    def close(self, timeout: float = CLOSE_WITHIN) -> bool:
        """Stop queueing, then wait up to `timeout` s in all for the lines queued to be
        written. False when the reader is still stalled: those lines are given up (the
        thread is a daemon and holds no lock of `logging`'s, so it cannot hold the exit)."""
        logging.getLogger().removeHandler(self.queued)
        for name, level in self._levels_before.items():
            logging.getLogger(name).setLevel(level)
        until = time.monotonic() + timeout
        try:
            self.queued.lines.put(_STOP, timeout=timeout)
        except queue.Full:
            return False
        self._writer.join(max(0.0, until - time.monotonic()))
        return not self._writer.is_alive()

    def _write_lines(self) -> None:
        lines = self.queued.lines
        while True:
            record = lines.get()
            if record is _STOP:
                self._say_dropped()
                return
            self._write(record)
            if lines.empty():
                self._say_dropped()

    def _write(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.formatter.format(record) + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # the reader is gone (a closed pipe): nothing to tell
            pass

    def _say_dropped(self) -> None:
        dropped = self.queued.take_dropped()
        if dropped:
            self._write(
                logging.makeLogRecord(
                    {
                        "name": "vigil.log",
                        "levelno": logging.WARNING,
                        "levelname": "WARNING",
                        "msg": f"{dropped} log lines were dropped while standard error "
                        "was not being read",
                    }
                )
            )


@contextmanager
def stderr_log(level: int = logging.INFO) -> Iterator[StderrLog | None]:
    """Log to standard error without blocking (see the module) while the block runs.

    Nothing is installed when the root logger has a handler already (a test's, or an
    embedding program's): theirs decides where lines go.
    """
    if logging.getLogger().handlers:
        yield None
        return
    log = StderrLog(sys.stderr, level=level)
    log.install()
    try:
        yield log
    finally:
        log.close()

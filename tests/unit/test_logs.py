"""The services' log on standard error: a reader who stops reading holds up no caller."""

from __future__ import annotations

import io
import logging
import re
import threading
import time

from app.core.logs import StderrLog

WAIT = 5.0
"""Seconds a test waits for a thread before calling it stuck (a guard, not a pace)."""


class HeldStream(io.StringIO):
    """A stream whose writes wait until the test releases it, as a full pipe does."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.released = threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        self.released.wait()
        return super().write(text)


def test_a_stalled_reader_holds_up_no_caller_and_the_lines_dropped_are_counted() -> None:
    stream = HeldStream()
    log = StderrLog(stream, capacity=100)
    log.install()
    logger = logging.getLogger("vigil.test")
    try:
        logger.info("first")
        assert stream.entered.wait(WAIT), "the writer thread never wrote"
        # The writer is stuck in `first`; a thousand more lines must not wait for it.
        caller = threading.Thread(target=lambda: [logger.info("line %d", n) for n in range(1000)])
        caller.start()
        caller.join(WAIT)
        assert not caller.is_alive(), "a log call waited for the stalled reader"
        stream.released.set()
        assert log.close(WAIT)
    finally:
        stream.released.set()
        log.close(0)
    ours = (" vigil.test ", " vigil.log ")  # not what other threads of the process say
    lines = [line for line in stream.getvalue().splitlines() if any(n in line for n in ours)]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z vigil\.test INFO first", lines[0])
    # The first hundred lines waited in the queue and were written once the reader was back;
    # the other 900 were counted, and the count said once.
    assert [line.split(" INFO ")[1] for line in lines[1:101]] == [f"line {n}" for n in range(100)]
    assert lines[101].endswith(
        "vigil.log WARNING 900 log lines were dropped while standard error was not being read"
    )
    assert len(lines) == 102


def test_stopping_gives_up_on_a_reader_that_never_comes_back() -> None:
    stream = HeldStream()
    log = StderrLog(stream)
    log.install()
    try:
        logging.getLogger("vigil.test").warning("written into a pipe nobody reads")
        assert stream.entered.wait(WAIT)
        started = time.monotonic()
        assert log.close(0.2) is False
        assert time.monotonic() - started < WAIT
        assert log.queued not in logging.getLogger().handlers
    finally:
        stream.released.set()


def test_routine_scheduler_lines_are_left_out_and_levels_restored() -> None:
    stream = HeldStream()
    stream.released.set()
    root_level = logging.getLogger().level
    log = StderrLog(stream)
    log.install()
    try:
        logging.getLogger("apscheduler.executors.default").info('Running job "wake"')
        logging.getLogger("apscheduler.scheduler").warning("Run time of job was missed")
        logging.getLogger("vigil.engine").info("engine running")
    finally:
        assert log.close(WAIT)
    text = stream.getvalue()
    assert "Running job" not in text
    assert "Run time of job was missed" in text
    assert "engine running" in text
    assert logging.getLogger().level == root_level
    assert logging.getLogger("apscheduler").level == logging.NOTSET

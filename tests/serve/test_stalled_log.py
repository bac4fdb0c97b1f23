"""`vigil serve` and `vigil engine` go on answering and paging while nobody reads their
standard error: the pipe is full before they start (a pager left open, a terminal paused
with Ctrl+S, a log shipper that fell behind), and their lines wait in their own queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from app.core.clock import FakeClock
from data.db import Database
from data.escalation import EngineHeartbeat
from tests.factories import add_open_cases, add_policy, add_responder, count_pages, wait_until
from tests.serve.harness import build_desk, free_port, pd_trigger, wait_serving

REPO = Path(__file__).parents[2]
FILLER = b"x"


class StalledPipe:
    """A pipe filled to the brim before the child starts; read only when the test says."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()
        os.set_blocking(self.write_end, False)
        for chunk in (FILLER * 4096, FILLER):
            try:
                while True:
                    os.write(self.write_end, chunk)
            except BlockingIOError:
                pass
        os.set_blocking(self.write_end, True)
        self.text = ""
        self._reader: threading.Thread | None = None

    def start_reading(self) -> None:
        if self._reader is not None:
            return

        def read_all() -> None:
            with os.fdopen(self.read_end, "rb") as pipe:
                self.text = pipe.read().lstrip(FILLER).decode()

        self._reader = threading.Thread(target=read_all)
        self._reader.start()

    def finish(self) -> str:
        assert self._reader is not None
        self._reader.join(30)
        return self.text


STOP_WITHIN = 15
"""Seconds a stopping service may take, a stalled log included (it waits 2 s for it)."""


@contextmanager
def vigil_with_stalled_stderr(
    url: str, *args: str
) -> Iterator[tuple[subprocess.Popen[bytes], StalledPipe]]:
    """`vigil --db URL ARGS` with its standard error into a full pipe; SIGTERM at the end
    (the pipe read again only if the test started reading it) and a clean stop expected:
    exit 0 within `STOP_WITHIN` s."""
    pipe = StalledPipe()
    child = subprocess.Popen(
        [sys.executable, "-m", "app.main", "--db", url, *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "VIGIL_USER": "intake"},
        stdout=subprocess.DEVNULL,
        stderr=pipe.write_end,
    )
    os.close(pipe.write_end)
    try:
        yield child, pipe
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(STOP_WITHIN)
        finally:
            if child.poll() is None:
                child.kill()
            pipe.start_reading()
    assert child.returncode == 0, pipe.finish()


def test_vigil_serve_answers_and_pages_while_nobody_reads_its_log(
    sqlite_url: str, clock: FakeClock
) -> None:
    db = Database.open(sqlite_url)
    try:
        keys = build_desk(db, clock)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with vigil_with_stalled_stderr(sqlite_url, "serve", "--port", str(port)) as (child, pipe):
            wait_serving(url, child)
            for number in range(50):
                event = pd_trigger(keys["pd"], dedup_key=f"stalled-{number}")
                answer = httpx.post(f"{url}/v2/enqueue", json=event, timeout=10)
                assert answer.status_code == 202, answer.text
            assert count_pages(db) == 50
            pipe.start_reading()
        log = pipe.finish()
    finally:
        db.dispose()
    # Nothing the service said while stalled was lost: it waited in the queue.
    assert "vigil.serve INFO vigil serve on" in log
    assert log.count("POST /v2/enqueue 202") == 50


def test_vigil_engine_pages_while_nobody_reads_its_log(sqlite_url: str) -> None:
    db = Database.open(sqlite_url)
    try:
        add_responder(db, "intake", "supervisor")
        add_responder(db, "ana")
        add_policy(db, "one", [(300, ["user:ana"])], route=["default"])
        add_open_cases(db, 20, policy="one", at=datetime.now(UTC) - timedelta(seconds=1))
        with vigil_with_stalled_stderr(sqlite_url, "--as", "intake", "engine") as (child, pipe):

            def paged() -> bool:
                assert child.poll() is None, "vigil engine exited"
                return count_pages(db) == 20

            wait_until(paged, "the engine's pages", timedelta(seconds=30))
            pipe.start_reading()
        log = pipe.finish()
    finally:
        db.dispose()
    assert "vigil.engine INFO engine " in log
    assert "received SIGTERM; stopping" in log
    assert "ERROR" not in log, log
    assert "Traceback" not in log, log


@pytest.mark.parametrize("command", ["serve", "engine"])
def test_a_stop_is_not_held_by_a_log_nobody_reads(
    sqlite_url: str, clock: FakeClock, command: str
) -> None:
    """SIGTERM while the pipe is still full: the service stops within its 2 s for the log
    (the lines still queued are given up) and exits 0, never waits for the reader."""
    db = Database.open(sqlite_url)
    try:
        build_desk(db, clock)
        port = free_port()
        args = (
            ["serve", "--port", str(port)] if command == "serve" else ["--as", "intake", "engine"]
        )
        with vigil_with_stalled_stderr(sqlite_url, *args) as (child, _pipe):
            if command == "serve":
                wait_serving(f"http://127.0.0.1:{port}", child)
            else:
                wait_until(
                    lambda: bool(heartbeats(db)), "the engine's heartbeat", timedelta(seconds=30)
                )
    finally:
        db.dispose()


def heartbeats(db: Database) -> list[EngineHeartbeat]:
    with db.read() as session:
        return list(session.exec(select(EngineHeartbeat)).all())

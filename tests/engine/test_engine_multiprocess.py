"""Engines in separate processes against one database: every step pages exactly once.

Two engine processes work through 1,000 escalating cases on one PostgreSQL schema (and on
one SQLite file). They share a clock kept in a file, which only the test moves, one step
at a time; at each step the test waits until nothing is left due, then checks that every
case has exactly the pages it should: no page twice, none missing.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, func, select

from app.core.clock import SystemClock
from app.engine.runner import EscalationEngine
from app.services.cases import CaseService
from data.db import Database
from data.escalation import StepRun
from tests.factories import (
    FileClock,
    add_open_cases,
    add_policy,
    add_responder,
    count_pages,
    pages_by_case,
    spawn_python,
    wait_until,
)

pytestmark = pytest.mark.slow

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
CASES = 1000
STAGE_TIMEOUT = timedelta(seconds=40)
EXPECTED = [
    ("ana", 0, 1, 0),
    ("ben", 0, 2, 0),
    ("ana", 0, 1, 1),
    ("ben", 0, 2, 1),
    ("sue", 0, 3, 1),
]


def child_main() -> None:
    """One engine process: cycle until the stop file appears (argv: url clock stop name)."""
    url, clock_file, stop_file, name = sys.argv[1:5]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    stop = Path(stop_file)
    pause = threading.Event()
    db = Database.open(url)
    engine = EscalationEngine(db, FileClock(Path(clock_file)), name=name, batch_size=25)
    engine.run_due()
    Path(f"{stop_file}.{name}.ready").touch()
    while not stop.exists():
        if not engine.run_due().cases:
            pause.wait(0.01)  # polling the shared clock, a few milliseconds at a time
    db.dispose()


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[Callable[[str], FileClock]]:
    """Starts two engine processes on a database URL; stops them and checks their exit."""
    children: list[subprocess.Popen[str]] = []
    stop = tmp_path / "stop"

    def start(url: str) -> FileClock:
        clock = FileClock(tmp_path / "clock")
        clock.set(T0 - timedelta(seconds=1))  # nothing due until both are ready
        entry = "from tests.engine.test_engine_multiprocess import child_main; child_main()"
        for name in ("engine-a", "engine-b"):
            children.append(spawn_python("-c", entry, url, str(clock.path), str(stop), name))
        wait_until(
            lambda: all(Path(f"{stop}.{n}.ready").exists() for n in ("engine-a", "engine-b")),
            "both engine processes to start",
            timedelta(seconds=30),
        )
        return clock

    yield start
    stop.touch()
    for child in children:
        try:
            _, stderr = child.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            raise
        assert child.returncode == 0, stderr
        assert "ERROR" not in stderr, stderr
        assert "Traceback" not in stderr, stderr


def _run_two_engines(db: Database, clock: FileClock, *, both_must_claim: bool) -> None:
    for stage in range(1, len(EXPECTED) + 1):
        clock.set(T0 + timedelta(minutes=stage - 1))  # each step is due a minute later
        expected = CASES * stage

        def stage_done(expected: int = expected) -> bool:
            return count_pages(db) == expected

        wait_until(stage_done, f"stage {stage}: {expected} pages", STAGE_TIMEOUT)
    probe = EscalationEngine(db, clock, name="probe")
    assert probe.next_due_at() is None  # every case is exhausted; nothing more is due
    pages = pages_by_case(db)
    assert len(pages) == CASES
    wrong = {ref: got for ref, got in pages.items() if got != EXPECTED}
    assert not wrong, f"{len(wrong)} cases paged wrongly, e.g. {next(iter(wrong.items()))}"
    with db.read() as session:
        claims = Counter(session.exec(select(StepRun.engine)).all())
        assert session.exec(select(func.count()).where(col(StepRun.missed))).one() == 0
    assert sum(claims.values()) == CASES * len(EXPECTED)
    assert set(claims) <= {"engine-a", "engine-b"}
    if both_must_claim:  # row locks that skip each other split the work between the two
        assert set(claims) == {"engine-a", "engine-b"}


def _open_cases(db: Database) -> None:
    add_responder(db, "ana")
    add_responder(db, "ben")
    add_responder(db, "sue", "supervisor")
    add_policy(db, "fast", [(60, ["user:ana"]), (60, ["user:ben"])], repeat=1, route=["default"])
    add_open_cases(db, CASES, policy="fast", at=T0)


def test_two_engine_processes_on_postgresql(
    pg_url: str, engines: Callable[[str], FileClock]
) -> None:
    db = Database.open(pg_url)
    try:
        _open_cases(db)
        _run_two_engines(db, engines(pg_url), both_must_claim=True)
    finally:
        db.dispose()


def test_two_engine_processes_on_one_sqlite_file(
    sqlite_url: str, engines: Callable[[str], FileClock]
) -> None:
    db = Database.open(sqlite_url)
    try:
        _open_cases(db)
        # SQLite has one writer at a time: whichever engine holds the file's lock may well
        # take every batch, which is correct; what matters is that nothing pages twice.
        _run_two_engines(db, engines(sqlite_url), both_must_claim=False)
    finally:
        db.dispose()


def test_headless_engine_process_pages_then_stops_cleanly_on_sigterm(sqlite_url: str) -> None:
    db = Database.open(sqlite_url)
    try:
        add_responder(db, "ana")
        add_policy(db, "one", [(300, ["user:ana"])], route=["default"])
        CaseService(db, SystemClock()).open_case("ana", title="T", category="edr", severity=1)
        child = spawn_python("-m", "app.engine.runner", "--db", sqlite_url, "--name", "headless")
        try:
            wait_until(
                lambda: count_pages(db) == 1, "the headless engine's page", timedelta(seconds=30)
            )
            child.send_signal(signal.SIGTERM)
            _, stderr = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
        assert child.returncode == 0, stderr
        assert "received SIGTERM; stopping" in stderr
        assert "ERROR" not in stderr, stderr
    finally:
        db.dispose()

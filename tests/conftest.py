"""Shared fixtures: a fresh database per test (SQLite, and PostgreSQL behind VIGIL_TEST_PG)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from app.core.clock import FakeClock
from data.clock import install_time_source
from data.db import Database, normalise_url

PG_URL = os.environ.get("VIGIL_TEST_PG")
PG_SKIP_REASON = (
    "VIGIL_TEST_PG is not set; set it to a PostgreSQL URL "
    "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) to run PostgreSQL tests"
)
"""Every PostgreSQL test skips with this reason when there is no server to run it on."""


PG_EXAMPLE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Workers for `-n auto`: half as many again as there are cores. A worker spends about
    half its time waiting, not computing (a console for its screen to settle, a fault test
    for the processes it started), so a third worker on two cores fills the gaps: the plain
    run took 3 min 34 s with three workers, 4 min 25 s with two and 3 min 45 s with four."""
    return max(2, (3 * (os.cpu_count() or 1) + 1) // 2)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """Say once, after the run, how many PostgreSQL tests were skipped and how to run them
    (each skip alone only says "skipped")."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple) and PG_SKIP_REASON in str(report.longrepr[2])
    ]
    if not skipped:
        return
    count = len(skipped)
    terminalreporter.write_sep("-", "PostgreSQL")
    many = count != 1
    terminalreporter.write_line(
        f"{count} PostgreSQL test{'s' if many else ''} skipped: VIGIL_TEST_PG is not set. "
        f"To run {'them' if many else 'it'} against a PostgreSQL server (each test gets its "
        "own schema):"
    )
    terminalreporter.write_line(f"    VIGIL_TEST_PG={PG_EXAMPLE_URL} python3 run.py pytest")


CONSOLE_TESTS = Path(__file__).parent / "console"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every console test is a Pilot test: `-m pilot` runs them, `-m "not pilot"` the rest."""
    for item in items:
        if CONSOLE_TESTS in item.path.parents:
            item.add_marker(pytest.mark.pilot)


@pytest.fixture(scope="session", autouse=True)
def _isolated_sealing_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test reads or writes the developer's sealing key: the run has a key file of its
    own, made on first use, which desks built once per module share with their tests."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
        patch.delenv("VIGIL_SECRET_KEY", raising=False)
        yield


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's own database, user or data folder."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("VIGIL_DB", raising=False)
    monkeypatch.delenv("VIGIL_USER", raising=False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 26, 9, 0, tzinfo=UTC))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'vigil.db'}"


@pytest.fixture
def sqlite_db(sqlite_url: str) -> Iterator[Database]:
    database = Database.open(sqlite_url)
    yield database
    database.dispose()


@pytest.fixture
def db(sqlite_db: Database) -> Database:
    """The default test database: a fresh SQLite file."""
    return sqlite_db


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        # The database's time follows the test's host clock until a test moves it.
        install_time_source(connection, schema)
    separator = "&" if "?" in PG_URL else "?"
    try:
        yield f"{normalise_url(PG_URL)}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Database]:
    database = Database.open(pg_url)
    yield database
    database.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def any_db(request: pytest.FixtureRequest) -> Database:
    """The same test on SQLite and on PostgreSQL."""
    name = "sqlite_db" if request.param == "sqlite" else "pg_db"
    database: Database = request.getfixturevalue(name)
    return database

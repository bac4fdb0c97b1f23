"""A command line that starts at once: each command imports only what it uses.

Measured by `bench/bench_cli.py`; what keeps it fast is checked here, on a desk where each
command does its whole work (a responder acts, the case exists): `vigil --help` imports no
database layer at all; case commands import neither the console, the webhook client, the
scheduler, the calendar library, shift work's services, the HTTP service nor Alembic
(`vigil page` pages step 1 through the engine's cycle, without its scheduler or outbox)
and, on SQLite, not PostgreSQL's dialect (a partial index or an upsert naming it loads
every driver module it has); and a command declares only the tables it reads (each table
costs start-up time: its class is built on import and its mapper configured on the first
query).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.clock import SystemClock
from app.main import main as entry_point
from app.services.cases import CaseService
from data.db import Database
from data.schema import TABLE_MODULES
from tests.factories import add_policy, add_responder

HEAVY = (
    "textual",
    "httpx",
    "apscheduler",
    "icalendar",
    "alembic",
    "plyer",
    "apprise",
    "starlette",
    "uvicorn",
    "prometheus_client",
)
DATABASE = ("sqlalchemy", "sqlmodel", "psycopg")
POSTGRESQL_DIALECT = "sqlalchemy.dialects.postgresql"
SHIFT_WORK = "app.services.shiftwork"

PROBE = """
import contextlib, io, json, sys
from app.main import main
sys.argv = ["vigil", *json.loads(sys.argv[1])]
code = None
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = main()
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


@pytest.fixture
def desk(tmp_path: Path) -> str:
    """A desk with a responder who may act and one triggered case, ESC-0001, whose details
    are sealed (so the desk's key exists: the first sealed value makes it, after a look at
    every table for values sealed under a lost key)."""
    url = f"sqlite:///{tmp_path / 'v.db'}"
    db = Database.open(url)
    try:
        add_responder(db, "ana", "supervisor")
        add_policy(db, "emergency", [(300, ["user:ana"])], route=["default"])
        CaseService(db, SystemClock()).open_case(
            "ana", title="t", category="other", severity=4, details="sealed at rest"
        )
    finally:
        db.dispose()
    return url


def imported_by(argv: list[str], url: str) -> set[str]:
    """The modules `vigil ARGV` imported (it must succeed: a refused command stops early)."""
    env = {**os.environ, "VIGIL_DB": url, "VIGIL_USER": "ana"}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] in (0, None), (argv, result["code"])
    return set(result["modules"])


def packages(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_help_imports_no_database_layer(desk: str) -> None:
    loaded = packages(imported_by(["--help"], desk))
    assert loaded.isdisjoint(HEAVY + DATABASE), sorted(loaded & set(HEAVY + DATABASE))


CASE_TABLES = {"data.models"}
"""The tables of cases, pages, deliveries, responders, policies and the audit chain: listing,
acknowledging or noting a case builds no others (not who is on call, not the engine's own)."""


@pytest.mark.parametrize(
    ("argv", "tables"),
    [
        (["cases"], CASE_TABLES),
        (["ack", "ESC-0001"], CASE_TABLES),
        (["note", "ESC-0001", "hello"], CASE_TABLES),
        # Paging step 1 picks its people by the calendar and claims the step.
        (
            ["page", "--title", "t", "--category", "other", "--severity", "4"],
            CASE_TABLES | {"data.oncall", "data.escalation"},
        ),
        # A case's links, its casework, the reports it owes and who is paged next are shown
        # with it.
        (
            ["show", "ESC-0001"],
            CASE_TABLES
            | {"data.intake", "data.casework", "data.agency", "data.tipline", "data.oncall"},
        ),
        (["audit", "verify"], CASE_TABLES),
    ],
)
def test_case_commands_import_only_what_they_use(
    argv: list[str], tables: set[str], desk: str
) -> None:
    loaded = imported_by(argv, desk)
    assert "sqlmodel" in loaded  # it did reach the database
    # The viewer's zone is read beside the case's presenters, not from the calendar's module
    # (its rotations, iCalendar export and overrides cost `show` about 30 ms).
    assert sorted(name for name in loaded if name.startswith(SHIFT_WORK)) == []
    assert packages(loaded).isdisjoint(HEAVY), sorted(packages(loaded) & set(HEAVY))
    postgresql = sorted(name for name in loaded if name.startswith(POSTGRESQL_DIALECT))
    assert postgresql == [], postgresql
    declared = loaded & set(TABLE_MODULES)
    assert declared <= tables, sorted(declared - tables)


def test_the_entry_point_freezes_what_lives_before_the_process_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Python's last collection at exit walks every object not frozen: about 40 ms of a short
    command on the ORM's modules and the desk's tables alone (bench.bench_cli)."""
    monkeypatch.setattr(sys, "argv", ["vigil", "--help"])
    gc.unfreeze()
    try:
        with pytest.raises(SystemExit) as exited:
            entry_point()
        assert exited.value.code == 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()

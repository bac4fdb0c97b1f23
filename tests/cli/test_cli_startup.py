"""A command line that starts at once: each command imports only what it uses.

Measured by `bench/bench_cli.py`; what keeps it fast is checked here: `vigil --help`
imports no database layer at all, and case commands import neither the console, the
webhook client, the scheduler, the calendar library nor Alembic (`vigil page` pages step 1
through the engine's cycle, without its scheduler or outbox).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from data.db import Database

HEAVY = ("textual", "httpx", "apscheduler", "icalendar", "alembic", "plyer")
DATABASE = ("sqlalchemy", "sqlmodel", "psycopg")

PROBE = """
import contextlib, io, json, sys
from app.main import main
sys.argv = ["vigil", *json.loads(sys.argv[1])]
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        main()
    except SystemExit:
        pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def imported_by(argv: list[str], tmp_path: Path) -> set[str]:
    """The top-level packages `vigil ARGV` imported, on a desk that exists already (a new
    one is migrated, which takes Alembic)."""
    url = f"sqlite:///{tmp_path / 'v.db'}"
    Database.open(url).dispose()
    env = {**os.environ, "VIGIL_DB": url, "VIGIL_USER": "ana"}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_help_imports_no_database_layer(tmp_path: Path) -> None:
    loaded = imported_by(["--help"], tmp_path)
    assert loaded.isdisjoint(HEAVY + DATABASE), sorted(loaded & set(HEAVY + DATABASE))


@pytest.mark.parametrize(
    "argv",
    [
        ["cases"],
        ["show", "ESC-0001"],
        ["ack", "ESC-0001"],
        ["note", "ESC-0001", "hello"],
        ["audit", "verify"],
        ["page", "--title", "t", "--category", "other", "--severity", "4"],
    ],
)
def test_case_commands_import_only_the_database_layer(argv: list[str], tmp_path: Path) -> None:
    loaded = imported_by(argv, tmp_path)
    assert "sqlmodel" in loaded  # it did reach the database
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))

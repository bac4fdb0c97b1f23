"""The plain test command says once how many PostgreSQL tests it skipped, and how to run
them; with the tests run, it says nothing of the kind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_SKIP_REASON

ROOT = Path(__file__).resolve().parents[2]
PICK = [
    "tests/services/test_audit.py::test_intact_chain_verifies",
    "tests/services/test_audit.py::test_edited_record_is_named",
]


def _pytest(env: dict[str, str]) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PICK],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_skipped_postgresql_tests_are_counted_once_with_the_way_to_run_them() -> None:
    env = {k: v for k, v in os.environ.items() if k != "VIGIL_TEST_PG"}
    out = _pytest(env)
    summary = "2 PostgreSQL tests skipped: VIGIL_TEST_PG is not set."
    assert out.count(summary) == 1, out
    assert "VIGIL_TEST_PG=postgresql+psycopg://postgres@127.0.0.1:5432/test python3 run.py" in out
    assert "2 passed, 2 skipped" in out


def test_with_postgresql_there_is_nothing_to_say() -> None:
    if not os.environ.get("VIGIL_TEST_PG"):
        pytest.skip(PG_SKIP_REASON)
    out = _pytest(dict(os.environ))
    assert "PostgreSQL tests skipped" not in out
    assert "4 passed" in out

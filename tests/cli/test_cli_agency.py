"""`vigil agency`: supervisors list verified channels, a request's origin is flagged when it
does not match them, the call-back names its directory entry, bad input exits 2."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.core.clock import FakeClock
from data.db import Database
from tests.cli_harness import Run
from tests.factories import add_policy, add_responder


@pytest.fixture
def run(db: Database, sqlite_url: str, clock: FakeClock) -> Run:
    clock.set(datetime(2026, 5, 4, 14, 0, tzinfo=UTC))
    add_responder(db, "ana")
    add_responder(db, "sam", "supervisor")
    add_policy(db, "standard", [(300, ["user:ana"])], route=["default"])
    runner = Run(sqlite_url, clock)
    runner.ok(
        "partner", "add", "metro-pd", "--kind", "law_enforcement", "--agency", "Metro PD",
        "--verified-channel", "dispatch +1 555 0100", who="sam",
    )  # fmt: skip
    return runner


def test_directory_request_flags_and_call_back(run: Run) -> None:
    listing = ["agency", "add-channel", "metro-pd", "--domain", "metro-pd.example.gov"]
    code, _out, err = run(*listing, "--source", "state list")
    assert code == 1
    assert "supervisor" in err
    run.ok(*listing, "--source", "state list", who="sam")
    run.ok(
        "agency", "add-channel", "metro-pd", "--phone", "+1 555 0100", "--source", "state list",
        who="sam",
    )  # fmt: skip
    assert "+15550100" in run.ok("agency", "list")

    ref = run.ok("page", "--title", "EDR", "--category", "edr", "--severity", "1").strip()
    out = run.ok(
        "agency", "request", ref, "--from-email", "lee@metro-pd.example.co", "--cites", "2703(f)"
    )
    assert "! unlisted_domain" in out
    assert "! law_mismatch" in out
    assert "! unlisted_domain" in run.ok("casework", "show", ref)

    out = run.ok("agency", "call-back", ref, "--number", "+1 555 0100", "--contacted", "Dispatch")
    assert "agency directory entry 2: metro-pd" in out
    code, _out, err = run("agency", "call-back", ref, "--number", "+1 555 0199", "--contacted", "X")
    assert code == 1
    assert "not a number of the agency directory" in err


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["agency", "request", "ESC-0001", "--from-email", "no-at-sign"], "sender_email"),
        (["agency", "request", "ESC-0001", "--from-phone", "555 0100"], "sender_phone"),
        (["agency", "call-back", "ESC-0001", "--number", "call me", "--contacted", "x"], "number"),
    ],
)
def test_bad_values_exit_2_naming_the_field(run: Run, argv: list[str], field: str) -> None:
    run.ok("page", "--title", "EDR", "--category", "edr", "--severity", "2")
    code, _out, err = run(*argv)
    assert code == 2
    assert field in err

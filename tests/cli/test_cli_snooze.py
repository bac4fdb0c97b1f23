"""`vigil snooze`, `vigil reopen` and `vigil merge`: the console's snooze, reopen and merge
from the command line."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.core.clock import FakeClock
from data.db import Database
from tests.cli_harness import Run
from tests.factories import add_policy, add_responder


@pytest.fixture
def run(db: Database, sqlite_url: str, clock: FakeClock) -> Run:
    add_responder(db, "ana", timezone="Australia/Sydney")
    add_responder(db, "sam", "supervisor")
    add_policy(db, "emergency", [(300, ["user:ana"])], route=["default"])
    return Run(sqlite_url, clock)


def _open(run: Run) -> str:
    return run.ok("page", "--title", "EDR", "--category", "edr", "--severity", "2").strip()


def test_snooze_for_a_duration_says_when_in_the_viewers_zone_and_leaves_the_open_list(
    run: Run,
) -> None:
    ref = _open(run)
    out = run.ok("snooze", ref, "--until", "2h", "--reason", "agency calls back at noon")
    # 09:00 UTC + 2 h is 22:00 in Sydney (AEDT)
    assert out.strip() == f"{ref} snoozed until Thu 26 Nov 2026 22:00 AEDT; it pages again then"
    body = run.json("show", ref)
    assert body["status"] == "acknowledged"
    listed = run.json("cases")
    assert [case["ref"] for case in listed] == [ref]  # snoozed cases are still open


@pytest.mark.parametrize(
    ("until", "expected"),
    [
        ("soon", "--until: expected a duration such as 4h or 2d"),
        ("8d", "until: a snooze lasts at most 7 days"),
        ("2026-11-26T08:00:00Z", "until: expected a time after now"),
    ],
)
def test_a_bad_snooze_time_names_the_field_and_exits_2(run: Run, until: str, expected: str) -> None:
    ref = _open(run)
    code, _, err = run("snooze", ref, "--until", until, "--reason", "r")
    assert code == 2
    assert expected in err
    assert run.json("show", ref)["status"] == "triggered"


def test_reopen_within_a_day_and_refused_after(run: Run, clock: FakeClock) -> None:
    ref = _open(run)
    run.ok("resolve", ref)
    clock.advance(timedelta(hours=2))
    assert run.json("reopen", ref, "--reason", "second request")["status"] == "acknowledged"
    run.ok("resolve", ref)
    clock.advance(timedelta(hours=25))
    code, _, err = run("reopen", ref, "--reason", "late")
    assert code == 1
    assert "resolved more than 24 h ago" in err


def test_merge_resolves_the_duplicate_into_the_case_named(run: Run) -> None:
    keep, dup = _open(run), _open(run)
    assert run.ok("merge", dup, "--into", keep).strip() == f"{dup} merged into {keep} and resolved"
    assert run.json("show", dup)["status"] == "resolved"
    code, _, err = run("merge", keep, "--into", keep)
    assert code == 2
    assert "into: a case cannot be merged into itself" in err

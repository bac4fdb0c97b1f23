"""The rotation change rule end to end: `vigil team apply` changes a rotation from its next
hand-off, `--dry-run` says who is on call now and at that hand-off, and `vigil oncall` keeps
the turn under way and the past as they were. The clock is injected; the days chosen are the
spring-forward day in Los Angeles and the October change in Sydney."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.core.clock import FakeClock
from app.services.oncall import load_rotation
from data.db import Database
from tests.cli_harness import Run

TEAM = """
[[responder]]
handle = "sam"
name = "Sam Supervisor"
role = "supervisor"
contacts = [{{ kind = "desktop" }}]

[[responder]]
handle = "ana"
name = "Ana"
contacts = [{{ kind = "desktop" }}]

[[responder]]
handle = "ben"
name = "Ben"
contacts = [{{ kind = "desktop" }}]

[[responder]]
handle = "cat"
name = "Cat"
contacts = [{{ kind = "desktop" }}]

[[rotation]]
name = "r"
timezone = "{zone}"
shift = "{shift}"
handoff = "09:00"
start = "{start}"
members = {members}

[[schedule]]
name = "primary"
layers = ["r"]
"""


def team(path: Path, members: list[str], **rotation: str) -> str:
    values = {"zone": "America/Los_Angeles", "shift": "1d", "start": "2026-03-01"} | rotation
    text = TEAM.format(members=str(members).replace("'", '"'), **values)
    path.write_text(text)
    return str(path)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    value: str = request.getfixturevalue(name)
    return value


def on_call(run: Run, at: str) -> str:
    body = run.json("oncall", "--at", at, "--schedule", "primary")
    return str(body["schedules"][0]["on_call"]["who"])


# Los Angeles, daily at 09:00 from 1 March: ana, ben, cat, ana... Sunday 8 March (clocks go
# forward) is turn 7, ben's: 17:00Z (09:00 PST) to 16:00Z on the 9th (09:00 PDT).
NOW = datetime(2026, 3, 8, 19, 0, tzinfo=UTC)  # 12:00 PDT


def test_removing_an_off_duty_member_keeps_the_shift_under_way(url: str, tmp_path: Path) -> None:
    run = Run(url, FakeClock(datetime(2026, 2, 20, tzinfo=UTC)))
    run.ok("team", "apply", team(tmp_path / "a.toml", ["ana", "ben", "cat"]), who="sam")
    run.clock.set(NOW)
    smaller = team(tmp_path / "b.toml", ["ben", "cat"])

    dry = run.ok("team", "apply", smaller, "--dry-run", who="sam")
    assert (
        "~ rotation r: members: [ana, ben, cat] -> [ben, cat]; on call now: ben; "
        "from the hand-off at 2026-03-09T16:00:00+00:00: cat"
    ) in dry
    assert "On call now, before -> after:\n  primary: ben\n" in dry
    assert on_call(run, "2026-03-08T19:00:00Z") == "ben"

    run.ok("team", "apply", smaller, who="sam")
    # A re-deal would give turn 7 to cat and turn 6 to ben.
    assert on_call(run, "2026-03-08T19:00:00Z") == "ben"
    assert on_call(run, "2026-03-09T15:59:00Z") == "ben"
    assert on_call(run, "2026-03-07T19:00:00Z") == "ana"
    assert on_call(run, "2026-03-06T19:00:00Z") == "cat"
    # From the hand-off: cat (next in the old order too), then the new order.
    assert on_call(run, "2026-03-09T16:00:00Z") == "cat"
    assert on_call(run, "2026-03-10T16:00:00Z") == "ben"
    assert on_call(run, "2026-03-11T16:00:00Z") == "cat"
    # The file is the team: applying it again, or its export, changes nothing.
    assert "No changes." in run.ok("team", "apply", smaller, who="sam")
    exported = tmp_path / "export.toml"
    exported.write_text(run.ok("team", "export"))
    assert "No changes." in run.ok("team", "apply", str(exported), who="sam")


def test_dry_run_names_the_change_of_hands_when_the_next_in_line_leaves(
    url: str, tmp_path: Path
) -> None:
    run = Run(url, FakeClock(datetime(2026, 2, 20, tzinfo=UTC)))
    run.ok("team", "apply", team(tmp_path / "a.toml", ["ana", "ben", "cat"]), who="sam")
    run.clock.set(NOW)
    body = run.json("team", "apply", team(tmp_path / "b.toml", ["ana", "ben"]), who="sam")
    assert body["changes"] == [
        "~ rotation r: members: [ana, ben, cat] -> [ana, ben]; on call now: ben; "
        "from the hand-off at 2026-03-09T16:00:00+00:00: cat -> ana"
    ]
    assert on_call(run, "2026-03-09T16:00:00Z") == "ana"
    assert on_call(run, "2026-03-06T19:00:00Z") == "cat"  # cat's past turn stays hers


def test_removing_the_person_on_call_from_the_team_warns_that_pages_skip_them(
    url: str, tmp_path: Path
) -> None:
    run = Run(url, FakeClock(datetime(2026, 2, 20, tzinfo=UTC)))
    run.ok("team", "apply", team(tmp_path / "a.toml", ["ana", "ben", "cat"]), who="sam")
    run.clock.set(NOW)
    path = tmp_path / "b.toml"
    team(path, ["ana", "cat"])
    ben = '[[responder]]\nhandle = "ben"\nname = "Ben"\ncontacts = [{ kind = "desktop" }]\n'
    path.write_text(path.read_text().replace(ben, ""))

    code, out, err = run("team", "apply", str(path), "--dry-run", who="sam")
    assert code == 0
    assert "on call now: ben (leaves the rotation at the hand-off)" in out
    assert (
        "warning: rotation r: ben's turn runs until the hand-off at 2026-03-09T16:00:00+00:00, "
        "but ben is not in this file and is never paged"
    ) in err


def test_dry_run_shows_a_schedule_change_that_moves_who_is_on_call_now(
    url: str, tmp_path: Path
) -> None:
    """A rotation change never moves who is on call now; an override in the file does, and
    the dry run says so per schedule."""
    run = Run(url, FakeClock(datetime(2026, 2, 20, tzinfo=UTC)))
    run.ok("team", "apply", team(tmp_path / "a.toml", ["ana", "ben", "cat"]), who="sam")
    run.clock.set(NOW)
    path = tmp_path / "b.toml"
    team(path, ["ben", "cat"])
    with path.open("a") as file:
        file.write(
            '\n[[override]]\nschedule = "primary"\nwho = "ana"\n'
            'from = "2026-03-08T11:00"\nto = "2026-03-08T15:00"\n'
        )
    body = run.json("team", "apply", str(path), "--dry-run", who="sam")
    assert body["on_call_now"] == [{"schedule": "primary", "before": "ben", "after": "ana"}]
    code, out, _ = run("team", "apply", str(path), "--dry-run", who="sam")
    assert code == 0
    assert "On call now, before -> after:\n  primary: ben -> ana\n" in out
    assert on_call(run, "2026-03-08T19:00:00Z") == "ben"  # a dry run changes nothing


def test_a_rotation_not_yet_started_changes_at_once(url: str, tmp_path: Path) -> None:
    run = Run(url, FakeClock(datetime(2026, 2, 20, tzinfo=UTC)))
    run.ok("team", "apply", team(tmp_path / "a.toml", ["ana", "ben", "cat"]), who="sam")
    body = run.json("team", "apply", team(tmp_path / "b.toml", ["cat", "ana"]), who="sam")
    assert body["changes"] == [
        "~ rotation r: members: [ana, ben, cat] -> [cat, ana]; "
        "takes effect at once: no turn has begun"
    ]
    assert on_call(run, "2026-03-01T17:00:00Z") == "cat"


# Sydney, weekly on Mondays at 09:00 from 7 September 2026: ana, ben, cat, ana, ben...
# Clocks go forward on Sunday 4 October, inside ana's fourth turn from 28 Sep 09:00 AEST
# (27 Sep 23:00Z) to 5 Oct 09:00 AEDT (4 Oct 22:00Z).
def test_changes_in_turn_keep_every_version_across_the_sydney_change(
    url: str, tmp_path: Path
) -> None:
    sydney = {"zone": "Australia/Sydney", "shift": "7d", "start": "2026-09-07"}
    run = Run(url, FakeClock(datetime(2026, 9, 1, tzinfo=UTC)))
    run.ok("team", "apply", team(tmp_path / "a.toml", ["ana", "ben", "cat"], **sydney), who="sam")

    run.clock.set(datetime(2026, 10, 3, 12, tzinfo=UTC))  # Saturday night, ana's turn
    run.ok("team", "apply", team(tmp_path / "b.toml", ["ben", "cat"], **sydney), who="sam")
    assert on_call(run, "2026-10-04T21:59:00Z") == "ana"  # removed, she finishes the turn
    assert on_call(run, "2026-10-04T22:00:00Z") == "ben"

    run.clock.set(datetime(2026, 10, 6, tzinfo=UTC))  # ben's turn under the first change
    run.ok("team", "apply", team(tmp_path / "c.toml", ["ana", "ben"], **sydney), who="sam")
    database = Database.open(url)
    with database.read() as session:
        rotation = load_rotation(session, "r")
    database.dispose()
    assert rotation is not None
    assert [v.members for v in rotation.versions()] == [
        ("ana", "ben", "cat"),
        ("ben", "cat"),
        ("ana", "ben"),
    ]
    assert on_call(run, "2026-09-21T23:00:00Z") == "cat"  # the first version's third turn
    assert on_call(run, "2026-10-04T21:00:00Z") == "ana"
    assert on_call(run, "2026-10-06T00:00:00Z") == "ben"
    # 12 Oct 09:00 AEDT: cat was next under the first change and is gone; ben follows her.
    assert on_call(run, "2026-10-11T22:00:00Z") == "ben"
    assert on_call(run, "2026-10-18T22:00:00Z") == "ana"

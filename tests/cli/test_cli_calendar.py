"""The on-call commands: `vigil oncall`, `vigil override`, `vigil calendar export|gaps|settings`
and `vigil swap`, their output, exit codes and audit records; and the check that `vigil oncall
--at` agrees with `vigil calendar export` for every shift of a year of the demo desk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from icalendar import Calendar

from app.core.clock import FakeClock
from app.demo.build import build_demo
from app.rules.rotations import on_call
from app.services.oncall import load_all_schedules
from app.services.shiftwork.calendar import calendar_feed, on_call_entries, responder_names
from data.db import Database
from tests.cli_harness import Run
from tests.services.test_calendar import START, build_desk, icalendar_feed


@pytest.fixture
def run(db: Database, sqlite_url: str) -> Run:
    clock = FakeClock(START)
    build_desk(db, clock)
    return Run(sqlite_url, clock)


def audit_actions(run: Run) -> list[str]:
    return [record["action"] for record in run.json("audit", "log")]


# --- vigil oncall ----------------------------------------------------------------------------


def test_oncall_shows_the_viewers_clock_and_utc(run: Run) -> None:
    code, out, _ = run("oncall", "--at", "2026-10-04T12:00:00+11:00")
    assert code == 0
    assert "On call at Sun 04 Oct 2026 12:00 AEDT (01:00 UTC):" in out
    assert "now:  Ana Ruiz (ana)  [rotation:syd]" in out
    assert "from Sun 04 Oct 2026 08:00 AEDT (Sat 03 Oct 21:00 UTC)" in out
    assert "next: Cat Moss (cat)  [rotation:nyc]" in out
    _, in_new_york, _ = run("oncall", "--at", "2026-10-04T12:00:00+11:00", who="cat")
    assert "from Sat 03 Oct 2026 17:00 EDT (21:00 UTC)" in in_new_york
    code, _, refused = run("oncall", "--at", "2026-10-04T12:00:00+11:00", who="visitor")
    assert code == 1
    assert "'visitor' is not a responder of this desk" in refused


def test_oncall_json_is_utc_per_schedule(run: Run) -> None:
    body = run.json("oncall", "--at", "2026-10-03T15:00:00Z")
    assert body["at"] == "2026-10-03T15:00:00Z"
    assert body["timezone"] == "Australia/Sydney"
    by_name = {s["schedule"]: s for s in body["schedules"]}
    assert set(by_name) == {"primary", "backup"}
    assert by_name["primary"]["on_call"] == {
        "who": "cat",
        "name": "Cat Moss",
        "start": "2026-10-03T10:00:00Z",
        "end": "2026-10-03T21:00:00Z",
        "source": "rotation:nyc",
    }
    assert by_name["primary"]["next"]["who"] == "ana"
    assert by_name["backup"]["on_call"] is None
    assert by_name["backup"]["next"]["start"] == "2026-10-03T21:00:00Z"
    only = run.json("oncall", "--at", "2026-10-03T15:00:00Z", "--schedule", "backup")
    assert [s["schedule"] for s in only["schedules"]] == ["backup"]


def test_oncall_defaults_to_now(run: Run) -> None:
    body = run.json("oncall")
    assert body["at"] == "2026-10-01T00:00:00Z"


def test_oncall_refusals_and_bad_input(run: Run) -> None:
    code, _, err = run("oncall", "--schedule", "secondary")
    assert code == 1
    assert "no schedule named 'secondary' (schedules: backup, primary)" in err
    for bad in ("2026-10-04T12:00:00", "tomorrow", "2026-13-01T00:00:00Z", "", "  "):  # "" was now
        code, _, err = run("oncall", "--at", bad)
        assert code == 2, bad
        assert err.startswith("vigil: --at: expected"), err


# --- vigil override --------------------------------------------------------------------------


def test_override_contract_form(run: Run) -> None:
    code, out, err = run(
        "override",
        "--schedule",
        "primary",
        "--who",
        "ben",
        "--from",
        "2026-10-04T11:00:00+11:00",
        "--to",
        "2026-10-04T17:00:00+11:00",
        who="sam",
    )
    assert code == 0, err
    assert out.startswith("Override placed:\n#1  primary  ben  placed by sam")
    assert "from Sun 04 Oct 2026 11:00 AEDT" not in out  # sam reads New York time
    assert "from Sat 03 Oct 2026 20:00 EDT (Sun 04 Oct 00:00 UTC)" in out
    body = run.json("oncall", "--at", "2026-10-04T01:00:00Z", "--schedule", "primary")
    assert body["schedules"][0]["on_call"]["who"] == "ben"
    assert body["schedules"][0]["on_call"]["source"] == "override"
    assert audit_actions(run)[-1] == "override.add"


def test_an_override_from_the_past_starts_now_and_the_past_stays_as_it_was(run: Run) -> None:
    """It was placed from its --from, and `oncall --at` an hour ago then named ben, whom
    nobody had asked to be on call then (ben was)."""
    now = run.clock.now()
    hour_ago = (now - timedelta(hours=1)).isoformat()
    before = run.json("oncall", "--at", hour_ago, "--schedule", "primary")
    tomorrow = (now + timedelta(days=1)).isoformat()
    code, out, err = run(
        "override",
        "--schedule",
        "primary",
        "--who",
        "cat",
        "--from",
        hour_ago,
        "--to",
        tomorrow,
        who="sam",
    )
    assert code == 0, err
    assert "is past: the override starts now (who was on call before stays as it was)" in out
    was, still = (
        body["schedules"][0]["on_call"]
        for body in (before, run.json("oncall", "--at", hour_ago, "--schedule", "primary"))
    )
    assert (was["who"], was["start"]) == (still["who"], still["start"]) == ("ben", was["start"])
    assert still["end"] == now.isoformat().replace("+00:00", "Z")  # cat from now on
    at_now = run.json("oncall", "--at", now.isoformat(), "--schedule", "primary")
    assert at_now["schedules"][0]["on_call"]["who"] == "cat"
    [placed] = run.json("override", "list")
    assert placed["start"] == now.isoformat().replace("+00:00", "Z")


def test_override_reads_a_time_without_offset_on_the_schedules_clock(run: Run) -> None:
    code, out, err = run(
        "override", "--schedule", "primary", "--who", "ben",
        "--from", "2026-10-04 02:30", "--to", "2026-10-04 06:00", who="sam",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith(
        "--from 2026-10-04 02:30 is skipped by the clocks in Australia/Sydney: "
        "read as Sun 04 Oct 2026 03:00 AEDT\nOverride placed:"
    )
    [placed] = run.json("override", "list")
    assert (placed["start"], placed["end"]) == ("2026-10-03T16:00:00Z", "2026-10-03T19:00:00Z")


def test_override_refusals_and_bad_input(run: Run) -> None:
    window = ["--from", "2026-10-04T00:00:00Z", "--to", "2026-10-04T06:00:00Z"]
    code, _, err = run("override", "--schedule", "primary", "--who", "ben", *window)
    assert code == 1
    assert "only supervisors or admins may place overrides; ana is a specialist" in err
    code, _, err = run(
        "override",
        "--schedule",
        "primary",
        "--who",
        "ben",
        "--from",
        "2026-10-04T06:00:00Z",
        "--to",
        "2026-10-04T00:00:00Z",
        who="sam",
    )
    assert code == 2
    assert err.startswith("vigil: --to: expected a time after --from")
    code, _, err = run("override", "--schedule", "primary", *window, who="sam")
    assert (code, err.split(":")[:2]) == (2, ["vigil", " --who"])
    code, _, err = run("override", "--schedule", "nope", "--who", "ben", *window, who="sam")
    assert code == 1
    assert "no schedule named 'nope'" in err
    code, _, err = run("override", "--schedule", "primary", "--who", "zed", *window, who="sam")
    assert code == 1
    assert "no active responder 'zed'" in err
    code, _, err = run(
        "override", "--schedule", "primary", "--who", "ben", "--from", "soon", "--to", "x"
    )
    assert (code, err.split(":")[:2]) == (2, ["vigil", " --from"])
    assert "override.add" not in audit_actions(run)


def test_override_list_and_remove(run: Run) -> None:
    window = ["--from", "2026-10-04T00:00:00Z", "--to", "2026-10-04T06:00:00Z"]
    run("override", "--schedule", "primary", "--who", "ben", *window, "--reason", "x", who="sam")
    run("override", "--schedule", "backup", "--who", "cat", *window, who="sam")
    listed = run.json("override", "list")
    assert [(o["id"], o["schedule"], o["who"], o["start"]) for o in listed] == [
        (1, "primary", "ben", "2026-10-04T00:00:00Z"),
        (2, "backup", "cat", "2026-10-04T00:00:00Z"),
    ]
    assert [o["id"] for o in run.json("override", "list", "--schedule", "backup")] == [2]
    code, _, err = run("override", "list", "--schedule", "nope")
    assert code == 1
    code, _, err = run("override", "remove", "1")
    assert code == 1
    assert "only supervisors or admins may remove overrides" in err
    code, out, _ = run("override", "remove", "1", who="sam")
    assert (code, out.strip()) == (0, "Override #1 removed (ben on primary).")
    assert [o["id"] for o in run.json("override", "list")] == [2]
    code, _, err = run("override", "remove", "1", who="sam")
    assert code == 1
    code, _, err = run("override", "remove", "one", who="sam")
    assert (code, err.split(":")[:2]) == (2, ["vigil", " ID"])
    assert audit_actions(run)[-3:] == ["override.add", "override.add", "override.remove"]


# --- vigil calendar --------------------------------------------------------------------------


def test_calendar_export_is_icalendar_on_stdout(run: Run) -> None:
    code, out, err = run("calendar", "export", "--schedule", "primary", "--days", "7")
    assert code == 0, err
    events = list(Calendar.from_ical(out).walk("VEVENT"))
    starts = [event.decoded("dtstart") for event in events]
    assert starts == sorted(starts)
    assert starts[0] <= START < events[-1].decoded("dtend")
    assert events[-1].decoded("dtend") >= START + timedelta(days=7)
    assert {str(e["x-vigil-schedule"]) for e in events} == {"primary"}
    assert all(str(e["summary"]).startswith("On call: ") for e in events)
    mine = Calendar.from_ical(run("calendar", "export", "--who", "ana")[1]).walk("VEVENT")
    assert mine
    assert {str(e["x-vigil-handle"]) for e in mine} == {"ana"}


def test_calendar_bad_input(run: Run) -> None:
    for argv in (
        ("calendar", "export", "--days", "0"),
        ("calendar", "export", "--days", "367"),
        ("calendar", "gaps", "--days", "a week"),
    ):
        code, out, err = run(*argv)
        assert (code, out) == (2, ""), argv
        assert err.startswith("vigil: --days: expected a whole number of days from 1 to 366")
    code, _, err = run("calendar", "export", "--schedule", "nope")
    assert code == 1
    code, _, err = run("calendar", "export", "--who", "zed")
    assert (code, err.split(":")[:2]) == (2, ["vigil", " --who"])
    code, _, err = run("calendar")
    assert code == 2


def test_calendar_gaps(run: Run) -> None:
    body = run.json("calendar", "gaps", "--days", "4")
    assert (body["from"], body["to"]) == ("2026-10-01T00:00:00Z", "2026-10-05T00:00:00Z")
    by_name = {s["schedule"]: s for s in body["schedules"]}
    assert by_name["primary"] == {"schedule": "primary", "uncovered_hours": 0, "gaps": []}
    backup = by_name["backup"]["gaps"]
    assert [(g["start"], g["hours"]) for g in backup] == [
        ("2026-10-01T10:00:00Z", 12),
        ("2026-10-02T10:00:00Z", 12),
        ("2026-10-03T10:00:00Z", 11),  # the night the clocks go forward
        ("2026-10-04T09:00:00Z", 12),
    ]
    code, out, _ = run("calendar", "gaps", "--days", "4")
    assert code == 0
    assert "primary: fully covered" in out
    assert "backup: 4 gap(s), 47h uncovered" in out


def test_calendar_settings(run: Run) -> None:
    assert run.json("calendar", "settings") == {
        "swaps.require_approval": True,
        "handoff.lead": "30m",
    }
    code, _, err = run("calendar", "settings", "--swap-approval", "optional")
    assert code == 1
    assert "only supervisors or admins" in err
    code, _, err = run("calendar", "settings", "--handoff-lead", "2d", who="sam")
    assert (code, err.split(":")[:2]) == (2, ["vigil", " --handoff-lead"])
    changed = run.json(
        "calendar", "settings", "--swap-approval", "optional", "--handoff-lead", "1h", who="sam"
    )
    assert changed == {"swaps.require_approval": False, "handoff.lead": "1h"}
    assert audit_actions(run)[-1] == "settings.change"


# --- vigil swap ------------------------------------------------------------------------------


def test_swap_through_the_command_line(run: Run) -> None:
    asked = run.json(
        "swap",
        "request",
        "--schedule",
        "primary",
        "--from",
        "2026-10-04T11:00:00+11:00",
        "--to",
        "2026-10-04T17:00:00+11:00",
        "--with",
        "ben",
    )
    assert (asked["id"], asked["status"], asked["with"]) == (1, "open", "ben")
    code, _, err = run("swap", "take", "1", who="cat")
    assert code == 1
    assert "offered to ben only" in err
    code, out, _ = run("swap", "take", "1", who="ben")
    assert code == 0
    assert "waits for a supervisor's approval" in out
    code, _, err = run("swap", "approve", "1", who="ben")
    assert code == 1
    assert "only supervisors or admins may approve swaps" in err
    approved = run.json("swap", "approve", "1", who="sam")
    assert (approved["status"], approved["override"]) == ("approved", 1)
    assert run.json("swap", "list") == []
    assert [s["status"] for s in run.json("swap", "list", "--all")] == ["approved"]
    assert [o["swap"] for o in run.json("override", "list")] == [1]
    body = run.json("oncall", "--at", "2026-10-04T03:00:00Z", "--schedule", "primary")
    assert body["schedules"][0]["on_call"]["who"] == "ben"
    assert audit_actions(run)[-4:] == ["swap.request", "swap.take", "override.add", "swap.approve"]


def test_swap_reads_a_time_without_offset_on_the_schedules_clock(
    run: Run,
) -> None:
    """Sydney's clocks go from 02:00 to 03:00 on 4 October: 02:30 is read as 03:00 AEDT
    (16:00Z), as an override in the team file or the calendar's form would be."""
    code, out, _ = run(
        "swap", "request", "--schedule", "primary",
        "--from", "2026-10-04 02:30", "--to", "2026-10-04 06:00", who="cat",
    )  # fmt: skip
    assert code == 0
    assert (
        "--from 2026-10-04 02:30 is skipped by the clocks in Australia/Sydney: "
        "read as Sun 04 Oct 2026 03:00 AEDT"
    ) in out
    [swap] = run.json("swap", "list")
    assert (swap["start"], swap["end"]) == ("2026-10-03T16:00:00Z", "2026-10-03T19:00:00Z")
    code, _, err = run("swap", "request", "--schedule", "primary", "--from", "soon", "--to", "x")
    assert (code, err.split(":")[:2]) == (2, ["vigil", " --from"])


def test_swap_bad_input(run: Run) -> None:
    window = ["--from", "2026-10-04T00:00:00Z", "--to", "2026-10-04T06:00:00Z"]
    code, _, err = run("swap", "request", "--schedule", "primary", *window, who="ben")
    assert code == 1
    assert "ben is not on call on primary" in err
    backwards = ["--from", "2026-10-04T06:00:00Z", "--to", "2026-10-04T00:00:00Z"]
    code, _, err = run("swap", "request", "--schedule", "primary", *backwards)
    assert (code, err.split(":")[:2]) == (2, ["vigil", " --to"])
    code, _, err = run("swap", "take", "#x")
    assert (code, err.split(":")[:2]) == (2, ["vigil", " ID"])
    code, _, err = run("swap", "list", "--status", "pending")
    assert (code, err.split(":")[:2]) == (2, ["vigil", " --status"])
    code, _, err = run("swap", "request", "--schedule", "primary")
    assert code == 2


# --- the required check: oncall --at agrees with the export, over a year of the demo ---------

DEMO_NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("demo") / "vigil.db"
    url = f"sqlite:///{path}"
    db = Database.open(url)
    try:
        build_demo(db, now=DEMO_NOW)
    finally:
        db.dispose()
    return url


@pytest.mark.slow
def test_oncall_at_agrees_with_the_export_for_a_year_of_the_demo(demo_url: str) -> None:
    run = Run(demo_url, FakeClock(DEMO_NOW))
    code, feed, err = run("calendar", "export", "--days", "366")
    assert code == 0, err
    events = list(Calendar.from_ical(feed).walk("VEVENT"))
    db = Database.open(demo_url)
    try:
        with db.read() as session:
            schedules = {spec.name: spec for spec in load_all_schedules(session)}
    finally:
        db.dispose()
    assert {str(e["x-vigil-schedule"]) for e in events} == set(schedules)
    kinds = {str(c) for e in events for c in e["categories"].cats}
    assert kinds == {"rotation", "override", "holiday"}  # the demo has all three
    year_end = DEMO_NOW + timedelta(days=366)
    sampled = 0
    last_end: dict[str, datetime] = {}
    for position, event in enumerate(events):
        schedule, who = str(event["x-vigil-schedule"]), str(event["x-vigil-handle"])
        start, end = event.decoded("dtstart"), event.decoded("dtend")
        assert start < end
        assert start < year_end
        assert end > DEMO_NOW
        # The command's own answer at the start; the shift's end is the same shift's.
        [at_start] = on_call_entries([schedules[schedule]], start)
        before_end = on_call(schedules[schedule], end - timedelta(seconds=1))
        assert at_start.current is not None, (schedule, start)
        assert before_end is not None, (schedule, end)
        assert (at_start.current.who, at_start.current.start, at_start.current.end) == (
            who,
            start,
            end,
        )
        assert before_end.who == who
        if position % 100 == 0 or "override" in str(event["x-vigil-source"]):
            body = run.json("oncall", "--at", start.isoformat(), "--schedule", schedule)
            shift = body["schedules"][0]["on_call"]
            assert shift["who"] == who
            assert shift["start"] == start.isoformat().replace("+00:00", "Z")
            assert shift["end"] == end.isoformat().replace("+00:00", "Z")
            late = (end - timedelta(seconds=1)).isoformat()
            body = run.json("oncall", "--at", late, "--schedule", schedule)
            assert body["schedules"][0]["on_call"]["who"] == who
            sampled += 1
        previous_end = last_end.get(schedule)
        assert previous_end is None or previous_end <= start, (schedule, start)  # no overlap
        last_end[schedule] = end
    assert len(events) > 1000
    assert sampled >= 10


@pytest.mark.slow
def test_a_year_of_the_demo_is_written_byte_for_byte_as_the_icalendar_library_wrote_it(
    demo_url: str,
) -> None:
    db = Database.open(demo_url)
    try:
        with db.read() as session:
            schedules = load_all_schedules(session)
            names = responder_names(session)
    finally:
        db.dispose()
    year_end = DEMO_NOW + timedelta(days=366)
    for who in (None, "ana"):
        ours = calendar_feed(schedules, names, DEMO_NOW, year_end, stamp=DEMO_NOW, who=who)
        assert ours.count("BEGIN:VEVENT") > (1000 if who is None else 100)
        assert ours == icalendar_feed(schedules, names, DEMO_NOW, year_end, stamp=DEMO_NOW, who=who)

"""Bounded values everywhere: extreme durations, counts and instants, generated, through
every entry (the team file, the command line, the console's forms) and then through what
reads them back (acknowledging, `override list`, the handover, the calendar, the engine
and the console's screens).

A value out of its range is refused where it comes in, with its key path or field and the
range expected (exit 2, nothing stored); a value in range never breaks anything later. The
ranges live in one table, `data/domain.py`.
"""

from __future__ import annotations

import functools
import io
import json
import shutil
import tomllib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select
from textual.widgets import Input, Static

import app.cli.main as cli
from app.console.screens.calendar import CalendarScreen, OverrideDialog
from app.console.screens.handover import HandoverScreen, parse_since
from app.console.screens.stats import StatsScreen
from app.core.clock import FakeClock
from app.core.errors import BadInput
from app.core.times import parse_due, parse_instant
from app.engine.runner import EscalationEngine
from app.rules.rotations import parse_wall_time
from data import domain, schema
from data.db import Database, make_engine
from data.domain import EARLIEST, LATEST, DurationRange, parse_duration
from data.models import Case, Policy, PolicyStep, Responder, SlaTarget
from data.oncall import Override, Rotation
from tests.console_harness import console_opener
from tests.factories import TEAM_FILE
from tests.faults.test_fuzz import toml_document

T = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
BOUNDS = settings(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
RANGE_WORDS = "between 1970-01-01 and 2199-12-31"


@pytest.fixture(autouse=True)
def _quick_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "build_parser", functools.cache(cli.build_parser))
    monkeypatch.setattr(schema, "head_revision", functools.cache(schema.head_revision))


def _run(url: str, who: str, *argv: str, at: datetime = T) -> tuple[int, str, str]:
    """A command as a person runs it: an exit code of the contract, never a traceback (an
    exception other than the contract's refusals escapes `main` and fails the test)."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--db", url, "--as", who, *argv], clock=FakeClock(at), out=out, err=err)
    assert code in (0, 1, 2), f"exit {code}: {err.getvalue()}"
    assert "Traceback" not in err.getvalue()
    if code:
        assert err.getvalue().startswith("vigil"), f"a refusal without a sentence: {argv}"
    return code, out.getvalue(), err.getvalue()


# --- what is generated ------------------------------------------------------------------

EDGE_AMOUNTS = [0, 1, 7, 8, 28, 29, 30, 31, 59, 60, 100, 168, 720, 10080, 3660, 3000000]
DURATIONS = st.sampled_from(
    ["1s", "59s", "1m", "1h", "7d", "1w", "28d", "4w", "30d", "3660d"]
) | st.builds(
    "{}{}".format,
    st.sampled_from(EDGE_AMOUNTS) | st.integers(0, 10**15),
    st.sampled_from("smhdw"),
)
OFFSETS = st.sampled_from(["Z", "+14:00", "-12:00", "+11:00", "+00:00"])
EDGE_MOMENTS = [
    datetime(1, 1, 1, 0, 0),
    datetime(1, 1, 1, 13, 0),
    datetime(1969, 12, 31, 23, 59, 59),
    datetime(1970, 1, 1, 0, 0),
    datetime(1970, 1, 1, 11, 0),
    datetime(2199, 12, 31, 12, 0),
    datetime(2199, 12, 31, 23, 59, 59),
    datetime(2200, 1, 1, 0, 0),
    datetime(9999, 12, 31, 0, 0),
    datetime(9999, 12, 31, 23, 59, 59),
]
MOMENTS = (
    st.sampled_from(EDGE_MOMENTS)
    | st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59))
    | st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2199, 12, 30))
)
INSTANTS = st.builds(lambda moment, offset: moment.isoformat() + offset, MOMENTS, OFFSETS)
DAYS = st.sampled_from(
    [date(1, 1, 1), date(1969, 12, 31), date(1970, 1, 1), date(2199, 12, 31), date(2200, 1, 1),
     date(9999, 12, 31)]
) | st.dates() | st.dates(date(1970, 1, 1), date(2199, 12, 31))  # fmt: skip
COUNTS = st.sampled_from([-1, 0, 1, 100, 101, 2**31, 2**63 - 1, -(2**63)]) | st.integers(
    -(2**63), 2**63 - 1
)


def _in_range(text: str) -> bool:
    """Whether an instant as typed lies within 1970..2199 once its offset is applied."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    try:
        return EARLIEST <= parsed.astimezone(UTC) <= LATEST
    except OverflowError:
        return False


# --- the one table ----------------------------------------------------------------------

RANGES = {name: value for name, value in vars(domain).items() if isinstance(value, DurationRange)}


@settings(BOUNDS, max_examples=300)
@given(text=DURATIONS, name=st.sampled_from(sorted(RANGES)))
def test_a_duration_is_in_its_range_or_refused_with_the_range(text: str, name: str) -> None:
    bounds = RANGES[name]
    try:
        parsed, problem = parse_duration(text, bounds), ""
    except ValueError as exc:
        parsed, problem = None, str(exc)
    if parsed is None:
        assert str(bounds) in problem or "positive" in problem, problem
    else:
        assert bounds.low <= parsed <= bounds.high
        assert T + parsed > T  # and any instant in range plus it stays on the calendar
        assert LATEST + parsed > LATEST


@settings(BOUNDS, max_examples=200)
@given(text=INSTANTS | DURATIONS)
def test_every_parser_of_times_refuses_out_of_range_by_name(text: str) -> None:
    """The command line's `parse_instant`, the casework `due`, and the console's forms (an
    override's wall time, a handover's `since`) say the field and the range, or give a
    time in range; nothing else escapes."""
    zone = "Pacific/Kiritimati"  # +14:00, the furthest ahead
    for parse in (
        lambda: parse_instant("--at", text),
        lambda: parse_due(text, T),
        lambda: parse_wall_time("From", text.removesuffix("Z"), ZoneInfo(zone)).at,
        lambda: parse_since(text, zone),
    ):
        try:
            moment, refusal = parse(), None
        except BadInput as exc:
            moment, refusal = None, exc
        if refusal is not None:
            assert refusal.field in ("--at", "due", "From", "since")
            assert RANGE_WORDS in refusal.message or "expected" in refusal.message, refusal
        else:
            assert moment is not None
            assert EARLIEST <= moment <= LATEST


# --- the team file, then everything that reads it ---------------------------------------

DOCUMENT = tomllib.loads(TEAM_FILE.read_text())
TEAM_VALUES: dict[tuple[Any, ...], st.SearchStrategy[Any]] = {
    ("policy", 0, "ack_timeout"): DURATIONS,
    ("policy", 0, "repeat"): COUNTS,
    ("policy", 0, "steps", 0, "delay"): DURATIONS,
    ("policy", 0, "steps", 1, "delay"): DURATIONS,
    ("rotation", 1, "shift"): DURATIONS,
    ("rotation", 0, "start"): DAYS.map(date.isoformat),
    ("sla", "sev1", "ack"): DURATIONS,
    ("sla", "sev4", "respond"): DURATIONS,
    ("override", 0, "from"): INSTANTS,
    ("override", 0, "to"): INSTANTS,
    ("override", 1, "to"): MOMENTS.map(datetime.isoformat),  # local to the schedule's zone
    ("holiday", 0, "date"): DAYS.map(date.isoformat),
}
IN_RANGE_EDGES: dict[tuple[Any, ...], list[Any]] = {
    ("policy", 0, "ack_timeout"): ["1m", "30d", "720h"],
    ("policy", 0, "repeat"): [0, 100],
    ("policy", 0, "steps", 0, "delay"): ["1s", "7d", "1w"],
    ("policy", 0, "steps", 1, "delay"): ["1s", "168h"],
    ("rotation", 1, "shift"): ["1h", "28d", "4w"],
    ("rotation", 0, "start"): ["1970-01-01", "2199-12-31"],
    ("sla", "sev1", "ack"): ["1m", "30d"],
    ("sla", "sev4", "respond"): ["60s", "43200m"],
    ("override", 0, "from"): ["2025-12-26T08:00:00+11:00", "2026-12-26T07:59:00+11:00"],
    ("override", 0, "to"): ["2027-12-24T20:00:00+11:00", "2026-12-24T20:01:00+11:00"],
    ("override", 1, "to"): ["2027-12-31T18:00:00", "2026-12-31T18:01:00"],
    ("holiday", 0, "date"): ["1970-01-01", "2199-12-31"],
}
"""Values at the very edges of their ranges, which must be taken and then work."""
KEY_PATHS = {
    ("policy", 0, "ack_timeout"): "policy[0] (emergency).ack_timeout",
    ("policy", 0, "repeat"): "policy[0] (emergency).repeat",
    ("policy", 0, "steps", 0, "delay"): "policy[0] (emergency).steps[0].delay",
    ("policy", 0, "steps", 1, "delay"): "policy[0] (emergency).steps[1].delay",
    ("rotation", 1, "shift"): "rotation[1] (us-day).shift",
    ("rotation", 0, "start"): "rotation[0] (syd-day).start",
    ("sla", "sev1", "ack"): "sla.sev1.ack",
    ("sla", "sev4", "respond"): "sla.sev4.respond",
    ("override", 0, "from"): "override[0] (ben).",
    ("override", 0, "to"): "override[0] (ben).to",
    ("override", 1, "to"): "override[1] (dev).to",
    ("holiday", 0, "date"): "holiday[0] (Christmas Day).date",
}


@st.composite
def extreme_team_files(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """The good team file with one to three of its durations, counts and instants replaced
    by extreme values."""
    document = json.loads(json.dumps(DOCUMENT, default=str))
    chosen = draw(
        st.lists(st.sampled_from(sorted(TEAM_VALUES, key=str)), min_size=1, max_size=3, unique=True)
    )
    for path in chosen:
        parent: Any = document
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = draw(st.sampled_from(IN_RANGE_EDGES[path]) | TEAM_VALUES[path])
    return document, chosen


@pytest.fixture(scope="module")
def empty_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bounds") / "empty.db"
    Database.open(f"sqlite:///{path}").dispose()
    return path


_examples = iter(range(1, 10**6))


def _walk(url: str) -> None:
    """Everything that reads durations, counts and instants back, as the desk's people run
    it, now and far ahead: no traceback anywhere."""
    code, out, _ = _run(url, "cara", "page", "--title", "Bounds", "--category", "edr",
                        "--severity", "1", "--policy", "emergency")  # fmt: skip
    assert code == 0
    ref = out.strip().splitlines()[-1].split()[0]
    for later in (T, T + timedelta(days=400), datetime(2199, 12, 31, 23, 0, tzinfo=UTC)):
        _run(url, "cara", "engine", "--once", at=later)
    _run(url, "cara", "ack", ref)
    _run(url, "cara", "engine", "--once", at=T + timedelta(days=31))
    for argv in (
        ("override", "list", "--all"),
        ("override", "list"),
        ("handover",),
        ("handover", "--format", "json"),
        ("handover", "--since", "1970-01-01T00:00:00Z"),
        ("calendar", "export", "--days", "366"),
        ("calendar", "gaps", "--days", "366"),
        ("oncall",),
        ("oncall", "--at", "2199-12-31T23:59:59Z"),
        ("oncall", "--at", "1970-01-01T00:00:00Z"),
        ("stats", "--since", "1970-01-01T00:00:00Z"),
        ("show", ref, "--json"),
    ):
        for who in ("ana", "cara", "dev"):  # Sydney, Dublin, New York
            _run(url, who, *argv)
    for later in (T, datetime(2199, 12, 31, tzinfo=UTC)):
        _run(url, "ana", "handover", at=later)
        _run(url, "ana", "oncall", at=later)


@settings(BOUNDS, max_examples=30)
@given(example=extreme_team_files())
def test_extreme_team_files_are_refused_by_key_path_or_break_nothing_later(
    empty_file: Path, tmp_path_factory: pytest.TempPathFactory,
    example: tuple[dict[str, Any], list[tuple[Any, ...]]],
) -> None:  # fmt: skip
    document, chosen = example
    folder = tmp_path_factory.mktemp(f"team-{next(_examples)}")
    shutil.copy(empty_file, folder / "vigil.db")
    url = f"sqlite:///{folder / 'vigil.db'}"
    team = folder / "team.toml"
    team.write_text(toml_document(document), encoding="utf-8")
    code, _, err = _run(url, "cara", "team", "apply", str(team))
    db = Database(make_engine(url))
    try:
        if code:
            assert code == 2, err
            assert "nothing was applied" in err
            problems = err.splitlines()[1:]
            assert problems, err
            for line in problems:
                assert any(line.strip().startswith(KEY_PATHS[path]) for path in chosen), err
            with db.read() as session:
                assert session.exec(select(Responder)).first() is None  # nothing stored
            return
        with db.read() as session:
            stored = _stored_values(session)
    finally:
        db.dispose()
    _check_in_range(stored)
    _walk(url)


def _stored_values(session: Any) -> dict[str, list[Any]]:
    return {
        "delay": [s.delay_seconds for s in session.exec(select(PolicyStep))],
        "ack_timeout": [
            p.ack_timeout_seconds
            for p in session.exec(select(Policy))
            if p.ack_timeout_seconds is not None
        ],
        "repeat": [p.repeat for p in session.exec(select(Policy))],
        "shift": [parse_duration(r.shift) for r in session.exec(select(Rotation))],
        "sla": [s.ack_seconds for s in session.exec(select(SlaTarget))]
        + [s.respond_seconds for s in session.exec(select(SlaTarget))],
        "override": [(o.starts_at, o.ends_at) for o in session.exec(select(Override))],
    }  # fmt: skip


def _check_in_range(stored: dict[str, list[Any]]) -> None:
    seconds = timedelta.total_seconds
    assert all(1 <= d <= seconds(domain.STEP_DELAY.high) for d in stored["delay"])
    assert all(60 <= t <= seconds(domain.ACK_TIMEOUT.high) for t in stored["ack_timeout"])
    assert all(0 <= r <= domain.REPEAT.high for r in stored["repeat"])
    assert all(60 <= s <= seconds(domain.SLA_TARGET.high) for s in stored["sla"])
    bounds = domain.SHIFT_LENGTH
    assert all(bounds.low <= shift <= bounds.high for shift in stored["shift"])
    for start, end in stored["override"]:
        assert EARLIEST <= start < end <= LATEST
        assert end - start <= domain.OVERRIDE_LENGTH.high


# --- the command line -------------------------------------------------------------------


@pytest.fixture(scope="module")
def team_desk(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("desk")
    url = f"sqlite:///{folder / 'vigil.db'}"
    Database.open(url).dispose()
    code, _, err = _run(url, "cara", "team", "apply", str(TEAM_FILE))
    assert code == 0, err
    return url


INSTANT_OPTIONS = [
    ("oncall", "--at"),
    ("handover", "--since"),
    ("stats", "--since"),
    ("stats", "--until"),
]


@settings(BOUNDS, max_examples=60)
@given(text=INSTANTS, option=st.sampled_from(INSTANT_OPTIONS))
def test_an_instant_on_the_command_line_is_in_range_or_refused_by_name(
    team_desk: str, text: str, option: tuple[str, str]
) -> None:
    command, flag = option
    code, _, err = _run(team_desk, "cara", command, flag, text)
    if not _in_range(text):
        assert code == 2, err
        assert err.startswith(f"vigil: {flag}: expected a time {RANGE_WORDS}"), err


@settings(BOUNDS, max_examples=60)
@given(start=INSTANTS, end=INSTANTS)
def test_an_override_is_placed_in_range_or_refused_with_nothing_stored(
    team_desk: str, start: str, end: str
) -> None:
    db = Database(make_engine(team_desk))
    try:
        with db.read() as session:
            before = len(session.exec(select(Override)).all())
        code, _, err = _run(team_desk, "cara", "override", "--schedule", "primary",
                            "--who", "ben", "--from", start, "--to", end)  # fmt: skip
        with db.read() as session:
            after = session.exec(select(Override)).all()
    finally:
        db.dispose()
    if not (_in_range(start) and _in_range(end)):
        assert code == 2, err
        assert "--from" in err or "--to" in err
        assert len(after) == before
    for override in after:
        assert EARLIEST <= override.starts_at < override.ends_at <= LATEST
        assert override.ends_at - override.starts_at <= domain.OVERRIDE_LENGTH.high
    for who in ("ana", "dev"):
        _run(team_desk, who, "override", "list", "--all")
        _run(team_desk, who, "handover")


@settings(BOUNDS, max_examples=40)
@given(
    count=COUNTS.map(str) | st.sampled_from(["99999999999999999999", "1e9", "-0", "٣"]),
    option=st.sampled_from(
        [("calendar", "export", "--days"), ("calendar", "gaps", "--days"), ("cases", "--limit"),
         ("handover", "list", "--limit"), ("report", "disclosures", "--year"),
         ("override", "remove"), ("handover", "show")]
    ),
)  # fmt: skip
def test_a_count_on_the_command_line_is_in_range_or_refused_by_name(
    team_desk: str, count: str, option: tuple[str, ...]
) -> None:
    code, _, err = _run(team_desk, "cara", *option, count)
    if code == 2:  # the field is named: the flag, or ID for a row's number
        assert (option[-1] if option[-1].startswith("--") else "ID") in err, err


def test_out_of_range_values_name_the_field_and_the_range(team_desk: str) -> None:
    """The known breakages, one by one: each is refused by name, with the range."""
    assert _run(team_desk, "cara", "oncall", "--at", "9999-12-31T23:00:00Z")[2] == (
        "vigil: --at: expected a time between 1970-01-01 and 2199-12-31, "
        "got 9999-12-31T23:00:00+00:00\n"
    )
    assert _run(team_desk, "cara", "handover", "--since", "0001-01-01T00:00:00Z")[2] == (
        "vigil: --since: expected a time between 1970-01-01 and 2199-12-31, "
        "got 0001-01-01T00:00:00+00:00\n"
    )
    place = ("override", "--schedule", "primary", "--who", "ben", "--from", "2026-12-01T00:00Z")
    code, _, err = _run(team_desk, "cara", *place, "--to", "9999-12-31T00:00:00Z")
    assert (code, err) == (
        2,
        "vigil: --to: expected a time between 1970-01-01 and 2199-12-31, "
        "got 9999-12-31T00:00:00+00:00\n",
    )
    code, _, err = _run(team_desk, "cara", *place, "--to", "2028-12-01T00:00:00Z")
    assert code == 2
    assert err.startswith("vigil: --to: expected a window from 1m to 366d long, got 731d")


def test_a_huge_ack_timeout_is_refused_and_one_stored_before_cannot_break_ack(
    team_desk: str, tmp_path: Path
) -> None:
    text = TEAM_FILE.read_text().replace('ack_timeout = "30m"', 'ack_timeout = "3000000d"')
    (tmp_path / "team.toml").write_text(text)
    code, _, err = _run(team_desk, "cara", "team", "apply", str(tmp_path / "team.toml"))
    assert code == 2
    assert err.splitlines()[1].strip() == (
        "policy[0] (emergency).ack_timeout: expected a duration from 1m to 30d, got '3000000d'"
    )
    # A policy stored by an earlier version, before timeouts were bounded:
    db = Database(make_engine(team_desk))
    try:
        with db.write() as session:
            policy = session.exec(select(Policy).where(Policy.name == "emergency")).one()
            policy.ack_timeout_seconds = 3_000_000 * 86_400
        code, out, err = _run(team_desk, "cara", "page", "--title", "Old policy", "--category",
                              "edr", "--severity", "1", "--policy", "emergency")  # fmt: skip
        ref = out.split()[0]
        assert _run(team_desk, "cara", "ack", ref)[0] == 0
        with db.read() as session:
            case = session.exec(select(Case).where(Case.ref == ref)).one()
        assert case.next_escalation_at == T + domain.ACK_TIMEOUT.high  # capped, not overflowed
        EscalationEngine(db, FakeClock(T + timedelta(days=31))).run_due()
    finally:
        with db.write() as session:
            policy = session.exec(select(Policy).where(Policy.name == "emergency")).one()
            policy.ack_timeout_seconds = 1800
        db.dispose()


# --- the console ------------------------------------------------------------------------

EDGES = {
    ("policy", 0, "ack_timeout"): "30d",
    ("policy", 0, "repeat"): 100,
    ("policy", 0, "steps", 0, "delay"): "7d",
    ("rotation", 1, "shift"): "28d",
    ("rotation", 0, "start"): "1970-01-01",
    ("sla", "sev1", "ack"): "30d",
    ("override", 0, "from"): "2199-01-01T00:00:00+14:00",
    ("override", 0, "to"): "2199-12-31T23:00:00Z",
    ("holiday", 0, "date"): "2199-12-31",
}


@pytest.mark.pilot
async def test_the_consoles_screens_open_on_a_desk_at_the_edges_of_every_range(
    tmp_path: Path,
) -> None:
    """A desk whose every value sits at the edge of its range: the queue, the handover
    screen, the calendar (its month of the far override included) and the figures open;
    a form given a time out of range says so by field and keeps the dialog open."""
    document = json.loads(json.dumps(DOCUMENT, default=str))
    for path, value in EDGES.items():
        parent: Any = document
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = value
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    Database.open(url).dispose()
    (tmp_path / "team.toml").write_text(toml_document(document))
    assert _run(url, "cara", "team", "apply", str(tmp_path / "team.toml"))[0] == 0
    assert _run(url, "cara", "page", "--title", "Edge", "--category", "edr", "--severity", "1",
                "--policy", "emergency")[0] == 0  # fmt: skip
    db = Database.open(url)
    clock = FakeClock(datetime(2199, 12, 31, 12, 0, tzinfo=UTC))
    try:
        async with console_opener(db, clock, tmp_path)("cara") as console:
            await console.press("h")
            assert isinstance(console.app.screen, HandoverScreen)
            preview = str(console.app.screen.query_one("#preview", Static).render())
            assert "Shift of cara" in preview
            await console.press("escape", "c")
            assert isinstance(console.app.screen, CalendarScreen)
            await console.press("m", "o")
            dialog = console.app.screen
            assert isinstance(dialog, OverrideDialog)
            await console.press(*"ben")
            dialog.query_one("#override-from", Input).value = "2199-12-31 08:00"
            dialog.query_one("#override-to", Input).value = "9999-12-31 08:00"
            await console.press("enter")
            error = str(dialog.query_one("#override-error", Static).render())
            assert error.startswith("To: expected a time between 1970-01-01 and 2199-12-31")
            assert console.app.screen is dialog
            await console.press("escape", "escape", "s")
            assert isinstance(console.app.screen, StatsScreen)
            await console.press("escape")
            unexpected = [t for t in console.toasts if t.title == "Unexpected error"]
            assert unexpected == []
    finally:
        db.dispose()

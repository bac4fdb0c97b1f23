"""On call now and next, overrides, the iCalendar feed and coverage gaps, on a small desk
whose first week holds Sydney's daylight-saving start (Sunday 4 October 2026, 02:00 -> 03:00)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import pytest
from icalendar import Calendar, Event
from sqlmodel import col, select

from app.core.clock import FakeClock
from app.core.errors import BadInput, NotAllowed, NotFound, NothingToDo
from app.core.times import shown
from app.rules.rotations import ScheduleSpec, Shift, on_call
from app.services.oncall import load_schedule
from app.services.shiftwork.calendar import (
    ICS_PRODID,
    OverrideService,
    calendar_feed,
    check_window,
    event_uid,
    gaps_by_schedule,
    list_overrides,
    on_call_entries,
    parse_days,
    responder_names,
    schedules_named,
    whole_shifts,
)
from app.services.team.apply import apply_team
from app.services.team.parse import parse_team
from data import audit
from data.db import Database
from data.models import AuditRecord
from data.oncall import Override
from tests.factories import FOLLOW_THE_SUN_PEOPLE
from widgets.timefmt import viewer_zone

# Sydney days 08:00-20:00 alternate between ana and ben; cat (New York) holds the rest of
# primary; backup is Sydney days only, so it has a gap every night.
TEAM = (
    FOLLOW_THE_SUN_PEOPLE
    + """
[[responder]]
handle = "ada"
name = "Ada Lee"
role = "admin"
timezone = "UTC"
contacts = [{ kind = "console" }]

[[rotation]]
name = "syd"
timezone = "Australia/Sydney"
shift = "1d"
handoff = "08:00"
start = "2026-09-28"
members = ["ana", "ben"]
hours = "08:00-20:00"

[[rotation]]
name = "nyc"
timezone = "America/New_York"
shift = "1d"
handoff = "08:00"
start = "2026-09-28"
members = ["cat"]

[[schedule]]
name = "primary"
timezone = "Australia/Sydney"
layers = ["nyc", "syd"]

[[schedule]]
name = "backup"
timezone = "Australia/Sydney"
layers = ["syd"]
"""
)

START = datetime(2026, 10, 1, 0, 0, tzinfo=UTC)


def utc(day: int, hour: int, minute: int = 0, month: int = 10) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def build_desk(db: Database, clock: FakeClock) -> None:
    """The small desk above, applied as its team file."""
    apply_team(db, parse_team(TEAM, "oncall-test.toml"), actor="sam", now=clock.now())


@pytest.fixture
def desk(db: Database) -> FakeClock:
    clock = FakeClock(START)
    build_desk(db, clock)
    return clock


def spec(db: Database, name: str) -> ScheduleSpec:
    with db.read() as session:
        found = load_schedule(session, name)
    assert found is not None
    return found


# --- on call now and next --------------------------------------------------------------------


def test_now_and_next_across_the_daylight_saving_start(db: Database, desk: FakeClock) -> None:
    primary = spec(db, "primary")
    # Saturday 3 October, 12:00 AEST: ben's turn began 08:00 AEST (22:00Z the day before).
    [entry] = on_call_entries([primary], utc(3, 2))
    assert entry.current is not None
    assert entry.upcoming is not None
    assert (entry.current.who, entry.current.start, entry.current.end) == (
        "ben",
        utc(2, 22),
        utc(3, 10),
    )
    assert entry.current.source == "rotation:syd"
    # The night is cat's; Sunday's clocks go forward, so it is an hour short and ana takes
    # over at 08:00 AEDT, 21:00Z.
    assert (entry.upcoming.who, entry.upcoming.start, entry.upcoming.end) == (
        "cat",
        utc(3, 10),
        utc(3, 21),
    )
    [later] = on_call_entries([primary], utc(3, 20))
    assert later.upcoming is not None
    assert (later.upcoming.who, later.upcoming.start) == ("ana", utc(3, 21))


def test_next_skips_the_same_person_continuing(db: Database, desk: FakeClock) -> None:
    """ana's turn continued by her own override: next is whoever follows her, not ana."""
    OverrideService(db, desk).add(
        "sam", schedule="primary", who="ana", start=utc(4, 9), end=utc(4, 11)
    )
    [entry] = on_call_entries([spec(db, "primary")], utc(4, 8))
    assert entry.current is not None
    assert entry.upcoming is not None
    assert entry.current.who == "ana"
    assert (entry.upcoming.who, entry.upcoming.start) == ("cat", utc(4, 11))


def test_a_gap_has_nobody_now_and_the_next_shift(db: Database, desk: FakeClock) -> None:
    [entry] = on_call_entries([spec(db, "backup")], utc(3, 15))
    assert entry.current is None
    assert entry.upcoming is not None
    assert (entry.upcoming.who, entry.upcoming.start) == ("ana", utc(3, 21))


def test_unknown_schedule_names_the_known_ones(db: Database, desk: FakeClock) -> None:
    with db.read() as session, pytest.raises(NotFound, match="backup, primary"):
        schedules_named(session, "secondary")


def test_shown_gives_the_wall_clock_then_utc() -> None:
    sydney = viewer_zone("Australia/Sydney")
    assert shown(utc(3, 21), sydney) == "Sun 04 Oct 2026 08:00 AEDT (Sat 03 Oct 21:00 UTC)"
    assert shown(utc(3, 2), sydney) == "Sat 03 Oct 2026 12:00 AEST (02:00 UTC)"
    assert shown(utc(3, 2), viewer_zone("UTC")) == "Sat 03 Oct 2026 02:00 UTC"


# --- overrides -------------------------------------------------------------------------------


def test_supervisor_places_an_override_and_it_is_audited(db: Database, desk: FakeClock) -> None:
    view = OverrideService(db, desk).add(
        "sam",
        schedule="primary",
        who="ben",
        start=utc(4, 0),
        end=utc(4, 6),
        reason="ana at training",
    )
    assert (view.schedule, view.who, view.created_by, view.swap_id) == (
        "primary",
        "ben",
        "sam",
        None,
    )
    shift = on_call(spec(db, "primary"), utc(4, 3))
    assert shift is not None
    assert (shift.who, shift.source, shift.start, shift.end) == (
        "ben",
        "override",
        utc(4, 0),
        utc(4, 6),
    )
    with db.read() as session:
        record = session.exec(select(AuditRecord).where(AuditRecord.action == "override.add")).one()
        assert audit.verify(session).ok
    assert record.actor == "sam"
    assert record.detail == {
        "id": view.id,
        "schedule": "primary",
        "who": "ben",
        "from": "2026-10-04T00:00:00Z",
        "to": "2026-10-04T06:00:00Z",
        "reason": "ana at training",
    }


def test_admins_may_place_overrides_too(db: Database, desk: FakeClock) -> None:
    view = OverrideService(db, desk).add(
        "ada", schedule="backup", who="cat", start=utc(3, 10), end=utc(3, 21)
    )
    assert view.created_by == "ada"
    assert gaps_by_schedule([spec(db, "backup")], utc(3, 10), utc(3, 21)) == [("backup", [])]


def test_specialists_may_not_place_overrides(db: Database, desk: FakeClock) -> None:
    service = OverrideService(db, desk)
    with pytest.raises(NotAllowed, match="only supervisors or admins may place overrides"):
        service.add("ana", schedule="primary", who="ana", start=utc(4, 0), end=utc(4, 6))
    with db.read() as session:
        assert session.exec(select(Override)).all() == []
        assert (
            session.exec(select(AuditRecord).where(AuditRecord.action == "override.add")).all()
            == []
        )


def test_override_window_and_names_are_checked(db: Database, desk: FakeClock) -> None:
    service = OverrideService(db, desk)
    with pytest.raises(BadInput) as wrong_way:
        service.add("sam", schedule="primary", who="ben", start=utc(4, 6), end=utc(4, 0))
    assert wrong_way.value.field == "--to"
    with pytest.raises(BadInput) as empty:
        service.add("sam", schedule="primary", who="ben", start=utc(4, 6), end=utc(4, 6))
    assert empty.value.field == "--to"
    with pytest.raises(BadInput, match="the past stays") as past:
        service.add(
            "sam",
            schedule="primary",
            who="ben",
            start=utc(1, 0) - timedelta(days=2),
            end=utc(1, 0) - timedelta(days=1),
        )
    assert past.value.field == "--to"
    with pytest.raises(NotFound, match="no schedule named 'nope'"):
        service.add("sam", schedule="nope", who="ben", start=utc(4, 0), end=utc(4, 6))
    with pytest.raises(NotFound, match="no active responder 'zed'"):
        service.add("sam", schedule="primary", who="zed", start=utc(4, 0), end=utc(4, 6))
    with pytest.raises(NotAllowed, match="not an active responder"):
        service.add("zed", schedule="primary", who="ben", start=utc(4, 0), end=utc(4, 6))


def test_check_window_names_to() -> None:
    with pytest.raises(BadInput) as caught:
        check_window(utc(2, 0), utc(1, 0), utc(1, 0))
    assert caught.value.field == "--to"
    check_window(utc(1, 0), utc(2, 0), utc(1, 12))  # in progress is fine


def test_removing_overrides(db: Database, desk: FakeClock) -> None:
    service = OverrideService(db, desk)
    coming = service.add("sam", schedule="primary", who="ben", start=utc(4, 0), end=utc(4, 6))
    running = service.add("sam", schedule="primary", who="cat", start=utc(1, 0), end=utc(1, 6))
    desk.set(utc(1, 2))
    with pytest.raises(NotAllowed):
        service.remove("ana", coming.id)
    service.remove("sam", coming.id)
    service.remove("sam", running.id)  # in progress: ends now, the past stays
    with pytest.raises(NotFound):
        service.remove("sam", coming.id)
    with db.read() as session:
        left = list_overrides(session)
        removals = session.exec(
            select(AuditRecord)
            .where(AuditRecord.action == "override.remove")
            .order_by(col(AuditRecord.seq))
        ).all()
    assert [(v.id, v.who, v.start, v.end) for v in left] == [
        (running.id, "cat", utc(1, 0), utc(1, 2))
    ]
    assert [(r.detail["id"], r.detail["ended_early"]) for r in removals] == [
        (coming.id, False),
        (running.id, True),
    ]
    desk.set(utc(1, 3))
    with pytest.raises(NothingToDo, match="the past stays"):
        service.remove("sam", running.id)


def test_list_overrides_filters(db: Database, desk: FakeClock) -> None:
    service = OverrideService(db, desk)
    service.add("sam", schedule="primary", who="ben", start=utc(4, 0), end=utc(4, 6))
    service.add("sam", schedule="backup", who="cat", start=utc(3, 10), end=utc(3, 12))
    with db.read() as session:
        assert [v.schedule for v in list_overrides(session)] == ["backup", "primary"]
        assert [v.who for v in list_overrides(session, schedule="primary")] == ["ben"]
        assert list_overrides(session, ending_after=utc(4, 6)) == []


# --- the iCalendar feed ----------------------------------------------------------------------


class FeedEvent(NamedTuple):
    uid: str
    start: datetime
    end: datetime
    summary: str
    categories: list[str]
    who: str


def parse_feed(text: str) -> list[FeedEvent]:
    return [
        FeedEvent(
            str(event["uid"]),
            event.decoded("dtstart"),
            event.decoded("dtend"),
            str(event["summary"]),
            [str(c) for c in event["categories"].cats],
            str(event["x-vigil-handle"]),
        )
        for event in Calendar.from_ical(text).walk("VEVENT")
    ]


def feed(db: Database, names: list[str], start: datetime, days: int, who: str | None = None) -> str:
    with db.read() as session:
        schedules = [spec(db, name) for name in names]
        people = responder_names(session)
    return calendar_feed(
        schedules, people, start, start + timedelta(days=days), stamp=start, who=who
    )


def test_feed_has_one_event_per_shift_in_utc(db: Database, desk: FakeClock) -> None:
    OverrideService(db, desk).add(
        "sam", schedule="primary", who="ben", start=utc(4, 0), end=utc(4, 6)
    )
    text = feed(db, ["primary"], utc(3, 0), 2)
    assert text.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n")
    assert "DTSTART:20261003T210000Z\r\n" in text  # Sunday 08:00 AEDT
    events = parse_feed(text)
    assert [(e.who, e.start, e.end, e.categories) for e in events] == [
        ("ben", utc(2, 22), utc(3, 10), ["rotation"]),  # whole, though the window opens later
        ("cat", utc(3, 10), utc(3, 21), ["rotation"]),  # a short night: clocks go forward
        ("ana", utc(3, 21), utc(4, 0), ["rotation"]),
        ("ben", utc(4, 0), utc(4, 6), ["override"]),
        ("ana", utc(4, 6), utc(4, 9), ["rotation"]),
        ("cat", utc(4, 9), utc(4, 21), ["rotation"]),
        ("ben", utc(4, 21), utc(5, 9), ["rotation"]),  # whole, though the window closes sooner
    ]
    assert events[2].summary == "On call: Ana Ruiz (primary)"
    assert events[2].uid == event_uid("primary", "ana", utc(3, 21))
    for event in events:
        assert event.start.utcoffset() == timedelta(0)


def test_uids_are_stable_between_exports(db: Database, desk: FakeClock) -> None:
    first = {e.uid: e for e in parse_feed(feed(db, ["primary"], utc(3, 0), 3))}
    later = {e.uid: e for e in parse_feed(feed(db, ["primary"], utc(3, 5), 3))}
    shared = first.keys() & later.keys()
    assert len(shared) >= 5
    for uid in shared:
        assert first[uid] == later[uid]


def holiday_team(holiday: str) -> str:
    """The team file with the backup schedule in New South Wales, `cat` covering its public
    holidays, and one of them, Monday 5 October 2026, named `holiday` (a TOML literal)."""
    return (
        TEAM.replace(
            'name = "backup"\ntimezone = "Australia/Sydney"',
            'name = "backup"\ntimezone = "Australia/Sydney"\nholiday_region = "AU-NSW"\n'
            'holiday_cover = "cat"',
        )
        + f'\n[[holiday]]\ndate = "2026-10-05"\nname = \'{holiday}\'\nregion = "AU-NSW"\n'
    )


def test_holiday_cover_is_its_own_category(db: Database) -> None:
    clock = FakeClock(START)
    apply_team(db, parse_team(holiday_team("Labour Day"), "t.toml"), actor="sam", now=clock.now())
    events = parse_feed(feed(db, ["backup"], utc(4, 12), 1))
    assert [(e.who, e.categories) for e in events] == [("cat", ["holiday"])]
    # Monday 5 October in Sydney, AEDT: 4 Oct 13:00Z to 5 Oct 13:00Z.
    assert (events[0].start, events[0].end) == (utc(4, 13), utc(5, 13))


def test_feed_of_one_person(db: Database, desk: FakeClock) -> None:
    events = parse_feed(feed(db, ["primary", "backup"], utc(3, 0), 3, who="ana"))
    assert {e.who for e in events} == {"ana"}
    assert {e.summary for e in events} == {
        "On call: Ana Ruiz (primary)",
        "On call: Ana Ruiz (backup)",
    }


def icalendar_feed(
    schedules: list[ScheduleSpec],
    names: dict[str, str],
    start: datetime,
    end: datetime,
    *,
    stamp: datetime,
    who: str | None = None,
) -> str:
    """The feed as the icalendar library writes it, built property by property as it was
    before the feed had its own writer: what subscribed calendars have been reading."""

    def event(schedule: str, shift: Shift) -> Event:
        name = names.get(shift.who, shift.who)
        kind, _, detail = shift.source.partition(":")
        built = Event()
        built.add("uid", event_uid(schedule, shift.who, shift.start))
        built.add("dtstamp", stamp.astimezone(UTC))
        built.add("dtstart", shift.start.astimezone(UTC))
        built.add("dtend", shift.end.astimezone(UTC))
        built.add("summary", f"On call: {name} ({schedule})")
        built.add("categories", [kind])
        reason = f"{kind} {detail}" if detail else kind
        built.add("description", f"{name} ({shift.who}) is on call for {schedule} ({reason}).")
        built.add("x-vigil-handle", shift.who)
        built.add("x-vigil-schedule", schedule)
        built.add("x-vigil-source", shift.source)
        return built

    calendar = Calendar()
    calendar.add("prodid", ICS_PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    title = ", ".join(s.name for s in schedules) or "no schedules"
    owner = f"{names.get(who, who)}: " if who else ""
    calendar.add("x-wr-calname", f"Vigil on call: {owner}{title}")
    for schedule in schedules:
        for shift in whole_shifts(schedule, start, end):
            if who is None or shift.who == who:
                calendar.add_component(event(schedule.name, shift))
    return calendar.to_ical().decode("utf-8")


def properties_read(text: str) -> list[list[tuple[str, object]]]:
    """Every property of the calendar and of each event, in order, as a reader decodes it."""
    return [
        [(name, component.decoded(name)) for name in component]
        for component in Calendar.from_ical(text).walk()
    ]


# Display names come from the database as they are; these hold every character TEXT escapes,
# a line break, characters of two to four octets, and enough of them to fold.
AWKWARD_NAMES = {
    "ana": 'Ana "Ruiz"; of Sydney, \\ Parramatta\nand a second line',
    "ben": "Bénédicte Ōkubo-Nguyễn 日本語 🚀, with a name long enough to fold twice over " * 2,
    "cat": "Cat, Moss; \\ Ünal",
}
AWKWARD_HOLIDAY = "Labour Day; the eight-hour day, won in 1856 \\ NSW — Ŝydney 🛠"


def test_the_feed_reads_as_the_icalendar_library_wrote_it_for_awkward_names(
    db: Database,
) -> None:
    clock = FakeClock(START)
    team = parse_team(holiday_team(AWKWARD_HOLIDAY), "t.toml")
    apply_team(db, team, actor="sam", now=clock.now())
    OverrideService(db, clock).add(
        "sam", schedule="primary", who="ben", start=utc(4, 0), end=utc(4, 6)
    )
    schedules = [spec(db, "primary"), spec(db, "backup")]
    stamp = START + timedelta(microseconds=123_456)
    for who in (None, "cat"):
        ours = calendar_feed(schedules, AWKWARD_NAMES, START, utc(15, 0), stamp=stamp, who=who)
        theirs = icalendar_feed(schedules, AWKWARD_NAMES, START, utc(15, 0), stamp=stamp, who=who)
        # The same content lines, escapes and order; then what a reader makes of them.
        assert ours.replace("\r\n ", "") == theirs.replace("\r\n ", "")
        assert properties_read(ours) == properties_read(theirs)
    cats = Calendar.from_ical(ours).walk("VEVENT")
    assert {str(e["categories"].cats[0]) for e in cats} == {"rotation", "holiday"}
    feed_all = calendar_feed(schedules, AWKWARD_NAMES, START, utc(15, 0), stamp=stamp)
    read = Calendar.from_ical(feed_all).walk("VEVENT")
    assert {str(e["summary"]) for e in read} == {
        f"On call: {AWKWARD_NAMES[who]} ({schedule})"
        for who in ("ana", "ben", "cat")
        for schedule in ("primary", "backup")
    }
    assert {str(e["x-vigil-source"]) for e in read} >= {"override", f"holiday:{AWKWARD_HOLIDAY}"}
    assert max(len(line) for line in feed_all.encode().split(b"\r\n")) <= 75
    assert "\r\n " in feed_all  # long lines are folded


def test_whole_shifts_tile_the_window(db: Database, desk: FakeClock) -> None:
    primary = spec(db, "primary")
    shifts = whole_shifts(primary, utc(1, 0), utc(15, 0))
    for before, after in itertools.pairwise(shifts):
        assert before.end == after.start
    assert shifts[0].start <= utc(1, 0)
    assert shifts[-1].end >= utc(15, 0)


# --- gaps ------------------------------------------------------------------------------------


def test_gaps_follow_the_wall_clock_across_the_change(db: Database, desk: FakeClock) -> None:
    [(name, gaps)] = gaps_by_schedule([spec(db, "backup")], utc(2, 0), utc(5, 0))
    assert name == "backup"
    assert [(a, b - a) for a, b in gaps] == [
        (utc(2, 10), timedelta(hours=12)),
        (utc(3, 10), timedelta(hours=11)),  # Saturday 20:00 AEST to Sunday 08:00 AEDT
        (utc(4, 9), timedelta(hours=12)),
    ]
    assert gaps_by_schedule([spec(db, "primary")], utc(2, 0), utc(5, 0)) == [("primary", [])]


def test_days_must_be_1_to_366() -> None:
    assert parse_days("--days", "366") == 366
    assert parse_days("--days", " 1 ") == 1
    for bad in ("0", "367", "-3", "ten", "1.5", ""):
        with pytest.raises(BadInput) as caught:
            parse_days("--days", bad)
        assert caught.value.field == "--days"


def test_the_daylight_saving_end_gives_a_long_night(db: Database, desk: FakeClock) -> None:
    """Sunday 4 April 2027, 03:00 AEDT -> 02:00 AEST: hand-offs stay at 08:00 local."""

    def april(day: int, hour: int) -> datetime:
        return datetime(2027, 4, day, hour, tzinfo=UTC)

    events = parse_feed(feed(db, ["primary"], april(3, 0), 1))
    assert [(e.who, e.start, e.end) for e in events] == [
        ("ben", april(2, 21), april(3, 9)),  # Saturday 08:00-20:00 AEDT
        ("cat", april(3, 9), april(3, 22)),  # thirteen hours: the clocks go back
        ("ana", april(3, 22), april(4, 10)),  # Sunday 08:00-20:00 AEST
    ]
    [(_, gaps)] = gaps_by_schedule([spec(db, "backup")], april(3, 0), april(4, 0))
    assert gaps == [(april(3, 9), april(3, 22))]
    [entry] = on_call_entries([spec(db, "primary")], april(3, 21))
    assert entry.current is not None
    assert entry.upcoming is not None
    assert (entry.current.who, entry.upcoming.who, entry.upcoming.start) == (
        "cat",
        "ana",
        april(3, 22),
    )

"""Hand-checked rotation and schedule cases. Expected instants are worked out by hand in UTC
(offsets: Sydney +10/+11, New York -5/-4, Los Angeles -8/-7), not with the code under test."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from app.rules.rotations import (
    FairnessRow,
    HolidaySpec,
    OverrideSpec,
    RotationSpec,
    ScheduleSpec,
    Shift,
    coverage_gaps,
    fairness,
    format_days,
    format_hours,
    next_change,
    next_shift_for,
    on_call,
    on_call_many,
    parse_days,
    parse_handoff,
    parse_hours,
    rotation_on_call,
    rotation_shifts,
    rotation_turns,
    schedule_shifts,
)

DAY = timedelta(days=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def daily(
    zone: str,
    handoff: time,
    start: date,
    members: tuple[str, ...],
    *,
    name: str = "r",
    shift: timedelta = DAY,
    days: frozenset[int] | None = None,
    hours: tuple[time, time] | None = None,
) -> RotationSpec:
    return RotationSpec(name, zone, shift, handoff, start, members, days, hours)


def turn_starting(turns: list[Shift], at: datetime) -> Shift:
    return next(turn for turn in turns if turn.start == at)


# --- parsing ----------------------------------------------------------------


def test_parse_handoff_accepts_wall_clock_times() -> None:
    assert parse_handoff("08:00") == time(8, 0)
    assert parse_handoff(" 23:59 ") == time(23, 59)
    assert parse_handoff("7:30") == time(7, 30)


@pytest.mark.parametrize("bad", ["25:00", "8am", "08:60", "24:00", "", "08:00:00", "0800"])
def test_parse_handoff_rejects_bad_times(bad: str) -> None:
    with pytest.raises(ValueError, match="expected a time HH:MM"):
        parse_handoff(bad)


def test_parse_hours_and_format_round_trip() -> None:
    assert parse_hours("08:00-20:00") == (time(8), time(20))
    assert parse_hours("20:00-08:00") == (time(20), time(8))
    assert format_hours(parse_hours("20:00-08:00")) == "20:00-08:00"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("08:00-08:00", "same time"),
        ("08:00", "HH:MM-HH:MM"),
        ("08:00-20:00-22:00", "HH:MM-HH:MM"),
        ("08:00-25:00", "25:00"),
    ],
)
def test_parse_hours_rejects(bad: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_hours(bad)


def test_parse_days_is_case_insensitive_and_formats_monday_first() -> None:
    days = parse_days(["SAT", "tue", "Wed", "thu", "fri"])
    assert days == frozenset({1, 2, 3, 4, 5})
    assert format_days(days) == ["tue", "wed", "thu", "fri", "sat"]
    assert format_days(parse_days(["sun", "mon", "tue", "wed", "thu"])) == [
        "mon",
        "tue",
        "wed",
        "thu",
        "sun",
    ]


def test_parse_days_names_the_bad_value() -> None:
    with pytest.raises(ValueError, match="'funday'"):
        parse_days(["mon", "funday"])
    with pytest.raises(ValueError, match="at least one"):
        parse_days([])
    with pytest.raises(ValueError, match="list of day names"):
        parse_days("mon")


# --- validation -------------------------------------------------------------


def test_rotation_from_text_builds_and_round_trips() -> None:
    rotation = RotationSpec.from_text(
        name="syd-day",
        timezone="Australia/Sydney",
        shift="1d",
        handoff="08:00",
        start="2026-11-03",
        members=["ana", "ben"],
        days="tue,wed,thu,fri,sat",
        hours="08:00-20:00",
    )
    assert rotation.shift == DAY
    assert rotation.days == frozenset({1, 2, 3, 4, 5})
    assert rotation.to_text() == {
        "name": "syd-day",
        "timezone": "Australia/Sydney",
        "shift": "1d",
        "handoff": "08:00",
        "start": "2026-11-03",
        "members": ["ana", "ben"],
        "days": ["tue", "wed", "thu", "fri", "sat"],
        "hours": "08:00-20:00",
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "rotation 'r': timezone: unknown time zone 'Mars/Olympus'"),
        ({"shift": "0d"}, "rotation 'r': shift: expected a positive duration"),
        ({"shift": "30m"}, "rotation 'r': shift: expected a duration from 1h to 28d"),
        ({"handoff": "8am"}, "rotation 'r': handoff: expected a time HH:MM"),
        ({"start": "03/11/2026"}, "rotation 'r': start: expected YYYY-MM-DD"),
        ({"members": []}, "rotation 'r': members: expected at least one handle"),
        ({"members": ["ana", " "]}, r"rotation 'r': members\[1\]: expected a handle"),
        ({"days": "mon,someday"}, "rotation 'r': days: .*'someday'"),
        ({"hours": "09:00-09:00"}, "rotation 'r': hours: .*same time"),
    ],
)
def test_rotation_errors_name_the_field(changes: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "name": "r",
        "timezone": "UTC",
        "shift": "1d",
        "handoff": "08:00",
        "start": "2026-01-01",
        "members": ["ana"],
    }
    fields.update(changes)
    with pytest.raises(ValueError, match=message):
        RotationSpec.from_text(**fields)  # type: ignore[arg-type]


def test_rotation_spec_checks_direct_construction() -> None:
    with pytest.raises(ValueError, match="hours: start and end are both 08:00"):
        daily("UTC", time(8), date(2026, 1, 1), ("a",), hours=(time(8), time(8)))
    with pytest.raises(ValueError, match=r"days: expected weekdays 0\.\.6"):
        daily("UTC", time(8), date(2026, 1, 1), ("a",), days=frozenset({7}))
    with pytest.raises(ValueError, match="start: expected a date"):
        daily("UTC", time(8), datetime(2026, 1, 1, tzinfo=UTC), ("a",))
    with pytest.raises(ValueError, match="handoff: expected whole minutes"):
        daily("UTC", time(8, 0, 30), date(2026, 1, 1), ("a",))


def test_naive_datetimes_are_refused() -> None:
    rotation = daily("UTC", time(8), date(2026, 1, 1), ("a",))
    with pytest.raises(ValueError, match="start: expected a timezone-aware datetime"):
        rotation_turns(rotation, datetime(2026, 1, 2), utc(2026, 1, 3))
    with pytest.raises(ValueError, match="at: expected a timezone-aware datetime"):
        rotation_on_call(rotation, datetime(2026, 1, 2))
    with pytest.raises(ValueError, match=r"end .* is before start"):
        rotation_shifts(rotation, utc(2026, 1, 3), utc(2026, 1, 2))
    with pytest.raises(ValueError, match="override for ana: start"):
        OverrideSpec("ana", datetime(2026, 1, 2), utc(2026, 1, 3))
    with pytest.raises(ValueError, match="must be after start"):
        OverrideSpec("ana", utc(2026, 1, 3), utc(2026, 1, 3))


def test_schedule_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="schedule 'p': timezone: unknown time zone"):
        ScheduleSpec("p", (), timezone="Nowhere/City")
    with pytest.raises(ValueError, match="schedule 'p': holiday_cover: needs a holiday_region"):
        ScheduleSpec("p", (), holiday_cover="ivy")


# --- turns across daylight-saving changes ----------------------------------

# (zone, change day, turn before the change starts, hand-off on the change day, hours of that turn)
DST_CHANGES = [
    ("Australia/Sydney", date(2026, 4, 5), utc(2026, 4, 3, 21), utc(2026, 4, 4, 22), 25),
    ("Australia/Sydney", date(2026, 10, 4), utc(2026, 10, 2, 22), utc(2026, 10, 3, 21), 23),
    ("Australia/Sydney", date(2027, 4, 4), utc(2027, 4, 2, 21), utc(2027, 4, 3, 22), 25),
    ("Australia/Sydney", date(2027, 10, 3), utc(2027, 10, 1, 22), utc(2027, 10, 2, 21), 23),
    ("America/New_York", date(2026, 3, 8), utc(2026, 3, 7, 13), utc(2026, 3, 8, 12), 23),
    ("America/New_York", date(2026, 11, 1), utc(2026, 10, 31, 12), utc(2026, 11, 1, 13), 25),
    ("America/New_York", date(2027, 3, 14), utc(2027, 3, 13, 13), utc(2027, 3, 14, 12), 23),
    ("America/New_York", date(2027, 11, 7), utc(2027, 11, 6, 12), utc(2027, 11, 7, 13), 25),
    ("America/Los_Angeles", date(2026, 3, 8), utc(2026, 3, 7, 16), utc(2026, 3, 8, 15), 23),
    ("America/Los_Angeles", date(2026, 11, 1), utc(2026, 10, 31, 15), utc(2026, 11, 1, 16), 25),
    ("America/Los_Angeles", date(2027, 3, 14), utc(2027, 3, 13, 16), utc(2027, 3, 14, 15), 23),
    ("America/Los_Angeles", date(2027, 11, 7), utc(2027, 11, 6, 15), utc(2027, 11, 7, 16), 25),
]


@pytest.mark.parametrize(("zone", "day", "before", "handoff", "hours"), DST_CHANGES)
def test_daily_handoff_stays_at_0800_local_across_the_change(
    zone: str, day: date, before: datetime, handoff: datetime, hours: int
) -> None:
    rotation = daily(zone, time(8), day - timedelta(days=10), ("ana", "ben"))
    turns = rotation_turns(rotation, before - DAY, handoff + 2 * DAY)
    spanning = turn_starting(turns, before)
    assert spanning.end == handoff
    assert spanning.duration == timedelta(hours=hours)
    after = turn_starting(turns, handoff)
    assert after.duration == DAY
    assert after.who != spanning.who
    # every unclipped hand-off reads 08:00 on the local clock, before and after the change
    starts = [turn.start for turn in turns[1:]]
    assert {s.astimezone(ZoneInfo(zone)).time() for s in starts} == {time(8)}
    # ten turns after the start date: turn 9 spans the change (members alternate)
    assert spanning.who == "ben"
    assert rotation_on_call(rotation, handoff - timedelta(minutes=1)) == "ben"
    assert rotation_on_call(rotation, handoff) == "ana"


def test_eight_hour_turns_hand_off_at_local_midnight_eight_and_sixteen() -> None:
    rotation = daily(
        "America/New_York", time(0), date(2026, 3, 1), ("a", "b", "c"), shift=timedelta(hours=8)
    )
    spring = rotation_turns(rotation, utc(2026, 3, 8, 5), utc(2026, 3, 9, 5))
    assert [(t.start, t.end) for t in spring] == [
        (utc(2026, 3, 8, 5), utc(2026, 3, 8, 12)),  # 00:00 EST .. 08:00 EDT: 7h
        (utc(2026, 3, 8, 12), utc(2026, 3, 8, 20)),
        (utc(2026, 3, 8, 20), utc(2026, 3, 9, 4)),
        (utc(2026, 3, 9, 4), utc(2026, 3, 9, 5)),
    ]
    autumn = rotation_turns(rotation, utc(2026, 11, 1, 4), utc(2026, 11, 1, 21))
    assert [(t.start, t.end) for t in autumn] == [
        (utc(2026, 11, 1, 4), utc(2026, 11, 1, 13)),  # 00:00 EDT .. 08:00 EST: 9h
        (utc(2026, 11, 1, 13), utc(2026, 11, 1, 21)),
    ]
    # 3 turns a day, 7 days from 2026-03-01: turn 21 starts 2026-03-08 00:00
    assert [t.who for t in spring] == ["a", "b", "c", "a"]


@pytest.mark.parametrize(
    ("zone", "day", "handoff", "resolved"),
    [
        # spring forward: 02:30 does not exist, the hand-off happens when the gap ends (03:00)
        ("America/New_York", date(2026, 3, 8), time(2, 30), utc(2026, 3, 8, 7)),
        ("America/Los_Angeles", date(2027, 3, 14), time(2, 30), utc(2027, 3, 14, 10)),
        ("Australia/Sydney", date(2026, 10, 4), time(2, 30), utc(2026, 10, 3, 16)),
        ("Australia/Sydney", date(2027, 10, 3), time(2, 30), utc(2027, 10, 2, 16)),
        # fall back: the time happens twice, the hand-off is the first one (daylight time)
        ("America/New_York", date(2026, 11, 1), time(1, 30), utc(2026, 11, 1, 5, 30)),
        ("America/Los_Angeles", date(2027, 11, 7), time(1, 30), utc(2027, 11, 7, 8, 30)),
        ("Australia/Sydney", date(2026, 4, 5), time(2, 30), utc(2026, 4, 4, 15, 30)),
        ("Australia/Sydney", date(2027, 4, 4), time(2, 30), utc(2027, 4, 3, 15, 30)),
    ],
)
def test_handoff_in_a_gap_or_a_repeated_hour(
    zone: str, day: date, handoff: time, resolved: datetime
) -> None:
    rotation = daily(zone, handoff, day - timedelta(days=3), ("a", "b", "c"))
    turns = rotation_turns(rotation, resolved - 2 * DAY, resolved + 2 * DAY)
    on_the_day = turn_starting(turns, resolved)
    assert on_the_day.who == "a"  # turn 3
    previous = turns[turns.index(on_the_day) - 1]
    assert previous.end == resolved
    assert rotation_on_call(rotation, resolved - timedelta(seconds=1)) == "c"
    assert rotation_on_call(rotation, resolved) == "a"


def test_turn_lengths_around_a_gap_handoff() -> None:
    rotation = daily("America/New_York", time(2, 30), date(2026, 3, 1), ("a", "b"))
    turns = rotation_turns(rotation, utc(2026, 3, 7, 7, 30), utc(2026, 3, 9, 6, 30))
    assert [(t.start, t.end) for t in turns] == [
        (utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7)),  # 02:30 EST .. 03:00 EDT: 23.5h
        (utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)),  # 03:00 EDT .. 02:30 EDT: 23.5h
    ]


def test_a_turn_lost_in_the_gap_is_skipped_and_the_next_member_follows() -> None:
    rotation = daily(
        "America/New_York", time(0), date(2026, 3, 1), ("a", "b", "c"), shift=timedelta(hours=1)
    )
    turns = rotation_turns(rotation, utc(2026, 3, 8, 5), utc(2026, 3, 8, 8))
    # 00:00 a, 01:00 b, 02:00 c (does not exist: no length), 03:00 a
    assert [(t.who, t.start, t.end) for t in turns] == [
        ("a", utc(2026, 3, 8, 5), utc(2026, 3, 8, 6)),
        ("b", utc(2026, 3, 8, 6), utc(2026, 3, 8, 7)),
        ("a", utc(2026, 3, 8, 7), utc(2026, 3, 8, 8)),
    ]


def test_nobody_before_the_first_handoff() -> None:
    rotation = daily("Australia/Sydney", time(8), date(2026, 11, 3), ("ana", "ben"))
    first = utc(2026, 11, 2, 21)  # 08:00 AEDT on 3 November
    assert rotation_on_call(rotation, first - timedelta(seconds=1)) is None
    assert rotation_on_call(rotation, first) == "ana"
    assert rotation_turns(rotation, utc(2026, 10, 1), first) == []
    assert rotation_turns(rotation, utc(2026, 10, 1), first + DAY) == [
        Shift("ana", first, first + DAY, "rotation:r")
    ]


def test_far_from_the_start_without_walking_turns() -> None:
    rotation = daily("UTC", time(0), date(2000, 1, 1), ("a", "b", "c"))
    at = utc(2027, 6, 15, 12)
    k = (date(2027, 6, 15) - date(2000, 1, 1)).days
    assert rotation_on_call(rotation, at) == ("a", "b", "c")[k % 3]


# --- restrictions -------------------------------------------------------------


def test_tuesday_to_saturday_week_masks_turns_that_still_pass() -> None:
    # 2026-06-01 is a Monday; turns hand off daily at 09:00 UTC: a, b, c, a, b, c, a(Sun), b(Mon)
    rotation = daily(
        "UTC",
        time(9),
        date(2026, 6, 1),
        ("a", "b", "c"),
        days=parse_days(["tue", "wed", "thu", "fri", "sat"]),
    )
    shifts = rotation_shifts(rotation, utc(2026, 6, 1), utc(2026, 6, 10))
    assert [(s.who, s.start, s.end) for s in shifts] == [
        ("a", utc(2026, 6, 2), utc(2026, 6, 2, 9)),  # Monday's turn shows from Tuesday 00:00
        ("b", utc(2026, 6, 2, 9), utc(2026, 6, 3, 9)),
        ("c", utc(2026, 6, 3, 9), utc(2026, 6, 4, 9)),
        ("a", utc(2026, 6, 4, 9), utc(2026, 6, 5, 9)),
        ("b", utc(2026, 6, 5, 9), utc(2026, 6, 6, 9)),
        ("c", utc(2026, 6, 6, 9), utc(2026, 6, 7)),  # Saturday ends at midnight
        ("b", utc(2026, 6, 9), utc(2026, 6, 9, 9)),  # Sunday's a and Monday's b passed unseen
        ("c", utc(2026, 6, 9, 9), utc(2026, 6, 10)),
    ]
    assert rotation_on_call(rotation, utc(2026, 6, 7, 12)) is None
    assert rotation_on_call(rotation, utc(2026, 6, 8, 12)) is None
    raw = rotation_turns(rotation, utc(2026, 6, 7, 9), utc(2026, 6, 9, 9))
    assert [t.who for t in raw] == ["a", "b"]


def test_sunday_to_thursday_week_with_hours_in_sydney() -> None:
    # 2027-01-03 is a Sunday; AEDT (+11): 09:00 is 22:00 UTC the day before, 17:00 is 06:00 UTC
    rotation = daily(
        "Australia/Sydney",
        time(9),
        date(2027, 1, 3),
        ("ana", "ben"),
        shift=timedelta(days=7),
        days=parse_days(["sun", "mon", "tue", "wed", "thu"]),
        hours=parse_hours("09:00-17:00"),
    )
    shifts = rotation_shifts(rotation, utc(2027, 1, 2), utc(2027, 1, 12))
    expected = [("ana", utc(2027, 1, d - 1, 22), utc(2027, 1, d, 6)) for d in range(3, 8)]
    expected += [
        ("ben", utc(2027, 1, 9, 22), utc(2027, 1, 10, 6)),
        ("ben", utc(2027, 1, 10, 22), utc(2027, 1, 11, 6)),
        ("ben", utc(2027, 1, 11, 22), utc(2027, 1, 12)),
    ]
    assert [(s.who, s.start, s.end) for s in shifts] == expected
    assert rotation_on_call(rotation, utc(2027, 1, 8, 1)) is None  # Friday noon in Sydney


def test_hours_window_wrapping_midnight_belongs_to_the_day_it_starts() -> None:
    # Monday-Friday nights 20:00-08:00 UTC; 2026-06-01 is a Monday
    rotation = daily(
        "UTC",
        time(20),
        date(2026, 6, 1),
        ("x",),
        shift=timedelta(days=7),
        days=parse_days(["mon", "tue", "wed", "thu", "fri"]),
        hours=parse_hours("20:00-08:00"),
    )
    assert rotation_on_call(rotation, utc(2026, 6, 6, 7)) == "x"  # Friday's night, on Saturday
    assert rotation_on_call(rotation, utc(2026, 6, 6, 8)) is None
    assert rotation_on_call(rotation, utc(2026, 6, 6, 21)) is None  # Saturday night
    assert rotation_on_call(rotation, utc(2026, 6, 8, 3)) is None  # Sunday's night, on Monday
    assert rotation_on_call(rotation, utc(2026, 6, 8, 21)) == "x"
    shifts = rotation_shifts(rotation, utc(2026, 6, 5), utc(2026, 6, 9))
    assert [(s.start, s.end) for s in shifts] == [
        (utc(2026, 6, 5), utc(2026, 6, 5, 8)),  # Thursday's night
        (utc(2026, 6, 5, 20), utc(2026, 6, 6, 8)),
        (utc(2026, 6, 8, 20), utc(2026, 6, 9)),
    ]


def test_night_window_across_the_new_york_fall_back_is_thirteen_hours() -> None:
    rotation = daily(
        "America/New_York",
        time(20),
        date(2026, 10, 1),
        ("x",),
        hours=parse_hours("20:00-08:00"),
    )
    shifts = rotation_shifts(rotation, utc(2026, 10, 31, 12), utc(2026, 11, 1, 20))
    assert [(s.start, s.end) for s in shifts] == [(utc(2026, 11, 1), utc(2026, 11, 1, 13))]


# --- schedules ----------------------------------------------------------------

SYD = daily(
    "Australia/Sydney",
    time(8),
    date(2026, 12, 1),
    ("ana", "ben"),
    name="syd-day",
    hours=parse_hours("08:00-20:00"),
)
NY = daily(
    "America/New_York",
    time(8),
    date(2026, 12, 1),
    ("cat", "dan"),
    name="ny-day",
    hours=parse_hours("08:00-18:00"),
)
LA = daily(
    "America/Los_Angeles",
    time(9),
    date(2026, 12, 1),
    ("eve", "fay"),
    name="la-day",
    hours=parse_hours("09:00-17:00"),
)
FOLLOW_THE_SUN = ScheduleSpec("follow-the-sun", (SYD, NY, LA))


def test_follow_the_sun_in_january() -> None:
    # 2027-01-20 is turn 50 (even) of every layer, 2027-01-19 turn 49.
    # Sydney (+11) 08-20 = 21:00-09:00Z, New York (-5) 08-18 = 13-23Z, LA (-8) 09-17 = 17-01Z.
    shifts = schedule_shifts(FOLLOW_THE_SUN, utc(2027, 1, 20), utc(2027, 1, 21))
    assert shifts == [
        Shift("fay", utc(2027, 1, 20), utc(2027, 1, 20, 1), "rotation:la-day"),
        Shift("ana", utc(2027, 1, 20, 1), utc(2027, 1, 20, 9), "rotation:syd-day"),
        Shift("cat", utc(2027, 1, 20, 13), utc(2027, 1, 20, 17), "rotation:ny-day"),
        Shift("eve", utc(2027, 1, 20, 17), utc(2027, 1, 21), "rotation:la-day"),
    ]
    assert coverage_gaps(FOLLOW_THE_SUN, utc(2027, 1, 20), utc(2027, 1, 21)) == [
        (utc(2027, 1, 20, 9), utc(2027, 1, 20, 13))
    ]


def test_follow_the_sun_after_the_us_change_before_sydney_s() -> None:
    # 2027-03-20 is turn 109 (odd). New York (-4) 12-22Z, LA (-7) 16-00Z, Sydney still +11.
    shifts = schedule_shifts(FOLLOW_THE_SUN, utc(2027, 3, 20), utc(2027, 3, 21))
    assert [(s.who, s.start.hour, s.end) for s in shifts] == [
        ("ben", 0, utc(2027, 3, 20, 9)),
        ("dan", 12, utc(2027, 3, 20, 16)),
        ("fay", 16, utc(2027, 3, 21)),
    ]
    assert coverage_gaps(FOLLOW_THE_SUN, utc(2027, 3, 20), utc(2027, 3, 21)) == [
        (utc(2027, 3, 20, 9), utc(2027, 3, 20, 12))
    ]


def test_overrides_sit_on_top_and_the_later_one_wins() -> None:
    schedule = ScheduleSpec(
        "follow-the-sun",
        (SYD, NY, LA),
        overrides=(
            OverrideSpec("gus", utc(2027, 3, 20, 5), utc(2027, 3, 20, 14)),
            # given in New York time: 02:00-03:00 EDT is 06:00-07:00Z
            OverrideSpec(
                "hal",
                datetime(2027, 3, 20, 2, tzinfo=timezone(timedelta(hours=-4))),
                datetime(2027, 3, 20, 3, tzinfo=timezone(timedelta(hours=-4))),
            ),
        ),
    )
    shifts = schedule_shifts(schedule, utc(2027, 3, 20), utc(2027, 3, 21))
    assert [(s.who, s.start.hour, s.end.hour, s.source) for s in shifts] == [
        ("ben", 0, 5, "rotation:syd-day"),
        ("gus", 5, 6, "override"),
        ("hal", 6, 7, "override"),
        ("gus", 7, 14, "override"),  # covers the 09-12Z gap too
        ("dan", 14, 16, "rotation:ny-day"),
        ("fay", 16, 0, "rotation:la-day"),
    ]
    assert coverage_gaps(schedule, utc(2027, 3, 20), utc(2027, 3, 21)) == []


ALL_DAY = daily("Australia/Sydney", time(8), date(2026, 12, 1), ("ana", "ben"), name="syd-24")
CHRISTMAS = (
    HolidaySpec(date(2026, 12, 25), "Christmas Day", "AU-NSW"),
    HolidaySpec(date(2026, 12, 26), "Boxing Day", "AU-NSW"),
    HolidaySpec(date(2026, 12, 24), "Not ours", "US"),
)
# Turns hand off at 08:00 AEDT = 21:00Z the day before: 24 Dec ben, 25 Dec ana, 26 Dec ben.
# Holidays are whole Sydney days: 25 Dec = 24 Dec 13:00Z .. 25 Dec 13:00Z.
WINDOW = (utc(2026, 12, 24), utc(2026, 12, 27))


def test_holiday_cover_takes_the_whole_local_day() -> None:
    schedule = ScheduleSpec(
        "primary",
        (ALL_DAY,),
        holidays=CHRISTMAS,
        holiday_region="AU-NSW",
        holiday_cover="ivy",
        timezone="Australia/Sydney",
    )
    assert schedule_shifts(schedule, *WINDOW) == [
        Shift("ben", utc(2026, 12, 24), utc(2026, 12, 24, 13), "rotation:syd-24"),
        Shift("ivy", utc(2026, 12, 24, 13), utc(2026, 12, 25, 13), "holiday:Christmas Day"),
        Shift("ivy", utc(2026, 12, 25, 13), utc(2026, 12, 26, 13), "holiday:Boxing Day"),
        Shift("ben", utc(2026, 12, 26, 13), utc(2026, 12, 26, 21), "rotation:syd-24"),
        Shift("ana", utc(2026, 12, 26, 21), utc(2026, 12, 27), "rotation:syd-24"),
    ]
    assert fairness(schedule, *WINDOW) == {
        "ana": FairnessRow("ana", 3.0, 1, 0),
        "ben": FairnessRow("ben", 21.0, 2, 0),
        "ivy": FairnessRow("ivy", 48.0, 2, 2),
    }


def test_holiday_dates_without_a_schedule_zone_follow_the_first_layer() -> None:
    """No `timezone`: Christmas is the Sydney day of the Sydney layer, not the UTC day."""
    schedule = ScheduleSpec(
        "primary", (ALL_DAY,), holidays=CHRISTMAS, holiday_region="au-nsw", holiday_cover="ivy"
    )
    shifts = schedule_shifts(schedule, *WINDOW)
    assert shifts[1] == Shift(
        "ivy", utc(2026, 12, 24, 13), utc(2026, 12, 25, 13), "holiday:Christmas Day"
    )
    # 10:00 on Christmas morning in Sydney is still 24 December in UTC.
    assert on_call(schedule, utc(2026, 12, 24, 23)) == shifts[1]


def test_holiday_dates_follow_the_first_layer_across_a_clock_change() -> None:
    """A New York layer's holiday on the day the clocks go forward lasts 23 hours."""
    layer = daily("America/New_York", time(9), date(2026, 3, 1), ("dev",), name="nyc")
    schedule = ScheduleSpec(
        "us",
        (layer,),
        holidays=(HolidaySpec(date(2026, 3, 8), "Spring", "US"),),
        holiday_region="US",
        holiday_cover="eli",
    )
    # 8 March 00:00 EST = 05:00Z; 9 March 00:00 EDT = 04:00Z.
    assert schedule_shifts(schedule, utc(2026, 3, 8), utc(2026, 3, 10))[1] == Shift(
        "eli", utc(2026, 3, 8, 5), utc(2026, 3, 9, 4), "holiday:Spring"
    )


def test_holiday_dates_of_a_schedule_without_layers_or_zone_are_utc_days() -> None:
    schedule = ScheduleSpec(
        "empty", (), holidays=CHRISTMAS, holiday_region="AU-NSW", holiday_cover="ivy"
    )
    assert schedule_shifts(schedule, *WINDOW)[0] == Shift(
        "ivy", utc(2026, 12, 25), utc(2026, 12, 26), "holiday:Christmas Day"
    )


def test_override_beats_holiday_cover() -> None:
    schedule = ScheduleSpec(
        "primary",
        (ALL_DAY,),
        overrides=(
            OverrideSpec(
                "ben",
                datetime.fromisoformat("2026-12-24T20:00:00+11:00"),
                datetime.fromisoformat("2026-12-26T08:00:00+11:00"),
            ),
        ),
        holidays=CHRISTMAS,
        holiday_region="AU-NSW",
        holiday_cover="ivy",
        timezone="Australia/Sydney",
    )
    assert [(s.who, s.start, s.end, s.source) for s in schedule_shifts(schedule, *WINDOW)] == [
        ("ben", utc(2026, 12, 24), utc(2026, 12, 24, 9), "rotation:syd-24"),
        ("ben", utc(2026, 12, 24, 9), utc(2026, 12, 25, 21), "override"),
        ("ivy", utc(2026, 12, 25, 21), utc(2026, 12, 26, 13), "holiday:Boxing Day"),
        ("ben", utc(2026, 12, 26, 13), utc(2026, 12, 26, 21), "rotation:syd-24"),
        ("ana", utc(2026, 12, 26, 21), utc(2026, 12, 27), "rotation:syd-24"),
    ]


def test_fairness_counts_who_worked_the_holidays_without_a_cover() -> None:
    schedule = ScheduleSpec(
        "primary",
        (ALL_DAY,),
        holidays=CHRISTMAS,
        holiday_region="AU-NSW",
        timezone="Australia/Sydney",
    )
    assert fairness(schedule, *WINDOW) == {
        "ana": FairnessRow("ana", 27.0, 2, 1),
        "ben": FairnessRow("ben", 45.0, 2, 2),
    }


def test_gaps_before_the_start_and_on_masked_days() -> None:
    week = daily(
        "UTC",
        time(9),
        date(2026, 6, 2),
        ("a", "b"),
        days=parse_days(["tue", "wed", "thu", "fri", "sat"]),
    )
    schedule = ScheduleSpec("weekdays", (week,))
    assert coverage_gaps(schedule, utc(2026, 6, 1), utc(2026, 6, 10)) == [
        (utc(2026, 6, 1), utc(2026, 6, 2, 9)),  # before the first hand-off
        (utc(2026, 6, 7), utc(2026, 6, 9)),  # Sunday and Monday
    ]
    assert coverage_gaps(ScheduleSpec("empty", ()), utc(2026, 6, 1), utc(2026, 6, 2)) == [
        (utc(2026, 6, 1), utc(2026, 6, 2))
    ]


# --- point questions -------------------------------------------------------------


def test_on_call_returns_the_whole_shift() -> None:
    at = utc(2027, 1, 20, 2)
    assert on_call(FOLLOW_THE_SUN, at) == Shift(
        "ana", utc(2027, 1, 20, 1), utc(2027, 1, 20, 9), "rotation:syd-day"
    )
    assert on_call(FOLLOW_THE_SUN, utc(2027, 1, 20, 10)) is None  # the gap
    assert on_call(FOLLOW_THE_SUN, utc(2026, 11, 1)) is None  # before any rotation starts


def test_on_call_widens_past_its_first_window() -> None:
    solo = ScheduleSpec("solo", (daily("UTC", time(8), date(2026, 6, 1), ("ana",)),))
    found = on_call(solo, utc(2026, 7, 1))
    assert found is not None
    assert (found.who, found.start) == ("ana", utc(2026, 6, 1, 8))


def test_on_call_many_matches_on_call() -> None:
    instants = [utc(2027, 1, 20) + timedelta(minutes=37 * i) for i in range(120)]
    assert on_call_many(FOLLOW_THE_SUN, instants) == [
        on_call(FOLLOW_THE_SUN, at) for at in instants
    ]
    assert on_call_many(FOLLOW_THE_SUN, []) == []


def test_next_change_is_who_is_on_next() -> None:
    at = utc(2027, 1, 20, 2)
    assert next_change(FOLLOW_THE_SUN, at) == Shift(
        "cat", utc(2027, 1, 20, 13), utc(2027, 1, 20, 17), "rotation:ny-day"
    )
    # at a hand-off instant the shift starting then is current, not next
    assert next_change(FOLLOW_THE_SUN, utc(2027, 1, 20, 13)) == Shift(
        "eve", utc(2027, 1, 20, 17), utc(2027, 1, 21, 1), "rotation:la-day"
    )


def test_next_shift_for_a_person() -> None:
    at = utc(2027, 1, 20, 2)
    assert next_shift_for(FOLLOW_THE_SUN, "eve", at) == Shift(
        "eve", utc(2027, 1, 20, 17), utc(2027, 1, 21, 1), "rotation:la-day"
    )
    # in progress: the whole current shift
    assert next_shift_for(FOLLOW_THE_SUN, "ana", at) == on_call(FOLLOW_THE_SUN, at)
    # ben's next Sydney day is turn 51 from 2027-01-21 08:00 AEDT (21:00Z), but Los Angeles,
    # a later layer, keeps eve on until 01:00Z
    assert next_shift_for(FOLLOW_THE_SUN, "ben", at) == Shift(
        "ben", utc(2027, 1, 21, 1), utc(2027, 1, 21, 9), "rotation:syd-day"
    )
    assert next_shift_for(FOLLOW_THE_SUN, "nobody", at) is None


def test_on_call_many_matches_on_call_for_shifts_beyond_a_year() -> None:
    solo = ScheduleSpec("solo", (daily("UTC", time(8), date(2026, 6, 1), ("ana",)),))
    instants = [utc(2026, 7, 1), utc(2026, 7, 2), utc(2027, 12, 1)]
    answers = on_call_many(solo, instants)
    assert answers == [on_call(solo, at) for at in instants]
    # beyond a year from the instant asked about, the shift is clipped to that year
    year = timedelta(days=366)
    assert answers[2] == Shift("ana", instants[2] - year, instants[2] + year, "rotation:r")


def test_holiday_spec_checks_its_fields() -> None:
    with pytest.raises(ValueError, match="holiday 'Christmas Day': region: expected a region"):
        HolidaySpec(date(2026, 12, 25), "Christmas Day", "")
    with pytest.raises(ValueError, match="date: expected a date"):
        HolidaySpec(datetime(2026, 12, 25, tzinfo=UTC), "Christmas Day", "AU-NSW")

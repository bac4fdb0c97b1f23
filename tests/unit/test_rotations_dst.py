"""Property tests: random rotations and schedules in daylight-saving zones over 2026-2027.

Windows are drawn near the zones' clock changes half the time, so gap and repeated-hour
hand-offs come up often."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from app.rules.rotations import (
    HolidaySpec,
    OverrideSpec,
    RotationSpec,
    ScheduleSpec,
    Shift,
    change_rotation,
    coverage_gaps,
    next_handoff,
    on_call,
    on_call_many,
    rotation_on_call,
    rotation_shifts,
    rotation_turns,
    schedule_shifts,
)

ZONES = ("Australia/Sydney", "America/New_York", "America/Los_Angeles", "UTC")
CHANGE_DAYS = [
    date(2026, 4, 5),
    date(2026, 10, 4),
    date(2027, 4, 4),
    date(2027, 10, 3),
    date(2026, 3, 8),
    date(2026, 11, 1),
    date(2027, 3, 14),
    date(2027, 11, 7),
]
SHIFTS = [timedelta(hours=h) for h in (1, 2, 3, 5, 8, 12, 24, 36, 48, 168)] + [
    timedelta(minutes=90)
]
HANDLES = ("ana", "ben", "cat", "dan", "eve")
TICK = timedelta(microseconds=1)
FAST = settings(max_examples=120, deadline=None)
SLOW = settings(max_examples=50, deadline=None)

clock_times = st.builds(
    time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45])
) | st.sampled_from([time(2, 0), time(2, 30), time(1, 30), time(3, 0)])
hours_windows = st.tuples(clock_times, clock_times).filter(lambda pair: pair[0] != pair[1])
day_sets = st.frozensets(st.integers(0, 6), min_size=1, max_size=7)


@st.composite
def rotations(draw: st.DrawFn, *, restricted: bool = True, name: str = "r") -> RotationSpec:
    return RotationSpec(
        name=name,
        timezone=draw(st.sampled_from(ZONES)),
        shift=draw(st.sampled_from(SHIFTS)),
        handoff=draw(clock_times),
        start=draw(st.dates(date(2025, 10, 1), date(2027, 12, 31))),
        members=tuple(draw(st.lists(st.sampled_from(HANDLES), min_size=1, max_size=4))),
        days=draw(st.none() | day_sets) if restricted else None,
        hours=draw(st.none() | hours_windows) if restricted else None,
    )


@st.composite
def windows(draw: st.DrawFn, max_days: int = 21) -> tuple[datetime, datetime]:
    if draw(st.booleans()):
        day = draw(st.sampled_from(CHANGE_DAYS))
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        start += timedelta(minutes=draw(st.integers(-72 * 60, 24 * 60)))
    else:
        start = draw(
            st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC))
        )
    length = timedelta(minutes=draw(st.integers(1, max_days * 24 * 60)))
    return start, start + length


def sample_instants(
    start: datetime, end: datetime, fractions: list[float], shifts: list[Shift]
) -> list[datetime]:
    """Random instants plus every shift edge and the instant just before it."""
    points = [start + (end - start) * f for f in fractions]
    for piece in shifts:
        points += [piece.start, piece.start - TICK, piece.end, piece.end - TICK]
    return [p for p in points if start <= p < end]


def covering(shifts: list[Shift], at: datetime) -> Shift | None:
    return next((piece for piece in shifts if piece.start <= at < piece.end), None)


def assert_sorted_disjoint(shifts: list[Shift], start: datetime, end: datetime) -> None:
    for piece in shifts:
        assert start <= piece.start < piece.end <= end
    for earlier, later in itertools.pairwise(shifts):
        assert earlier.end <= later.start


def first_handoff(rotation: RotationSpec) -> datetime:
    """Turn 0 starts on the start date's wall clock, within a day of that date in UTC."""
    around = datetime.combine(rotation.start, time(0), tzinfo=UTC)
    return rotation_turns(rotation, around - timedelta(days=2), around + timedelta(days=3))[0].start


def exists(day: date, wall: time, zone: ZoneInfo) -> bool:
    local = datetime.combine(day, wall, tzinfo=zone)
    return local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None)


@FAST
@given(rotation=rotations(restricted=False), window=windows())
def test_raw_turns_tile_the_window(
    rotation: RotationSpec, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    turns = rotation_turns(rotation, start, end)
    begin = max(start, first_handoff(rotation))
    if begin >= end:
        assert turns == []
        return
    assert turns[0].start == begin
    assert turns[-1].end == end
    for earlier, later in itertools.pairwise(turns):
        assert earlier.end == later.start
    zone = ZoneInfo(rotation.timezone)
    day_based = rotation.shift % timedelta(days=1) == timedelta(0)
    for turn in turns:
        assert turn.start < turn.end
        unclipped = turn.start != start and turn.end != end
        if unclipped:
            # a turn is its length give or take one clock change
            assert abs(turn.duration - rotation.shift) <= timedelta(hours=1)
        if day_based and turn.start != start:
            local = turn.start.astimezone(zone)
            # the hand-off reads the hand-off time, unless that time does not exist that day
            assert local.time() == rotation.handoff or not exists(
                local.date(), rotation.handoff, zone
            )


@FAST
@given(
    rotation=rotations(),
    window=windows(),
    fractions=st.lists(st.floats(0, 1, exclude_max=True), max_size=10),
)
def test_restricted_shifts_agree_with_point_answers(
    rotation: RotationSpec, window: tuple[datetime, datetime], fractions: list[float]
) -> None:
    start, end = window
    shifts = rotation_shifts(rotation, start, end)
    assert_sorted_disjoint(shifts, start, end)
    turns = rotation_turns(rotation, start, end)
    for piece in shifts:
        turn = covering(turns, piece.start)
        assert turn is not None
        assert turn.who == piece.who
    for at in sample_instants(start, end, fractions, shifts + turns):
        found = covering(shifts, at)
        assert rotation_on_call(rotation, at) == (found.who if found else None)


@st.composite
def schedules(draw: st.DrawFn, window: tuple[datetime, datetime]) -> ScheduleSpec:
    start, end = window
    layers = tuple(draw(rotations(name=f"layer{i}")) for i in range(draw(st.integers(1, 3))))
    overrides = []
    for _ in range(draw(st.integers(0, 3))):
        opens = start + (end - start) * draw(st.floats(-0.2, 1.0))
        length = timedelta(minutes=draw(st.integers(1, 3 * 24 * 60)))
        overrides.append(OverrideSpec(draw(st.sampled_from(HANDLES)), opens, opens + length))
    holidays = tuple(
        HolidaySpec(start.date() + timedelta(days=offset), f"holiday {offset}", "R")
        for offset in draw(st.sets(st.integers(-1, 21), max_size=3))
    )
    covered = draw(st.booleans())
    return ScheduleSpec(
        "s",
        layers,
        overrides=tuple(overrides),
        holidays=holidays,
        holiday_region="R" if covered else None,
        holiday_cover="ivy" if covered else None,
        timezone=draw(st.none() | st.sampled_from(ZONES)),
    )


@SLOW
@given(data=st.data(), window=windows(max_days=7))
def test_schedule_shifts_and_gaps_tile_and_agree_with_on_call(
    data: st.DataObject, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    schedule = data.draw(schedules(window))
    shifts = schedule_shifts(schedule, start, end)
    assert_sorted_disjoint(shifts, start, end)
    for earlier, later in itertools.pairwise(shifts):
        touching_same = earlier.end == later.start and (earlier.who, earlier.source) == (
            later.who,
            later.source,
        )
        assert not touching_same, "touching pieces of one person and source are merged"
    gaps = coverage_gaps(schedule, start, end)
    spans = sorted([(s.start, s.end) for s in shifts] + gaps)
    if start < end:
        assert spans[0][0] == start
        assert spans[-1][1] == end
        for (_, closes), (opens, _) in itertools.pairwise(spans):
            assert closes == opens
    fractions = data.draw(st.lists(st.floats(0, 1, exclude_max=True), max_size=6))
    instants = sample_instants(start, end, fractions, shifts)[:16]
    answers = [on_call(schedule, at) for at in instants]
    assert on_call_many(schedule, instants) == answers
    for at, answer in zip(instants, answers, strict=True):
        found = covering(shifts, at)
        if found is None:
            assert answer is None
        else:
            assert answer is not None
            assert (answer.who, answer.source) == (found.who, found.source)
            assert answer.start <= found.start
            assert found.end <= answer.end


@SLOW
@given(data=st.data(), window=windows())
def test_round_the_clock_schedule_has_no_gap(
    data: st.DataObject, window: tuple[datetime, datetime]
) -> None:
    layers = tuple(
        data.draw(rotations(restricted=False, name=f"layer{i}"))
        for i in range(data.draw(st.integers(1, 3)))
    )
    schedule = ScheduleSpec("all-day", layers)
    start = max(window[0], *(first_handoff(layer) for layer in layers))
    end = max(window[1], start + timedelta(hours=1))
    assert coverage_gaps(schedule, start, end) == []
    shifts = schedule_shifts(schedule, start, end)
    assert shifts[0].start == start
    assert shifts[-1].end == end
    for earlier, later in itertools.pairwise(shifts):
        assert earlier.end == later.start


@SLOW
@given(
    rotation=rotations(),
    members=st.lists(st.sampled_from(HANDLES), min_size=1, max_size=4),
    window=windows(max_days=10),
    fractions=st.lists(st.floats(0, 1), max_size=8),
)
def test_a_member_change_keeps_the_turn_under_way_and_the_past(
    rotation: RotationSpec,
    members: list[str],
    window: tuple[datetime, datetime],
    fractions: list[float],
) -> None:
    """Whatever changes and whenever: before the next hand-off nothing moves; after it the
    turns still tile, and the first new turn goes to whom the old order gave it if they stay."""
    now, end = window
    wanted = replace(rotation, members=tuple(members))
    changed = change_rotation(rotation, wanted, now)
    started = rotation_turns(rotation, now - timedelta(days=400), now + TICK)
    if not started:
        assert changed == wanted
        return
    if changed == rotation:  # dealt as before: nothing to keep apart
        assert wanted.members == rotation.members
        return
    handoff = next_handoff(rotation, now)
    assert changed.since == handoff > now
    lo = now - timedelta(days=3)
    before = rotation_shifts(rotation, lo, handoff)
    assert rotation_shifts(changed, lo, handoff) == before
    for point in sample_instants(lo, handoff, fractions, before):
        assert rotation_on_call(changed, point) == rotation_on_call(rotation, point)
    after = rotation_turns(changed, handoff, max(end, handoff + timedelta(days=3)))
    assert after
    assert after[0].start == handoff
    for earlier, later in itertools.pairwise(after):
        assert earlier.end == later.start
    heir = rotation_turns(rotation, handoff, handoff + TICK)[0].who
    if heir in members:
        assert after[0].who == heir

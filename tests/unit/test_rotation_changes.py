"""The rotation change rule: a change takes effect from the next hand-off; the turn under way
and the past stay as they were. Expected instants are worked out by hand in UTC (offsets:
Sydney +10/+11, New York -5/-4, Los Angeles -8/-7), not with the code under test."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest

from app.rules.rotations import (
    RotationSpec,
    Shift,
    change_rotation,
    next_handoff,
    rotation_on_call,
    rotation_shifts,
    rotation_turns,
)

DAY = timedelta(days=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def holders(rotation: RotationSpec, start: datetime, end: datetime) -> list[tuple[str, str]]:
    """(who, start as UTC text) of each raw turn in the window."""
    return [
        (turn.who, turn.start.strftime("%m-%dT%H:%M"))
        for turn in rotation_turns(rotation, start, end)
    ]


# Los Angeles, daily at 09:00 from Sunday 1 March: turn k is 1 March + k days, so ana, ben,
# cat, ana... Sunday 8 March (clocks forward) is turn 7: ben, from 17:00Z (09:00 PST) to
# 16:00Z on the 9th (09:00 PDT).
LA = RotationSpec(
    "la", "America/Los_Angeles", DAY, time(9), date(2026, 3, 1), ("ana", "ben", "cat")
)
LA_NOW = utc(2026, 3, 8, 19)  # 12:00 PDT, ben's turn


def test_removing_an_off_duty_member_keeps_who_is_on_call_now_and_the_past() -> None:
    changed = change_rotation(LA, replace(LA, members=("ben", "cat")), LA_NOW)

    assert rotation_on_call(changed, LA_NOW) == "ben"
    past = (utc(2026, 3, 1), utc(2026, 3, 9, 16))
    assert rotation_shifts(changed, *past) == rotation_shifts(LA, *past)
    assert changed.since == utc(2026, 3, 9, 16)
    # The 9th was cat's in the old order and stays hers; then the new order: ben, cat.
    assert holders(changed, utc(2026, 3, 9, 16), utc(2026, 3, 13, 16)) == [
        ("cat", "03-09T16:00"),
        ("ben", "03-10T16:00"),
        ("cat", "03-11T16:00"),
        ("ben", "03-12T16:00"),
    ]


def test_a_member_removed_while_on_call_finishes_the_turn() -> None:
    changed = change_rotation(LA, replace(LA, members=("ana", "cat")), LA_NOW)

    assert rotation_on_call(changed, LA_NOW) == "ben"
    assert rotation_on_call(changed, utc(2026, 3, 9, 15, 59)) == "ben"
    assert holders(changed, utc(2026, 3, 9, 16), utc(2026, 3, 11, 16)) == [
        ("cat", "03-09T16:00"),
        ("ana", "03-10T16:00"),
    ]


def test_when_the_next_in_line_leaves_the_one_after_them_takes_the_turn() -> None:
    changed = change_rotation(LA, replace(LA, members=("ana", "ben")), LA_NOW)

    assert rotation_on_call(changed, LA_NOW) == "ben"
    assert holders(changed, utc(2026, 3, 9, 16), utc(2026, 3, 11, 16)) == [
        ("ana", "03-09T16:00"),
        ("ben", "03-10T16:00"),
    ]


# Sydney, weekly on Mondays at 09:00 from 7 September 2026. Clocks go forward on Sunday
# 4 October, inside the fifth turn (dan's): 28 Sep 09:00 AEST = 27 Sep 23:00Z to 5 Oct
# 09:00 AEDT = 4 Oct 22:00Z, 167 hours.
SYDNEY = RotationSpec(
    "syd",
    "Australia/Sydney",
    7 * DAY,
    time(9),
    date(2026, 9, 7),
    ("ana", "ben", "cat", "dan"),
)


def test_sydney_weekly_change_across_the_october_clock_change() -> None:
    now = utc(2026, 10, 3, 12)  # Saturday 22:00 AEST, dan's turn
    assert rotation_on_call(SYDNEY, now) == "dan"
    changed = change_rotation(SYDNEY, replace(SYDNEY, members=("ana", "cat", "dan")), now)

    assert next_handoff(SYDNEY, now) == utc(2026, 10, 4, 22)
    assert changed.since == utc(2026, 10, 4, 22)
    assert rotation_on_call(changed, utc(2026, 10, 4, 21)) == "dan"
    assert holders(changed, utc(2026, 9, 27, 23), utc(2026, 10, 25, 22)) == [
        ("dan", "09-27T23:00"),
        ("ana", "10-04T22:00"),  # ana was next in the old order too
        ("cat", "10-11T22:00"),  # ben is gone: the new order goes on
        ("dan", "10-18T22:00"),
    ]


# New York, 8-hour turns at 00:00/08:00/16:00 from 26 October 2026. Clocks go back on
# Sunday 1 November: the turn from 00:00 EDT (04:00Z) to 08:00 EST (13:00Z) lasts 9 hours.
NEW_YORK = RotationSpec(
    "nyc", "America/New_York", timedelta(hours=8), time(0), date(2026, 10, 26), ("ana", "ben")
)


def test_new_york_adding_a_member_in_the_long_turn_of_the_fall_back_night() -> None:
    now = utc(2026, 11, 1, 6)  # 01:00 EDT, the first pass of the repeated hour: turn 18, ana
    assert rotation_on_call(NEW_YORK, now) == "ana"
    changed = change_rotation(NEW_YORK, replace(NEW_YORK, members=("ana", "ben", "cat")), now)

    assert changed.since == utc(2026, 11, 1, 13)
    assert rotation_on_call(changed, utc(2026, 11, 1, 12, 59)) == "ana"
    assert holders(changed, utc(2026, 11, 1, 13), utc(2026, 11, 2, 13)) == [
        ("ben", "11-01T13:00"),  # 08:00 EST: ben was next in the old order
        ("cat", "11-01T21:00"),  # 16:00 EST: the newcomer follows ben, as the file lists them
        ("ana", "11-02T05:00"),  # 00:00 EST
    ]


def test_a_change_not_yet_in_effect_is_replaced_not_stacked() -> None:
    first = change_rotation(LA, replace(LA, members=("ben", "cat")), LA_NOW)
    second = change_rotation(first, replace(LA, members=("ben", "cat", "dan")), LA_NOW + DAY / 4)

    assert second.earlier == LA
    assert second.since == utc(2026, 3, 9, 16)
    assert holders(second, utc(2026, 3, 9, 16), utc(2026, 3, 12, 16)) == [
        ("cat", "03-09T16:00"),
        ("dan", "03-10T16:00"),
        ("ben", "03-11T16:00"),
    ]


def test_a_change_taken_back_before_its_hand_off_leaves_the_rotation_as_it_was() -> None:
    pending = change_rotation(LA, replace(LA, members=("ben", "cat")), LA_NOW)
    assert change_rotation(pending, LA, LA_NOW + DAY / 4) == LA


def test_changes_stack_as_versions_and_each_keeps_its_own_past() -> None:
    first = change_rotation(LA, replace(LA, members=("ben", "cat")), LA_NOW)
    later = utc(2026, 3, 11, 19)  # cat's turn under the first change
    assert rotation_on_call(first, later) == "cat"
    second = change_rotation(first, replace(LA, members=("ana", "cat")), later)

    assert second.versions() == [LA, first, second]
    assert rotation_on_call(second, later) == "cat"
    assert rotation_on_call(second, LA_NOW) == "ben"
    assert rotation_on_call(second, utc(2026, 3, 7, 19)) == "ana"
    # ben was next and is gone: cat again (the next in the old order still a member).
    assert rotation_on_call(second, utc(2026, 3, 12, 19)) == "cat"


def test_a_rotation_that_has_not_started_changes_at_once() -> None:
    wanted = replace(LA, members=("cat", "ana"))
    assert change_rotation(LA, wanted, utc(2026, 2, 20)) == wanted


def test_a_masked_turn_still_hands_off() -> None:
    weekdays = replace(LA, days=frozenset({0, 1, 2, 3, 4}))
    saturday = utc(2026, 3, 7, 19)  # masked: nobody on call, but turn 6 (ana) runs
    assert rotation_on_call(weekdays, saturday) is None
    assert next_handoff(weekdays, saturday) == utc(2026, 3, 8, 16)  # 09:00 PDT


def test_next_handoff_before_the_first_turn_is_its_start() -> None:
    assert next_handoff(LA, utc(2026, 2, 1)) == utc(2026, 3, 1, 17)


def test_a_version_needs_a_start_after_the_earlier_one() -> None:
    first = change_rotation(LA, replace(LA, members=("ben", "cat")), LA_NOW)
    with pytest.raises(ValueError, match=r"since: .* must be after the earlier"):
        replace(LA, since=utc(2026, 3, 1), earlier=first)
    with pytest.raises(ValueError, match="needs a start"):
        replace(LA, earlier=LA)


def test_shifts_merge_across_a_version_boundary() -> None:
    """ben keeps the turn under way and is dealt the next one: one stretch on call."""
    changed = change_rotation(LA, replace(LA, members=("ben",)), LA_NOW)
    assert rotation_shifts(changed, utc(2026, 3, 8, 17), utc(2026, 3, 10, 16)) == [
        Shift("ben", utc(2026, 3, 8, 17), utc(2026, 3, 10, 16), "rotation:la")
    ]

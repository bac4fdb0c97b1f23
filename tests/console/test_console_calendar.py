"""The rotation calendar screen (key `c`) and the console's hand-off notices.

The desk follows the sun between Sydney and New York, and its weeks hold both daylight-saving
changes of 2026: Sydney springs forward on Sunday 4 October (02:00 -> 03:00), New York falls
back on Sunday 1 November (02:00 -> 01:00). Sydney days (08:00-20:00) alternate between ana and
ben; New York days (06:00-18:00) between cat and sam, with an 08:00 hand-off; between the two
there is an hour nobody covers. Pilot tests drive the console from the keyboard with a frozen
clock; the SVG snapshots show the week and the month at 80x24 and 160x48.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select
from textual.pilot import Pilot
from textual.widgets import Input, Static

from app.console import VigilApp, build_app
from app.console.screens.calendar import (
    CalendarScreen,
    OverrideDialog,
    build_days,
    month_days,
    person_order,
    shift_anchor,
    week_days,
)
from app.console.screens.dialogs import Confirm, TextPrompt
from app.console.screens.inbox import InboxScreen
from app.console.screens.queue import QueueScreen
from app.core.clock import FakeClock
from app.core.errors import BadInput
from app.delivery.local import UNAVAILABLE, DesktopOutcome
from app.rules.rotations import (
    RotationSpec,
    ScheduleSpec,
    change_rotation,
    parse_wall_time,
    wall_to_utc,
)
from app.services.cases import CaseService
from app.services.oncall import load_schedule
from app.services.shiftwork.calendar import OverrideService
from app.services.team.apply import apply_team
from app.services.team.parse import parse_team
from data.db import Database
from data.models import AuditRecord
from tests.console_harness import settle, snapshot_keys
from tests.factories import FOLLOW_THE_SUN_PEOPLE, add_policy
from widgets.calendar_view import (
    CalendarDay,
    CalendarView,
    DaySegment,
    entry_text,
    row_step,
    slot_segment,
    week_title,
)
from widgets.timefmt import viewer_zone

TEAM = (
    FOLLOW_THE_SUN_PEOPLE
    + """
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
members = ["cat", "sam"]
hours = "06:00-18:00"

[[schedule]]
name = "primary"
timezone = "Australia/Sydney"
layers = ["nyc", "syd"]
holiday_region = "AU-NSW"
holiday_cover = "sam"

[[schedule]]
name = "sydney-days"
timezone = "Australia/Sydney"
layers = ["syd"]

[[holiday]]
date = "2026-10-05"
name = "Labour Day"
region = "AU-NSW"
"""
)

SYDNEY = viewer_zone("Australia/Sydney")
NEW_YORK = viewer_zone("America/New_York")
UTC_ZONE = viewer_zone("UTC")
WIDE = (160, 48)
NARROW = (80, 24)
FRIDAY_BEFORE_FALL_BACK = datetime(2026, 10, 30, 15, 0, tzinfo=UTC)  # 11:00 in New York


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def build_desk(db: Database, clock: FakeClock) -> None:
    apply_team(db, parse_team(TEAM, "calendar-test.toml"), actor="sam", now=clock.now())
    add_policy(db, "standard", [(600, ["schedule:primary"])], route=["default"])


def spec(db: Database, name: str = "primary") -> ScheduleSpec:
    with db.read() as session:
        found = load_schedule(session, name)
    assert found is not None
    return found


def starts(day: CalendarDay) -> list[tuple[str | None, int]]:
    """Who begins a stretch on this day, and at which wall-clock minute."""
    return [(s.who, s.start) for s in day.segments if s.begins]


# --- from shifts to days ----------------------------------------------------------------------


def test_sydney_hand_off_stays_at_0800_across_the_spring_forward(db: Database) -> None:
    build_desk(db, FakeClock(at(9, 28, 0)))
    primary = spec(db)
    order = person_order(primary)
    week = week_days(date(2026, 10, 1))
    now = at(10, 1, 2)

    local = build_days(primary, week, SYDNEY, now, order)
    saturday, sunday = local[5], local[6]
    assert ("ben", 8 * 60) in starts(saturday)
    assert ("ana", 8 * 60) in starts(sunday)
    assert (saturday.hours, sunday.hours) == (24, 23)

    # In UTC the same hand-offs are an hour apart: 22:00 (AEST, +10) then 21:00 (AEDT, +11).
    utc = build_days(primary, week, UTC_ZONE, now, order)
    friday, saturday = utc[4], utc[5]
    assert ("ben", 22 * 60) in starts(friday)
    assert ("ana", 21 * 60) in starts(saturday)
    assert all(day.hours == 24 for day in utc)


def test_new_york_hand_off_stays_at_0800_across_the_fall_back(db: Database) -> None:
    build_desk(db, FakeClock(at(9, 28, 0)))
    primary = spec(db)
    order = person_order(primary)
    week = week_days(date(2026, 10, 30))
    now = FRIDAY_BEFORE_FALL_BACK

    local = build_days(primary, week, NEW_YORK, now, order)
    saturday, sunday = local[5], local[6]
    assert ("sam", 8 * 60) in starts(saturday)
    assert ("cat", 8 * 60) in starts(sunday)
    assert sunday.hours == 25
    assert local[4].today
    assert not saturday.today

    utc = build_days(primary, week, UTC_ZONE, now, order)
    assert ("sam", 12 * 60) in starts(utc[5])
    assert ("cat", 13 * 60) in starts(utc[6])


def test_days_tile_with_gaps_holidays_and_the_month_grid(db: Database) -> None:
    build_desk(db, FakeClock(at(9, 28, 0)))
    primary = spec(db)
    days = month_days(date(2026, 10, 15))
    assert (days[0], days[-1], len(days)) == (date(2026, 9, 28), date(2026, 11, 1), 35)
    month = build_days(
        primary, days, SYDNEY, at(10, 6, 0), person_order(primary), date(2026, 10, 1)
    )
    by_date = {day.day: day for day in month}
    assert not by_date[date(2026, 9, 30)].in_period
    assert by_date[date(2026, 10, 1)].in_period
    assert by_date[date(2026, 10, 6)].today
    labour_day = by_date[date(2026, 10, 5)]
    assert labour_day.holiday == "Labour Day"
    assert [(s.who, s.kind, s.start, s.end) for s in labour_day.segments] == [
        ("sam", "holiday", 0, 24 * 60)
    ]
    # New York's 06:00 start is 21:00 in Sydney (20:00 before Sydney's clocks change):
    # the hour after Sydney's day is a gap.
    tuesday = by_date[date(2026, 10, 6)]
    assert [(s.start, s.end) for s in tuesday.segments if s.who is None] == [(20 * 60, 21 * 60)]
    for day in month:  # every minute of every day is someone's or a gap, in order
        edges = [(s.start, s.end) for s in day.segments]
        assert edges[0][0] == 0
        assert edges[-1][1] == 24 * 60
        assert all(a[1] == b[0] for a, b in itertools.pairwise(edges))


def test_colours_follow_the_schedule_not_the_period(db: Database) -> None:
    build_desk(db, FakeClock(at(9, 28, 0)))
    assert person_order(spec(db)) == {"cat": 0, "sam": 1, "ana": 2, "ben": 3}
    assert person_order(spec(db, "sydney-days"), ["sam"]) == {"ana": 0, "ben": 1, "sam": 2}


def test_someone_who_left_a_rotation_keeps_a_colour_in_the_past_they_hold() -> None:
    """A past shift of a member since removed is theirs, never painted as a gap."""
    rotation = RotationSpec(
        "syd", "Australia/Sydney", timedelta(days=1), time(8), date(2026, 9, 28), ("ana", "ben")
    )
    # 1 October 2026 12:00 AEST, ben's turn (the fourth): he leaves from the next hand-off.
    changed = change_rotation(rotation, replace(rotation, members=("ana",)), at(10, 1, 2))
    primary = ScheduleSpec("primary", (changed,))
    order = person_order(primary)
    assert order == {"ana": 0, "ben": 1}
    week = build_days(primary, week_days(date(2026, 9, 28)), SYDNEY, at(10, 1, 2), order)
    assert ("ben", 8 * 60) in starts(week[1])  # Tuesday 29 September was ben's
    assert all(s.who is not None for day in week[1:] for s in day.segments)  # from Tuesday


def test_periods_move_by_weeks_and_months() -> None:
    assert shift_anchor(date(2026, 10, 30), "week", 1) == date(2026, 11, 6)
    assert shift_anchor(date(2026, 1, 31), "month", -1) == date(2025, 12, 1)
    assert shift_anchor(date(2026, 12, 31), "month", 1) == date(2027, 1, 1)
    assert week_title(date(2026, 10, 26), date(2026, 11, 1)) == "26 Oct - 1 Nov 2026"
    assert week_title(date(2026, 12, 28), date(2027, 1, 3)) == "28 Dec 2026 - 3 Jan 2027"


def test_wall_times_are_read_on_the_calendar_clock() -> None:
    assert parse_wall_time("From", "2026-10-31 09:00", NEW_YORK) == (at(10, 31, 13), "")
    assert parse_wall_time("From", "2026-11-01 09:00", NEW_YORK) == (at(11, 1, 14), "")
    assert parse_wall_time("From", "2026-11-01 01:30", NEW_YORK).at == at(11, 1, 5, 30)  # 1st
    assert parse_wall_time("From", "2026-10-31T09:00+00:00", NEW_YORK) == (at(10, 31, 9), "")
    # The clocks skip 02:00 to 03:00 that night: the time starts at the gap's end, as a
    # team file's does, by the one rule both use.
    gap = parse_wall_time("From", "2026-10-04 02:30", SYDNEY)
    assert gap == (wall_to_utc(datetime(2026, 10, 4, 2, 30), SYDNEY), "2026-10-04 02:30")
    assert gap.at == at(10, 3, 16)  # 03:00 AEDT
    with pytest.raises(BadInput, match=r"^To: expected a date and time such as"):
        parse_wall_time("To", "tomorrow", SYDNEY)


# --- the widget on its own --------------------------------------------------------------------


def test_a_row_shows_a_gap_before_anyone_and_a_change_before_the_holder() -> None:
    day = CalendarDay(
        date(2026, 10, 6),
        (
            DaySegment(0, 500, "ana", "rotation", 0, begins=False),
            DaySegment(500, 530, None, "gap", -1),
            DaySegment(530, 1440, "ben", "override", 1, ends=False),
        ),
    )
    assert slot_segment(day, 0, 60) == day.segments[0]
    assert slot_segment(day, 480, 540) == day.segments[1]  # the gap is never hidden
    assert slot_segment(day, 525, 585) == day.segments[1]
    assert slot_segment(day, 529, 600) == day.segments[1]
    assert slot_segment(day, 600, 660) == day.segments[2]
    assert [entry_text(s) for s in day.segments] == ["…08:20 ana", "08:20-08:50 gap", "◆08:50… ben"]
    assert [row_step(rows) for rows in (48, 42, 18, 7, 2)] == [30, 60, 120, 240, 480]


# --- the console ------------------------------------------------------------------------------


class NoDesktop:
    def notify(self, title: str, message: str) -> DesktopOutcome:
        return DesktopOutcome(UNAVAILABLE, "no notification backend")


@dataclass
class Console:
    app: VigilApp
    pilot: Pilot[Any]
    toasts: list[tuple[str, str]]
    bells: list[int]

    async def settle(self) -> None:
        await settle(self.app, self.pilot)

    async def press(self, *keys: str) -> None:
        for key in keys:
            await self.pilot.press(key)
            await self.settle()

    @property
    def calendar(self) -> CalendarScreen:
        screen = self.app.screen
        assert isinstance(screen, CalendarScreen)
        return screen

    def text(self) -> str:
        """What the calendar widget shows, as plain text."""
        return str(self.calendar.query_one(CalendarView).render())

    def said(self, text: str) -> list[tuple[str, str]]:
        return [(title, message) for title, message in self.toasts if text in message]


OpenConsole = Callable[..., Any]


@pytest.fixture
def open_console(db: Database, tmp_path: Path) -> OpenConsole:
    @asynccontextmanager
    async def opener(
        handle: str, clock: FakeClock, size: tuple[int, int] = WIDE, settings: str = ""
    ) -> AsyncIterator[Console]:
        settings_file = tmp_path / "console.toml"
        settings_file.write_text(settings, encoding="utf-8")
        app = build_app(
            db,
            clock,
            handle,
            engine=False,
            desktop=NoDesktop(),
            settings_file=settings_file,
            cursor_blink=False,
        )
        assert app is not None
        toasts: list[tuple[str, str]] = []
        bells: list[int] = []
        original = app.notify

        def notify(message: str, *, title: str = "", **kwargs: Any) -> None:
            toasts.append((title, message))
            original(message, title=title, **kwargs)

        app.notify = notify  # type: ignore[method-assign]
        app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
        async with app.run_test(size=size) as pilot:
            console = Console(app, pilot, toasts, bells)
            await console.settle()
            yield console

    return opener


@pytest.fixture
def desk(db: Database) -> FakeClock:
    clock = FakeClock(FRIDAY_BEFORE_FALL_BACK)
    build_desk(db, clock)
    return clock


async def test_c_opens_the_calendar_and_the_keys_move_through_it(
    desk: FakeClock, open_console: OpenConsole
) -> None:
    async with open_console("cat", desk) as console:
        await console.press("c")
        text = console.text()
        assert "primary (1/2)  ·  26 Oct - 1 Nov 2026  ·  times in America/New_York (my zone)" in (
            text
        )
        assert "Fri 30 Oct" in text
        assert "25h day" in text
        assert "▶11:00" in text  # the now-line, on New York's clock
        await console.press("m")
        assert "October 2026" in console.text()
        await console.press("n")
        assert "November 2026" in console.text()
        await console.press("p", "left")
        assert "September 2026" in console.text()
        await console.press("t")
        assert "October 2026" in console.text()
        await console.press("w")
        assert "26 Oct - 1 Nov 2026" in console.text()
        await console.press("right")
        assert "2-8 Nov 2026" in console.text()
        await console.press("right_square_bracket")
        assert "sydney-days (2/2)" in console.text()
        await console.press("right_square_bracket")
        assert "primary (1/2)" in console.text()
        await console.press("left_square_bracket")
        assert "sydney-days (2/2)" in console.text()
        await console.press("tab")
        assert "primary (1/2)" in console.text()
        await console.press("shift+tab")
        assert "sydney-days (2/2)" in console.text()
        await console.press("escape")
        assert isinstance(console.app.screen, QueueScreen)


async def test_calendar_keys_can_be_remapped_by_their_ids(
    desk: FakeClock, open_console: OpenConsole
) -> None:
    keymap = '[keymap]\n"calendar.next" = "j"\n"calendar.zone" = "Z"\n'
    async with open_console("cat", desk, settings=keymap) as console:
        assert not console.toasts  # both ids are known: no "Settings ignored"
        await console.press("c", "j")
        assert "2-8 Nov 2026" in console.text()
        await console.press("Z")
        assert "(schedule's zone)" in console.text()


async def test_the_zone_key_moves_the_hours_to_the_schedule_zone_then_utc(
    desk: FakeClock, open_console: OpenConsole
) -> None:
    """Sam takes over from cat at 08:00 in New York on Saturday (EDT) and cat from sam at
    08:00 on Sunday (EST): 23:00 that Saturday in Sydney, 12:00 and 13:00 in UTC."""
    async with open_console("cat", desk) as console:
        await console.press("c")
        text = console.text()
        assert "08:00 sam" in text
        assert "08:00 cat" in text
        assert "12:00 sam" not in text
        await console.press("z")
        text = console.text()
        assert "times in Australia/Sydney (schedule's zone)" in text
        assert "23:00 sam" in text
        await console.press("z")
        text = console.text()
        assert "times in UTC" in text
        assert "12:00 sam" in text
        assert "13:00 cat" in text
        assert "08:00 sam" not in text
        await console.press("z")
        assert "times in America/New_York (my zone)" in console.text()


async def test_a_supervisor_places_an_override_from_the_calendar(
    db: Database, desk: FakeClock, open_console: OpenConsole
) -> None:
    async with open_console("sam", desk) as console:
        await console.press("c", "o")
        dialog = console.app.screen
        assert isinstance(dialog, OverrideDialog)
        await console.press(*"ben")
        dialog.query_one("#override-from", Input).value = "2026-10-31 09:00"
        dialog.query_one("#override-to", Input).value = "2026-10-31 08:00"
        await console.press("enter")
        error = str(dialog.query_one("#override-error", Static).render())
        assert error.startswith("To: expected a time after From (Sat 31 Oct 2026 09:00 EDT")
        assert console.app.screen is dialog
        dialog.query_one("#override-to", Input).value = "2026-10-31 12:00"
        dialog.query_one("#override-reason", Input).value = "sam at the dentist"
        await console.press("enter")
        assert isinstance(console.app.screen, CalendarScreen)
        [(title, message)] = console.said("Override #")
        assert title == "Override placed"
        assert "ben from Sat 31 Oct 2026 09:00 EDT (13:00 UTC)" in message
        assert "◆09:00 ben" in console.text()
    with db.read() as session:
        record = session.exec(select(AuditRecord).where(AuditRecord.action == "override.add")).one()
    assert record.actor == "sam"
    assert (record.detail["who"], record.detail["from"], record.detail["to"]) == (
        "ben",
        "2026-10-31T13:00:00Z",
        "2026-10-31T16:00:00Z",
    )


async def test_an_override_from_a_time_the_clocks_skip_starts_when_they_skip_to(
    db: Database, desk: FakeClock, open_console: OpenConsole
) -> None:
    async with open_console("sam", desk) as console:
        await console.press("c", "o")
        dialog = console.app.screen
        assert isinstance(dialog, OverrideDialog)
        await console.press(*"ben")
        # New York's clocks go from 02:00 to 03:00 that night.
        dialog.query_one("#override-from", Input).value = "2027-03-14 02:30"
        dialog.query_one("#override-to", Input).value = "2027-03-14 06:00"
        await console.press("enter")
        assert isinstance(console.app.screen, CalendarScreen)
        [(_, message)] = console.said("Override #")
        assert "ben from Sun 14 Mar 2027 03:00 EDT (07:00 UTC)" in message
        assert (
            "2027-03-14 02:30 is skipped by the clocks in America/New_York: it starts at "
            "Sun 14 Mar 2027 03:00 EDT (07:00 UTC)"
        ) in message
    with db.read() as session:
        record = session.exec(select(AuditRecord).where(AuditRecord.action == "override.add")).one()
    assert (record.detail["from"], record.detail["to"]) == (
        "2027-03-14T07:00:00Z",
        "2027-03-14T10:00:00Z",
    )


async def test_a_supervisor_removes_overrides_from_the_calendar(
    db: Database, desk: FakeClock, open_console: OpenConsole
) -> None:
    service = OverrideService(db, desk)
    now = desk.now()
    soon = service.add("sam", schedule="primary", who="ben", start=now + timedelta(hours=1),
                       end=now + timedelta(hours=3))  # fmt: skip
    later = service.add("sam", schedule="primary", who="ben", start=now + timedelta(days=1),
                        end=now + timedelta(days=1, hours=2))  # fmt: skip
    desk.advance(hours=2)  # the first is under way
    async with open_console("sam", desk) as console:
        await console.press("c", "O")
        prompt = console.app.screen
        assert isinstance(prompt, TextPrompt)
        assert f"#{soon.id}  ben  Fri 30 Oct 2026 12:00 EDT (16:00 UTC) to" in prompt.prompt
        assert f"#{later.id}  ben  Sat 31 Oct 2026 11:00 EDT (15:00 UTC) to" in prompt.prompt
        await console.press(*"99", "enter")
        [(_, refused)] = console.said("no override #99")
        assert "nothing was removed" in refused
        await console.press("O", *str(soon.id), "enter")
        [(title, _)] = console.said(f"Override #{soon.id} on primary ended now")
        assert title == "Override removed"
        await console.press("O", "#", *str(later.id), "enter")
        assert console.said(f"Override #{later.id} on primary removed")
        await console.press("O")
        assert console.said("primary has no override under way or to come")
    with db.read() as session:
        removed = session.exec(
            select(AuditRecord).where(AuditRecord.action == "override.remove")
        ).all()
    assert [(r.actor, r.detail["id"], r.detail["ended_early"]) for r in removed] == [
        ("sam", soon.id, True),
        ("sam", later.id, False),
    ]


async def test_an_override_placed_or_removed_elsewhere_shows_at_the_next_poll(
    db: Database, desk: FakeClock, open_console: OpenConsole
) -> None:
    """What the screen's 0.5 s timer does is called here: another console or `vigil override`
    changes the schedule, and the open calendar shows it without being reopened."""
    async with open_console("cat", desk) as console:
        await console.press("c")
        assert "◆09:00 ben" not in console.text()
        computed = console.calendar.generation
        console.calendar.check_changes()
        await console.settle()
        assert console.calendar.generation == computed  # nothing changed: nothing recomputed
        service = OverrideService(db, desk)
        placed = service.add("sam", schedule="primary", who="ben", start=at(10, 31, 13),
                             end=at(10, 31, 16))  # fmt: skip
        console.calendar.check_changes()
        await console.settle()
        assert "◆09:00 ben" in console.text()
        service.remove("sam", placed.id)
        console.calendar.check_changes()
        await console.settle()
        assert "◆09:00 ben" not in console.text()


async def test_a_specialist_is_told_only_supervisors_remove_overrides(
    db: Database, desk: FakeClock, open_console: OpenConsole
) -> None:
    async with open_console("ana", desk) as console:
        await console.press("c", "O")
        assert isinstance(console.app.screen, CalendarScreen)
        [(title, _)] = console.said("Only supervisors and admins remove overrides")
        assert title == "Not allowed"


async def test_a_specialist_is_told_only_supervisors_place_overrides(
    db: Database, desk: FakeClock, open_console: OpenConsole
) -> None:
    async with open_console("ana", desk) as console:
        await console.press("c", "o")
        assert isinstance(console.app.screen, CalendarScreen)
        [(title, message)] = console.said("Only supervisors and admins place overrides")
        assert title == "Not allowed"
        assert "you are a specialist" in message
        assert "offer it as a swap with s" in message
    with db.read() as session:
        assert (
            session.exec(select(AuditRecord).where(AuditRecord.action == "override.add")).all()
            == []
        )


async def test_hand_off_notices_ring_once_before_the_shift_and_after_it(
    db: Database, open_console: OpenConsole
) -> None:
    """Ana goes on at 08:00 Sydney on Sunday 1 November (21:00 UTC on Saturday), on both
    schedules; the desk's lead is 30 minutes. She inherits the unassigned case."""
    clock = FakeClock(at(10, 31, 20, 40))
    build_desk(db, clock)
    ref = (
        CaseService(db, clock)
        .open_case("sam", title="Welfare check", category="edr", severity=2)
        .ref
    )
    async with open_console("ana", clock) as console:
        going_on = [toast for toast in console.toasts if toast[0] == "You go on call"]
        assert [message.split(" at ")[0] for _, message in going_on] == [
            "You go on call for primary",
            "You go on call for sydney-days",
        ]
        assert "Sun 01 Nov 2026 08:00 AEDT (Sat 31 Oct 21:00 UTC)" in going_on[0][1]
        assert f"You inherit 1 open case: {ref}." in going_on[0][1]
        assert console.bells == [1]

        console.app.check_handoffs()
        await console.settle()
        assert len(console.toasts) == 2
        assert console.bells == [1]

        clock.set(at(11, 1, 9, 5))  # 20:05 in Sydney: the shift ended at 20:00
        console.app.check_handoffs()
        await console.settle()
        ended = [message for title, message in console.toasts if title == "Your shift ended"]
        assert [message.split(" ended")[0] for message in ended] == [
            "Your shift on primary",
            "Your shift on sydney-days",
        ]
        assert console.bells == [1, 1]


# --- snapshots --------------------------------------------------------------------------------

SNAPSHOT_NOW = datetime(2026, 10, 7, 0, 30, tzinfo=UTC)  # Wednesday 11:30 in Sydney
SnapCompare = Callable[..., bool]


@pytest.fixture
def snapshot_app(db: Database, tmp_path: Path) -> VigilApp:
    """Ana's console in the week after Sydney's clocks went forward: Labour Day on Monday
    (held by the holiday cover), an override on Thursday, an hour's gap each evening."""
    clock = FakeClock(SNAPSHOT_NOW)
    build_desk(db, clock)
    OverrideService(db, clock).add(
        "sam",
        schedule="primary",
        who="ben",
        start=datetime(2026, 10, 8, 12, 0, tzinfo=SYDNEY),
        end=datetime(2026, 10, 8, 16, 0, tzinfo=SYDNEY),
        reason="ana at training",
    )
    app = build_app(
        db,
        clock,
        "ana",
        engine=False,
        desktop=NoDesktop(),
        settings_file=tmp_path / "no-settings.toml",
        cursor_blink=False,
    )
    assert app is not None
    return app


def test_week_wide(snap_compare: SnapCompare, snapshot_app: VigilApp) -> None:
    """The week hour by hour: a colour per person, Labour Day's cover (★), the override
    (◆), the evening gaps in red, and the now-line at Wednesday 11:30."""
    assert snap_compare(snapshot_app, terminal_size=WIDE, run_before=snapshot_keys("c"))


def test_week_narrow(snap_compare: SnapCompare, snapshot_app: VigilApp) -> None:
    """At 80x24 a row is two hours; a change inside a row names its time."""
    assert snap_compare(snapshot_app, terminal_size=NARROW, run_before=snapshot_keys("c"))


def test_month_wide(snap_compare: SnapCompare, snapshot_app: VigilApp) -> None:
    """October day by day: each stretch with its hours, gaps in red, the 23-hour Sunday,
    Labour Day named, today highlighted."""
    assert snap_compare(snapshot_app, terminal_size=WIDE, run_before=snapshot_keys("c", "m"))


def test_month_narrow(snap_compare: SnapCompare, snapshot_app: VigilApp) -> None:
    """At 80x24 each day is a strip of colour with the gaps and longest stretches below."""
    assert snap_compare(snapshot_app, terminal_size=NARROW, run_before=snapshot_keys("c", "m"))


async def test_a_swap_is_offered_from_the_calendar_taken_and_approved_from_inboxes(
    db: Database, desk: FakeClock, open_console: OpenConsole
) -> None:
    """cat, on call this afternoon, offers two hours to ben; ben takes it from his inbox and
    sam approves it from hers: each step through the swap service, audited as its person."""
    async with open_console("cat", desk) as console:
        await console.press("c", "s")
        dialog = console.app.screen
        assert isinstance(dialog, OverrideDialog)
        assert dialog.swap
        await console.press(*"ben")
        dialog.query_one("#override-from", Input).value = "2026-10-30 14:00"
        dialog.query_one("#override-to", Input).value = "2026-10-30 16:00"
        dialog.query_one("#override-reason", Input).value = "school pick-up"
        await console.press("enter")
        await console.settle()
        [(title, message)] = console.said("Swap #")
        assert title == "Swap offered"
        assert "to ben: Fri 30 Oct 2026 14:00 EDT" in message
    for handle, verb, done in (("ben", "Take", "taken"), ("sam", "Approve", "approved")):
        async with open_console(handle, desk) as console:
            await console.press("i")
            inbox = console.app.screen
            assert isinstance(inbox, InboxScreen)
            await console.settle()
            lines = [
                inbox.inbox.render_line(y).text for y in range(1, len(inbox.inbox.rows_shown) + 1)
            ]
            [line] = [row for row in lines if "swap" in row.lower()]
            assert f"{verb} swap" in line
            await console.press("enter")
            assert isinstance(console.app.screen, Confirm)
            await console.press("y")
            await console.settle()
            [(title, message)] = console.said("Swap #1")
            assert message.startswith(f"Swap #1 {done}"), message
    with db.read() as session:
        records = session.exec(
            select(AuditRecord.actor, AuditRecord.action)
            .where(col(AuditRecord.action).like("swap.%"))
            .order_by(col(AuditRecord.seq))
        ).all()
    assert [tuple(r) for r in records][:3] == [
        ("cat", "swap.request"),
        ("ben", "swap.take"),
        ("sam", "swap.approve"),
    ]

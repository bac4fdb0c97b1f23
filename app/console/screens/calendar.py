"""The rotation calendar (key `c` on the queue): a week or a month of one schedule.

Shifts are computed in UTC by `app.rules.rotations` in a thread worker, cut into the days of
the chosen zone (the person's own, the schedule's, or UTC) and handed to the widget as
plain views, with every time already on that zone's wall clock. Supervisors and admins
place an override from here; anyone else is told why they cannot.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, cast
from zoneinfo import ZoneInfo

from textual import events, on, work
from textual.app import ComposeResult, CSSPathType
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.suggester import SuggestFromList
from textual.widgets import Footer, Input, Label, Static
from textual.worker import Worker, WorkerState, get_current_worker

from app.console.desk import (
    POLL_SECONDS,
    Profile,
    latest_audit_seq,
    read_overrides,
    read_schedules,
)
from app.console.failures import describe_failure
from app.console.host import COMFORTABLE_WIDTH
from app.console.messages import (
    DeskChangedSince,
    OverridePlaced,
    OverrideRemoved,
    OverridesListed,
    SwapOffered,
)
from app.console.screens.dialogs import CANCEL, TextPrompt
from app.core.errors import BadInput
from app.core.times import shown
from app.rules.rotations import (
    WALL_FORMAT,
    ScheduleSpec,
    coverage_gaps,
    parse_wall_time,
    schedule_shifts,
)
from app.services.shiftwork.calendar import OverrideService
from app.services.shiftwork.swaps import SwapService
from widgets.calendar_view import (
    DAY_MINUTES,
    CalendarDay,
    CalendarHeading,
    CalendarMonthView,
    CalendarView,
    CalendarViewData,
    CalendarWeekView,
    DaySegment,
    LegendEntry,
    SegmentKind,
)
from widgets.timefmt import UTC_ZONE, viewer_zone

if TYPE_CHECKING:
    from app.console.host import ConsoleHost
    from data.db import Database

CALENDAR_TCSS = Path(__file__).resolve().parents[3] / "themes" / "calendar.tcss"
REFRESH_SECONDS = 60.0
"""How often the open calendar is computed again for the now-line; a change of the desk
elsewhere (an override, a swap, a team file) shows at the next poll (`check_changes`)."""
ZoneChoice = Literal["mine", "schedule", "utc"]
ZONE_CHOICES: tuple[ZoneChoice, ...] = ("mine", "schedule", "utc")
ZONE_ROLES: dict[ZoneChoice, str] = {
    "mine": "my zone",
    "schedule": "schedule's zone",
    "utc": "UTC",
}
Mode = Literal["week", "month"]
_DAY = timedelta(days=1)


# --- from shifts to views ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Piece:
    """A shift or a coverage gap (who None), in UTC."""

    who: str | None
    start: datetime
    end: datetime
    kind: SegmentKind


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant at which `day` begins on the wall clock of `zone`."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def wall_minute(at: datetime, zone: ZoneInfo) -> int:
    local = at.astimezone(zone)
    return local.hour * 60 + local.minute


def person_order(spec: ScheduleSpec, extra: Iterable[str] = ()) -> dict[str, int]:
    """Each person's ordinal on the schedule, which picks their colour: layer members in
    order (a layer's earlier versions after its current one, so someone who has left keeps
    a colour in the past they hold), then the holiday cover, then anyone holding an
    override. It does not depend on the period shown, so a person keeps their colour from
    one week to the next."""
    order: dict[str, int] = {}
    people = [
        member
        for layer in spec.layers
        for version in reversed(layer.versions())
        for member in version.members
    ]
    if spec.holiday_cover:
        people.append(spec.holiday_cover)
    people.extend(override.who for override in spec.overrides)
    people.extend(extra)
    for handle in people:
        order.setdefault(handle, len(order))
    return order


def _kind(source: str) -> SegmentKind:
    if source == "override":
        return "override"
    if source.startswith("holiday:"):
        return "holiday"
    return "rotation"


def _pieces(spec: ScheduleSpec, start: datetime, end: datetime) -> list[_Piece]:
    """Shifts and gaps of [start, end), looked at a day wider either side so that a
    shift's `begins` and `ends` are true ones, not the edges of the window."""
    lo, hi = start - _DAY, end + _DAY
    pieces = [_Piece(s.who, s.start, s.end, _kind(s.source)) for s in schedule_shifts(spec, lo, hi)]
    pieces.extend(_Piece(None, a, b, "gap") for a, b in coverage_gaps(spec, lo, hi))
    return sorted(pieces, key=lambda piece: piece.start)


def _segments(
    pieces: Sequence[_Piece], lo: datetime, hi: datetime, zone: ZoneInfo, order: dict[str, int]
) -> tuple[DaySegment, ...]:
    """The pieces within one local day [lo, hi), in wall-clock minutes of `zone`."""
    out = []
    for piece in pieces:
        if piece.end <= lo or piece.start >= hi:
            continue
        opens, closes = max(piece.start, lo), min(piece.end, hi)
        first = wall_minute(opens, zone) if opens > lo else 0
        last = wall_minute(closes, zone) if closes < hi else DAY_MINUTES
        if last <= first:
            # Within the repeated hour of the day the clocks go back: keep its real length.
            minutes = math.ceil((closes - opens).total_seconds() / 60)
            last = min(DAY_MINUTES, first + max(1, minutes))
        person = order.get(piece.who, -1) if piece.who is not None else -1
        out.append(
            DaySegment(
                first,
                last,
                piece.who,
                piece.kind,
                person,
                begins=piece.start >= lo,
                ends=piece.end <= hi,
            )
        )
    return tuple(out)


def _holidays(spec: ScheduleSpec) -> dict[date, str]:
    """The schedule's holidays by date (those of its region), first name of a date kept."""
    if spec.holiday_region is None:
        return {}
    region = spec.holiday_region.casefold()
    names: dict[date, str] = {}
    for holiday in spec.holidays:
        if holiday.region.casefold() == region:
            names.setdefault(holiday.day, holiday.name)
    return names


def build_days(
    spec: ScheduleSpec,
    days: Sequence[date],
    zone: ZoneInfo,
    now: datetime,
    order: dict[str, int],
    month: date | None = None,
) -> tuple[CalendarDay, ...]:
    """Consecutive local `days` of `zone` with who is on call through each; with `month`
    (its first day), days of other months are marked as outside the period."""
    bounds = [local_midnight(day, zone) for day in days]
    bounds.append(local_midnight(days[-1] + _DAY, zone))
    pieces = _pieces(spec, bounds[0], bounds[-1])
    holidays = _holidays(spec)
    today = now.astimezone(zone).date()
    return tuple(
        CalendarDay(
            day=day,
            segments=_segments(pieces, lo, hi, zone, order),
            holiday=holidays.get(day),
            today=day == today,
            in_period=month is None or (day.year, day.month) == (month.year, month.month),
            hours=round((hi - lo).total_seconds() / 3600),
        )
        for day, lo, hi in zip(days, bounds, bounds[1:], strict=False)
    )


def _legend(
    days: Iterable[CalendarDay], order: dict[str, int], names: dict[str, str]
) -> tuple[LegendEntry, ...]:
    """Everyone on call in the period, in the schedule's order."""
    seen = {s.who for day in days for s in day.segments if s.who is not None and s.who in order}
    return tuple(
        LegendEntry(handle, names.get(handle, handle), order[handle])
        for handle in sorted(seen, key=order.__getitem__)
    )


def week_days(anchor: date) -> list[date]:
    """The Monday-to-Sunday week holding `anchor`."""
    monday = anchor - timedelta(days=anchor.weekday())
    return [monday + timedelta(days=offset) for offset in range(7)]


def month_days(anchor: date) -> list[date]:
    """Whole weeks, Monday first, covering the month of `anchor`."""
    first = anchor.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - _DAY
    start = first - timedelta(days=first.weekday())
    end = last + timedelta(days=6 - last.weekday())
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


def week_view(
    spec: ScheduleSpec,
    heading: CalendarHeading,
    anchor: date,
    zone: ZoneInfo,
    now: datetime,
    names: dict[str, str],
) -> CalendarWeekView:
    order = person_order(spec)
    days = build_days(spec, week_days(anchor), zone, now, order)
    now_day = next((index for index, day in enumerate(days) if day.today), None)
    return CalendarWeekView(
        heading=heading,
        days=days,
        legend=_legend(days, order, names),
        now_day=now_day,
        now_minute=wall_minute(now, zone),
    )


def month_view(
    spec: ScheduleSpec,
    heading: CalendarHeading,
    anchor: date,
    zone: ZoneInfo,
    now: datetime,
    names: dict[str, str],
) -> CalendarMonthView:
    order = person_order(spec)
    first = anchor.replace(day=1)
    days = build_days(spec, month_days(anchor), zone, now, order, month=first)
    weeks = tuple(days[index : index + 7] for index in range(0, len(days), 7))
    return CalendarMonthView(
        heading=heading, month=first, weeks=weeks, legend=_legend(days, order, names)
    )


def shift_anchor(anchor: date, mode: Mode, steps: int) -> date:
    """The anchor `steps` weeks (or months, to their first day) away."""
    if mode == "week":
        return anchor + timedelta(weeks=steps)
    months = anchor.year * 12 + anchor.month - 1 + steps
    return date(months // 12, months % 12 + 1, 1)


def zone_for(choice: ZoneChoice, profile: Profile, spec: ScheduleSpec | None) -> ZoneInfo:
    if choice == "mine":
        return viewer_zone(profile.timezone)
    if choice == "schedule" and spec is not None:
        return viewer_zone(spec.zone)
    return UTC_ZONE


def default_schedule(schedules: Sequence[ScheduleSpec], handle: str) -> ScheduleSpec:
    """The first schedule `handle` takes turns on, else the first one."""
    for spec in schedules:
        if any(handle in layer.members for layer in spec.layers):
            return spec
    return schedules[0]


@dataclass(frozen=True, slots=True)
class CalendarRequest:
    """What the screen wants shown; `schedule` None lets the person's own be chosen."""

    generation: int
    schedule: str | None
    mode: Mode
    anchor: date
    zone_choice: ZoneChoice


@dataclass(frozen=True, slots=True)
class CalendarResult:
    """The computed view (None when the desk has no schedules) and what it settled on."""

    generation: int
    schedules: tuple[str, ...]
    schedule: str | None
    zone: str
    view: CalendarViewData | None
    audit_seq: int  # the audit chain's head when the schedules were read


@dataclass
class CalendarComputed(Message, bubble=False):
    """A view the calendar worker built."""

    result: CalendarResult


def compute_calendar(
    db: Database, profile: Profile, request: CalendarRequest, now: datetime
) -> CalendarResult:
    """Read the schedules and build the requested view. Blocks on the database."""
    read = read_schedules(db)
    seq, schedules, names = read.audit_seq, read.schedules, read.names
    titles = tuple(spec.name for spec in schedules)
    if not schedules:
        zone = zone_for(request.zone_choice, profile, None)
        return CalendarResult(request.generation, titles, None, zone.key, None, seq)
    spec = next(
        (s for s in schedules if s.name == request.schedule),
        default_schedule(schedules, profile.handle),
    )
    zone = zone_for(request.zone_choice, profile, spec)
    heading = CalendarHeading(
        schedule=spec.name,
        position=titles.index(spec.name) + 1,
        count=len(titles),
        zone=zone.key,
        zone_role=ZONE_ROLES[request.zone_choice],
    )
    build = week_view if request.mode == "week" else month_view
    view = build(spec, heading, request.anchor, zone, now, names)
    return CalendarResult(request.generation, titles, spec.name, zone.key, view, seq)


# --- placing an override ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OverrideRequest:
    """An override the dialog checked: `who` on `schedule` from `start` to `end` (UTC)."""

    schedule: str
    who: str
    start: datetime
    end: datetime
    reason: str
    skipped: tuple[tuple[str, str], ...] = ()
    """(field, what was typed) for each time the clocks skip, read as the gap's end."""


class OverrideDialog(ModalScreen[OverrideRequest | None]):
    """Who, from, to and why; times on the wall clock the calendar shows. As a swap's
    offer (`swap`): with whom (anyone when empty), from, to and a note."""

    CSS_PATH: ClassVar[CSSPathType | None] = [CALENDAR_TCSS]
    BINDINGS: ClassVar[list[BindingType]] = [CANCEL]

    def __init__(
        self,
        schedule: str,
        zone: ZoneInfo,
        now: datetime,
        *,
        handles: Sequence[str] = (),
        cursor_blink: bool = True,
        swap: bool = False,
    ) -> None:
        super().__init__()
        self.schedule = schedule
        self.zone = zone
        self.now = now
        self.handles = tuple(handles)
        self.cursor_blink = cursor_blink
        self.swap = swap

    def compose(self) -> ComposeResult:
        next_hour = (self.now + timedelta(hours=1)).astimezone(self.zone)
        suggested = next_hour.replace(minute=0, second=0, microsecond=0)
        fields = (
            (
                ("who", "With", "", "a responder's handle, or empty for anyone"),
                ("from", "From", f"{suggested:{WALL_FORMAT}}", "YYYY-MM-DD HH:MM"),
                ("to", "To", "", "YYYY-MM-DD HH:MM"),
                ("reason", "Note", "", "for whoever takes it (optional)"),
            )
            if self.swap
            else (
                ("who", "Who", "", "a responder's handle"),
                ("from", "From", f"{suggested:{WALL_FORMAT}}", "YYYY-MM-DD HH:MM"),
                ("to", "To", "", "YYYY-MM-DD HH:MM"),
                ("reason", "Reason", "", "why they cover (optional)"),
            )
        )
        title = (
            f"Offer your shift on {self.schedule}"
            if self.swap
            else f"Add an override to {self.schedule}"
        )
        with Vertical(classes="dialog", id="override-dialog"):
            yield Static(title, classes="dialog-title", markup=False)
            yield Static(
                f"Times on the wall clock of {self.zone.key}, as YYYY-MM-DD HH:MM; "
                "add an offset such as +11:00 for another zone.",
                classes="dialog-prompt",
                markup=False,
            )
            for ident, label, value, placeholder in fields:
                with Horizontal(classes="override-row"):
                    yield Label(label, classes="override-label")
                    yield Input(
                        value=value,
                        placeholder=placeholder,
                        suggester=(
                            SuggestFromList(self.handles, case_sensitive=False)
                            if ident == "who" and self.handles
                            else None
                        ),
                        compact=True,
                        id=f"override-{ident}",
                    )
            yield Static("", id="override-error", classes="dialog-error", markup=False)
            yield Static(
                "Tab: next field   Enter: place it   Escape: cancel",
                classes="dialog-hint",
                markup=False,
            )

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = self.cursor_blink
        self.query_one("#override-who", Input).focus()

    def _value(self, ident: str) -> str:
        return self.query_one(f"#override-{ident}", Input).value.strip()

    def check(self) -> OverrideRequest:
        """The request the fields make, or BadInput naming the field that is wrong."""
        who = self._value("who")
        field = "With" if self.swap else "Who"
        if not who and not self.swap:
            raise BadInput(field, "expected the handle of the person who covers")
        if who and self.handles and who not in self.handles:
            raise BadInput(
                field, f"expected an active responder ({', '.join(self.handles)}), got {who!r}"
            )
        start_time = parse_wall_time("From", self._value("from"), self.zone)
        end_time = parse_wall_time("To", self._value("to"), self.zone)
        start, end = start_time.at, end_time.at
        if end <= start:
            raise BadInput("To", f"expected a time after From ({shown(start, self.zone)})")
        if end <= self.now:
            raise BadInput("To", f"expected a time after now ({shown(self.now, self.zone)})")
        skipped = tuple(
            (field, typed)
            for field, typed in (("From", start_time.skipped), ("To", end_time.skipped))
            if typed
        )
        return OverrideRequest(self.schedule, who, start, end, self._value("reason"), skipped)

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            request = self.check()
        except BadInput as problem:
            self.query_one("#override-error", Static).update(str(problem))
            field = {"Who": "who", "With": "who", "From": "from", "To": "to"}.get(problem.field)
            if field:
                self.query_one(f"#override-{field}", Input).focus()
            return
        self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)


# --- messages ---------------------------------------------------------------------------------


# --- the screen -------------------------------------------------------------------------------


class CalendarScreen(Screen[None]):
    """One schedule at a time, a week or a month, on a clock the person chooses."""

    CSS_PATH: ClassVar[CSSPathType | None] = [CALENDAR_TCSS]
    AUTO_FOCUS = ""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Queue", id="calendar.back", tooltip="Back to the queue"),
        Binding(
            "left,p",
            "move(-1)",
            "Prev",
            id="calendar.previous",
            tooltip="The previous week or month",
        ),
        Binding("right,n", "move(1)", "Next", id="calendar.next", tooltip="The next week or month"),
        Binding(
            "t",
            "today",
            "Today",
            show=False,
            id="calendar.today",
            tooltip="The week or month of today",
        ),
        Binding("w", "mode('week')", "Week", id="calendar.week", tooltip="A week, hour by hour"),
        Binding("m", "mode('month')", "Month", id="calendar.month", tooltip="A month, day by day"),
        Binding(
            "right_square_bracket,tab",
            "schedule(1)",
            "Schedule",
            id="calendar.next_schedule",
            tooltip="Show the next schedule",
        ),
        Binding(
            "left_square_bracket,shift+tab",
            "schedule(-1)",
            "Previous schedule",
            show=False,
            id="calendar.previous_schedule",
            tooltip="Show the previous schedule",
        ),
        Binding(
            "z",
            "zone",
            "Zone",
            id="calendar.zone",
            tooltip="Show the hours in my zone, then the schedule's zone, then UTC",
        ),
        Binding(
            "o",
            "add_override",
            "Override",
            id="calendar.override",
            tooltip="Put someone on call over the schedule for a while (supervisors)",
        ),
        Binding(
            "s",
            "offer_swap",
            "Swap",
            id="calendar.swap",
            tooltip="Offer part of your own shift on the schedule to someone, or to anyone",
        ),
        Binding(
            "O",
            "remove_override",
            "Remove override",
            show=False,
            id="calendar.remove_override",
            tooltip="Take away an override of the schedule; one under way ends now (supervisors)",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0
        self.schedule: str | None = None
        self.schedules: tuple[str, ...] = ()
        self.mode: Mode = "week"
        self.zone_choice: ZoneChoice = "mine"
        self.zone: ZoneInfo = UTC_ZONE
        self.shown_date: date = date.min
        self.loaded = False
        self.shown_seq: int | None = None  # the audit head the shown view was read at

    @property
    def vigil(self) -> ConsoleHost:
        return cast("ConsoleHost", self.app)

    @property
    def calendar(self) -> CalendarView:
        return self.query_one("#calendar", CalendarView)

    def compose(self) -> ComposeResult:
        yield CalendarView(id="calendar")
        yield Footer()

    def on_mount(self) -> None:
        self.zone = viewer_zone(self.vigil.profile.timezone)
        self.shown_date = self._today()
        self.refresh_calendar()
        self.set_interval(REFRESH_SECONDS, self.refresh_calendar, name="calendar refresh")
        self.set_interval(POLL_SECONDS, self.check_changes, name="calendar changes")

    def on_resize(self, event: events.Resize) -> None:
        """As on the queue: a narrow terminal packs the footer so every key shows."""
        footer = self.query_one(Footer)
        footer.compact = event.size.width < COMFORTABLE_WIDTH
        footer.show_command_palette = event.size.width >= COMFORTABLE_WIDTH

    def _today(self) -> date:
        return self.vigil.clock.now().astimezone(self.zone).date()

    # ----------------------------------------------------------------- computing

    def refresh_calendar(self) -> None:
        """Compute the view again as the screen's choices now stand."""
        self.generation += 1
        request = CalendarRequest(
            self.generation, self.schedule, self.mode, self.shown_date, self.zone_choice
        )
        self._compute(request)

    @work(thread=True, name="calendar", group="calendar", exclusive=True, exit_on_error=False)
    def _compute(self, request: CalendarRequest) -> None:
        app = self.vigil
        result = compute_calendar(app.db, app.profile, request, app.clock.now())
        if not get_current_worker().is_cancelled:
            self.post_message(CalendarComputed(result))

    def check_changes(self) -> None:
        """Whether the desk changed since the view was read (an override placed or removed
        at another console or the command line, a swap, a team file): compute it again
        if so."""
        busy = any(
            w.group in ("calendar", "calendar-changes") and not w.is_finished for w in self.workers
        )
        if self.shown_seq is not None and not busy:
            self._read_changes()

    @work(thread=True, name="calendar changes", group="calendar-changes", exit_on_error=False)
    def _read_changes(self) -> None:
        self.post_message(DeskChangedSince(latest_audit_seq(self.vigil.db)))

    def on_desk_changed_since(self, message: DeskChangedSince) -> None:
        if message.audit_seq != self.shown_seq:
            self.refresh_calendar()

    def on_calendar_computed(self, message: CalendarComputed) -> None:
        result = message.result
        if result.generation != self.generation:
            return
        self.loaded = True
        self.shown_seq = result.audit_seq
        self.schedules = result.schedules
        self.schedule = result.schedule
        self.zone = viewer_zone(result.zone)
        if result.view is None:
            self.calendar.show_message(
                "This desk has no schedules yet: declare them in the team file and apply it "
                "with `vigil team apply FILE.toml`."
            )
        else:
            self.calendar.show(result.view)

    # ----------------------------------------------------------------- actions

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_move(self, steps: int) -> None:
        self.shown_date = shift_anchor(self.shown_date, self.mode, steps)
        self.refresh_calendar()

    def action_today(self) -> None:
        self.shown_date = self._today()
        self.refresh_calendar()

    def action_mode(self, mode: Mode) -> None:
        if mode != self.mode:
            self.mode = mode
            self.refresh_calendar()

    def action_schedule(self, steps: int) -> None:
        if len(self.schedules) < 2 or self.schedule not in self.schedules:
            return
        position = self.schedules.index(self.schedule)
        self.schedule = self.schedules[(position + steps) % len(self.schedules)]
        self.refresh_calendar()

    def action_zone(self) -> None:
        position = ZONE_CHOICES.index(self.zone_choice)
        self.zone_choice = ZONE_CHOICES[(position + 1) % len(ZONE_CHOICES)]
        self.refresh_calendar()

    def _may_change_overrides(self, verb: str) -> bool:
        """Whether this person may `verb` overrides (place, remove) on a shown schedule;
        if not, say why."""
        profile = self.vigil.profile
        if not profile.supervising:
            self.notify(
                f"Only supervisors and admins {verb} overrides; you are a {profile.role}. "
                "To hand over your own shift, offer it as a swap with s.",
                title="Not allowed",
                severity="error",
                markup=False,
            )
            return False
        if self.schedule is None:
            self.notify(
                f"This desk has no schedule to {verb} an override on."
                if self.loaded
                else "The calendar is still loading; try again in a moment.",
                severity="warning",
            )
            return False
        return True

    def action_add_override(self) -> None:
        if self._may_change_overrides("place") and self.schedule is not None:
            self._ask_window(self.schedule, self._place_override, swap=False)

    def _ask_window(
        self, schedule: str, then: Callable[[OverrideRequest], object], *, swap: bool
    ) -> None:
        """Who, from when, until when and why, on this calendar's clock; then `then`. A
        swap is offered to someone other than the one who offers it."""

        def chosen(request: OverrideRequest | None) -> None:
            if request is not None:
                then(request)

        mine = self.vigil.profile.handle
        self.app.push_screen(
            OverrideDialog(
                schedule,
                self.zone,
                self.vigil.clock.now(),
                handles=[h for h in self.vigil.handles if not swap or h != mine],
                cursor_blink=self.vigil.cursor_blink,
                swap=swap,
            ),
            chosen,
        )

    @work(thread=True, name="place override", group="calendar-override", exit_on_error=False)
    def _place_override(self, request: OverrideRequest) -> None:
        app = self.vigil
        view = OverrideService(app.db, app.clock).add(
            app.profile.handle,
            schedule=request.schedule,
            who=request.who,
            start=request.start,
            end=request.end,
            reason=request.reason,
        )
        self.post_message(OverridePlaced(view, request.skipped))

    def on_override_placed(self, message: OverridePlaced) -> None:
        view = message.view
        skipped = "".join(
            f". {typed} is skipped by the clocks in {self.zone.key}: it "
            + (f"starts at {shown(view.start, self.zone)}" if field == "From" else "")
            + (f"ends at {shown(view.end, self.zone)}" if field == "To" else "")
            for field, typed in message.skipped
        )
        self.notify(
            f"Override #{view.id} on {view.schedule}: {view.who} from "
            f"{shown(view.start, self.zone)} to {shown(view.end, self.zone)}{skipped}",
            title="Override placed",
            markup=False,
        )
        self.refresh_calendar()

    def action_offer_swap(self) -> None:
        if self.schedule is None:
            self.notify("The calendar is still loading; try again in a moment.", severity="warning")
            return
        self._ask_window(self.schedule, self._offer_swap, swap=True)

    @work(thread=True, name="offer swap", group="calendar-swap", exit_on_error=False)
    def _offer_swap(self, request: OverrideRequest) -> None:
        app = self.vigil
        view = SwapService(app.db, app.clock).request(
            app.profile.handle,
            schedule=request.schedule,
            start=request.start,
            end=request.end,
            with_handle=request.who or None,
            note=request.reason,
        )
        self.post_message(SwapOffered(view))

    def on_swap_offered(self, message: SwapOffered) -> None:
        view = message.view
        to = f"to {view.wanted}" if view.wanted else "to anyone"
        self.notify(
            f"Swap #{view.id} on {view.schedule}, {to}: {shown(view.start, self.zone)} to "
            f"{shown(view.end, self.zone)}; it waits in their inbox",
            title="Swap offered",
            markup=False,
        )

    def action_remove_override(self) -> None:
        if self._may_change_overrides("remove") and self.schedule is not None:
            self._list_overrides(self.schedule)

    @work(thread=True, name="list overrides", group="calendar-override", exit_on_error=False)
    def _list_overrides(self, schedule: str) -> None:
        app = self.vigil
        views = read_overrides(app.db, schedule, app.clock.now())
        self.post_message(OverridesListed(schedule, views))

    def on_overrides_listed(self, message: OverridesListed) -> None:
        if not message.views:
            self.notify(f"{message.schedule} has no override under way or to come.")
            return
        listing = "\n".join(
            f"#{view.id}  {view.who}  {shown(view.start, self.zone)} "
            f"to {shown(view.end, self.zone)}"
            for view in message.views
        )
        by_number = {str(view.id): view.id for view in message.views}

        def answered(text: str | None) -> None:
            if text is None:
                return
            chosen = by_number.get(text.strip().lstrip("#"))
            if chosen is None:
                self.notify(
                    f"{message.schedule} has no override #{text.strip().lstrip('#')} under way "
                    "or to come; nothing was removed.",
                    severity="warning",
                    markup=False,
                )
            else:
                self._remove_override(chosen)

        self.app.push_screen(
            TextPrompt(
                f"Remove an override of {message.schedule}",
                f"{listing}\n\nWhich one (its number)? One under way ends now.",
                required=True,
                suggestions=tuple(by_number),
                cursor_blink=self.vigil.cursor_blink,
            ),
            answered,
        )

    @work(thread=True, name="remove override", group="calendar-override", exit_on_error=False)
    def _remove_override(self, override_id: int) -> None:
        app = self.vigil
        view = OverrideService(app.db, app.clock).remove(app.profile.handle, override_id)
        self.post_message(OverrideRemoved(view, ended_early=view.start < app.clock.now()))

    def on_override_removed(self, message: OverrideRemoved) -> None:
        view = message.view
        what = "ended now" if message.ended_early else "removed"
        self.notify(
            f"Override #{view.id} on {view.schedule} {what}: {view.who} from "
            f"{shown(view.start, self.zone)} to {shown(view.end, self.zone)}",
            title="Override removed",
            markup=False,
        )
        self.refresh_calendar()

    # ----------------------------------------------------------------- failures

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if (
            event.state == WorkerState.ERROR
            and worker.group == "calendar"
            and worker.error is not None
            and self.calendar.view is None
        ):
            failure = describe_failure(worker.error)
            self.calendar.show_message(f"The calendar could not be shown: {failure.message}")
        if (
            event.state == WorkerState.ERROR
            and worker.group == "calendar-changes"
            and worker.error is not None
            and describe_failure(worker.error).database_down
        ):
            return  # the next poll looks again; a toast twice a second would say nothing new
        self.vigil.report_worker(event, self)

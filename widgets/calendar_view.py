"""The rotation calendar of one schedule: a week of hour rows, or a month of day cells.

It renders the plain view objects defined here and never reads a clock, a database or a
time zone: the screen has already cut every shift into days of the chosen zone and given
each piece in wall-clock minutes. Each person keeps one colour (their ordinal in the
schedule, on a palette of `PALETTE_SIZE` component classes styled in themes/calendar.tcss);
coverage gaps are red, overrides carry ◆, holiday cover ★, and the current time ▶.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import ClassVar, Literal

from textual.app import RenderResult
from textual.content import Content
from textual.widget import Widget

PALETTE_SIZE = 10
"""Person colours: `calendar-view--person-0` .. `calendar-view--person-9`."""
DAY_MINUTES = 24 * 60
ROW_STEPS = (30, 60, 120, 180, 240, 360, 480)
"""Minutes per row of the week view: the finest that lets the whole day fit is used."""
GUTTER = 7
"""The week view's time column: ` 08:00 ` or `▶09:41 `."""
OVERRIDE_MARK = "◆"
HOLIDAY_MARK = "★"
NOW_MARK = "▶"
NOW_LINE = "━"
WIDE_LEGEND = 120
"""From this width on the legend gives each person's name beside their handle."""

SegmentKind = Literal["rotation", "override", "holiday", "gap"]
MARKS: dict[str, str] = {"override": OVERRIDE_MARK, "holiday": HOLIDAY_MARK}


@dataclass(frozen=True, slots=True)
class DaySegment:
    """Part of one day on the wall clock of the chosen zone, in minutes from its midnight
    (`end` is 1440 when it runs into the next day). On the day the clocks go back, the
    repeated hour is one stretch of the wall clock, so two segments may share it."""

    start: int
    end: int
    who: str | None  # None: nobody is on call (a coverage gap)
    kind: SegmentKind
    person: int  # the person's ordinal in the schedule, which picks their colour; -1 for a gap
    begins: bool = True  # it begins on this day (False: it continues from the day before)
    ends: bool = True  # it ends on this day (False: it runs into the next)


@dataclass(frozen=True, slots=True)
class CalendarDay:
    """One local date of the chosen zone and who is on call through it, in time order."""

    day: date
    segments: tuple[DaySegment, ...]
    holiday: str | None = None  # the name of the schedule's holiday on this date
    today: bool = False
    in_period: bool = True  # False for the neighbouring months' days of a month grid
    hours: int = 24  # 23 or 25 on the day the clocks change


@dataclass(frozen=True, slots=True)
class LegendEntry:
    handle: str
    name: str
    person: int


@dataclass(frozen=True, slots=True)
class CalendarHeading:
    """Which schedule is shown (`position` of `count`) and on which clock."""

    schedule: str
    position: int
    count: int
    zone: str  # the IANA name of the zone the hours are in
    zone_role: str  # "my zone", "schedule's zone" or "UTC"


@dataclass(frozen=True, slots=True)
class CalendarWeekView:
    """Seven days, Monday first; `now_day` indexes the day holding the current time."""

    heading: CalendarHeading
    days: tuple[CalendarDay, ...]
    legend: tuple[LegendEntry, ...]
    now_day: int | None = None
    now_minute: int = 0


@dataclass(frozen=True, slots=True)
class CalendarMonthView:
    """The weeks (Monday first) that hold the month starting on `month`."""

    heading: CalendarHeading
    month: date
    weeks: tuple[tuple[CalendarDay, ...], ...]
    legend: tuple[LegendEntry, ...]


CalendarViewData = CalendarWeekView | CalendarMonthView


def clock_text(minute: int) -> str:
    """`08:30` for a wall-clock minute of the day; `24:00` for the day's end."""
    return f"{minute // 60:02d}:{minute % 60:02d}"


def short_clock(minute: int) -> str:
    """`08`, or `08:30` when not on the hour; `24` for the day's end."""
    return f"{minute // 60:02d}" if minute % 60 == 0 else clock_text(minute)


def span_text(segment: DaySegment) -> str:
    """A segment's hours within its day: `08-20`, `…08` (from the day before), `20…`
    (into the next), or `all day`."""
    if not segment.begins and not segment.ends:
        return "all day"
    start = short_clock(segment.start) if segment.begins else "…"
    end = short_clock(segment.end) if segment.ends else "…"
    if not segment.begins:
        return f"…{end}"
    if not segment.ends:
        return f"{start}…"
    return f"{start}-{end}"


def entry_text(segment: DaySegment) -> str:
    """One line of a month cell: `08-20 ana`, `◆20… priya`, `20-22 gap`."""
    who = segment.who if segment.who is not None else "gap"
    return f"{MARKS.get(segment.kind, '')}{span_text(segment)} {who}"


def week_title(first: date, last: date) -> str:
    """`23-29 Nov 2026`, `30 Nov - 6 Dec 2026`, `28 Dec 2026 - 3 Jan 2027`."""
    if first.year != last.year:
        return f"{first.day} {first:%b %Y} - {last.day} {last:%b %Y}"
    if first.month != last.month:
        return f"{first.day} {first:%b} - {last.day} {last:%b %Y}"
    return f"{first.day}-{last.day} {last:%b %Y}"


def row_step(rows: int) -> int:
    """Minutes per week row so the whole day fits in `rows` (the coarsest step if none do)."""
    for step in ROW_STEPS:
        if DAY_MINUTES // step <= rows:
            return step
    return ROW_STEPS[-1]


class CalendarView(Widget):
    """Paints a `CalendarWeekView` or `CalendarMonthView` to fit its size."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "calendar-view--heading",
        "calendar-view--day",
        "calendar-view--today",
        "calendar-view--holiday",
        "calendar-view--muted",
        "calendar-view--now",
        "calendar-view--now-line",
        "calendar-view--gap",
        "calendar-view--empty",
        *(f"calendar-view--person-{index}" for index in range(PALETTE_SIZE)),
    }

    def __init__(
        self,
        *,
        message: str = "Loading the calendar…",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.view: CalendarViewData | None = None
        self.message = message

    def show(self, view: CalendarViewData) -> None:
        self.view = view
        self.refresh()

    def show_message(self, message: str) -> None:
        """Put a message where the calendar goes (no schedules, nothing readable)."""
        self.view = None
        self.message = message
        self.refresh()

    # ----------------------------------------------------------------- painting

    def _cell(self, text: str, width: int, *names: str) -> Content:
        """`text` cut or padded to `width` cells, all of it in the given component styles."""
        content = Content(text).truncate(width, ellipsis=True, pad=True)
        if not names:
            return content
        style = self.get_visual_style(*(f"calendar-view--{n}" for n in names))
        return content.stylize(style)

    def render(self) -> RenderResult:
        width, height = self.size
        view = self.view
        if view is None:
            return Content(self.message)
        legend = self._legend(view.legend, width, week=isinstance(view, CalendarWeekView))
        room = max(0, height - 1 - len(legend))
        if isinstance(view, CalendarWeekView):
            title = week_title(view.days[0].day, view.days[-1].day)
            body = self._week(view, width, room)
        else:
            title = f"{view.month:%B %Y}"
            body = self._month(view, width, room)
        lines = [self._heading(view.heading, title, width), *body, *legend]
        return Content("\n").join(lines)

    def _heading(self, heading: CalendarHeading, period: str, width: int) -> Content:
        zone = heading.zone
        if heading.zone_role != zone:
            zone += f" ({heading.zone_role})"
        text = (
            f"{heading.schedule} ({heading.position}/{heading.count})  ·  {period}  ·  "
            f"times in {zone}"
        )
        return self._cell(text, width, "heading")

    def _legend(self, entries: Sequence[LegendEntry], width: int, *, week: bool) -> list[Content]:
        items = [
            Content.assemble(
                self._cell("  ", 2, self._person(entry.person)),
                f" {entry.handle}" + (f" {entry.name}" if width >= WIDE_LEGEND else ""),
            )
            for entry in entries
        ]
        items.append(Content(f"{OVERRIDE_MARK} override"))
        items.append(Content(f"{HOLIDAY_MARK} holiday cover"))
        items.append(Content.assemble(self._cell("  ", 2, "gap"), " gap"))
        if week:
            items.append(Content.assemble(self._cell(NOW_MARK, 1, "now"), " now"))
        return _pack(items, width)

    @staticmethod
    def _person(person: int) -> str:
        return "gap" if person < 0 else f"person-{person % PALETTE_SIZE}"

    # ----------------------------------------------------------------- the week

    def _week(self, view: CalendarWeekView, width: int, room: int) -> list[Content]:
        column = max(3, (width - GUTTER - 6) // 7)
        separator = self._cell("│", 1, "muted")
        dates, notes = [self._cell("", GUTTER)], [self._cell("", GUTTER)]
        for day in view.days:
            label = f"{day.day:%a} {day.day.day}" + (f" {day.day:%b}" if column >= 10 else "")
            dates.append(self._cell(label, column, "today" if day.today else "day"))
            if day.holiday:
                notes.append(self._cell(f"{HOLIDAY_MARK} {day.holiday}", column, "holiday"))
            elif day.hours != 24:
                notes.append(self._cell(f"{day.hours}h day", column, "muted"))
            else:
                notes.append(self._cell("", column))
        lines = [_line(dates, separator), _line(notes, separator)]
        rows = max(0, room - 2)
        step = row_step(rows)
        columns = [self._day_column(day, step) for day in view.days]
        for row in range(min(rows, -(-DAY_MINUTES // step))):
            start = row * step
            now_here = view.now_day is not None and start <= view.now_minute < start + step
            if now_here:
                gutter = self._cell(f"{NOW_MARK}{clock_text(view.now_minute)}", GUTTER, "now")
            else:
                gutter = self._cell(f" {clock_text(start)}", GUTTER, "muted")
            cells = [gutter]
            for index, day_cells in enumerate(columns):
                text, names = day_cells[row]
                if now_here and index == view.now_day:
                    names = (*names, "now-line")
                    text = text or NOW_LINE * column
                cells.append(self._cell(text, column, *names))
            lines.append(_line(cells, separator))
        return lines

    def _day_column(self, day: CalendarDay, step: int) -> list[tuple[str, tuple[str, ...]]]:
        """Each row of one day: its text and style. A label names the person where their
        stretch begins (with the time) or where they first show in the column; the rows of
        an override carry its mark."""
        out: list[tuple[str, tuple[str, ...]]] = []
        previous: DaySegment | None = None
        for start in range(0, DAY_MINUTES, step):
            end = start + step
            shown = slot_segment(day, start, end)
            if shown is None:
                out.append(("", ("empty",)))
            elif shown is previous:
                out.append((OVERRIDE_MARK if shown.kind == "override" else "", self._names(shown)))
            else:
                mark, who = MARKS.get(shown.kind, ""), shown.who or "gap"
                if start <= shown.start < end and (shown.begins or shown.start > 0):
                    out.append((f"{mark}{clock_text(shown.start)} {who}", self._names(shown)))
                else:
                    out.append((f"{mark}{who}", self._names(shown)))
            previous = shown
        return out

    def _names(self, segment: DaySegment) -> tuple[str, ...]:
        return (self._person(segment.person),)

    def _strip(self, day: CalendarDay, width: int) -> Content:
        """The whole day on one line, each cell a slice of it in its holder's colour; the
        initial of a person (◆ for an override, ! for a gap) where their stretch begins."""
        cells = []
        previous: DaySegment | None = None
        for index in range(width):
            start, end = index * DAY_MINUTES // width, (index + 1) * DAY_MINUTES // width
            shown = slot_segment(day, start, end)
            if shown is None:
                cells.append(self._cell("", 1, "empty"))
                previous = None
                continue
            text = ""
            if shown is not previous and (shown.begins or index == 0):
                text = "!" if shown.who is None else MARKS.get(shown.kind, shown.who[:1])
            cells.append(self._cell(text, 1, *self._names(shown)))
            previous = shown
        return Content("").join(cells)

    # ----------------------------------------------------------------- the month

    def _month(self, view: CalendarMonthView, width: int, room: int) -> list[Content]:
        column = max(3, (width - 6) // 7)
        separator = self._cell("│", 1, "muted")
        names = [self._cell(f"{day.day:%a}", column, "muted") for day in view.weeks[0]]
        lines = [_line(names, separator)]
        block = max(2, (room - 1) // max(1, len(view.weeks)))
        for week in view.weeks:
            cells = [self._month_cell(day, column, block) for day in week]
            for line in range(block):
                lines.append(_line([cell[line] for cell in cells], separator))
        return lines[:room]

    def _month_cell(self, day: CalendarDay, width: int, height: int) -> list[Content]:
        """The date, then each stretch of the day; when they do not all fit, a strip of the
        whole day comes first, then the gaps, the overrides and the longest stretches."""
        label = f"{day.day.day:>2}" if day.day.day != 1 else f" 1 {day.day:%b}"
        if day.holiday:
            label += f" {HOLIDAY_MARK}{day.holiday}"
        style = "today" if day.today else ("day" if day.in_period else "muted")
        lines = [self._cell(label, width, style)]
        entries = list(day.segments)
        if len(entries) > height - 1:
            lines.append(self._strip(day, width))
            room = max(0, height - 2)
            wanted = sorted(
                range(len(entries)),
                key=lambda i: (
                    entries[i].kind not in ("gap", "override"),
                    entries[i].start - entries[i].end,
                ),
            )
            entries = [entries[i] for i in sorted(wanted[:room])]
        for segment in entries:
            lines.append(self._cell(entry_text(segment), width, *self._names(segment)))
        while len(lines) < height:
            lines.append(self._cell("", width))
        return lines


def slot_segment(day: CalendarDay, start: int, end: int) -> DaySegment | None:
    """What one slice [start, end) of a day shows: a gap if it holds one (a gap is never
    hidden), else whoever takes over within it, else whoever holds it as it begins."""
    overlapping = [s for s in day.segments if s.start < end and s.end > start]
    if not overlapping:
        return None
    return (
        next((s for s in overlapping if s.who is None), None)
        or next((s for s in overlapping if s.start > start), None)
        or overlapping[0]
    )


def _line(cells: Sequence[Content], separator: Content) -> Content:
    """One line of cells with `separator` between each two."""
    return separator.join(cells)


def _pack(items: Iterable[Content], width: int) -> list[Content]:
    """Legend items on as few lines as `width` allows, two spaces apart."""
    lines: list[Content] = []
    line = Content("")
    for item in items:
        if line.cell_length and line.cell_length + 2 + item.cell_length > width:
            lines.append(line)
            line = Content("")
        line = Content.assemble(line, "  ", item) if line.cell_length else item
    if line.cell_length:
        lines.append(line)
    return [line.truncate(width, ellipsis=True) for line in lines]

"""The live priority queue: a virtual table that paints only the rows on screen.

The stock DataTable does O(n) work per added or removed row, which is too slow for
100,000 open cases. This widget knows only the row count and a sparse cache of rows by
index; it asks its screen for the rows it lacks (`WindowNeeded`) and repaints one line
when one case changes (`update_row`). It never reads the clock: the screen calls
`set_now` from its one timer, so tests and snapshots control time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size, Spacing
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer

from data.domain import ClockState, Status, clock_state
from widgets.timefmt import format_age
from widgets.views import QueueRow, SeekAnchor

QUEUE_TCSS = Path(__file__).resolve().parent.parent / "themes" / "queue.tcss"
"""The queue's styles; loaded as the widget's default CSS, so app CSS can override them."""

_ONE_SECOND = timedelta(seconds=1)
_TOP = SeekAnchor(-1)


def format_open_for(age: timedelta) -> str:
    """How long a case has been open, for the Age column: `3m`, `2h05m`, `3d` (finer than
    `timefmt.format_age`, which says roughly how long ago something was)."""
    minutes = max(0, age // timedelta(minutes=1))
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d"


def format_countdown(remaining: timedelta) -> str:
    """Time left on an SLA: `4:32`, `1:05:00`, `2d03h`; negative once breached (`-2:10`)."""
    sign = "-" if remaining < timedelta(0) else ""
    minutes, seconds = divmod(abs(remaining) // _ONE_SECOND, 60)
    if minutes < 60:
        return f"{sign}{minutes}:{seconds:02d}"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{sign}{hours}:{minutes:02d}:{seconds:02d}"
    return f"{sign}{hours // 24}d{hours % 24:02d}h"


def _step_text(row: QueueRow) -> str:
    if row.exhausted:
        return "EXH"
    # Rounds are stored from 0 and shown from 1, as in the case pane and the timeline.
    return f"{row.escalation_step}/r{row.escalation_round + 1}"


@dataclass(frozen=True, slots=True)
class _Column:
    key: str
    label: str
    width: int  # 0 means the column takes the width the others leave
    right: bool = False


_MARK_COLUMN = _Column("mark", "", 1)
"""Shown while cases are marked for a bulk action (so a queue without marks keeps its
width for the title)."""
_COLUMNS: tuple[_Column, ...] = (
    _Column("mine", "", 1),
    _Column("ref", "Ref", 10),
    _Column("sev", "Sev", 4),
    _Column("category", "Category", 12),
    _Column("title", "Title", 0),
    _Column("status", "Status", 12),
    _Column("assignee", "Assignee", 12),
    _Column("step", "Step", 5),
    _Column("age", "Age", 6, right=True),
    _Column("sla", "SLA", 8, right=True),
    _Column("legal", "Legal", 6, right=True),
)
_DROP_ORDER = ("assignee", "category", "step", "age")
"""Columns given up, in this order, when the title would get too narrow."""
_MIN_TITLE_WIDTH = 30
_GAP = " "
_MINE_MARKER = "●"
_MARKED_MARKER = "✓"
_CLOCK_MARKER = "⚖"
_OVERDUE_MARKER = "!"
_APPROVAL_MARKER = "?"


@dataclass(frozen=True, slots=True)
class _Layout:
    """The columns chosen for one widget width, the title sized to fill the rest."""

    width: int
    columns: tuple[_Column, ...]
    line_length: int
    marking: bool = False


def _layout_columns(width: int, *, marking: bool = False) -> _Layout:
    shown = [_MARK_COLUMN, *_COLUMNS] if marking else list(_COLUMNS)

    def title_width() -> int:
        fixed = sum(column.width for column in shown)
        return width - fixed - len(_GAP) * (len(shown) - 1)

    for key in _DROP_ORDER:
        if title_width() >= _MIN_TITLE_WIDTH:
            break
        shown = [column for column in shown if column.key != key]
    flexible = max(1, title_width())
    columns = tuple(
        column if column.width else dataclasses.replace(column, width=flexible) for column in shown
    )
    line_length = sum(column.width for column in columns) + len(_GAP) * (len(columns) - 1)
    return _Layout(width, columns, line_length, marking)


def _fit(text: str, width: int, right: bool) -> str:
    """Pad or cut `text` to exactly `width` cells, marking a cut with an ellipsis."""
    length = cell_len(text)
    if length > width:
        return set_cell_size(text, width - 1) + "…" if width > 1 else "…"[:width]
    padding = " " * (width - length)
    return padding + text if right else text + padding


def _check_row(row: QueueRow, where: str) -> None:
    for name in ("created_at", "sla_due_at", "clock_due_at", "clock_reminder_at", "action_due_at"):
        value: datetime | None = getattr(row, name)
        if value is not None and value.tzinfo is None:
            raise ValueError(
                f"{where}: QueueRow.{name} of case {row.case_id} is a naive datetime; "
                "expected an aware (UTC) datetime"
            )


def _looks_alike(a: QueueRow | None, b: QueueRow | None) -> bool:
    """Whether two rows paint the same line: equal but for their version and sort key."""
    if a is None or b is None:
        return a is b
    return a == b or dataclasses.replace(a, version=b.version, sort_key=b.sort_key) == b


@dataclass(frozen=True, slots=True)
class _Window:
    offset: int
    limit: int

    def __contains__(self, index: object) -> bool:
        return isinstance(index, int) and self.offset <= index < self.offset + self.limit


class QueueTable(ScrollView, can_focus=True):
    """Open cases, one per line, under a fixed header; rows arrive in windows by index."""

    DEFAULT_CSS = QUEUE_TCSS.read_text(encoding="utf-8")

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "queue-table--header",
        "queue-table--placeholder",
        "queue-table--sev1",
        "queue-table--sev2",
        "queue-table--sev3",
        "queue-table--sev4",
        "queue-table--warn",
        "queue-table--breached",
        "queue-table--exhausted",
        "queue-table--acked",
        "queue-table--mine",
        "queue-table--marked",
        "queue-table--flash",
        "queue-table--cursor",
        # A coloured cell on a highlighted row (the cursor's or a flash) keeps its colour
        # as a badge: its colour behind, the row's own background in front.
        "queue-table--sev1-on-bar",
        "queue-table--sev2-on-bar",
        "queue-table--sev3-on-bar",
        "queue-table--sev4-on-bar",
        "queue-table--warn-on-bar",
        "queue-table--breached-on-bar",
        "queue-table--exhausted-on-bar",
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "up,k",
            "cursor_up",
            "Up",
            show=False,
            id="queue.cursor_up",
            tooltip="Move to the case above",
        ),
        Binding(
            "down,j",
            "cursor_down",
            "Down",
            show=False,
            id="queue.cursor_down",
            tooltip="Move to the case below",
        ),
        Binding(
            "pageup",
            "page_up",
            "Page up",
            show=False,
            id="queue.page_up",
            tooltip="Move up one screen of cases",
        ),
        Binding(
            "pagedown",
            "page_down",
            "Page down",
            show=False,
            id="queue.page_down",
            tooltip="Move down one screen of cases",
        ),
        Binding(
            "home,g",
            "first",
            "First",
            show=False,
            id="queue.first",
            tooltip="Move to the most urgent case",
        ),
        Binding(
            "end,G",
            "last",
            "Last",
            show=False,
            id="queue.last",
            tooltip="Move to the least urgent case",
        ),
        Binding(
            "space",
            "toggle_mark",
            "Mark",
            show=False,
            id="queue.mark",
            tooltip="Mark or unmark the highlighted case for a bulk acknowledge, resolve or "
            "reassign, and move to the next",
        ),
        Binding(
            "enter",
            "select",
            "Open",
            id="queue.select",
            tooltip="Open the highlighted case",
        ),
    ]

    window_margin: ClassVar[int] = 100
    """Rows asked for above and below the visible ones, so short scrolls need no request."""
    max_cached_rows: ClassVar[int] = 20_000
    """Past this many cached rows, rows far from the viewport are dropped."""
    flash_interval: float = 0.25
    """Seconds between the on and off phases of `flash`."""
    paint_wait: float = 0.25
    """Seconds `call_after_paint` waits for a paint before it runs its callbacks anyway."""

    @dataclass(eq=False)
    class WindowNeeded(Message):
        """Rows `offset`…`offset + limit - 1` are needed; answer with `set_window`.

        `anchor` is the nearest place the table knows next to them (a held row, or an end
        of the queue): read the rows by seeking from it. A newer request supersedes one
        still queued, so scrolling never floods the screen.
        """

        table: QueueTable
        offset: int
        limit: int
        anchor: SeekAnchor = _TOP

        @property
        def control(self) -> QueueTable:
            return self.table

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, QueueTable.WindowNeeded) and message.table is self.table

    @dataclass(eq=False)
    class Highlighted(Message):
        """The cursor is on a (loaded) case."""

        table: QueueTable
        case_id: int
        ref: str

        @property
        def control(self) -> QueueTable:
            return self.table

    @dataclass(eq=False)
    class Selected(Message):
        """The person asked to open the case under the cursor."""

        table: QueueTable
        case_id: int
        ref: str

        @property
        def control(self) -> QueueTable:
            return self.table

    @dataclass(eq=False)
    class MarksChanged(Message):
        """Cases were marked or unmarked; `count` are marked now."""

        table: QueueTable
        count: int

        @property
        def control(self) -> QueueTable:
            return self.table

    def __init__(
        self,
        *,
        now: datetime,
        sla_warn_seconds: int = 300,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        if sla_warn_seconds <= 0:
            raise ValueError(
                f"sla_warn_seconds: expected a positive number, got {sla_warn_seconds}"
            )
        self.sla_warn_seconds = sla_warn_seconds
        self._now = self._checked_now(now)
        self._total = 0
        self._rows: dict[int, QueueRow] = {}
        self._index_of: dict[int, int] = {}
        self._cursor = 0
        self._follow_case: int | None = None
        self._announced_case: int | None = None
        self._pending: _Window | None = None
        self._unavailable: _Window | None = None  # asked for, but the source had no rows
        self._flash_lit: set[int] = set()
        self._marked: dict[int, str] = {}
        self._flash_timers: dict[int, Timer] = {}
        self._palette: dict[str, Style] = {}
        self._layout: _Layout | None = None
        self._prefetch_scheduled = False
        self._after_paint: list[Callable[[], object]] = []
        self._paint_fallback: Timer | None = None

    # ----------------------------------------------------------------- public API

    @property
    def total(self) -> int:
        """How many rows the queue has (loaded or not)."""
        return self._total

    @property
    def cached_row_count(self) -> int:
        """How many rows are held in memory."""
        return len(self._rows)

    @property
    def now(self) -> datetime:
        """The instant ages and SLA countdowns are measured from."""
        return self._now

    @property
    def cursor_index(self) -> int:
        """Index of the highlighted row (0 when the queue is empty)."""
        return self._cursor

    @property
    def cursor_row(self) -> QueueRow | None:
        """The highlighted row, or None while it is not loaded."""
        return self._rows.get(self._cursor)

    def row_at(self, index: int) -> QueueRow | None:
        """The cached row at `index`, or None when it is not loaded."""
        return self._rows.get(index)

    def index_of(self, case_id: int) -> int | None:
        """Where the cached row of `case_id` is, or None when it is not loaded."""
        return self._index_of.get(case_id)

    @property
    def marked(self) -> tuple[tuple[int, str], ...]:
        """The marked cases as (case id, reference), in the order they were marked."""
        return tuple(self._marked.items())

    def unmark(self, case_ids: Sequence[int] | None = None) -> None:
        """Unmark these cases (every case when None)."""
        gone = (
            list(self._marked) if case_ids is None else [i for i in case_ids if i in self._marked]
        )
        if not gone:
            return
        for case_id in gone:
            del self._marked[case_id]
        self._marks_changed()

    def set_now(self, now: datetime) -> None:
        """Move the table's clock; repaints the visible lines only (none when the clock
        has not moved: a repaint of every line holds the event loop for nothing)."""
        now = self._checked_now(now)
        if now == self._now:
            return
        self._now = now
        self.refresh()

    def set_total(self, total: int) -> None:
        """Set the number of rows; rows past the end are forgotten."""
        if total < 0:
            raise ValueError(f"set_total: total must be >= 0, got {total}")
        self._total = total
        for index in [index for index in self._rows if index >= total]:
            self._forget(index)
        self._unavailable = None
        self.virtual_size = Size(0, total + 1)
        self._cursor = min(self._cursor, max(0, total - 1))
        if total == 0:
            self._announced_case = None  # nothing is highlighted: the next row is news
        self.refresh()
        self._schedule_prefetch()

    def set_window(self, offset: int, rows: Sequence[QueueRow]) -> None:
        """Cache `rows` at indexes `offset`…: the answer to a `WindowNeeded`, or unasked
        (say, the first page read together with the count).

        Rows past `total` are ignored (the count may have shrunk while they were read), and
        a cached row with a higher `version` wins over the one in the window.
        """
        if offset < 0:
            raise ValueError(f"set_window: offset must be >= 0, got {offset}")
        rows = rows[: max(0, self._total - offset)]
        for row in rows:
            _check_row(row, "set_window")
        for index, row in enumerate(rows, start=offset):
            self._store(index, row)
        if self._pending is not None and self._pending.offset == offset:
            delivered = len(rows)
            self._unavailable = _Window(offset + delivered, self._pending.limit - delivered)
            self._pending = None
        self._evict_far_rows()
        if self._follow_case is not None and self._follow_case in self._index_of:
            self._relocate_cursor(self._index_of[self._follow_case])
        self._refresh_indexes(offset, offset + len(rows))
        self._announce_cursor()

    def update_row(self, row: QueueRow) -> bool:
        """Replace the cached row of `row.case_id` and repaint that line only.

        Returns False when the case is not cached (nothing on screen to change) or the
        cached row is newer.
        """
        _check_row(row, "update_row")
        index = self._index_of.get(row.case_id)
        if index is None or row.version < self._rows[index].version:
            return False
        self._rows[index] = row
        self._refresh_indexes(index, index + 1)
        return True

    def replace_window(
        self,
        total: int,
        offset: int,
        rows: Sequence[QueueRow],
        follow_case: int | None = None,
    ) -> None:
        """Forget every row and hold `rows` at `offset`… of a queue now `total` long, the
        cursor staying with its case (or moving to `follow_case`, now or when a window
        brings it; no rows: the table asks for what it shows), repainting only the lines
        that look different. A refetch after changes elsewhere mostly finds the rows on
        screen as they were, and a full repaint of the table each time would hold the
        event loop for nothing."""
        if total < 0:
            raise ValueError(f"replace_window: total must be >= 0, got {total}")
        if offset < 0:
            raise ValueError(f"replace_window: offset must be >= 0, got {offset}")
        rows = rows[: max(0, total - offset)]
        for row in rows:
            _check_row(row, "replace_window")
        shown = {index: self._rows.get(index) for index in self._visible_indexes()}
        before = (self._total, self._cursor, self.scroll_offset.y)
        self._forget_rows()
        if follow_case is not None:
            self._follow_case = follow_case
        self._total = total
        self.virtual_size = Size(0, total + 1)
        self._cursor = min(self._cursor, max(0, total - 1))
        if total == 0:
            self._announced_case = None
        for index, row in enumerate(rows, start=offset):
            self._store(index, row)
        self._evict_far_rows()
        if self._follow_case is not None and self._follow_case in self._index_of:
            index = self._index_of[self._follow_case]
            if index != self._cursor:
                self._relocate_cursor(index)
            else:
                self._follow_case = None
                self._scroll_cursor_into_view()
        if (self._total, self._cursor, self.scroll_offset.y) != before:
            self.refresh()
        else:
            for index, was in shown.items():
                if not _looks_alike(was, self._rows.get(index)):
                    self._refresh_indexes(index, index + 1)
        self._schedule_prefetch()
        self._announce_cursor()

    def _forget_rows(self) -> None:
        """Every row held, and every request in flight, forgotten; the cursor is to follow
        its case when a window brings it back."""
        if (row := self._rows.get(self._cursor)) is not None:
            self._follow_case = row.case_id
        self._rows.clear()
        self._index_of.clear()
        self._pending = self._unavailable = None

    def call_after_paint(self, callback: Callable[[], object]) -> None:
        """Run `callback` once the table's next paint is in a frame (or after
        `paint_wait` seconds if it does not paint, say under a dialog): work that can wait
        then does not compete with the frame that shows a change."""
        self._after_paint.append(callback)
        if self._paint_fallback is None:
            self._paint_fallback = self.set_timer(
                self.paint_wait, self._run_after_paint, name="after paint"
            )
        self.refresh()

    def _run_after_paint(self) -> None:
        callbacks, self._after_paint = self._after_paint, []
        if self._paint_fallback is not None:
            self._paint_fallback.stop()
            self._paint_fallback = None
        for callback in callbacks:
            callback()

    def flash(self, case_id: int, blinks: int = 3) -> None:
        """Blink the row of `case_id` `blinks` times (a page just arrived for it)."""
        if blinks < 1:
            raise ValueError(f"flash: blinks must be >= 1, got {blinks}")
        if (running := self._flash_timers.pop(case_id, None)) is not None:
            running.stop()
        self._flash_lit.add(case_id)
        self._refresh_case(case_id)
        toggles_left = 2 * blinks - 1

        def toggle() -> None:
            # Counted here rather than by the timer's `repeat`: a timer that falls behind
            # skips ticks, which could leave the row lit.
            nonlocal toggles_left
            toggles_left -= 1
            if toggles_left > 0:
                self._flash_lit ^= {case_id}
            else:
                self._flash_lit.discard(case_id)
                if (timer := self._flash_timers.pop(case_id, None)) is not None:
                    timer.stop()
            self._refresh_case(case_id)

        self._flash_timers[case_id] = self.set_interval(
            self.flash_interval, toggle, name=f"flash case {case_id}"
        )

    # ------------------------------------------------------------------- actions

    def action_cursor_up(self) -> None:
        self._move_cursor(self._cursor - 1)

    def action_cursor_down(self) -> None:
        self._move_cursor(self._cursor + 1)

    def action_page_up(self) -> None:
        page = self._visible_row_count()
        self.scroll_to(y=self.scroll_y - page, animate=False)
        self._move_cursor(self._cursor - page)

    def action_page_down(self) -> None:
        page = self._visible_row_count()
        self.scroll_to(y=self.scroll_y + page, animate=False)
        self._move_cursor(self._cursor + page)

    def action_first(self) -> None:
        self._move_cursor(0)

    def action_last(self) -> None:
        self._move_cursor(self._total - 1)

    def action_toggle_mark(self) -> None:
        if (row := self._rows.get(self._cursor)) is None:
            return
        if self._marked.pop(row.case_id, None) is None:
            self._marked[row.case_id] = row.ref
        self._marks_changed()
        self._move_cursor(self._cursor + 1)

    def _marks_changed(self) -> None:
        self.refresh()  # the mark column comes or goes with the first or last mark
        self._post(self.MarksChanged(self, len(self._marked)))

    def action_select(self) -> None:
        if (row := self._rows.get(self._cursor)) is not None:
            self._post(self.Selected(self, row.case_id, row.ref))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        index = self.scroll_offset.y + offset.y - 1
        if index < self._total:
            self._move_cursor(index)
            if event.chain == 2:
                self.action_select()

    # ----------------------------------------------------------------- painting

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._palette.clear()

    def render_lines(self, crop: Region) -> list[Strip]:
        # Every line of one paint has the same width: size the columns once, not per line.
        self._layout_for(self.scrollable_content_region.width)
        lines = super().render_lines(crop)
        if self._after_paint:  # runs once the frame being composed is out
            self.call_later(self._run_after_paint)
        return lines

    def render_line(self, y: int) -> Strip:
        layout = self._layout or self._layout_for(self.scrollable_content_region.width)
        width = layout.width
        if y == 0:
            return self._render_header(layout, width)
        index = self.scroll_offset.y + y - 1
        if index >= self._total:
            return Strip.blank(width, self._layer("base"))
        row = self._rows.get(index)
        if row is None:
            self._request_window_for(index)
            return self._render_placeholder(index, width)
        return self._render_row(index, row, layout, width)

    def _render_header(self, layout: _Layout, width: int) -> Strip:
        style = self._layer("base") + self._layer("queue-table--header")
        text = _GAP.join(
            _fit(column.label, column.width, column.right) for column in layout.columns
        )
        return Strip([Segment(text, style)], layout.line_length).adjust_cell_length(width, style)

    def _render_placeholder(self, index: int, width: int) -> Strip:
        style = self._layer("base") + self._layer("queue-table--placeholder")
        if index == self._cursor:
            style += self._layer("queue-table--cursor")
        return Strip([Segment(" " + "·" * min(3, width), style)]).adjust_cell_length(width, style)

    def _render_row(self, index: int, row: QueueRow, layout: _Layout, width: int) -> Strip:
        row_style = self._layer("base")
        if row.status == Status.ACKNOWLEDGED.value:
            row_style += self._layer("queue-table--acked")
        if row.paged_to_me:
            row_style += self._layer("queue-table--mine")
        if row.case_id in self._marked:
            row_style += self._layer("queue-table--marked")
        on_bar = index == self._cursor or row.case_id in self._flash_lit
        if index == self._cursor:
            row_style += self._layer("queue-table--cursor")
        if row.case_id in self._flash_lit:
            row_style += self._layer("queue-table--flash")
        pieces: list[tuple[str, Style]] = []
        for column in layout.columns:
            text, cell_layer = self._cell(row, column.key)
            if pieces:
                pieces.append((_GAP, row_style))
            if cell_layer and on_bar:
                cell_layer += "-on-bar"
            style = row_style + self._layer(cell_layer) if cell_layer else row_style
            pieces.append((_fit(text, column.width, column.right), style))
        # One segment per run of equal style: fewer segments make every later stage of
        # painting (filters, cuts, output) cheaper.
        segments = [
            Segment("".join(text for text, _ in run), style)
            for style, run in groupby(pieces, key=itemgetter(1))
        ]
        return Strip(segments, layout.line_length).adjust_cell_length(width, row_style)

    def _cell(self, row: QueueRow, key: str) -> tuple[str, str | None]:
        """The text of one cell and the component class that colours it, if any."""
        match key:
            case "mark":
                return (_MARKED_MARKER if row.case_id in self._marked else "", None)
            case "mine":
                return (_MINE_MARKER if row.paged_to_me else "", None)
            case "ref":
                return (row.ref, None)
            case "sev":
                return (f"sev{row.severity}", f"queue-table--sev{row.severity}")
            case "category":
                return (row.category, None)
            case "title":
                return (row.title, None)
            case "status":
                return (row.status, None)
            case "assignee":
                return (row.assignee or "", None)
            case "step":
                return (_step_text(row), "queue-table--exhausted" if row.exhausted else None)
            case "age":
                return (format_open_for(self._now - row.created_at), None)
            case "sla":
                return self._sla_cell(row)
            case "legal":
                return self._legal_cell(row)
        raise KeyError(f"unknown queue column {key!r}")

    def _sla_cell(self, row: QueueRow) -> tuple[str, str | None]:
        if row.sla_due_at is None:
            return ("—", None)
        remaining = row.sla_due_at - self._now
        if remaining < timedelta(0):
            return (format_countdown(remaining), "queue-table--breached")
        if remaining < timedelta(seconds=self.sla_warn_seconds):
            return (format_countdown(remaining), "queue-table--warn")
        return (format_countdown(remaining), None)

    def _legal_cell(self, row: QueueRow) -> tuple[str, str | None]:
        """`⚖3h` for the most urgent legal clock (`⚖-2h` once breached), `!` for an
        overdue action item, `?` for a disclosure awaiting a supervisor's approval; amber in
        the reminder window, when overdue or awaiting, red when breached."""
        now = self._now
        state: str | None = None
        text = ""
        if row.clock_kind and row.clock_due_at is not None:
            state = clock_state(row.clock_kind, row.clock_due_at, row.clock_reminder_at, now)
            if state != ClockState.DONE:  # a hold that ran out is no longer flagged
                sign = "-" if state == ClockState.BREACHED else ""
                text = f"{_CLOCK_MARKER}{sign}{format_age(abs(row.clock_due_at - now))}"
        overdue = row.action_due_at is not None and now >= row.action_due_at
        if overdue:
            text += _OVERDUE_MARKER
        if row.awaiting_approval:
            text += _APPROVAL_MARKER
        if state == ClockState.BREACHED:
            return (text, "queue-table--breached")
        if state == ClockState.WARN or overdue or row.awaiting_approval:
            return (text, "queue-table--warn")
        return (text, None)

    def _layer(self, name: str) -> Style:
        """What a component class sets, blended over the widget's background.

        Only the properties the class declares are kept, so layers stack: a severity
        colour shows on the cursor row. "base" is the widget's own style.
        """
        if (style := self._palette.get(name)) is None:
            if name == "base":
                style = self.rich_style
            else:
                declared = self.get_component_rich_style(name, partial=True)
                blended = self.get_component_rich_style(name)
                style = declared + Style(
                    color=blended.color if declared.color is not None else None,
                    bgcolor=blended.bgcolor if declared.bgcolor is not None else None,
                )
            self._palette[name] = style
        return style

    def _layout_for(self, width: int) -> _Layout:
        marking = bool(self._marked)
        layout = self._layout
        if layout is None or layout.width != width or layout.marking != marking:
            layout = self._layout = _layout_columns(width, marking=marking)
        return layout

    # ----------------------------------------------------------------- internals

    @staticmethod
    def _checked_now(now: datetime) -> datetime:
        if now.tzinfo is None:
            raise ValueError("now: expected an aware datetime, got a naive one")
        return now

    def _visible_row_count(self) -> int:
        return max(0, self.scrollable_content_region.height - 1)

    def _visible_indexes(self) -> range:
        top = self.scroll_offset.y
        return range(top, min(self._total, top + self._visible_row_count()))

    def _store(self, index: int, row: QueueRow) -> None:
        if (cached_at := self._index_of.get(row.case_id)) is not None:
            cached = self._rows[cached_at]
            if cached.version > row.version:
                row = cached  # the window was read before the latest update_row
            if cached_at != index:
                self._forget(cached_at)
        if index in self._rows:
            self._forget(index)
        self._rows[index] = row
        self._index_of[row.case_id] = index

    def _forget(self, index: int) -> None:
        row = self._rows.pop(index)
        if self._index_of.get(row.case_id) == index:
            del self._index_of[row.case_id]

    def _evict_far_rows(self) -> None:
        if len(self._rows) <= self.max_cached_rows:
            return
        visible = self._visible_indexes()
        keep = range(
            visible.start - self.max_cached_rows // 2, visible.stop + self.max_cached_rows // 2
        )
        for index in [index for index in self._rows if index not in keep]:
            self._forget(index)

    def _schedule_prefetch(self) -> None:
        """Ask for the top rows soon, unless the caller's handler supplies them first.

        The check runs after the current handler returns: a screen that passes the first
        page with the count (`set_total` then `set_window`) gets no request for it, and
        one that does not gets asked before the first paint rather than after it.
        """
        if not self._prefetch_scheduled:
            self._prefetch_scheduled = True
            self.call_later(self._prefetch)

    def _prefetch(self) -> None:
        # At mount the viewport has no size yet; the window margin covers the first screen.
        self._prefetch_scheduled = False
        top = self.scroll_offset.y
        if top < self._total and top not in self._rows:
            self._request_window_for(top)

    def _request_window_for(self, index: int) -> None:
        """Ask once for the rows around the viewport: not while a request in flight
        covers `index`, nor again for an index the source answered it did not have."""
        if any(
            window is not None and index in window for window in (self._pending, self._unavailable)
        ):
            return
        visible = self._visible_indexes()
        start = max(0, min(index, visible.start) - self.window_margin)
        stop = min(self._total, max(index + 1, visible.stop) + self.window_margin)
        # Rows held at either edge are not read again: the window starts (or ends) beside
        # them, and the nearest becomes the place the read seeks from.
        while start < index and start in self._rows:
            start += 1
        while stop - 1 > index and stop - 1 in self._rows:
            stop -= 1
        anchor = self._anchor_for(start, stop)
        if self._post(self.WindowNeeded(self, start, stop - start, anchor)):
            self._pending = _Window(start, stop - start)

    def _anchor_for(self, start: int, stop: int) -> SeekAnchor:
        """The known place nearest to rows `start`…`stop - 1`: the held row just above or
        below them, or else the top or the bottom of the queue."""
        above = start - 1 if start - 1 in self._rows else None
        below = stop if stop in self._rows else None
        if above is None and below is None:  # a jump: look through every held row
            for index in self._rows:
                if index < start and (above is None or index > above):
                    above = index
                elif index >= stop and (below is None or index < below):
                    below = index
        # (distance, anchor): how many rows the read steps over before the window
        places = [(start, SeekAnchor(-1)), (self._total - stop, SeekAnchor(self._total))]
        if above is not None and (key := self._rows[above].sort_key):
            places.append((start - above - 1, SeekAnchor(above, key)))
        if below is not None and (key := self._rows[below].sort_key):
            places.append((below - stop, SeekAnchor(below, key)))
        return min(places, key=lambda place: place[0])[1]

    def _refresh_indexes(self, start: int, stop: int) -> None:
        """Repaint the lines of rows `start`…`stop - 1` that are on screen."""
        visible = self._visible_indexes()
        first, last = max(start, visible.start), min(stop, visible.stop)
        if first < last:
            self.refresh_lines(first + 1, last - first)

    def _refresh_case(self, case_id: int) -> None:
        if (index := self._index_of.get(case_id)) is not None:
            self._refresh_indexes(index, index + 1)

    def _move_cursor(self, index: int) -> None:
        if self._total == 0:
            return
        index = max(0, min(index, self._total - 1))
        self._follow_case = None
        previous, self._cursor = self._cursor, index
        self._refresh_indexes(previous, previous + 1)
        self._refresh_indexes(index, index + 1)
        self._scroll_cursor_into_view()
        self._announce_cursor()

    def _relocate_cursor(self, index: int) -> None:
        """Put the cursor on `index`, scrolling so it stays at the same place on screen."""
        shift = index - self._cursor
        self._cursor = index
        self._follow_case = None
        self.scroll_to(y=self.scroll_y + shift, animate=False)
        self._scroll_cursor_into_view()
        self.refresh()

    def _scroll_cursor_into_view(self) -> None:
        region = Region(0, self._cursor + 1, max(1, self.scrollable_content_region.width), 1)
        self.scroll_to_region(region, spacing=Spacing(top=1), animate=False, force=True)

    def _post(self, message: Message) -> bool:
        """Post with this table as sender: these are often built while the screen runs
        (painting, or a screen handler calling `set_window`), and a message whose sender
        is the screen stops bubbling there instead of reaching the app."""
        return self.post_message(message.set_sender(self))

    def _announce_cursor(self) -> None:
        """Post `Highlighted` when the cursor's case changed and its row is loaded."""
        row = self._rows.get(self._cursor)
        if row is not None and row.case_id != self._announced_case:
            self._announced_case = row.case_id
            self._post(self.Highlighted(self, row.case_id, row.ref))

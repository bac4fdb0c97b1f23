"""The desk's figures drawn: headline tiles, cases per day as columns, SLA attainment and
paging load as bars.

The widgets render a `StatsView` and nothing else. Every number arrives already worked
out and worded by the screen (the figures themselves come from
`app.services.shiftwork.stats`), so the drawing here only scales bars to the width it has.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from textual.app import ComposeResult, RenderResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.geometry import Size
from textual.widget import Widget
from textual.widgets import Sparkline, Static

EIGHTHS = " ▏▎▍▌▋▊▉"
"""Partial cells of a horizontal bar, by eighths."""
LOWER = " ▁▂▃▄▅▆▇█"
"""Partial cells of a vertical column, by eighths."""
FULL = "█"
GOOD_ATTAINMENT = 0.95
FAIR_ATTAINMENT = 0.8
MIN_BAR = 4
MAX_COLUMN_WIDTH = 10
MUTED = "$foreground-muted"


# --- view objects -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figure:
    """One headline figure: a label, the value, a line of detail under it, and optionally
    a trend drawn as a sparkline under that."""

    label: str
    value: str
    detail: str
    trend: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class DayColumn:
    """Cases opened on one day; `label` is how the axis names the day (`26`)."""

    label: str
    cases: int


@dataclass(frozen=True, slots=True)
class AttainmentRow:
    """One severity or category: the share of its deadlines met (None before any was
    decided) and how to word it (`83% 5/6`)."""

    key: str
    cases: int
    acknowledge: float | None
    acknowledge_text: str
    respond: float | None
    respond_text: str


@dataclass(frozen=True, slots=True)
class LoadRow:
    """The pages one person received in the window, and how many came at night."""

    handle: str
    pages: int
    night_pages: int
    share_text: str


@dataclass(frozen=True)
class StatsView:
    """Everything the Stats screen draws."""

    period: str
    figures: tuple[Figure, ...]
    days: tuple[DayColumn, ...]
    first_day: str
    last_day: str
    by_severity: tuple[AttainmentRow, ...]
    by_category: tuple[AttainmentRow, ...]
    load: tuple[LoadRow, ...]
    fairness: str


# --- drawing helpers ---------------------------------------------------------------


def horizontal_bar(fraction: float, width: int) -> str:
    """A bar `fraction` (0..1) of `width` cells long, to the eighth of a cell."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, rest = divmod(eighths, 8)
    return FULL * full + (EIGHTHS[rest] if rest else "")


def stacked_bar(first: float, second: float, width: int) -> tuple[str, str]:
    """Two bars end to end, `first` and `second` as fractions (0..1, summing to at most 1)
    of `width`: the first in whole cells, the second ending to the eighth of a cell, so
    together they never take more than `width` cells."""
    first_cells = round(max(0.0, min(1.0, first)) * width)
    total_eighths = round(max(0.0, min(1.0, first + second)) * width * 8)
    full, rest = divmod(max(0, total_eighths - first_cells * 8), 8)
    return FULL * first_cells, FULL * full + (EIGHTHS[rest] if rest else "")


def column_cells(value: int, maximum: int, height: int) -> list[str]:
    """One column of a chart `height` rows tall, top row first; any value above zero
    shows at least an eighth, so a quiet day and an empty one look different."""
    eighths = round(value / maximum * height * 8) if maximum else 0
    if value > 0:
        eighths = max(eighths, 1)
    return [LOWER[max(0, min(8, eighths - row * 8))] for row in reversed(range(height))]


def bucket(values: Sequence[int], slots: int) -> list[int]:
    """`values` summed into at most `slots` consecutive groups of equal length (the last
    may be shorter), so a long window still fits the width."""
    if len(values) <= slots:
        return list(values)
    size = math.ceil(len(values) / slots)
    return [sum(values[start : start + size]) for start in range(0, len(values), size)]


def attainment_style(fraction: float) -> str:
    if fraction >= GOOD_ATTAINMENT:
        return "$success"
    if fraction >= FAIR_ATTAINMENT:
        return "$sla-warn"
    return "$sla-breach"


# --- widgets -------------------------------------------------------------------------


class DailyColumns(Widget):
    """Cases opened per day as columns, the busiest day's count at the top left, days
    labelled underneath when there is room for it."""

    DEFAULT_CSS = """
    DailyColumns { height: 8; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.days: tuple[DayColumn, ...] = ()
        self.first_day = ""
        self.last_day = ""

    def show(self, days: tuple[DayColumn, ...], first_day: str, last_day: str) -> None:
        self.days, self.first_day, self.last_day = days, first_day, last_day
        self.refresh()

    def render(self) -> RenderResult:
        width, height = self.size.width, self.size.height
        counts = [day.cases for day in self.days]
        if not counts or width < 4 or height < 2:
            return Content.styled("No days in the window.", MUTED)
        busiest = max(counts)
        gutter = len(str(busiest)) + 1
        room = max(1, width - gutter)
        grouped = bucket(counts, room)
        column_width = max(1, min(MAX_COLUMN_WIDTH, room // len(grouped)))
        step = column_width if column_width > 1 else 1
        top = max(grouped)
        rows = height - 1
        columns = [column_cells(value, top, rows) for value in grouped]
        lines: list[Content] = []
        for row in range(rows):
            label = str(top) if row == 0 else ("0" if row == rows - 1 else "")
            cells = "".join(
                (cells[row] * max(1, column_width - 1)).ljust(step) for cells in columns
            )
            lines.append(
                Content.styled(label.rjust(gutter - 1) + " ", MUTED)
                + Content.styled(cells, "$accent")
            )
        lines.append(Content.styled(self._axis(gutter, step, len(grouped), room), MUTED))
        return Content("\n").join(lines)

    def _axis(self, gutter: int, step: int, columns: int, room: int) -> str:
        """Each day's label under its column when they fit, else the first and last day."""
        if columns == len(self.days) and step >= 3:
            labels = "".join(day.label[: step - 1].ljust(step) for day in self.days)
            return " " * gutter + labels
        ends = self.first_day.ljust(max(0, room - len(self.last_day))) + self.last_day
        return " " * gutter + ends[:room]


class AttainmentChart(Widget):
    """SLA attainment per row: a bar for acknowledging and one for responding."""

    DEFAULT_CSS = """
    AttainmentChart { height: auto; }
    """

    KEY_WIDTH = 17
    TEXT_WIDTH = 10

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.rows: tuple[AttainmentRow, ...] = ()

    def show(self, rows: tuple[AttainmentRow, ...]) -> None:
        self.rows = rows
        self.refresh(layout=True)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return 1 + max(1, len(self.rows))

    def _bar_width(self) -> int:
        fixed = self.KEY_WIDTH + 6 + 2 * (self.TEXT_WIDTH + 2)
        return max(MIN_BAR, (self.size.width - fixed) // 2)

    def _gauge(self, fraction: float | None, text: str, width: int) -> Content:
        if fraction is None:
            bar = Content.styled("·" * width, MUTED)
        else:
            drawn = horizontal_bar(fraction, width)
            bar = Content.styled(drawn, attainment_style(fraction)) + Content.styled(
                "·" * (width - len(drawn)), MUTED
            )
        return bar + Content(" " + text.rjust(self.TEXT_WIDTH) + " ")

    def render(self) -> RenderResult:
        width = self._bar_width()
        head = (
            " " * (self.KEY_WIDTH + 6)
            + "acknowledged in time".ljust(width + self.TEXT_WIDTH + 2)
            + "responded in time"
        )
        lines = [Content.styled(head, MUTED)]
        if not self.rows:
            lines.append(Content.styled("No cases opened in the window.", MUTED))
        for row in self.rows:
            lines.append(
                Content.assemble(
                    (row.key[: self.KEY_WIDTH].ljust(self.KEY_WIDTH), "bold"),
                    (f"{row.cases:>4}  ", MUTED),
                    self._gauge(row.acknowledge, row.acknowledge_text, width),
                    self._gauge(row.respond, row.respond_text, width),
                )
            )
        return Content("\n").join(lines)


class LoadChart(Widget):
    """Pages per person: a bar of day pages with the night pages stacked on it."""

    DEFAULT_CSS = """
    LoadChart { height: auto; }
    """

    HANDLE_WIDTH = 12
    TEXT_WIDTH = 26

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.rows: tuple[LoadRow, ...] = ()
        self.fairness = ""

    def show(self, rows: tuple[LoadRow, ...], fairness: str) -> None:
        self.rows, self.fairness = rows, fairness
        self.refresh(layout=True)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return 2 + max(1, len(self.rows))

    def render(self) -> RenderResult:
        width = max(MIN_BAR, self.size.width - self.HANDLE_WIDTH - self.TEXT_WIDTH - 1)
        busiest = max((row.pages for row in self.rows), default=0)
        lines = [
            Content.assemble(
                (FULL, "$primary"),
                (" day  ", MUTED),
                (FULL, "$sla-warn"),
                (" night (22:00-07:00 on the person's clock)", MUTED),
            ),
        ]
        if not self.rows:
            lines.append(Content.styled("Nobody on the desk.", MUTED))
        for row in self.rows:
            day, night = stacked_bar(
                (row.pages - row.night_pages) / busiest if busiest else 0.0,
                row.night_pages / busiest if busiest else 0.0,
                width,
            )
            noun = "page " if row.pages == 1 else "pages"
            text = f"{row.pages:>4} {noun} {row.night_pages:>3} night {row.share_text:>4}"
            lines.append(
                Content.assemble(
                    (row.handle[: self.HANDLE_WIDTH].ljust(self.HANDLE_WIDTH), "bold"),
                    (day, "$primary"),
                    (night, "$sla-warn"),
                    " " * (width - len(day) - len(night) + 1),
                    (text, MUTED if row.pages == 0 else ""),
                )
            )
        lines.append(Content.styled(self.fairness, MUTED))
        return Content("\n").join(lines)


class FigureTile(Vertical):
    """One headline figure in a box, with its trend under it when it has one."""

    def compose(self) -> ComposeResult:
        yield Static("", classes="figure-value", markup=False)
        yield Static("", classes="figure-detail", markup=False)
        yield Sparkline([], classes="figure-trend")

    def show(self, figure: Figure) -> None:
        self.border_title = figure.label
        self.query_one(".figure-value", Static).update(figure.value)
        self.query_one(".figure-detail", Static).update(figure.detail)
        trend = self.query_one(".figure-trend", Sparkline)
        trend.display = bool(figure.trend)
        trend.data = list(figure.trend)


class StatsBoard(VerticalScroll, can_focus=True):
    """The whole board; scrolls when the terminal is shorter than it."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.view: StatsView | None = None

    def compose(self) -> ComposeResult:
        yield Static("Reading the desk's figures…", id="stats-period", markup=False)
        yield Horizontal(id="stats-figures")
        yield DailyColumns(id="stats-daily")
        with Horizontal(id="stats-sla"):
            yield AttainmentChart(id="stats-by-severity")
            yield AttainmentChart(id="stats-by-category")
        yield LoadChart(id="stats-load")

    def on_mount(self) -> None:
        self.query_one("#stats-daily").border_title = "Cases opened per day"
        self.query_one("#stats-by-severity").border_title = "SLA attainment by severity"
        self.query_one("#stats-by-category").border_title = "SLA attainment by category"
        self.query_one("#stats-load").border_title = "Pages per responder"

    async def show(self, view: StatsView) -> None:
        self.view = view
        self.query_one("#stats-period", Static).update(view.period)
        strip = self.query_one("#stats-figures", Horizontal)
        tiles = list(strip.query_children(FigureTile))
        if len(tiles) != len(view.figures):
            await strip.remove_children()
            tiles = [FigureTile(classes="stats-figure") for _ in view.figures]
            await strip.mount_all(tiles)
        for tile, figure in zip(tiles, view.figures, strict=True):
            tile.show(figure)
        self.query_one("#stats-daily", DailyColumns).show(view.days, view.first_day, view.last_day)
        self.query_one("#stats-by-severity", AttainmentChart).show(view.by_severity)
        self.query_one("#stats-by-category", AttainmentChart).show(view.by_category)
        self.query_one("#stats-load", LoadChart).show(view.load, view.fairness)

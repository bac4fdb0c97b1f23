"""The Stats screen (`s`): the desk's figures over a window ending now, drawn.

The figures are `app.services.shiftwork.stats.compute_stats` of the facts `load_facts`
reads (the same numbers `vigil stats` prints), read in a thread worker; `stats_view` words
them for the widgets.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, ClassVar, cast

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, get_current_worker

from app.console.desk import read_stats
from app.console.messages import StatsLoaded
from app.core.times import format_instant
from app.services.shiftwork.stats import (
    DeskStats,
    SlaRow,
    SlaTally,
    fairness_text,
    format_seconds,
    percent,
)
from themes import STYLES
from widgets.stats_view import AttainmentRow, DayColumn, Figure, LoadRow, StatsBoard, StatsView
from widgets.timefmt import plural, viewer_zone

if TYPE_CHECKING:
    from app.console.host import ConsoleHost

PERIODS = (1, 7, 30, 90)
"""The windows `p` steps through, in days; the screen opens on the second."""
DEFAULT_PERIOD = 7


def tally_text(tally: SlaTally) -> str:
    """`83% 5/6`; `2 pending` before any deadline was decided; `-` with no deadlines."""
    decided = tally.met + tally.missed
    if decided:
        return f"{percent(tally.attainment)} {tally.met}/{decided}"
    return f"{tally.pending} pending" if tally.pending else "-"


def _attainment(rows: tuple[SlaRow, ...]) -> tuple[AttainmentRow, ...]:
    return tuple(
        AttainmentRow(
            key=row.key,
            cases=row.cases,
            acknowledge=row.acknowledge.attainment,
            acknowledge_text=tally_text(row.acknowledge),
            respond=row.respond.attainment,
            respond_text=tally_text(row.respond),
        )
        for row in rows
    )


def stats_view(stats: DeskStats, days: int) -> StatsView:
    """The figures as the Stats screen words and draws them."""
    zone = viewer_zone(stats.zone)
    tta, ttr = stats.time_to_acknowledge, stats.time_to_resolve
    fairness = fairness_text(stats.page_fairness)
    night_fairness = fairness_text(stats.night_fairness)
    busiest = max(stats.cases_per_day, key=lambda d: d.cases, default=None)
    busiest_text = (
        f"busiest {busiest.day:%a %d %b}: {busiest.cases}"
        if busiest is not None and busiest.cases
        else "no cases in the window"
    )
    figures = (
        Figure("Cases opened", str(stats.cases_opened), busiest_text, tuple(stats.daily_counts)),
        Figure(
            "Time to acknowledge (MTTA)",
            f"mean {format_seconds(tta.mean_seconds)}  p90 {format_seconds(tta.p90_seconds)}",
            f"over {plural(tta.count, 'acknowledged case')}",
        ),
        Figure(
            "Time to resolve (MTTR)",
            f"mean {format_seconds(ttr.mean_seconds)}  p90 {format_seconds(ttr.p90_seconds)}",
            f"over {plural(ttr.count, 'resolved case')}",
        ),
        Figure(
            "Pages",
            f"{stats.pages} sent, {stats.night_pages} at night",
            f"fairness {fairness}, at night {night_fairness}",
        ),
    )
    period = (
        f"Last {plural(days, 'day')}: {format_instant(stats.since, zone)} to "
        f"{format_instant(stats.until, zone)} ({stats.zone})"
    )
    return StatsView(
        period=period,
        figures=figures,
        days=tuple(DayColumn(str(d.day.day), d.cases) for d in stats.cases_per_day),
        first_day=f"{stats.cases_per_day[0].day:%a %d %b}" if stats.cases_per_day else "",
        last_day=f"{stats.cases_per_day[-1].day:%a %d %b}" if stats.cases_per_day else "",
        by_severity=_attainment(stats.sla_by_severity),
        by_category=_attainment(stats.sla_by_category),
        load=tuple(
            LoadRow(r.handle, r.pages, r.night_pages, percent(r.share)) for r in stats.responders
        ),
        fairness=(
            f"Fairness of the load {fairness}, at night {night_fairness} "
            "(1.00: everyone carries the same; lower: a few carry most)"
        ),
    )


class StatsScreen(Screen[None]):
    """MTTA and MTTR, SLA attainment, the paging load and cases per day."""

    CSS_PATH = STYLES / "shiftwork.tcss"
    AUTO_FOCUS = "#stats"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape",
            "close",
            "Back",
            id="stats.close",
            tooltip="Back to the queue",
        ),
        Binding(
            "p",
            "next_period",
            "Period",
            id="stats.period",
            tooltip="Switch the window: last day, 7 days, 30 days or 90 days",
        ),
        Binding(
            "r",
            "refresh",
            "Refresh",
            id="stats.refresh",
            tooltip="Read the figures again, up to now",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.days = DEFAULT_PERIOD
        self.stats: DeskStats | None = None

    @property
    def vigil(self) -> ConsoleHost:
        return cast("ConsoleHost", self.app)

    @property
    def board(self) -> StatsBoard:
        return self.query_one("#stats", StatsBoard)

    def compose(self) -> ComposeResult:
        profile = self.vigil.profile
        yield Static(
            f"Desk figures · {profile.handle} · times in {profile.timezone}",
            classes="shift-title",
            markup=False,
        )
        yield StatsBoard(id="stats")
        yield Footer()

    def on_mount(self) -> None:
        self._read(self.days)

    @work(thread=True, name="desk figures", group="stats", exclusive=True, exit_on_error=False)
    def _read(self, days: int) -> None:
        app = self.vigil
        until = app.clock.now()
        since = until - timedelta(days=days)
        stats = read_stats(app.db, since, until, app.profile.timezone)
        if not get_current_worker().is_cancelled:
            self.post_message(StatsLoaded(days, stats, stats_view(stats, days)))

    async def on_stats_loaded(self, message: StatsLoaded) -> None:
        if message.days != self.days:
            return  # the person switched the window again meanwhile
        self.stats = message.stats
        await self.board.show(message.view)

    def action_next_period(self) -> None:
        position = PERIODS.index(self.days) if self.days in PERIODS else 0
        self.days = PERIODS[(position + 1) % len(PERIODS)]
        self._read(self.days)

    def action_refresh(self) -> None:
        self._read(self.days)

    def action_close(self) -> None:
        self.dismiss()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.vigil.report_worker(event, self)

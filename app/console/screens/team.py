"""The team view (`t`): who is on the desk, who is on call now, how each person is reached
and when (their notification rules per urgency and quiet hours), and each schedule's
support hours. Read-only: the team file is where the team changes.

Read in a thread worker through the presenter `app.services.team.roster.team_view`; the
board renders the view object it posts back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, get_current_worker

from app.console.desk import read_team
from app.console.messages import TeamLoaded
from themes import STYLES
from widgets.team_view import TeamBoard
from widgets.timefmt import viewer_zone

if TYPE_CHECKING:
    from app.console.host import ConsoleHost


class TeamScreen(Screen[None]):
    """The desk's responders and schedules, as they stand now."""

    CSS_PATH = STYLES / "team.tcss"
    AUTO_FOCUS = "#team"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="team.close", tooltip="Back to the queue"),
        Binding(
            "r",
            "refresh",
            "Refresh",
            id="team.refresh",
            tooltip="Read the team and who is on call again, as of now",
        ),
    ]

    @property
    def vigil(self) -> ConsoleHost:
        return cast("ConsoleHost", self.app)

    @property
    def board(self) -> TeamBoard:
        return self.query_one("#team", TeamBoard)

    def compose(self) -> ComposeResult:
        profile = self.vigil.profile
        yield Static(
            f"Team · {profile.handle} · times in {profile.timezone}",
            id="team-title",
            classes="team-title",
            markup=False,
        )
        yield TeamBoard(id="team")
        yield Footer()

    def on_mount(self) -> None:
        self._read()

    @work(thread=True, name="team view", group="team", exclusive=True, exit_on_error=False)
    def _read(self) -> None:
        app = self.vigil
        view = read_team(app.db, app.clock.now(), viewer_zone(app.profile.timezone))
        if not get_current_worker().is_cancelled:
            self.post_message(TeamLoaded(view))

    async def on_team_loaded(self, message: TeamLoaded) -> None:
        self.query_one("#team-title", Static).update(message.view.title)
        await self.board.show(message.view)

    def action_refresh(self) -> None:
        self._read()

    def action_close(self) -> None:
        self.dismiss()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.vigil.report_worker(event, self)

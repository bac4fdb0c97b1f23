"""The Textual app of the console: themes, keymap, the in-process escalation engine, the
help screen, and the one place where a failed worker becomes a message on screen."""

from __future__ import annotations

import asyncio
import gc
import importlib
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC
from typing import Any, ClassVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from platformdirs import user_downloads_path
from textual import events, work
from textual.app import App, CSSPathType, SystemCommand
from textual.binding import Binding, BindingType
from textual.filter import LineFilter
from textual.screen import Screen
from textual.theme import Theme
from textual.worker import Worker, WorkerState

from app.console import desk
from app.console.commands import ConsoleCommands, ThemeCommands
from app.console.desk import FirstRead, Profile
from app.console.failures import describe_failure
from app.console.host import COMFORTABLE_WIDTH
from app.console.messages import HandlesLoaded, HandoffNoticesClaimed
from app.console.safe_text import TerminalSafe
from app.console.screens.dialogs import CANCEL, Confirm, ConfirmWithY, FilterDialog
from app.console.screens.handover import PendingHandoverDialog, announce_pending_handovers
from app.console.screens.help import HelpScreen, help_rows
from app.console.screens.postmortem import PostMortemScreen
from app.console.screens.queue import QueueScreen
from app.console.screens.template import TemplateDialog
from app.console.settings import ConsoleSettings
from app.core.clock import Clock
from app.delivery.local import DesktopNotifier
from app.engine.runner import EngineRunner, EscalationEngine, engine_name
from app.services.shiftwork.swaps import claim_handoff_notices
from data.db import Database
from themes import CONSOLE_CSS_PATHS, DEFAULT_THEME, THEME_VARIABLE_DEFAULTS, THEMES
from widgets.header import ENGINE_STALE_AFTER
from widgets.queue_table import QueueTable
from widgets.timefmt import viewer_zone

LATER_SCREENS: dict[str, tuple[str, str]] = {
    "calendar": ("app.console.screens.calendar", "CalendarScreen"),
    "handover": ("app.console.screens.handover", "HandoverScreen"),
    "stats": ("app.console.screens.stats", "StatsScreen"),
    "team": ("app.console.screens.team", "TeamScreen"),
    "inbox": ("app.console.screens.inbox", "InboxScreen"),
    "agency": ("app.console.screens.agency", "AgencyScreen"),
}
"""Screens imported when first opened, not at start-up: name -> (module, class).
Each class takes no arguments and reads `db`, `clock` and `profile` from the app."""

READ_GROUPS = frozenset({"feed", "queue-window", "detail", "casework", "pages", "status"})
"""Worker groups that only read: when the database fails them, the screen retries."""

HANDOFF_SECONDS = 30.0
"""How often the console claims its person's hand-off notices."""


QUIT = Binding(
    "ctrl+q",
    "quit",
    "Quit",
    show=False,
    priority=True,
    id="app.quit",
    tooltip="Close the console (asks first when its escalation engine is the desk's only one)",
)


class VigilApp(App[int]):
    """The on-call console of one person (`profile`) against one database."""

    CSS_PATH: ClassVar[CSSPathType | None] = [*CONSOLE_CSS_PATHS]
    HORIZONTAL_BREAKPOINTS = [
        (0, "-narrow"),
        (COMFORTABLE_WIDTH, "-wide"),
    ]
    """Every screen is `-narrow` or `-wide`: its layout, and where its toasts go."""
    TITLE = "Vigil"
    COMMANDS = App.COMMANDS | {ConsoleCommands, ThemeCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "question_mark",
            "help",
            "Help",
            id="app.help",
            tooltip="List every key of this screen and what it does",
        ),
        QUIT,
    ]

    def __init__(
        self,
        db: Database,
        clock: Clock,
        profile: Profile,
        *,
        first_read: FirstRead | None = None,
        desktop: DesktopNotifier,
        engine: bool = False,
        settings: ConsoleSettings | None = None,
        theme: str | None = None,
        cursor_blink: bool = True,
    ) -> None:
        super().__init__()
        self._terminal_safe = TerminalSafe()
        self.db = db
        self.clock = clock
        self.profile = profile
        self.first_read = first_read
        """The queue's first rows, read before the app started; the queue takes them once."""
        self.desktop = desktop
        self.settings = settings or ConsoleSettings()
        self.cursor_blink = cursor_blink
        self.handles: tuple[str, ...] = ()
        self.last_key_at = clock.now()
        """When the person last pressed a key: revealed details hide after a while without."""
        self._engine_wanted = engine
        self._saved_theme = theme
        self._scheduler: AsyncIOScheduler | None = None
        self._runner: EngineRunner | None = None
        self._engine_name: str | None = None
        self._quit_question: ConfirmWithY | None = None
        self._handoff_worker: Worker[None] | None = None
        self._desk_work_started = False
        # Before the app runs, so its styles are parsed once, with the person's theme
        # (choosing it in `on_mount` would parse every stylesheet a second time).
        for own in THEMES:
            self.register_theme(own)
        self.theme = theme if theme and theme in self.available_themes else DEFAULT_THEME

    # ----------------------------------------------------------------- start-up

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded:
            self.last_key_at = self.clock.now()
        await super().on_event(event)

    def get_line_filters(self) -> Sequence[LineFilter]:
        return [*super().get_line_filters(), self._terminal_safe]

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(THEME_VARIABLE_DEFAULTS)

    def get_default_screen(self) -> Screen[Any]:
        return QueueScreen()

    def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.set_keymap(self.settings.keymap)
        for problem in self.settings.problems:
            self.notify(
                problem, title="Settings ignored", severity="warning", timeout=30, markup=False
            )
        # A full garbage collection walks every tracked object, and after start-up that is
        # mostly what never goes away (modules, the widget tree, SQLAlchemy's tables): over
        # 100 ms on a modest machine, enough to stall the queue. Frozen objects are left out
        # of collections; they are handed back when the console closes.
        self.call_after_refresh(gc.freeze)

    def start_desk_work(self) -> None:
        """Everything the console does besides showing the queue: the home screen calls it
        once its first rows are on screen (or could not be read), so none of it competes
        with the first read. Later calls do nothing."""
        if self._desk_work_started:
            return
        self._desk_work_started = True
        self._load_handles()
        self._announce_pending_handovers()
        self.check_handoffs()
        self.set_interval(HANDOFF_SECONDS, self.check_handoffs, name="hand-off notices")
        if self._engine_wanted:
            self._start_engine()

    def _start_engine(self) -> None:
        """The escalation loop in this process, on an AsyncIOScheduler of this event loop."""
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.start()
        self._engine_name = engine_name(f"console:{self.profile.handle}")
        self._runner = EngineRunner(
            EscalationEngine(self.db, self.clock, name=self._engine_name), self._scheduler
        )
        self._runner.start()

    def wake_engine(self) -> None:
        """Let the in-process engine look for due work now (after a change)."""
        if self._runner is not None:
            self._runner.wake()

    # ----------------------------------------------------------------- quitting

    async def action_quit(self) -> None:
        """Close the console, unless its engine is the only one running for the desk: then
        ask first (no by default). A second Ctrl+Q while asked says yes."""
        if self._runner is None or self._quit_question is not None:
            self.exit()
        else:
            self._quit_or_ask(self._engine_name)

    @work(name="quit", group="quit", exclusive=True, exit_on_error=False)
    async def _quit_or_ask(self, own_engine: str | None) -> None:
        try:
            others = await asyncio.to_thread(desk.engine_heartbeat, self.db, other_than=own_engine)
        except Exception as exc:
            if not describe_failure(exc).database_down:
                raise
            others = None  # unknown: ask, as if no other engine ran
        if others is not None and self.clock.now() - others <= ENGINE_STALE_AFTER:
            self.exit()
            return
        quit_key = self.get_key_display(replace(QUIT, key=self.key_for("app.quit", QUIT.key)))
        self._quit_question = ConfirmWithY(
            "Quit?",
            "This console runs the desk's only escalation engine: pages will wait until an "
            "engine runs again.",
            yes=f"quit (or {quit_key} again)",
        )
        self.push_screen(self._quit_question, self._quit_answered)

    def _quit_answered(self, yes: bool | None) -> None:
        self._quit_question = None
        if yes:
            self.exit()

    async def on_unmount(self) -> None:
        gc.unfreeze()
        runner, self._runner = self._runner, None
        if runner is not None:
            await asyncio.to_thread(runner.stop)
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    # ----------------------------------------------------------------- themes

    def _theme_changed(self, theme: Theme) -> None:
        if theme.name != self._saved_theme:
            self._saved_theme = theme.name
            self._save_theme(theme.name)

    @work(thread=True, name="save theme", group="settings", exclusive=True, exit_on_error=False)
    def _save_theme(self, name: str) -> None:
        desk.save_theme_choice(self.db, self.profile.handle, name)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Textual's own commands, except its theme picker: ours lists the console's."""
        for command in super().get_system_commands(screen):
            if command.title != "Theme":
                yield command

    # ----------------------------------------------------------------- screenshots

    def deliver_screenshot(
        self,
        filename: str | None = None,
        path: str | None = None,
        time_format: str | None = None,
    ) -> str | None:
        """Textual's screenshot (the palette's Screenshot, any screenshot key), refused while
        sensitive details are revealed: a file would keep what the screen hides again."""
        if any(isinstance(s, QueueScreen) and s.revealed is not None for s in self.screen_stack):
            self.notify(
                "No screenshot while sensitive details are revealed; they hide again when you "
                "move to another case.",
                title="Screenshot refused",
                severity="warning",
                markup=False,
            )
            return None
        if path is None:  # Textual's default, the Downloads folder, which may not exist yet
            folder = user_downloads_path()
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                self.notify(
                    f"No screenshot: cannot make {folder}: {error.strerror}",
                    title="Screenshot",
                    severity="error",
                    markup=False,
                )
                return None
            path = str(folder)
        return super().deliver_screenshot(filename, path, time_format)

    # ----------------------------------------------------------------- helpers

    @work(name="pending handovers", group="handover-pending", exit_on_error=False)
    async def _announce_pending_handovers(self) -> None:
        await announce_pending_handovers(self)

    @work(thread=True, name="responder handles", group="handles", exit_on_error=False)
    def _load_handles(self) -> None:
        self.post_message(HandlesLoaded(tuple(desk.active_handles(self.db))))

    def on_handles_loaded(self, message: HandlesLoaded) -> None:
        self.handles = message.handles

    def key_for(self, binding_id: str, default: str) -> str:
        """The key a binding has under the person's keymap."""
        return self.settings.keymap.get(binding_id, default)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        rows = help_rows(self, self.screen.active_bindings.values())
        note = (
            "Remap a key by its id in $XDG_CONFIG_HOME/vigil/console.toml (default "
            '~/.config/vigil/console.toml), under [keymap]: "queue.ack" = "A".  '
            "Escape: close."
        )
        self.push_screen(HelpScreen(rows, note))

    def open_screen(self, name: str) -> None:
        """Open one of the `LATER_SCREENS`, importing it on first use."""
        module_name, class_name = LATER_SCREENS[name]
        self.push_screen(getattr(importlib.import_module(module_name), class_name)())

    # ----------------------------------------------------------------- hand-off notices

    def check_handoffs(self) -> None:
        """Claim the hand-off notices due for this console's person (unless a claim runs)."""
        if self._handoff_worker is None or not self._handoff_worker.is_running:
            self._handoff_worker = self._claim_handoffs()

    @work(thread=True, name="hand-off notices", group="handoff", exit_on_error=False)
    def _claim_handoffs(self) -> None:
        try:
            notices = claim_handoff_notices(self.db, self.clock, handles={self.profile.handle})
        except Exception as exc:
            if describe_failure(exc).database_down:
                return  # the queue already says so; nothing was claimed, the next poll retries
            raise
        if notices:
            self.post_message(HandoffNoticesClaimed(tuple(notices)))

    def on_handoff_notices_claimed(self, message: HandoffNoticesClaimed) -> None:
        """One bell, then a toast per notice, on the person's own wall clock."""
        self.bell()
        zone = viewer_zone(self.profile.timezone)
        for notice in message.notices:
            going_on = notice.kind == "on"
            self.notify(
                notice.text(zone),
                title="You go on call" if going_on else "Your shift ended",
                severity="warning" if going_on else "information",
                timeout=120,
                markup=False,
            )

    # ----------------------------------------------------------------- failures

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.report_worker(event)

    def report_worker(self, event: Worker.StateChanged, screen: Screen[Any] | None = None) -> None:
        """The one handler of worker outcomes: errors become a clear message on screen."""
        worker = event.worker
        queue = screen if isinstance(screen, QueueScreen) else None
        if event.state == WorkerState.SUCCESS and worker.group == "feed" and queue:
            queue.feed_works()
        if event.state != WorkerState.ERROR or worker.error is None:
            return
        failure = describe_failure(worker.error)
        if failure.title == "Unexpected error":
            self.log.error(f"worker {worker.name!r} failed", worker.error)
        if failure.database_down and queue is not None and worker.group in READ_GROUPS:
            queue.reads_failed(failure.message)
            return
        message = failure.message
        if failure.database_down and worker.group == "case-action":
            message += ". Nothing was changed; what you typed is kept, so just try again."
        self.notify(
            message, title=failure.title, severity=failure.severity, timeout=10, markup=False
        )


def _later_screen_bindings() -> list[Iterable[BindingType]]:
    """The keys of the screens imported on first use."""
    return [
        getattr(importlib.import_module(module_name), class_name).BINDINGS
        for module_name, class_name in LATER_SCREENS.values()
    ]


def binding_ids() -> frozenset[str]:
    """Every binding id a keymap may name."""
    groups: list[Iterable[BindingType]] = [
        VigilApp.BINDINGS,
        QueueScreen.BINDINGS,
        QueueTable.BINDINGS,
        HelpScreen.BINDINGS,
        Confirm.BINDINGS,
        ConfirmWithY.BINDINGS,
        FilterDialog.BINDINGS,
        [CANCEL],
        PendingHandoverDialog.BINDINGS,
        PostMortemScreen.BINDINGS,
        TemplateDialog.BINDINGS,
        *_later_screen_bindings(),
    ]
    return frozenset(
        binding.id
        for group in groups
        for binding in group
        if isinstance(binding, Binding) and binding.id
    )

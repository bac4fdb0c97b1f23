"""What a screen may ask of the console that shows it.

Screens are written against this protocol, not against `VigilApp` itself, so the app
imports its screens and no screen imports the app: the console has no import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from datetime import datetime

    from textual.app import ScreenResultCallbackType
    from textual.screen import Screen
    from textual.worker import Worker

    from app.console.desk import FirstRead, Profile
    from app.console.settings import ConsoleSettings
    from app.core.clock import Clock
    from app.delivery.local import DesktopNotifier
    from data.db import Database

COMFORTABLE_WIDTH = 120
"""Below this many columns, screens switch to their narrow layout."""


class ConsoleHost(Protocol):
    """The console app as its screens see it."""

    db: Database
    clock: Clock
    profile: Profile
    first_read: FirstRead | None
    desktop: DesktopNotifier
    cursor_blink: bool
    handles: tuple[str, ...]
    settings: ConsoleSettings
    last_key_at: datetime
    """When the person last pressed a key (on the console's clock)."""

    def key_for(self, binding_id: str, default: str) -> str: ...

    def report_worker(
        self, event: Worker.StateChanged, screen: Screen[Any] | None = None
    ) -> None: ...

    def wake_engine(self) -> None: ...

    def start_desk_work(self) -> None: ...

    def open_screen(self, name: str) -> None: ...

    def push_screen(
        self,
        screen: Screen[Any] | str,
        callback: ScreenResultCallbackType[Any] | None = None,
        wait_for_dismiss: bool = False,
    ) -> Any: ...

    def get_key_display(self, binding: Any) -> str: ...

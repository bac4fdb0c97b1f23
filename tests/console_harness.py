"""Opening the console under Pilot as a person would, and what it said: shared by the
console's tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual import events
from textual.app import App
from textual.keys import _character_to_key
from textual.pilot import Pilot
from textual.worker import WorkerFailed

from app.console import VigilApp, build_app
from app.console.screens.queue import QueueScreen
from app.core.clock import Clock
from app.delivery.local import UNAVAILABLE, DesktopOutcome
from data.db import Database

SIZE = (160, 48)
SETTLE_ROUNDS = 40

OpenConsole = Callable[..., AbstractAsyncContextManager["Console"]]


@dataclass
class FakeDesktop:
    """A desktop notifier that records what it was asked to show."""

    outcome: DesktopOutcome = field(
        default_factory=lambda: DesktopOutcome(UNAVAILABLE, "no notification backend here")
    )
    shown: list[tuple[str, str]] = field(default_factory=list)

    def notify(self, title: str, message: str) -> DesktopOutcome:
        self.shown.append((title, message))
        return self.outcome


async def settle(app: App[Any], pilot: Pilot[Any]) -> None:
    """Let every worker finish and every message it posted be handled (a worker that
    failed is the console's to report, which is what some tests look for).

    A key can start a chain: a worker ends, its message closes a screen, the screen
    under it starts a worker to reload. So this goes on, past a few rounds, until two
    rounds in a row begin with no worker running: on a loaded machine a fixed number
    of rounds ran out before the end of such a chain."""
    quiet = 0
    for round_ in range(SETTLE_ROUNDS):
        busy = bool(app.workers)
        with contextlib.suppress(WorkerFailed):
            await app.workers.wait_for_complete()
        await pilot.pause()
        quiet = 0 if busy else quiet + 1
        if round_ >= 3 and quiet >= 2:
            return


def snapshot_keys(*keys: str, text: str = "") -> Callable[[Pilot[Any]], Awaitable[None]]:
    """A snapshot's `run_before`: settle, press each of `keys` (one entry may hold several
    keys, space-separated) and settle after each, type `text`, then clear the toasts so
    the picture shows the screen, not what it said."""

    async def run(pilot: Pilot[Any]) -> None:
        await settle(pilot.app, pilot)
        for key in keys:
            await pilot.press(*key.split())
            await settle(pilot.app, pilot)
        if text:
            await pilot.press(*text)
            await settle(pilot.app, pilot)
        pilot.app.clear_notifications()
        await pilot.pause()

    return run


@dataclass
class Toast:
    message: str
    title: str
    severity: str


@dataclass
class Console:
    """One open console and what it said."""

    app: VigilApp
    pilot: Pilot[Any]
    toasts: list[Toast]
    bells: list[int]

    @property
    def screen(self) -> QueueScreen:
        screen = self.app.screen_stack[0]
        assert isinstance(screen, QueueScreen)
        return screen

    async def settle(self) -> None:
        await settle(self.app, self.pilot)

    async def press(self, *keys: str) -> None:
        await self.pilot.press(*keys)
        await self.settle()

    async def type(self, text: str) -> None:
        """Type `text` as a quick typist does: each character is its own key event, in
        order, queued without a pause between them (Pilot waits for the process to go idle
        after every key it presses, which makes a sentence take seconds)."""
        for character in text:
            key = character if character.isalnum() else _character_to_key(character)
            event = events.Key(key, character)
            event.set_sender(self.app)
            self.app.post_message(event)
        await self.settle()

    async def poll(self) -> None:
        """What the console's 0.5 s timer does: read the change feed once."""
        await self.settle()
        self.screen.check_feed()
        await self.settle()

    def refs(self) -> list[str]:
        table = self.screen.table
        rows = [table.row_at(i) for i in range(table.total)]
        return [row.ref for row in rows if row is not None]

    def cursor_ref(self) -> str | None:
        row = self.screen.table.cursor_row
        return row.ref if row is not None else None

    def said(self, text: str) -> Toast:
        for toast in self.toasts:
            if text in toast.message or text in toast.title:
                return toast
        raise AssertionError(f"no toast saying {text!r}; toasts: {self.toasts}")


def console_opener(
    db: Database, clock: Clock, folder: Path, desktop: FakeDesktop | None = None
) -> OpenConsole:
    """`async with opener("ana") as console:` opens the console of a person (no engine, no
    settings file unless given, no cursor blink, toasts recorded but not shown unless
    `notifications`), records its bells, and lets it settle first."""

    @asynccontextmanager
    async def opener(
        handle: str = "ana",
        settings_file: Path | None = None,
        size: tuple[int, int] = SIZE,
        engine: bool = False,
        notifications: bool = False,
    ) -> AsyncIterator[Console]:
        app = build_app(
            db,
            clock,
            handle,
            engine=engine,
            desktop=desktop or FakeDesktop(),
            settings_file=settings_file or folder / "no-settings.toml",
            cursor_blink=False,
        )
        assert app is not None
        toasts: list[Toast] = []
        bells: list[int] = []
        original = app.notify

        def notify(
            message: str, *, title: str = "", severity: Any = "information", **kwargs: Any
        ) -> None:
            toasts.append(Toast(message, title, severity))
            original(message, title=title, severity=severity, **kwargs)

        app.notify = notify  # type: ignore[method-assign]
        app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
        async with app.run_test(size=size, notifications=notifications) as pilot:
            console = Console(app, pilot, toasts, bells)
            await console.settle()
            yield console

    return opener

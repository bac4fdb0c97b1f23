"""Command palette providers (Ctrl+P).

`ConsoleCommands` is screen-aware: it offers every action bound on the screen the
palette was opened from (and the app's own), under its description and tooltip, so the
palette and the keys never drift apart. `ThemeCommands` switches between the console's
themes; the choice is remembered for the person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode

from themes import THEME_LABELS, THEMES


class ConsoleCommands(Provider):
    """The actions of the current screen and of the app."""

    def _commands(self) -> Iterator[tuple[str, str, Callable[[], object]]]:
        screen = self.screen
        seen: set[str] = set()
        for active in screen.active_bindings.values():
            binding = active.binding
            if binding.system or not binding.description:
                continue
            if active.node is not screen and active.node is not self.app:
                continue  # a widget's own keys (cursor moves) are not commands
            ident = binding.id or binding.action
            if ident in seen:
                continue
            seen.add(ident)
            title = (
                f"{binding.description}: {binding.tooltip}"
                if binding.tooltip
                else (binding.description)
            )
            key = binding.key_display or self.app.get_key_display(binding)
            yield title, f"key {key}", partial(self._run, active.node, binding.action)

    async def _run(self, node: DOMNode, action: str) -> None:
        await self.app.run_action(action, node)

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            if (score := matcher.match(title)) > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


class ThemeCommands(Provider):
    """Dark, light or high contrast."""

    def _themes(self) -> Iterator[tuple[str, str, Callable[[], None]]]:
        for theme in THEMES:
            label = THEME_LABELS[theme.name]
            yield (
                f"Theme: {label}",
                f"Switch to the {label.lower()} theme; remembered for you",
                partial(setattr, self.app, "theme", theme.name),
            )

    async def discover(self) -> Hits:
        for title, help_text, callback in self._themes():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._themes():
            if (score := matcher.match(title)) > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)

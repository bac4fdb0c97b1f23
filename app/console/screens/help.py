"""The help screen: every key of the screen underneath, as the keymap has them now."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import ActiveBinding, Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static


@dataclass(frozen=True, slots=True)
class HelpRow:
    keys: str
    description: str
    tooltip: str
    binding_id: str  # empty for Textual's own keys, which a keymap cannot name


GENERAL_ACTIONS = frozenset({"command_palette", "focus_next", "focus_previous"})
"""Textual's own actions worth listing; its other built-in keys (scrolling sideways,
copying a selection) are left out so the list stays about the desk."""


def help_rows(app: App[Any], bindings: Iterable[ActiveBinding]) -> list[HelpRow]:
    """One row per action (keys of one action joined), in the order they are bound."""
    rows: dict[str, HelpRow] = {}
    for active in bindings:
        binding = active.binding
        if binding.system or not binding.description:
            continue
        if binding.id is None and binding.action not in GENERAL_ACTIONS:
            continue
        key = binding.key_display or app.get_key_display(binding)
        ident = binding.id or binding.action
        if (known := rows.get(ident)) is not None:
            rows[ident] = HelpRow(f"{known.keys}, {key}", known.description, known.tooltip, ident)
        else:
            rows[ident] = HelpRow(key, binding.description, binding.tooltip, ident)
    return list(rows.values())


class HelpScreen(ModalScreen[None]):
    """Keys, what they do, and their ids for the keymap file (`app.console.settings`)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape,question_mark,q",
            "close",
            "Close help",
            id="help.close",
            tooltip="Back to the queue",
        ),
    ]

    def __init__(self, rows: Sequence[HelpRow], keymap_note: str) -> None:
        super().__init__()
        self.rows = tuple(rows)
        self.keymap_note = keymap_note

    def compose(self) -> ComposeResult:
        with Vertical(id="help-panel"):
            yield Static("Keys", classes="dialog-title")
            with VerticalScroll(id="help-rows"):
                for row in self.rows:
                    with Horizontal(classes="help-row"):
                        yield Label(row.keys, classes="help-key", markup=False)
                        yield Label(row.description, classes="help-description", markup=False)
                        yield Label(row.tooltip, classes="help-tooltip", markup=False)
                        yield Label(row.binding_id, classes="help-id", markup=False)
            yield Static(self.keymap_note, classes="dialog-hint", markup=False)

    def on_mount(self) -> None:
        self.query_one("#help-rows").focus()

    def action_close(self) -> None:
        self.dismiss(None)

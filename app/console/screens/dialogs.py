"""Small modal dialogs: a line of text, a yes/no question, the queue's filters.

Each returns its answer through `dismiss` (None when the person cancels), so the
screen that opened it decides what happens next. All of them work from the keyboard:
Enter answers, Escape cancels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Checkbox, Input, Label, SelectionList, Static

from data.domain import CATEGORY_LABELS, SEVERITY_LABELS

CANCEL = Binding(
    "escape",
    "cancel",
    "Cancel",
    id="dialog.cancel",
    tooltip="Close this dialog without doing anything",
)


class TextPrompt(ModalScreen[str | None]):
    """Ask for one line of text (a note, a handle); answers None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [CANCEL]

    def __init__(
        self,
        title: str,
        prompt: str,
        *,
        value: str = "",
        placeholder: str = "",
        required: bool = False,
        suggestions: Iterable[str] = (),
        max_length: int = 0,
        cursor_blink: bool = True,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.prompt = prompt
        self.value = value
        self.placeholder = placeholder
        self.required = required
        self.suggestions = tuple(suggestions)
        self.max_length = max_length
        self.cursor_blink = cursor_blink

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield Label(self.prompt, classes="dialog-prompt", markup=False)
            yield Input(
                value=self.value,
                placeholder=self.placeholder,
                suggester=(
                    SuggestFromList(self.suggestions, case_sensitive=False)
                    if self.suggestions
                    else None
                ),
                max_length=self.max_length,
                id="prompt-input",
            )
            yield Static("", id="prompt-error", classes="dialog-error", markup=False)
            yield Static("Enter: OK   Escape: cancel", classes="dialog-hint", markup=False)

    def on_mount(self) -> None:
        field = self.query_one("#prompt-input", Input)
        field.cursor_blink = self.cursor_blink
        field.focus()

    @on(Input.Submitted, "#prompt-input")
    def submit(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if self.required and not text:
            self.query_one("#prompt-error", Static).update(f"{self.prompt}: required")
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)


class Confirm(ModalScreen[bool]):
    """A yes/no question; Enter or y says yes, Escape or n says no."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,y", "answer(True)", "Yes", id="dialog.confirm", tooltip="Go ahead"),
        Binding("escape,n", "answer(False)", "No", id="dialog.cancel", tooltip="Do nothing"),
    ]

    def __init__(self, title: str, question: str) -> None:
        super().__init__()
        self.title_text = title
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield Static(self.question, classes="dialog-prompt", markup=False)
            yield Static("Enter/y: yes   Escape/n: no", classes="dialog-hint", markup=False)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ConfirmWithY(Confirm, inherit_bindings=False):
    """A yes/no question weighty enough that only `y` says yes: an Enter meant for the
    dialog before it never answers this one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="dialog.confirm_y", tooltip="Go ahead"),
        Binding("escape,n", "answer(False)", "No", id="dialog.cancel", tooltip="Do nothing"),
    ]

    def __init__(self, title: str, question: str, yes: str = "yes") -> None:
        super().__init__(title, question)
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield Static(self.question, classes="dialog-prompt", markup=False)
            yield Static(f"y: {self.yes}   Escape/n: no", classes="dialog-hint", markup=False)


@dataclass(frozen=True, slots=True)
class FilterChoice:
    """What the filter dialog chose."""

    categories: frozenset[str]
    severities: frozenset[int]
    include_resolved: bool


class FilterDialog(ModalScreen[FilterChoice | None]):
    """Choose categories, severities and whether resolved cases show."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+s",
            "apply",
            "Apply",
            id="dialog.apply",
            tooltip="Apply these filters to the queue",
        ),
        CANCEL,
    ]

    def __init__(self, current: FilterChoice) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-wide"):
            yield Static("Filter the queue", classes="dialog-title")
            with Horizontal(id="filter-lists"):
                yield SelectionList[str](
                    *(
                        (label, category.value, category.value in self.current.categories)
                        for category, label in CATEGORY_LABELS.items()
                    ),
                    id="filter-categories",
                )
                yield SelectionList[int](
                    *(
                        (f"sev{sev} {label}", sev, sev in self.current.severities)
                        for sev, label in SEVERITY_LABELS.items()
                    ),
                    id="filter-severities",
                )
            yield Checkbox(
                "Include resolved cases",
                self.current.include_resolved,
                compact=True,
                id="filter-resolved",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Apply", variant="primary", compact=True, id="filter-apply")
                yield Button("Cancel", compact=True, id="filter-cancel")
            yield Static(
                "Space: toggle   Tab: next list   Ctrl+S: apply   Escape: cancel",
                classes="dialog-hint",
            )

    def on_mount(self) -> None:
        categories = self.query_one("#filter-categories", SelectionList)
        categories.border_title = "Category (none: all)"
        self.query_one("#filter-severities", SelectionList).border_title = "Severity (none: all)"
        categories.focus()

    def choice(self) -> FilterChoice:
        return FilterChoice(
            categories=frozenset(self.query_one("#filter-categories", SelectionList).selected),
            severities=frozenset(self.query_one("#filter-severities", SelectionList).selected),
            include_resolved=self.query_one("#filter-resolved", Checkbox).value,
        )

    def action_apply(self) -> None:
        self.dismiss(self.choice())

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#filter-apply")
    def _apply_pressed(self) -> None:
        self.action_apply()

    @on(Button.Pressed, "#filter-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

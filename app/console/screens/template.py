"""Answering from a template (`T` on the queue): pick a response template, see it filled from
the case, edit it, and log it on the case as a note.

Templates come from `app.services.shiftwork.templates` (shipped ones and the team's
folder), the ones that suit the case's category first. A sensitive case's details are never
filled in: the text says so, and a person who must share something reveals the details
(audited) and pastes only that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static, TextArea
from textual.widgets.option_list import Option
from textual.worker import Worker, get_current_worker

from app.console.desk import fill_template, read_case_category
from app.console.messages import ResponseLogged, TemplateFilled, TemplatesLoaded
from app.console.screens.dialogs import Confirm
from app.services.cases import CaseService
from app.services.shiftwork.templates import (
    FilledResponse,
    ResponseTemplate,
    load_templates,
)
from themes import STYLES

if TYPE_CHECKING:
    from app.console.host import ConsoleHost

MUTED = "$foreground-muted"


def ordered_for(
    templates: tuple[ResponseTemplate, ...], category: str
) -> tuple[ResponseTemplate, ...]:
    """The templates that suit `category` first, each group by name."""
    return tuple(sorted(templates, key=lambda t: (not t.suits(category), t.name)))


def still_to_fill(text: str, unfilled: tuple[str, ...]) -> list[str]:
    """The fields whose `[name]` the person has not replaced yet."""
    return [name for name in unfilled if f"[{name}]" in text]


class TemplateDialog(ModalScreen[bool]):
    """Fill, edit and log a response; answers True once it is logged on the case."""

    CSS_PATH = STYLES / "shiftwork.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+s",
            "log",
            "Log on the case",
            id="template.log",
            tooltip="Log the text on the case as a note",
        ),
        Binding(
            "escape",
            "cancel",
            "Cancel",
            id="template.cancel",
            tooltip="Close without logging anything",
        ),
    ]

    def __init__(self, ref: str) -> None:
        super().__init__()
        self.ref = ref.strip().upper()
        self.templates: dict[str, ResponseTemplate] = {}
        self.filled: FilledResponse | None = None

    @property
    def vigil(self) -> ConsoleHost:
        return cast("ConsoleHost", self.app)

    @property
    def editor(self) -> TextArea:
        return self.query_one("#template-text", TextArea)

    def compose(self) -> ComposeResult:
        with Vertical(id="template-panel"):
            yield Static(
                f"Response for {self.ref} from a template", classes="dialog-title", markup=False
            )
            with Container(id="template-body"):
                yield OptionList(id="template-list")
                with Vertical(id="template-editor"):
                    yield Static("Reading the templates…", id="template-about", markup=False)
                    yield TextArea(id="template-text", soft_wrap=True)
            yield Static(
                "Enter: fill from the case   Tab: edit   Ctrl+S: log on the case   Escape: cancel",
                classes="dialog-hint",
                markup=False,
            )

    def on_mount(self) -> None:
        self.query_one("#template-list").border_title = "Templates"
        self.editor.cursor_blink = self.vigil.cursor_blink
        self._load()

    # ----------------------------------------------------------------- workers

    @work(thread=True, name="response templates", group="template-read", exit_on_error=False)
    def _load(self) -> None:
        templates = tuple(load_templates().values())
        category = read_case_category(self.vigil.db, self.ref)
        self.post_message(TemplatesLoaded(ordered_for(templates, category), category))

    @work(
        thread=True,
        name="fill template",
        group="template-fill",
        exclusive=True,
        exit_on_error=False,
    )
    def _fill(self, template: ResponseTemplate) -> None:
        app = self.vigil
        filled = fill_template(app.db, app.clock, app.profile.handle, template, self.ref)
        if not get_current_worker().is_cancelled:
            self.post_message(TemplateFilled(template, filled))

    @work(thread=True, name="log response", group="case-action", exit_on_error=False)
    def _log(self, text: str) -> None:
        app = self.vigil
        case = CaseService(app.db, app.clock).add_note(app.profile.handle, self.ref, text)
        self.post_message(ResponseLogged(case.ref))

    # ----------------------------------------------------------------- results

    def on_templates_loaded(self, message: TemplatesLoaded) -> None:
        self.templates = {t.name: t for t in message.templates}
        options = self.query_one("#template-list", OptionList)
        options.clear_options()
        for template in message.templates:
            suits = template.suits(message.category)
            detail = f"for {template.audience.replace('_', ' ')}"
            options.add_option(
                Option(
                    Content.assemble(
                        (template.title, "" if suits else MUTED),
                        "\n",
                        (detail if suits else f"{detail} · not for {message.category}", MUTED),
                    ),
                    id=template.name,
                )
            )
        if not message.templates:
            self.query_one("#template-about", Static).update("No response templates.")
            return
        options.highlighted = 0
        options.focus()
        self._fill(message.templates[0])

    def on_template_filled(self, message: TemplateFilled) -> None:
        self.filled = message.filled
        template = message.template
        about = f"{template.title} (for {template.audience.replace('_', ' ')})"
        if message.filled.unfilled:
            fields = ", ".join(f"[{name}]" for name in message.filled.unfilled)
            about += f"; to fill in: {fields}"
        self.query_one("#template-about", Static).update(about)
        self.editor.load_text(message.filled.text)

    def on_response_logged(self, message: ResponseLogged) -> None:
        self.notify(f"Logged the response on {message.ref} as a note.", title="Logged")
        self.dismiss(True)

    # ----------------------------------------------------------------- actions

    def _edited(self) -> bool:
        text = self.editor.text
        return bool(text.strip()) and (self.filled is None or text != self.filled.text)

    @on(OptionList.OptionSelected, "#template-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        template = self.templates.get(event.option.id or "")
        if template is None:
            return
        if self.filled is not None and self.filled.template == template.name:
            self.editor.focus()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._fill(template)

        if self._edited():
            self.app.push_screen(
                Confirm("Replace the text", f"Replace your edits with “{template.title}”?"),
                answered,
            )
        else:
            self._fill(template)

    def action_log(self) -> None:
        text = self.editor.text
        if not text.strip():
            self.notify(
                "The text is empty: pick a template, or write the response.", severity="warning"
            )
            return
        leftover = still_to_fill(text, self.filled.unfilled if self.filled else ())
        if not leftover:
            self._log(text)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._log(text)

        fields = ", ".join(f"[{name}]" for name in leftover)
        self.app.push_screen(
            Confirm("Log it anyway", f"The text still has {fields} to fill in. Log it anyway?"),
            answered,
        )

    def action_cancel(self) -> None:
        if not self._edited():
            self.dismiss(False)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.dismiss(False)

        self.app.push_screen(
            Confirm("Discard the response", "Your text is not logged. Close and discard it?"),
            answered,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.vigil.report_worker(event, self)

"""The post-mortem of one case (`P` on the queue): the generated facts, escalation and
timeline; the summary, root cause and contributing factors people write; action items with
an owner and a due date; the status; and the export as Markdown.

A supervisor opens one from a case; anyone may read it, and an action item's owner may mark
it done, but only supervisors and admins write (the screen is read-only for the others, and
`app.services.shiftwork.postmortem` refuses them in any case). Nothing here carries a case's
sensitive details.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.suggester import SuggestFromList
from textual.widgets import DataTable, Footer, Input, Label, Select, Static, TextArea
from textual.worker import Worker, WorkerState, get_current_worker

from app.console.desk import postmortem_of, read_postmortem
from app.console.messages import (
    PostMortemChanged,
    PostMortemExported,
    PostMortemLoaded,
    PostMortemMissing,
)
from app.console.screens.dialogs import Confirm, TextPrompt
from app.core.errors import BadInput
from app.core.times import format_instant
from app.services.shiftwork.postmortem import (
    STATUSES,
    EscalationStep,
    PostMortemService,
    PostMortemView,
    export_markdown,
    split_factors,
    step_label,
)
from app.services.shiftwork.stats import format_seconds
from data.domain import severity_name
from themes import STYLES
from widgets.timefmt import viewer_zone

if TYPE_CHECKING:
    from app.console.host import ConsoleHost

MUTED = "$foreground-muted"
EXPORT_FOLDER = "postmortems"


def export_folder() -> Path:
    """Where exports go unless the person names a folder: `$XDG_DATA_HOME/vigil/postmortems`
    (default `~/.local/share/vigil/postmortems`), beside the default database."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "vigil" / EXPORT_FOLDER


def export_path(text: str, ref: str) -> Path:
    """The file an export goes to: the typed path (`~` expanded; a bare name or relative path
    is taken inside the export folder), or `REF.md` in the export folder when empty."""
    typed = text.strip()
    if not typed:
        return export_folder() / f"{ref}.md"
    path = Path(typed).expanduser()
    return path if path.is_absolute() else export_folder() / path


def parse_due(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BadInput("due", f"expected a date YYYY-MM-DD, got {text.strip()!r}") from None


def since_open(seconds: int) -> str:
    """`+7m 00s`, right-aligned so a column of them lines up."""
    return f"{'+' + format_seconds(seconds):>9}"


def step_line(step: EscalationStep) -> str:
    label = step_label(step)
    if step.outcome == "answered":
        outcome = f"answered by {step.answered_by} after {format_seconds(step.waited_seconds)}"
    elif step.outcome == "escalated":
        outcome = f"no answer; the next step went out after {format_seconds(step.waited_seconds)}"
    else:
        outcome = "still waiting" if step.outcome == "waiting" else "no answer"
    return (
        f"{since_open(step.offset_seconds)}  {label:<22} paged {', '.join(step.paged)}: {outcome}"
    )


# --- messages ----------------------------------------------------------------------


# --- the screen --------------------------------------------------------------------


class PostMortemScreen(Screen[None]):
    """One case's post-mortem, to read, write and export."""

    CSS_PATH = STYLES / "shiftwork.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="postmortem.close", tooltip="Back to the queue"),
        Binding(
            "ctrl+s",
            "save",
            "Save",
            id="postmortem.save",
            tooltip="Save the summary, root cause and contributing factors (supervisors)",
        ),
        Binding(
            "ctrl+o",
            "export",
            "Export",
            id="postmortem.export",
            tooltip="Write the post-mortem as Markdown to a file (your data folder by default)",
        ),
        Binding(
            "ctrl+n",
            "new_action",
            "New action",
            id="postmortem.new_action",
            tooltip="Add an action item with an owner and a due date (supervisors)",
        ),
        Binding(
            "d",
            "complete_action",
            "Done",
            id="postmortem.done",
            tooltip="Mark the action item under the cursor done (its owner or a supervisor)",
        ),
        Binding(
            "ctrl+r",
            "reload",
            "Reload",
            id="postmortem.reload",
            tooltip="Read the post-mortem again (others may have changed it)",
        ),
    ]

    def __init__(self, ref: str) -> None:
        super().__init__()
        self.ref = ref.strip().upper()
        self.view: PostMortemView | None = None
        self._shown_once = False

    # ----------------------------------------------------------------- context

    @property
    def vigil(self) -> ConsoleHost:
        return cast("ConsoleHost", self.app)

    @property
    def may_write(self) -> bool:
        return self.vigil.profile.supervising

    def _area(self, ident: str) -> TextArea:
        return self.query_one(f"#{ident}", TextArea)

    @property
    def actions_table(self) -> DataTable[str]:
        return cast("DataTable[str]", self.query_one("#pm-actions", DataTable))

    # ----------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        app = self.vigil
        yield Static(f"Post-mortem · {self.ref}", id="pm-title", classes="shift-title")
        with VerticalScroll(id="pm-body"):
            yield Static("Reading the post-mortem…", id="pm-facts", markup=False)
            with Horizontal(id="pm-status-row"):
                yield Label("Status", id="pm-status-label", classes="field-label")
                yield Select[str](
                    [(status, status) for status in STATUSES],
                    allow_blank=False,
                    id="pm-status",
                )
                yield Static("", id="pm-status-note", classes="hint", markup=False)
            yield Static("Summary", classes="section-title")
            yield TextArea(id="pm-summary", classes="pm-text", soft_wrap=True)
            yield Static("Escalation", classes="section-title")
            yield Static("", id="pm-escalation", markup=False)
            yield Static("Timeline", classes="section-title")
            yield Static("", id="pm-timeline", markup=False)
            yield Static("Root cause", classes="section-title")
            yield TextArea(id="pm-root-cause", classes="pm-text", soft_wrap=True)
            yield Static("Contributing factors (one per line)", classes="section-title")
            yield TextArea(id="pm-factors", soft_wrap=True)
            yield Static("Action items", classes="section-title")
            yield DataTable[str](id="pm-actions", cursor_type="row")
            with Horizontal(id="pm-add-action", classes="pm-edit-only"):
                yield Input(placeholder="new action item", id="pm-action-title")
                yield Input(
                    placeholder="owner",
                    suggester=SuggestFromList(app.handles, case_sensitive=False)
                    if app.handles
                    else None,
                    id="pm-action-owner",
                )
                yield Input(placeholder="due YYYY-MM-DD", id="pm-action-due")
            yield Static(
                "Ctrl+S: save   Ctrl+N: new action item (Enter adds it)   d: action done   "
                "Ctrl+O: export   Escape: back",
                classes="hint",
                markup=False,
            )
        yield Footer()

    def on_mount(self) -> None:
        table = self.actions_table
        for label in ("#", "Action", "Owner", "Due", "Status"):
            table.add_column(label, key=label)
        blink = self.vigil.cursor_blink
        for area in self.query(TextArea):
            area.cursor_blink = blink
            area.read_only = True  # until the post-mortem is read
        for field in self.query(Input):
            field.cursor_blink = blink
        self.set_class(not self.may_write, "-readonly")
        self.query_one("#pm-status", Select).disabled = True
        self._load()

    # ----------------------------------------------------------------- workers

    @work(
        thread=True,
        name="post-mortem",
        group="postmortem-read",
        exclusive=True,
        exit_on_error=False,
    )
    def _load(self) -> None:
        view = read_postmortem(self.vigil.db, self.ref)
        message: Message = PostMortemMissing(self.ref) if view is None else PostMortemLoaded(view)
        if not get_current_worker().is_cancelled:
            self.post_message(message)

    def _service(self) -> PostMortemService:
        return PostMortemService(self.vigil.db, self.vigil.clock)

    @work(thread=True, name="open post-mortem", group="postmortem-write", exit_on_error=False)
    def _open(self) -> None:
        self._service().open_for(self.vigil.profile.handle, self.ref)
        self.post_message(PostMortemChanged(f"Post-mortem of {self.ref} opened (draft)"))

    @work(thread=True, name="save post-mortem", group="postmortem-write", exit_on_error=False)
    def _save(
        self, summary: str | None, root_cause: str | None, factors: tuple[str, ...] | None
    ) -> None:
        self._service().edit(
            self.vigil.profile.handle,
            self.ref,
            summary=summary,
            root_cause=root_cause,
            factors=factors,
        )
        self.post_message(PostMortemChanged(f"Post-mortem of {self.ref} saved", saved_text=True))

    @work(thread=True, name="post-mortem status", group="postmortem-status", exit_on_error=False)
    def _set_status(self, status: str) -> None:
        self._service().set_status(self.vigil.profile.handle, self.ref, status)
        self.post_message(PostMortemChanged(f"Post-mortem of {self.ref} is {status}"))

    @work(thread=True, name="add action item", group="postmortem-write", exit_on_error=False)
    def _add_action(self, title: str, owner: str, due_text: str) -> None:
        number = self._service().add_action(
            self.vigil.profile.handle, self.ref, title, owner, parse_due(due_text)
        )
        self.post_message(
            PostMortemChanged(f"Action item {number} of {self.ref} added for {owner.strip()}")
        )

    @work(thread=True, name="complete action item", group="postmortem-write", exit_on_error=False)
    def _complete_action(self, number: int) -> None:
        self._service().complete_action(self.vigil.profile.handle, self.ref, number)
        self.post_message(PostMortemChanged(f"Action item {number} of {self.ref} done"))

    @work(thread=True, name="export post-mortem", group="postmortem-export", exit_on_error=False)
    def _export(self, target: Path) -> None:
        view = postmortem_of(self.vigil.db, self.ref)
        text = export_markdown(view, self.vigil.profile.timezone)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise BadInput(
                "file", f"cannot write {str(target)!r} ({exc.strerror or exc})"
            ) from None
        self.post_message(PostMortemExported(target))

    # ----------------------------------------------------------------- results

    def on_post_mortem_missing(self, message: PostMortemMissing) -> None:
        if not self.may_write:
            self.notify(
                f"{message.ref} has no post-mortem, and only supervisors and admins may open one.",
                title="Not allowed",
                severity="error",
            )
            self.dismiss()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._open()
            else:
                self.dismiss()

        self.app.push_screen(
            Confirm(
                "Open a post-mortem",
                f"{message.ref} has no post-mortem yet. Open one (as a draft)?",
            ),
            answered,
        )

    def on_post_mortem_loaded(self, message: PostMortemLoaded) -> None:
        previous, view = self.view, message.view
        self.view = view
        zone = viewer_zone(self.vigil.profile.timezone)
        self.query_one("#pm-title", Static).update(
            Content.assemble(
                "Post-mortem · ",
                (view.ref, "bold"),
                f" {view.title}  ",
                (view.status.upper(), "reverse bold"),
            )
        )
        self.query_one("#pm-facts", Static).update(self._facts(view))
        self.query_one("#pm-escalation", Static).update(
            "\n".join(step_line(step) for step in view.escalation) or "No pages were sent."
        )
        self.query_one("#pm-timeline", Static).update(
            "\n".join(
                f"{format_instant(e.at, zone):<28} {since_open(e.offset_seconds)}  "
                f"{' '.join(e.text.split())}"
                for e in view.timeline
            )
        )
        self._fill_text(previous, view)
        table = self.actions_table
        table.clear()
        for item in view.actions:
            table.add_row(
                str(item.number),
                item.title,
                item.owner,
                item.due_on.isoformat(),
                f"done {format_instant(item.done_at, zone)}" if item.done_at else item.status,
                key=str(item.number),
            )
        status = self.query_one("#pm-status", Select)
        with self.prevent(Select.Changed):
            status.value = view.status
        status.disabled = not self.may_write
        note = ""
        if not self.may_write:
            note = "Read only: supervisors and admins write post-mortems."
        elif view.status == "final":
            note = "Final: set it back to review to change it."
        self.query_one("#pm-status-note", Static).update(note)
        if not self._shown_once:
            self._shown_once = True
            self.query_one("#pm-summary" if self.may_write else "#pm-body").focus()

    def _facts(self, view: PostMortemView) -> Content:
        zone = viewer_zone(self.vigil.profile.timezone)
        ack = (
            f"acknowledged after {format_seconds(view.time_to_acknowledge_seconds)} by "
            f"{view.acknowledged_by or '?'} ({format_instant(view.acknowledged_at, zone)})"
            if view.acknowledged_at
            else "not acknowledged"
        )
        resolved = (
            f"resolved after {format_seconds(view.time_to_resolve_seconds)} "
            f"({format_instant(view.resolved_at, zone)})"
            if view.resolved_at
            else "not resolved yet"
        )
        return Content("\n").join(
            [
                Content.assemble(
                    (severity_name(view.severity), f"$sev{view.severity} bold"),
                    f" · {view.category} · case {view.case_status}",
                ),
                Content.assemble(
                    ("Opened ", MUTED), format_instant(view.opened_at, zone), f" · {ack}"
                ),
                Content.assemble(("Then ", MUTED), resolved),
                Content.assemble(
                    ("Pages ", MUTED),
                    f"{view.pages_sent} sent, {view.pages_unanswered} unanswered",
                    ("   written by ", MUTED),
                    f"{view.author}, {format_instant(view.created_at, zone)}",
                    ("   last changed ", MUTED),
                    format_instant(view.updated_at, zone),
                ),
            ]
        )

    def _fill_text(self, previous: PostMortemView | None, view: PostMortemView) -> None:
        """Put the stored text in each area the person has not edited since the last read."""
        editable = self.may_write and view.status != "final"
        for ident, old, new in self._sections(previous, view):
            area = self._area(ident)
            if old is None or area.text == old:
                area.load_text(new)
            area.read_only = not editable

    @staticmethod
    def _sections(
        previous: PostMortemView | None, view: PostMortemView
    ) -> list[tuple[str, str | None, str]]:
        def factors(v: PostMortemView) -> str:
            return "\n".join(v.factors)

        return [
            ("pm-summary", previous.summary if previous else None, view.summary),
            ("pm-root-cause", previous.root_cause if previous else None, view.root_cause),
            ("pm-factors", factors(previous) if previous else None, factors(view)),
        ]

    def _edits(self) -> dict[str, str]:
        """What the person changed: section id -> its text now."""
        if self.view is None:
            return {}
        return {
            ident: self._area(ident).text
            for ident, stored, _ in self._sections(self.view, self.view)
            if stored is not None and self._area(ident).text.strip() != stored.strip()
        }

    def on_post_mortem_changed(self, message: PostMortemChanged) -> None:
        self.notify(message.text, title="Done", markup=False)
        if message.saved_text:
            self.view = None  # the next read fills every editor
        self._load()

    def on_post_mortem_exported(self, message: PostMortemExported) -> None:
        unsaved = " Your unsaved edits are not in it (Ctrl+S saves)." if self._edits() else ""
        self.notify(
            f"Wrote the post-mortem of {self.ref} to {message.path}.{unsaved}",
            title="Exported",
            timeout=15,
            markup=False,
        )

    # ----------------------------------------------------------------- actions

    def _refuse_reader(self, verb: str) -> bool:
        if self.may_write:
            return False
        self.notify(
            f"Only supervisors and admins may {verb} a post-mortem.",
            title="Not allowed",
            severity="error",
        )
        return True

    def action_save(self) -> None:
        if self.view is None or self._refuse_reader("edit"):
            return
        edits = self._edits()
        if not edits:
            self.notify("Nothing to save: the text is as stored.")
            return
        factors = edits.get("pm-factors")
        self._save(
            edits.get("pm-summary"),
            edits.get("pm-root-cause"),
            split_factors(factors) if factors is not None else None,
        )

    @on(Select.Changed, "#pm-status")
    def _status_chosen(self, event: Select.Changed) -> None:
        event.stop()
        value = event.value
        if self.view is not None and isinstance(value, str) and value != self.view.status:
            self._set_status(value)

    def action_new_action(self) -> None:
        if self.view is None or self._refuse_reader("add action items to"):
            return
        field = self.query_one("#pm-action-title", Input)
        field.focus()
        field.scroll_visible()

    @on(Input.Submitted, "#pm-add-action Input")
    def _action_entered(self, event: Input.Submitted) -> None:
        event.stop()
        fields = [self.query_one(f"#pm-action-{name}", Input) for name in ("title", "owner", "due")]
        empty = next((f for f in fields if not f.value.strip()), None)
        if empty is not None:
            empty.focus()  # Enter moves on to what is still to fill in
            return
        title, owner, due = (f.value for f in fields)
        self._add_action(title, owner, due)
        for field in fields:
            field.value = ""
        fields[0].focus()

    def action_complete_action(self) -> None:
        if self.view is None or not self.view.actions:
            self.notify("There are no action items yet.", severity="warning")
            return
        row = self.actions_table.cursor_row
        if 0 <= row < len(self.view.actions):
            self._complete_action(self.view.actions[row].number)

    def action_export(self) -> None:
        def answered(text: str | None) -> None:
            if text is not None:
                self._export(export_path(text, self.ref))

        self.app.push_screen(
            TextPrompt(
                f"Export the post-mortem of {self.ref}",
                f"Markdown file (a bare name goes in {export_folder()})",
                value=str(export_path("", self.ref)),
                cursor_blink=self.vigil.cursor_blink,
            ),
            answered,
        )

    def action_reload(self) -> None:
        self._load()

    def action_close(self) -> None:
        if not self._edits():
            self.dismiss()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.dismiss()

        self.app.push_screen(
            Confirm("Close the post-mortem", "Your edits are not saved. Close and discard them?"),
            answered,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.vigil.report_worker(event, self)
        if event.state == WorkerState.ERROR and event.worker.group == "postmortem-status":
            status = self.query_one("#pm-status", Select)
            if self.view is not None:
                with self.prevent(Select.Changed):
                    status.value = self.view.status  # refused: show what is stored

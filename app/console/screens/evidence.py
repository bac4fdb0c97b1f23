"""A CSEA case's evidence files at the console (`E` on the queue): name, SHA-256, size and
whether a person viewed each. Viewing one asks first, then goes through
`TiplineService.reveal_evidence`, which records the view in the audit chain (what makes the
report say `fileViewedByEsp`); the screen then says where the file is. It never reads, let
alone shows, a file's content.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState, get_current_worker

from app.console.messages import EvidenceRead, EvidenceRevealed
from app.console.screens.dialogs import Confirm
from app.services.casework.tipline import EvidenceView, TiplineService
from themes import STYLES
from widgets.timefmt import plural

if TYPE_CHECKING:
    from app.console.host import ConsoleHost


class EvidenceScreen(ModalScreen[None]):
    """A case's evidence files: name, SHA-256, size and whether a person viewed each.
    Enter on one asks, then records the view (audited) and says where the file is."""

    CSS_PATH = STYLES / "evidence.tcss"
    AUTO_FOCUS = "#evidence"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "enter",
            "reveal",
            "View file",
            id="evidence.reveal",
            tooltip="Say where the file under the cursor is, after recording the view "
            "(audited: the report then says the file was viewed)",
        ),
        Binding("escape", "close", "Back", id="evidence.close", tooltip="Back to the queue"),
    ]

    def __init__(self, ref: str) -> None:
        super().__init__()
        self.ref = ref
        self.files: tuple[EvidenceView, ...] = ()

    @property
    def vigil(self) -> ConsoleHost:
        return cast("ConsoleHost", self.app)

    @property
    def table(self) -> DataTable[str]:
        return cast("DataTable[str]", self.query_one("#evidence", DataTable))

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog evidence-dialog"):
            yield Static(f"Evidence files of {self.ref}", classes="dialog-title", markup=False)
            yield Static("Reading the evidence files…", id="evidence-count", markup=False)
            yield DataTable(id="evidence", cursor_type="row", zebra_stripes=True)
            yield Static("", id="evidence-where", markup=False)
            yield Static(
                "Enter: view the file (audited; asks first)   Escape: back",
                classes="dialog-hint",
                markup=False,
            )

    def on_mount(self) -> None:
        self.table.add_columns("#", "File", "SHA-256", "Size", "Class", "Viewed")
        self._read()

    def _service(self) -> TiplineService:
        return TiplineService(self.vigil.db, self.vigil.clock)

    @work(thread=True, name="evidence", group="evidence", exclusive=True, exit_on_error=False)
    def _read(self) -> None:
        files = self._service().evidence(self.vigil.profile.handle, self.ref)
        if not get_current_worker().is_cancelled:
            self.post_message(EvidenceRead(tuple(files)))

    def on_evidence_read(self, message: EvidenceRead) -> None:
        self.files = message.files
        table, keep = self.table, self.table.cursor_row
        table.clear()
        for f in self.files:
            table.add_row(
                str(f.id),
                f.original_name,
                f.sha256,
                f"{f.size:,} bytes",
                f.industry_classification,
                "viewed" if f.viewed_by_esp else "not viewed",
                key=str(f.id),
            )
        if self.files:
            table.move_cursor(row=min(keep, len(self.files) - 1))
        count = len(self.files)
        self.query_one("#evidence-count", Static).update(
            f"{plural(count, 'file')}; a file is viewed once its view is in "
            "the audit chain (the report's fileViewedByEsp)"
            if count
            else "No evidence files: add them with vigil evidence add."
        )

    @on(DataTable.RowSelected, "#evidence")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_reveal()

    def action_reveal(self) -> None:
        if not self.files or not 0 <= self.table.cursor_row < len(self.files):
            return
        chosen = self.files[self.table.cursor_row]

        def answered(yes: bool | None) -> None:
            if yes:
                self._reveal(chosen.id)

        self.app.push_screen(
            Confirm(
                f"View evidence file {chosen.id} of {self.ref}",
                f"View {chosen.original_name}? Your view is recorded in the audit chain, and "
                "the report will say the file was viewed.",
            ),
            answered,
        )

    @work(thread=True, name="evidence reveal", group="evidence-reveal", exit_on_error=False)
    def _reveal(self, file_id: int) -> None:
        path = self._service().reveal_evidence(self.vigil.profile.handle, self.ref, file_id)
        self.post_message(EvidenceRevealed(file_id, path))

    def on_evidence_revealed(self, message: EvidenceRevealed) -> None:
        self.query_one("#evidence-where", Static).update(
            f"Evidence file {message.file_id} is at:\n{message.path}\n"
            "Open it in the desk's evidence viewer; the console never shows a file's content."
        )
        self._read()

    def action_close(self) -> None:
        self.dismiss(None)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.vigil.report_worker(event, self)
        if event.state == WorkerState.ERROR and event.worker.group == "evidence":
            self.dismiss(None)  # nothing to show: not a CSEA case, no such case

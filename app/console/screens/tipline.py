"""A CSEA case's CyberTipline report at the console: its review, its filing with NCMEC, and
the case's evidence files.

`N` on the queue (`TiplineFlows.report`) asks for the incident's facts when the case has no
filing yet (or NCMEC refused the last one), then opens `TiplineReview`: the report exactly
as `TiplineService.review` renders it. Confirming files it through
`TiplineService.file_report` in a thread worker, once: while NCMEC is down the escalation
engines try again, and the casework pane shows the filing's tries and its next one.

`E` opens the case's evidence files (`app.console.screens.evidence`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, ClassVar, Protocol, cast

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static
from textual.worker import Worker, WorkerState, get_current_worker

from app.console.messages import NcmecWaiting, ReportFiled, ReviewRead
from app.console.screens.casework import CaseScreen, FormDialog, FormField
from app.console.screens.dialogs import Confirm
from app.console.screens.evidence import EvidenceScreen
from app.core.times import parse_instant
from app.rules.tipline import INCIDENT_TYPES, ReportDraft
from app.services.casework.tipline import FilingView, TiplineService
from data.domain import Category, FilingStatus
from themes import STYLES

if TYPE_CHECKING:
    from app.console.host import ConsoleHost
    from app.console.screens.casework import CaseworkTarget

FACTS = (
    FormField(
        "incident_type",
        "Incident type",
        required=True,
        placeholder=", ".join(INCIDENT_TYPES),
        choices=tuple(INCIDENT_TYPES),
    ),
    FormField(
        "incident_at",
        "Incident time",
        placeholder="a time with an offset; empty: when the case opened",
    ),
    FormField("screen_name", "Screen name", placeholder="the reported user's screen name"),
    FormField("esp_identifier", "Account id", placeholder="the reported user's account id"),
    FormField("reported_email", "E-mail", placeholder="the reported user's e-mail address"),
    FormField("url", "URL", placeholder="where the content was found (optional)"),
)
"""The incident's facts the report needs: one of the reported user's names at least."""

STORED = frozenset({FilingStatus.CLAIMED, FilingStatus.SUBMITTED, FilingStatus.WAITING})
"""A filing in one of these states files again what it stored: no facts are asked."""


def readable(text: str) -> str:
    """The review's documents indented, one element a line, for a person to read (what is
    filed is the text as `review` returned it)."""
    lines = []
    for line in text.splitlines():
        if line.startswith("<") and not line.startswith("<?"):
            try:
                element = ET.fromstring(line)
            except ET.ParseError:
                lines.append(line)
                continue
            ET.indent(element)
            line = ET.tostring(element, encoding="unicode")
        lines.append(line)
    return "\n".join(lines)


def draft_of(service: TiplineService, ref: str, facts: dict[str, str] | None) -> ReportDraft | None:
    """The draft the facts typed make (None: file what the filing stored)."""
    if facts is None:
        return None
    when = facts.get("incident_at", "")
    return service.draft(
        ref,
        incident_type=facts.get("incident_type", ""),
        incident_at=parse_instant("incident_at", when) if when else None,
        screen_name=facts.get("screen_name", ""),
        esp_identifier=facts.get("esp_identifier", ""),
        reported_email=facts.get("reported_email", ""),
        url=facts.get("url", ""),
    )


# --- messages from the workers ---------------------------------------------------


# --- the review ----------------------------------------------------------------------


class TiplineReview(ModalScreen[FilingView | None]):
    """The report of one case as NCMEC would receive it; `f` files it (after a yes).
    Dismissed with the filing when NCMEC has it, else with None."""

    CSS_PATH = STYLES / "tipline.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "f",
            "file",
            "File with NCMEC",
            id="tipline.file",
            tooltip="File this report with NCMEC, exactly once (asks first)",
        ),
        Binding("escape", "close", "Back", id="tipline.close", tooltip="Back, filing nothing"),
    ]

    def __init__(self, ref: str, facts: dict[str, str] | None) -> None:
        super().__init__()
        self.ref = ref
        self.facts = facts
        self.text = ""
        self.filing = False
        self._outcome: tuple[FilingView | None] | None = None

    @property
    def vigil(self) -> ConsoleHost:
        return cast("ConsoleHost", self.app)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog tipline-dialog"):
            yield Static(
                f"CyberTipline report of {self.ref}: review before filing",
                classes="dialog-title",
                markup=False,
            )
            with VerticalScroll(id="tipline-review"):
                yield Static("Reading the report…", id="tipline-text", markup=False)
            yield Static("", id="tipline-state", markup=False)
            yield Static(
                "f: file it with NCMEC   Escape: back, filing nothing",
                classes="dialog-hint",
                markup=False,
            )

    def on_mount(self) -> None:
        self.query_one("#tipline-review").focus()
        self._review()

    def _service(self) -> TiplineService:
        return TiplineService(self.vigil.db, self.vigil.clock)

    @work(thread=True, name="tipline review", group="tipline-review", exit_on_error=False)
    def _review(self) -> None:
        service = self._service()
        draft = draft_of(service, self.ref, self.facts)
        text = service.review(self.vigil.profile.handle, self.ref, draft)
        if not get_current_worker().is_cancelled:
            self.post_message(ReviewRead(text))

    def on_review_read(self, message: ReviewRead) -> None:
        self.text = message.text
        self.query_one("#tipline-text", Static).update(readable(message.text))

    def action_file(self) -> None:
        if not self.text or self.filing:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.filing = True
                self._state("Filing with NCMEC…")
                self._file()

        self.app.push_screen(
            Confirm(
                f"File {self.ref}'s CyberTipline report",
                "Send this report and the case's evidence files to NCMEC now? "
                "A filed report cannot be filed again.",
            ),
            answered,
        )

    @work(thread=True, name="tipline filing", group="tipline-file", exit_on_error=False)
    def _file(self) -> None:
        service = self._service()
        pause, tries = service.sleep, [0]

        def wait(seconds: float) -> None:
            tries[0] += 1
            self.post_message(NcmecWaiting(tries[0], seconds))
            pause(seconds)

        service.sleep = wait
        draft = draft_of(service, self.ref, self.facts)
        # One try: while NCMEC is down the engines try again, and the person is not held.
        view = service.file_report(self.vigil.profile.handle, self.ref, draft, patient=False)
        self.post_message(ReportFiled(view))

    def _state(self, text: str) -> None:
        self.query_one("#tipline-state", Static).update(text)

    def on_ncmec_waiting(self, message: NcmecWaiting) -> None:
        self._state(
            f"NCMEC could not be reached (try {message.tries}); trying again in "
            f"{message.seconds:g} s. The CyberTipline clock keeps running."
        )

    def on_report_filed(self, message: ReportFiled) -> None:
        self._finish(message.view)

    def _finish(self, view: FilingView | None) -> None:
        """Close with the outcome; under a screen opened on top (the command palette), once
        it is back on top: `dismiss` closes whichever screen is on top."""
        self.filing = False
        if self.app.screen is self:
            self.dismiss(view)
        else:
            self._outcome = (view,)

    def on_screen_resume(self) -> None:
        if self._outcome is not None:
            self.dismiss(self._outcome[0])

    def action_close(self) -> None:
        if self.filing:
            self.notify(
                "The report is being filed; this closes when NCMEC answers.",
                title="Filing",
                severity="warning",
                markup=False,
            )
            return
        self.dismiss(None)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.vigil.report_worker(event, self)
        if event.state == WorkerState.ERROR:
            self._finish(None)


# --- the flows from the queue --------------------------------------------------------------


class TiplineScreen(CaseScreen, Protocol):
    """The flows also tell the screen a case's casework changed."""

    def casework_changed(self, case_id: int) -> None: ...


class TiplineFlows:
    """The queue's CyberTipline keys for the selected case; the facts typed are kept for
    the next try until the report is filed."""

    def __init__(self, screen: TiplineScreen) -> None:
        self.screen = screen
        self.drafts: dict[int, dict[str, str]] = {}

    def _csea(self) -> CaseworkTarget | None:
        if (t := self.screen.casework_target()) is None:
            return None
        if t.view.category != Category.CSEA:
            self.screen.notify(
                f"{t.ref} is a {t.view.category} case; only CSEA cases are reported to NCMEC.",
                title="Not a CSEA case",
                severity="warning",
                markup=False,
            )
            return None
        return t

    def report(self) -> None:
        if (t := self._csea()) is None:
            return
        status = t.view.tipline_status
        if status == FilingStatus.FINISHED:
            self.screen.notify(
                f"{t.ref} is filed: {t.view.tipline}.",
                title="Nothing to do",
                severity="warning",
                markup=False,
            )
            return
        if status in STORED:
            self._review(t, None)
            return
        note = "The report goes to NCMEC with the case's evidence files; you review it first."
        if status == FilingStatus.REJECTED:
            note = f"NCMEC refused the last report ({t.view.tipline}). Correct the facts."
        draft = self.drafts.get(t.case_id, {})
        fields = [
            FormField(
                f.name,
                f.label,
                f.required,
                draft.get(f.name, f.value),
                f.placeholder,
                f.choices,
            )
            for f in FACTS
        ]

        def answered(values: dict[str, str] | None) -> None:
            if values is not None:
                self.drafts[t.case_id] = values
                self._review(t, values)

        self.screen.app.push_screen(
            FormDialog(
                f"CyberTipline report of {t.ref}: the incident",
                fields,
                note=note,
                warning=status == FilingStatus.REJECTED,
                cursor_blink=self.screen.vigil.cursor_blink,
            ),
            answered,
        )

    def _review(self, t: CaseworkTarget, facts: dict[str, str] | None) -> None:
        def done(view: FilingView | None) -> None:
            if view is not None:
                self.drafts.pop(t.case_id, None)
                self.screen.notify(
                    f"{view.ref}: CyberTipline report filed with NCMEC as report {view.report_id}",
                    title="Filed",
                    markup=False,
                )
            self.screen.casework_changed(t.case_id)

        self.screen.app.push_screen(TiplineReview(t.ref, facts), done)

    def evidence(self) -> None:
        if (t := self._csea()) is not None:
            self.screen.app.push_screen(
                EvidenceScreen(t.ref), lambda _: self.screen.casework_changed(t.case_id)
            )

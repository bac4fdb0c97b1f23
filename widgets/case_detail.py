"""The case detail pane: fields, live SLA, escalation state, details, casework, pages,
timeline, notes.

It renders a `CaseDetailView` and nothing else, and holds the casework section
(`CaseworkPane`), which shows a `CaseworkView` of the same case. Sensitive details arrive
as None until the person reveals them; the pane then shows a placeholder that says how to
reveal. Only the live part (SLA countdowns, next escalation, legal clocks) repaints when
`set_now` ticks.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from data.domain import Status
from widgets.casework_pane import CaseworkPane
from widgets.queue_table import format_countdown
from widgets.timefmt import format_when, viewer_zone
from widgets.views import CaseDetailView, CaseworkView, PageView

SLA_WARN = timedelta(minutes=5)
CHANNEL_STYLES = {
    "delivered": "$success",
    "sent": "$success",
    "pending": "$sla-warn",
    "failed": "$sla-breach bold",
    "unavailable": "$foreground-muted",
}


def hidden_placeholder(reveal_key: str) -> str:
    return (
        f"[sensitive: hidden until revealed] Press {reveal_key} to reveal; every reveal is audited."
    )


def _put(part: Static, content: Content) -> None:
    """Show `content` in `part`, unless it shows just that already: an update asks for a
    layout of the whole screen, and a new note on a case changes only its history."""
    shown = part.content
    if isinstance(shown, Content) and shown.plain == content.plain and shown.spans == content.spans:
        return
    part.update(content)


class CaseDetail(VerticalScroll, can_focus=True):
    """One case, top to bottom; scrolls when it is longer than the pane."""

    def __init__(
        self,
        *,
        now: datetime,
        timezone: str = "UTC",
        reveal_key: str = "v",
        casework_keys: str = "",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._now = now
        self._zone = viewer_zone(timezone)
        self.reveal_key = reveal_key
        self._timezone = timezone
        self._casework_keys = casework_keys
        self._view: CaseDetailView | None = None
        self._casework: CaseworkView | None = None
        self._empty_text = "No case selected."

    def compose(self) -> ComposeResult:
        yield Static(self._empty_text, id="detail-head", markup=False)
        yield Static("", id="detail-live", markup=False)
        yield Static("", id="detail-body", markup=False)
        yield CaseworkPane(
            now=self._now,
            timezone=self._timezone,
            keys_hint=self._casework_keys,
            id="detail-casework",
        )
        yield Static("", id="detail-history", markup=False)

    @property
    def view(self) -> CaseDetailView | None:
        return self._view

    def show(self, view: CaseDetailView | None, *, empty_text: str = "No case selected.") -> None:
        """Show `view` (None: nothing selected, with `empty_text` saying why)."""
        if view == self._view and empty_text == self._empty_text:
            return
        self._view = view
        self._empty_text = empty_text
        self.border_title = view.ref if view is not None else None
        self.set_class(view is not None and view.sensitive, "-sensitive")
        self.set_class(view is not None and view.revealed, "-revealed")
        self._paint()
        self._show_casework()

    def show_casework(self, casework: CaseworkView | None) -> None:
        """The casework of the shown case; it appears once the case's own view is shown,
        so the pane never mixes two cases."""
        self._casework = casework
        self._show_casework()

    def _show_casework(self) -> None:
        if not self.is_mounted:
            return
        view, casework = self._view, self._casework
        same = view is not None and casework is not None and casework.case_id == view.case_id
        self.query_one("#detail-casework", CaseworkPane).show(casework if same else None)

    def conceal(self) -> None:
        """Hide revealed details at once (the person moved on); the next view follows."""
        if self._view is not None and self._view.revealed:
            self.show(replace(self._view, details=None, revealed=False))

    def set_now(self, now: datetime) -> None:
        """Repaint the countdowns only: their lines never wrap, so no layout is needed;
        nothing when the clock has not moved."""
        if now == self._now:
            return
        self._now = now
        if self._view is not None and self.is_mounted:
            self.query_one("#detail-live", Static).update(self._live(self._view), layout=False)
            self.query_one("#detail-casework", CaseworkPane).set_now(now)

    # ------------------------------------------------------------------ painting

    def _paint(self) -> None:
        if not self.is_mounted:
            return
        head = self.query_one("#detail-head", Static)
        live = self.query_one("#detail-live", Static)
        body = self.query_one("#detail-body", Static)
        history = self.query_one("#detail-history", Static)
        view = self._view
        if view is None:
            _put(head, Content.styled(self._empty_text, "$foreground-muted italic"))
            for part in (live, body, history):
                _put(part, Content(""))
            return
        _put(head, self._head(view))
        _put(live, self._live(view))
        _put(body, self._details(view))
        _put(history, self._history(view))

    def _when(self, at: datetime) -> str:
        return format_when(at, self._zone, self._now)

    def _head(self, view: CaseDetailView) -> Content:
        parts: list[str | tuple[str, str] | Content] = [
            (view.ref, "bold"),
            "  ",
            (f"sev{view.severity}", f"$sev{view.severity} bold"),
            "  ",
            view.category,
        ]
        if view.sensitive:
            parts += ["  ", ("SENSITIVE", "$sensitive bold reverse")]
        if view.exhausted:
            parts += ["  ", ("EXHAUSTED", "$sla-breach bold reverse")]
        lines = [
            Content.assemble(*parts),
            Content.styled(view.title, "bold"),
            Content.assemble(
                ("status ", "$foreground-muted"),
                (view.status, "bold"),
                ("  stage ", "$foreground-muted"),
                view.stage,
                ("  assignee ", "$foreground-muted"),
                view.assignee or "nobody",
            ),
            self._milestones(view),
        ]
        if view.snoozed_until is not None:  # the time is on a live line (`_live`)
            lines.append(Content.assemble(("snoozed: ", "$foreground-muted"), view.snooze_reason))
        return Content("\n").join(lines)

    def _milestones(self, view: CaseDetailView) -> Content:
        parts: list[str | tuple[str, str]] = [
            ("opened ", "$foreground-muted"),
            self._when(view.created_at),
        ]
        if view.acknowledged_at is not None:
            parts += [("  acked ", "$foreground-muted"), self._when(view.acknowledged_at)]
            if view.acknowledged_by:
                parts.append(f" by {view.acknowledged_by}")
        if view.resolved_at is not None:
            parts += [("  resolved ", "$foreground-muted"), self._when(view.resolved_at)]
        return Content.assemble(*parts)

    def _countdown(self, due: datetime, met_at: datetime | None) -> Content:
        head = Content.assemble(("by ", "$foreground-muted"), self._when(due), "  ")
        if met_at is not None:
            late = met_at - due
            if late > timedelta(0):
                return head + Content.styled(f"met late by {format_countdown(late)}", "$sla-warn")
            return head + Content.styled("met", "$success")
        left = due - self._now
        if left < timedelta(0):
            return head + Content.styled(
                f"BREACHED {format_countdown(-left)} ago", "$sla-breach bold"
            )
        style = "$sla-warn bold" if left < SLA_WARN else "bold"
        return head + Content.styled(f"{format_countdown(left)} left", style)

    def _live(self, view: CaseDetailView) -> Content:
        """SLA deadlines and escalation state, one line each (the lines never wrap)."""
        label = "$foreground-muted"
        lines: list[Content] = []
        if view.sla_ack_due_at is not None:
            lines.append(
                Content.styled("Acknowledge ", label)
                + self._countdown(view.sla_ack_due_at, view.sla_ack_met_at)
            )
        if view.sla_respond_due_at is not None:
            lines.append(
                Content.styled("Respond     ", label)
                + self._countdown(view.sla_respond_due_at, view.sla_respond_met_at)
            )
        step = view.escalation_step
        lines.append(
            Content.assemble(
                ("Escalation  ", label),
                f"step {step} of {view.step_count}, round {view.escalation_round + 1}"
                if step
                else "not paged yet",
                f" · policy {view.policy}" if view.policy else "",
            )
        )
        if view.snoozed_until is not None:
            left = view.snoozed_until - self._now
            lines.append(
                Content.assemble(
                    ("Snoozed     ", label),
                    ("until ", label),
                    self._when(view.snoozed_until),
                    f" (pages again in {format_countdown(left)})"
                    if left >= timedelta(0)
                    else " (due now)",
                )
            )
        if view.status == Status.TRIGGERED.value and view.next_escalation_at is not None:
            left = view.next_escalation_at - self._now
            lines.append(
                Content.assemble(
                    ("Next step   ", label),
                    self._when(view.next_escalation_at),
                    f" (in {format_countdown(left)})" if left >= timedelta(0) else " (due now)",
                )
            )
        return Content("\n").join(lines)

    def _section(self, title: str) -> Content:
        return Content.styled(f"\n{title}", "$accent bold")

    def _details(self, view: CaseDetailView) -> Content:
        """What the case is about, before its casework."""
        if view.details is None:
            text = Content.styled(hidden_placeholder(self.reveal_key), "$sensitive italic")
        elif view.details.strip():
            text = Content(view.details)
        else:
            text = Content.styled("(none)", "$foreground-muted")
        details = self._section("Details") + Content("\n") + text
        if not view.links:
            return details
        links = [self._section(f"Links ({len(view.links)})")]
        links += [
            Content.assemble((label or "link", "bold"), " ", (href, "underline"))
            for label, href in view.links
        ]
        return details + Content("\n").join(links)

    def _history(self, view: CaseDetailView) -> Content:
        """Pages, notes and the timeline, after the casework."""
        lines: list[Content] = [self._section(f"Pages ({len(view.pages)})")]
        lines.extend(self._page_line(page) for page in view.pages)
        if not view.pages:
            lines.append(Content.styled("nobody paged yet", "$foreground-muted"))
        lines.append(self._section(f"Notes ({len(view.notes)})"))
        for note in view.notes:
            lines.append(
                Content.assemble(
                    (self._when(note.at), "$foreground-muted"), " ", (note.author, "bold"), ": "
                )
                + Content(note.body)
            )
        lines.append(self._section(f"Timeline ({len(view.timeline)})"))
        for event in view.timeline:
            lines.append(
                Content.assemble((self._when(event.at), "$foreground-muted"), " ")
                + Content(event.text)
            )
        return Content("\n").join(lines)

    def _page_line(self, page: PageView) -> Content:
        label = "reassign" if page.reason == "reassign" else f"step {page.step} r{page.round + 1}"
        parts: list[str | tuple[str, str] | Content] = [
            (self._when(page.sent_at), "$foreground-muted"),
            " ",
            (page.handle, "bold"),
            f" {label} ",
        ]
        for channel, status in page.channels:
            parts += [" ", f"{channel}:", (status, CHANNEL_STYLES.get(status, ""))]
        return Content.assemble(*parts)

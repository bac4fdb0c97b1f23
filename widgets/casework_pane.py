"""The casework section of the detail pane: legal clocks, the verification checklist,
disclosure decisions, containment, action items and partners of one case.

It renders a `CaseworkView` and nothing else. Free text of a sensitive case arrives as
`HIDDEN` until the viewer reveals the case. The legal clocks repaint on every `set_now`
(their lines never wrap, so no layout is needed); the rest repaints when a new view
arrives, or when an action item falls due.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static

from data.domain import ClockKind, ClockState
from widgets.queue_table import format_countdown
from widgets.timefmt import format_when, plural, viewer_zone
from widgets.views import (
    HIDDEN,
    ActionView,
    CaseworkView,
    ClockView,
    ContainmentView,
    DisclosureView,
    VerificationStepView,
)

MUTED = "$foreground-muted"
DONE_MARK, OPEN_MARK = "☑", "☐"
DISCLOSURE_STYLES = {
    "requested": "$sla-warn bold",
    "disclosed": "$success bold",
    "declined": MUTED,
}
CLOCK_STYLES: dict[str, str] = {
    ClockState.OK: "bold",
    ClockState.WARN: "$sla-warn bold",
    ClockState.BREACHED: "$sla-breach bold",
}


class CaseworkPane(Vertical):
    """One case's casework, top to bottom; empty (and hidden) while there is none."""

    DEFAULT_CSS = """
    CaseworkPane, CaseworkPane Static, CaseworkPane #casework-body {
        height: auto;
    }
    CaseworkPane .-section {
        margin-top: 1;
    }
    CaseworkPane .-indent-2 {
        padding-left: 2;
    }
    CaseworkPane .-indent-4 {
        padding-left: 4;
    }
    CaseworkPane .-indent-6 {
        padding-left: 6;
    }
    """

    def __init__(
        self,
        *,
        now: datetime,
        timezone: str = "UTC",
        keys_hint: str = "",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._now = now
        self._zone: ZoneInfo = viewer_zone(timezone)
        self.keys_hint = keys_hint
        self._view: CaseworkView | None = None
        self._body_lines: list[Content] = []
        self._repaint_body_at: datetime | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="casework-clocks", markup=False)
        yield Vertical(id="casework-body")

    def on_mount(self) -> None:
        self._paint()

    @property
    def view(self) -> CaseworkView | None:
        return self._view

    @property
    def text(self) -> str:
        """What the section says now, as plain text."""
        if self._view is None:
            return ""
        lines = [self._clocks(self._view).plain, *(line.plain for line in self._body_lines)]
        return "\n".join(lines)

    def show(self, view: CaseworkView | None) -> None:
        """Show `view`; None empties the section (no case, or its casework is loading)."""
        if view == self._view:
            return
        self._view = view
        self._paint()

    def set_now(self, now: datetime) -> None:
        """Repaint the clocks; the rest only when an action item has just fallen due."""
        self._now = now
        if self._view is None or not self.is_mounted:
            return
        self.query_one("#casework-clocks", Static).update(self._clocks(self._view), layout=False)
        if self._repaint_body_at is not None and now >= self._repaint_body_at:
            self._paint_body(self._view)

    # ------------------------------------------------------------------ painting

    def _paint(self) -> None:
        if not self.is_mounted:
            return
        view = self._view
        self.display = view is not None
        clocks = self.query_one("#casework-clocks", Static)
        if view is None:
            clocks.update("")
            self._set_body_lines([])
            self._repaint_body_at = None
            return
        clocks.update(self._clocks(view))
        self._paint_body(view)

    def _paint_body(self, view: CaseworkView) -> None:
        upcoming = [
            a.due_at
            for a in view.actions
            if a.status == "open" and a.due_at is not None and a.due_at > self._now
        ]
        self._repaint_body_at = min(upcoming, default=None)
        self._set_body_lines(self._body(view))

    def _set_body_lines(self, lines: list[Content]) -> None:
        """One Static per line, so a wrapped line keeps its indent; the Statics already
        there are reused."""
        self._body_lines = lines
        body = self.query_one("#casework-body", Vertical)
        shown = list(body.query_children(Static))
        for widget, line in zip(shown, lines, strict=False):
            content, classes = self._line(line)
            widget.update(content)
            widget.set_classes(classes)
        if len(lines) > len(shown):
            added = []
            for line in lines[len(shown) :]:
                content, classes = self._line(line)
                added.append(Static(content, classes=classes, markup=False))
            body.mount_all(added)
        for widget in shown[len(lines) :]:
            widget.remove()

    @staticmethod
    def _line(line: Content) -> tuple[Content, str]:
        """A line without its leading newline and indent, and the classes that lay them out."""
        classes = ["casework-line"]
        if line.plain.startswith("\n"):
            line = line[1:]
            classes.append("-section")
        indent = len(line.plain) - len(line.plain.lstrip(" "))
        if indent:
            classes.append(f"-indent-{indent}")
        return line[indent:], " ".join(classes)

    def _when(self, at: datetime) -> str:
        """As the detail pane shows times, with the year when it is not this year's."""
        local, today = at.astimezone(self._zone), self._now.astimezone(self._zone)
        if local.year != today.year:
            return local.strftime("%a %d %b %Y %H:%M")
        return format_when(at, self._zone, self._now)

    @staticmethod
    def _section(title: str, detail: str = "") -> Content:
        head = Content.styled(f"\n{title}", "$accent bold")
        return head + Content.styled(f"  {detail}", MUTED) if detail else head

    @staticmethod
    def _fact(value: str) -> Content:
        return Content.styled(value, "$sensitive italic") if value == HIDDEN else Content(value)

    # -- legal clocks (live) ----------------------------------------------------

    def _clocks(self, view: CaseworkView) -> Content:
        lines = [Content.styled("Casework", "$accent bold")]
        if self.keys_hint:
            lines.append(Content.styled(self.keys_hint, MUTED))
        if view.clocks:
            lines.append(self._section("Legal clocks"))
        for clock in view.clocks:
            lines.append(Content("  " + clock.label))
            lines.append(Content("    ") + self._clock_status(clock))
        return Content("\n").join(lines)

    def _clock_status(self, clock: ClockView) -> Content:
        if clock.due_at is None:
            return Content.styled("starts when its report is filed", MUTED)
        state = clock.state_at(self._now)
        if state == ClockState.DONE:
            return self._clock_outcome(clock)
        verb = "expires" if clock.kind == ClockKind.HOLD else "due"
        left = clock.due_at - self._now
        parts: list[str | tuple[str, str]] = []
        if state == ClockState.BREACHED:
            parts.append((f"OVERDUE by {format_countdown(-left)}", CLOCK_STYLES[state]))
        else:
            parts.append((f"{format_countdown(left)} left", CLOCK_STYLES[state]))
        parts += [(f"  {verb} ", MUTED), self._when(clock.due_at)]
        if clock.reminder_at is not None:
            parts += [("  reminder ", MUTED), self._when(clock.reminder_at)]
        if clock.extensions or clock.extensions_left:
            times = "once" if clock.extensions == 1 else f"{clock.extensions} times"
            extended = f"extended {times}, " if clock.extensions else ""
            left_text = plural(clock.extensions_left, "extension")
            parts.append((f"  {extended}{left_text} left", MUTED))
        return Content.assemble(*parts)

    def _clock_outcome(self, clock: ClockView) -> Content:
        """A finished clock: filed (when, by whom, the report id), waived, or ended."""
        outcome = clock.outcome or "ended"
        at = clock.done_at or clock.due_at
        style = "$sla-warn bold" if outcome == "filed late" else "$success"
        if outcome in ("waived", "released", "expired", "ended"):
            style = MUTED
        parts: list[str | tuple[str, str]] = [(outcome, style)]
        if at is not None:
            parts += [" ", self._when(at)]
        if clock.done_by:
            parts.append(f" by {clock.done_by}")
        if clock.reference:
            parts += [("  report ", MUTED), (clock.reference, "bold")]
        return Content.assemble(*parts)

    # -- the rest ------------------------------------------------------------------

    def _body(self, view: CaseworkView) -> list[Content]:
        lines: list[Content] = []
        if view.request_flags:
            lines.append(self._section(f"Request flags ({len(view.request_flags)})"))
            lines += [Content.styled(f"  {flag}", "$sla-warn bold") for flag in view.request_flags]
        if view.tipline:
            lines.append(self._section("CyberTipline"))
            lines.append(Content(f"  {view.tipline}"))
            if view.tipline_next_try is not None:
                lines.append(
                    Content.assemble(("  next try ", MUTED), self._when(view.tipline_next_try))
                )
        verification = view.verification
        if verification.required or any(step.done for step in verification.steps):
            lines += self._verification(view)
        if view.disclosures or verification.required:
            none = "" if view.disclosures else "none yet"
            lines.append(self._section(f"Disclosures ({len(view.disclosures)})", none))
            lines += [line for d in view.disclosures for line in self._disclosure(d)]
        if view.containment:
            done = sum(1 for c in view.containment if c.done)
            lines.append(self._section(f"Containment ({done}/{len(view.containment)})"))
            lines += [line for step in view.containment for line in self._containment(step)]
        open_items = [a for a in view.actions if a.status == "open"]
        overdue = sum(1 for a in open_items if self._overdue(a))
        detail = f"{len(open_items)} open" + (f", {overdue} overdue" if overdue else "")
        lines.append(
            self._section(f"Action items ({len(view.actions)})", detail if view.actions else "none")
        )
        lines += [self._action(a) for a in view.actions]
        if view.partners:
            lines.append(self._section(f"Partners ({len(view.partners)})"))
            for partner in view.partners:
                channel = (
                    f" · verified channel: {partner.verified_channel}"
                    if partner.verified_channel
                    else ""
                )
                lines.append(
                    Content.assemble(
                        "  ",
                        (partner.name, "bold"),
                        (f"  {partner.kind}", MUTED),
                        f" · {partner.agency}{channel}",
                    )
                )
        return lines

    def _verification(self, view: CaseworkView) -> list[Content]:
        verification = view.verification
        done = sum(1 for step in verification.steps if step.done)
        need = "required" if verification.required else "optional"
        if verification.complete:
            state = Content.styled("complete", "$success bold")
        else:
            missing = ", ".join(verification.missing)
            style = "$sla-warn bold" if verification.required else MUTED
            state = Content.styled(f"missing {missing}", style)
        head = self._section("Verification", f"{need} · {done} of {len(verification.steps)} · ")
        lines = [head + state]
        for step in verification.steps:
            lines += self._step(step)
        return lines

    def _step(self, step: VerificationStepView) -> list[Content]:
        mark = DONE_MARK if step.done else OPEN_MARK
        line = Content(f"  {mark} {step.label}")
        if step.done and step.recorded_at is not None:
            line += Content.styled(f"  {step.recorded_by} {self._when(step.recorded_at)}", MUTED)
        facts = [
            Content.styled(f"      {key}: ", MUTED) + self._fact(value) for key, value in step.facts
        ]
        return [line, *facts]

    def _disclosure(self, d: DisclosureView) -> list[Content]:
        status = "awaiting approval" if d.status == "requested" else d.status
        lines = [
            Content.assemble(
                f"  #{d.number} ",
                (status, DISCLOSURE_STYLES.get(d.status, "")),
                f"  {', '.join(d.data)} ({plural(d.accounts, 'account')}) → ",
                (d.to, "bold"),
                f", {d.agency}",
            ),
            Content.assemble(("      basis ", MUTED), f"{d.basis}: {d.basis_label}"),
        ]
        decided: list[str | tuple[str, str]] = [
            ("      requested by ", MUTED),
            f"{d.requested_by} {self._when(d.requested_at)}",
        ]
        if d.decided_by and d.decided_at is not None:
            verb = "approved" if d.status == "disclosed" else "declined"
            decided += [(f" · {verb} by ", MUTED), f"{d.decided_by} {self._when(d.decided_at)}"]
        lines.append(Content.assemble(*decided))
        if d.override_reason:
            lines.append(
                Content.styled("      verification overridden: ", "$sla-warn")
                + self._fact(d.override_reason)
            )
        if d.decline_reason:
            lines.append(Content.styled("      declined: ", MUTED) + self._fact(d.decline_reason))
        return lines

    def _containment(self, step: ContainmentView) -> list[Content]:
        mark = DONE_MARK if step.done else OPEN_MARK
        line = Content(f"  {mark} {step.label}")
        if step.done and step.done_at is not None:
            line += Content.styled(f"  {step.done_by} {self._when(step.done_at)}", MUTED)
        if step.reference:
            line += Content.assemble(("  ref ", MUTED), step.reference)
        lines = [line]
        if step.note:
            lines.append(Content.styled("      note: ", MUTED) + self._fact(step.note))
        return lines

    def _overdue(self, item: ActionView) -> bool:
        return item.status == "open" and item.due_at is not None and item.due_at <= self._now

    def _action(self, item: ActionView) -> Content:
        mark = OPEN_MARK if item.status == "open" else DONE_MARK
        parts: list[str | tuple[str, str]] = [f"  #{item.id} {mark} ", item.title, "  "]
        owner = f"{item.owner}" + (" (team)" if item.owner_kind == "partner" else "")
        parts.append((owner or "nobody", "bold"))
        if item.status != "open":
            by = f" by {item.completed_by}" if item.completed_by else ""
            when = f" {self._when(item.completed_at)}" if item.completed_at else ""
            parts.append((f" · {item.status}{when}{by}", MUTED))
        elif item.due_at is not None:
            parts += [(" · due ", MUTED), self._when(item.due_at)]
            if self._overdue(item):
                parts.append(("  OVERDUE", "$sla-breach bold"))
        return Content.assemble(*parts)

"""The Handover screen (`h`): the outgoing person writes notes over the report of their shift
and submits it; the incoming person reads it and acknowledges it; past handovers are listed
and searchable for shift reviews.

When the console opens, a handover still waiting for this person's acknowledgement is shown
as soon as the queue is up (`announce_pending_handovers`). Every read and write runs in a
thread worker on `app.services.shiftwork.handover`; the reports carry titles, states and
times, never a case's sensitive details.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.suggester import SuggestFromList
from textual.widgets import (
    Footer,
    Input,
    Label,
    Static,
    TabbedContent,
    TabPane,
    TextArea,
)
from textual.worker import Worker, get_current_worker

from app.console.desk import Profile, read_past_handovers, read_pending_handovers
from app.console.messages import (
    HandoverAcknowledged,
    HandoversListed,
    HandoverSubmitted,
    ReportPreviewed,
)
from app.console.screens.dialogs import Confirm
from app.core.clock import Clock
from app.core.errors import BadInput, VigilError
from app.core.times import bounded_instant, format_instant
from app.services.shiftwork.handover import (
    CaseLine,
    HandoverReport,
    HandoverService,
    HandoverView,
    page_position,
)
from app.services.shiftwork.stats import format_seconds
from data.domain import Status, severity_name
from themes import STYLES
from widgets.handover_view import HandoverBrowser, HandoverRow
from widgets.timefmt import format_when, viewer_zone

if TYPE_CHECKING:
    from app.console.host import ConsoleHost
    from data.db import Database

PAST_LIMIT = 50
"""Past handovers listed at once (newest first); a search narrows them."""
SUMMARY_LENGTH = 80
MUTED = "$foreground-muted"
INDENT = " " * 10


# --- words and times ---------------------------------------------------------------


def parse_since(text: str, zone_name: str) -> datetime | None:
    """When the shift began, as typed: on the person's own clock unless it carries an
    offset; empty means their last shift on the schedules."""
    value = text.strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(
            "since",
            f"expected a time such as 2026-11-26 08:00 (on your clock, {zone_name}) or "
            f"2026-11-26T08:00+11:00, got {value!r}",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=viewer_zone(zone_name))
    return bounded_instant("since", parsed)


def _heading(text: str) -> Content:
    return Content.styled(f"\n{text}", "$accent bold")


def _case_head(ref: str, severity: int) -> Content:
    return Content.assemble(
        (f"{ref:<9}", "bold"), " ", (f"{severity_name(severity):<5}", f"$sev{severity} bold")
    )


def _title(title: str, sensitive: bool, indent: str = "") -> Content:
    """A case title, marked when the case is sensitive (its details never show here)."""
    marker = Content.styled("  SENSITIVE", "$sensitive bold") if sensitive else Content("")
    return Content(indent + title) + marker


def report_content(report: HandoverReport, zone_name: str, now: datetime) -> Content:
    """The report drawn for the terminal: one or two lines per case, times short on the
    reader's clock (the Markdown of `app.services.shiftwork.handover.render_markdown` is
    for files)."""
    zone = viewer_zone(zone_name)

    def when(at: datetime | None) -> str:
        return format_when(at, zone, now) if at is not None else "-"

    def day(at: datetime) -> str:
        return at.astimezone(zone).strftime("%a %d %b %H:%M")

    source = f"schedule {report.schedule}" if report.schedule else "from the time given"
    lines: list[Content] = [
        Content.assemble(
            ("Shift of ", MUTED),
            (report.author, "bold"),
            f"  {day(report.shift_start)} to {day(report.shift_end)} ({source})",
        ),
        Content.assemble(
            ("Hand-off ", MUTED),
            day(report.handoff_at),
            ("   incoming ", MUTED),
            (report.incoming or "nobody known", "bold"),
            ("   written ", MUTED),
            when(report.generated_at),
        ),
        _heading("Notes"),
        Content(report.notes.strip()) if report.notes.strip() else Content.styled("none", MUTED),
        _heading(f"Still open ({len(report.still_open)})"),
    ]
    for o in report.still_open:
        due = f" by {when(o.next_action_due_at)}" if o.next_action_due_at else ""
        status = "EXHAUSTED" if o.exhausted else o.status
        lines.append(
            _case_head(o.ref, o.severity)
            + Content.assemble(
                (f"{status:<13}", "$sla-breach bold" if o.exhausted else ""),
                (f"{o.assignee or 'unassigned':<12}", MUTED),
                "next: ",
                (f"{o.next_action}{due}", "bold"),
            )
        )
        lines.append(_title(o.title, o.sensitive, INDENT))
    clocks_until = report.legal_clocks_until
    by = f" due by {when(clocks_until)}" if clocks_until is not None else ""
    lines.append(_heading(f"Legal clocks{by} ({len(report.legal_clocks)})"))
    for c in report.legal_clocks:
        verb = "ends" if c.kind == "hold" else "due"
        breached = c.state == "breached"
        lines.append(
            Content.assemble(
                (f"{c.ref:<9}", "bold"),
                " ",
                (f"{'BREACHED' if breached else verb:<9}", "$sla-breach bold" if breached else ""),
                f"{when(c.due_at)}  ",
                (c.label, "bold"),
                ("  case resolved, report still owed", "$sla-warn")
                if c.case_status == Status.RESOLVED.value
                else "",
            )
        )
        lines.append(Content(INDENT + c.title))
    lines.append(_heading(f"SLA breaches ({len(report.sla_breaches)})"))
    for b in report.sla_breaches:
        met = f"met {when(b.met_at)}" if b.met_at else "not met yet"
        lines.append(
            _case_head(b.ref, b.severity)
            + Content.styled(
                f"{b.kind} by {when(b.due_at)}, {met}, late by {format_seconds(b.late_by_seconds)}",
                "$sla-breach",
            )
        )
        lines.append(Content(INDENT + b.title))
    lines.append(_heading(f"Pages that went unanswered ({len(report.unanswered)})"))
    for u in report.unanswered:
        answer = (
            f"answered by {u.answered_by} {when(u.answered_at)}"
            if u.answered_at
            else f"still {u.status}"
        )
        reached = page_position(u.reached_step, u.reached_round, u.reached_reason)
        lines.append(
            _case_head(u.ref, u.severity)
            + Content(f"escalated as far as {reached} of {u.step_count} steps; {answer}")
        )
        for p in u.pages:
            lines.append(
                Content.styled(
                    f"{INDENT}{p.handle} {when(p.sent_at)} "
                    f"({page_position(p.step, p.round, p.reason)}): no answer",
                    MUTED,
                )
            )
    for title, cases in (
        ("Opened", report.opened),
        ("Acknowledged", report.acknowledged),
        ("Resolved", report.resolved),
    ):
        lines.append(_heading(f"{title} ({len(cases)})"))
        lines.extend(_case_line(c, when(c.at)) for c in cases)
    lines.append(_heading("On call next"))
    for e in report.next_on_call:
        if e.who is None:
            gap_line = f"{e.schedule}: nobody (coverage gap from {when(e.start)})"
            lines.append(Content.styled(gap_line, "$sla-breach"))
            continue
        gap = " after a coverage gap" if e.after_gap else ""
        until = f" from {when(e.start)}{gap} until {when(e.end)}"
        lines.append(Content.assemble(f"{e.schedule}: ", (e.who, "bold"), until))
    lines.append(_heading(f"Overrides touching the next shift ({len(report.overrides)})"))
    for override in report.overrides:
        reason = f": {override.reason}" if override.reason else ""
        lines.append(
            Content(
                f"{override.schedule}: {override.who} from {when(override.start)} "
                f"to {when(override.end)}{reason}"
            )
        )
    return Content("\n").join(lines)


def _case_line(case: CaseLine, at: str) -> Content:
    by = f" by {case.by}" if case.by else ""
    return (
        _case_head(case.ref, case.severity)
        + Content.styled(f"{at}{by}  ", MUTED)
        + _title(case.title, case.sensitive)
    )


def handover_state(view: HandoverView) -> str:
    if view.pending:
        return f"waiting for {view.incoming}" if view.incoming else "waiting for anyone"
    return f"acked by {view.acknowledged_by or '?'}"


def handover_row(view: HandoverView, zone_name: str, now: datetime) -> HandoverRow:
    """A submitted handover as the lists show it, with its report drawn."""
    zone = viewer_zone(zone_name)
    if view.pending:
        whose = f"{view.incoming}'s" if view.incoming else "anyone's (nobody was named)"
        state = Content.styled(f"Waiting for {whose} acknowledgement", "$warning bold")
    else:
        state = Content.styled(
            f"Acknowledged by {view.acknowledged_by or '?'} "
            f"{format_instant(view.acknowledged_at, zone)}",
            "$success",
        )
    header = Content.assemble(
        (f"Handover {view.id}", "bold"),
        (f", submitted {format_instant(view.submitted_at, zone)}", MUTED),
        "\n",
        state,
        "\n\n",
    )
    first_line = next((line.strip() for line in view.notes.splitlines() if line.strip()), "")
    return HandoverRow(
        handover_id=view.id,
        submitted=format_when(view.submitted_at, zone, now),
        author=view.author,
        incoming=view.incoming or "-",
        state=handover_state(view),
        pending=view.pending,
        summary=first_line[:SUMMARY_LENGTH],
        body=header + report_content(view.report, zone_name, now),
    )


# --- reads and writes (thread workers call these) ------------------------------------


def read_pending(db: Database, profile: Profile, now: datetime) -> tuple[HandoverRow, ...]:
    """Handovers waiting for this person's acknowledgement, oldest first."""
    views = read_pending_handovers(db, profile.responder_id)
    return tuple(handover_row(view, profile.timezone, now) for view in views)


def read_past(
    db: Database, profile: Profile, now: datetime, search: str
) -> tuple[HandoverRow, ...]:
    views = read_past_handovers(db, search, PAST_LIMIT)
    return tuple(handover_row(view, profile.timezone, now) for view in views)


def acknowledge(db: Database, clock: Clock, handle: str, handover_id: int) -> HandoverAcknowledged:
    view = HandoverService(db, clock).acknowledge_handover(handle, handover_id)
    return HandoverAcknowledged(view.id, view.author)


# --- messages ----------------------------------------------------------------------


# --- the screen --------------------------------------------------------------------


class HandoverScreen(Screen[None]):
    """Write and submit; read and acknowledge; look back."""

    CSS_PATH = STYLES / "shiftwork.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="handover.close", tooltip="Back to the queue"),
        Binding(
            "ctrl+s",
            "submit",
            "Submit",
            id="handover.submit",
            tooltip="Close your shift: store the report with your notes for the incoming person",
        ),
        Binding(
            "ctrl+r",
            "preview",
            "Preview",
            id="handover.preview",
            tooltip="Make the report again (after changing Since), as it would be submitted",
        ),
        Binding(
            "a",
            "acknowledge",
            "Acknowledge",
            id="handover.ack",
            tooltip="Acknowledge the handover under the cursor: you read it and take over",
        ),
        Binding(
            "slash",
            "search",
            "Search",
            id="handover.search",
            tooltip="Search past handovers: notes, author, case references and titles",
        ),
        Binding("f2", "tab('write')", "Write", id="handover.write", tooltip="Write your handover"),
        Binding(
            "f3",
            "tab('inbox')",
            "For me",
            id="handover.inbox",
            tooltip="Handovers waiting for your acknowledgement",
        ),
        Binding(
            "f4",
            "tab('past')",
            "Past",
            id="handover.past",
            tooltip="Past handovers, newest first, for shift reviews",
        ),
    ]

    def __init__(self, tab: str = "write") -> None:
        super().__init__()
        self.initial_tab = tab
        self.past_search = ""
        self.inbox_count = 0

    # ----------------------------------------------------------------- context

    @property
    def vigil(self) -> ConsoleHost:
        return cast("ConsoleHost", self.app)

    @property
    def tabs(self) -> TabbedContent:
        return self.query_one("#handover-tabs", TabbedContent)

    @property
    def notes(self) -> TextArea:
        return self.query_one("#handover-notes", TextArea)

    def _browser(self, which: str) -> HandoverBrowser:
        return self.query_one(f"#{which}-browser", HandoverBrowser)

    # ----------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        app = self.vigil
        profile = app.profile
        yield Static(
            f"Shift handover · {profile.handle} ({profile.role}) · times in {profile.timezone}",
            classes="shift-title",
            markup=False,
        )
        with TabbedContent(initial=self.initial_tab, id="handover-tabs"):
            with TabPane("Write", id="write"), Container(id="write-body"):
                with Vertical(id="write-form"):
                    with Horizontal(classes="form-row"):
                        yield Label("Since", classes="field-label")
                        yield Input(
                            placeholder="empty: your last shift; or 2026-11-26 08:00",
                            id="handover-since",
                        )
                    with Horizontal(classes="form-row"):
                        yield Label("To   ", classes="field-label")
                        yield Input(
                            placeholder="empty: who the schedule has next",
                            suggester=SuggestFromList(app.handles, case_sensitive=False)
                            if app.handles
                            else None,
                            id="handover-to",
                        )
                    yield Label("Notes for the incoming person", classes="field-label")
                    yield TextArea(id="handover-notes", soft_wrap=True, show_line_numbers=False)
                    yield Static(
                        "Ctrl+R: make the report again   Ctrl+S: submit",
                        classes="hint",
                        markup=False,
                    )
                with VerticalScroll(classes="report", id="write-preview"):
                    yield Static("Making the report of your shift…", id="preview")
            with TabPane("For me", id="inbox"):
                yield HandoverBrowser(
                    empty_text="No handover is waiting for your acknowledgement.",
                    id="inbox-browser",
                    classes="handover-browser",
                )
            with TabPane("Past handovers", id="past"):
                yield Input(placeholder="search notes, author, case ref or title", id="past-search")
                yield HandoverBrowser(
                    empty_text="No handover matches.",
                    id="past-browser",
                    classes="handover-browser",
                )
        yield Footer()

    def on_mount(self) -> None:
        blink = self.vigil.cursor_blink
        self.notes.cursor_blink = blink
        for field in self.query(Input):
            field.cursor_blink = blink
        self._preview("")
        self._list_inbox()
        self._list_past("")
        self._focus_tab(self.initial_tab)

    def _focus_tab(self, tab: str) -> None:
        if tab == "write":
            self.notes.focus()
        else:
            self._browser(tab).table.focus()

    # ----------------------------------------------------------------- workers

    @work(
        thread=True,
        name="handover report",
        group="handover-preview",
        exclusive=True,
        exit_on_error=False,
    )
    def _preview(self, since_text: str) -> None:
        app = self.vigil
        zone = app.profile.timezone
        try:
            since = parse_since(since_text, zone)
            report = HandoverService(app.db, app.clock).report(app.profile.handle, since=since)
        except VigilError as exc:
            message = ReportPreviewed(Content(), problem=str(exc))
        else:
            message = ReportPreviewed(report_content(report, zone, app.clock.now()))
        if not get_current_worker().is_cancelled:
            self.post_message(message)

    @work(
        thread=True,
        name="handovers for me",
        group="handover-inbox",
        exclusive=True,
        exit_on_error=False,
    )
    def _list_inbox(self) -> None:
        app = self.vigil
        rows = read_pending(app.db, app.profile, app.clock.now())
        if not get_current_worker().is_cancelled:
            self.post_message(HandoversListed("inbox", rows))

    @work(
        thread=True,
        name="past handovers",
        group="handover-past",
        exclusive=True,
        exit_on_error=False,
    )
    def _list_past(self, search: str) -> None:
        app = self.vigil
        rows = read_past(app.db, app.profile, app.clock.now(), search)
        if not get_current_worker().is_cancelled:
            self.post_message(HandoversListed("past", rows, search))

    @work(thread=True, name="submit handover", group="handover-submit", exit_on_error=False)
    def _submit(self, notes: str, since_text: str, to_text: str) -> None:
        app = self.vigil
        since = parse_since(since_text, app.profile.timezone)
        view = HandoverService(app.db, app.clock).submit(
            app.profile.handle, notes, since=since, to=to_text.strip() or None
        )
        self.post_message(HandoverSubmitted(view.id, view.incoming))

    @work(thread=True, name="acknowledge handover", group="handover-ack", exit_on_error=False)
    def _acknowledge(self, handover_id: int) -> None:
        app = self.vigil
        self.post_message(acknowledge(app.db, app.clock, app.profile.handle, handover_id))

    # ----------------------------------------------------------------- results

    def on_report_previewed(self, message: ReportPreviewed) -> None:
        body = message.body
        if message.problem is not None:
            body = Content.assemble(
                ("No report yet. ", "$warning bold"),
                f"{message.problem}.\n\n",
                (
                    "Type when your shift began in Since (on your clock, or with an offset) "
                    "and press Enter.",
                    MUTED,
                ),
            )
        self.query_one("#preview", Static).update(body)

    def on_handovers_listed(self, message: HandoversListed) -> None:
        if message.which == "past" and message.search != self.past_search:
            return  # typed on since; a newer search is on its way
        self._browser(message.which).show_rows(message.rows)
        if message.which == "inbox":
            self.inbox_count = len(message.rows)
            label = f"For me ({self.inbox_count})" if self.inbox_count else "For me"
            self.tabs.get_tab("inbox").label = label

    def on_handover_submitted(self, message: HandoverSubmitted) -> None:
        who = message.incoming or "nobody named (anyone but you may acknowledge it)"
        self.notify(f"Handover {message.handover_id} submitted for {who}.", title="Submitted")
        self.notes.clear()
        self._list_past(self.past_search)
        self.action_tab("past")

    def on_handover_acknowledged(self, message: HandoverAcknowledged) -> None:
        self.notify(
            f"Handover {message.handover_id} from {message.author} acknowledged: "
            "the shift is yours.",
            title="Acknowledged",
        )
        self._list_inbox()
        self._list_past(self.past_search)

    # ----------------------------------------------------------------- actions

    def action_tab(self, tab: str) -> None:
        self.tabs.active = tab
        self._focus_tab(tab)

    def action_preview(self) -> None:
        self.query_one("#preview", Static).update("Making the report of your shift…")
        self._preview(self.query_one("#handover-since", Input).value)

    @on(Input.Submitted, "#handover-since, #handover-to")
    def _form_entered(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_preview()
        self.notes.focus()

    def action_submit(self) -> None:
        self._submit(
            self.notes.text,
            self.query_one("#handover-since", Input).value,
            self.query_one("#handover-to", Input).value,
        )

    def action_acknowledge(self) -> None:
        tab = self.tabs.active
        if tab == "write":
            key = self.vigil.key_for("handover.inbox", "f3")
            self.notify(f"Open a handover first: {key} lists those waiting for you.")
            return
        row = self._browser(tab).current
        if row is None:
            self.notify("No handover is selected.", severity="warning")
        elif not row.pending:
            self.notify(f"Handover {row.handover_id} is already acknowledged ({row.state}).")
        else:
            self._acknowledge(row.handover_id)

    def action_search(self) -> None:
        self.tabs.active = "past"
        self.query_one("#past-search", Input).focus()

    @on(Input.Changed, "#past-search")
    def _search_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.past_search = event.value
        self._list_past(event.value)

    @on(Input.Submitted, "#past-search")
    def _search_entered(self, event: Input.Submitted) -> None:
        event.stop()
        self._browser("past").table.focus()

    def action_close(self) -> None:
        if not self.notes.text.strip():
            self.dismiss()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.dismiss()

        self.app.push_screen(
            Confirm(
                "Close the handover",
                "Your notes are not submitted; closing discards them. Close anyway?",
            ),
            answered,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.vigil.report_worker(event, self)


# --- on opening the console -----------------------------------------------------------


class PendingHandoverDialog(ModalScreen[None]):
    """A handover waiting for this person, shown as their console opens."""

    CSS_PATH = STYLES / "shiftwork.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "a",
            "acknowledge",
            "Acknowledge",
            id="pending_handover.ack",
            tooltip="You read it and take over the shift",
        ),
        Binding(
            "h",
            "open_screen",
            "Handover screen",
            id="pending_handover.open",
            tooltip="Open the handover screen on the handovers waiting for you",
        ),
        Binding(
            "escape",
            "later",
            "Later",
            id="pending_handover.later",
            tooltip="Close this for now; the handover keeps waiting",
        ),
    ]

    def __init__(self, rows: tuple[HandoverRow, ...]) -> None:
        super().__init__()
        self.rows = rows

    @property
    def vigil(self) -> ConsoleHost:
        return cast("ConsoleHost", self.app)

    def compose(self) -> ComposeResult:
        with Vertical(id="pending-panel"):
            yield Static("", id="pending-title", classes="dialog-title", markup=False)
            with VerticalScroll(id="pending-report"):
                yield Static("", id="pending-body")
            yield Static(
                "a: acknowledge   h: open the handover screen   Escape: later",
                classes="dialog-hint",
                markup=False,
            )

    def on_mount(self) -> None:
        self._show_first()
        self.query_one("#pending-report").focus()

    def _show_first(self) -> None:
        row = self.rows[0]
        more = f" (1 of {len(self.rows)})" if len(self.rows) > 1 else ""
        self.query_one("#pending-title", Static).update(
            f"Handover {row.handover_id} from {row.author} waits for your acknowledgement{more}"
        )
        self.query_one("#pending-body", Static).update(row.body)
        self.query_one("#pending-report", VerticalScroll).scroll_home(animate=False)

    @work(thread=True, name="acknowledge handover", group="handover-ack", exit_on_error=False)
    def _acknowledge(self, handover_id: int) -> None:
        app = self.vigil
        self.post_message(acknowledge(app.db, app.clock, app.profile.handle, handover_id))

    def action_acknowledge(self) -> None:
        self._acknowledge(self.rows[0].handover_id)

    def on_handover_acknowledged(self, message: HandoverAcknowledged) -> None:
        self.notify(
            f"Handover {message.handover_id} from {message.author} acknowledged: "
            "the shift is yours.",
            title="Acknowledged",
        )
        self.rows = tuple(r for r in self.rows if r.handover_id != message.handover_id)
        if self.rows:
            self._show_first()
        else:
            self.dismiss()

    def action_open_screen(self) -> None:
        self.dismiss()
        self.app.push_screen(HandoverScreen(tab="inbox"))

    def action_later(self) -> None:
        key = self.vigil.key_for("queue.handover", "h")
        first = self.rows[0]
        waiting = (
            f"Handover {first.handover_id} from {first.author} still waits"
            if len(self.rows) == 1
            else f"{len(self.rows)} handovers still wait"
        )
        self.notify(
            f"{waiting} for your acknowledgement; {key} opens the handover screen.",
            severity="warning",
        )
        self.dismiss()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.vigil.report_worker(event, self)


async def announce_pending_handovers(app: ConsoleHost) -> None:
    """As the console opens: show a handover still waiting for this person, if any (run it
    in a worker: it reads the database on a thread)."""
    rows = await asyncio.to_thread(read_pending, app.db, app.profile, app.clock.now())
    if rows:
        app.push_screen(PendingHandoverDialog(rows))

"""The home screen: the priority queue, the case under the cursor, and every case action.

Everything that touches the database runs in a thread worker and answers with a message
(see `app.console.messages`). The change feed is polled twice a second; a change
repaints its own row when the case kept its place, and otherwise refetches only the
rows around the viewport, with the cursor kept on its case.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, ClassVar, cast

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input, Static
from textual.worker import Worker, WorkerState, get_current_worker

from app.console import desk
from app.console.bulk import bulk_summary, run_bulk
from app.console.desk import POLL_SECONDS
from app.console.host import COMFORTABLE_WIDTH
from app.console.messages import (
    BulkActionDone,
    CaseActionDone,
    ChangesAnnounced,
    ClockCategoriesLoaded,
    DeskStatusLoaded,
    DesktopNotified,
    DetailLoaded,
    FeedArrived,
    PagesArrived,
    ReadOrder,
    ResolveAwaitsYes,
    ViewSaved,
    WindowLoaded,
)
from app.console.screens.casework import (
    CaseworkChoices,
    CaseworkCommand,
    CaseworkFlows,
    CaseworkLoaded,
    CaseworkTarget,
    perform,
    read_casework,
)
from app.console.screens.dialogs import (
    Confirm,
    ConfirmWithY,
    FilterChoice,
    FilterDialog,
    TextPrompt,
)
from app.console.screens.tipline import TiplineFlows
from app.console.settings import MAX_VIEW_NAME, save_view, settings_path
from app.core.errors import BadInput
from app.core.times import parse_due
from app.delivery.local import PageAlert, claim_my_pages, record_desktop
from app.services.cases import CaseService
from app.services.casework.service import CaseworkService
from app.services.paging import UNSETTLED
from data.domain import DisclosureStatus, Status
from widgets.case_detail import CaseDetail
from widgets.header import Identity, StatusHeader
from widgets.queue_table import QueueTable
from widgets.timefmt import format_age, format_when, plural, viewer_zone
from widgets.views import CaseDetailView, CaseworkView, SeekAnchor

if TYPE_CHECKING:
    from app.console.host import ConsoleHost
    from data.clock import DatabaseClock

LISTEN_SLICE = 0.25
"""How long the change listener blocks between looks at whether the screen is closing."""
LISTEN_RETRY = (1.0, 30.0)
"""First and longest pause before the change listener connects again after a failure."""
STATUS_SECONDS = 15.0
DELIVERY_SECONDS = 5.0
"""How often the shown case is read again while a delivery of its pages is unsettled: the
outbox, and the paged person's console, record what became of a delivery without a
change of the case to announce it."""
UNDO_RESOLVE = timedelta(seconds=10)
"""How long after a resolve its toast offers to take it back."""
UNDO_REASON = "resolved by mistake; undone at the console right after"
"""The reopen's reason when a resolve is undone (kept in the timeline and the audit log)."""
REVEAL_IDLE = timedelta(minutes=2)
"""Revealed sensitive details hide again after this long without a key."""
ACKING = "acking…"
"""A row's status from the acknowledge keystroke until the acknowledgement is stored."""
WINDOW_MARGIN = 20
"""Rows refetched above and below the viewport after a reshuffle (scrolling further asks
the table's own, wider windows)."""
RETRY_SECONDS = 2.0
MAX_PAGES_LISTED = 3


@dataclass(frozen=True, slots=True)
class FeedRequest:
    """What a poll of the change feed reads besides the feed: the shown case (its
    details revealed or not), and the rows a refetch after a burst covers."""

    detail_case: int | None
    revealed: bool
    offset: int
    limit: int
    follow: int | None


def paged_text(alerts: tuple[PageAlert, ...]) -> str:
    """The toast of pages just arrived: each case once (a case paged at two steps since the
    console last looked is one line), the first few of them."""
    by_case: dict[int, list[PageAlert]] = {}
    for alert in alerts:
        by_case.setdefault(alert.case_id, []).append(alert)
    lines = [
        pages[0].summary + (f" ({len(pages)} pages)" if len(pages) > 1 else "")
        for pages in by_case.values()
    ]
    text = "\n".join(lines[:MAX_PAGES_LISTED])
    if len(lines) > MAX_PAGES_LISTED:
        text += f"\n… and {plural(len(lines) - MAX_PAGES_LISTED, 'more case')}"
    return text


def next_sort(sort: str) -> str:
    """The order after `sort` in `S`'s cycle: the queue's own, then each other one."""
    orders = list(desk.SORT_COLUMNS)
    return orders[(orders.index(sort) + 1) % len(orders)]


@dataclass(frozen=True, slots=True)
class CaseAction:
    """One case action requested at this console."""

    verb: str  # ack, resolve, note, reassign, escalate, snooze, reopen, merge
    case_id: int
    ref: str
    text: str = ""
    confirmed: bool = False  # resolve: yes, although the case still owes a report
    until: datetime | None = None  # snooze: when it pages again

    @property
    def draft_key(self) -> tuple[str, int]:
        return (self.verb, self.case_id)


def _binding(
    key: str, action: str, description: str, ident: str, tooltip: str, *, show: bool = True
) -> Binding:
    return Binding(key, action, description, show=show, id=ident, tooltip=tooltip)


UNDO = _binding(
    "ctrl+z",
    "undo_resolve",
    "Undo resolve",
    "queue.undo_resolve",
    f"Reopen the case just resolved here, within {int(UNDO_RESOLVE.total_seconds())} s (audited)",
    show=False,
)


class QueueScreen(Screen[None]):
    """The queue beside the detail pane (below it on a narrow terminal)."""

    AUTO_FOCUS = "#queue"

    BINDINGS: ClassVar[list[BindingType]] = [
        _binding("a", "ack", "Ack", "queue.ack", "Acknowledge the selected case"),
        _binding(
            "r",
            "resolve",
            "Resolve",
            "queue.resolve",
            "Resolve the selected case, with an optional note",
        ),
        _binding("n", "note", "Note", "queue.note", "Add a note to the selected case"),
        _binding(
            "R",
            "reassign",
            "Reassign",
            "queue.reassign",
            "Hand the selected case to someone else (supervisors)",
        ),
        _binding(
            "e",
            "escalate",
            "Escalate",
            "queue.escalate",
            "Page the next escalation step of the selected case now",
        ),
        _binding(
            "z",
            "snooze",
            "Snooze",
            "queue.snooze",
            "Put the selected case away until a time, with a reason; it pages again then",
            show=False,
        ),
        _binding(
            "o",
            "reopen",
            "Reopen",
            "queue.reopen",
            "Reopen the selected resolved case (within 24 hours of resolving it), with a reason",
            show=False,
        ),
        UNDO,
        _binding(
            "L",
            "toggle_clocks",
            "Clocks",
            "queue.clocks",
            "Show only the cases with legal clocks, resolved ones that still owe a report "
            "included (press again to go back)",
            show=False,
        ),
        _binding(
            "M",
            "merge",
            "Merge",
            "queue.merge",
            "Close the selected case as a duplicate of another (its reference); its pages, "
            "notes and timeline stay readable",
            show=False,
        ),
        _binding(
            "Z",
            "toggle_snoozed",
            "Snoozed",
            "queue.snoozed",
            "Show only the snoozed cases (press again to go back)",
            show=False,
        ),
        _binding(
            "x",
            "full_case",
            "Full case",
            "queue.full_case",
            "Show the selected case full-screen, every section of it (x or Esc: back to the "
            "queue); the case keys still act on it",
            show=False,
        ),
        _binding(
            "y",
            "copy_ref",
            "Copy ref",
            "queue.copy_ref",
            "Copy the selected case's reference (the marked cases' references, when any) to "
            "the clipboard, through the terminal (OSC 52) where it allows",
            show=False,
        ),
        _binding(
            "v",
            "reveal",
            "Reveal",
            "queue.reveal",
            "Show the sensitive details of the selected case (audited)",
        ),
        _binding(
            "slash",
            "search",
            "Search",
            "queue.search",
            "Search the queue by reference or title as you type",
        ),
        _binding(
            "f",
            "filters",
            "Filter",
            "queue.filters",
            "Filter by category and severity, or include resolved cases",
            show=False,
        ),
        _binding(
            "m",
            "toggle_mine",
            "Mine",
            "queue.mine",
            "Show only cases assigned to me or paged to me",
            show=False,
        ),
        _binding(
            "u",
            "toggle_unassigned",
            "Unassigned",
            "queue.unassigned",
            "Show only cases nobody is assigned to",
            show=False,
        ),
        _binding(
            "1",
            "toggle_severity(1)",
            "Sev1",
            "queue.sev1",
            "Show only sev1 cases (press again to undo)",
            show=False,
        ),
        _binding(
            "2",
            "toggle_severity(2)",
            "Sev2",
            "queue.sev2",
            "Show only sev2 cases (press again to undo)",
            show=False,
        ),
        _binding(
            "3",
            "toggle_severity(3)",
            "Sev3",
            "queue.sev3",
            "Show only sev3 cases (press again to undo)",
            show=False,
        ),
        _binding(
            "4",
            "toggle_severity(4)",
            "Sev4",
            "queue.sev4",
            "Show only sev4 cases (press again to undo)",
            show=False,
        ),
        _binding(
            "S",
            "next_sort",
            "Sort",
            "queue.sort",
            "Order the queue by the next column: severity, age (oldest first), status, "
            "then the queue's own order again",
            show=False,
        ),
        _binding(
            "w",
            "save_view",
            "Save view",
            "queue.save_view",
            "Save the filters and the order under a name, in your console.toml",
            show=False,
        ),
        _binding(
            "W",
            "recall_view",
            "Views",
            "queue.recall_view",
            "Show a saved view: its filters and its order, by name",
            show=False,
        ),
        _binding(
            "escape",
            "clear_filters",
            "Clear filters",
            "queue.clear_filters",
            "Unmark the marked cases; else clear the search, every filter and the order",
            show=False,
        ),
        _binding(
            "c",
            "open_screen('calendar')",
            "Calendar",
            "queue.calendar",
            "Open the on-call calendar",
            show=False,
        ),
        _binding(
            "h",
            "open_screen('handover')",
            "Handover",
            "queue.handover",
            "Open the shift handover",
            show=False,
        ),
        _binding(
            "i",
            "inbox",
            "Inbox",
            "queue.inbox",
            "What waits on you: disclosures and swaps to approve, swaps to take, handovers "
            "to acknowledge, your open action items, reports owed on your cases",
            show=False,
        ),
        _binding(
            "s",
            "open_screen('stats')",
            "Stats",
            "queue.stats",
            "Open the desk's statistics",
            show=False,
        ),
        _binding(
            "t",
            "open_screen('team')",
            "Team",
            "queue.team",
            "Open the team: who is on call now, and how and when each person is paged",
            show=False,
        ),
        _binding(
            "A",
            "open_screen('agency')",
            "Agencies",
            "queue.agency",
            "Open the agency directory: each law-enforcement partner's verified call-back "
            "numbers and e-mail domains (supervisors add and remove them)",
            show=False,
        ),
        _binding(
            "V",
            "verify",
            "Verify",
            "queue.verify",
            "Record a step of the request's verification checklist (identity, agency, "
            "emergency, good faith)",
            show=False,
        ),
        _binding(
            "D",
            "disclose",
            "Disclose",
            "queue.disclose",
            "Record a disclosure decision; supervisors also approve or decline requested ones",
            show=False,
        ),
        _binding(
            "F",
            "legal_clock",
            "Legal clock",
            "queue.legal_clock",
            "File the report a legal clock asks for (its id); extend or waive a hold. "
            "The queue's Legal column: ⚖ time left on the most urgent clock, amber from "
            "its reminder, red when overdue; ! an overdue action item; ? a disclosure "
            "awaiting a supervisor's approval",
            show=False,
        ),
        _binding(
            "K",
            "contain",
            "Contain",
            "queue.contain",
            "Mark a containment step of the case's checklist done",
            show=False,
        ),
        _binding(
            "I",
            "action_items",
            "Action items",
            "queue.action_items",
            "Add an action item with an owner and a due time, or close one; "
            "! in the queue's Legal column marks an overdue one",
            show=False,
        ),
        _binding(
            "N",
            "tipline",
            "CyberTipline",
            "queue.tipline",
            "Review the CSEA case's CyberTipline report, then file it with NCMEC; the "
            "casework pane shows the filing",
            show=False,
        ),
        _binding(
            "E",
            "evidence",
            "Evidence",
            "queue.evidence",
            "The CSEA case's evidence files and whether each was viewed; viewing one is audited",
            show=False,
        ),
        _binding(
            "P",
            "postmortem",
            "Post-mortem",
            "queue.postmortem",
            "Open the post-mortem of the selected case (supervisors open a new one)",
            show=False,
        ),
        _binding(
            "T",
            "template",
            "Template",
            "queue.template",
            "Answer the selected case from a response template, then log it as a note",
            show=False,
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0
        self.last_change_id: int | None = None
        self.detail_case: int | None = None
        self.revealed: tuple[int, str] | None = None
        self.drafts: dict[tuple[str, int], str] = {}
        self.casework_flows = CaseworkFlows(self)
        self.tipline_flows = TiplineFlows(self)
        self._casework: tuple[CaseworkView, CaseworkChoices] | None = None
        self.detail_reads = ReadOrder()
        self.casework_reads = ReadOrder()
        self._feed_worker: Worker[None] | None = None
        self._status_worker: Worker[None] | None = None
        self._desktop_told = False
        self._deliveries_unsettled = False
        """Whether the shown case has a delivery whose status will still change."""
        self._opened_at = self.vigil.clock.now()  # decisions since then are news
        self._decisions_told: set[int] = set()
        self._feed_down = False
        self.queue_filter = desk.QueueFilter()
        self._recovery: Timer | None = None
        self._feed_again = False
        self._first_window_shown = False
        self._screen_gone = threading.Event()
        self._db_clock: DatabaseClock | None = None
        self._summary_text = ""
        self._going_to: int | None = None
        self._undo: tuple[int, str, datetime] | None = None
        """The case this console resolved last, its reference and until when it may be undone."""
        """A case the inbox asked for, until the window read around it arrives."""

    # ----------------------------------------------------------------- context

    @property
    def vigil(self) -> ConsoleHost:
        return cast("ConsoleHost", self.app)

    @property
    def table(self) -> QueueTable:
        return self.query_one("#queue", QueueTable)

    @property
    def detail(self) -> CaseDetail:
        return self.query_one("#detail", CaseDetail)

    @property
    def header(self) -> StatusHeader:
        return self.query_one("#header", StatusHeader)

    @property
    def search_input(self) -> Input:
        return self.query_one("#search", Input)

    # ----------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        app = self.vigil
        profile = app.profile
        now = app.clock.now()
        yield StatusHeader(
            Identity(profile.handle, profile.role, profile.timezone, app.db.display_name),
            now=now,
            id="header",
        )
        with Horizontal(id="filterbar"):
            yield Static("", id="filter-summary", markup=False)
            yield Input(placeholder="search ref or title", id="search")
        with Container(id="body"):
            yield QueueTable(now=now, id="queue")
            yield CaseDetail(
                now=now,
                timezone=profile.timezone,
                reveal_key=app.key_for("queue.reveal", "v"),
                casework_keys=self._casework_keys(),
                id="detail",
            )
        yield Footer()

    def on_mount(self) -> None:
        self.queue_filter = desk.QueueFilter(me=self.vigil.profile.responder_id)
        self.search_input.cursor_blink = self.vigil.cursor_blink
        self.search_input.display = False
        self._show_filter_summary()
        self._take_first_read()
        self.set_interval(POLL_SECONDS, self.check_feed, name="poll the change feed")
        if self.vigil.db.is_postgres:
            # A thread of the screen's own, not a worker: it lives as long as the screen,
            # and a worker that never completes would hold up every wait for workers.
            threading.Thread(
                target=self._listen_for_changes, name="vigil-change-listener", daemon=True
            ).start()
        self.set_interval(1.0, self.tick, name="clock")
        self.set_interval(STATUS_SECONDS, self.refresh_status, name="desk status")
        self.set_interval(
            DELIVERY_SECONDS, self.refresh_unsettled_deliveries, name="deliveries settle"
        )

    def _start_the_rest(self) -> None:
        """The first rows are on screen (or could not be read): start everything else."""
        if self._first_window_shown:
            return
        self._first_window_shown = True
        self._claim_waiting_pages()
        # A notification rule's delay or quiet hours hold some rows until later, with no
        # change of the case to announce them: look for those now and then.
        self.set_interval(STATUS_SECONDS, self._claim_waiting_pages, name="pages come due")
        self.refresh_status()
        self.vigil.start_desk_work()

    def on_resize(self, event: events.Resize) -> None:
        """On a narrow terminal the footer packs its keys and leaves out the palette hint
        (Ctrl+P still works, and the help screen lists it), so every action key shows."""
        footer = self.query_one(Footer)
        footer.compact = event.size.width < COMFORTABLE_WIDTH
        footer.show_command_palette = event.size.width >= COMFORTABLE_WIDTH

    # ----------------------------------------------------------------- timers

    def tick(self) -> None:
        now = self.vigil.clock.now()
        self.header.set_now(now)
        self.table.set_now(now)
        self.detail.set_now(now)
        if self.revealed is not None and now - self.vigil.last_key_at >= REVEAL_IDLE:
            case_id = self.revealed[0]
            self._conceal()
            self._read_casework(case_id)
            self.notify(
                f"Sensitive details hidden again after {format_age(REVEAL_IDLE)} without a key",
                title="Hidden",
                markup=False,
            )

    def on_unmount(self) -> None:
        self._screen_gone.set()

    def on_changes_announced(self, _message: ChangesAnnounced) -> None:
        feed_running = self._feed_worker is not None and self._feed_worker.is_running
        # While an action of this console is being stored, the news is most likely that
        # action itself, whose result repaints its row: read the feed once it is done
        # rather than race it for the database. A feed read under way may have missed it.
        if feed_running or self._acting():
            self._feed_again = True
            return
        self.check_feed()

    def _acting(self) -> bool:
        return self._under_way("case-action")

    def _under_way(self, group: str) -> bool:
        """Whether a worker of `group` is under way."""
        return any(w.group == group and w.is_running for w in self.workers)

    def check_feed(self) -> None:
        if self.last_change_id is None:
            return  # the first window has not arrived yet
        if self._feed_worker is not None and self._feed_worker.is_running:
            return
        if self._acting():  # as for an announcement: read it once the action is shown
            self._feed_again = True
            return
        row = self.table.cursor_row
        follow = row.case_id if row is not None else None
        self._feed_worker = self._read_feed(
            self.generation,
            self.queue_filter,
            self.last_change_id,
            FeedRequest(
                self.detail_case,
                self.revealed is not None and self.revealed[0] == self.detail_case,
                *self._visible_window(following=follow is not None),
                follow,
            ),
        )

    def refresh_status(self) -> None:
        if self._status_worker is None or not self._status_worker.is_running:
            self._status_worker = self._read_status()

    def refresh_unsettled_deliveries(self) -> None:
        """Read the shown case again while any delivery of its pages may still change
        (unless a read of it is under way)."""
        if not self._deliveries_unsettled or self.detail_case is None:
            return
        if not self._under_way("detail"):
            self._read_detail(self.detail_case)

    # ----------------------------------------------------------------- workers

    @work(
        thread=True, name="queue window", group="queue-window", exclusive=True, exit_on_error=False
    )
    def _read_window(
        self,
        generation: int,
        flt: desk.QueueFilter,
        offset: int,
        limit: int,
        replace_cache: bool,
        follow_case: int | None,
        prime: bool = False,
        anchor: SeekAnchor | None = None,
    ) -> None:
        app = self.vigil
        change_id = desk.latest_change(app.db) if prime else None
        window = desk.read_window(
            app.db, app.profile, flt, offset, limit, follow_case, anchor=anchor, now=app.clock.now()
        )
        if not get_current_worker().is_cancelled:
            self.post_message(
                WindowLoaded(generation, window, replace_cache, follow_case, change_id)
            )

    @work(thread=True, name="change feed", group="feed", exit_on_error=False)
    def _read_feed(
        self, generation: int, flt: desk.QueueFilter, after_id: int, request: FeedRequest
    ) -> None:
        """Read the feed and, in this same thread, what it makes the screen show anew: the
        window after a burst, the shown case and its casework. One thread at a time, and
        one repaint of all of it: follow-up reads started from the screen would run side
        by side, contend for the interpreter with the repaint, and stall the event loop."""
        app = self.vigil
        now = app.clock.now()
        feed = desk.read_feed(app.db, app.profile, flt, after_id, now)
        if feed is None:
            return  # nothing changed: no message at all
        alerts = claim_my_pages(app.db, app.clock, app.profile.responder_id, feed.changed)
        window = (
            desk.read_window(
                app.db, app.profile, flt, request.offset, request.limit, request.follow, now=now
            )
            if feed.changes is None
            else None
        )
        shown = request.detail_case if request.detail_case in feed.changed else None
        detail, detail_order = None, 0
        if shown is not None:
            detail_order = self.detail_reads.begin()
            detail = desk.read_detail(app.db, shown)
            self._post_casework(shown, revealed=request.revealed)
        decisions = desk.read_decisions_for(app.db, app.profile.responder_id, self._opened_at)
        self.post_message(
            FeedArrived(
                generation,
                feed,
                tuple(alerts),
                detail,
                detail_order,
                decisions,
                window,
                request.follow,
                shown,
            )
        )

    def _listen_for_changes(self) -> None:
        """Hear of every committed change at once (PostgreSQL LISTEN), so another console's
        change shows without waiting for the next poll. A failure only means waiting for
        the poll (which also tells the person when the database is away) until the
        listener is back."""
        pause = LISTEN_RETRY[0]
        while not self._screen_gone.is_set():
            try:
                listener = desk.listen_for_changes(self.vigil.db)
            except Exception:
                self._screen_gone.wait(pause)
                pause = min(pause * 2, LISTEN_RETRY[1])
                continue
            pause = LISTEN_RETRY[0]
            try:
                while not self._screen_gone.is_set():
                    if listener.wait(LISTEN_SLICE):
                        self.post_message(ChangesAnnounced())
            except Exception:
                self._screen_gone.wait(pause)
            finally:
                listener.close()

    @work(thread=True, name="waiting pages", group="pages", exit_on_error=False)
    def _claim_waiting_pages(self) -> None:
        """Pages that came while no console of mine was open ring as soon as it opens."""
        app = self.vigil
        alerts = claim_my_pages(app.db, app.clock, app.profile.responder_id)
        if alerts:
            self.post_message(PagesArrived(tuple(alerts)))

    @work(thread=True, name="case detail", group="detail", exclusive=True, exit_on_error=False)
    def _read_detail(self, case_id: int) -> None:
        order = self.detail_reads.begin()
        view = desk.read_detail(self.vigil.db, case_id)
        if not get_current_worker().is_cancelled:
            self.post_message(DetailLoaded(case_id, view, order))

    @work(thread=True, name="reveal", group="reveal", exit_on_error=False)
    def _reveal(self, case_id: int, ref: str) -> None:
        app = self.vigil
        details = CaseService(app.db, app.clock).reveal(app.profile.handle, ref, reason="console")
        order = self.detail_reads.begin()
        view = desk.read_detail(app.db, case_id)
        self.post_message(DetailLoaded(case_id, view, order, revealed=details))
        self._post_casework(case_id, revealed=True)

    def _post_casework(self, case_id: int, *, revealed: bool) -> None:
        app = self.vigil
        order = self.casework_reads.begin()
        found = read_casework(app.db, app.clock, case_id, revealed=revealed)
        view, choices = found if found is not None else (None, CaseworkChoices())
        self.post_message(CaseworkLoaded(case_id, view, choices, order))

    @work(thread=True, name="casework", group="casework", exclusive=True, exit_on_error=False)
    def _read_casework_in_thread(self, case_id: int, revealed: bool) -> None:
        self._post_casework(case_id, revealed=revealed)

    @work(thread=True, name="casework action", group="case-action", exit_on_error=False)
    def _perform_casework(
        self,
        command: CaseworkCommand,
        generation: int,
        flt: desk.QueueFilter,
        seen: desk.ScreenRows,
    ) -> None:
        app = self.vigil
        service = CaseworkService(app.db, app.clock)
        zone = viewer_zone(app.profile.timezone)
        text = perform(service, app.profile.handle, command, zone)
        window = desk.read_after_action(
            app.db, app.profile, flt, command.case_id, seen, app.clock.now()
        )
        verb, case_id = command.draft_key
        self.post_message(CaseActionDone(verb, case_id, command.ref, text, generation, window))

    @work(thread=True, name="case action", group="case-action", exit_on_error=False)
    def _perform(
        self, action: CaseAction, generation: int, flt: desk.QueueFilter, seen: desk.ScreenRows
    ) -> None:
        """Store the action, then read where its case now sits, in this one thread: the
        row moves with one message back, not a second read started from the screen."""
        app = self.vigil
        service = CaseService(app.db, app.clock)
        me = app.profile.handle
        if action.verb == "ack":
            case = service.acknowledge(me, action.ref)
            text = (
                f"{case.ref} acknowledged"
                if case.status == Status.ACKNOWLEDGED.value
                else f"{case.ref}: your acknowledgement is recorded; waiting for the others"
            )
        elif action.verb == "resolve":
            if not action.confirmed and (
                owed := desk.read_owed_reports(app.db, action.case_id, app.clock.now())
            ):
                self.post_message(
                    ResolveAwaitsYes(action.case_id, action.ref, action.text, tuple(owed))
                )
                return
            case = service.resolve(me, action.ref, note=action.text or None)
            text = f"{case.ref} resolved" + (" with a note" if action.text else "")
            if action.confirmed:
                text += "; it stays in the queue until its report is filed"
        elif action.verb == "note":
            case = service.add_note(me, action.ref, action.text)
            text = f"Note added to {case.ref}"
        elif action.verb == "reassign":
            case = service.reassign(me, action.ref, action.text)
            text = f"{case.ref} reassigned to {action.text.strip()}"
        elif action.verb == "escalate":
            case = service.escalate_now(me, action.ref)
            text = f"{case.ref}: the next escalation step is due now"
        elif action.verb == "snooze" and action.until is not None:
            case = service.snooze(me, action.ref, action.until, action.text)
            when = format_when(action.until, viewer_zone(app.profile.timezone), app.clock.now())
            text = f"{case.ref} snoozed until {when}; it pages again then"
        elif action.verb == "merge":
            target = service.merge(me, action.ref, action.text)
            text = f"{action.ref} merged into {target.ref} and resolved"
        elif action.verb == "reopen":
            case = service.reopen(me, action.ref, action.text)
            text = f"{case.ref} reopened; it is yours to work on"
        else:
            raise ValueError(f"unknown case action {action.verb!r}")
        window = desk.read_after_action(
            app.db, app.profile, flt, action.case_id, seen, app.clock.now()
        )
        self.post_message(
            CaseActionDone(action.verb, action.case_id, action.ref, text, generation, window)
        )

    @work(thread=True, name="bulk action", group="case-action", exit_on_error=False)
    def _perform_bulk(self, verb: str, cases: tuple[tuple[int, str], ...], text: str) -> None:
        """Each marked case through the case service in turn; every outcome comes back."""
        app = self.vigil
        service = CaseService(app.db, app.clock)
        outcomes = run_bulk(service, app.profile.handle, verb, cases, text)
        self.post_message(BulkActionDone(verb, outcomes))

    @work(thread=True, name="desktop notification", group="desktop", exit_on_error=False)
    def _notify_desktop(self, alerts: tuple[PageAlert, ...]) -> None:
        app = self.vigil
        for alert in alerts:
            if not alert.desktop_delivery_ids:
                continue
            outcome = app.desktop.notify("Vigil: you are paged", alert.summary)
            record_desktop(app.db, app.clock, alert.desktop_delivery_ids, outcome)
            self.post_message(DesktopNotified(outcome, alert.case_id))

    @work(thread=True, name="desk status", group="status", exit_on_error=False)
    def _read_status(self) -> None:
        app = self.vigil
        now = app.clock.now()
        try:
            on_call = desk.read_on_call(app.db, now)
        except ValueError:
            on_call = None  # a stored rotation that does not make a valid schedule
        heartbeat = desk.engine_heartbeat(app.db)
        if self._db_clock is None:  # one, so a clock that is off is logged once
            self._db_clock = desk.database_clock(app.db, app.clock)
        self._db_clock.sync()
        waiting = desk.pages_wait_for_a_sender(app.db, now)
        self.post_message(DeskStatusLoaded(on_call, heartbeat, self._db_clock.skew, waiting))

    # ----------------------------------------------------------------- queue data

    def _visible_window(self, *, following: bool = False) -> tuple[int, int]:
        table = self.table
        # Before its first layout the table has no height: size the window for the whole
        # screen, so the first read fills it instead of costing a second round trip.
        height = table.scrollable_content_region.height or self.app.size.height
        rows = max(1, height - 1)
        top = int(table.scroll_y)
        start = max(0, top - WINDOW_MARGIN)
        limit = (top - start) + rows + WINDOW_MARGIN
        if following:
            # A followed case that moved gets the window centred on it (desk.read_window)
            # and keeps its line on screen: two screens of rows cover any line.
            limit = max(limit, 2 * rows)
        return start, limit

    def _screen_rows(self) -> desk.ScreenRows:
        """The rows on screen and the cursor's line among them: after an action, the
        rows read are those the screen will show with the cursor on the same line."""
        table = self.table
        height = table.scrollable_content_region.height or self.app.size.height
        top = int(table.scroll_y)
        return desk.ScreenRows(top, max(1, height - 1), max(0, table.cursor_index - top))

    def _take_first_read(self) -> None:
        """Show the rows read before the console opened (no round trip, so the first frame
        has them); read them now if there are none or they do not fill the screen."""
        first, self.vigil.first_read = self.vigil.first_read, None
        offset, limit = self._visible_window()
        if first is not None and offset == 0 and first.covers(self.queue_filter, limit):
            self.on_window_loaded(
                WindowLoaded(self.generation, first.window, True, None, first.change_id)
            )
        else:
            self._reload(prime=True)

    def _reload(self, *, prime: bool = False, new_filter: bool = False) -> None:
        """Refetch the count and the rows around the viewport, following the cursor's case."""
        if new_filter:
            self.generation += 1
        row = self.table.cursor_row
        offset, limit = self._visible_window(following=row is not None)
        self._read_window(
            self.generation,
            self.queue_filter,
            offset,
            limit,
            True,
            row.case_id if row is not None else None,
            prime,
        )

    @on(QueueTable.WindowNeeded)
    def _window_needed(self, event: QueueTable.WindowNeeded) -> None:
        event.stop()
        self._read_window(
            self.generation,
            self.queue_filter,
            event.offset,
            event.limit,
            False,
            None,
            anchor=event.anchor,
        )

    def on_window_loaded(self, message: WindowLoaded) -> None:
        if message.change_id is not None and self.last_change_id is None:
            self.last_change_id = message.change_id
        if message.generation != self.generation:
            return
        table = self.table
        window = message.window
        if message.replace and window.total is not None:
            followed = window.follow_position is not None
            table.replace_window(
                window.total,
                window.offset,
                window.rows,
                message.follow_case if followed else None,
            )
        else:
            table.set_window(window.offset, window.rows)
        if window.total == 0:
            self._select_case(None)
        if message.follow_case is not None and message.follow_case == self._going_to:
            self._going_to = None
            if window.follow_position is None:
                self.notify(
                    "That case is not in the queue as filtered; Esc clears the filters.",
                    severity="warning",
                    markup=False,
                )
        self._show_filter_summary()
        if message.replace and not self._first_window_shown:
            self.call_after_refresh(self._start_the_rest)

    def on_pages_arrived(self, message: PagesArrived) -> None:
        self._ring(message.alerts)
        # Claiming them marked their console rows shown: the pane says so at once.
        if self.detail_case in {alert.case_id for alert in message.alerts}:
            self._read_detail(self.detail_case)

    def on_feed_arrived(self, message: FeedArrived) -> None:
        if message.alerts:
            self._ring(message.alerts)
        feed = message.feed
        if feed is None:
            return
        self.last_change_id = max(self.last_change_id or 0, feed.last_id)
        self.vigil.wake_engine()
        if message.generation == self.generation:
            if message.window is not None:
                self._take_feed_window(message.window, message.follow_case)
            else:
                self._apply_changes(feed.total, feed.changes)
        if (
            message.detail is not None
            and message.detail.case_id == self.detail_case
            and self.detail_reads.take(message.detail_order)
        ):
            self._show_detail(message.detail)
        if (
            self.detail_case is not None
            and self.detail_case in feed.changed
            and self.detail_case != message.casework_case
        ):
            self._read_casework(self.detail_case)
        self._tell_decisions(message.decisions)

    def _take_feed_window(self, window: desk.Window, follow_case: int | None) -> None:
        """The window the feed read after a burst, unless the cursor moved to another case
        meanwhile: it would be pulled back, so that case's window is read instead."""
        row = self.table.cursor_row
        if (row.case_id if row is not None else None) != follow_case:
            self._reload()
            return
        self.workers.cancel_group(self, "queue-window")  # as a reload would: this is newer
        self.on_window_loaded(WindowLoaded(self.generation, window, True, follow_case))

    def _tell_decisions(self, decisions: tuple[desk.DisclosureDecided, ...]) -> None:
        """A toast for each decision on a disclosure I asked for, once."""
        for decision in decisions:
            if decision.disclosure_id in self._decisions_told:
                continue
            self._decisions_told.add(decision.disclosure_id)
            approved = decision.status == DisclosureStatus.DISCLOSED.value
            verdict = "approved and made" if approved else "declined (the reason is in its pane)"
            self.notify(
                f"Disclosure {decision.number} of {decision.ref} you requested was {verdict} "
                f"by {decision.decided_by}.",
                title="Disclosure approved" if approved else "Disclosure declined",
                severity="information" if approved else "warning",
                timeout=30,
                markup=False,
            )

    def _apply_changes(self, total: int, changes: tuple[desk.RowChange, ...] | None) -> None:
        """Repaint rows that kept their place; refetch the window if anything moved."""
        table = self.table

        def kept_place(change: desk.RowChange) -> bool:
            if change.position is None:
                return True  # not in this view; a count change catches a departure
            cached = table.row_at(change.position)
            return cached is not None and cached.case_id == change.case_id

        if changes is None or total != table.total or not all(map(kept_place, changes)):
            self._reload()
            return
        for change in changes:
            if change.row is not None:
                table.update_row(change.row)

    # ----------------------------------------------------------------- detail pane

    @on(QueueTable.Selected)
    def _selected(self, event: QueueTable.Selected) -> None:
        """Enter on a case moves into the detail pane, to scroll it; Escape comes back."""
        event.stop()
        self.detail.focus()

    @on(QueueTable.Highlighted)
    def _highlighted(self, event: QueueTable.Highlighted) -> None:
        event.stop()
        self._select_case(event.case_id)

    def _select_case(self, case_id: int | None) -> None:
        if case_id == self.detail_case:
            return
        self._conceal()
        self.detail_case = case_id
        self._casework = None
        self.detail.show_casework(None)
        if case_id is None:
            self.detail.show(None, empty_text="No case matches the filters.")
        else:
            self._read_detail(case_id)
            self._read_casework(case_id)

    def _conceal(self) -> None:
        """Hide revealed details (and the casework read with them) at once."""
        if self.revealed is not None:
            self.revealed = None
            self._casework = None
            self.detail.conceal()
            self.detail.show_casework(None)

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        if message.case_id != self.detail_case:
            return  # the person moved on; a reveal for another case is dropped unseen
        # An answer begun before the one shown would paint over newer facts; a reveal's
        # still reveals, though it is not recorded as the newest.
        newest = self.detail_reads.take(message.order)
        if not newest and message.revealed is None:
            return
        if message.revealed is not None and message.view is not None:
            self.revealed = (message.case_id, message.revealed)
            self.notify(
                f"Sensitive details of {message.view.ref} revealed; the reveal is audited",
                title="Revealed",
                markup=False,
            )
        if message.view is None:
            self.detail.show(None, empty_text="This case no longer exists.")
        else:
            self._show_detail(message.view)

    def _show_detail(self, view: CaseDetailView) -> None:
        self._deliveries_unsettled = any(
            status in UNSETTLED for page in view.pages for _channel, status in page.channels
        )
        if self.revealed is not None and self.revealed[0] == view.case_id and view.sensitive:
            view = replace(view, details=self.revealed[1], revealed=True)
        self.detail.show(view)

    # ----------------------------------------------------------------- pages

    def _ring(self, alerts: tuple[PageAlert, ...]) -> None:
        """A page for me: bell, a flashing row, a toast, and the desktop notification."""
        self.app.bell()
        for alert in alerts:
            self.table.flash(alert.case_id)
        self.notify(
            paged_text(alerts), title="You are paged", severity="warning", timeout=30, markup=False
        )
        if any(alert.desktop_delivery_ids for alert in alerts):
            self._notify_desktop(alerts)

    def on_desktop_notified(self, message: DesktopNotified) -> None:
        if message.case_id == self.detail_case:  # the pane shows what became of it
            self._read_detail(message.case_id)
        outcome = message.outcome
        if outcome.sent or self._desktop_told:
            return
        self._desktop_told = True
        self.header.notice = (
            f"Desktop notifications {outcome.status}: {outcome.detail}. "
            "Pages still ring and show here."
        )

    def on_desk_status_loaded(self, message: DeskStatusLoaded) -> None:
        self.header.set_status(
            message.on_call,
            message.heartbeat_at,
            message.clock_skew,
            no_sender=message.no_sender,
        )

    # ----------------------------------------------------------------- actions

    def _target(self) -> tuple[int, str] | None:
        row = self.table.cursor_row
        if row is None:
            self.notify("No case is selected.", severity="warning")
            return None
        return row.case_id, row.ref

    def _run(self, action: CaseAction) -> None:
        if action.text:
            self.drafts[action.draft_key] = action.text
        self._perform(action, self.generation, self.queue_filter, self._screen_rows())

    def action_ack(self) -> None:
        if self.table.marked:
            self._perform_bulk("ack", self.table.marked, "")
            return
        if (target := self._target()) is None:
            return
        action = CaseAction("ack", *target)
        row = self.table.cursor_row
        if row is None or row.status != Status.TRIGGERED.value:
            self._run(action)
            return
        # The keystroke shows on its row at once and the write starts once that frame is
        # out, so it cannot hold the frame up. The stored row replaces ACKING when the
        # write is done, or a reload does if the acknowledgement is refused.
        self.table.update_row(replace(row, status=ACKING))
        self.call_after_refresh(self._run, action)

    def action_escalate(self) -> None:
        if (target := self._target()) is None:
            return
        case_id, ref = target

        def answered(yes: bool | None) -> None:
            if yes:
                self._run(CaseAction("escalate", case_id, ref))

        self.app.push_screen(
            Confirm("Escalate now", f"Page the next escalation step of {ref} now?"), answered
        )

    def _ask_then_run(
        self,
        verb: str,
        title: str,
        prompt: str,
        *,
        required: bool,
        suggestions: tuple[str, ...] = (),
        placeholder: str = "",
    ) -> None:
        if (target := self._target()) is None:
            return
        case_id, ref = target

        def answered(text: str | None) -> None:
            if text is not None:
                self._run(CaseAction(verb, case_id, ref, text))

        self.app.push_screen(
            TextPrompt(
                f"{title} {ref}",
                prompt,
                value=self.drafts.get((verb, case_id), ""),
                placeholder=placeholder,
                required=required,
                suggestions=suggestions,
                cursor_blink=self.vigil.cursor_blink,
            ),
            answered,
        )

    def _ask_then_run_bulk(
        self,
        verb: str,
        title: str,
        prompt: str,
        *,
        required: bool,
        suggestions: tuple[str, ...] = (),
        placeholder: str = "",
    ) -> bool:
        """With cases marked, ask once and act on each of them; False when none are."""
        marked = self.table.marked
        if not marked:
            return False

        def answered(text: str | None) -> None:
            if text is not None:
                self._perform_bulk(verb, marked, text)

        count = len(marked)
        self.app.push_screen(
            TextPrompt(
                f"{title} {count} marked case{'s' if count != 1 else ''}",
                prompt,
                placeholder=placeholder,
                required=required,
                suggestions=suggestions,
                cursor_blink=self.vigil.cursor_blink,
            ),
            answered,
        )
        return True

    def on_bulk_action_done(self, message: BulkActionDone) -> None:
        """Unmark the cases done, keep the others marked, and say what happened to each."""
        done = [outcome.case_id for outcome in message.outcomes if outcome.done]
        self.table.unmark(done)
        title, text = bulk_summary(message.verb, message.outcomes)
        failed = len(done) < len(message.outcomes)
        self.notify(
            text,
            title=title,
            severity="warning" if failed else "information",
            timeout=20 if failed else 5,
            markup=False,
        )
        self._reload()
        self.vigil.wake_engine()
        if self.detail_case is not None:
            self._read_detail(self.detail_case)
            self._read_casework(self.detail_case)

    @on(QueueTable.MarksChanged)
    def _marks_changed(self, event: QueueTable.MarksChanged) -> None:
        event.stop()
        self._show_filter_summary()

    def action_resolve(self) -> None:
        if self._ask_then_run_bulk(
            "resolve",
            "Resolve",
            "Closing note for each (optional)",
            required=False,
            placeholder="what was done; leave empty for none",
        ):
            return
        self._ask_then_run(
            "resolve",
            "Resolve",
            "Closing note (optional)",
            required=False,
            placeholder="what was done; leave empty for none",
        )

    def action_note(self) -> None:
        self._ask_then_run("note", "Note on", "Note", required=True)

    def action_reassign(self) -> None:
        if self._ask_then_run_bulk(
            "reassign",
            "Reassign",
            "Hand each to (handle)",
            required=True,
            suggestions=self.vigil.handles,
            placeholder="a responder's handle",
        ):
            return
        self._ask_then_run(
            "reassign",
            "Reassign",
            "Hand to (handle)",
            required=True,
            suggestions=self.vigil.handles,
            placeholder="a responder's handle",
        )

    def action_snooze(self) -> None:
        if (target := self._target()) is None:
            return
        case_id, ref = target

        def reason_given(until: datetime, reason: str | None) -> None:
            if reason is not None:
                self._run(CaseAction("snooze", case_id, ref, reason, until=until))

        def until_given(text: str | None) -> None:
            if text is None:
                return
            try:
                until = parse_due(text, self.vigil.clock.now(), "until")
            except BadInput as exc:
                self.notify(str(exc), title="Check the input", severity="error", markup=False)
                return
            assert until is not None
            self.app.push_screen(
                TextPrompt(
                    f"Snooze {ref}",
                    "Why can it wait?",
                    value=self.drafts.get(("snooze", case_id), ""),
                    placeholder="kept in the timeline",
                    required=True,
                    cursor_blink=self.vigil.cursor_blink,
                ),
                partial(reason_given, until),
            )

        self.app.push_screen(
            TextPrompt(
                f"Snooze {ref}",
                "Until (it pages again then)",
                placeholder="30m, 4h, 2d, or a time with an offset: 2026-12-07T09:00+11:00",
                required=True,
                cursor_blink=self.vigil.cursor_blink,
            ),
            until_given,
        )

    def action_copy_ref(self) -> None:
        """References only: never a title or details, which may be sensitive."""
        refs = [ref for _, ref in self.table.marked]
        if not refs:
            if (target := self._target()) is None:
                return
            refs = [target[1]]
        text = " ".join(refs)
        self.app.copy_to_clipboard(text)
        self.notify(
            f"{text} copied to the clipboard (if the terminal allows it; else select it "
            "with the mouse)",
            title="Copied",
            markup=False,
        )

    def action_merge(self) -> None:
        self._ask_then_run(
            "merge",
            "Merge",
            "A duplicate of (reference)",
            required=True,
            placeholder="the case that carries on, e.g. ESC-0042",
        )

    def action_reopen(self) -> None:
        self._ask_then_run(
            "reopen",
            "Reopen",
            "Why is it not over?",
            required=True,
            placeholder="kept in the timeline and the audit log",
        )

    def action_reveal(self) -> None:
        if (target := self._target()) is None:
            return
        case_id, ref = target
        view = self.detail.view
        if view is None or view.case_id != case_id:
            self.notify(f"{ref} is still loading; try again.", severity="warning")
        elif not view.sensitive:
            self.notify(f"{ref} is not sensitive: its details are already shown.")
        elif self.revealed is not None and self.revealed[0] == case_id:
            self.notify(f"{ref}'s details are already revealed.")
        else:
            self._reveal(case_id, ref)

    def on_resolve_awaits_yes(self, message: ResolveAwaitsYes) -> None:
        """Resolving a case that still owes a report to an authority asks first, naming
        each report and its deadline; the note typed is kept whatever the answer."""
        owed = "\n".join(f"  {line}" for line in message.owed)
        key = self.vigil.key_for("queue.legal_clock", "F")
        question = (
            f"{message.ref} still owes:\n{owed}\n\n"
            "Resolve it anyway? It stays in the queue, with its legal clock, until the "
            f"report is filed ({key} on the case)."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                action = CaseAction("resolve", message.case_id, message.ref, message.note)
                self._run(replace(action, confirmed=True))
            else:
                self.notify(
                    f"{message.ref} not resolved: its report is still owed.",
                    title="Not resolved",
                    markup=False,
                )

        self.app.push_screen(
            ConfirmWithY(f"Resolve {message.ref}: a report is still owed", question, "resolve"),
            answered,
        )

    def on_case_action_done(self, message: CaseActionDone) -> None:
        self.drafts.pop((message.verb, message.case_id), None)
        self.casework_flows.forget_draft((message.verb, message.case_id))
        if message.generation == self.generation:
            self._show_after_action(message.case_id, message.window)
        text, timeout = message.text, None
        if message.verb == "resolve":
            self._undo = (message.case_id, message.ref, self.vigil.clock.now() + UNDO_RESOLVE)
            key = self.app.get_key_display(self._undo_binding())
            seconds = int(UNDO_RESOLVE.total_seconds())
            text, timeout = f"{text}. {key}: undo (within {seconds} s)", seconds
        # The rest waits for the frame that shows the row where it now sits, so its reads
        # (threads that would take turns with the painting) and the toast's layout do not
        # hold that frame up.
        self.table.call_after_paint(partial(self._after_action, message.case_id, text, timeout))

    def _undo_binding(self) -> Binding:
        return replace(UNDO, key=self.vigil.key_for("queue.undo_resolve", UNDO.key))

    def action_undo_resolve(self) -> None:
        """Reopen the case just resolved here, through the reopen service (audited), while
        its toast still offers it."""
        undo, self._undo = self._undo, None
        if undo is None or self.vigil.clock.now() > undo[2]:
            self.notify(
                f"Nothing to undo: a resolve can be undone for {int(UNDO_RESOLVE.total_seconds())}"
                " s; after that, o reopens the case (with a reason).",
                markup=False,
            )
            return
        case_id, ref, _ = undo
        self._run(CaseAction("reopen", case_id, ref, UNDO_REASON))

    def _show_after_action(self, case_id: int, window: desk.Window) -> None:
        """Repaint the row if the case kept its place; else show the window read around
        it. The count follows from whether the case was, and is, in the view."""
        table = self.table
        held_at = table.index_of(case_id)
        position = window.follow_position
        if held_at is None:
            self._reload()  # it was not on hand: whether it was in the view is unknown
            return
        if position == held_at:
            table.update_row(window.rows[position - window.offset])
            return
        table.replace_window(
            table.total - 1 + (position is not None),
            window.offset,
            window.rows,
            case_id if position is not None else None,
        )
        if table.total == 0:
            self._select_case(None)
        self._show_filter_summary()

    def _after_action(self, case_id: int, text: str, timeout: float | None = None) -> None:
        self.notify(text, title="Done", markup=False, timeout=timeout)
        self.vigil.wake_engine()
        if case_id == self.detail_case:
            self._read_detail(case_id)
            self._read_casework(case_id)
        self._read_feed_if_announced()

    def action_open_screen(self, name: str) -> None:
        self.vigil.open_screen(name)

    def action_inbox(self) -> None:
        from app.console.screens.inbox import InboxScreen

        self.app.push_screen(InboxScreen(), self.go_to_case)

    def go_to_case(self, case_id: int | None) -> None:
        """Put the cursor on `case_id` (read around its place), if the queue as filtered
        shows it; say so when it does not."""
        if case_id is None:
            return
        self._going_to = case_id
        offset, limit = self._visible_window(following=True)
        self._read_window(self.generation, self.queue_filter, offset, limit, True, case_id)

    def action_postmortem(self) -> None:
        # Imported on use: these screens import this module for its layout breakpoint.
        from app.console.screens.postmortem import PostMortemScreen

        if (target := self._target()) is not None:
            self.app.push_screen(PostMortemScreen(target[1]))

    def action_template(self) -> None:
        from app.console.screens.template import TemplateDialog

        if (target := self._target()) is not None:
            self.app.push_screen(TemplateDialog(target[1]))

    # ----------------------------------------------------------------- casework

    def _casework_keys(self) -> str:
        """The casework keys as the person's keymap has them, for the pane's hint."""
        keys = (
            ("queue.verify", "V", "verify"),
            ("queue.disclose", "D", "disclose"),
            ("queue.legal_clock", "F", "clock"),
            ("queue.contain", "K", "contain"),
            ("queue.action_items", "I", "actions"),
        )
        return " · ".join(f"{self.vigil.key_for(ident, key)} {what}" for ident, key, what in keys)

    def _read_casework(self, case_id: int) -> None:
        revealed = self.revealed is not None and self.revealed[0] == case_id
        self._read_casework_in_thread(case_id, revealed)

    def on_casework_loaded(self, message: CaseworkLoaded) -> None:
        view = message.view
        if message.case_id != self.detail_case or view is None:
            return
        shown_revealed = self.revealed is not None and self.revealed[0] == view.case_id
        if view.revealed and not shown_revealed:
            return  # revealed for a visit the person has since left
        if view.sensitive and shown_revealed and not view.revealed:
            # Read before the reveal landed (a change feed read racing the reveal's own):
            # painting it would hide again what the person has just revealed.
            self._read_casework(view.case_id)
            return
        if not self.casework_reads.take(message.order):
            return  # begun before the one shown: it would paint over newer facts
        self._casework = (view, message.choices)
        self.detail.show_casework(view)

    def casework_target(self) -> CaseworkTarget | None:
        """The selected case with its casework, or None (the person is told why)."""
        if (target := self._target()) is None:
            return None
        case_id, ref = target
        if self._casework is None or self._casework[0].case_id != case_id:
            self.notify(f"{ref}'s casework is still loading; try again.", severity="warning")
            return None
        view, choices = self._casework
        row = self.table.cursor_row
        return CaseworkTarget(case_id, ref, view, choices, row.assignee if row else None)

    def run_casework(self, command: CaseworkCommand) -> None:
        self._perform_casework(command, self.generation, self.queue_filter, self._screen_rows())

    def action_verify(self) -> None:
        self.casework_flows.verify()

    def action_disclose(self) -> None:
        self.casework_flows.disclose()

    def action_legal_clock(self) -> None:
        self.casework_flows.legal_clock()

    def action_contain(self) -> None:
        self.casework_flows.contain()

    def action_action_items(self) -> None:
        self.casework_flows.action_items()

    def action_tipline(self) -> None:
        self.tipline_flows.report()

    def action_evidence(self) -> None:
        self.tipline_flows.evidence()

    def casework_changed(self, case_id: int) -> None:
        """Read the case's pane again after a change made on a screen above the queue."""
        if case_id == self.detail_case:
            self._read_detail(case_id)
            self._read_casework(case_id)

    # ----------------------------------------------------------------- filters

    def _set_filter(self, flt: desk.QueueFilter) -> None:
        if flt == self.queue_filter:
            return
        self.table.unmark()  # a bulk action acts only on cases in view
        self.queue_filter = flt
        self._show_filter_summary()
        self._reload(new_filter=True)

    def action_toggle_mine(self) -> None:
        self._set_filter(replace(self.queue_filter, mine=not self.queue_filter.mine))

    def action_toggle_clocks(self) -> None:
        if self.queue_filter.clocks:
            self._set_filter(replace(self.queue_filter, clocks=frozenset()))
        else:
            self._read_clock_categories()

    @work(thread=True, name="clock categories", group="settings", exit_on_error=False)
    def _read_clock_categories(self) -> None:
        self.post_message(ClockCategoriesLoaded(desk.read_clock_categories(self.vigil.db)))

    def on_clock_categories_loaded(self, message: ClockCategoriesLoaded) -> None:
        if not message.categories:
            self.notify("No category carries a legal clock on this desk.", markup=False)
            return
        self._set_filter(replace(self.queue_filter, clocks=message.categories))

    def action_toggle_snoozed(self) -> None:
        self._set_filter(replace(self.queue_filter, snoozed=not self.queue_filter.snoozed))

    def action_toggle_unassigned(self) -> None:
        self._set_filter(replace(self.queue_filter, unassigned=not self.queue_filter.unassigned))

    def action_toggle_severity(self, severity: int) -> None:
        self._set_filter(
            replace(self.queue_filter, severities=self.queue_filter.severities ^ {severity})
        )

    def action_next_sort(self) -> None:
        self._set_filter(replace(self.queue_filter, sort=next_sort(self.queue_filter.sort)))

    def action_save_view(self) -> None:
        views = self.vigil.settings.views

        def named(name: str | None) -> None:
            if name is not None and name.strip():
                self._save_view(name.strip(), replace(self.queue_filter, me=None))

        self.app.push_screen(
            TextPrompt(
                "Save this view",
                "Name for these filters and this order (an existing name is replaced):",
                placeholder="triage",
                required=True,
                suggestions=sorted(views),
                max_length=MAX_VIEW_NAME,
                cursor_blink=self.vigil.cursor_blink,
            ),
            named,
        )

    @work(thread=True, name="save view", group="settings", exit_on_error=False)
    def _save_view(self, name: str, flt: desk.QueueFilter) -> None:
        path = self.vigil.settings.path or settings_path()
        try:
            save_view(path, name, flt)
        except OSError as exc:
            self.post_message(ViewSaved(name, flt, f"{path}: cannot be written: {exc}"))
            return
        self.post_message(ViewSaved(name, flt, ""))

    def on_view_saved(self, message: ViewSaved) -> None:
        if message.problem:
            self.notify(message.problem, title="View not saved", severity="error", markup=False)
            return
        settings = self.vigil.settings
        views = {**settings.views, message.name: message.flt}
        self.vigil.settings = replace(settings, views=views)
        self.notify(f"View “{message.name}” saved.", markup=False)

    def action_recall_view(self) -> None:
        views = self.vigil.settings.views
        if not views:
            key = self.vigil.key_for("queue.save_view", "w")
            self.notify(f"No saved view yet: {key} saves the filters and order shown.")
            return

        def named(name: str | None) -> None:
            if name is None or not name.strip():
                return
            view = self.vigil.settings.views.get(name.strip())
            if view is None:
                self.notify(f"No view named “{name.strip()}”.", severity="warning", markup=False)
                return
            self.search_input.value = view.search
            self.search_input.display = bool(view.search)
            self._set_filter(replace(view, me=self.vigil.profile.responder_id))

        self.app.push_screen(
            TextPrompt(
                "Show a saved view",
                "Which view? " + ", ".join(sorted(views)),
                required=True,
                suggestions=sorted(views),
                max_length=MAX_VIEW_NAME,
                cursor_blink=self.vigil.cursor_blink,
            ),
            named,
        )

    def action_filters(self) -> None:
        flt = self.queue_filter
        current = FilterChoice(flt.categories, flt.severities, flt.include_resolved)

        def chosen(choice: FilterChoice | None) -> None:
            if choice is not None:
                self._set_filter(
                    replace(
                        self.queue_filter,
                        categories=choice.categories,
                        severities=choice.severities,
                        include_resolved=choice.include_resolved,
                    )
                )

        self.app.push_screen(FilterDialog(current), chosen)

    def action_search(self) -> None:
        field = self.search_input
        field.display = True
        field.focus()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._set_filter(replace(self.queue_filter, search=event.value))

    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value.strip():
            self.search_input.display = False
        self.table.focus()

    def action_full_case(self) -> None:
        """The detail pane takes the whole screen (the queue hidden, its cursor kept), or
        gives it back."""
        full = not self.has_class("-case-full")
        if full and self._target() is None:
            return
        self.set_class(full, "-case-full")
        if full:
            self.detail.focus()
            self.detail.scroll_home(animate=False)
        else:
            self.table.focus()

    def action_clear_filters(self) -> None:
        if self.has_class("-case-full"):
            self.action_full_case()
            return
        if self.detail.has_focus:
            self.table.focus()
            return
        if self.table.marked:
            self.table.unmark()
            return
        field = self.search_input
        if field.has_focus:
            field.value = ""
            field.display = False
            self.table.focus()
            return
        field.value = ""
        field.display = False
        self._set_filter(desk.QueueFilter(me=self.vigil.profile.responder_id))

    def _show_filter_summary(self) -> None:
        flt = self.queue_filter
        chips = []
        if flt.mine:
            chips.append("mine")
        if flt.unassigned:
            chips.append("unassigned")
        if flt.severities:
            chips.append(",".join(f"sev{s}" for s in sorted(flt.severities)))
        if flt.categories:
            chips.append(",".join(sorted(flt.categories)))
        if flt.clocks:
            chips.append("legal clocks")
        if flt.snoozed:
            chips.append("snoozed only")
        elif flt.include_resolved:
            chips.append("with resolved")
        if flt.search.strip():
            chips.append(f"search “{flt.search.strip()}”")
        if flt.sort != desk.QueueFilter.sort:
            chips.append(f"by {flt.sort}")
        total = self.table.total
        noun = "case" if total == 1 else "cases"
        if flt.snoozed:
            shown = f"{total} snoozed {noun}"
        elif flt.include_resolved:
            shown = f"{total} {noun}"
        else:
            shown = f"{total} open {noun}"
        text = f"{shown} · " + " · ".join(chips) if chips else f"{shown} · no filters"
        if marked := len(self.table.marked):
            text += f" · {marked} marked"
        if text != self._summary_text:  # unchanged, it need not be painted again
            self._summary_text = text
            self.query_one("#filter-summary", Static).update(text, layout=False)
        self.set_class(bool(chips), "-filtered")

    # ----------------------------------------------------------------- failures

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.group == "case-action":
            self._reload()  # put back the row of an action that did not happen (see ACKING)
        self.vigil.report_worker(event, self)

    def feed_works(self) -> None:
        """A read of the change feed succeeded: clear a standing database warning, and
        read again if the database announced a change while it ran."""
        if self._feed_down:
            self._feed_down = False
            self.header.trouble = ""
        self._read_feed_if_announced()

    def _read_feed_if_announced(self) -> None:
        """A change was announced while the feed could not be read at once: read it now."""
        if self._feed_again:
            self._feed_again = False
            self.check_feed()

    def reads_failed(self, message: str) -> None:
        """A read did not get through: say so in the header (one toast), retry shortly.

        The poll keeps trying on its own; the window and the detail pane are asked for
        again, so nothing the person was looking at is lost for good.
        """
        self._start_the_rest()  # the engine and the rest retry on their own
        if not self._feed_down:
            self._feed_down = True
            self.notify(message, title="Database unreachable", severity="error", markup=False)
        self.header.trouble = f"{message}. Retrying every {POLL_SECONDS:g} s…"
        if self._recovery is None:
            self._recovery = self.set_timer(RETRY_SECONDS, self._recover, name="retry reads")

    def _recover(self) -> None:
        self._recovery = None
        self._reload(prime=self.last_change_id is None)
        if self.detail_case is not None:
            self._read_detail(self.detail_case)
            self._read_casework(self.detail_case)

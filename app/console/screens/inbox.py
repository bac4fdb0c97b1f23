"""The inbox (`i`): what waits on the person at this console, oldest first.

Disclosures to approve (supervisors), swaps to approve or take, handovers to acknowledge,
open action items they own, and reports owed on the cases assigned to them: read in a
thread worker by `app.services.inbox`. Nothing is acted on here: Enter takes the person
to the screen that already does it (the queue, with the cursor on the case, or the
handover's "For me" tab); a swap is taken or approved here (Enter), or declined (`x`),
after a yes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, get_current_worker

from app.console.desk import read_inbox
from app.console.messages import InboxLoaded, SwapDecided
from app.console.screens.dialogs import Confirm
from app.services.inbox import InboxItem, InboxKind
from app.services.shiftwork.swaps import SwapService
from themes import STYLES
from widgets.inbox_view import InboxList, InboxRow
from widgets.timefmt import format_when, viewer_zone

if TYPE_CHECKING:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from app.console.host import ConsoleHost

QUEUE_KEYS = {
    InboxKind.APPROVE_DISCLOSURE: ("queue.disclose", "D"),
    InboxKind.ACTION_ITEM: ("queue.action_items", "I"),
    InboxKind.OWED_REPORT: ("queue.legal_clock", "F"),
}
"""The queue's key that acts on each kind about a case, by binding id and default key."""

SWAP_VERBS = {InboxKind.APPROVE_SWAP: "approve", InboxKind.TAKE_SWAP: "take"}


class InboxScreen(Screen[int | None]):
    """The waiting items; dismissed with the id of the case to show in the queue."""

    CSS_PATH = STYLES / "shiftwork.tcss"
    AUTO_FOCUS = "#inbox"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="inbox.close", tooltip="Back to the queue"),
        Binding(
            "enter",
            "open_item",
            "Open",
            id="inbox.open",
            tooltip="Go where the item under the cursor is acted on: its case in the queue, "
            "or the handover's For me tab",
        ),
        Binding(
            "r", "refresh", "Refresh", id="inbox.refresh", tooltip="Read what waits on you again"
        ),
        Binding(
            "x",
            "decline_swap",
            "Decline",
            id="inbox.decline",
            tooltip="Decline the swap under the cursor that waits for your approval",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.items: tuple[InboxItem, ...] = ()

    @property
    def vigil(self) -> ConsoleHost:
        return cast("ConsoleHost", self.app)

    @property
    def inbox(self) -> InboxList:
        return self.query_one("#inbox", InboxList)

    def compose(self) -> ComposeResult:
        profile = self.vigil.profile
        yield Static(
            f"Waiting on {profile.handle} · times in {profile.timezone}",
            id="inbox-title",
            classes="shift-title",
            markup=False,
        )
        yield Static("Reading what waits on you…", id="inbox-empty", classes="hint")
        yield InboxList(id="inbox")
        yield Footer()

    def on_mount(self) -> None:
        self._read()

    @work(thread=True, name="inbox", group="inbox", exclusive=True, exit_on_error=False)
    def _read(self) -> None:
        app = self.vigil
        now = app.clock.now()
        items = read_inbox(app.db, app.profile, now)
        if not get_current_worker().is_cancelled:
            self.post_message(InboxLoaded(tuple(items), now))

    def on_inbox_loaded(self, message: InboxLoaded) -> None:
        self.items = message.items
        zone = viewer_zone(self.vigil.profile.timezone)
        rows = [self._row(item, message.now, zone) for item in self.items]
        self.inbox.show_rows(rows)
        empty = self.query_one("#inbox-empty", Static)
        empty.update("Nothing waits on you." if not rows else f"{len(rows)} waiting")

    def _row(self, item: InboxItem, now: datetime, zone: ZoneInfo) -> InboxRow:
        return InboxRow(
            what=item.kind.value.capitalize(),
            subject=item.subject,
            since=format_when(item.since, zone, now),
            act=self._act_text(item),
            urgent=item.urgent,
        )

    def _act_text(self, item: InboxItem) -> str:
        if item.kind in QUEUE_KEYS:
            binding_id, default = QUEUE_KEYS[item.kind]
            return f"Enter, then {self.vigil.key_for(binding_id, default)}"
        if item.kind == InboxKind.ACKNOWLEDGE_HANDOVER:
            return f"Enter, then {self.vigil.key_for('handover.ack', 'a')}"
        if item.kind == InboxKind.APPROVE_SWAP:
            return f"Enter: approve   {self.vigil.key_for('inbox.decline', 'x')}: decline"
        return "Enter: take"

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_item()

    def action_open_item(self) -> None:
        index = self.inbox.current
        if index is None:
            return
        item = self.items[index]
        if item.case_id is not None:
            self.dismiss(item.case_id)
        elif item.kind == InboxKind.ACKNOWLEDGE_HANDOVER:
            # Imported on use, as the queue opens it: a later screen.
            from app.console.screens.handover import HandoverScreen

            self.app.switch_screen(HandoverScreen(tab="inbox"))
        elif item.swap_id is not None:
            self._ask(item, SWAP_VERBS[item.kind])

    def action_decline_swap(self) -> None:
        index = self.inbox.current
        if index is None:
            return
        item = self.items[index]
        if item.kind != InboxKind.APPROVE_SWAP or item.swap_id is None:
            self.notify("Only a swap waiting for your approval is declined here.", markup=False)
            return
        self._ask(item, "decline")

    def _ask(self, item: InboxItem, verb: str) -> None:
        swap_id = item.swap_id
        assert swap_id is not None

        def answered(yes: bool | None) -> None:
            if yes:
                self._decide(swap_id, verb)

        self.app.push_screen(
            Confirm(
                f"{verb.capitalize()} swap #{swap_id}", f"{item.subject}\n\n{verb.capitalize()} it?"
            ),
            answered,
        )

    @work(thread=True, name="swap", group="inbox-swap", exit_on_error=False)
    def _decide(self, swap_id: int, verb: str) -> None:
        app = self.vigil
        service = SwapService(app.db, app.clock)
        handle = app.profile.handle
        if verb == "take":
            view = service.take(handle, swap_id)
        elif verb == "approve":
            view = service.approve(handle, swap_id)
        else:
            view = service.decline(handle, swap_id)
        self.post_message(SwapDecided(view, verb))

    def on_swap_decided(self, message: SwapDecided) -> None:
        view = message.view
        done = {"take": "taken", "approve": "approved", "decline": "declined"}[message.verb]
        status = "" if view.status == done else f"; it is now {view.status}"
        self.notify(f"Swap #{view.id} {done}{status}", title="Swap", markup=False)
        self._read()

    def action_refresh(self) -> None:
        self._read()

    def action_close(self) -> None:
        self.dismiss(None)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.vigil.report_worker(event, self)

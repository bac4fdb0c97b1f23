"""The agency directory (`A`): each law-enforcement partner's verified call-back numbers
and e-mail domains, which every emergency request's origin is checked against.

Supervisors add an entry (`a`) and remove the one under the cursor (`d`) through
`AgencyService`, the functions `vigil agency add-channel` and `remove-channel` call: each
change is checked there and lands in the audit chain. Anyone else sees the list read-only
and is told so when they try to change it. Reads and changes run in thread workers and
answer with a message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, get_current_worker

from app.console.desk import read_agencies
from app.console.messages import DirectoryChanged, DirectoryRead
from app.console.screens.casework import FormDialog, FormField
from app.console.screens.dialogs import Confirm
from app.services.casework.agency import AgencyService, ChannelView
from data.domain import ChannelKind
from themes import STYLES
from widgets.timefmt import format_when, viewer_zone

if TYPE_CHECKING:
    from app.console.host import ConsoleHost

KIND_LABELS = {ChannelKind.PHONE: "call-back number", ChannelKind.DOMAIN: "e-mail domain"}
READ_ONLY = "Only a supervisor or admin may change the agency directory; you see it read-only."


class AgencyScreen(Screen[None]):
    """The directory's verified channels, agency by agency."""

    CSS_PATH = STYLES / "agency.tcss"
    AUTO_FOCUS = "#agency-channels"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="agency.close", tooltip="Back to the queue"),
        Binding(
            "a",
            "add",
            "Add",
            id="agency.add",
            tooltip="List an agency's call-back number or e-mail domain, with where it was "
            "confirmed independently of any request (supervisors; audited)",
        ),
        Binding(
            "d",
            "remove",
            "Remove",
            id="agency.remove",
            tooltip="Unlist the number or domain under the cursor (supervisors; audited)",
        ),
        Binding("r", "refresh", "Refresh", id="agency.refresh", tooltip="Read the list again"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.channels: tuple[ChannelView, ...] = ()
        self.agencies: tuple[str, ...] = ()
        self.draft: dict[str, str] = {}

    @property
    def vigil(self) -> ConsoleHost:
        return cast("ConsoleHost", self.app)

    @property
    def table(self) -> DataTable[str]:
        return cast("DataTable[str]", self.query_one("#agency-channels", DataTable))

    def compose(self) -> ComposeResult:
        profile = self.vigil.profile
        mode = "" if profile.supervising else " · read-only"
        yield Static(
            f"Agency directory · {profile.handle} ({profile.role}){mode}",
            id="agency-title",
            markup=False,
        )
        yield Static("Reading the directory…", id="agency-count", markup=False)
        yield DataTable(id="agency-channels", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.table.add_columns("Agency", "Partner", "Channel", "Number or domain", "Confirmed")
        self._read()

    def _service(self) -> AgencyService:
        return AgencyService(self.vigil.db, self.vigil.clock)

    # -- reading ---------------------------------------------------------------

    @work(thread=True, name="agency directory", group="agency", exclusive=True, exit_on_error=False)
    def _read(self) -> None:
        channels = self._service().channels()
        agencies = read_agencies(self.vigil.db)
        if not get_current_worker().is_cancelled:
            self.post_message(DirectoryRead(tuple(channels), agencies))

    def on_directory_read(self, message: DirectoryRead) -> None:
        self.channels, self.agencies = message.channels, message.agencies
        zone, now = viewer_zone(self.vigil.profile.timezone), self.vigil.clock.now()
        table, keep = self.table, self.table.cursor_row
        table.clear()
        for c in self.channels:
            table.add_row(
                c.agency,
                c.partner,
                KIND_LABELS.get(ChannelKind(c.kind), c.kind),
                c.value,
                f"{c.source}, {format_when(c.added_at, zone, now)}",
                key=str(c.id),
            )
        if self.channels:
            table.move_cursor(row=min(keep, len(self.channels) - 1))
        numbers = sum(1 for c in self.channels if c.kind == ChannelKind.PHONE)
        agencies = len({c.partner for c in self.channels})
        self.query_one("#agency-count", Static).update(
            f"{agencies} agenc{'y' if agencies == 1 else 'ies'}: {numbers} call-back "
            f"number{'' if numbers == 1 else 's'}, {len(self.channels) - numbers} e-mail "
            f"domain{'' if len(self.channels) - numbers == 1 else 's'}. A request from "
            "anywhere else is flagged on its case."
            if self.channels
            else "No verified channels yet: every request's origin will be flagged."
        )

    def action_refresh(self) -> None:
        self._read()

    # -- changing --------------------------------------------------------------

    def _may_change(self) -> bool:
        if self.vigil.profile.supervising:
            return True
        self.notify(READ_ONLY, title="Not allowed", severity="error", markup=False)
        return False

    def action_add(self) -> None:
        if not self._may_change():
            return
        fields = [
            FormField(
                "partner",
                "Agency (partner)",
                required=True,
                value=self.draft.get("partner", ""),
                placeholder=", ".join(self.agencies) or "no law-enforcement partner yet",
                choices=self.agencies,
            ),
            FormField(
                "phone",
                "Call-back number",
                value=self.draft.get("phone", ""),
                placeholder="with its country code, e.g. +1 555 0100",
            ),
            FormField(
                "domain",
                "Or e-mail domain",
                value=self.draft.get("domain", ""),
                placeholder="e.g. police.example.gov",
            ),
            FormField(
                "source",
                "Confirmed from",
                required=True,
                value=self.draft.get("source", ""),
                placeholder="where it was confirmed, independently of any request",
            ),
        ]

        def answered(values: dict[str, str] | None) -> None:
            if values is not None:
                self.draft = values
                self._add(values)

        self.app.push_screen(
            FormDialog(
                "List a verified channel",
                fields,
                note="Give one channel: a call-back number or an e-mail domain.",
                cursor_blink=self.vigil.cursor_blink,
            ),
            answered,
        )

    @work(thread=True, name="agency add", group="agency-change", exit_on_error=False)
    def _add(self, values: dict[str, str]) -> None:
        view = self._service().add_channel(
            self.vigil.profile.handle,
            values["partner"],
            phone=values["phone"] or None,
            domain=values["domain"] or None,
            source=values["source"],
        )
        self.post_message(DirectoryChanged(f"Listed {view.value} for {view.partner}"))

    def action_remove(self) -> None:
        if not self._may_change() or not self.channels:
            return
        row = self.table.cursor_row
        if not 0 <= row < len(self.channels):
            return
        chosen = self.channels[row]

        def answered(yes: bool | None) -> None:
            if yes:
                self._remove(chosen)

        what = KIND_LABELS.get(ChannelKind(chosen.kind), chosen.kind)
        self.app.push_screen(
            Confirm(
                f"Unlist {chosen.value}",
                f"Remove {chosen.partner}'s {what} {chosen.value} from the directory? "
                "A request from it is flagged from now on.",
            ),
            answered,
        )

    @work(thread=True, name="agency remove", group="agency-change", exit_on_error=False)
    def _remove(self, chosen: ChannelView) -> None:
        phone = chosen.value if chosen.kind == ChannelKind.PHONE else None
        domain = chosen.value if chosen.kind == ChannelKind.DOMAIN else None
        view = self._service().remove_channel(self.vigil.profile.handle, phone=phone, domain=domain)
        self.post_message(DirectoryChanged(f"No longer listed: {view.value} of {view.partner}"))

    def on_directory_changed(self, message: DirectoryChanged) -> None:
        self.draft = {}
        self.notify(message.text, title="Done", markup=False)
        self._read()

    def action_close(self) -> None:
        self.dismiss()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.vigil.report_worker(event, self)

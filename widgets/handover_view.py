"""Submitted handovers: a list of them beside (or above) the one under the cursor.

It renders `HandoverRow`s, each with its report already drawn by the screen; `current` is
the handover under the cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Container, VerticalScroll
from textual.content import Content
from textual.widgets import DataTable, Static

MUTED = "$foreground-muted"
STATE_WIDTH = 18


@dataclass(frozen=True, slots=True)
class HandoverRow:
    """One submitted handover as a line of the list; `body` is its report in full."""

    handover_id: int
    submitted: str
    author: str
    incoming: str
    state: str
    pending: bool
    summary: str
    body: Content


class HandoverBrowser(Container):
    """The list, and the report of the handover under its cursor."""

    def __init__(
        self, *, empty_text: str, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.empty_text = empty_text
        self.rows: tuple[HandoverRow, ...] = ()
        self._shown: tuple[int | None, Content] | None = None

    def compose(self) -> ComposeResult:
        table: DataTable[str | Content] = DataTable(
            cursor_type="row", zebra_stripes=True, classes="handover-list"
        )
        yield table
        with VerticalScroll(classes="report"):
            yield Static(Content.styled(self.empty_text, MUTED))

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("#", key="id")
        table.add_column("Submitted", key="submitted")
        table.add_column("From", key="author")
        table.add_column("To", key="incoming")
        table.add_column("State", key="state", width=STATE_WIDTH)
        table.add_column("Notes", key="summary")

    @property
    def table(self) -> DataTable[str | Content]:
        return self.query_one(DataTable)

    @property
    def current(self) -> HandoverRow | None:
        """The handover under the cursor."""
        table = self.table
        if not self.rows or table.cursor_row < 0 or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def show_rows(self, rows: Sequence[HandoverRow]) -> None:
        """Replace the list, keeping the cursor on the handover it was on if still there."""
        keep = self.current.handover_id if self.current else None
        self.rows = tuple(rows)
        table = self.table
        table.clear()
        for row in self.rows:
            state = Content.styled(row.state, "$warning bold" if row.pending else MUTED)
            table.add_row(
                str(row.handover_id),
                row.submitted,
                row.author,
                row.incoming,
                state,
                row.summary,
                key=str(row.handover_id),
            )
        ids = [row.handover_id for row in self.rows]
        if keep in ids:
            table.move_cursor(row=ids.index(keep))
        self._show_current()

    def _show_current(self) -> None:
        row = self.current
        wanted = (
            (row.handover_id, row.body) if row else (None, Content.styled(self.empty_text, MUTED))
        )
        if (
            self._shown is not None
            and wanted[0] == self._shown[0]
            and wanted[1].is_same(self._shown[1])
        ):
            return
        moved = self._shown is None or self._shown[0] != wanted[0]
        self._shown = wanted
        self.query_one(".report Static", Static).update(wanted[1])
        if moved:
            self.query_one(".report", VerticalScroll).scroll_home(animate=False)

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_current()

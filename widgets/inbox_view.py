"""The inbox: one line for each thing waiting on the person, with how to act on it.

It renders `InboxRow`s the inbox screen words; `current` is the row under the cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual.content import Content
from textual.widgets import DataTable

MUTED = "$foreground-muted"


@dataclass(frozen=True, slots=True)
class InboxRow:
    """One waiting item as a line: what it is, what it concerns, since when (in the
    viewer's zone), and the keys (or command) that act on it."""

    what: str
    subject: str
    since: str
    act: str
    urgent: bool = False
    """Drawn in the warning colour: an overdue action item, a breached report."""


class InboxList(DataTable[str | Content]):
    """The waiting items, oldest first."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, id=id)
        self.rows_shown: tuple[InboxRow, ...] = ()

    def _add_columns(self, rows: Sequence[InboxRow]) -> None:
        # Styled cells are not measured by the table, and plain ones only after the next
        # refresh: each column is as wide as its text from the start.
        def width(header: str, texts: Sequence[str]) -> int:
            return max([len(header), *map(len, texts)])

        self.add_column("Waiting", key="what", width=width("Waiting", [r.what for r in rows]))
        self.add_column("Since", key="since", width=width("Since", [r.since for r in rows]))
        self.add_column("Act", key="act", width=width("Act", [r.act for r in rows]))
        self.add_column("About", key="subject", width=width("About", [r.subject for r in rows]))

    @property
    def current(self) -> int | None:
        """The index of the row under the cursor, or None when the inbox is empty."""
        if not self.rows_shown or not 0 <= self.cursor_row < len(self.rows_shown):
            return None
        return self.cursor_row

    def show_rows(self, rows: Sequence[InboxRow]) -> None:
        keep = self.cursor_row
        self.rows_shown = tuple(rows)
        self.clear(columns=True)
        self._add_columns(self.rows_shown)
        for index, row in enumerate(self.rows_shown):
            style = "$warning bold" if row.urgent else ""
            self.add_row(
                Content.styled(row.what, style) if style else row.what,
                row.since,
                Content.styled(row.act, "$accent"),
                row.subject,
                key=str(index),
            )
        if self.rows_shown:
            self.move_cursor(row=min(keep, len(self.rows_shown) - 1))

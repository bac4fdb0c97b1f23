"""Every message the console's workers post back to the screens, in one place.

Workers run database and desktop calls in threads; they never touch a widget. Each
result comes back as one of these messages (posting is thread-safe) and is applied on
the event loop. A result computed for an older filter carries its `generation`, so the
screen can tell it is stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from textual.message import Message

from app.console.desk import FeedRead, RowChange, Window
from app.console.screens.casework import CaseworkChoices
from app.deliveries_local import DesktopOutcome, PageAlert
from widgets.header import OnCallView
from widgets.views import CaseDetailView, CaseworkView


@dataclass
class WindowLoaded(Message, bubble=False):
    """Rows for the queue table.

    `replace` is False for an answer to the table's own request (it fills a gap) and
    True for a reload after a filter change or a reshuffle (the cache is dropped first).
    """

    generation: int
    window: Window
    replace: bool
    follow_case: int | None = None
    change_id: int | None = None  # the feed's position when the first window was read


@dataclass
class FeedArrived(Message, bubble=False):
    """One poll of the change feed, with the pages for me it claimed."""

    generation: int
    feed: FeedRead | None
    alerts: tuple[PageAlert, ...]
    detail: CaseDetailView | None = None


@dataclass
class PagesArrived(Message, bubble=False):
    """Pages for me that were waiting when the console opened, just claimed."""

    alerts: tuple[PageAlert, ...]


@dataclass
class DetailLoaded(Message, bubble=False):
    """The detail pane's view; `revealed` holds the details the person chose to see."""

    case_id: int
    view: CaseDetailView | None
    revealed: str | None = None


@dataclass
class CaseworkLoaded(Message, bubble=False):
    """The casework section's view of a case (None: the case is gone), with what its
    dialogs offer (partners, legal bases)."""

    case_id: int
    view: CaseworkView | None
    choices: CaseworkChoices


@dataclass
class CaseActionDone(Message, bubble=False):
    """A case action succeeded: say so, and repaint its row at once."""

    verb: str
    case_id: int
    text: str
    generation: int
    total: int
    change: RowChange


@dataclass
class DesktopNotified(Message, bubble=False):
    """What the desktop notifier did with a page just shown."""

    outcome: DesktopOutcome


@dataclass
class DeskStatusLoaded(Message, bubble=False):
    """For the header: who is on call and when the escalation engine last ran."""

    on_call: tuple[OnCallView, ...] | None
    heartbeat_at: datetime | None


@dataclass
class HandlesLoaded(Message, bubble=False):
    """The active responders' handles, for the reassign dialog's suggestions."""

    handles: tuple[str, ...]


class ChangesAnnounced(Message, bubble=False):
    """The database said that cases changed (PostgreSQL NOTIFY): read the feed now.

    Many in a row mean the same thing, so a newer one replaces an older one still queued.
    """

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ChangesAnnounced)

"""Every message the console's workers post back to the screens, in one place.

Workers run database and desktop calls in threads; they never touch a widget. Each
result comes back as one of these messages (posting is thread-safe) and is applied on
the event loop. A result computed for an older filter carries its `generation`, so the
screen can tell it is stale; a pane read by several threads numbers its reads
(`ReadOrder`), so an answer overtaken by a newer one is not painted.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from textual.content import Content
from textual.message import Message

from app.console.bulk import BulkOutcome
from app.console.desk import DisclosureDecided, FeedRead, Window
from app.delivery.local import DesktopOutcome, PageAlert
from app.services.casework.agency import ChannelView
from app.services.casework.tipline import EvidenceView, FilingView
from app.services.inbox import InboxItem
from app.services.shiftwork.calendar import OverrideView
from app.services.shiftwork.postmortem import PostMortemView
from app.services.shiftwork.stats import DeskStats
from app.services.shiftwork.swaps import HandoffNotice, SwapView
from app.services.shiftwork.templates import FilledResponse, ResponseTemplate
from data.queries import QueueFilter
from widgets.handover_view import HandoverRow
from widgets.header import OnCallView
from widgets.stats_view import StatsView
from widgets.views import CaseDetailView, TeamView


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
    detail_order: int = 0
    """When the detail's read began (`ReadOrder`)."""
    decisions: tuple[DisclosureDecided, ...] = ()  # on my disclosure requests
    window: Window | None = None
    """After a burst (no changes placed one by one): the queue refetched in the same read,
    around `follow_case` (the cursor's case when the poll started)."""
    follow_case: int | None = None
    casework_case: int | None = None
    """The shown case whose casework this poll read too; it comes as its own message."""


@dataclass
class PagesArrived(Message, bubble=False):
    """Pages for me that were waiting when the console opened, just claimed."""

    alerts: tuple[PageAlert, ...]


class ReadOrder:
    """Numbers a pane's reads as they begin, and tells which answers are still news.

    A pane read by several threads (its own, the change feed's, a reveal's) may get their
    answers out of order; one read begun before the answer shown saw older facts, and
    painting it would undo a change the person has just seen land.
    """

    def __init__(self) -> None:
        self._begun = itertools.count(1)
        self._shown = 0

    def begin(self) -> int:
        """The number of a read about to begin (thread-safe: `next` holds the GIL)."""
        return next(self._begun)

    def take(self, order: int) -> bool:
        """Whether the answer of read `order` may be painted; if so, it is now the shown."""
        if order < self._shown:
            return False
        self._shown = order
        return True


@dataclass
class DetailLoaded(Message, bubble=False):
    """The detail pane's view; `revealed` holds the details the person chose to see."""

    case_id: int
    view: CaseDetailView | None
    order: int
    """When the read began (`ReadOrder`)."""
    revealed: str | None = None


@dataclass
class CaseActionDone(Message, bubble=False):
    """A case action succeeded: say so, and show its row where it now sits (`window`:
    the rows around it, read right after the action, not counted)."""

    verb: str
    case_id: int
    ref: str
    text: str
    generation: int
    window: Window


@dataclass
class BulkActionDone(Message, bubble=False):
    """A bulk action on the marked cases ran: each case's outcome, in the order marked."""

    verb: str
    outcomes: tuple[BulkOutcome, ...]


@dataclass
class ClockCategoriesLoaded(Message, bubble=False):
    """The categories that carry legal clocks, for the queue's clocks filter."""

    categories: frozenset[str]


@dataclass
class ResolveAwaitsYes(Message, bubble=False):
    """Resolving waits for a yes: the case still owes these reports (one line each)."""

    case_id: int
    ref: str
    note: str
    owed: tuple[str, ...]


@dataclass
class DesktopNotified(Message, bubble=False):
    """What the desktop notifier did with a page just shown (of case `case_id`)."""

    outcome: DesktopOutcome
    case_id: int


@dataclass
class DeskStatusLoaded(Message, bubble=False):
    """For the header: who is on call, when the escalation engine last ran, and how far
    this host's clock is from the database's (None: within 2 s)."""

    on_call: tuple[OnCallView, ...] | None
    heartbeat_at: datetime | None
    clock_skew: timedelta | None = None
    no_sender: bool = False
    """Chat, push and webhook pages wait: no engine that may send them runs."""


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


# --- the app ----------------------------------------------------------------------


@dataclass
class HandoffNoticesClaimed(Message, bubble=False):
    """Hand-off notices for the person at this console, each claimed for them once."""

    notices: tuple[HandoffNotice, ...]


# --- the calendar -----------------------------------------------------------------


@dataclass
class SwapOffered(Message, bubble=False):
    """A swap this person offered from the calendar."""

    view: SwapView


@dataclass
class SwapDecided(Message, bubble=False):
    """A swap this person took, approved or declined from the inbox."""

    view: SwapView
    verb: str


@dataclass
class OverridePlaced(Message, bubble=False):
    """An override this person placed from the calendar; `skipped`: (field, what was
    typed) for each time the clocks skip, read as the gap's end."""

    view: OverrideView
    skipped: tuple[tuple[str, str], ...] = ()


@dataclass
class DeskChangedSince(Message, bubble=False):
    """The audit chain's head as the calendar's poll read it: a change since the shown
    view when it moved."""

    audit_seq: int


@dataclass
class OverridesListed(Message, bubble=False):
    """A schedule's overrides under way or to come, to choose one to remove."""

    schedule: str
    views: tuple[OverrideView, ...]


@dataclass
class OverrideRemoved(Message, bubble=False):
    """An override this person took away from the calendar (`ended_early`: it was under
    way, and ends now)."""

    view: OverrideView
    ended_early: bool


# --- the shift handover -----------------------------------------------------------


@dataclass
class HandoverAcknowledged(Message, bubble=False):
    """This person acknowledged a handover."""

    handover_id: int
    author: str


@dataclass
class ReportPreviewed(Message, bubble=False):
    """The report the person would submit now, or why there is none (`problem`)."""

    body: Content
    problem: str | None = None


@dataclass
class HandoversListed(Message, bubble=False):
    """One of the screen's lists: `inbox` (waiting for me) or `past` (for `search`)."""

    which: str
    rows: tuple[HandoverRow, ...]
    search: str = ""


@dataclass
class HandoverSubmitted(Message, bubble=False):
    handover_id: int
    incoming: str | None


# --- the desk's figures -----------------------------------------------------------


@dataclass
class StatsLoaded(Message, bubble=False):
    """The figures of one window, worded for the board."""

    days: int
    stats: DeskStats
    view: StatsView


@dataclass
class TeamLoaded(Message, bubble=False):
    """The team as the team view shows it."""

    view: TeamView


@dataclass
class ViewSaved(Message, bubble=False):
    """A view written to the settings file, or why it could not be (`problem`)."""

    name: str
    flt: QueueFilter
    problem: str


@dataclass
class InboxLoaded(Message, bubble=False):
    """What waits on the person, read at `now`."""

    items: tuple[InboxItem, ...]
    now: datetime


# --- post-mortems -----------------------------------------------------------------


@dataclass
class PostMortemLoaded(Message, bubble=False):
    view: PostMortemView


@dataclass
class PostMortemMissing(Message, bubble=False):
    """The case has no post-mortem yet."""

    ref: str


@dataclass
class PostMortemChanged(Message, bubble=False):
    """A change went through; `text` says what it was. After a save the stored text (as
    the service cleaned it) replaces what is in the editors."""

    text: str
    saved_text: bool = False


@dataclass
class PostMortemExported(Message, bubble=False):
    path: Path


# --- response templates -----------------------------------------------------------


@dataclass
class TemplatesLoaded(Message, bubble=False):
    templates: tuple[ResponseTemplate, ...]
    category: str


@dataclass
class TemplateFilled(Message, bubble=False):
    template: ResponseTemplate
    filled: FilledResponse


@dataclass
class ResponseLogged(Message, bubble=False):
    ref: str


@dataclass
class ReviewRead(Message, bubble=False):
    """The report as it would be filed."""

    text: str


@dataclass
class NcmecWaiting(Message, bubble=False):
    """NCMEC could not be reached; the filer tries again after `seconds`."""

    tries: int
    seconds: float


@dataclass
class ReportFiled(Message, bubble=False):
    view: FilingView


@dataclass
class EvidenceRead(Message, bubble=False):
    files: tuple[EvidenceView, ...]


@dataclass
class EvidenceRevealed(Message, bubble=False):
    file_id: int
    path: Path


@dataclass
class DirectoryRead(Message, bubble=False):
    """The directory's entries, and the law-enforcement partners an entry may belong to."""

    channels: tuple[ChannelView, ...]
    agencies: tuple[str, ...]


@dataclass
class DirectoryChanged(Message, bubble=False):
    text: str

"""The console's read model: what the console reads (and the few settings it writes) besides
the actions the services carry out. Every function here blocks on the database, so the
console calls them before its event loop starts or from thread workers, never on the event
loop itself. No screen queries the database itself: each reads through a function here, a
function of the database (and what it asks about) returning plain values and view objects,
and changes the desk through the services (`app.services`); the import contract
`screens-read-through-the-read-model` holds them to it (the queue's change listener and
its reading of the database's clock come from here too).

One module, a section per screen: the queue's reads and the console's frame (profile,
theme, header) first, then one short section for each other screen. Most sections are a few
lines over a service's presenter, so one place to look beats a package of small modules; the
services they call are loaded at start-up already, except the team roster's, which
`read_team` imports on first use like the screens opened later (`LATER_SCREENS`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import aliased
from sqlmodel import Session, col, func, select

from app.core.clock import Clock
from app.core.errors import NotFound
from app.engine.cycle import HEADLESS, last_heartbeat
from app.rules.casework import BasisSpec
from app.rules.rotations import ScheduleSpec, next_change, on_call
from app.services.cases import CaseService
from app.services.casework.settings import load_config
from app.services.casework.views import casework_view, owed_report_text, owed_reports, partners
from app.services.inbox import InboxItem, InboxReader
from app.services.oncall import load_all_schedules
from app.services.presenters import case_detail, queue_rows
from app.services.shiftwork.calendar import OverrideView, list_overrides, responder_names
from app.services.shiftwork.handover import HandoverView, find_handovers, pending_handovers_for
from app.services.shiftwork.postmortem import PostMortemView, postmortem_view
from app.services.shiftwork.stats import DeskStats, compute_stats, load_facts
from app.services.shiftwork.templates import FilledResponse, ResponseTemplate, fill_for_case
from data import checkpoints, queries
from data.access import reads_secrets
from data.casework import Disclosure
from data.changes import ChangeListener
from data.clock import DatabaseClock
from data.db import Database
from data.domain import INTERNAL_PARTNER_KINDS, PartnerKind, Role
from data.escalation import EngineHeartbeat
from data.models import Case, Responder, Setting
from data.queries import SORT_COLUMNS as SORT_COLUMNS  # the queue's orders, for its screen
from data.queries import QueueFilter as QueueFilter
from widgets.header import ENGINE_STALE_AFTER, OnCallView
from widgets.views import (
    CaseDetailView,
    CaseworkView,
    PartnerView,
    QueueRow,
    SeekAnchor,
    TeamView,
)

POLL_SECONDS = 0.5
"""How often a screen looks for changes made elsewhere: the queue reads the change feed
(on SQLite the only way to hear of other consoles' changes; on PostgreSQL a safety net under
LISTEN/NOTIFY), the calendar the audit chain's head."""
FIRST_WINDOW_ROWS = 120
"""Rows read before the console opens, when the screen's height is not known yet: enough
for a screen of a hundred lines with the margin the queue keeps below it."""
FEED_BATCH = 5000
"""Change-feed entries read per poll."""
ROW_BY_ROW_LIMIT = 16
"""Past this many changed cases in one poll, the console refetches its window instead
of placing each case: the cost then stays that of one window, however large the burst."""


@dataclass(frozen=True, slots=True)
class Profile:
    """The person at this console."""

    responder_id: int
    handle: str
    name: str
    role: str
    timezone: str

    @property
    def supervising(self) -> bool:
        return self.role in (Role.SUPERVISOR.value, Role.ADMIN.value)


@dataclass(frozen=True, slots=True)
class Window:
    """Rows `offset`… of the filtered queue, and where the followed case sits now.
    `total` is None when the queue was not counted (a window the table asked for)."""

    total: int | None
    offset: int
    rows: tuple[QueueRow, ...]
    follow_position: int | None = None


@dataclass(frozen=True, slots=True)
class RowChange:
    """A changed case as the queue sees it now: its row and index, or None if hidden."""

    case_id: int
    row: QueueRow | None
    position: int | None


@dataclass(frozen=True, slots=True)
class FeedRead:
    """What one poll of the change feed found."""

    last_id: int
    changed: frozenset[int]
    total: int
    changes: tuple[RowChange, ...] | None  # None: too many to place one by one


def load_profile(db: Database, handle: str) -> Profile | None:
    """The active responder called `handle`, or None."""
    with db.read() as session:
        row = session.exec(select(Responder).where(Responder.handle == handle.strip())).first()
    if row is None or row.id is None or not row.active:
        return None
    return Profile(row.id, row.handle, row.name, row.role, row.timezone)


def active_handles(db: Database) -> list[str]:
    with db.read() as session:
        return list(
            session.exec(
                select(Responder.handle)
                .where(col(Responder.active).is_(True))
                .order_by(col(Responder.handle))
            ).all()
        )


def _theme_key(handle: str) -> str:
    return f"console.theme:{handle}"


def load_theme_choice(db: Database, handle: str) -> str | None:
    """The theme this person last chose at any console, or None."""
    with db.read() as session:
        row = session.get(Setting, _theme_key(handle))
    return row.value if row is not None else None


def save_theme_choice(db: Database, handle: str, theme: str) -> None:
    with db.write() as session:
        row = session.get(Setting, _theme_key(handle))
        if row is None:
            session.add(Setting(key=_theme_key(handle), value=theme))
        elif row.value != theme:
            row.value = theme
            session.add(row)


def _rows(
    session: Session, profile: Profile, flt: QueueFilter, cases: list[Case], now: datetime | None
) -> list[QueueRow]:
    return queue_rows(session, cases, profile.responder_id, now, flt.sort)


def read_window(
    db: Database,
    profile: Profile,
    flt: QueueFilter,
    offset: int,
    limit: int,
    follow_case: int | None = None,
    *,
    anchor: SeekAnchor | None = None,
    now: datetime | None = None,
) -> Window:
    """Read one window of the queue, by seeking in its order rather than counting rows.

    With `anchor` (a window the table asked for), the rows are read from that place and
    the queue is not counted. Otherwise the queue is counted, and with `follow_case` the
    window moves (keeping its size) so that it holds that case wherever it now sits, read
    from the case's own place; without, it is read from the nearer end of the queue. With
    `now`, the rows carry their casework flags as of then.
    """
    if offset < 0 or limit < 0:
        raise ValueError(f"read_window: offset and limit must be >= 0, got {offset}, {limit}")
    with db.read() as session:
        if anchor is not None:
            offset, cases = _read_from(session, flt, anchor, offset, limit)
            return Window(None, offset, tuple(_rows(session, profile, flt, cases, now)))
        total = queries.queue_count(session, flt)
        if follow_case is not None and (
            window := _around(session, profile, flt, follow_case, offset, limit, now)
        ):
            return replace(window, total=total)
        nearer_top = offset <= total - (offset + limit)
        offset, cases = _read_from(
            session, flt, SeekAnchor(-1 if nearer_top else total), offset, limit
        )
        return Window(total, offset, tuple(_rows(session, profile, flt, cases, now)))


@dataclass(frozen=True, slots=True)
class ScreenRows:
    """The queue rows on screen (`count` from `top`) and the cursor's line among them."""

    top: int
    count: int
    cursor_line: int


def read_after_action(
    db: Database,
    profile: Profile,
    flt: QueueFilter,
    case_id: int,
    screen: ScreenRows,
    now: datetime | None = None,
) -> Window:
    """A case right after an action on it: the rows the screen will show, with the case
    on the cursor's line wherever it now sits; or, if the filter now hides it, the rows
    on screen. Only those: more come as the table asks. The queue is not counted: the
    screen knows whether the case was in it before, and the change feed catches what
    other consoles changed meanwhile."""
    with db.read() as session:
        if window := _around(
            session, profile, flt, case_id, screen.top, screen.count, now, screen.cursor_line
        ):
            return window
        offset, cases = _read_from(session, flt, SeekAnchor(-1), screen.top, screen.count)
        return Window(None, offset, tuple(_rows(session, profile, flt, cases, now)))


def _around(
    session: Session,
    profile: Profile,
    flt: QueueFilter,
    case_id: int,
    offset: int,
    limit: int,
    now: datetime | None,
    line: int | None = None,
) -> Window | None:
    """The window of `limit` rows holding case `case_id` (from `offset` if it holds it
    there, else with the case `line` rows down, or centred), read by seeking from the
    case's own key; None when the case is gone or hidden by the filter. Not counted."""
    case = session.get(Case, case_id)
    position = queries.queue_position(session, flt, case) if case is not None else None
    if case is None or position is None:
        return None
    if not offset <= position < offset + limit:
        offset = max(0, position - (limit // 2 if line is None else min(line, limit - 1)))
    anchor = SeekAnchor(position, queries.queue_key(case, flt.sort))
    before = _read_from(session, flt, anchor, offset, position - offset)[1]
    after = _read_from(session, flt, anchor, position + 1, offset + limit - position - 1)[1]
    cases = [*before, case, *after]
    rows = tuple(_rows(session, profile, flt, cases, now))
    return Window(None, position - len(before), rows, position)


def _read_from(
    session: Session, flt: QueueFilter, anchor: SeekAnchor, offset: int, limit: int
) -> tuple[int, list[Case]]:
    """Rows `offset`…`offset + limit - 1` sought from `anchor`, and the index of the first
    row read. Rows are read after an anchor above them; before one below them, rows at or
    past the anchor are not asked for (the window ends at the end of the queue), and a
    queue that shrank meanwhile yields fewer rows: those just above the anchor."""
    key = anchor.key
    if anchor.index < offset:
        if limit <= 0:
            return offset, []
        return offset, queries.queue_after(session, flt, key, limit, offset - anchor.index - 1)
    limit = min(limit, anchor.index - offset)
    if limit <= 0:
        return offset, []
    skip = anchor.index - (offset + limit)
    cases = queries.queue_before(session, flt, key, limit, skip)
    return anchor.index - skip - len(cases), cases


@dataclass(frozen=True, slots=True)
class FirstRead:
    """The queue as the console opens: the feed's position, then the first rows."""

    change_id: int
    flt: QueueFilter
    window: Window

    def covers(self, flt: QueueFilter, limit: int) -> bool:
        """Whether this answers a first request for `limit` rows of `flt`."""
        rows = len(self.window.rows)
        return flt == self.flt and (rows >= limit or rows == self.window.total)


def read_first_window(db: Database, profile: Profile, now: datetime) -> FirstRead:
    """The queue's first rows, read before the console's event loop starts (as its profile
    is), so its first frame can show them: read from a worker, they would wait for the
    start-up to let go of the interpreter and arrive a frame or two later."""
    flt = QueueFilter(me=profile.responder_id)
    change_id = latest_change(db)
    return FirstRead(change_id, flt, read_window(db, profile, flt, 0, FIRST_WINDOW_ROWS, now=now))


def read_row_changes(
    session: Session,
    profile: Profile,
    flt: QueueFilter,
    case_ids: Iterable[int],
    now: datetime | None = None,
) -> tuple[RowChange, ...]:
    """Each case's current row and queue index under `flt`."""
    wanted = sorted(set(case_ids))
    if not wanted:
        return ()
    cases = list(session.exec(select(Case).where(col(Case.id).in_(wanted))).all())
    placed: list[tuple[Case, int]] = []
    changes: dict[int, RowChange] = {case_id: RowChange(case_id, None, None) for case_id in wanted}
    for case in cases:
        position = queries.queue_position(session, flt, case)
        if position is not None:
            placed.append((case, position))
    for row, (_, position) in zip(
        _rows(session, profile, flt, [case for case, _ in placed], now), placed, strict=True
    ):
        changes[row.case_id] = RowChange(row.case_id, row, position)
    return tuple(changes[case_id] for case_id in wanted)


def latest_change(db: Database) -> int:
    with db.read() as session:
        return queries.latest_change_id(session)


def read_feed(
    db: Database, profile: Profile, flt: QueueFilter, after_id: int, now: datetime | None = None
) -> FeedRead | None:
    """The cases changed since `after_id`, placed in the queue; None when nothing changed."""
    with db.read() as session:
        entries = queries.changes_since(session, after_id, limit=FEED_BATCH)
        if not entries:
            return None
        last_id = max(entry.id or 0 for entry in entries)
        changed = frozenset(entry.case_id for entry in entries)
        total = queries.queue_count(session, flt)
        changes = (
            read_row_changes(session, profile, flt, changed, now)
            if len(changed) <= ROW_BY_ROW_LIMIT
            else None
        )
        return FeedRead(last_id, changed, total, changes)


def read_detail(
    db: Database, case_id: int, revealed_details: str | None = None
) -> CaseDetailView | None:
    """The detail pane's view of a case; sensitive details only if the caller revealed them."""
    with db.read() as session:
        case = session.get(Case, case_id)
        if case is None:
            return None
        return case_detail(session, case, revealed_details=revealed_details)


def read_owed_reports(db: Database, case_id: int, now: datetime) -> list[str]:
    """What the case still owes an authority (its legal deadlines neither filed nor
    waived), one line each, as resolving it should say."""
    with db.read() as session:
        case = session.get(Case, case_id)
        if case is None:
            return []
        owed = owed_reports(session, [case], now).get(case_id, [])
        return [owed_report_text(clock, now) for clock in owed]


def read_clock_categories(db: Database) -> frozenset[str]:
    """The categories whose cases carry legal clocks, by the desk's casework settings."""
    with db.read() as session:
        config = load_config(session)
    return frozenset(category for category, specs in config.clocks.items() if specs)


def pages_wait_for_a_sender(db: Database, now: datetime) -> bool:
    """On a PostgreSQL desk whose people may not read contacts' secrets (`data.access`):
    whether no headless engine (`vigil engine`, which runs as the engine's login) has
    completed a cycle lately, so chat, push and webhook pages wait unsent."""
    if not db.is_postgres:
        return False
    with db.read() as session:
        if reads_secrets(session):
            return False
        latest = session.exec(
            select(func.max(EngineHeartbeat.last_cycle_at)).where(
                col(EngineHeartbeat.name).startswith(HEADLESS)
            )
        ).one()
    return latest is None or now - latest > ENGINE_STALE_AFTER


def engine_heartbeat(db: Database, *, other_than: str | None = None) -> datetime | None:
    """When any escalation engine (but the one named `other_than`) last completed a cycle
    against this database."""
    return last_heartbeat(db, other_than=other_than)


def read_on_call(db: Database, at: datetime) -> tuple[OnCallView, ...]:
    """Now and next for every schedule of the desk."""
    with db.read() as session:
        schedules = load_all_schedules(session)
    found = []
    for schedule in schedules:
        current = on_call(schedule, at)
        upcoming = next_change(schedule, at)
        found.append(
            OnCallView(
                schedule=schedule.name,
                now=current.who if current else None,
                next=upcoming.who if upcoming else None,
                next_at=upcoming.start if upcoming else None,
            )
        )
    return tuple(found)


def audit_seq(session: Session) -> int:
    """The number of the audit chain's last record: every change of the desk (an override,
    a swap, a team file applied, a case) moves it, so a screen that shows more than cases
    reads it to learn that something changed since it last looked."""
    return checkpoints.head(session).seq


def latest_audit_seq(db: Database) -> int:
    with db.read() as session:
        return audit_seq(session)


@dataclass(frozen=True, slots=True)
class DisclosureDecided:
    """A supervisor's decision on a disclosure this person requested."""

    disclosure_id: int
    ref: str
    number: int
    status: str  # a DisclosureStatus value: disclosed or declined
    decided_by: str


def read_decisions_for(
    db: Database, requester_id: int, since: datetime
) -> tuple[DisclosureDecided, ...]:
    """Decisions someone else made since `since` on disclosures `requester_id` asked for,
    oldest first (a supervisor's own disclosure, made at once, is no news to them)."""
    decider = aliased(Responder)
    with db.read() as session:
        rows = session.exec(
            select(Disclosure, Case.ref, decider.handle)
            .join(Case, col(Case.id) == col(Disclosure.case_id))
            .join(decider, col(decider.id) == col(Disclosure.decided_by_id))
            .where(
                Disclosure.requested_by_id == requester_id,
                col(Disclosure.decided_at) >= since,
                col(Disclosure.decided_by_id) != requester_id,
            )
            .order_by(col(Disclosure.decided_at), col(Disclosure.id))
        ).all()
    return tuple(
        DisclosureDecided(d.id, ref, d.number, d.status, handle)
        for d, ref, handle in rows
        if d.id is not None
    )


# --- the casework section and its dialogs (the queue's detail pane) --------------------------


@dataclass(frozen=True, slots=True)
class CaseworkChoices:
    """What the dialogs offer besides the case itself: the partner directory and the
    desk's legal bases for disclosure."""

    recipients: tuple[PartnerView, ...] = ()  # partners that may receive a disclosure
    teams: tuple[str, ...] = ()  # every active partner: owners of action items
    bases: tuple[BasisSpec, ...] = ()


def read_casework(
    db: Database, clock: Clock, case_id: int, *, revealed: bool = False
) -> tuple[CaseworkView, CaseworkChoices] | None:
    """The casework of a case and the dialogs' choices; None if the case is gone.
    `revealed` only after the person revealed the case (an audited act)."""
    with db.read() as session:
        config = load_config(session)
        try:
            view = casework_view(session, case_id, clock.now(), config=config, revealed=revealed)
        except NotFound:
            return None
        directory = partners(session)
    recipients = tuple(p for p in directory if PartnerKind(p.kind) not in INTERNAL_PARTNER_KINDS)
    teams = tuple(p.name for p in directory)
    return view, CaseworkChoices(recipients, teams, tuple(config.bases.values()))


# --- the calendar ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SchedulesRead:
    """The desk's schedules with their people's names, and the audit chain's head read
    just before them: a change landing after it shows at the calendar's next poll."""

    audit_seq: int
    schedules: tuple[ScheduleSpec, ...]
    names: dict[str, str]  # handle -> name


def read_schedules(db: Database) -> SchedulesRead:
    with db.read() as session:
        seq = audit_seq(session)  # first: a change landing after it shows at the next poll
        schedules = load_all_schedules(session)
        names = responder_names(session)
    return SchedulesRead(seq, tuple(schedules), names)


def read_overrides(db: Database, schedule: str, ending_after: datetime) -> tuple[OverrideView, ...]:
    """The overrides of `schedule` under way or to come after `ending_after`, by start."""
    with db.read() as session:
        return tuple(list_overrides(session, schedule=schedule, ending_after=ending_after))


# --- the agency directory --------------------------------------------------------------------


def read_agencies(db: Database) -> tuple[str, ...]:
    """The names of the law-enforcement partners, whose channels the directory lists."""
    with db.read() as session:
        return tuple(p.name for p in partners(session) if p.kind == PartnerKind.LAW_ENFORCEMENT)


# --- handovers -------------------------------------------------------------------------------


def read_pending_handovers(db: Database, responder_id: int) -> list[HandoverView]:
    """Handovers waiting for `responder_id`'s acknowledgement, oldest first."""
    with db.read() as session:
        return pending_handovers_for(session, responder_id)


def read_past_handovers(db: Database, search: str, limit: int) -> list[HandoverView]:
    """Past handovers, newest first, matching `search` (`find_handovers`)."""
    with db.read() as session:
        return find_handovers(session, search=search, limit=limit)


# --- the inbox -------------------------------------------------------------------------------


def read_inbox(db: Database, profile: Profile, now: datetime) -> list[InboxItem]:
    """What waits on the person at this console, as `app.services.inbox` reads it."""
    reader = InboxReader(profile.responder_id, profile.handle, profile.supervising)
    with db.read() as session:
        return reader.read(session, now)


# --- the desk's figures ----------------------------------------------------------------------


def read_stats(db: Database, since: datetime, until: datetime, zone: str) -> DeskStats:
    """The desk's figures over [since, until), days cut on `zone`'s clock (`vigil stats`'s)."""
    with db.read() as session:
        facts = load_facts(session, since, until)
    return compute_stats(facts, since, until, zone=zone)


# --- the team --------------------------------------------------------------------------------


def read_team(db: Database, at: datetime, zone: ZoneInfo) -> TeamView:
    """The desk's responders and schedules at `at`, for a viewer in `zone`."""
    from app.services.team.roster import team_view  # loaded on first use, as the screen is

    with db.read() as session:
        return team_view(session, at, zone)


# --- post-mortems ----------------------------------------------------------------------------


def read_postmortem(db: Database, ref: str) -> PostMortemView | None:
    """The post-mortem of case `ref`; None while the case has none. Raises NotFound when
    there is no such case."""
    with db.read() as session:
        if queries.case_by_ref(session, ref) is None:
            raise NotFound(f"no case {ref!r}")
        try:
            return postmortem_view(session, ref)
        except NotFound:
            return None


def postmortem_of(db: Database, ref: str) -> PostMortemView:
    """The post-mortem of case `ref`, as it is exported. Raises NotFound without one."""
    with db.read() as session:
        return postmortem_view(session, ref)


# --- response templates ----------------------------------------------------------------------


def read_case_category(db: Database, ref: str) -> str:
    """The category of case `ref`, which orders the templates. Raises NotFound."""
    with db.read() as session:
        case = queries.case_by_ref(session, ref)
        if case is None:
            raise NotFound(f"no case {ref!r}")
        return case.category


def fill_template(
    db: Database, clock: Clock, handle: str, template: ResponseTemplate, ref: str
) -> FilledResponse:
    """`template` filled from case `ref` for `handle` to edit and log (an unknown or inactive
    handle is refused first); a sensitive case's title is never filled in."""
    writer = CaseService(db, clock).require_actor(handle)
    with db.read() as session:
        return fill_for_case(session, template, ref, writer, clock.now())


# --- what the queue screen holds open ---------------------------------------------------


def listen_for_changes(db: Database) -> ChangeListener:
    """A connection that hears every committed change at once (PostgreSQL LISTEN)."""
    return ChangeListener.open(db)


def database_clock(db: Database, clock: Clock) -> DatabaseClock:
    """The database's time as this host reads it, and how far the host's clock is off."""
    return DatabaseClock(db, clock)

"""Shift swaps and hand-off notices.

**Swaps.** A specialist offers part of their own shift on a schedule (`request`), optionally
to one colleague (`--with`); someone takes it (`take`); a supervisor approves it (`approve`),
unless the desk lets swaps through without approval (the setting `swaps.require_approval`,
default true; `vigil calendar settings --swap-approval optional`). The approved swap becomes an
override putting the taker on call, linked from the swap (`override_id`), so the override's
history says where it came from. Every step is audited (`swap.*`, and `override.add`).

**Hand-off notices.** Each person is told a lead time (`handoff.lead`, default 30 minutes)
before a stretch on call begins, with the open cases they inherit (the outgoing person's and
the unassigned ones), and when it ends, with the open cases still assigned to them. A stretch
is a run of one person on one schedule, whatever its sources (a turn continued by their own
override is one stretch). `due_handoff_notices` computes what is due; `claim_handoff_notices`
records each notice once per (handle, schedule, stretch start, kind) and returns the new ones.
A notice is never produced before it is due, and one not claimed within `LATE_LIMIT` of its
moment (the engine was down) is dropped rather than delivered stale.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import or_
from sqlmodel import Session, col, func, select

from app.core.clock import Clock
from app.core.errors import BadInput, NotAllowed, NotFound, NothingToDo
from app.core.text import LINE_LIMIT, one_line
from app.core.times import iso, shown
from app.rules.rotations import ScheduleSpec, Shift, run_start, schedule_shifts
from app.services.oncall import load_all_schedules, load_schedule
from app.services.shiftwork.calendar import (
    active_responder,
    check_window,
    place_override,
    require_supervising,
    schedule_row,
)
from app.services.unit_of_work import SUPERVISING, Service, Tx
from data import audit
from data.db import Database
from data.dialects import upsert_insert
from data.domain import Status, format_duration, parse_duration
from data.models import Case, Responder, Setting
from data.oncall import Schedule
from data.swaps import (
    OPEN_SWAP_STATUSES,
    REQUIRE_APPROVAL_KEY,
    HandoffNoticeLog,
    SwapRequest,
    SwapStatus,
)
from widgets.timefmt import plural

HANDOFF_LEAD_KEY = "handoff.lead"
DEFAULT_LEAD = timedelta(minutes=30)
MAX_LEAD = timedelta(hours=24)
LATE_LIMIT = timedelta(hours=1)
MAX_NOTICE_REFS = 20
_DAY = timedelta(days=1)
_TRUE, _FALSE = "true", "false"


# --- settings --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OnCallSettings:
    """The desk's on-call settings, stored as `Setting` rows."""

    require_approval: bool = True  # swaps need a supervisor's approval
    handoff_lead: timedelta = DEFAULT_LEAD  # how long before a shift its person is told

    def as_json(self) -> dict[str, object]:
        return {
            REQUIRE_APPROVAL_KEY: self.require_approval,
            HANDOFF_LEAD_KEY: format_duration(self.handoff_lead),
        }


def parse_lead(field: str, text: str) -> timedelta:
    """A hand-off lead time: a duration from 1 minute to 24 hours."""
    try:
        lead = parse_duration(text)
    except ValueError as exc:
        raise BadInput(field, str(exc)) from None
    if not timedelta(minutes=1) <= lead <= MAX_LEAD:
        raise BadInput(field, f"expected a duration from 1m to 24h, got {text!r}")
    return lead


def read_settings(session: Session) -> OnCallSettings:
    """The stored settings; unset keys take their defaults."""
    rows = dict(
        session.exec(
            select(Setting.key, Setting.value).where(
                col(Setting.key).in_([REQUIRE_APPROVAL_KEY, HANDOFF_LEAD_KEY])
            )
        ).all()
    )
    settings = OnCallSettings()
    if REQUIRE_APPROVAL_KEY in rows:
        settings = replace(settings, require_approval=rows[REQUIRE_APPROVAL_KEY] != _FALSE)
    if HANDOFF_LEAD_KEY in rows:
        settings = replace(
            settings, handoff_lead=parse_lead(HANDOFF_LEAD_KEY, rows[HANDOFF_LEAD_KEY])
        )
    return settings


# --- swaps -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SwapView:
    id: int
    schedule: str
    requester: str
    wanted: str | None  # offered to this person only
    taker: str | None
    start: datetime
    end: datetime
    status: str
    note: str
    created_at: datetime
    taken_at: datetime | None
    decided_at: datetime | None
    decided_by: str | None
    decision_note: str
    override_id: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "schedule": self.schedule,
            "requester": self.requester,
            "with": self.wanted,
            "taker": self.taker,
            "start": iso(self.start),
            "end": iso(self.end),
            "status": self.status,
            "note": self.note,
            "created_at": iso(self.created_at),
            "taken_at": iso(self.taken_at),
            "decided_at": iso(self.decided_at),
            "decided_by": self.decided_by,
            "decision_note": self.decision_note,
            "override": self.override_id,
        }

    def text(self, zone: ZoneInfo) -> str:
        offered = f" to {self.wanted}" if self.wanted else " to anyone"
        taken = f", taken by {self.taker}" if self.taker else ""
        decided = f", {self.status} by {self.decided_by}" if self.decided_by else ""
        override = f" -> override #{self.override_id}" if self.override_id else ""
        lines = [
            f"#{self.id}  {self.schedule}  {self.status}: {self.requester} offers{offered}"
            f"{taken}{decided}{override}",
            f"    from {shown(self.start, zone)}",
            f"    to   {shown(self.end, zone)}",
        ]
        if self.note:
            lines.append(f"    note: {self.note}")
        if self.decision_note:
            lines.append(f"    {self.status}: {self.decision_note}")
        return "\n".join(lines)


def list_swaps(
    session: Session,
    *,
    status: str | None = None,
    include_closed: bool = False,
    ids: Iterable[int] | None = None,
) -> list[SwapView]:
    """Swaps by start: the open and taken ones, every one with `include_closed`, one status,
    or the given ids."""
    statement = select(SwapRequest, Schedule.name).join(
        Schedule, col(Schedule.id) == col(SwapRequest.schedule_id)
    )
    if status is not None:
        statement = statement.where(SwapRequest.status == status)
    elif ids is not None:
        statement = statement.where(col(SwapRequest.id).in_(list(ids)))
    elif not include_closed:
        statement = statement.where(col(SwapRequest.status).in_(OPEN_SWAP_STATUSES))
    rows = session.exec(statement.order_by(col(SwapRequest.starts_at), col(SwapRequest.id))).all()
    handles = dict(session.exec(select(Responder.id, Responder.handle)).all())

    def handle(responder_id: int | None) -> str | None:
        return handles.get(responder_id) if responder_id is not None else None

    views = []
    for row, schedule in rows:
        assert row.id is not None
        views.append(
            SwapView(
                id=row.id,
                schedule=schedule,
                requester=handles.get(row.requester_id, "?"),
                wanted=handle(row.wanted_id),
                taker=handle(row.taker_id),
                start=row.starts_at,
                end=row.ends_at,
                status=row.status,
                note=row.note,
                created_at=row.created_at,
                taken_at=row.taken_at,
                decided_at=row.decided_at,
                decided_by=handle(row.decided_by_id),
                decision_note=row.decision_note,
                override_id=row.override_id,
            )
        )
    return views


def _first_uncovered(
    spec: ScheduleSpec, who: str, start: datetime, end: datetime
) -> datetime | None:
    """The first instant of [start, end) at which `who` is not on call, or None."""
    covered_to = start
    for piece in schedule_shifts(spec, start, end):
        if piece.who != who or piece.start > covered_to:
            return covered_to
        covered_to = piece.end
    return covered_to if covered_to < end else None


class SwapService(Service):
    """Swap requests and the on-call settings, on behalf of one person."""

    # -- helpers -------------------------------------------------------------

    @staticmethod
    def _swap(tx: Tx, swap_id: int) -> SwapRequest:
        row = tx.session.exec(
            select(SwapRequest).where(SwapRequest.id == swap_id).with_for_update()
        ).first()
        if row is None:
            raise NotFound(f"no swap #{swap_id} (see `vigil swap list --all`)")
        return row

    @staticmethod
    def _require_status(row: SwapRequest, *allowed: SwapStatus) -> None:
        if row.status not in {s.value for s in allowed}:
            raise NothingToDo(f"swap #{row.id} is {row.status}")

    @staticmethod
    def _require_on_call(
        session: Session, schedule: str, who: str, start: datetime, end: datetime
    ) -> None:
        """A swap gives away the requester's own shift: they must hold all of it."""
        spec = load_schedule(session, schedule)
        if spec is None:
            raise NotFound(f"no schedule named {schedule!r}")
        gap = _first_uncovered(spec, who, start, end)
        if gap is not None:
            raise NotAllowed(
                f"{who} is not on call on {schedule} at {iso(gap)}: a swap hands over its "
                f"requester's own shift, all of {iso(start)} to {iso(end)} (for anything "
                "else, a supervisor places an override)"
            )

    def _audit(self, tx: Tx, action: str, row: SwapRequest, **detail: object) -> None:
        audit.append(
            tx.session,
            at=tx.now,
            actor=tx.actor.handle,
            action=action,
            detail={"swap": row.id, **detail},
        )

    def _view(self, tx: Tx, row: SwapRequest) -> SwapView:
        assert row.id is not None
        tx.session.flush()
        return list_swaps(tx.session, ids=[row.id])[0]

    def _grant(self, tx: Tx, row: SwapRequest, *, approved: bool) -> None:
        """Turn a taken swap into an override of the part still to come."""
        assert row.taker_id is not None
        if row.ends_at <= tx.now:
            raise NothingToDo(f"swap #{row.id} was for a shift that is already over")
        schedule = tx.session.get(Schedule, row.schedule_id)
        requester = tx.session.get(Responder, row.requester_id)
        taker = tx.session.get(Responder, row.taker_id)
        assert schedule is not None
        assert requester is not None
        assert taker is not None
        if not taker.active:
            raise NotAllowed(f"{taker.handle} is no longer an active responder")
        start = max(row.starts_at, tx.now)
        self._require_on_call(tx.session, schedule.name, requester.handle, start, row.ends_at)
        reason = f"swap #{row.id}: {taker.handle} covers {requester.handle}"
        if row.note:
            reason += f" ({row.note})"
        override = place_override(tx, schedule, taker, start, row.ends_at, reason, row.id)
        row.override_id = override.id
        row.status = SwapStatus.APPROVED.value
        row.decided_at = tx.now
        row.decided_by_id = tx.actor.id if approved else None
        tx.session.add(row)

    # -- actions -------------------------------------------------------------

    def request(
        self,
        actor: str,
        *,
        schedule: str,
        start: datetime,
        end: datetime,
        with_handle: str | None = None,
        note: str = "",
    ) -> SwapView:
        """Offer [start, end) of the actor's own shift on `schedule`."""
        now = self.clock.now()
        check_window(start, end, now)
        if start < now:
            raise BadInput("--from", f"expected a time from now on ({iso(now)}), got {iso(start)}")
        with self.work(actor) as tx:
            schedule_id = schedule_row(tx.session, schedule).id
            wanted: Responder | None = None
            if with_handle is not None:
                if with_handle == tx.actor.handle:
                    raise BadInput("--with", "expected someone other than you")
                wanted = active_responder(tx.session, with_handle)
            self._require_on_call(tx.session, schedule, tx.actor.handle, start, end)
            clash = tx.session.exec(
                select(SwapRequest.id).where(
                    SwapRequest.schedule_id == schedule_id,
                    SwapRequest.requester_id == tx.actor.id,
                    col(SwapRequest.status).in_(OPEN_SWAP_STATUSES),
                    col(SwapRequest.starts_at) < end,
                    col(SwapRequest.ends_at) > start,
                )
            ).first()
            if clash is not None:
                raise NothingToDo(f"swap #{clash} already offers part of that time")
            assert schedule_id is not None
            assert tx.actor.id is not None
            row = SwapRequest(
                schedule_id=schedule_id,
                requester_id=tx.actor.id,
                wanted_id=wanted.id if wanted else None,
                starts_at=start,
                ends_at=end,
                note=one_line("note", note, LINE_LIMIT, required=False),
                created_at=tx.now,
            )
            tx.session.add(row)
            tx.session.flush()
            self._audit(
                tx,
                "swap.request",
                row,
                schedule=schedule,
                **{"from": iso(start), "to": iso(end)},
                **({"with": wanted.handle} if wanted else {}),
            )
            return self._view(tx, row)

    def take(self, actor: str, swap_id: int) -> SwapView:
        """Take an offered shift; granted at once when the desk needs no approval."""
        with self.work(actor) as tx:
            row = self._swap(tx, swap_id)
            self._require_status(row, SwapStatus.OPEN)
            if row.requester_id == tx.actor.id:
                raise NotAllowed(f"swap #{swap_id} is your own offer; `vigil swap cancel` it")
            if row.wanted_id is not None and row.wanted_id != tx.actor.id:
                wanted = tx.session.get(Responder, row.wanted_id)
                name = wanted.handle if wanted else "someone else"
                raise NotAllowed(f"swap #{swap_id} is offered to {name} only")
            if row.ends_at <= tx.now:
                raise NothingToDo(f"swap #{swap_id} was for a shift that is already over")
            row.taker_id = tx.actor.id
            row.taken_at = tx.now
            row.status = SwapStatus.TAKEN.value
            needs_approval = read_settings(tx.session).require_approval
            self._audit(tx, "swap.take", row, approval_required=needs_approval)
            if not needs_approval:
                self._grant(tx, row, approved=False)
            tx.session.add(row)
            return self._view(tx, row)

    def approve(self, actor: str, swap_id: int) -> SwapView:
        with self.work(actor) as tx:
            require_supervising(tx, "approve swaps")
            row = self._swap(tx, swap_id)
            if row.status == SwapStatus.OPEN.value:
                raise NothingToDo(f"nobody has taken swap #{swap_id} yet")
            self._require_status(row, SwapStatus.TAKEN)
            self._grant(tx, row, approved=True)
            self._audit(tx, "swap.approve", row, override=row.override_id)
            return self._view(tx, row)

    def decline(self, actor: str, swap_id: int, reason: str = "") -> SwapView:
        with self.work(actor) as tx:
            require_supervising(tx, "decline swaps")
            row = self._swap(tx, swap_id)
            self._require_status(row, SwapStatus.OPEN, SwapStatus.TAKEN)
            row.status = SwapStatus.DECLINED.value
            row.decided_at = tx.now
            row.decided_by_id = tx.actor.id
            row.decision_note = one_line("reason", reason, LINE_LIMIT, required=False)
            tx.session.add(row)
            self._audit(tx, "swap.decline", row, reason=row.decision_note)
            return self._view(tx, row)

    def cancel(self, actor: str, swap_id: int) -> SwapView:
        """Withdraw an offer before it is granted: its requester, or a supervisor."""
        with self.work(actor) as tx:
            row = self._swap(tx, swap_id)
            if row.requester_id != tx.actor.id and tx.actor.role not in SUPERVISING:
                raise NotAllowed(f"only its requester or a supervisor may cancel swap #{swap_id}")
            self._require_status(row, SwapStatus.OPEN, SwapStatus.TAKEN)
            row.status = SwapStatus.CANCELLED.value
            row.decided_at = tx.now
            row.decided_by_id = tx.actor.id
            tx.session.add(row)
            self._audit(tx, "swap.cancel", row)
            return self._view(tx, row)

    def change_settings(
        self,
        actor: str,
        *,
        require_approval: bool | None = None,
        handoff_lead: timedelta | None = None,
    ) -> OnCallSettings:
        """Change the desk's on-call settings (supervisors and admins); audited."""
        wanted: dict[str, str] = {}
        if require_approval is not None:
            wanted[REQUIRE_APPROVAL_KEY] = _TRUE if require_approval else _FALSE
        if handoff_lead is not None:
            wanted[HANDOFF_LEAD_KEY] = format_duration(handoff_lead)
        if not wanted:
            raise NothingToDo("no setting given to change")
        with self.work(actor) as tx:
            require_supervising(tx, "change the on-call settings")
            changed: dict[str, object] = {}
            for key, value in wanted.items():
                row = tx.session.get(Setting, key)
                if row is not None and row.value == value:
                    continue
                changed[key] = {"from": row.value if row else None, "to": value}
                if row is None:
                    row = Setting(key=key, value=value)
                row.value = value
                tx.session.add(row)
            if not changed:
                raise NothingToDo("the settings already have those values")
            audit.append(
                tx.session,
                at=tx.now,
                actor=tx.actor.handle,
                action="settings.change",
                detail=changed,
            )
            tx.session.flush()
            return read_settings(tx.session)


# --- hand-off notices ------------------------------------------------------------------------

NoticeKind = Literal["on", "off"]


@dataclass(frozen=True, slots=True)
class HandoffNotice:
    """Tell `handle` they go on (`kind` "on") or off ("off") call for `schedule` at `at`."""

    handle: str
    kind: NoticeKind
    at: datetime  # the stretch's start for "on", its end for "off"
    schedule: str
    open_case_refs: tuple[str, ...]  # the most urgent first, at most MAX_NOTICE_REFS
    shift_start: datetime
    shift_end: datetime
    open_cases: int = 0  # how many in all

    def text(self, zone: ZoneInfo) -> str:
        """The notice as its person reads it, on their own wall clock."""
        more = self.open_cases - len(self.open_case_refs)
        refs = ", ".join(self.open_case_refs) + (f" and {more} more" if more > 0 else "")
        if self.kind == "on":
            head = (
                f"You go on call for {self.schedule} at {shown(self.at, zone)} "
                f"until {shown(self.shift_end, zone)}."
            )
            cases = f" You inherit {plural(self.open_cases, 'open case')}: {refs}." if refs else ""
            return head + (cases or " No open cases to inherit.")
        head = f"Your shift on {self.schedule} ended at {shown(self.at, zone)}."
        if not refs:
            return head + " No open cases are assigned to you."
        return (
            f"{head} Still assigned to you: {refs}; hand them over (`vigil handover`) "
            "or reassign them."
        )


@dataclass(frozen=True, slots=True)
class _Due:
    handle: str
    kind: NoticeKind
    schedule: str
    run: Shift
    outgoing: str | None  # who hands over to an "on" stretch


def _stretches(spec: ScheduleSpec, start: datetime, end: datetime) -> list[Shift]:
    """Runs of one person in [start, end): touching shifts of the same person joined."""
    runs: list[Shift] = []
    for piece in schedule_shifts(spec, start, end):
        if runs and runs[-1].who == piece.who and runs[-1].end == piece.start:
            runs[-1] = Shift(piece.who, runs[-1].start, piece.end, runs[-1].source)
        else:
            runs.append(piece)
    return runs


def _due(
    schedules: Iterable[ScheduleSpec], now: datetime, lead: timedelta, active: Collection[str]
) -> list[_Due]:
    """The notices due at `now`, in order of their moment, without their cases."""
    lo, hi = now - LATE_LIMIT - _DAY, now + lead + _DAY
    found: list[tuple[datetime, _Due]] = []
    for spec in schedules:
        runs = _stretches(spec, lo, hi)
        for i, run in enumerate(runs):
            if run.who not in active:
                continue
            if run.start - lead <= now < min(run.end, run.start + LATE_LIMIT):
                previous = runs[i - 1] if i and runs[i - 1].end == run.start else None
                outgoing = previous.who if previous else None
                found.append((run.start, _Due(run.who, "on", spec.name, run, outgoing)))
            if run.end <= now < run.end + LATE_LIMIT:
                whole = Shift(run.who, run_start(spec, run.who, run.start), run.end, run.source)
                found.append((run.end, _Due(run.who, "off", spec.name, whole, None)))
    found.sort(key=lambda item: (item[0], item[1].schedule, item[1].handle, item[1].kind))
    return [due for _, due in found]


def _open_cases(
    session: Session, assignees: Collection[int], unassigned: bool
) -> tuple[tuple[str, ...], int]:
    """The most urgent open cases of these assignees (and the unassigned ones), and how many."""
    mine = [col(Case.assignee_id).in_(list(assignees))]
    if unassigned:
        mine.append(col(Case.assignee_id).is_(None))
    where = (col(Case.status) != Status.RESOLVED.value, or_(*mine))
    refs = session.exec(
        select(Case.ref)
        .where(*where)
        .order_by(col(Case.queue_rank), col(Case.severity), col(Case.created_at), col(Case.id))
        .limit(MAX_NOTICE_REFS)
    ).all()
    total = session.exec(select(func.count()).select_from(Case).where(*where)).one()
    return tuple(refs), int(total)


def _notice(session: Session, due: _Due, ids: dict[str, int]) -> HandoffNotice:
    if due.kind == "on":
        outgoing = [ids[due.outgoing]] if due.outgoing in ids else []
        refs, total = _open_cases(session, outgoing, unassigned=True)
        at = due.run.start
    else:
        refs, total = _open_cases(session, [ids[due.handle]], unassigned=False)
        at = due.run.end
    return HandoffNotice(
        handle=due.handle,
        kind=due.kind,
        at=at,
        schedule=due.schedule,
        open_case_refs=refs,
        shift_start=due.run.start,
        shift_end=due.run.end,
        open_cases=total,
    )


def _active_ids(session: Session) -> dict[str, int]:
    return {
        handle: responder_id
        for handle, responder_id in session.exec(
            select(Responder.handle, Responder.id).where(col(Responder.active).is_(True))
        ).all()
        if responder_id is not None
    }


def due_handoff_notices(
    session: Session, now: datetime, lead: timedelta = DEFAULT_LEAD
) -> list[HandoffNotice]:
    """Every hand-off notice due at `now` (claimed or not), in order of its moment."""
    ids = _active_ids(session)
    return [_notice(session, d, ids) for d in _due(load_all_schedules(session), now, lead, ids)]


def _claimed(session: Session, dues: list[_Due]) -> set[tuple[str, str, datetime, str]]:
    if not dues:
        return set()
    rows = session.exec(
        select(
            HandoffNoticeLog.handle,
            HandoffNoticeLog.schedule,
            HandoffNoticeLog.shift_start,
            HandoffNoticeLog.kind,
        ).where(col(HandoffNoticeLog.shift_start).in_(sorted({d.run.start for d in dues})))
    ).all()
    return {(h, s, start, k) for h, s, start, k in rows}


def _record_once(session: Session, notice: HandoffNotice, now: datetime) -> bool:
    """Insert the notice's log row unless another claimer has; True if this one did."""
    statement = (
        upsert_insert(session.get_bind().dialect.name, HandoffNoticeLog)
        .values(
            handle=notice.handle,
            schedule=notice.schedule,
            shift_start=notice.shift_start,
            kind=notice.kind,
            at=notice.at,
            claimed_at=now,
            open_case_refs=list(notice.open_case_refs),
        )
        .on_conflict_do_nothing(index_elements=["handle", "schedule", "shift_start", "kind"])
        .returning(col(HandoffNoticeLog.id))
    )
    return session.execute(statement).first() is not None


def claim_handoff_notices(
    db: Database,
    clock: Clock,
    *,
    lead: timedelta | None = None,
    handles: Collection[str] | None = None,
) -> list[HandoffNotice]:
    """The hand-off notices due now that nobody has claimed yet, recorded as claimed.

    `lead` defaults to the desk's `handoff.lead` setting; `handles` limits the claim to some
    people (a console claims its own person's notices). Safe to call every engine cycle: the
    writer lock is taken only when something new is due.
    """
    now = clock.now()
    with db.read() as session:
        lead = lead if lead is not None else read_settings(session).handoff_lead
        ids = _active_ids(session)
        wanted = ids if handles is None else {h: i for h, i in ids.items() if h in handles}
        dues = _due(load_all_schedules(session), now, lead, wanted)
        claimed = _claimed(session, dues)
        dues = [d for d in dues if (d.handle, d.schedule, d.run.start, d.kind) not in claimed]
    if not dues:
        return []
    with db.write() as session:
        notices = [_notice(session, d, ids) for d in dues]
        return [n for n in notices if _record_once(session, n, now)]

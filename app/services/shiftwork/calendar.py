"""The schedule questions people ask from the command line: who is on call now and next, the
overrides supervisors place, the iCalendar feed a person subscribes to, and coverage gaps.

The math is `app.rules.rotations`; the specs come from `app.services.oncall`. Times are
computed in UTC and shown on the viewer's wall clock next to UTC. Placing or removing an
override goes through the case service's transaction plumbing (audit lock, actor, role,
change, audit record).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from app.core.errors import BadInput, NotAllowed, NotFound, NothingToDo
from app.core.text import LINE_LIMIT, one_line
from app.core.times import bounded_instant, iso
from app.rules.rotations import (
    ScheduleSpec,
    Shift,
    coverage_gaps,
    next_change,
    on_call,
    schedule_shifts,
)
from app.services.oncall import load_all_schedules, load_schedule
from app.services.shiftwork import ical
from app.services.unit_of_work import SUPERVISING, Service, Tx
from data import audit
from data.domain import DAYS, OVERRIDE_LENGTH, format_duration
from data.models import Responder
from data.oncall import Override, Schedule

MAX_DAYS = DAYS.high
EXPORT_DAYS = 90
GAP_DAYS = 30
ICS_PRODID = "-//Vigil//On-call calendar//EN"
UID_DOMAIN = "vigil"
_TICK = timedelta(microseconds=1)
# "Next" skips shifts of the person on call now (a rotation turn continued by their own
# override), looking this many changes ahead at most.
_NEXT_LOOKS = 8


# --- shared checks and formatting ------------------------------------------------------------


def parse_days(field: str, text: str | int) -> int:
    """A number of days from 1 to 366."""
    expected = f"expected a whole number of days from 1 to {MAX_DAYS}"
    try:
        days = int(str(text).strip())
    except ValueError:
        raise BadInput(field, f"{expected}, got {text!r}") from None
    if not 1 <= days <= MAX_DAYS:
        raise BadInput(field, f"{expected}, got {days}")
    return days


def check_window(start: datetime, end: datetime, now: datetime) -> None:
    """An override or swap window: `--to` after `--from`, not over already, between 1970
    and 2199 and at most `OVERRIDE_LENGTH` long."""
    bounded_instant("--from", start)
    bounded_instant("--to", end)
    if end <= start:
        raise BadInput("--to", f"expected a time after --from ({iso(start)}), got {iso(end)}")
    if end <= now:
        raise BadInput(
            "--to", f"expected a time after now ({iso(now)}), got {iso(end)}: the past stays"
        )
    if end - start > OVERRIDE_LENGTH.high:
        raise BadInput(
            "--to",
            f"expected a window {OVERRIDE_LENGTH} long, got {format_duration(end - start)} "
            f"(from {iso(start)} to {iso(end)})",
        )


def responder_names(session: Session) -> dict[str, str]:
    """Display names by handle."""
    return dict(session.exec(select(Responder.handle, Responder.name)).all())


def schedules_named(session: Session, name: str | None) -> list[ScheduleSpec]:
    """Every schedule, or the one called `name` (NotFound naming the known ones)."""
    if name is None:
        return load_all_schedules(session)
    spec = load_schedule(session, name)
    if spec is None:
        known = session.exec(select(Schedule.name).order_by(col(Schedule.name))).all()
        raise NotFound(f"no schedule named {name!r} (schedules: {', '.join(known) or 'none'})")
    return [spec]


def shift_json(shift: Shift, names: dict[str, str]) -> dict[str, object]:
    return {
        "who": shift.who,
        "name": names.get(shift.who, shift.who),
        "start": iso(shift.start),
        "end": iso(shift.end),
        "source": shift.source,
    }


# --- on call now and next --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OnCallEntry:
    """One schedule at one instant: the shift in progress and the next person's shift."""

    schedule: str
    current: Shift | None
    upcoming: Shift | None


def next_person(schedule: ScheduleSpec, at: datetime, current: Shift | None) -> Shift | None:
    """The first shift after `at` of someone other than the person on call at `at`."""
    upcoming = next_change(schedule, at)
    for _ in range(_NEXT_LOOKS):
        if upcoming is None or current is None or upcoming.who != current.who:
            return upcoming
        upcoming = next_change(schedule, upcoming.start)
    return upcoming


def on_call_entries(schedules: Iterable[ScheduleSpec], at: datetime) -> list[OnCallEntry]:
    """Who is on call at `at` on each schedule, with their whole shift, and who is next."""
    entries = []
    for schedule in schedules:
        current = on_call(schedule, at)
        entries.append(OnCallEntry(schedule.name, current, next_person(schedule, at, current)))
    return entries


def on_call_json(
    entries: Sequence[OnCallEntry], at: datetime, zone: ZoneInfo, names: dict[str, str]
) -> dict[str, object]:
    return {
        "at": iso(at),
        "timezone": zone.key,
        "schedules": [
            {
                "schedule": entry.schedule,
                "on_call": shift_json(entry.current, names) if entry.current else None,
                "next": shift_json(entry.upcoming, names) if entry.upcoming else None,
            }
            for entry in entries
        ],
    }


# --- overrides -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OverrideView:
    id: int
    schedule: str
    who: str
    start: datetime
    end: datetime
    reason: str
    created_by: str | None
    created_at: datetime | None
    swap_id: int | None

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "schedule": self.schedule,
            "who": self.who,
            "start": iso(self.start),
            "end": iso(self.end),
            "reason": self.reason,
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "swap": self.swap_id,
        }


def list_overrides(
    session: Session,
    *,
    schedule: str | None = None,
    ending_after: datetime | None = None,
    ids: Iterable[int] | None = None,
) -> list[OverrideView]:
    """Overrides by start, optionally of one schedule, still running after an instant, or
    with the given ids."""
    statement = select(Override, Schedule.name).join(
        Schedule, col(Schedule.id) == col(Override.schedule_id)
    )
    if schedule is not None:
        statement = statement.where(Schedule.name == schedule)
    if ending_after is not None:
        statement = statement.where(col(Override.ends_at) > ending_after)
    if ids is not None:
        statement = statement.where(col(Override.id).in_(list(ids)))
    rows = session.exec(statement.order_by(col(Override.starts_at), col(Override.id))).all()
    handles = dict(session.exec(select(Responder.id, Responder.handle)).all())
    found = [row.id for row, _ in rows if row.id is not None]
    swaps: dict[int, int] = {}
    if found:
        from data.swaps import SwapRequest  # the swaps' table: not needed for times alone

        for swap_id, override_id in session.exec(
            select(SwapRequest.id, SwapRequest.override_id).where(
                col(SwapRequest.override_id).in_(found)
            )
        ).all():
            if swap_id is not None and override_id is not None:
                swaps[override_id] = swap_id
    views = []
    for row, schedule_name in rows:
        assert row.id is not None
        views.append(
            OverrideView(
                id=row.id,
                schedule=schedule_name,
                who=handles.get(row.responder_id, "?"),
                start=row.starts_at,
                end=row.ends_at,
                reason=row.reason,
                created_by=handles.get(row.created_by_id) if row.created_by_id else None,
                created_at=row.created_at,
                swap_id=swaps.get(row.id),
            )
        )
    return views


def schedule_row(session: Session, name: str) -> Schedule:
    row = session.exec(select(Schedule).where(Schedule.name == name)).first()
    if row is None:
        known = session.exec(select(Schedule.name).order_by(col(Schedule.name))).all()
        raise NotFound(f"no schedule named {name!r} (schedules: {', '.join(known) or 'none'})")
    return row


def active_responder(session: Session, handle: str) -> Responder:
    row = session.exec(select(Responder).where(Responder.handle == handle)).first()
    if row is None or not row.active:
        raise NotFound(f"no active responder {handle!r} on this desk")
    return row


def place_override(
    tx: Tx,
    schedule: Schedule,
    who: Responder,
    start: datetime,
    end: datetime,
    reason: str,
    swap_id: int | None = None,
) -> Override:
    """Write an override and its `override.add` audit record, inside the caller's transaction
    (which holds the audit lock and has checked the actor's right to place it)."""
    assert schedule.id is not None
    assert who.id is not None
    row = Override(
        schedule_id=schedule.id,
        responder_id=who.id,
        starts_at=start,
        ends_at=end,
        reason=reason,
        created_by_id=tx.actor.id,
        created_at=tx.now,
    )
    tx.session.add(row)
    tx.session.flush()
    assert row.id is not None
    detail: dict[str, object] = {
        "id": row.id,
        "schedule": schedule.name,
        "who": who.handle,
        "from": iso(start),
        "to": iso(end),
        "reason": reason,
    }
    if swap_id is not None:
        detail["swap"] = swap_id
    audit.append(tx.session, at=tx.now, actor=tx.actor.handle, action="override.add", detail=detail)
    return row


def require_supervising(tx: Tx, what: str, hint: str = "") -> None:
    """Refuse anyone but a supervisor or admin."""
    if tx.actor.role not in SUPERVISING:
        raise NotAllowed(
            f"only supervisors or admins may {what}; {tx.actor.handle} is a {tx.actor.role}{hint}"
        )


class OverrideService(Service):
    """Overrides on behalf of one person: supervisors and admins only."""

    _SWAP_HINT = " (to hand over your own shift, use `vigil swap request`)"

    def add(
        self,
        actor: str,
        *,
        schedule: str,
        who: str,
        start: datetime,
        end: datetime,
        reason: str = "",
    ) -> OverrideView:
        """Put `who` on call on `schedule` from `start` to `end`, above every layer. A start
        already past is now: who was on call then stays as it was."""
        check_window(start, end, self.clock.now())
        with self.work(actor) as tx:
            require_supervising(tx, "place overrides", self._SWAP_HINT)
            check_window(max(start, tx.now), end, tx.now)  # by the database's clock too
            row = place_override(
                tx,
                schedule_row(tx.session, schedule),
                active_responder(tx.session, who),
                max(start, tx.now),
                end,
                one_line("reason", reason, LINE_LIMIT, required=False),
            )
            assert row.id is not None
            return list_overrides(tx.session, ids=[row.id])[0]

    def remove(self, actor: str, override_id: int) -> OverrideView:
        """Take an override away: one still to come is deleted, one in progress ends now (what
        already happened stays on record); a swap it came from becomes `revoked`."""
        with self.work(actor) as tx:
            require_supervising(tx, "remove overrides")
            row = tx.session.get(Override, override_id)
            if row is None:
                raise NotFound(f"no override #{override_id} (see `vigil override list`)")
            if row.ends_at <= tx.now:
                raise NothingToDo(
                    f"override #{override_id} ended at {iso(row.ends_at)}; the past stays on record"
                )
            before = list_overrides(tx.session, ids=[override_id])[0]
            from data.swaps import SwapRequest, SwapStatus

            swap = tx.session.exec(
                select(SwapRequest).where(SwapRequest.override_id == override_id)
            ).first()
            ended_early = row.starts_at < tx.now
            if ended_early:
                row.ends_at = tx.now
                tx.session.add(row)
            else:
                if swap is not None:
                    swap.override_id = None
                tx.session.delete(row)
            if swap is not None:
                swap.status = SwapStatus.REVOKED.value
                tx.session.add(swap)
            audit.append(
                tx.session,
                at=tx.now,
                actor=tx.actor.handle,
                action="override.remove",
                detail={
                    "id": override_id,
                    "schedule": before.schedule,
                    "who": before.who,
                    "from": iso(before.start),
                    "to": iso(before.end),
                    "ended_early": ended_early,
                    **({"swap": swap.id} if swap is not None else {}),
                },
            )
            return before


# --- the iCalendar feed ----------------------------------------------------------------------


def whole_shifts(schedule: ScheduleSpec, start: datetime, end: datetime) -> list[Shift]:
    """The effective shifts touching [start, end), the first and last ones whole (not clipped
    to the window), so an event keeps its start, and its UID, from one export to the next."""
    shifts = schedule_shifts(schedule, start, end)
    if shifts and shifts[0].start == start:
        shifts[0] = on_call(schedule, start) or shifts[0]
    if shifts and shifts[-1].end == end:
        last = on_call(schedule, end - _TICK) or shifts[-1]
        shifts[-1] = Shift(last.who, shifts[-1].start, last.end, last.source)
    return shifts


def event_uid(schedule: str, who: str, start: datetime) -> str:
    """Stable per schedule, person and start: a calendar app updates the event in place."""
    return f"{ical.utc_datetime(start)}-{who}-{schedule}@{UID_DOMAIN}"


def _event(schedule: str, shift: Shift, names: dict[str, str], stamp: datetime) -> str:
    """One shift's VEVENT, its properties in the order the feed has always had them."""
    name = names.get(shift.who, shift.who)
    kind, _, detail = shift.source.partition(":")
    reason = f"{kind} {detail}" if detail else kind
    return ical.component(
        "VEVENT",
        (
            ical.text_line("SUMMARY", f"On call: {name} ({schedule})"),
            ical.datetime_line("DTSTART", shift.start),
            ical.datetime_line("DTEND", shift.end),
            ical.datetime_line("DTSTAMP", stamp),
            ical.text_line("UID", event_uid(schedule, shift.who, shift.start)),
            ical.texts_line("CATEGORIES", [kind]),
            ical.text_line(
                "DESCRIPTION", f"{name} ({shift.who}) is on call for {schedule} ({reason})."
            ),
            ical.verbatim_line("X-VIGIL-HANDLE", shift.who),
            ical.verbatim_line("X-VIGIL-SCHEDULE", schedule),
            ical.verbatim_line("X-VIGIL-SOURCE", shift.source),
        ),
    )


def calendar_feed(
    schedules: Sequence[ScheduleSpec],
    names: dict[str, str],
    start: datetime,
    end: datetime,
    *,
    stamp: datetime,
    who: str | None = None,
) -> str:
    """RFC 5545 iCalendar: one VEVENT per effective shift touching [start, end), in UTC;
    only `who`'s shifts when given."""
    title = ", ".join(s.name for s in schedules) or "no schedules"
    owner = f"{names.get(who, who)}: " if who else ""
    lines = [
        ical.text_line("VERSION", "2.0"),
        ical.text_line("PRODID", ICS_PRODID),
        ical.text_line("CALSCALE", "GREGORIAN"),
        ical.text_line("METHOD", "PUBLISH"),
        ical.verbatim_line("X-WR-CALNAME", f"Vigil on call: {owner}{title}"),
    ]
    for schedule in schedules:
        for shift in whole_shifts(schedule, start, end):
            if who is None or shift.who == who:
                lines.append(_event(schedule.name, shift, names, stamp))
    return ical.component("VCALENDAR", lines)


# --- coverage gaps ---------------------------------------------------------------------------


def gaps_by_schedule(
    schedules: Iterable[ScheduleSpec], start: datetime, end: datetime
) -> list[tuple[str, list[tuple[datetime, datetime]]]]:
    return [(s.name, coverage_gaps(s, start, end)) for s in schedules]


def hours_of(span: timedelta) -> float:
    """A span in hours, to the hundredth, as JSON and text give a gap."""
    return round(span.total_seconds() / 3600, 2)


def gaps_json(
    found: Sequence[tuple[str, list[tuple[datetime, datetime]]]], start: datetime, end: datetime
) -> dict[str, object]:
    return {
        "from": iso(start),
        "to": iso(end),
        "schedules": [
            {
                "schedule": name,
                "uncovered_hours": hours_of(sum((b - a for a, b in gaps), timedelta())),
                "gaps": [
                    {"start": iso(a), "end": iso(b), "hours": hours_of(b - a)} for a, b in gaps
                ],
            }
            for name, gaps in found
        ],
    }

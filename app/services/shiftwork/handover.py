"""The shift handover: what happened in a shift, what the next person inherits, and their
acknowledgement that they read it.

The window is the author's last shift on the schedules (the run of time they were on call
that started most recently, whole even when another source such as an override continued
it), or `since` to now. Within it the report lists cases opened, acknowledged and resolved,
SLA deadlines that fell due and were missed, pages nobody answered before the chain moved on
and how far each of those cases escalated; then the cases still open with their next action,
who is on call from the hand-off, the overrides that touch that next shift, and the author's
notes. States (met, answered, still open) are as known when the report is made.

A case's sensitive details never enter a report: it is built from titles, states and times.
A submitted report is stored as JSON with the handover, so it reads the same later.
"""

from __future__ import annotations

import dataclasses
import types
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Union, get_args, get_origin, get_type_hints
from zoneinfo import ZoneInfo

from sqlalchemy import or_
from sqlmodel import Session, col, select

from app.core.errors import BadInput, NotAllowed, NotFound, NothingToDo
from app.core.text import clean_text, md_cell
from app.core.times import format_instant, iso
from app.rules.rotations import (
    ScheduleSpec,
    Shift,
    next_change,
    on_call,
    run_end,
    run_start,
    schedule_shifts,
)
from app.services.cases import MAX_NOTE
from app.services.casework.views import clocks_due_by
from app.services.oncall import load_all_schedules
from app.services.policies import policy_of, sla_deadlines, sla_table
from app.services.sensitive import reveal_titles, withheld_title
from app.services.shiftwork.stats import (
    ANSWER_KINDS,
    answered_at,
    first_acknowledged_at,
    format_seconds,
    sla_checks,
)
from app.services.unit_of_work import Service, actor_of
from data import audit, checkpoints, queries
from data.domain import Stage, Status, TimelineKind, severity_name
from data.models import ActionItem, Case, Page, Responder, TimelineEvent
from data.oncall import Override, Schedule
from data.shiftwork import Handover
from widgets.timefmt import plural, viewer_zone

LAST_SHIFT_LOOKBACK = timedelta(days=35)
"""How far back "the person's last shift" is looked for (a 7d turn among four people)."""
NEXT_SHIFT_FALLBACK = timedelta(days=1)
"""Where nobody is known to be on call next, overrides this long after the hand-off count."""

STAGE_ACTIONS = {
    Stage.TRIAGE.value: "triage the case",
    Stage.INVESTIGATING.value: "continue the investigation",
    Stage.AWAITING_PARTNER.value: "follow up with the partner",
    Stage.CONTAINED.value: "confirm containment, then resolve",
    Stage.CLOSED.value: "resolve the case",
}


# --- the report's view objects ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseLine:
    """A case that was opened, acknowledged or resolved in the shift (`at`, by `by`)."""

    ref: str
    title: str
    category: str
    severity: int
    status: str
    stage: str
    assignee: str | None
    sensitive: bool
    at: datetime
    by: str | None = None


@dataclass(frozen=True, slots=True)
class OpenCase:
    ref: str
    title: str
    category: str
    severity: int
    status: str
    stage: str
    assignee: str | None
    sensitive: bool
    created_at: datetime
    exhausted: bool
    next_action: str
    next_action_due_at: datetime | None


@dataclass(frozen=True, slots=True)
class SlaBreach:
    """A deadline that fell due in the shift and was missed (met late, or not yet met)."""

    ref: str
    title: str
    severity: int
    kind: str  # acknowledge, respond
    due_at: datetime
    met_at: datetime | None
    late_by_seconds: int


@dataclass(frozen=True, slots=True)
class PageLine:
    handle: str
    step: int
    round: int  # 0-based, shown 1-based
    reason: str
    sent_at: datetime


@dataclass(frozen=True, slots=True)
class UnansweredCase:
    """A case whose pages in the shift went unanswered, and how far its chain went."""

    ref: str
    title: str
    severity: int
    status: str
    pages: tuple[PageLine, ...]
    reached_step: int
    reached_round: int
    reached_reason: str
    step_count: int
    exhausted: bool
    answered_by: str | None
    answered_at: datetime | None


@dataclass(frozen=True, slots=True)
class LegalClockLine:
    """A legal clock that is breached or comes due before the incoming shift ends: a report
    still owed to an authority (resolved cases too), or a hold that ends."""

    ref: str
    title: str
    case_status: str
    label: str
    kind: str  # deadline, hold
    state: str  # ok, warn, breached
    due_at: datetime


@dataclass(frozen=True, slots=True)
class OverrideLine:
    schedule: str
    who: str
    start: datetime
    end: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class NextOnCall:
    """Who takes `schedule` from the hand-off; `who` None is a coverage gap with nobody after
    it within a year, `after_gap` a shift that begins only after a gap."""

    schedule: str
    who: str | None
    start: datetime
    end: datetime | None
    source: str
    after_gap: bool = False


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The audit chain's head when the report was written: the report carries it out of
    the database as a checkpoint (`vigil audit verify --since-checkpoint REPORT`)."""

    seq: int
    hash: str


@dataclass(frozen=True)
class HandoverReport:
    author: str
    shift_start: datetime
    shift_end: datetime
    handoff_at: datetime
    schedule: str | None  # the schedule the shift came from; None for a `since` window
    generated_at: datetime
    opened: tuple[CaseLine, ...]
    acknowledged: tuple[CaseLine, ...]
    resolved: tuple[CaseLine, ...]
    still_open: tuple[OpenCase, ...]
    sla_breaches: tuple[SlaBreach, ...]
    unanswered: tuple[UnansweredCase, ...]
    overrides: tuple[OverrideLine, ...]
    next_on_call: tuple[NextOnCall, ...]
    incoming: str | None
    notes: str = ""
    # Legal clocks due by the end of the incoming shift (reports written before this
    # section existed read back without it).
    legal_clocks: tuple[LegalClockLine, ...] = ()
    legal_clocks_until: datetime | None = None
    audit_head: ChainHead | None = None  # None in reports stored before it was carried


@dataclass(frozen=True)
class HandoverView:
    """A submitted handover, as lists and the incoming person's console show it."""

    id: int
    author: str
    incoming: str | None
    shift_start: datetime
    shift_end: datetime
    submitted_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    notes: str
    report: HandoverReport

    @property
    def pending(self) -> bool:
        return self.acknowledged_at is None


# --- JSON of the report -------------------------------------------------------------


def to_json(value: Any) -> Any:
    """A report (or any part of it) as JSON: instants in UTC ISO 8601."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, tuple | list):
        return [to_json(item) for item in value]
    return value


def _from_json(kind: Any, value: Any, path: str) -> Any:
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        (inner,) = [a for a in get_args(kind) if a is not type(None)]
        return _from_json(inner, value, path)
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{path}: expected a list, got {value!r}")
        inner = get_args(kind)[0]
        return tuple(_from_json(inner, item, f"{path}[{i}]") for i, item in enumerate(value))
    if kind is datetime:
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{path}: expected an ISO 8601 time, got {value!r}") from None
        if parsed.tzinfo is None:
            raise ValueError(f"{path}: expected a time with an offset, got {value!r}")
        return parsed.astimezone(UTC)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected an object, got {value!r}")
        hints = get_type_hints(kind)
        fields = {}
        for f in dataclasses.fields(kind):
            if f.name in value:
                fields[f.name] = _from_json(hints[f.name], value[f.name], f"{path}.{f.name}")
            elif f.default is dataclasses.MISSING:
                raise ValueError(f"{path}.{f.name}: missing")
        factory: Any = kind
        return factory(**fields)
    if not isinstance(value, kind):
        raise ValueError(f"{path}: expected {kind.__name__}, got {value!r}")
    return value


def report_from_json(body: Mapping[str, Any]) -> HandoverReport:
    """A stored report back as view objects; ValueError names the key path that is wrong."""
    report: HandoverReport = _from_json(HandoverReport, dict(body), "report")
    return report


# --- the window -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShiftWindow:
    start: datetime
    end: datetime
    handoff_at: datetime  # when the next person takes over (the end of the author's run)
    schedule: str | None


def _run_of(spec: ScheduleSpec, piece: Shift) -> Shift:
    """`piece` widened to the whole run of its person: touching pieces from other sources
    (an override continuing a rotation turn) belong to the same stretch on call."""
    whole = on_call(spec, piece.start) or piece
    start = run_start(spec, piece.who, whole.start)
    return Shift(piece.who, start, run_end(spec, piece.who, whole.end), whole.source)


def last_shift(
    schedules: Sequence[ScheduleSpec], who: str, now: datetime
) -> tuple[ScheduleSpec, Shift] | None:
    """`who`'s run on call that started most recently (by `now`), and its schedule."""
    found: tuple[ScheduleSpec, Shift] | None = None
    for spec in schedules:
        mine = [s for s in schedule_shifts(spec, now - LAST_SHIFT_LOOKBACK, now) if s.who == who]
        if mine and (found is None or mine[-1].start > found[1].start):
            found = (spec, mine[-1])
    if found is None:
        return None
    spec, piece = found
    return spec, _run_of(spec, piece)


def shift_window(
    schedules: Sequence[ScheduleSpec], who: str, now: datetime, since: datetime | None = None
) -> ShiftWindow:
    """The author's last shift up to `now`; or, with `since`, from then to now (and the
    hand-off is the end of the author's run in progress, if any)."""
    if since is not None:
        if since >= now:
            raise BadInput("since", f"expected a time before now ({iso(now)}), got {iso(since)}")
        current = [
            (spec, run)
            for spec in schedules
            if (run := on_call(spec, now)) is not None and run.who == who
        ]
        if current:
            spec, piece = current[0]
            return ShiftWindow(since, now, _run_of(spec, piece).end, spec.name)
        return ShiftWindow(since, now, now, None)
    found = last_shift(schedules, who, now)
    if found is None:
        days = LAST_SHIFT_LOOKBACK.days
        raise NotFound(
            f"{who} has had no shift on any schedule in the last {days} days; "
            "give the start with --since ISO"
        )
    spec, run = found
    start = max(run.start, now - LAST_SHIFT_LOOKBACK)
    return ShiftWindow(start, min(run.end, now), run.end, spec.name)


def next_on_call(schedules: Sequence[ScheduleSpec], at: datetime) -> tuple[NextOnCall, ...]:
    """Per schedule, the shift in progress at the hand-off `at`, or the first after a gap."""
    found = []
    for spec in schedules:
        current = on_call(spec, at)
        if current is not None:
            found.append(NextOnCall(spec.name, current.who, at, current.end, current.source))
            continue
        later = next_change(spec, at)
        if later is None:
            found.append(NextOnCall(spec.name, None, at, None, "gap"))
        else:
            found.append(
                NextOnCall(spec.name, later.who, later.start, later.end, later.source, True)
            )
    return tuple(found)


def next_turn_span(
    schedules: Sequence[ScheduleSpec], schedule: str | None, at: datetime
) -> tuple[datetime, datetime]:
    """From the hand-off `at` to the end of the next turn on `schedule` as the rotations
    have it, overrides set aside: the span in which an override changes the next shift."""
    spec = next((s for s in schedules if s.name == schedule), None)
    if spec is not None:
        plain = dataclasses.replace(spec, overrides=())
        turn = on_call(plain, at) or next_change(plain, at)
        if turn is not None:
            return at, turn.end
    return at, at + NEXT_SHIFT_FALLBACK


def pick_incoming(
    entries: Sequence[NextOnCall], author: str, schedule: str | None
) -> NextOnCall | None:
    """The next person of the author's own schedule, else of the first schedule (by name)
    that has somebody other than the author."""
    ranked = sorted(entries, key=lambda e: (e.schedule != schedule, e.schedule))
    return next((e for e in ranked if e.who is not None and e.who != author), None)


# --- what the report says about cases ----------------------------------------------


def next_action(
    case: Case, sla: dict[int, tuple[int, int]], open_items: Sequence[ActionItem]
) -> tuple[str, datetime | None]:
    """What the case needs next, and by when (None: no deadline)."""
    ack_by, respond_by = sla_deadlines(case, sla)
    if case.status == Status.TRIGGERED.value:
        if case.exhausted:
            return "escalation exhausted: acknowledge or reassign", ack_by
        return "acknowledge", ack_by
    if case.first_response_at is None:
        return "first response", respond_by
    if open_items:
        far = datetime.max.replace(tzinfo=UTC)
        item = min(open_items, key=lambda a: (a.due_at or far, a.id or 0))
        owner = f" ({item.owner})" if item.owner else ""
        return f"action item: {item.title}{owner}", item.due_at
    return STAGE_ACTIONS.get(case.stage, "review the case"), None


def _queue_key(case: Case) -> tuple[int, int, datetime, int]:
    return case.queue_rank, case.severity, case.created_at, case.id or 0


def _cases_in_play(
    session: Session, start: datetime, end: datetime, longest_sla: timedelta
) -> list[Case]:
    """Every case the window can mention: opened, answered or resolved in it, paged in it,
    with an SLA deadline that could fall in it, or still open."""
    answered = select(TimelineEvent.case_id).where(
        col(TimelineEvent.kind) == TimelineKind.ACKNOWLEDGED.value,
        col(TimelineEvent.at) >= start,
        col(TimelineEvent.at) < end,
    )
    paged = select(Page.case_id).where(col(Page.sent_at) >= start, col(Page.sent_at) < end)
    statement = select(Case).where(
        col(Case.created_at) < end,
        or_(
            col(Case.created_at) >= start - longest_sla,
            col(Case.status) != Status.RESOLVED.value,
            col(Case.resolved_at) >= start,
            col(Case.id).in_(answered),
            col(Case.id).in_(paged),
        ),
    )
    return sorted(session.exec(statement).all(), key=_queue_key)


def _answers(session: Session, case_ids: Sequence[int]) -> dict[int, list[TimelineEvent]]:
    """Each case's acknowledgements and resolution, in time order."""
    found: dict[int, list[TimelineEvent]] = defaultdict(list)
    if not case_ids:
        return found
    for event in session.exec(
        select(TimelineEvent)
        .where(col(TimelineEvent.case_id).in_(case_ids), col(TimelineEvent.kind).in_(ANSWER_KINDS))
        .order_by(col(TimelineEvent.at), col(TimelineEvent.id))
    ).all():
        found[event.case_id].append(event)
    return found


def _open_items(session: Session, case_ids: Sequence[int]) -> dict[int, list[ActionItem]]:
    found: dict[int, list[ActionItem]] = defaultdict(list)
    if not case_ids:
        return found
    for item in session.exec(
        select(ActionItem).where(col(ActionItem.case_id).in_(case_ids), ActionItem.status == "open")
    ).all():
        found[item.case_id].append(item)
    return found


def _line(case: Case, names: Mapping[int, str], at: datetime, by: str | None) -> CaseLine:
    return CaseLine(
        ref=case.ref,
        title=case.title,
        category=case.category,
        severity=case.severity,
        status=case.status,
        stage=case.stage,
        assignee=names.get(case.assignee_id) if case.assignee_id else None,
        sensitive=case.sensitive,
        at=at,
        by=by,
    )


def _unanswered(
    case: Case,
    pages: Sequence[Page],
    answers: Sequence[TimelineEvent],
    names: Mapping[int, str],
    start: datetime,
    end: datetime,
) -> UnansweredCase | None:
    outcome = answered_at([(p.sent_at, p.acknowledged_at) for p in pages], [a.at for a in answers])
    missed = [
        p
        for p, when in zip(pages, outcome, strict=True)
        if when is None and start <= p.sent_at < end
    ]
    if not missed:
        return None
    reached = pages[-1]
    answer = next((a for a in answers if a.at >= missed[0].sent_at), None)
    return UnansweredCase(
        ref=case.ref,
        title=case.title,
        severity=case.severity,
        status=case.status,
        pages=tuple(
            PageLine(names.get(p.responder_id, "?"), p.step, p.round, p.reason, p.sent_at)
            for p in missed
        ),
        reached_step=reached.step,
        reached_round=reached.round,
        reached_reason=reached.reason,
        step_count=len(policy_of(case).steps),
        exhausted=any(p.reason == "exhausted" for p in pages),
        answered_by=answer.actor if answer else None,
        answered_at=answer.at if answer else None,
    )


def _overrides(session: Session, lo: datetime, hi: datetime) -> tuple[OverrideLine, ...]:
    rows = session.exec(
        select(Schedule.name, Responder.handle, Override)
        .join(Schedule, col(Schedule.id) == col(Override.schedule_id))
        .join(Responder, col(Responder.id) == col(Override.responder_id))
        .where(col(Override.starts_at) < hi, col(Override.ends_at) > lo)
        .order_by(col(Override.starts_at), col(Override.id))
    ).all()
    return tuple(
        OverrideLine(name, handle, o.starts_at, o.ends_at, o.reason) for name, handle, o in rows
    )


def build_report(
    session: Session,
    author: str,
    window: ShiftWindow,
    now: datetime,
    *,
    schedules: Sequence[ScheduleSpec],
    incoming: str | None = None,
    notes: str = "",
) -> HandoverReport:
    """The report of `window`, as known at `now`; `incoming` overrides the schedule's pick."""
    start, end = window.start, window.end
    sla = sla_table(session)
    longest = timedelta(seconds=max(max(pair) for pair in sla.values()))
    cases = _cases_in_play(session, start, end, longest)
    ids = [c.id for c in cases if c.id is not None]
    answers = _answers(session, ids)
    all_pages: dict[int, list[Page]] = defaultdict(list)
    for page in queries.pages_for(session, ids):
        all_pages[page.case_id].append(page)
    items = _open_items(session, ids)
    names = queries.handles(
        session,
        [c.assignee_id for c in cases]
        + [c.resolved_by_id for c in cases]
        + [p.responder_id for pages in all_pages.values() for p in pages],
    )
    first_acks = {
        cid: min(e.at for e in events if e.kind == TimelineKind.ACKNOWLEDGED.value)
        for cid, events in answers.items()
        if any(e.kind == TimelineKind.ACKNOWLEDGED.value for e in events)
    }

    opened, acknowledged, resolved, still_open = [], [], [], []
    breaches, unanswered = [], []
    for case in cases:
        assert case.id is not None
        if start <= case.created_at < end:
            opened.append(_line(case, names, case.created_at, None))
        in_window = [
            e
            for e in answers[case.id]
            if e.kind == TimelineKind.ACKNOWLEDGED.value and start <= e.at < end
        ]
        if in_window:
            acknowledged.append(_line(case, names, in_window[0].at, in_window[0].actor))
        if case.resolved_at is not None and start <= case.resolved_at < end:
            by = names.get(case.resolved_by_id) if case.resolved_by_id else None
            resolved.append(_line(case, names, case.resolved_at, by))
        if case.status != Status.RESOLVED.value:
            action, due = next_action(case, sla, items[case.id])
            still_open.append(
                OpenCase(
                    ref=case.ref,
                    title=case.title,
                    category=case.category,
                    severity=case.severity,
                    status=case.status,
                    stage=case.stage,
                    assignee=names.get(case.assignee_id) if case.assignee_id else None,
                    sensitive=case.sensitive,
                    created_at=case.created_at,
                    exhausted=case.exhausted,
                    next_action=action,
                    next_action_due_at=due,
                )
            )
        for check in sla_checks(
            case.severity,
            case.created_at,
            first_acknowledged_at(case, first_acks),
            case.first_response_at,
            sla,
        ):
            if start <= check.due_at < end and check.state(now) == "missed":
                breaches.append(
                    SlaBreach(
                        ref=case.ref,
                        title=case.title,
                        severity=case.severity,
                        kind=check.kind,
                        due_at=check.due_at,
                        met_at=check.met_at,
                        late_by_seconds=int(check.late_by(now).total_seconds()),
                    )
                )
        if all_pages[case.id]:
            line = _unanswered(case, all_pages[case.id], answers[case.id], names, start, end)
            if line is not None:
                unanswered.append(line)

    entries = next_on_call(schedules, window.handoff_at)
    chosen = pick_incoming(entries, author, window.schedule)
    lo, hi = next_turn_span(
        schedules, chosen.schedule if chosen else window.schedule, window.handoff_at
    )
    clocks_until = max(hi, now)
    head = checkpoints.head(session)
    legal = []
    for owed in clocks_due_by(session, now, clocks_until):
        assert owed.clock.due_at is not None
        legal.append(
            LegalClockLine(
                ref=owed.ref,
                title=owed.title,
                case_status=owed.status,
                label=owed.clock.label,
                kind=owed.clock.kind,
                state=owed.clock.state,
                due_at=owed.clock.due_at,
            )
        )
    return HandoverReport(
        author=author,
        shift_start=start,
        shift_end=end,
        handoff_at=window.handoff_at,
        schedule=window.schedule,
        generated_at=now,
        opened=tuple(sorted(opened, key=lambda c: c.at)),
        acknowledged=tuple(sorted(acknowledged, key=lambda c: c.at)),
        resolved=tuple(sorted(resolved, key=lambda c: c.at)),
        still_open=tuple(still_open),
        sla_breaches=tuple(sorted(breaches, key=lambda b: (b.due_at, b.ref))),
        unanswered=tuple(sorted(unanswered, key=lambda u: (u.pages[0].sent_at, u.ref))),
        overrides=_overrides(session, lo, hi),
        next_on_call=entries,
        incoming=incoming if incoming is not None else (chosen.who if chosen else None),
        notes=notes,
        legal_clocks=tuple(legal),
        legal_clocks_until=clocks_until,
        audit_head=ChainHead(head.seq, head.hash),
    )


# --- sensitive titles ---------------------------------------------------------------


def _sensitive_cases(session: Session, report: HandoverReport) -> dict[str, tuple[str, int]]:
    refs = {
        line.ref
        for f in dataclasses.fields(report)
        if isinstance(value := getattr(report, f.name), tuple)
        for line in value
        if hasattr(line, "title")
    }
    rows = session.exec(
        select(Case.ref, Case.category, Case.severity).where(
            col(Case.sensitive), col(Case.ref).in_(refs)
        )
    ).all()
    return {ref: (category, severity) for ref, category, severity in rows}


def withhold_sensitive_titles(
    report: HandoverReport, sensitive: Mapping[str, tuple[str, int]]
) -> HandoverReport:
    """`report` with each sensitive case shown by reference, category and severity only."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(report):
        value = getattr(report, f.name)
        if isinstance(value, tuple) and any(hasattr(line, "title") for line in value):
            changes[f.name] = tuple(
                dataclasses.replace(line, title=withheld_title(*sensitive[line.ref]))
                if line.ref in sensitive
                else line
                for line in value
            )
    return dataclasses.replace(report, **changes)


# --- Markdown -----------------------------------------------------------------------


def page_position(step: int, round_: int, reason: str) -> str:
    if reason == "exhausted":
        return f"exhausted (supervisors paged, round {round_ + 1})"
    if reason == "reassign":
        return "reassign page"
    if reason == "delayed":
        return "told that escalation was delayed"
    if reason == "catch-up":
        return f"step {step}, round {round_ + 1}, paged late"
    return f"step {step}, round {round_ + 1}"


def _case_lines(title: str, lines: Sequence[CaseLine], verb: str, zone: ZoneInfo) -> list[str]:
    out = [f"## {title} ({len(lines)})", ""]
    if not lines:
        return [*out, "None.", ""]
    out += [f"| Ref | Sev | Title | {verb} | By | Now |", "| --- | --- | --- | --- | --- | --- |"]
    for c in lines:
        out.append(
            f"| {c.ref} | {severity_name(c.severity)} | {md_cell(c.title)} "
            f"| {format_instant(c.at, zone)} | {c.by or '-'} | {c.status}/{c.stage} |"
        )
    return [*out, ""]


def _legal_clock_lines(report: HandoverReport, zone: ZoneInfo) -> list[str]:
    until = report.legal_clocks_until
    head = f"## Legal clocks due by {format_instant(until, zone)}" if until else "## Legal clocks"
    out = [f"{head} ({len(report.legal_clocks)})", ""]
    for c in report.legal_clocks:
        verb = "ends" if c.kind == "hold" else "due"
        state = "BREACHED, " if c.state == "breached" else ""
        resolved = (
            " (case resolved; report still owed)" if c.case_status == Status.RESOLVED.value else ""
        )
        out.append(
            f"- {c.ref} {md_cell(c.title)}: {md_cell(c.label)}, {state}{verb} "
            f"{format_instant(c.due_at, zone)}{resolved}"
        )
    if not report.legal_clocks:
        out.append("None.")
    return out


def render_markdown(report: HandoverReport, zone_name: str = "UTC") -> str:
    """The report as Markdown, times on the wall clock of `zone_name`."""
    zone = viewer_zone(zone_name)
    source = f"schedule {report.schedule}" if report.schedule else "from --since"
    out = [
        f"# Shift handover from {report.author}",
        "",
        f"- Shift: {format_instant(report.shift_start, zone)} "
        f"to {format_instant(report.shift_end, zone)} ({source})",
        f"- Hand-off: {format_instant(report.handoff_at, zone)}",
        f"- Incoming: {report.incoming or 'nobody known'}",
        f"- Written: {format_instant(report.generated_at, zone)}",
        "",
        "## Notes",
        "",
        report.notes.strip() or "No notes.",
        "",
        f"## Still open ({len(report.still_open)})",
        "",
    ]
    if report.still_open:
        out += [
            "| Ref | Sev | Title | Status | Stage | Assignee | Next action | Due |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for o in report.still_open:
            status = o.status + (" (exhausted)" if o.exhausted else "")
            out.append(
                f"| {o.ref} | {severity_name(o.severity)} | {md_cell(o.title)} | {status} "
                f"| {o.stage} | {o.assignee or '-'} | {md_cell(o.next_action)} "
                f"| {format_instant(o.next_action_due_at, zone)} |"
            )
    else:
        out.append("None.")
    out += ["", *_legal_clock_lines(report, zone)]
    out += ["", f"## SLA breaches ({len(report.sla_breaches)})", ""]
    for b in report.sla_breaches:
        met = f"met {format_instant(b.met_at, zone)}" if b.met_at else "not met yet"
        out.append(
            f"- {b.ref} {severity_name(b.severity)} {md_cell(b.title)}: {b.kind} by "
            f"{format_instant(b.due_at, zone)}, {met}, late by {format_seconds(b.late_by_seconds)}"
        )
    if not report.sla_breaches:
        out.append("None.")
    out += ["", f"## Pages that went unanswered ({len(report.unanswered)})", ""]
    for u in report.unanswered:
        pages = "; ".join(
            f"{p.handle} at {format_instant(p.sent_at, zone)} "
            f"({page_position(p.step, p.round, p.reason)})"
            for p in u.pages
        )
        reached = page_position(u.reached_step, u.reached_round, u.reached_reason)
        answer = (
            f"answered by {u.answered_by} at {format_instant(u.answered_at, zone)}"
            if u.answered_at
            else f"still {u.status}"
        )
        out.append(
            f"- {u.ref} {severity_name(u.severity)} {md_cell(u.title)}: unanswered {pages}. "
            f"Escalated as far as {reached} of {plural(u.step_count, 'step')}; {answer}."
        )
    if not report.unanswered:
        out.append("None.")
    out.append("")
    out += _case_lines("Opened", report.opened, "Opened", zone)
    out += _case_lines("Acknowledged", report.acknowledged, "Acknowledged", zone)
    out += _case_lines("Resolved", report.resolved, "Resolved", zone)
    out += ["## On call next", ""]
    for e in report.next_on_call:
        if e.who is None:
            out.append(
                f"- {e.schedule}: nobody (coverage gap from {format_instant(e.start, zone)})"
            )
            continue
        gap = " after a coverage gap" if e.after_gap else ""
        out.append(
            f"- {e.schedule}: {e.who} from {format_instant(e.start, zone)}{gap} "
            f"until {format_instant(e.end, zone)} ({e.source})"
        )
    if not report.next_on_call:
        out.append("No schedules.")
    out += ["", f"## Overrides touching the next shift ({len(report.overrides)})", ""]
    for override in report.overrides:
        reason = f": {md_cell(override.reason)}" if override.reason else ""
        out.append(
            f"- {override.schedule}: {override.who} from {format_instant(override.start, zone)} "
            f"to {format_instant(override.end, zone)}{reason}"
        )
    if not report.overrides:
        out.append("None.")
    if report.audit_head is not None:
        witness = checkpoints.Checkpoint(
            report.audit_head.seq, report.audit_head.hash, report.generated_at
        )
        out += [
            "",
            "## Audit chain",
            "",
            f"Head at record {witness.seq} when this report was written. Keep this report: "
            "`vigil audit verify --since-checkpoint FILE` proves nothing up to that record "
            "was changed since.",
            "",
            f"    {witness.line()}",
        ]
    return "\n".join(out) + "\n"


# --- stored handovers -------------------------------------------------------------


def _views(session: Session, rows: Iterable[Handover]) -> list[HandoverView]:
    rows = list(rows)
    names = queries.handles(
        session,
        [r.author_id for r in rows]
        + [r.incoming_id for r in rows]
        + [r.acknowledged_by_id for r in rows],
    )
    views = []
    for row in rows:
        assert row.id is not None
        views.append(
            HandoverView(
                id=row.id,
                author=names.get(row.author_id, "?"),
                incoming=names.get(row.incoming_id) if row.incoming_id else None,
                shift_start=row.shift_start,
                shift_end=row.shift_end,
                submitted_at=row.submitted_at,
                acknowledged_at=row.acknowledged_at,
                acknowledged_by=(
                    names.get(row.acknowledged_by_id) if row.acknowledged_by_id else None
                ),
                notes=row.notes,
                report=report_from_json(row.report),
            )
        )
    return views


def pending_handovers_for(session: Session, responder_id: int) -> list[HandoverView]:
    """Handovers waiting for this person's acknowledgement, oldest first: the console shows
    them when it opens."""
    rows = session.exec(
        select(Handover)
        .where(Handover.incoming_id == responder_id, col(Handover.acknowledged_at).is_(None))
        .order_by(col(Handover.submitted_at), col(Handover.id))
    ).all()
    return _views(session, rows)


SEARCH_BATCH = 200


def find_handovers(
    session: Session, *, search: str = "", pending: bool = False, limit: int = 50
) -> list[HandoverView]:
    """Past handovers, newest first; `search` matches the notes, the author, or anything in
    the report (a case reference or title). Notes and reports are sealed at rest, so a
    search opens them here, newest first, until `limit` match."""
    statement = select(Handover, Responder.handle).join(
        Responder, col(Responder.id) == col(Handover.author_id)
    )
    if pending:
        statement = statement.where(col(Handover.acknowledged_at).is_(None))
    statement = statement.order_by(col(Handover.submitted_at).desc(), col(Handover.id).desc())
    needle = search.strip().lower()
    if not needle:
        return _views(session, [row for row, _ in session.exec(statement.limit(limit)).all()])
    found: list[Handover] = []
    result = session.exec(statement.execution_options(yield_per=SEARCH_BATCH))
    try:
        for row, author in result:
            text = " ".join((author, row.notes, audit.canonical_json(row.report)))
            if needle in text.lower():
                found.append(row)
                if len(found) == limit:
                    break
    finally:
        result.close()
    return _views(session, found)


def handover_by_id(session: Session, handover_id: int) -> HandoverView:
    row = session.get(Handover, handover_id)
    if row is None:
        raise NotFound(f"no handover {handover_id}")
    return _views(session, [row])[0]


# --- the service ------------------------------------------------------------------


class HandoverService(Service):
    """Handover reports, submissions and acknowledgements, on the case service's transaction
    plumbing (one write transaction: audit lock, actor, role, change, audit record)."""

    def report(
        self, actor: str, *, since: datetime | None = None, sensitive_titles: bool = False
    ) -> HandoverReport:
        """The report the author would submit now (nothing is stored). Sensitive cases show
        by reference, category and severity; `sensitive_titles` shows their titles too,
        audited as a reveal of each."""
        now = self.clock.now()
        with self.db.read() as session:
            author = actor_of(session, actor)
            schedules = load_all_schedules(session)
            window = shift_window(schedules, author.handle, now, since)
            report = build_report(session, author.handle, window, now, schedules=schedules)
            sensitive = _sensitive_cases(session, report)
        if not sensitive_titles or not sensitive:
            return withhold_sensitive_titles(report, sensitive)
        reveal_titles(self.work, actor, sensitive, "handover")
        return report

    def submit(
        self, actor: str, notes: str, *, since: datetime | None = None, to: str | None = None
    ) -> HandoverView:
        """Close the shift: store the report with the notes, for the incoming person."""
        body = clean_text("notes", notes, MAX_NOTE, required=True)
        with self.work(actor) as tx:
            incoming: Responder | None = None
            if to is not None:
                incoming = tx.session.exec(
                    select(Responder).where(Responder.handle == to.strip())
                ).first()
                if incoming is None or not incoming.active:
                    raise NotFound(f"no active responder {to!r}")
                if incoming.id == tx.actor.id:
                    raise BadInput("to", "expected the incoming person, not yourself")
            schedules = load_all_schedules(tx.session)
            window = shift_window(schedules, tx.actor.handle, tx.now, since)
            report = build_report(
                tx.session,
                tx.actor.handle,
                window,
                tx.now,
                schedules=schedules,
                incoming=incoming.handle if incoming else None,
                notes=body,
            )
            report = withhold_sensitive_titles(report, _sensitive_cases(tx.session, report))
            if incoming is None and report.incoming is not None:
                incoming = tx.session.exec(
                    select(Responder).where(Responder.handle == report.incoming)
                ).first()
            assert tx.actor.id is not None
            row = Handover(
                author_id=tx.actor.id,
                incoming_id=incoming.id if incoming else None,
                shift_start=window.start,
                shift_end=window.end,
                notes=body,
                report=to_json(report),
                submitted_at=tx.now,
            )
            tx.session.add(row)
            tx.session.flush()
            assert row.id is not None
            audit.append(
                tx.session,
                at=tx.now,
                actor=tx.actor.handle,
                action="handover.submit",
                detail={
                    "handover": row.id,
                    "incoming": incoming.handle if incoming else None,
                    "shift_start": iso(window.start),
                    "shift_end": iso(window.end),
                },
            )
            return _views(tx.session, [row])[0]

    def acknowledge_handover(self, actor: str, handover_id: int) -> HandoverView:
        """The incoming person confirms they read it; with nobody named, anyone but the
        author may, and becomes the incoming person."""
        with self.work(actor) as tx:
            row = tx.session.exec(
                select(Handover).where(Handover.id == handover_id).with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"no handover {handover_id}")
            if row.acknowledged_at is not None:
                who = queries.handles(tx.session, [row.acknowledged_by_id])
                raise NothingToDo(
                    f"handover {handover_id} was already acknowledged by "
                    f"{who.get(row.acknowledged_by_id or 0, '?')} at {iso(row.acknowledged_at)}"
                )
            if row.incoming_id is not None and row.incoming_id != tx.actor.id:
                incoming = queries.handles(tx.session, [row.incoming_id]).get(row.incoming_id)
                raise NotAllowed(
                    f"handover {handover_id} is for {incoming}; only they may acknowledge it"
                )
            if row.incoming_id is None and row.author_id == tx.actor.id:
                raise NotAllowed(
                    f"you wrote handover {handover_id}; the incoming person acknowledges it"
                )
            row.incoming_id = tx.actor.id
            row.acknowledged_at = tx.now
            row.acknowledged_by_id = tx.actor.id
            tx.session.add(row)
            audit.append(
                tx.session,
                at=tx.now,
                actor=tx.actor.handle,
                action="handover.ack",
                detail={"handover": handover_id},
            )
            tx.session.flush()
            return _views(tx.session, [row])[0]

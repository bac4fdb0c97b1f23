"""Reading casework: the queue's flags and clocks, the casework pane of a case, and the
desk's lists of what needs attention (overdue actions, clocks, disclosures awaiting approval).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, or_, select

from app.core.errors import NotFound
from app.rules.casework import (
    FREE_TEXT_FACTS,
    VERIFICATION_STEPS,
    CaseworkConfig,
    ClockFacts,
    ContainmentSpec,
    Span,
    legal_clocks,
    most_urgent,
    verification_missing,
    verification_required,
)
from app.services.casework.settings import load_config
from data.agency import RequestOrigin
from data.casework import (
    CasePartner,
    ClockEvent,
    ContainmentRecord,
    Disclosure,
    Partner,
    VerificationRecord,
)
from data.domain import (
    CLOCK_URGENCY,
    ActionStatus,
    ClockEventKind,
    ClockKind,
    ClockState,
    DisclosureStatus,
    Status,
)
from data.models import ActionItem, Case
from data.queries import OWES_REPORT_RANK, handles
from data.tipline import TiplineFiling
from widgets.timefmt import format_age
from widgets.views import (
    HIDDEN,
    ActionView,
    CaseworkView,
    ClockView,
    ContainmentView,
    DisclosureView,
    PartnerView,
    VerificationStepView,
    VerificationView,
)

IN_CHUNK = 900  # ids per IN (...) list: well under SQLite's bound-parameter limit


# --- view objects: the casework pane's live in widgets.views; these are the queue's ---


@dataclass(frozen=True, slots=True)
class CaseworkFlags:
    """What a queue row shows of a case's casework: its most urgent legal clock, its overdue
    action items, and what waits on someone (verification, a supervisor's approval)."""

    clock: ClockView | None
    overdue_actions: int
    open_actions: int
    next_action_due_at: datetime | None
    verification_pending: bool
    disclosures_awaiting_approval: int = 0


@dataclass(frozen=True, slots=True)
class CaseClockView:
    case_id: int
    ref: str
    status: str
    clock: ClockView
    title: str = ""


# --- reading ----------------------------------------------------------------


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    unique = sorted(set(ids))
    for start in range(0, len(unique), IN_CHUNK):
        yield unique[start : start + IN_CHUNK]


def clock_facts(session: Session, cases: Sequence[Case]) -> dict[int, ClockFacts]:
    """The clock facts of several cases in one query per chunk of ids."""
    events: dict[int, list[ClockEvent]] = defaultdict(list)
    for chunk in _chunks([c.id for c in cases if c.id is not None]):
        statement = (
            select(ClockEvent)
            .where(col(ClockEvent.case_id).in_(chunk))
            .order_by(col(ClockEvent.at), col(ClockEvent.id))
        )
        for event in session.exec(statement):
            events[event.case_id].append(event)
    out: dict[int, ClockFacts] = {}
    for case in cases:
        assert case.id is not None
        filed: dict[str, tuple[datetime, str]] = {}
        extensions: dict[str, int] = defaultdict(int)
        waived: dict[str, datetime] = {}
        for event in events.get(case.id, []):
            if event.kind == ClockEventKind.FILED:
                filed.setdefault(event.clock, (event.at, event.reference or ""))
            elif event.kind == ClockEventKind.EXTENDED:
                extensions[event.clock] += 1
            elif event.kind == ClockEventKind.WAIVED:
                waived.setdefault(event.clock, event.at)
        out[case.id] = ClockFacts(case.category, case.created_at, filed, dict(extensions), waived)
    return out


def owed_reports(
    session: Session,
    cases: Sequence[Case],
    now: datetime,
    *,
    config: CaseworkConfig | None = None,
) -> dict[int, list[ClockView]]:
    """The deadline clocks of each case that still ask for a report (running or breached:
    neither filed nor waived), by case id; cases that owe nothing are left out.

    A case that owes a report keeps it owed after it is resolved: resolving asks first,
    and the resolved case stays in the open queue until the report is filed."""
    config = config or load_config(session)
    wanted = [
        c
        for c in cases
        if any(spec.kind == ClockKind.DEADLINE for spec in config.clocks_for(c.category))
    ]
    if not wanted:
        return {}
    facts = clock_facts(session, wanted)
    out: dict[int, list[ClockView]] = {}
    for case in wanted:
        assert case.id is not None
        owed = [
            clock
            for clock in legal_clocks(facts[case.id], config, now)
            if clock.kind == ClockKind.DEADLINE and clock.running
        ]
        if owed:
            out[case.id] = owed
    return out


def owes_a_report(session: Session, case: Case, now: datetime) -> bool:
    """Whether a legal deadline of the case still asks for a report (neither filed nor
    waived), with what the session holds so far."""
    if case.id is None:
        return False
    session.flush()
    return bool(owed_reports(session, [case], now))


def _longest(span: Span) -> timedelta:
    return timedelta(days=366 * span.years) if span.years else span.delta


def clocks_due_by(
    session: Session, now: datetime, end: datetime, *, config: CaseworkConfig | None = None
) -> list[CaseClockView]:
    """Every legal clock running at `now` that comes due before `end`: reports still owed
    (breached ones too, resolved cases included) and holds that end by then. Most urgent
    first, then by due time.

    Only cases whose clocks can still run are read: open ones, resolved ones that owe a
    report, and those whose clock started within the longest clock's reach."""
    config = config or load_config(session)
    specs = [spec for specs in config.clocks.values() for spec in specs]
    if not specs:
        return []
    reach = max(
        _longest(s.due) + (_longest(s.extension) * s.max_extensions if s.extension else timedelta())
        for s in specs
    )
    since = now - reach
    filed_lately = select(ClockEvent.case_id).where(
        ClockEvent.kind == ClockEventKind.FILED.value, col(ClockEvent.at) >= since
    )
    statement = (
        select(Case)
        .where(
            col(Case.category).in_(sorted(config.clocks)),
            or_(
                col(Case.status) != Status.RESOLVED.value,
                col(Case.queue_rank) == OWES_REPORT_RANK,
                col(Case.created_at) >= since,
                col(Case.id).in_(filed_lately),
            ),
        )
        .order_by(col(Case.id))
    )
    out: list[CaseClockView] = []
    batch: list[Case] = []
    for case in session.exec(statement).yield_per(500):
        batch.append(case)
        if len(batch) == 500:
            out += _due_by(session, batch, config, now, end)
            batch = []
    out += _due_by(session, batch, config, now, end)
    return sorted(
        out, key=lambda v: (CLOCK_URGENCY[ClockState(v.clock.state)], v.clock.due_at, v.case_id)
    )


def _due_by(
    session: Session, cases: Sequence[Case], config: CaseworkConfig, now: datetime, end: datetime
) -> list[CaseClockView]:
    facts = clock_facts(session, cases)
    out = []
    for case in cases:
        assert case.id is not None
        for clock in legal_clocks(facts[case.id], config, now):
            if clock.running and clock.due_at is not None and clock.due_at < end:
                out.append(CaseClockView(case.id, case.ref, case.status, clock, case.title))
    return out


def owed_report_text(clock: ClockView, now: datetime) -> str:
    """One line naming an owed report and its deadline: `CyberTipline report to NCMEC (18
    U.S.C. 2258A), due in 3h` or `..., breached 2h ago`."""
    assert clock.due_at is not None
    left = clock.due_at - now
    if left < timedelta(0):
        return f"{clock.label}, breached {format_age(-left)} ago"
    return f"{clock.label}, due in {format_age(left)}"


def _case_by_id(session: Session, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"no case with id {case_id}")
    return case


def partner_view(partner: Partner) -> PartnerView:
    return PartnerView(
        partner.name,
        partner.kind,
        partner.agency,
        partner.contact,
        partner.verified_channel,
        partner.active,
    )


def _action_view(item: ActionItem, ref: str, now: datetime, names: dict[int, str]) -> ActionView:
    assert item.id is not None
    overdue = item.status == ActionStatus.OPEN and item.due_at is not None and item.due_at <= now
    return ActionView(
        id=item.id,
        case_id=item.case_id,
        ref=ref,
        title=item.title,
        owner=item.owner,
        owner_kind=item.owner_kind,
        due_at=item.due_at,
        status=item.status,
        overdue=overdue,
        created_at=item.created_at,
        completed_at=item.completed_at,
        completed_by=names.get(item.completed_by_id) if item.completed_by_id else None,
    )


def _verification_view(
    records: Sequence[VerificationRecord],
    names: dict[int, str],
    shown: bool,
    required: bool,
) -> VerificationView:
    by_step = {r.step: r for r in records}
    steps = []
    for step, rule in VERIFICATION_STEPS.items():
        record = by_step.get(step)
        if record is None:
            steps.append(VerificationStepView(step, rule.label, False))
            continue
        facts = tuple(
            (key, value if shown or key not in FREE_TEXT_FACTS else HIDDEN)
            for key in rule.required + rule.optional
            if (value := str(record.facts.get(key, "")))
        )
        steps.append(
            VerificationStepView(
                step,
                rule.label,
                True,
                facts,
                names.get(record.recorded_by_id, "?"),
                record.recorded_at,
            )
        )
    missing = tuple(verification_missing(by_step))
    return VerificationView(required, not missing, missing, tuple(steps))


def _disclosure_view(
    row: Disclosure, partners: dict[int, Partner], names: dict[int, str]
) -> DisclosureView:
    partner = partners.get(row.partner_id)
    return DisclosureView(
        number=row.number,
        status=row.status,
        data=tuple(row.data),
        accounts=row.accounts,
        to=partner.name if partner else "?",
        agency=row.agency,
        basis=row.basis,
        basis_label=row.basis_label,
        emergency=row.emergency,
        requested_by=names.get(row.requested_by_id, "?"),
        requested_at=row.requested_at,
        decided_by=names.get(row.decided_by_id) if row.decided_by_id else None,
        decided_at=row.decided_at,
        override_reason=row.override_reason,
        decline_reason=row.decline_reason,
    )


def _with_deciders(session: Session, case_id: int, clocks: list[ClockView]) -> list[ClockView]:
    """Name who filed each filed report and who waived each waived clock."""
    deciders: dict[tuple[str, str], int] = {}
    for name, kind, by_id in session.exec(
        select(ClockEvent.clock, ClockEvent.kind, ClockEvent.by_id)
        .where(
            ClockEvent.case_id == case_id,
            col(ClockEvent.kind).in_([ClockEventKind.FILED.value, ClockEventKind.WAIVED.value]),
        )
        .order_by(col(ClockEvent.at), col(ClockEvent.id))
    ):
        deciders.setdefault((name, kind), by_id)  # the first counts, as in clock_facts
    names = handles(session, list(deciders.values()))

    def decider(view: ClockView) -> str | None:
        if view.outcome in ("waived", "released"):
            event = ClockEventKind.WAIVED
        elif view.reference is not None:
            event = ClockEventKind.FILED
        else:
            return None
        found = deciders.get((view.name, event.value))
        return names.get(found) if found is not None else None

    return [replace(view, done_by=decider(view)) for view in clocks]


def casework_view(
    session: Session,
    case_id: int,
    now: datetime,
    *,
    config: CaseworkConfig | None = None,
    revealed: bool = False,
) -> CaseworkView:
    """The casework of one case. On a sensitive case, free text that may describe the person
    at risk stays hidden unless the caller has revealed the case (an audited act)."""
    case = _case_by_id(session, case_id)
    config = config or load_config(session)
    shown = revealed or not case.sensitive
    records = session.exec(
        select(VerificationRecord).where(VerificationRecord.case_id == case_id)
    ).all()
    disclosures = session.exec(
        select(Disclosure).where(Disclosure.case_id == case_id).order_by(col(Disclosure.number))
    ).all()
    contained = {
        r.step: r
        for r in session.exec(
            select(ContainmentRecord).where(ContainmentRecord.case_id == case_id)
        ).all()
    }
    items = session.exec(
        select(ActionItem).where(ActionItem.case_id == case_id).order_by(col(ActionItem.id))
    ).all()
    links = session.exec(
        select(Partner)
        .join(CasePartner, col(CasePartner.partner_id) == col(Partner.id))
        .where(CasePartner.case_id == case_id)
        .order_by(col(Partner.name))
    ).all()
    partner_ids = {d.partner_id for d in disclosures}
    partners = {
        p.id: p
        for p in session.exec(select(Partner).where(col(Partner.id).in_(partner_ids))).all()
        if p.id is not None
    }
    names = handles(
        session,
        [r.recorded_by_id for r in records]
        + [d.requested_by_id for d in disclosures]
        + [d.decided_by_id for d in disclosures]
        + [r.done_by_id for r in contained.values()]
        + [i.completed_by_id for i in items],
    )
    checklist = list(config.containment_for(case.category))
    listed = {s.name for s in checklist}
    # A step done before the desk's checklist changed stays visible.
    checklist += [
        ContainmentSpec(s, s.replace("_", " ").capitalize()) for s in contained if s not in listed
    ]
    containment = []
    for spec in checklist:
        record = contained.get(spec.name)
        if record is None:
            containment.append(ContainmentView(spec.name, spec.label, spec.needs_reference, False))
            continue
        containment.append(
            ContainmentView(
                spec.name,
                spec.label,
                spec.needs_reference,
                True,
                names.get(record.done_by_id, "?"),
                record.done_at,
                record.reference,
                record.note if shown or not record.note else HIDDEN,
            )
        )
    required = verification_required(case.category) or any(d.emergency for d in disclosures)
    facts = clock_facts(session, [case])[case_id]
    clocks = _with_deciders(session, case_id, legal_clocks(facts, config, now))
    return CaseworkView(
        case_id=case_id,
        ref=case.ref,
        category=case.category,
        sensitive=case.sensitive,
        revealed=revealed and case.sensitive,
        verification=_verification_view(records, names, shown, required),
        disclosures=tuple(_disclosure_view(d, partners, names) for d in disclosures),
        clocks=tuple(clocks),
        containment=tuple(containment),
        actions=tuple(_action_view(i, case.ref, now, names) for i in items),
        partners=tuple(partner_view(p) for p in links),
        request_flags=_request_flags(session, case_id),
        **_tipline(session, case_id),
    )


def _request_flags(session: Session, case_id: int) -> tuple[str, ...]:
    origin = session.exec(select(RequestOrigin).where(RequestOrigin.case_id == case_id)).first()
    return tuple(origin.flags) if origin is not None else ()


def _tipline(session: Session, case_id: int) -> dict[str, Any]:
    """The filing's fields of the casework view: its line, its status, its next try."""
    row = session.exec(select(TiplineFiling).where(TiplineFiling.case_id == case_id)).first()
    if row is None:
        return {}
    return {
        "tipline": _tipline_line(row),
        "tipline_status": row.status,
        "tipline_next_try": row.next_attempt_at,
    }


def _tipline_line(row: TiplineFiling) -> str:
    """The filing as the casework pane and `vigil casework show` state it."""
    parts = [row.status]
    if row.report_id:
        parts.append(f"NCMEC report {row.report_id}")
    if row.attempts:
        parts.append(f"{row.attempts} failed tries")
    if row.retractions:
        parts.append(f"{row.retractions} retracted")
    text = ", ".join(parts)
    if row.last_error:
        code = f" ({row.last_code})" if row.last_code is not None else ""
        text += f"; NCMEC said{code}: {row.last_error}"
    return text


def overdue_summary(
    session: Session,
    cases: Sequence[Case],
    now: datetime,
    *,
    config: CaseworkConfig | None = None,
) -> dict[int, CaseworkFlags]:
    """Casework flags for the queue's visible rows (the cases as the caller read them), a
    few queries per chunk. A case with nothing to flag (no running clock, no open item,
    nothing to verify) is left out."""
    config = config or load_config(session)
    case_ids = [case.id for case in cases if case.id is not None]
    open_items: dict[int, list[ActionItem]] = defaultdict(list)
    verified_steps: dict[int, set[str]] = defaultdict(set)
    awaiting: dict[int, int] = defaultdict(int)
    for chunk in _chunks(case_ids):
        for item in session.exec(
            select(ActionItem).where(
                col(ActionItem.case_id).in_(chunk), ActionItem.status == ActionStatus.OPEN.value
            )
        ):
            open_items[item.case_id].append(item)
        for case_id, step in session.exec(
            select(VerificationRecord.case_id, VerificationRecord.step).where(
                col(VerificationRecord.case_id).in_(chunk)
            )
        ):
            verified_steps[case_id].add(step)
        for case_id in session.exec(
            select(Disclosure.case_id).where(
                col(Disclosure.case_id).in_(chunk),
                Disclosure.status == DisclosureStatus.REQUESTED.value,
            )
        ):
            awaiting[case_id] += 1
    facts = clock_facts(session, cases)
    out: dict[int, CaseworkFlags] = {}
    for case in cases:
        assert case.id is not None
        clock = most_urgent(legal_clocks(facts[case.id], config, now))
        items = open_items.get(case.id, [])
        dues = [i.due_at for i in items if i.due_at is not None]
        pending = verification_required(case.category) and bool(
            verification_missing(verified_steps.get(case.id, set()))
        )
        if clock is None and not items and not pending and not awaiting[case.id]:
            continue
        out[case.id] = CaseworkFlags(
            clock=clock,
            overdue_actions=sum(1 for d in dues if d <= now),
            open_actions=len(items),
            next_action_due_at=min(dues) if dues else None,
            verification_pending=pending,
            disclosures_awaiting_approval=awaiting[case.id],
        )
    return out


@dataclass(frozen=True, slots=True)
class CaseDisclosureView:
    case_id: int
    ref: str
    disclosure: DisclosureView


def disclosures_awaiting_approval(session: Session) -> list[CaseDisclosureView]:
    """Requested disclosures on every case, oldest first: a supervisor's to-do list."""
    rows = session.exec(
        select(Disclosure, Case.ref)
        .join(Case, col(Case.id) == col(Disclosure.case_id))
        .where(Disclosure.status == DisclosureStatus.REQUESTED.value)
        .order_by(col(Disclosure.requested_at), col(Disclosure.id))
    ).all()
    wanted = {row.partner_id for row, _ in rows}
    found = {
        p.id: p
        for p in session.exec(select(Partner).where(col(Partner.id).in_(wanted))).all()
        if p.id is not None
    }
    names = handles(session, [row.requested_by_id for row, _ in rows])
    return [
        CaseDisclosureView(row.case_id, ref, _disclosure_view(row, found, names))
        for row, ref in rows
    ]


def action_items(
    session: Session,
    now: datetime,
    *,
    case_id: int | None = None,
    overdue_only: bool = False,
    include_closed: bool = False,
) -> list[ActionView]:
    """Action items, soonest due first; `overdue_only` is what the handover lists."""
    statement = select(ActionItem, Case.ref).join(Case, col(Case.id) == col(ActionItem.case_id))
    if case_id is not None:
        statement = statement.where(ActionItem.case_id == case_id)
    if overdue_only or not include_closed:
        statement = statement.where(ActionItem.status == ActionStatus.OPEN.value)
    if overdue_only:
        statement = statement.where(col(ActionItem.due_at) <= now)
    rows = session.exec(statement).all()
    names = handles(session, [item.completed_by_id for item, _ in rows])
    views = [_action_view(item, ref, now, names) for item, ref in rows]
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(views, key=lambda v: (v.due_at or far, v.id))


def clocks_needing_attention(
    session: Session, now: datetime, *, config: CaseworkConfig | None = None
) -> list[CaseClockView]:
    """Every warning or breached legal clock, resolved cases included: a hold outlives the
    case, so its reminder must surface even when the case is long closed."""
    config = config or load_config(session)
    categories = [c for c, specs in config.clocks.items() if specs]
    if not categories:
        return []
    out: list[CaseClockView] = []
    statement = select(Case).where(col(Case.category).in_(categories)).order_by(col(Case.id))
    batch: list[Case] = []
    for case in session.exec(statement).yield_per(500):
        batch.append(case)
        if len(batch) == 500:
            out += _attention(session, batch, config, now)
            batch = []
    out += _attention(session, batch, config, now)
    return sorted(
        out, key=lambda v: (CLOCK_URGENCY[ClockState(v.clock.state)], v.clock.due_at, v.case_id)
    )


def _attention(
    session: Session, cases: Sequence[Case], config: CaseworkConfig, now: datetime
) -> list[CaseClockView]:
    facts = clock_facts(session, cases)
    out = []
    for case in cases:
        assert case.id is not None
        for clock in legal_clocks(facts[case.id], config, now):
            if clock.state in (ClockState.WARN, ClockState.BREACHED):
                out.append(CaseClockView(case.id, case.ref, case.status, clock))
    return out


def partners(session: Session, *, include_inactive: bool = False) -> list[PartnerView]:
    statement = select(Partner).order_by(col(Partner.name))
    if not include_inactive:
        statement = statement.where(col(Partner.active).is_(True))
    return [partner_view(p) for p in session.exec(statement).all()]

"""Post-mortems: what happened on a case, why, and what the desk will change.

A supervisor opens one from a case. Its timeline is generated from the case's own timeline and
pages: every event with its time since the case opened, the time to acknowledge, and each
escalation step with who was paged, who answered and how long the step waited. People write
the summary, the root cause, the contributing factors (a list, one line each) and action items
with an owner on the desk and a due date. A post-mortem is `draft`, then `review`, then
`final`; final needs the case resolved, a summary and a root cause, and freezes the text until
it is set back to review. Resolved sev1 and sev2 cases owe a final post-mortem.

The export never carries a case's sensitive details: it is built from titles, events, pages
and what was written in the post-mortem itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, func, select

from app.core.errors import BadInput, NotAllowed, NotFound, NothingToDo
from app.core.text import clean_text, md_cell
from app.core.times import format_instant, iso
from app.services.cases import check_title
from app.services.paging import timeline_with_pages
from app.services.sensitive import withheld_title
from app.services.shiftwork.stats import (
    ANSWER_KINDS,
    answered_at,
    first_acknowledged_at,
    format_seconds,
)
from app.services.unit_of_work import Service, Tx
from data import queries
from data.domain import Status, TimelineKind, check_day, severity_name
from data.journal import add_timeline
from data.models import Case, Page, Responder, TimelineEvent
from data.shiftwork import PostMortem, PostMortemAction
from widgets.timefmt import viewer_zone

STATUSES = ("draft", "review", "final")
OWED_SEVERITIES = (1, 2)
MAX_SECTION = 20_000
MAX_FACTOR = 500
OWN_EVENTS = (TimelineKind.POSTMORTEM.value,)
"""Timeline events the post-mortem itself adds to the case; its own timeline leaves them out."""


# --- view objects ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    offset_seconds: int  # since the case opened
    kind: str
    actor: str | None
    text: str


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """One page-out of the chain: everyone paged for one (cycle, step, round) at once."""

    sent_at: datetime
    offset_seconds: int
    cycle: int
    step: int
    round: int
    reason: str
    paged: tuple[str, ...]
    answered_by: str | None
    answered_at: datetime | None
    waited_seconds: int | None  # until the answer, else until the next step went out
    outcome: str  # answered, escalated, waiting, ended
    unanswered: int  # pages of this step nobody answered before the chain moved on


@dataclass(frozen=True, slots=True)
class ActionView:
    number: int
    title: str
    owner: str
    due_on: date
    status: str
    done_at: datetime | None


@dataclass(frozen=True)
class PostMortemView:
    ref: str
    title: str
    category: str
    severity: int
    case_status: str
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    time_to_acknowledge_seconds: int | None
    time_to_resolve_seconds: int | None
    pages_sent: int
    pages_unanswered: int
    status: str
    summary: str
    root_cause: str
    factors: tuple[str, ...]
    author: str
    created_at: datetime
    updated_at: datetime
    timeline: tuple[TimelineEntry, ...]
    escalation: tuple[EscalationStep, ...]
    actions: tuple[ActionView, ...]


# --- building the view ------------------------------------------------------------


def split_factors(text: str) -> tuple[str, ...]:
    return tuple(line for line in text.splitlines() if line.strip())


def escalation_steps(
    opened_at: datetime,
    pages: Sequence[Page],
    answers: Sequence[TimelineEvent],
    names: Mapping[int, str],
    case_status: str,
) -> tuple[EscalationStep, ...]:
    """The chain as it ran: one step per page-out, with its answer or how it moved on."""
    outcomes = answered_at([(p.sent_at, p.acknowledged_at) for p in pages], [a.at for a in answers])
    groups: dict[tuple[datetime, int, int, int, str], list[tuple[Page, datetime | None]]]
    groups = defaultdict(list)
    for page, when in zip(pages, outcomes, strict=True):
        groups[(page.sent_at, page.cycle, page.step, page.round, page.reason)].append((page, when))
    keys = sorted(groups)
    steps = []
    for index, key in enumerate(keys):
        sent_at, cycle, step, round_, reason = key
        members = groups[key]
        answered = [(when, page) for page, when in members if when is not None]
        answer_at: datetime | None = None
        answer_by: str | None = None
        if answered:
            answer_at, page = min(answered, key=lambda pair: pair[0])
            event = next((a for a in answers if a.at == answer_at), None)
            if page.acknowledged_at == answer_at or event is None:
                answer_by = names.get(page.responder_id)
            else:
                answer_by = event.actor
        next_sent = keys[index + 1][0] if index + 1 < len(keys) else None
        if answer_at is not None:
            outcome, until = "answered", answer_at
        elif next_sent is not None:
            outcome, until = "escalated", next_sent
        else:
            outcome, until = ("waiting" if case_status == Status.TRIGGERED.value else "ended"), None
        steps.append(
            EscalationStep(
                sent_at=sent_at,
                offset_seconds=int((sent_at - opened_at).total_seconds()),
                cycle=cycle,
                step=step,
                round=round_,
                reason=reason,
                paged=tuple(names.get(p.responder_id, "?") for p, _ in members),
                answered_by=answer_by,
                answered_at=answer_at,
                waited_seconds=int((until - sent_at).total_seconds()) if until else None,
                outcome=outcome,
                unanswered=sum(1 for _, when in members if when is None),
            )
        )
    return tuple(steps)


def _record(session: Session, ref: str) -> tuple[Case, PostMortem]:
    case = queries.case_by_ref(session, ref)
    if case is None:
        raise NotFound(f"no case {ref!r}")
    pm = session.exec(select(PostMortem).where(PostMortem.case_id == case.id)).first()
    if pm is None:
        raise NotFound(
            f"{case.ref} has no post-mortem; a supervisor opens one with "
            f"`vigil postmortem open {case.ref}`"
        )
    return case, pm


def postmortem_view(session: Session, ref: str, *, reveal_title: bool = False) -> PostMortemView:
    """The post-mortem of `ref`; a sensitive case's title only with `reveal_title` (the
    caller audits it: `app.services.sensitive.reveal_titles`)."""
    case, pm = _record(session, ref)
    assert case.id is not None
    assert pm.id is not None
    events = timeline_with_pages(session, case.id)
    answers = [e for e in events if e.kind in ANSWER_KINDS]
    pages = queries.pages_for(session, [case.id])
    actions = session.exec(
        select(PostMortemAction)
        .where(PostMortemAction.post_mortem_id == pm.id)
        .order_by(col(PostMortemAction.position))
    ).all()
    names = queries.handles(
        session,
        [pm.created_by_id, case.acknowledged_by_id]
        + [p.responder_id for p in pages]
        + [a.owner_id for a in actions],
    )
    first_ack_event = next((e for e in events if e.kind == TimelineKind.ACKNOWLEDGED.value), None)
    acknowledged = first_acknowledged_at(
        case, {case.id: first_ack_event.at} if first_ack_event else {}
    )
    escalation = escalation_steps(case.created_at, pages, answers, names, case.status)

    def since_open(at: datetime) -> int:
        return int((at - case.created_at).total_seconds())

    return PostMortemView(
        ref=case.ref,
        title=(
            withheld_title(case.category, case.severity)
            if case.sensitive and not reveal_title
            else case.title
        ),
        category=case.category,
        severity=case.severity,
        case_status=case.status,
        opened_at=case.created_at,
        acknowledged_at=acknowledged,
        acknowledged_by=(
            first_ack_event.actor
            if first_ack_event is not None and first_ack_event.at == acknowledged
            else names.get(case.acknowledged_by_id or 0)
        ),
        resolved_at=case.resolved_at,
        time_to_acknowledge_seconds=since_open(acknowledged) if acknowledged else None,
        time_to_resolve_seconds=since_open(case.resolved_at) if case.resolved_at else None,
        pages_sent=len(pages),
        pages_unanswered=sum(step.unanswered for step in escalation),
        status=pm.status,
        summary=pm.summary,
        root_cause=pm.root_cause,
        factors=split_factors(pm.factors),
        author=names.get(pm.created_by_id, "?"),
        created_at=pm.created_at,
        updated_at=pm.updated_at,
        timeline=tuple(
            TimelineEntry(e.at, since_open(e.at), e.kind, e.actor, e.text)
            for e in events
            if e.kind not in OWN_EVENTS
        ),
        escalation=escalation,
        actions=tuple(
            ActionView(
                a.position, a.title, names.get(a.owner_id, "?"), a.due_on, a.status, a.done_at
            )
            for a in actions
        ),
    )


@dataclass(frozen=True, slots=True)
class OwedPostMortem:
    """A resolved sev1/sev2 case without a final post-mortem (`status` None: none opened)."""

    case_id: int
    ref: str
    title: str
    severity: int
    resolved_at: datetime | None
    status: str | None


def owed_postmortems(
    session: Session, case_ids: Sequence[int] | None = None, *, reveal_titles: bool = False
) -> list[OwedPostMortem]:
    """The cases that owe a post-mortem, longest resolved first; `case_ids` limits it. A
    sensitive case's title only with `reveal_titles` (the caller audits it:
    `app.services.sensitive.reveal_titles`)."""
    if case_ids is not None and not case_ids:
        return []
    statement = (
        sa_select(
            col(Case.id),
            col(Case.ref),
            col(Case.title),
            col(Case.category),
            col(Case.sensitive),
            col(Case.severity),
            col(Case.resolved_at),
            col(PostMortem.status),
        )
        .outerjoin(PostMortem, col(PostMortem.case_id) == col(Case.id))
        .where(
            col(Case.status) == Status.RESOLVED.value,
            col(Case.severity).in_(OWED_SEVERITIES),
            col(PostMortem.id).is_(None) | (col(PostMortem.status) != "final"),
        )
        .order_by(col(Case.resolved_at), col(Case.id))
    )
    if case_ids is not None:
        statement = statement.where(col(Case.id).in_(list(case_ids)))
    return [
        OwedPostMortem(
            case_id,
            ref,
            withheld_title(category, severity) if sensitive and not reveal_titles else title,
            severity,
            resolved_at,
            status,
        )
        for case_id, ref, title, category, sensitive, severity, resolved_at, status in (
            session.execute(statement).all()
        )
    ]


def cases_owing_postmortem(
    session: Session, case_ids: Sequence[int] | None = None
) -> dict[int, str | None]:
    """Resolved sev1/sev2 cases without a final post-mortem: case id -> the status of the
    one under way (None when none was opened). `case_ids` limits the answer to those."""
    return {owed.case_id: owed.status for owed in owed_postmortems(session, case_ids)}


# --- JSON and Markdown ---------------------------------------------------------------


def postmortem_json(view: PostMortemView) -> dict[str, Any]:
    return {
        "ref": view.ref,
        "title": view.title,
        "category": view.category,
        "severity": severity_name(view.severity),
        "case_status": view.case_status,
        "status": view.status,
        "author": view.author,
        "created_at": iso(view.created_at),
        "updated_at": iso(view.updated_at),
        "opened_at": iso(view.opened_at),
        "acknowledged_at": iso(view.acknowledged_at),
        "acknowledged_by": view.acknowledged_by,
        "resolved_at": iso(view.resolved_at),
        "time_to_acknowledge_seconds": view.time_to_acknowledge_seconds,
        "time_to_resolve_seconds": view.time_to_resolve_seconds,
        "pages_sent": view.pages_sent,
        "pages_unanswered": view.pages_unanswered,
        "summary": view.summary,
        "root_cause": view.root_cause,
        "factors": list(view.factors),
        "escalation": [
            {
                "sent_at": iso(s.sent_at),
                "offset_seconds": s.offset_seconds,
                "cycle": s.cycle,
                "step": s.step,
                "round": s.round,
                "reason": s.reason,
                "paged": list(s.paged),
                "answered_by": s.answered_by,
                "answered_at": iso(s.answered_at),
                "waited_seconds": s.waited_seconds,
                "outcome": s.outcome,
                "unanswered": s.unanswered,
            }
            for s in view.escalation
        ],
        "timeline": [
            {
                "at": iso(e.at),
                "offset_seconds": e.offset_seconds,
                "kind": e.kind,
                "actor": e.actor,
                "text": e.text,
            }
            for e in view.timeline
        ],
        "actions": [
            {
                "number": a.number,
                "title": a.title,
                "owner": a.owner,
                "due_on": a.due_on.isoformat(),
                "status": a.status,
                "done_at": iso(a.done_at),
            }
            for a in view.actions
        ],
    }


def _at(at: datetime | None, zone: ZoneInfo) -> str:
    return format_instant(at, zone, seconds=True)


def _offset(seconds: int | None) -> str:
    return "-" if seconds is None else f"+{format_seconds(seconds)}"


def step_label(step: EscalationStep) -> str:
    if step.reason == "exhausted":
        return f"exhausted, round {step.round + 1}"
    if step.reason == "reassign":
        return "reassign"
    if step.reason == "delayed":
        return "delay notice"
    if step.reason == "catch-up":
        return f"step {step.step}, round {step.round + 1}, late"
    return f"step {step.step}, round {step.round + 1}"


def export_markdown(view: PostMortemView, zone_name: str = "UTC") -> str:
    """The post-mortem as Markdown, times on the wall clock of `zone_name`."""
    zone = viewer_zone(zone_name)
    ack = (
        f"{format_seconds(view.time_to_acknowledge_seconds)} "
        f"(by {view.acknowledged_by or '?'}, {_at(view.acknowledged_at, zone)})"
        if view.acknowledged_at
        else "not acknowledged"
    )
    resolve = (
        f"{format_seconds(view.time_to_resolve_seconds)} ({_at(view.resolved_at, zone)})"
        if view.resolved_at
        else f"not resolved ({view.case_status})"
    )
    out = [
        f"# Post-mortem: {view.ref} {view.title}",
        "",
        f"- Status: {view.status} (opened by {view.author}, {_at(view.created_at, zone)})",
        f"- Case: {severity_name(view.severity)}, {view.category}, {view.case_status}",
        f"- Opened: {_at(view.opened_at, zone)}",
        f"- Time to acknowledge: {ack}",
        f"- Time to resolve: {resolve}",
        f"- Pages: {view.pages_sent} sent, {view.pages_unanswered} unanswered",
        "",
        "## Summary",
        "",
        view.summary.strip() or "_Not written yet._",
        "",
        "## Escalation",
        "",
    ]
    if view.escalation:
        out += ["| Sent | Since open | Step | Paged | Outcome |", "| --- | --- | --- | --- | --- |"]
        for s in view.escalation:
            if s.outcome == "answered":
                outcome = f"answered by {s.answered_by} after {format_seconds(s.waited_seconds)}"
            elif s.outcome == "escalated":
                outcome = f"no answer; next step after {format_seconds(s.waited_seconds)}"
            else:
                outcome = "still waiting" if s.outcome == "waiting" else "no answer"
            out.append(
                f"| {_at(s.sent_at, zone)} | {_offset(s.offset_seconds)} | {step_label(s)} "
                f"| {', '.join(s.paged)} | {outcome} |"
            )
    else:
        out.append("No pages were sent.")
    out += [
        "",
        "## Timeline",
        "",
        "| Time | Since open | Event | By |",
        "| --- | --- | --- | --- |",
    ]
    for e in view.timeline:
        out.append(
            f"| {_at(e.at, zone)} | {_offset(e.offset_seconds)} | {md_cell(e.text)} "
            f"| {e.actor or '-'} |"
        )
    out += ["", "## Root cause", "", view.root_cause.strip() or "_Not written yet._", ""]
    out += ["## Contributing factors", ""]
    out += [f"- {factor}" for factor in view.factors] or ["_None recorded._"]
    out += ["", "## Action items", ""]
    if view.actions:
        out += ["| # | Action | Owner | Due | Status |", "| --- | --- | --- | --- | --- |"]
        for a in view.actions:
            out.append(
                f"| {a.number} | {md_cell(a.title)} | {a.owner} | {a.due_on.isoformat()} "
                f"| {a.status} |"
            )
    else:
        out.append("_None yet._")
    return "\n".join(out) + "\n"


# --- the service ------------------------------------------------------------------


def _section(field: str, text: str) -> str:
    return clean_text(field, text, MAX_SECTION, required=False)


def clean_factors(factors: Sequence[str]) -> str:
    """Factors as stored: one per line, each a single non-empty line."""
    cleaned = []
    for index, factor in enumerate(factors):
        text = " ".join(str(factor).split())
        if not text:
            raise BadInput(f"factors[{index}]", "expected a non-empty line")
        if len(text) > MAX_FACTOR:
            raise BadInput(f"factors[{index}]", f"at most {MAX_FACTOR} characters, got {len(text)}")
        cleaned.append(text)
    return "\n".join(cleaned)


class PostMortemService(Service):
    """Post-mortem changes, on the case service's plumbing: one transaction that locks the
    audit chain, checks the actor's role, changes the post-mortem, feeds the case's change log
    and appends the audit record."""

    @contextmanager
    def _editing(self, actor: str, ref: str, verb: str) -> Iterator[tuple[Tx, Case, PostMortem]]:
        with self.work(actor) as tx:
            if not tx.supervising:
                raise NotAllowed(f"only supervisors and admins may {verb} a post-mortem")
            case = tx.case(ref)
            pm = tx.session.exec(
                select(PostMortem).where(PostMortem.case_id == case.id).with_for_update()
            ).first()
            if pm is None:
                raise NotFound(f"{case.ref} has no post-mortem; open one first")
            yield tx, case, pm

    def _save(self, tx: Tx, case: Case, pm: PostMortem, action: str, detail: dict[str, Any]) -> int:
        pm.updated_at = tx.now
        tx.session.add(pm)
        tx.finish(case, action, detail)
        assert case.id is not None
        return case.id

    def open_for(self, actor: str, ref: str, summary: str = "") -> None:
        text = _section("summary", summary)
        with self.work(actor) as tx:
            if not tx.supervising:
                raise NotAllowed("only supervisors and admins may open a post-mortem")
            case = tx.case(ref)
            existing = tx.session.exec(select(PostMortem).where(PostMortem.case_id == case.id))
            if existing.first() is not None:
                raise NothingToDo(f"{case.ref} already has a post-mortem")
            assert case.id is not None
            assert tx.actor.id is not None
            tx.session.add(
                PostMortem(
                    case_id=case.id,
                    summary=text,
                    created_by_id=tx.actor.id,
                    created_at=tx.now,
                    updated_at=tx.now,
                )
            )
            self._event(tx, case, f"Post-mortem opened by {tx.actor.handle}")
            tx.finish(case, "postmortem.open", {})

    @staticmethod
    def _event(tx: Tx, case: Case, text: str) -> None:
        add_timeline(tx.session, case, tx.now, TimelineKind.POSTMORTEM, text, tx.actor.handle)

    def edit(
        self,
        actor: str,
        ref: str,
        *,
        summary: str | None = None,
        root_cause: str | None = None,
        factors: Sequence[str] | None = None,
    ) -> None:
        """Replace the sections given; the others stay as they are."""
        wanted: dict[str, str] = {}
        if summary is not None:
            wanted["summary"] = _section("summary", summary)
        if root_cause is not None:
            wanted["root_cause"] = _section("root_cause", root_cause)
        if factors is not None:
            wanted["factors"] = clean_factors(factors)
        if not wanted:
            raise BadInput("sections", "expected at least one of summary, root cause, factors")
        with self._editing(actor, ref, "edit") as (tx, case, pm):
            if pm.status == "final":
                raise NotAllowed(f"the post-mortem of {case.ref} is final; set it to review first")
            changed = sorted(k for k, v in wanted.items() if getattr(pm, k) != v)
            if not changed:
                raise NothingToDo(f"the post-mortem of {case.ref} already says that")
            for key in changed:
                setattr(pm, key, wanted[key])
            self._save(tx, case, pm, "postmortem.edit", {"sections": changed})

    def set_status(self, actor: str, ref: str, status: str) -> None:
        wanted = status.strip().lower()
        if wanted not in STATUSES:
            raise BadInput("status", f"expected one of {', '.join(STATUSES)}, got {status!r}")
        with self._editing(actor, ref, "change the status of") as (tx, case, pm):
            if pm.status == wanted:
                raise NothingToDo(f"the post-mortem of {case.ref} is already {wanted}")
            if wanted == "final":
                missing = [
                    name
                    for name, text in (("summary", pm.summary), ("root cause", pm.root_cause))
                    if not text.strip()
                ]
                if case.status != Status.RESOLVED.value:
                    raise NotAllowed(f"{case.ref} is {case.status}; resolve it before final")
                if missing:
                    raise NotAllowed(
                        f"the post-mortem of {case.ref} needs a {' and a '.join(missing)} "
                        "before final"
                    )
            previous, pm.status = pm.status, wanted
            self._event(tx, case, f"Post-mortem {previous} → {wanted} by {tx.actor.handle}")
            self._save(tx, case, pm, "postmortem.status", {"from": previous, "to": wanted})

    def add_action(self, actor: str, ref: str, title: str, owner: str, due_on: date) -> int:
        """A follow-up with an owner on the desk and a due date; returns its number."""
        text = check_title(title)
        with self._editing(actor, ref, "add action items to") as (tx, case, pm):
            if pm.status == "final":
                raise NotAllowed(f"the post-mortem of {case.ref} is final; set it to review first")
            today = tx.now.astimezone(viewer_zone(tx.actor.timezone)).date()
            if due_on < today:
                raise BadInput("due", f"expected a date from today ({today}) on, got {due_on}")
            try:
                check_day(due_on)
            except ValueError as exc:
                raise BadInput("due", str(exc)) from None
            person = tx.session.exec(
                select(Responder).where(Responder.handle == owner.strip())
            ).first()
            if person is None or not person.active or person.id is None:
                raise NotFound(f"no active responder {owner!r} to own the action item")
            assert pm.id is not None
            number = (
                tx.session.exec(
                    select(func.max(PostMortemAction.position)).where(
                        PostMortemAction.post_mortem_id == pm.id
                    )
                ).one()
                or 0
            ) + 1
            tx.session.add(
                PostMortemAction(
                    post_mortem_id=pm.id,
                    position=number,
                    title=text,
                    owner_id=person.id,
                    due_on=due_on,
                    created_at=tx.now,
                )
            )
            self._save(
                tx,
                case,
                pm,
                "postmortem.action",
                {"number": number, "owner": person.handle, "due_on": due_on.isoformat()},
            )
        return number

    def complete_action(self, actor: str, ref: str, number: int) -> None:
        """Mark an action item done: its owner, or a supervisor."""
        with self.work(actor) as tx:
            case = tx.case(ref)
            pm = tx.session.exec(select(PostMortem).where(PostMortem.case_id == case.id)).first()
            if pm is None:
                raise NotFound(f"{case.ref} has no post-mortem")
            item = tx.session.exec(
                select(PostMortemAction).where(
                    PostMortemAction.post_mortem_id == pm.id, PostMortemAction.position == number
                )
            ).first()
            if item is None:
                raise NotFound(f"the post-mortem of {case.ref} has no action item {number}")
            if not tx.supervising and item.owner_id != tx.actor.id:
                raise NotAllowed("only the action item's owner or a supervisor may complete it")
            if item.status == "done":
                raise NothingToDo(f"action item {number} of {case.ref} is already done")
            item.status, item.done_at = "done", tx.now
            tx.session.add(item)
            self._save(tx, case, pm, "postmortem.action_done", {"number": number})

"""Recording a page: one `Page` per responder and one `Delivery` per contact channel.

Shared by the escalation engine and by reassign, inside the caller's transaction.
Console and desktop deliveries are carried out by the person's own console (that is
where their screen and desktop are); webhook and Apprise deliveries by the engine's
outbox. When each contact is told follows the person's notification rules and quiet
hours (`app.rules.notify`): an outbox row that must wait is ``held`` until it is due.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.rules.notify import Contact, Notice, Profile, notices, urgency_of
from app.services.policies import policy_of
from data import queries
from data.clock import how_long
from data.domain import OUTBOX_CHANNELS, TimelineKind
from data.journal import timeline_row
from data.models import Case, ContactMethod, Delivery, Page, Responder, TimelineEvent

HELD = "held"
"""An outbox row not due yet (a rule's delay, quiet hours); it turns pending when due."""
UNSETTLED = frozenset({"pending", HELD})
"""Delivery statuses that will still change: the row waits for its sender, or its time."""
LATE_AFTER = timedelta(minutes=2)
"""A case paged this long after its step was due counts as delayed even when no step was
overtaken: the supervisors are told, and its "paged" line says how late (a busy engine, or
a case retried after an error, stays well inside it)."""
WRITTEN_BEFORE_PAGING = frozenset(
    kind.value
    for kind in (
        TimelineKind.OPENED,
        TimelineKind.DUPLICATE,
        TimelineKind.REOPENED,
        TimelineKind.ESCALATE,
        TimelineKind.REASSIGNED,
        TimelineKind.SNOOZE_END,
        TimelineKind.ACK_TIMEOUT,
        TimelineKind.RESTART,
        TimelineKind.SKIPPED,
        TimelineKind.CATCH_UP,
        TimelineKind.DELAYED,
        TimelineKind.FALLBACK_POLICY,
        TimelineKind.EXHAUSTED,
        TimelineKind.REPAIR,
        TimelineKind.PAGED,
    )
)
"""Lines a change writes before it pages, in the same transaction."""
APART_FROM_TIMELINE = frozenset({"catch-up", "delayed"})
"""Reasons of pages the timeline tells of in a line of their own (the engine's catch-up
line), not as "paged" lines."""


def contacts_of(session: Session, responder_ids: Sequence[int]) -> dict[int, tuple[Contact, ...]]:
    """Each responder's contact methods, in order, as the plain values notification rules
    work with. Only those columns are read: nothing sealed is opened."""
    found: dict[int, list[Contact]] = {rid: [] for rid in responder_ids}
    if responder_ids:
        rows = session.exec(
            select(
                col(ContactMethod.responder_id),
                col(ContactMethod.id),
                col(ContactMethod.kind),
                col(ContactMethod.name),
            )
            .where(col(ContactMethod.responder_id).in_(responder_ids))
            .order_by(col(ContactMethod.position))
        ).all()
        for responder_id, contact_id, kind, name in rows:
            found[responder_id].append(Contact(contact_id or 0, kind, name or kind))
    return {rid: tuple(contacts) for rid, contacts in found.items()}


def profile_of(responder: Responder) -> Profile:
    return Profile.of(responder.timezone, responder.quiet_hours, responder.notify)


def notice_status(notice: Notice) -> str:
    """An outbox row that must wait is held; console and desktop rows wait as pending
    (their console claims them once due)."""
    return HELD if notice.held and notice.kind in OUTBOX_CHANNELS else "pending"


def delivery_key(
    ref: str, cycle: int, step: int, round_: int, handle: str, contact_id: int | None
) -> str:
    """The idempotency key of one page to one contact: stable across every attempt."""
    return f"{ref}:{cycle}:{step}:{round_}:{handle}:{contact_id}"


def paged_event(
    handles: Sequence[str],
    *,
    cycle: int,
    step: int,
    round_: int,
    reason: str,
    late_by: timedelta | None = None,
) -> tuple[str, dict[str, Any]]:
    """The text and data of the timeline's "paged" line; `late_by` when escalation was
    delayed and this page is that late."""
    labels = {"reassign": "reassign page", "exhausted": "escalation exhausted"}
    label = labels.get(reason, f"step {step}, round {round_ + 1}")
    data: dict[str, Any] = {"step": step, "round": round_, "cycle": cycle, "reason": reason}
    if late_by is not None:
        label += f", {how_long(late_by)} late"
        data["late_by_seconds"] = int(late_by.total_seconds())
    return f"Paged {', '.join(handles)} ({label})", data


def page_responders(
    session: Session,
    case: Case,
    responders: Sequence[Responder],
    *,
    step: int,
    round_: int,
    due_at: datetime,
    now: datetime,
    reason: str = "escalation",
) -> list[Page]:
    """Record pages for `responders`; returns the pages made (reachable people only)."""
    assert case.id is not None
    ids = [r.id for r in responders if r.id is not None]
    contacts = contacts_of(session, ids)
    urgency = urgency_of(case.severity, policy_of(case).high_urgency).value
    pages: list[Page] = []
    for responder in responders:
        assert responder.id is not None
        ways = contacts[responder.id]
        if not ways:
            continue
        page = Page(
            case_id=case.id,
            responder_id=responder.id,
            cycle=case.escalation_cycle,
            step=step,
            round=round_,
            reason=reason,
            due_at=due_at,
            sent_at=now,
        )
        session.add(page)
        session.flush()
        assert page.id is not None
        for notice in notices(ways, profile_of(responder), urgency, now):
            session.add(
                Delivery(
                    page_id=page.id,
                    channel=notice.kind,
                    contact_id=notice.contact_id,
                    status=notice_status(notice),
                    next_attempt_at=notice.due_at,
                    idempotency_key=delivery_key(
                        case.ref,
                        case.escalation_cycle,
                        step,
                        round_,
                        responder.handle,
                        notice.contact_id,
                    ),
                )
            )
        pages.append(page)
    return pages


def timeline_with_pages(session: Session, case_id: int) -> list[TimelineEvent]:
    """A case's timeline, oldest first, with a "paged" line for each step's pages.

    Those lines are not stored: a page row says who was paged, for which step and when,
    so the timeline reads them from the pages (a burst writes no second row per page).
    A line stored by an earlier version for the same step is kept and not said twice.
    The stored lines keep their order; at one instant a "paged" line follows what a change
    writes before it pages (the opening, a join, the engine's own lines) and precedes the
    rest (an acknowledgement, a note).
    """
    stored = queries.timeline_of(session, case_id)
    said = {_step_key(event.data) for event in stored if event.kind == TimelineKind.PAGED.value}
    caught_up = {event.at for event in stored if event.kind == TimelineKind.CATCH_UP.value}
    rows = session.execute(
        sa_select(
            col(Page.responder_id),
            col(Page.cycle),
            col(Page.step),
            col(Page.round),
            col(Page.reason),
            col(Page.due_at),
            col(Page.sent_at),
        )
        .where(col(Page.case_id) == case_id, col(Page.reason).not_in(APART_FROM_TIMELINE))
        .order_by(col(Page.id))  # in the order they were paged
    ).all()
    names = queries.handles(session, [row[0] for row in rows])
    steps: dict[tuple[int, int, int, str, datetime], list[tuple[str, datetime]]] = {}
    for responder_id, cycle, step, round_, reason, due_at, sent_at in rows:
        paged = steps.setdefault((cycle, step, round_, reason, sent_at), [])
        paged.append((names.get(responder_id, "?"), due_at))
    derived: list[TimelineEvent] = []
    for (cycle, step, round_, reason, sent_at), paged in steps.items():
        if (cycle, step, round_, reason) in said:
            continue
        text, data = paged_event(
            [handle for handle, _due in paged],
            cycle=cycle,
            step=step,
            round_=round_,
            reason=reason,
            late_by=_held_up_by(paged[0][1], sent_at, caught_up),
        )
        row = timeline_row(case_id, sent_at, TimelineKind.PAGED, text, None, data)
        derived.append(TimelineEvent(**row))
    return _merged(stored, sorted(derived, key=lambda event: event.at))


def _merged(stored: list[TimelineEvent], derived: list[TimelineEvent]) -> list[TimelineEvent]:
    """The stored lines in their order, each derived line put before the first stored line
    that is later, or as early and written after paging (`WRITTEN_BEFORE_PAGING`)."""
    merged: list[TimelineEvent] = []
    waiting = iter(derived)
    line = next(waiting, None)
    for event in stored:
        while line is not None and (
            line.at < event.at or (line.at == event.at and event.kind not in WRITTEN_BEFORE_PAGING)
        ):
            merged.append(line)
            line = next(waiting, None)
        merged.append(event)
    if line is not None:
        merged.append(line)
    merged.extend(waiting)
    return merged


def _step_key(data: dict[str, Any]) -> tuple[int, int, int, str]:
    return (
        int(data.get("cycle", 0)),
        int(data.get("step", 0)),
        int(data.get("round", 0)),
        str(data.get("reason", "escalation")),
    )


def _held_up_by(due_at: datetime, sent_at: datetime, caught_up: set[datetime]) -> timedelta | None:
    """How late a step's page went out when escalation was held up (None: on time): a
    page `LATE_AFTER` late or more, or one sent as the engine caught up on overtaken steps
    (its catch-up line at the same instant) a second late or more."""
    late = sent_at - due_at
    if late >= LATE_AFTER or (late >= timedelta(seconds=1) and sent_at in caught_up):
        return late
    return None

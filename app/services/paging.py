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

from sqlmodel import Session, col, select

from app.rules.notify import Contact, Notice, Profile, notices, urgency_of
from app.services.policies import policy_of
from data.clock import how_long
from data.domain import OUTBOX_CHANNELS, TimelineKind
from data.journal import add_timeline
from data.models import Case, ContactMethod, Delivery, Page, Responder

HELD = "held"
"""An outbox row not due yet (a rule's delay, quiet hours); it turns pending when due."""


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
    """The text and data of the timeline's "paged" event (shared with the engine's bulk
    path); `late_by` when escalation was delayed and this page is that late."""
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
    if pages:
        paged_ids = {p.responder_id for p in pages}
        text, data = paged_event(
            [r.handle for r in responders if r.id in paged_ids],
            cycle=case.escalation_cycle,
            step=step,
            round_=round_,
            reason=reason,
        )
        add_timeline(session, case, now, TimelineKind.PAGED, text, None, data)
    return pages

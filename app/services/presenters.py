"""Turn stored rows into plain view objects (for widgets) and JSON (for the command line)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from app.core.times import iso
from app.services.paging import timeline_with_pages
from app.services.policies import (
    policy_of,
    queue_sla_due,
    sla_deadlines,
    sla_met_at,
    sla_table,
)
from data import queries
from data.domain import Status, severity_name
from data.models import Case, Delivery, Page, Responder
from widgets.timefmt import UTC_ZONE, viewer_zone
from widgets.views import (
    CaseDetailView,
    NoteView,
    PageView,
    QueueRow,
    TimelineView,
)

HIDDEN = "[sensitive: hidden until revealed]"


def viewer_zone_of(session: Session, handle: str) -> ZoneInfo:
    """The viewer's own zone (`Responder.timezone`), else UTC: every command that prints a
    time asks, so it lives here, not beside the calendar's tables."""
    zone = session.exec(select(Responder.timezone).where(Responder.handle == handle)).first()
    return viewer_zone(zone) if zone else UTC_ZONE


def _page_views(
    pages: Sequence[Page], deliveries: Sequence[Delivery], names: dict[int, str]
) -> dict[int, list[PageView]]:
    by_page: dict[int, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        by_page[delivery.page_id].append(delivery)
    views: dict[int, list[PageView]] = defaultdict(list)
    for page in pages:
        assert page.id is not None
        views[page.case_id].append(
            PageView(
                handle=names.get(page.responder_id, "?"),
                step=page.step,
                round=page.round,
                sent_at=page.sent_at,
                reason=page.reason,
                channels=tuple((d.channel, d.status) for d in by_page[page.id]),
                due_at=page.due_at,
            )
        )
    return views


def load_pages(session: Session, case_ids: Sequence[int]) -> dict[int, list[PageView]]:
    pages = queries.pages_for(session, case_ids)
    deliveries = queries.deliveries_for(session, [p.id for p in pages if p.id is not None])
    names = queries.handles(session, [p.responder_id for p in pages])
    return _page_views(pages, deliveries, names)


def case_json(
    session: Session,
    case: Case,
    *,
    pages: list[PageView] | None = None,
    names: dict[int, str] | None = None,
    sla: dict[int, tuple[int, int]] | None = None,
    with_details: bool = False,
) -> dict[str, Any]:
    """The contract's JSON of a case. Sensitive details are never included here."""
    assert case.id is not None
    if names is None:
        names = queries.handles(session, [case.assignee_id, case.acknowledged_by_id])
    if pages is None:
        pages = load_pages(session, [case.id]).get(case.id, [])
    ack_by, respond_by = sla_deadlines(case, sla if sla is not None else sla_table(session))
    body: dict[str, Any] = {
        "ref": case.ref,
        "title": case.title,
        "category": case.category,
        "severity": severity_name(case.severity),
        "status": case.status,
        "stage": case.stage,
        "assignee": names.get(case.assignee_id) if case.assignee_id else None,
        "sensitive": case.sensitive,
        "created_at": iso(case.created_at),
        "acknowledged_at": iso(case.acknowledged_at),
        "acknowledged_by": (
            names.get(case.acknowledged_by_id) if case.acknowledged_by_id else None
        ),
        "resolved_at": iso(case.resolved_at),
        "escalation_step": case.escalation_step,
        "escalation_round": case.escalation_round,
        "escalation_cycle": case.escalation_cycle,
        "next_escalation_at": iso(case.next_escalation_at),
        "exhausted": case.exhausted,
        "policy": policy_of(case).name,
        "dedup_key": case.dedup_key,
        "sla_ack_due_at": iso(ack_by),
        "sla_respond_due_at": iso(respond_by),
        "pages": [
            {
                "handle": p.handle,
                "step": p.step,
                "round": p.round,
                "reason": p.reason,
                "sent_at": iso(p.sent_at),
                "late_by_seconds": (
                    max(0, int((p.sent_at - p.due_at).total_seconds())) if p.due_at else 0
                ),
                "channels": [{"channel": c, "status": s} for c, s in p.channels],
            }
            for p in pages
        ],
    }
    if with_details:
        body["links"] = [{"href": href, "text": text} for text, href in case_links(session, case)]
        if not case.sensitive:
            body["details"] = queries.case_details(session, case)
        notes, timeline = notes_and_timeline(session, case.id)
        body["notes"] = [{"at": iso(n.at), "author": n.author, "body": n.body} for n in notes]
        body["timeline"] = [
            {"at": iso(e.at), "kind": e.kind, "actor": e.actor, "text": e.text} for e in timeline
        ]
    return body


def notes_and_timeline(
    session: Session, case_id: int
) -> tuple[tuple[NoteView, ...], tuple[TimelineView, ...]]:
    """A case's notes and timeline, oldest first: shown alike for a sensitive case (only
    its details wait for a reveal)."""
    notes = queries.notes_of(session, case_id)
    authors = queries.handles(session, [n.author_id for n in notes])
    return (
        tuple(
            NoteView(at=n.created_at, author=authors.get(n.author_id, "?"), body=n.body)
            for n in notes
        ),
        tuple(
            TimelineView(at=e.at, kind=e.kind, actor=e.actor, text=e.text)
            for e in timeline_with_pages(session, case_id)
        ),
    )


def case_links(session: Session, case: Case) -> tuple[tuple[str, str], ...]:
    """The links a sender attached to the case, as (text, address), in the sender's order."""
    from data.intake import CaseLink  # intake's tables: `vigil cases` reads no links

    rows = session.exec(
        select(CaseLink).where(CaseLink.case_id == case.id).order_by(col(CaseLink.position))
    ).all()
    return tuple((row.text, row.href) for row in rows)


def cases_json(session: Session, cases: Sequence[Case]) -> list[dict[str, Any]]:
    ids = [c.id for c in cases if c.id is not None]
    pages = load_pages(session, ids)
    names = queries.handles(
        session, [c.assignee_id for c in cases] + [c.acknowledged_by_id for c in cases]
    )
    sla = sla_table(session)
    return [
        case_json(session, c, pages=pages.get(c.id or 0, []), names=names, sla=sla) for c in cases
    ]


def queue_rows(
    session: Session,
    cases: Sequence[Case],
    viewer_id: int | None,
    now: datetime | None = None,
    sort: str = "queue",
) -> list[QueueRow]:
    """The queue's rows, each with its key in the order `sort` names; with `now`, each
    carries its casework flags as of then (its most urgent legal clock, its earliest due
    open action item)."""
    from app.services.casework.views import overdue_summary  # casework: the queue's, not the CLI's

    names = queries.handles(session, [c.assignee_id for c in cases])
    ids = [c.id for c in cases if c.id is not None]
    flags = overdue_summary(session, cases, now) if now is not None and ids else {}
    sla = sla_table(session)
    paged_me = (
        queries.paged_unacknowledged(session, viewer_id, ids) if viewer_id is not None else set()
    )
    rows = []
    for case in cases:
        assert case.id is not None
        flag = flags.get(case.id)
        clock = flag.clock if flag is not None else None
        rows.append(
            QueueRow(
                case_id=case.id,
                ref=case.ref,
                severity=case.severity,
                category=case.category,
                title=case.title,
                status=case.status,
                assignee=names.get(case.assignee_id) if case.assignee_id else None,
                escalation_step=case.escalation_step,
                escalation_round=case.escalation_round,
                created_at=case.created_at,
                sla_due_at=queue_sla_due(case, sla),
                exhausted=case.exhausted,
                paged_to_me=case.id in paged_me and case.status == Status.TRIGGERED.value,
                sensitive=case.sensitive,
                stage=case.stage,
                version=case.version,
                clock_kind=clock.kind if clock is not None else "",
                clock_due_at=clock.due_at if clock is not None else None,
                clock_reminder_at=clock.reminder_at if clock is not None else None,
                action_due_at=flag.next_action_due_at if flag is not None else None,
                awaiting_approval=flag.disclosures_awaiting_approval if flag is not None else 0,
                sort_key=queries.queue_key(case, sort),
            )
        )
    return rows


def case_detail(
    session: Session, case: Case, *, revealed_details: str | None = None
) -> CaseDetailView:
    """The detail pane's view; sensitive details stay None unless the caller revealed them."""
    from app.services.shiftwork.stats import sla_checks

    assert case.id is not None
    names = queries.handles(session, [case.assignee_id, case.acknowledged_by_id])
    ack, respond = sla_checks(case.severity, case.created_at, *sla_met_at(case), sla_table(session))
    notes, timeline = notes_and_timeline(session, case.id)
    details = revealed_details if case.sensitive else queries.case_details(session, case)
    policy = policy_of(case)
    return CaseDetailView(
        case_id=case.id,
        ref=case.ref,
        title=case.title,
        category=case.category,
        severity=case.severity,
        status=case.status,
        stage=case.stage,
        assignee=names.get(case.assignee_id) if case.assignee_id else None,
        sensitive=case.sensitive,
        details=details,
        created_at=case.created_at,
        acknowledged_at=case.acknowledged_at,
        acknowledged_by=names.get(case.acknowledged_by_id) if case.acknowledged_by_id else None,
        resolved_at=case.resolved_at,
        sla_ack_due_at=ack.due_at,
        sla_respond_due_at=respond.due_at,
        sla_ack_met_at=ack.met_at,
        sla_respond_met_at=respond.met_at,
        escalation_step=case.escalation_step,
        escalation_round=case.escalation_round,
        step_count=len(policy.steps),
        next_escalation_at=case.next_escalation_at,
        exhausted=case.exhausted,
        policy=policy.name,
        pages=tuple(load_pages(session, [case.id]).get(case.id, [])),
        timeline=timeline,
        notes=notes,
        revealed=case.sensitive and revealed_details is not None,
        links=case_links(session, case),
        snoozed_until=case.snoozed_until,
        snooze_reason=case.snooze_reason,
    )

"""Policy snapshots and SLA targets: what a case freezes when it triggers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from app.rules.notify import parse_high_urgency
from data.domain import Status
from data.models import Case, Policy, PolicyStep, Routing, SlaTarget

# Used when neither the case, its category nor the default route names a policy:
# a page is never silently dropped, so the supervisors on duty get it.
FALLBACK_POLICY: dict[str, Any] = {
    "name": "(fallback: supervisors)",
    "repeat": 3,
    "ack_timeout_seconds": None,
    "steps": [{"delay_seconds": 300, "targets": ["role:supervisor"], "require_all": False}],
}

DEFAULT_SLA: dict[int, tuple[int, int]] = {
    1: (5 * 60, 30 * 60),
    2: (15 * 60, 2 * 3600),
    3: (60 * 60, 8 * 3600),
    4: (4 * 3600, 24 * 3600),
}


def snapshot_policy(session: Session, policy: Policy) -> dict[str, Any]:
    steps = session.exec(
        select(PolicyStep)
        .where(PolicyStep.policy_id == policy.id)
        .order_by(col(PolicyStep.position))
    ).all()
    urgency: dict[str, Any] = {}
    if policy.high_urgency:
        urgency["high_urgency"] = list(parse_high_urgency(policy.high_urgency))
    return {
        **urgency,
        "name": policy.name,
        "repeat": policy.repeat,
        "ack_timeout_seconds": policy.ack_timeout_seconds,
        "steps": [
            {
                "delay_seconds": step.delay_seconds,
                "targets": list(step.targets),
                "require_all": step.require_all,
            }
            for step in steps
        ],
    }


def route_policy(session: Session, category: str, explicit: str | None) -> Policy | None:
    """The explicit policy, else the category's route, else the default route."""
    if explicit:
        return session.exec(select(Policy).where(Policy.name == explicit)).first()
    for key in (category, "default"):
        route = session.exec(select(Routing).where(Routing.category == key)).first()
        if route is not None:
            return session.get(Policy, route.policy_id)
    return None


def sla_table(session: Session) -> dict[int, tuple[int, int]]:
    table = dict(DEFAULT_SLA)
    for row in session.exec(select(SlaTarget)).all():
        table[row.severity] = (row.ack_seconds, row.respond_seconds)
    return table


def sla_deadlines(
    case: Case, sla: dict[int, tuple[int, int]]
) -> tuple[datetime | None, datetime | None]:
    """(acknowledge by, respond by) for a case."""
    ack_seconds, respond_seconds = sla.get(case.severity, DEFAULT_SLA[4])
    return (
        case.created_at + timedelta(seconds=ack_seconds),
        case.created_at + timedelta(seconds=respond_seconds),
    )


def sla_met_at(case: Case) -> tuple[datetime | None, datetime | None]:
    """When the case met its (acknowledge, respond) SLAs as the queue and the case pane
    show them, None while not yet.

    Responded: at the first response (the first note, stage change or resolve once the
    case is acknowledged), the same instant `vigil stats` and the handover count; resolving
    later never moves it. Acknowledged: at the acknowledgement that holds now (resolving
    an unacknowledged case acknowledges it; a reassigned case waits for a new one).
    """
    return case.acknowledged_at, case.first_response_at


def queue_sla_due(case: Case, sla: dict[int, tuple[int, int]]) -> datetime | None:
    """The deadline the queue counts down: acknowledge while triggered, respond after, and
    nothing once both are met (by `sla_met_at`)."""
    ack_by, respond_by = sla_deadlines(case, sla)
    acked, responded = sla_met_at(case)
    if case.status == Status.TRIGGERED.value or acked is None:
        return ack_by
    if responded is None:
        return respond_by
    return None

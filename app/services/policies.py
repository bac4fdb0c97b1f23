"""Policy snapshots and SLA targets: what a case freezes when it triggers."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.rules.notify import parse_high_urgency
from data.db import held_for_transaction
from data.domain import DEFAULT_HIGH_URGENCY, Status
from data.models import Case, Policy, PolicyStep, Routing, SlaTarget

# Used when neither the case, its category nor the default route names a policy:
# a page is never silently dropped, so the supervisors on duty get it.
FALLBACK_POLICY: dict[str, Any] = {
    "name": "(fallback: supervisors)",
    "repeat": 3,
    "ack_timeout_seconds": None,
    "steps": [{"delay_seconds": 300, "targets": ["role:supervisor"], "require_all": False}],
}

# --- the frozen policy, read ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotStep:
    """One step of a frozen policy, as stored (no minimum delay applied)."""

    delay_seconds: int
    targets: tuple[str, ...]
    require_all: bool = False
    """Whether the step stays triggered until every paged target acknowledges."""


@dataclass(frozen=True, slots=True)
class PolicySnapshot:
    """A case's `policy_snapshot`, read once and checked: what `frozen_policy` made.

    A key left out reads as its default (an older snapshot, or `{}`, has none of them); a
    key present with a wrong value is refused by `of`, naming its path."""

    name: str | None = None
    steps: tuple[SnapshotStep, ...] = ()
    repeat: int = 0
    ack_timeout_seconds: int | None = None
    high_urgency: tuple[int, ...] = DEFAULT_HIGH_URGENCY
    """The severities paged at high urgency (the policy's, else sev1 and sev2)."""

    @classmethod
    def of(cls, snapshot: object) -> PolicySnapshot:
        """Check a stored snapshot; raise ValueError naming the key path that is wrong."""
        if not isinstance(snapshot, dict):
            raise ValueError(f"policy_snapshot: expected an object, got {type(snapshot).__name__}")
        name = snapshot.get("name")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"policy_snapshot.name: expected a string, got {name!r}")
        raw_steps = snapshot.get("steps", [])
        if not isinstance(raw_steps, list):
            raise ValueError(f"policy_snapshot.steps: expected a list, got {raw_steps!r}")
        steps = tuple(_snapshot_step(raw, index) for index, raw in enumerate(raw_steps))
        timeout = snapshot.get("ack_timeout_seconds")
        high = snapshot.get("high_urgency", list(DEFAULT_HIGH_URGENCY))
        if not isinstance(high, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in high
        ):
            raise ValueError(
                f"policy_snapshot.high_urgency: expected a list of severities, got {high!r}"
            )
        return cls(
            name=name,
            steps=steps,
            repeat=_whole(snapshot.get("repeat", 0), "policy_snapshot.repeat"),
            ack_timeout_seconds=(
                None if timeout is None else _whole(timeout, "policy_snapshot.ack_timeout_seconds")
            ),
            high_urgency=tuple(high),
        )


def _whole(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: expected a whole number of at least 0, got {value!r}")
    return value


def _snapshot_step(raw: object, index: int) -> SnapshotStep:
    where = f"policy_snapshot.steps[{index}]"
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected an object, got {raw!r}")
    delay = _whole(raw.get("delay_seconds"), f"{where}.delay_seconds")
    targets = raw.get("targets")
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise ValueError(f"{where}.targets: expected a list of strings, got {targets!r}")
    require_all = raw.get("require_all", False)
    if not isinstance(require_all, bool):
        raise ValueError(f"{where}.require_all: expected true or false, got {require_all!r}")
    return SnapshotStep(delay, tuple(targets), require_all)


FALLBACK_SNAPSHOT = PolicySnapshot.of(FALLBACK_POLICY)


def policy_of(case: Case) -> PolicySnapshot:
    """The policy `case` froze when it triggered. A snapshot that cannot be read (one
    changed by hand in the database) reads as the fallback policy, the one the escalation
    engine then escalates it with (and reports, `app.engine.planning`)."""
    try:
        return PolicySnapshot.of(case.policy_snapshot)
    except ValueError:
        return FALLBACK_SNAPSHOT


DEFAULT_SLA: dict[int, tuple[int, int]] = {
    1: (5 * 60, 30 * 60),
    2: (15 * 60, 2 * 3600),
    3: (60 * 60, 8 * 3600),
    4: (4 * 3600, 24 * 3600),
}


def frozen_policy(
    name: str,
    repeat: int,
    ack_timeout_seconds: int | None,
    high_urgency: str | None,
    steps: Sequence[tuple[int, Sequence[str], bool]],
) -> dict[str, Any]:
    """What a case freezes of its policy: the policy's fields and its steps, in order."""
    urgency: dict[str, Any] = {}
    if high_urgency:
        urgency["high_urgency"] = list(parse_high_urgency(high_urgency))
    return {
        **urgency,
        "name": name,
        "repeat": repeat,
        "ack_timeout_seconds": ack_timeout_seconds,
        "steps": [
            {"delay_seconds": delay, "targets": list(targets), "require_all": require_all}
            for delay, targets, require_all in steps
        ],
    }


_ROUTED = "vigil.routed"
"""Where a session keeps the policies it routed to, for the transaction they were read in."""


def routed_snapshot(
    session: Session, category: str, explicit: str | None
) -> tuple[int | None, dict[str, Any]] | None:
    """The id of the policy a new case of `category` follows (the explicit one, else the
    category's route, else the default route) and the snapshot the case freezes of it (the
    fallback policy's, with no id, when nothing routes); None when `explicit` names no
    policy. Read in one statement, once per transaction: a group of alerts opened together
    routes the same way each time."""
    routed = held_for_transaction(session, _ROUTED)
    key = (category, explicit)
    if key not in routed:
        routed[key] = _route(session, category, explicit)
    found = routed[key]
    return None if found is None else (found[0], copy.deepcopy(found[1]))


def _route(
    session: Session, category: str, explicit: str | None
) -> tuple[int | None, dict[str, Any]] | None:
    """`routed_snapshot`'s reading, in one statement: a row per step of each candidate
    policy (the explicit one, else those the category's route and the default route
    reach), grouped by what reached it; the category's route wins over the default's."""
    statement = (
        sa_select(
            col(Routing.category) if not explicit else col(Policy.name),
            col(Policy.id),
            col(Policy.name),
            col(Policy.repeat),
            col(Policy.ack_timeout_seconds),
            col(Policy.high_urgency),
            col(PolicyStep.delay_seconds),
            col(PolicyStep.targets),
            col(PolicyStep.require_all),
        )
        .select_from(Policy)
        .outerjoin(PolicyStep, col(PolicyStep.policy_id) == col(Policy.id))
        .order_by(col(PolicyStep.position))
    )
    if explicit:
        statement = statement.where(col(Policy.name) == explicit)
    else:
        statement = statement.join(Routing, col(Routing.policy_id) == col(Policy.id)).where(
            col(Routing.category).in_((category, "default"))
        )
    by_route: dict[str, list[Any]] = {}
    for row in session.execute(statement).all():
        by_route.setdefault(row[0], []).append(row)
    rows = by_route.get(explicit or category) or by_route.get("default")
    if not rows:
        return None if explicit else (None, FALLBACK_POLICY)
    _route_key, policy_id, name, repeat, ack_timeout, high_urgency = rows[0][:6]
    steps = [(row[6], row[7], row[8]) for row in rows if row[6] is not None]
    return policy_id, frozen_policy(name, repeat, ack_timeout, high_urgency, steps)


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

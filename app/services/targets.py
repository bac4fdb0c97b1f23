"""Who a policy step's targets mean at one instant.

`role:supervisor` means the supervisors on duty: the active supervisors who are on call in
some schedule at that instant; when none of them is on call anywhere (a desk whose
supervisors keep no rotation, or a gap in theirs), every active supervisor, because a page
that reaches nobody is worse than one that reaches a supervisor off shift. Only the role
`supervisor` counts; admins are not paged by role.

A target naming a schedule, rotation or person that does not exist resolves to nobody
(with a warning in the log), so a stale policy never stops the chain: the engine moves on
to the next step. Inactive responders are never paged.

A person reached through a schedule with support hours carries them (low-urgency pages
wait for them), unless another target of the step reaches them without such hours.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from app.rules.notify import SupportHours
from app.rules.rotations import ScheduleSpec, on_call, rotation_on_call
from app.services.oncall import load_all_schedules, load_rotation, load_schedule
from data.domain import Role
from data.models import Responder

log = logging.getLogger("vigil.engine")

TARGET_FORMS = "schedule:NAME, rotation:NAME, user:HANDLE or role:supervisor"


def _supervisors_on_duty(session: Session, at: datetime) -> list[str]:
    supervisors = session.exec(
        select(Responder.handle)
        .where(Responder.role == Role.SUPERVISOR.value, col(Responder.active).is_(True))
        .order_by(col(Responder.handle))
    ).all()
    if not supervisors:
        return []
    on_call_now = set()
    for schedule in load_all_schedules(session):
        shift = on_call(schedule, at)
        if shift is not None:
            on_call_now.add(shift.who)
    on_duty = [handle for handle in supervisors if handle in on_call_now]
    return on_duty or list(supervisors)


def support_of(schedule: ScheduleSpec) -> SupportHours | None:
    """A schedule's support hours as the notification rules read them."""
    if schedule.support_hours is None:
        return None
    start, end = schedule.support_hours
    return SupportHours(start, end, schedule.zone, schedule.support_days)


Route = tuple[str, SupportHours | None]
"""A handle a target means, and the support hours of the schedule it came through."""


def _routes_for(session: Session, index: int, target: str, at: datetime) -> list[Route]:
    kind, colon, name = str(target).partition(":")
    name = name.strip()
    if not colon or not name:
        raise ValueError(f"targets[{index}]: expected {TARGET_FORMS}, got {target!r}")
    if kind == "user":
        return [(name, None)]
    if kind == "schedule":
        schedule = load_schedule(session, name)
        if schedule is None:
            log.warning("targets[%d]: no schedule named %r; nobody to page from it", index, name)
            return []
        shift = on_call(schedule, at)
        return [(shift.who, support_of(schedule))] if shift is not None else []
    if kind == "rotation":
        rotation = load_rotation(session, name)
        if rotation is None:
            log.warning("targets[%d]: no rotation named %r; nobody to page from it", index, name)
            return []
        who = rotation_on_call(rotation, at)
        return [(who, None)] if who is not None else []
    if kind == "role" and name == Role.SUPERVISOR.value:
        return [(handle, None) for handle in _supervisors_on_duty(session, at)]
    raise ValueError(f"targets[{index}]: expected {TARGET_FORMS}, got {target!r}")


def resolve_targets(session: Session, targets: Sequence[str], at: datetime) -> list[Responder]:
    """The active responders `targets` mean at `at`: in target order, each person once.

    Raises ValueError naming the target when one is not of a known form.
    """
    return [responder for responder, _ in resolve_reach(session, targets, at)]


def resolve_reach(
    session: Session, targets: Sequence[str], at: datetime
) -> list[tuple[Responder, SupportHours | None]]:
    """`resolve_targets` with the support hours each person was reached through."""
    support: dict[str, SupportHours | None] = {}
    for index, target in enumerate(targets):
        for handle, hours in _routes_for(session, index, target, at):
            if handle not in support:
                support[handle] = hours
            elif hours is None:
                support[handle] = None  # reached without support hours as well
    handles = list(support)
    if not handles:
        return []
    found = {
        responder.handle: responder
        for responder in session.exec(
            select(Responder).where(col(Responder.handle).in_(handles))
        ).all()
    }
    for handle in handles:
        if handle not in found:
            log.warning("no responder with handle %r; nobody to page for it", handle)
    return [(found[h], support[h]) for h in handles if h in found and found[h].active]

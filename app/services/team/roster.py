"""The team as the console's team view shows it: each active responder's role, zone,
whether they are on call now, their contacts and their notification rules, and each
schedule's support hours (read-only).

Contacts are worded by kind and name only: an Apprise or webhook URL holds secrets.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from app.core.times import format_instant
from app.rules.rotations import ScheduleSpec, format_days, format_hours, on_call
from app.services.oncall import load_all_schedules
from app.services.team.spec import rules_from_stored
from data.domain import Urgency, format_duration
from data.models import ContactMethod, Responder
from widgets.timefmt import plural
from widgets.views import RuleLine, ScheduleLine, TeammateView, TeamView

EVERY_DAY = frozenset(range(7))


def contact_label(kind: str, name: str | None) -> str:
    """`apprise: phone`; a contact named by its kind alone is just its kind."""
    return kind if not name or name == kind else f"{kind}: {name}"


def rule_text(entries: tuple[tuple[timedelta, str], ...] | None) -> str:
    """`phone at once, mail after 2m`; without rules every contact is told at once."""
    if not entries:
        return "every contact at once"
    return ", ".join(
        f"{name} {'after ' + format_duration(delay) if delay else 'at once'}"
        for delay, name in entries
    )


def support_text(schedule: ScheduleSpec) -> str:
    """`support 08:00-18:00 mon, tue… (Australia/Sydney): low urgency waits outside`."""
    if schedule.support_hours is None:
        return "no support hours: every page goes at once"
    days = schedule.support_days
    on = "" if days is None or days == EVERY_DAY else " " + " ".join(format_days(days))
    return (
        f"support {format_hours(schedule.support_hours)}{on} ({schedule.zone}): "
        "low urgency waits outside them"
    )


def team_view(session: Session, at: datetime, zone: ZoneInfo) -> TeamView:
    """The desk's active responders and schedules at `at`, for a viewer in `zone`."""
    schedules = load_all_schedules(session)
    on_call_in: dict[str, list[str]] = defaultdict(list)
    lines = []
    for schedule in schedules:
        shift = on_call(schedule, at)
        who = shift.who if shift is not None else None
        if who is not None:
            on_call_in[who].append(schedule.name)
        lines.append(
            ScheduleLine(
                schedule.name,
                f"on call: {who}" if who else "nobody on call (a gap)",
                support_text(schedule),
            )
        )
    people = session.exec(
        select(Responder).where(col(Responder.active).is_(True)).order_by(col(Responder.handle))
    ).all()
    contacts: dict[int, list[str]] = defaultdict(list)
    for responder_id, kind, name in session.exec(
        select(ContactMethod.responder_id, ContactMethod.kind, ContactMethod.name).order_by(
            col(ContactMethod.responder_id), col(ContactMethod.position)
        )
    ).all():
        contacts[responder_id].append(contact_label(kind, name))
    teammates = []
    for person in people:
        rules = dict(rules_from_stored(person.notify))
        teammates.append(
            TeammateView(
                handle=person.handle,
                name=person.name,
                role=person.role,
                zone=person.timezone,
                on_call=tuple(on_call_in.get(person.handle, ())),
                contacts=tuple(contacts.get(person.id or 0, ())),
                rules=tuple(
                    RuleLine(f"{urgency.value} urgency", rule_text(rules.get(urgency.value)))
                    for urgency in Urgency
                ),
                quiet_hours=(
                    f"{person.quiet_hours} in {person.timezone}: low urgency waits"
                    if person.quiet_hours
                    else "none"
                ),
            )
        )
    title = (
        f"Team · {plural(len(teammates), 'responder')} · on call as of "
        f"{format_instant(at, zone)} · read-only (change it with vigil team apply)"
    )
    return TeamView(title, tuple(lines), tuple(teammates))

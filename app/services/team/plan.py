"""What applying a team file would change: what is stored and what the file wants, in one
comparable shape, and the plan of additions, changes and removals between them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlmodel import Session, col, select

from app.core.errors import BadInput
from app.rules.casework import (
    CASEWORK_KEYS,
)
from app.rules.notify import parse_high_urgency
from app.rules.rotations import (
    HolidaySpec,
    OverrideSpec,
    RotationSpec,
    ScheduleSpec,
    change_rotation,
    format_days,
    format_hours,
    on_call,
    parse_days,
    parse_hours,
    rotation_on_call,
    rotation_turns,
)
from app.services.casework.settings import stored_settings
from app.services.oncall import rotation_spec, rotation_versions
from app.services.team.spec import (
    KINDS,
    ContactSpec,
    KeptSecrets,
    StepSpec,
    TeamError,
    TeamFileError,
    TeamSpec,
    iso_utc,
    rules_from_stored,
)
from data.contacts import KEPT_URL, digest
from data.domain import (
    ContactKind,
    format_duration,
    severity_name,
)
from data.intake import Integration
from data.models import ContactMethod, Policy, PolicyStep, Responder, Routing, SlaTarget
from data.oncall import (
    Holiday,
    Override,
    Rotation,
    RotationMember,
    RotationVersion,
    Schedule,
    ScheduleLayer,
)

# --- state: what is stored and what the file wants, in one comparable shape ---

Record = dict[str, Any]
State = dict[str, dict[Any, Record]]
OverrideKey = tuple[str, str, datetime, datetime]


@dataclass
class Stored:
    """The stored team, loaded once per plan, with the rows the writer updates in place."""

    responders: dict[str, Responder]
    contacts: dict[int, list[ContactMethod]]
    rotations: dict[str, Rotation]
    members: dict[int, list[int]]  # rotation id -> responder ids in turn order
    versions: dict[int, list[RotationVersion]]  # rotation id -> earlier versions, oldest first
    schedules: dict[str, Schedule]
    layers: dict[int, list[int]]  # schedule id -> rotation ids, bottom first
    overrides: dict[OverrideKey, Override]
    policies: dict[str, Policy]
    steps: dict[int, list[PolicyStep]]
    routes: dict[str, Routing]
    slas: dict[int, SlaTarget]
    holidays: dict[tuple[date, str], Holiday]
    integrations: dict[str, Integration] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session) -> Stored:
        responders = session.exec(select(Responder).order_by(col(Responder.handle))).all()
        handle = {r.id: r.handle for r in responders}
        contacts: dict[int, list[ContactMethod]] = {}
        for contact in session.exec(
            select(ContactMethod).order_by(col(ContactMethod.position), col(ContactMethod.id))
        ):
            contacts.setdefault(contact.responder_id, []).append(contact)
        rotations = session.exec(select(Rotation).order_by(col(Rotation.name))).all()
        members: dict[int, list[int]] = {}
        for member in session.exec(select(RotationMember).order_by(col(RotationMember.position))):
            members.setdefault(member.rotation_id, []).append(member.responder_id)
        schedules = session.exec(select(Schedule).order_by(col(Schedule.name))).all()
        schedule_name = {s.id: s.name for s in schedules}
        layers: dict[int, list[int]] = {}
        for layer in session.exec(select(ScheduleLayer).order_by(col(ScheduleLayer.position))):
            layers.setdefault(layer.schedule_id, []).append(layer.rotation_id)
        overrides = {
            (schedule_name[o.schedule_id], handle[o.responder_id], o.starts_at, o.ends_at): o
            for o in session.exec(
                select(Override).order_by(col(Override.starts_at), col(Override.id))
            )
        }
        policies = session.exec(select(Policy).order_by(col(Policy.name))).all()
        steps: dict[int, list[PolicyStep]] = {}
        for step in session.exec(select(PolicyStep).order_by(col(PolicyStep.position))):
            steps.setdefault(step.policy_id, []).append(step)
        return cls(
            responders={r.handle: r for r in responders},
            contacts=contacts,
            rotations={r.name: r for r in rotations},
            members=members,
            versions=rotation_versions(session, [stored_id(r) for r in rotations]),
            schedules={s.name: s for s in schedules},
            layers=layers,
            overrides=overrides,
            policies={p.name: p for p in policies},
            steps=steps,
            routes={r.category: r for r in session.exec(select(Routing))},
            slas={s.severity: s for s in session.exec(select(SlaTarget))},
            holidays={
                (h.day, h.region): h
                for h in session.exec(select(Holiday).order_by(col(Holiday.day)))
            },
            integrations={
                i.name: i for i in session.exec(select(Integration).order_by(col(Integration.name)))
            },
        )

    def rotation_spec(self, name: str) -> RotationSpec | None:
        """The stored rotation with its history; None if it does not make a valid spec."""
        row = self.rotations[name]
        handles = {r.id: r.handle for r in self.responders.values()}
        members = [handles[m] for m in self.members.get(stored_id(row), [])]
        try:
            return rotation_spec(row, members, self.versions.get(stored_id(row), []))
        except ValueError:
            return None

    def state(self) -> State:
        handles = {r.id: r.handle for r in self.responders.values()}
        rotation_names = {r.id: r.name for r in self.rotations.values()}
        policy_names = {p.id: p.name for p in self.policies.values()}
        state: State = {kind: {} for kind in KINDS}
        for responder in self.responders.values():
            contacts = self.contacts.get(responder.id or 0, [])
            state["responder"][responder.handle] = {
                "name": responder.name,
                "role": responder.role,
                "timezone": responder.timezone,
                "db_login": responder.db_login,
                "active": responder.active,
                "contacts": tuple(
                    ContactSpec(
                        c.kind,
                        allow_insecure=c.allow_insecure,
                        allow_private=c.allow_private,
                        name=c.name,
                        kept=kept_secrets(c),
                    )
                    for c in contacts
                ),
                "quiet_hours": responder.quiet_hours,
                "notify": rules_from_stored(responder.notify),
            }
        for rotation in self.rotations.values():
            members = tuple(handles[m] for m in self.members.get(rotation.id or 0, []))
            state["rotation"][rotation.name] = _stored_rotation(rotation, members)
        for schedule in self.schedules.values():
            state["schedule"][schedule.name] = {
                "layers": tuple(rotation_names[r] for r in self.layers.get(schedule.id or 0, [])),
                "timezone": schedule.timezone,
                "holiday_region": schedule.holiday_region,
                "holiday_cover": handles.get(schedule.holiday_cover_id),
                "support_hours": schedule.support_hours,
                "support_days": (
                    tuple(schedule.support_days.split(",")) if schedule.support_days else None
                ),
            }
        for key, override in self.overrides.items():
            state["override"][key] = {"reason": override.reason}
        for policy in self.policies.values():
            state["policy"][policy.name] = {
                "repeat": policy.repeat,
                "ack_timeout": (
                    None
                    if policy.ack_timeout_seconds is None
                    else timedelta(seconds=policy.ack_timeout_seconds)
                ),
                "steps": tuple(
                    StepSpec(timedelta(seconds=s.delay_seconds), tuple(s.targets), s.require_all)
                    for s in self.steps.get(policy.id or 0, [])
                ),
                "high_urgency": (
                    parse_high_urgency(policy.high_urgency) if policy.high_urgency else None
                ),
            }
        for category, route in self.routes.items():
            state["routing"][category] = {"policy": policy_names[route.policy_id]}
        for severity, sla in sorted(self.slas.items()):
            state["sla"][severity] = {
                "ack": timedelta(seconds=sla.ack_seconds),
                "respond": timedelta(seconds=sla.respond_seconds),
            }
        for day_region, holiday in sorted(self.holidays.items()):
            state["holiday"][day_region] = {"name": holiday.name}
        for name, integration in self.integrations.items():
            state["integration"][name] = {
                "format": integration.format,
                "category": integration.category,
                "severity": integration.severity,
                "policy": integration.policy,
                "rate_limit": integration.rate_limit,
                "interval": _seconds(integration.interval_seconds),
                "grace": _seconds(integration.grace_seconds),
            }
        return state


def _seconds(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def _rotation_record(rotation: RotationSpec) -> Record:
    text = rotation.to_text()
    return {
        "timezone": text["timezone"],
        "shift": text["shift"],
        "handoff": text["handoff"],
        "start": rotation.start,
        "members": rotation.members,
        "days": tuple(format_days(rotation.days)) if rotation.days is not None else None,
        "hours": format_hours(rotation.hours) if rotation.hours is not None else None,
    }


def _stored_rotation(row: Rotation, members: tuple[str, ...]) -> Record:
    """A stored rotation in its canonical spelling (as it was written, if it does not parse)."""
    try:
        spec = RotationSpec.from_text(
            name=row.name,
            timezone=row.timezone,
            shift=row.shift,
            handoff=row.handoff,
            start=row.start,
            members=members,
            days=row.days,
            hours=row.hours,
        )
    except ValueError:
        return {
            "timezone": row.timezone,
            "shift": row.shift,
            "handoff": row.handoff,
            "start": row.start,
            "members": members,
            "days": tuple(row.days.split(",")) if row.days else None,
            "hours": row.hours,
        }
    return _rotation_record(spec)


def kept_secrets(row: ContactMethod | None) -> KeptSecrets | None:
    """What the plan knows of a stored contact's URL and secret, never reading them."""
    if row is None or row.url_digest is None or row.url_shown is None:
        return None
    return KeptSecrets(row.url_shown, row.url_digest, row.secret_digest)


def _wanted(spec: TeamSpec, stored: Stored) -> State:
    """The state the file asks for; a webhook without `secret` keeps the stored one, and
    one whose URL is as `vigil team export` shows it keeps the stored URL."""
    state: State = {kind: {} for kind in KINDS}
    problems: list[TeamError] = []
    for index, responder in enumerate(spec.responders):
        webhooks = [
            c
            for c in stored.contacts.get(row_id(stored.responders.get(responder.handle)), [])
            if c.kind in (ContactKind.WEBHOOK, ContactKind.APPRISE) and c.url_digest
        ]
        by_shown = {c.url_shown: c for c in webhooks if c.url_shown}
        by_digest = {c.url_digest: c for c in webhooks}
        contacts = []
        for position, contact in enumerate(responder.contacts):
            url = contact.url
            if url is not None and KEPT_URL.match(url):
                row = by_shown.get(url)
                if row is None:
                    problems.append(
                        TeamError(
                            f"responder[{index}].contacts[{position}].url",
                            f"{url!r} stands for a stored {contact.kind} URL (as `vigil team "
                            f"export` prints it), but {responder.handle} has no such "
                            f"{contact.kind} contact stored; "
                            "write the full URL",
                            responder.handle,
                        )
                    )
                    continue
                url = None  # kept as stored
            else:
                row = by_digest.get(digest(url)) if url is not None else None
            contacts.append(
                ContactSpec(
                    contact.kind,
                    url,
                    contact.secret or None,
                    contact.allow_insecure,
                    contact.allow_private,
                    contact.name,
                    kept=kept_secrets(row),
                )
            )
        state["responder"][responder.handle] = {
            "name": responder.name,
            "role": responder.role,
            "timezone": responder.timezone,
            "db_login": responder.db_login,
            "active": True,
            "contacts": tuple(contacts),
            "quiet_hours": responder.quiet_hours,
            "notify": responder.notify,
        }
    if problems:
        raise TeamFileError(problems, spec.source)
    for rotation in spec.rotations:
        state["rotation"][rotation.name] = _rotation_record(rotation)
    for schedule in spec.schedules:
        state["schedule"][schedule.name] = {
            "layers": schedule.layers,
            "timezone": schedule.timezone,
            "holiday_region": schedule.holiday_region,
            "holiday_cover": schedule.holiday_cover,
            "support_hours": schedule.support_hours,
            "support_days": schedule.support_days,
        }
    for override in spec.overrides:
        key = (override.schedule, override.who, override.start, override.end)
        state["override"][key] = {"reason": override.reason}
    for policy in spec.policies:
        state["policy"][policy.name] = {
            "repeat": policy.repeat,
            "ack_timeout": policy.ack_timeout,
            "steps": policy.steps,
            "high_urgency": policy.high_urgency,
        }
    for category, policy_name in spec.routing:
        state["routing"][category] = {"policy": policy_name}
    for sla in spec.slas:
        state["sla"][sla.severity] = {"ack": sla.ack, "respond": sla.respond}
    for holiday in spec.holidays:
        state["holiday"][holiday.day, holiday.region] = {"name": holiday.name}
    for integration in spec.integrations:
        state["integration"][integration.name] = {
            "format": integration.format,
            "category": integration.category,
            "severity": integration.severity,
            "policy": integration.policy,
            "rate_limit": integration.rate_limit,
            "interval": integration.interval,
            "grace": integration.grace,
        }
    return state


def row_id(row: Responder | None) -> int:
    """The id of a stored responder; 0 (no row has it) for one not stored yet."""
    return (row.id or 0) if row is not None else 0


def stored_id(row: Any) -> int:
    """The primary key of a row that has been flushed."""
    assert row.id is not None, f"{type(row).__name__} not flushed"
    return int(row.id)


# --- the plan ---------------------------------------------------------------

Action = Literal["add", "change", "remove"]
_MARK = {"add": "+", "change": "~", "remove": "-"}


@dataclass(frozen=True)
class Change:
    """One entry added, changed or removed; `details` never carry a secret."""

    kind: str
    action: Action
    label: str
    details: tuple[str, ...] = ()
    key: Any = field(default=None, repr=False, compare=False)
    wanted: Record | None = field(default=None, repr=False, compare=False)

    @property
    def line(self) -> str:
        text = f"{_MARK[self.action]} {self.kind} {self.label}"
        return f"{text}: {'; '.join(self.details)}" if self.details else text


@dataclass(frozen=True)
class OnCallNow:
    """Who a schedule has on call now before the plan and after it (None: nobody; a
    schedule the plan adds or removes has no before or after)."""

    schedule: str
    before: str | None
    after: str | None
    exists_before: bool = True
    exists_after: bool = True

    @property
    def line(self) -> str:
        before = (self.before or "nobody") if self.exists_before else "(new)"
        after = (self.after or "nobody") if self.exists_after else "(removed)"
        return (
            f"{self.schedule}: {before}"
            if before == after
            else (f"{self.schedule}: {before} -> {after}")
        )

    def as_dict(self) -> dict[str, Any]:
        return {"schedule": self.schedule, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class Plan:
    """What applying a file changes. Empty means the stored team already is the file."""

    changes: tuple[Change, ...] = ()
    kept_overrides: tuple[OverrideKey, ...] = ()  # stored, not in the file, left alone
    # In the file, not stored, and over before now: not placed, since who was on call then
    # stays as it was (an export applied to another desk, or a file's dated override applied
    # late). One begun before now and not over starts now.
    past_overrides: tuple[OverrideKey, ...] = ()
    # Each rotation added or changed as it is to be stored, with its history.
    rotations: dict[str, RotationSpec] = field(default_factory=dict)
    # Who each schedule has on call at the plan's `now`, before and after (when it changes
    # anything).
    on_call_now: tuple[OnCallNow, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.changes

    def lines(self) -> list[str]:
        return [change.line for change in self.changes]

    def summary(self) -> dict[str, dict[str, int]]:
        """Per kind with any change: how many were added, changed and removed."""
        out: dict[str, dict[str, int]] = {}
        for change in self.changes:
            counts = out.setdefault(change.kind, {"added": 0, "changed": 0, "removed": 0})
            counts[{"add": "added", "change": "changed", "remove": "removed"}[change.action]] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "changes": self.lines(),
            "kept_overrides": [change_label("override", key) for key in self.kept_overrides],
            "past_overrides": [change_label("override", key) for key in self.past_overrides],
            "on_call_now": [row.as_dict() for row in self.on_call_now],
        }


def _render(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return "[" + ", ".join(_render(item) for item in value) + "]"
    return str(value)


def change_label(kind: str, key: Any) -> str:
    if kind == "override":
        schedule, who, start, end = key
        return f"{who} on {schedule} from {iso_utc(start)} to {iso_utc(end)}"
    if kind == "sla":
        return severity_name(key)
    if kind == "holiday":
        day, region = key
        return f"{day.isoformat()} {region}"
    return str(key)


def _field_changes(old: Record, new: Record) -> tuple[str, ...]:
    details = []
    for name, value in new.items():
        before = old.get(name)
        if before == value:
            continue
        shown_before, shown_after = _render(before), _render(value)
        if shown_before == shown_after:  # only something unshown (a secret) differs
            details.append(f"{name}: secret changed")
        else:
            details.append(f"{name}: {shown_before} -> {shown_after}")
    return tuple(details)


def _from_now_on(
    stored: dict[Any, Record], wanted: dict[Any, Record], now: datetime
) -> tuple[OverrideKey, ...]:
    """Who was on call stays as it was: the file's overrides not stored that start before
    now begin now (in `wanted`, changed in place), or, over already, are left out; those
    left out are returned. One begun now by an earlier apply of the same file is that
    override: stored with the same schedule, person and end, a start no earlier than the
    file's."""
    left_out: list[OverrideKey] = []
    for key in [key for key in wanted if key not in stored and key[2] < now]:
        record = wanted.pop(key)
        schedule, who, start, end = key
        if end <= now:
            left_out.append(key)
            continue
        begun = [k for k in stored if k[:2] == (schedule, who) and k[3] == end and k[2] >= start]
        wanted[begun[0] if begun else (schedule, who, now, end)] = record
    return tuple(left_out)


def _refuse_emptying(stored: Stored, spec: TeamSpec) -> None:
    """A file that names nobody, applied to a desk with people on it, is most likely cut
    short (an empty or truncated file): it would deactivate everyone, the one applying it
    too, and a desk with no active responder is founded again by whoever comes first."""
    active = sum(1 for responder in stored.responders.values() if responder.active)
    if active and not spec.responders:
        raise BadInput(
            spec.source,
            f"names no responder: applying it would deactivate all {active} of the desk's, and "
            "anyone could then found the desk again; nothing was applied",
        )


def make_plan(stored: Stored, spec: TeamSpec, now: datetime) -> Plan:
    _refuse_emptying(stored, spec)
    before, after = stored.state(), _wanted(spec, stored)
    past = _from_now_on(before["override"], after["override"], now)
    changes: list[Change] = []
    kept: list[OverrideKey] = []
    rotations = _versioned_rotations(stored, spec, before["rotation"], now)
    for kind in KINDS:
        old, new = before[kind], after[kind]
        for key, record in new.items():
            label = change_label(kind, key)
            if key not in old:
                details = tuple(
                    f"{name}={_render(value)}"
                    for name, value in record.items()
                    if value not in (None, "") and name != "active"
                )
                changes.append(Change(kind, "add", label, details, key, record))
            elif details := _field_changes(old[key], record):
                if kind == "rotation":
                    details += _handoff_details(stored.rotation_spec(key), rotations[key], now)
                changes.append(Change(kind, "change", label, details, key, record))
        for key, record in old.items():
            if key in new:
                continue
            label = change_label(kind, key)
            if kind == "responder":
                if record["active"]:
                    changes.append(Change(kind, "remove", label, ("deactivated",), key))
            elif kind == "override":
                if key[0] in after["schedule"]:  # else it goes with its schedule, said there
                    kept.append(key)
            elif kind == "holiday":
                continue
            elif kind == "schedule":
                overrides = sum(1 for o in before["override"] if o[0] == key)
                details = (f"with its {overrides} override(s)",) if overrides else ()
                changes.append(Change(kind, "remove", label, details, key))
            else:
                changes.append(Change(kind, "remove", label, (), key))
    if not changes:
        return Plan((), tuple(kept), past, rotations)
    on_call_now = _on_call_now(stored, before, after, rotations, now)
    return Plan(tuple(changes), tuple(kept), past, rotations, on_call_now)


def _on_call_now(
    stored: Stored,
    before: State,
    after: State,
    rotations: dict[str, RotationSpec],
    now: datetime,
) -> tuple[OnCallNow, ...]:
    """Each schedule's person on call at `now` as stored and as the plan leaves it.

    After the plan, overrides and holidays are the stored ones plus the file's (a file
    removes neither); rotations are as the plan versions them."""
    cached: dict[str, RotationSpec | None] = {}

    def stored_rotation(name: str) -> RotationSpec | None:
        if name not in cached:
            cached[name] = stored.rotation_spec(name) if name in stored.rotations else None
        return cached[name]

    def new_rotation(name: str) -> RotationSpec | None:
        return rotations.get(name) or stored_rotation(name)

    overrides_after = {**before["override"], **after["override"]}
    holidays_after = {**before["holiday"], **after["holiday"]}
    rows = []
    for name in sorted({*before["schedule"], *after["schedule"]}):
        was = _schedule(
            name, before["schedule"], before["override"], before["holiday"], stored_rotation
        )
        will = _schedule(name, after["schedule"], overrides_after, holidays_after, new_rotation)
        rows.append(
            OnCallNow(
                name,
                _who(was, now),
                _who(will, now),
                exists_before=name in before["schedule"],
                exists_after=name in after["schedule"],
            )
        )
    return tuple(rows)


def _schedule(
    name: str,
    schedules: dict[Any, Record],
    overrides: dict[Any, Record],
    holidays: dict[Any, Record],
    rotation: Callable[[str], RotationSpec | None],
) -> ScheduleSpec | None:
    """One schedule of a state as the rules read it; None if the state has none (or a
    stored row that does not make a valid spec)."""
    record = schedules.get(name)
    if record is None:
        return None
    layers = [rotation(layer) for layer in record["layers"]]
    try:
        return ScheduleSpec(
            name,
            tuple(layer for layer in layers if layer is not None),
            tuple(
                OverrideSpec(who, start, end) for (on, who, start, end) in overrides if on == name
            ),
            tuple(
                HolidaySpec(day, entry["name"], region) for (day, region), entry in holidays.items()
            ),
            record["holiday_region"],
            record["holiday_cover"],
            record["timezone"],
            parse_hours(record["support_hours"]) if record["support_hours"] else None,
            parse_days(record["support_days"]) if record["support_days"] else None,
        )
    except ValueError:
        return None


def _who(schedule: ScheduleSpec | None, now: datetime) -> str | None:
    shift = on_call(schedule, now) if schedule is not None else None
    return shift.who if shift is not None else None


def _versioned_rotations(
    stored: Stored, spec: TeamSpec, old: dict[Any, Record], now: datetime
) -> dict[str, RotationSpec]:
    """Each rotation of the file as it is to be stored: a changed one as a new version from
    its next hand-off (the turn under way and the past stay), a new one as written."""
    out = {}
    for wanted in spec.rotations:
        current = stored.rotation_spec(wanted.name) if wanted.name in stored.rotations else None
        if current is None:
            out[wanted.name] = wanted
        elif old[wanted.name] != _rotation_record(wanted):
            out[wanted.name] = change_rotation(current, wanted, now)
    return out


def turn_holder(rotation: RotationSpec, at: datetime) -> str:
    """Who holds the turn at `at`, shown or masked by days and hours."""
    turns = rotation_turns(rotation, at, at + timedelta(microseconds=1))
    return turns[0].who if turns else "nobody"


def _handoff_details(
    current: RotationSpec | None, changed: RotationSpec, now: datetime
) -> tuple[str, ...]:
    """Who is on call now before and after the change, and when and to whom it hands off."""
    if current is None or changed.since is None:
        return ("takes effect at once: no turn has begun",) if current else ()
    before = rotation_on_call(current, now) or "nobody"
    after = rotation_on_call(changed, now) or "nobody"
    now_text = before if before == after else f"{before} -> {after}"
    if after != "nobody" and after not in changed.members:
        now_text += " (leaves the rotation at the hand-off)"
    heir_before, heir_after = (
        turn_holder(current, changed.since),
        turn_holder(changed, changed.since),
    )
    then = heir_after if heir_before == heir_after else f"{heir_before} -> {heir_after}"
    return (
        f"on call now: {now_text}",
        f"from the hand-off at {iso_utc(changed.since)}: {then}",
    )


def plan_apply(session: Session, spec: TeamSpec, now: datetime) -> Plan:
    """What applying `spec` at `now` would change in the stored team, without changing
    anything."""
    return with_casework(session, make_plan(Stored.load(session), spec, now), spec)


def with_casework(session: Session, plan: Plan, spec: TeamSpec) -> Plan:
    """Add the casework settings to the plan when the file's differ from the stored ones."""
    stored = stored_settings(session)
    wanted = dict(spec.casework)
    if stored == wanted:
        return plan
    changed = sorted(k for k in CASEWORK_KEYS if stored.get(k) != wanted.get(k))
    change = Change("casework", "change", "settings", tuple(changed), None, wanted)
    return replace(plan, changes=(*plan.changes, change))

"""Applying a team file: the plan written through the unit of work, in one transaction with
one `team.apply` audit record, after checking that the person applying it may (anyone, for
the file that founds the desk: `Founder`).

A case whose policy the file removes changes too, as any change of a case does: its
timeline says so, the consoles' change feed carries it and the audit chain records it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from app.core.clock import SystemClock
from app.rules.rotations import RotationSpec, format_days, format_hours
from app.services.casework.settings import store_settings
from app.services.team.plan import (
    OverrideKey,
    Plan,
    Record,
    Stored,
    change_label,
    make_plan,
    row_id,
    stored_id,
    turn_holder,
    with_casework,
)
from app.services.team.spec import (
    ContactSpec,
    Row,
    StepSpec,
    TeamPermissionError,
    TeamSpec,
    iso_utc,
    rules_to_stored,
)
from app.services.unit_of_work import SUPERVISING, Founder, Tx, UnitOfWork, actor_in
from data import access, audit
from data.db import Database
from data.domain import TimelineKind
from data.intake import Integration
from data.models import (
    Case,
    ContactMethod,
    Delivery,
    Policy,
    PolicyStep,
    Responder,
    Routing,
    SlaTarget,
)
from data.oncall import (
    Holiday,
    Override,
    Rotation,
    RotationMember,
    RotationVersion,
    Schedule,
    ScheduleLayer,
)

# --- applying ---------------------------------------------------------------

_INSTANT = timedelta(microseconds=1)


def logins_of(responders: Iterable[Responder]) -> set[str]:
    return {row.db_login or row.handle for row in responders}


def place_logins(session: Session, logins: Iterable[str]) -> None:
    """On PostgreSQL with the desk's roles installed (`vigil db roles`), keep each of these
    logins in the group of its responder's role, and one that is nobody's now (an inactive
    responder's, or a login a responder gave up) in none, in this transaction."""
    if session.get_bind().dialect.name != "postgresql" or access.stored_prefix(session) is None:
        return
    for login in sorted(logins):
        access.place_login(session, login)


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    warnings: tuple[str, ...] = ()
    applied: bool = False  # False for a dry run and for an empty plan


POLICY_REMOVED = "team.policy_removed"
"""The audit action of a case whose policy a team file removed."""


def _applier(actor: str) -> Founder:
    """Whoever applies a team file: anyone founds a desk with no active responder (the
    first file makes the team); on a team, `_check_actor` rules."""
    return Founder(actor, partial(_check_actor, actor))


def _check_actor(actor: str, me: Responder | None) -> None:
    """On a team with active responders, only an active supervisor or admin may apply."""
    rule = "only an active supervisor or admin may apply a team file"
    if me is None or not me.active:
        raise TeamPermissionError(
            f"'{actor}' is not an active responder of this team; {rule} "
            "(use --as HANDLE or VIGIL_USER)"
        )
    if me.role not in SUPERVISING:
        raise TeamPermissionError(f"'{actor}' is a {me.role}; {rule}")


def team_warnings(spec: TeamSpec, plan: Plan, actor: str) -> tuple[str, ...]:
    """What is allowed but probably not meant."""
    warnings = []
    for responder in spec.responders:
        if not responder.contacts:
            warnings.append(
                f"responder {responder.handle} has no contact method: pages never reach them"
            )
        elif not responder.reachable:
            warnings.append(
                f"responder {responder.handle} has only the console as contact: "
                "pages reach them only while a console is open"
            )
    supervising = sorted(r.handle for r in spec.responders if r.role in SUPERVISING)
    if spec.responders and not supervising:
        warnings.append(
            "no responder is a supervisor or admin: nobody will be allowed to apply the next file"
        )
    elif spec.responders and actor not in supervising:
        warnings.append(
            f"'{actor}' is not a supervisor or admin in this file: only "
            f"{', '.join(supervising)} may apply the next one"
        )
    if plan.kept_overrides:
        warnings.append(
            f"{len(plan.kept_overrides)} stored override(s) not in the file are kept: "
            + "; ".join(change_label("override", key) for key in plan.kept_overrides)
        )
    for key in plan.past_overrides:
        warnings.append(
            f"override {change_label('override', key)} is over and is not placed: who was on "
            "call then stays as it was"
        )
    handles = {r.handle for r in spec.responders}
    for name, rotation in plan.rotations.items():
        if rotation.since is None:
            continue
        holder = turn_holder(rotation, rotation.since - _INSTANT)
        if holder not in handles:
            warnings.append(
                f"rotation {name}: {holder}'s turn runs until the hand-off at "
                f"{iso_utc(rotation.since)}, but {holder} is not in this file and is never "
                "paged: place an override for the rest of the turn"
            )
    for key in plan.kept_overrides:
        if key[1] not in handles:
            warnings.append(
                f"the kept override {change_label('override', key)} names {key[1]}, "
                "who is not in this file"
            )
    return tuple(warnings)


def apply_team(
    db: Database,
    spec: TeamSpec,
    *,
    actor: str,
    now: datetime,
    dry_run: bool = False,
    on_change: Callable[[int], None] | None = None,
) -> ApplyResult:
    """Make the stored team what `spec` declares, in one transaction with one `team.apply`
    audit record (and one more for each case whose policy it removes); `on_change` hears
    of each such case after the commit, as the unit of work tells a console.

    Raises `TeamPermissionError` when `actor` may not change the existing team (checked on a
    dry run too, so it tells the truth about what a real run would do).
    """
    if now.tzinfo is None:
        raise ValueError("apply_team needs an aware `now`")
    if dry_run:
        with db.read() as session:
            actor_in(session, _applier(actor))
            stored = Stored.load(session)
            plan = with_casework(session, make_plan(stored, spec, now), spec)
        return ApplyResult(plan, team_warnings(spec, plan, actor), applied=False)
    # The instant is the caller's `now`, the one the plan is made for: the clock goes unread.
    work = UnitOfWork(db, SystemClock(), on_change=on_change)
    with work(_applier(actor), at=lambda: now) as tx:
        stored = Stored.load(tx.session)
        before = logins_of(stored.responders.values())
        plan = with_casework(tx.session, make_plan(stored, spec, now), spec)
        if not plan.empty:
            _Writer(tx, stored).run(plan)
            audit.append(
                tx.session,
                at=tx.now,
                actor=tx.actor.handle,
                action="team.apply",
                detail={"source": spec.source, **plan.as_dict()},
            )
        place_logins(tx.session, before | logins_of(stored.responders.values()))
    return ApplyResult(plan, team_warnings(spec, plan, actor), applied=not plan.empty)


class _Writer:
    """Writes a plan: additions and changes in dependency order, then removals in reverse."""

    def __init__(self, tx: Tx, stored: Stored) -> None:
        self.tx = tx
        self.session = tx.session
        self.stored = stored
        self.now = tx.now
        self.actor = tx.actor.handle
        self.rotations: dict[str, RotationSpec] = {}

    def run(self, plan: Plan) -> None:
        self.rotations = plan.rotations
        put: dict[str, Callable[[Any, Record], None]] = {
            "responder": self._put_responder,
            "rotation": self._put_rotation,
            "schedule": self._put_schedule,
            "override": self._put_override,
            "policy": self._put_policy,
            "routing": self._put_routing,
            "sla": self._put_sla,
            "holiday": self._put_holiday,
            "integration": self._put_integration,
            "casework": self._put_casework,
        }
        remove: dict[str, Callable[[Any], None]] = {
            "responder": self._remove_responder,
            "rotation": self._remove_rotation,
            "schedule": self._remove_schedule,
            "policy": self._remove_policy,
            "routing": self._remove_routing,
            "sla": self._remove_sla,
            "integration": self._remove_integration,
        }
        for change in plan.changes:
            if change.action != "remove":
                assert change.wanted is not None
                put[change.kind](change.key, change.wanted)
        for change in reversed(plan.changes):
            if change.action == "remove":
                remove[change.kind](change.key)
                self.session.flush()

    def _put_casework(self, _key: Any, wanted: Record) -> None:
        store_settings(self.session, wanted, self.actor, self.now)

    def _saved(self, row: Row) -> Row:
        self.session.add(row)
        self.session.flush()
        return row

    def _responder_id(self, handle: str) -> int:
        return stored_id(self.stored.responders[handle])

    # -- additions and changes ----------------------------------------------

    def _put_responder(self, handle: str, wanted: Record) -> None:
        row = self.stored.responders.get(handle) or Responder(handle=handle, name="")
        row.name, row.role, row.timezone = wanted["name"], wanted["role"], wanted["timezone"]
        row.quiet_hours, row.notify = wanted["quiet_hours"], rules_to_stored(wanted["notify"])
        row.db_login, row.active = wanted["db_login"], True
        self.stored.responders[handle] = self._saved(row)
        self._put_contacts(stored_id(row), wanted["contacts"])

    def _put_contacts(self, responder_id: int, contacts: tuple[ContactSpec, ...]) -> None:
        """Reuse the row of the same kind and URL, so deliveries keep pointing at it."""
        existing = list(self.stored.contacts.get(responder_id, []))
        rows = []
        for position, contact in enumerate(contacts):
            row = next(
                (
                    c
                    for c in existing
                    if (c.kind, c.url_digest) == (contact.kind, contact.url_digest)
                ),
                None,
            )
            if row is None:
                row = ContactMethod(responder_id=responder_id, kind=contact.kind, url=contact.url)
            else:
                existing.remove(row)
            # A stored secret is rewritten only when the file gives another: it is never
            # read here (people's logins may not), only known by its digest.
            if contact.secret is not None and row.secret_digest != contact.secret_digest:
                row.secret = contact.secret
            row.position, row.name = position, contact.name
            row.allow_insecure, row.allow_private = contact.allow_insecure, contact.allow_private
            self.session.add(row)
            rows.append(row)
        for gone in existing:
            self.session.exec(
                update(Delivery).where(col(Delivery.contact_id) == gone.id).values(contact_id=None)
            )
            self.session.delete(gone)
        self.session.flush()
        self.stored.contacts[responder_id] = rows

    def _put_rotation(self, name: str, wanted: Record) -> None:
        """The rotation as the plan versioned it: the newest version in `rotation` and
        `rotation_member`, the earlier ones in `rotation_version`, oldest first."""
        *earlier, newest = self.rotations[name].versions()
        row = self.stored.rotations.get(name) or Rotation(
            name=name, timezone="", shift="", handoff="", start=wanted["start"]
        )
        _set_version(row, newest)
        self.stored.rotations[name] = row = self._saved(row)
        self.session.exec(delete(RotationMember).where(col(RotationMember.rotation_id) == row.id))
        self.session.exec(delete(RotationVersion).where(col(RotationVersion.rotation_id) == row.id))
        for position, handle in enumerate(newest.members):
            self.session.add(
                RotationMember(
                    rotation_id=stored_id(row),
                    position=position,
                    responder_id=self._responder_id(handle),
                )
            )
        for version in earlier:
            kept = RotationVersion(
                rotation_id=stored_id(row),
                timezone="",
                shift="",
                handoff="",
                start=version.start,
                members=list(version.members),
            )
            _set_version(kept, version)
            self.session.add(kept)
        self.session.flush()

    def _put_schedule(self, name: str, wanted: Record) -> None:
        row = self.stored.schedules.get(name) or Schedule(name=name)
        row.timezone, row.holiday_region = wanted["timezone"], wanted["holiday_region"]
        row.support_hours = wanted["support_hours"]
        days = wanted["support_days"]
        row.support_days = ",".join(days) if days else None
        cover = wanted["holiday_cover"]
        row.holiday_cover_id = self._responder_id(cover) if cover else None
        self.stored.schedules[name] = row = self._saved(row)
        self.session.exec(delete(ScheduleLayer).where(col(ScheduleLayer.schedule_id) == row.id))
        for position, rotation in enumerate(wanted["layers"]):
            self.session.add(
                ScheduleLayer(
                    schedule_id=stored_id(row),
                    position=position,
                    rotation_id=stored_id(self.stored.rotations[rotation]),
                )
            )
        self.session.flush()

    def _put_override(self, key: OverrideKey, wanted: Record) -> None:
        row = self.stored.overrides.get(key)
        if row is None:
            schedule, who, start, end = key
            row = Override(
                schedule_id=stored_id(self.stored.schedules[schedule]),
                responder_id=self._responder_id(who),
                starts_at=start,
                ends_at=end,
                created_by_id=row_id(self.stored.responders.get(self.actor)) or None,
                created_at=self.now,
            )
        row.reason = wanted["reason"]
        self.stored.overrides[key] = self._saved(row)

    def _put_policy(self, name: str, wanted: Record) -> None:
        row = self.stored.policies.get(name) or Policy(name=name)
        row.repeat = wanted["repeat"]
        timeout = wanted["ack_timeout"]
        row.ack_timeout_seconds = None if timeout is None else int(timeout.total_seconds())
        high = wanted["high_urgency"]
        row.high_urgency = None if high is None else ",".join(str(s) for s in high)
        self.stored.policies[name] = row = self._saved(row)
        self.session.exec(delete(PolicyStep).where(col(PolicyStep.policy_id) == row.id))
        steps: tuple[StepSpec, ...] = wanted["steps"]
        for position, step in enumerate(steps):
            self.session.add(
                PolicyStep(
                    policy_id=stored_id(row),
                    position=position,
                    delay_seconds=int(step.delay.total_seconds()),
                    targets=list(step.targets),
                    require_all=step.require_all,
                )
            )
        self.session.flush()

    def _put_routing(self, category: str, wanted: Record) -> None:
        policy_id = stored_id(self.stored.policies[wanted["policy"]])
        row = self.stored.routes.get(category) or Routing(category=category, policy_id=policy_id)
        row.policy_id = policy_id
        self.stored.routes[category] = self._saved(row)

    def _put_sla(self, severity: int, wanted: Record) -> None:
        row = self.stored.slas.get(severity) or SlaTarget(
            severity=severity, ack_seconds=0, respond_seconds=0
        )
        row.ack_seconds = int(wanted["ack"].total_seconds())
        row.respond_seconds = int(wanted["respond"].total_seconds())
        self.stored.slas[severity] = self._saved(row)

    def _put_holiday(self, key: tuple[date, str], wanted: Record) -> None:
        day, region = key
        row = self.stored.holidays.get(key) or Holiday(day=day, region=region, name="")
        row.name = wanted["name"]
        self.stored.holidays[key] = self._saved(row)

    def _put_integration(self, name: str, wanted: Record) -> None:
        """The stored key stays: a file never holds one."""
        row = self.stored.integrations.get(name) or Integration(name=name, format="")
        row.format, row.category, row.severity = (
            wanted["format"],
            wanted["category"],
            wanted["severity"],
        )
        row.policy, row.rate_limit = wanted["policy"], wanted["rate_limit"]
        interval, grace = wanted["interval"], wanted["grace"]
        interval_seconds = None if interval is None else int(interval.total_seconds())
        if interval_seconds != row.interval_seconds:  # a new watch counts from now
            row.watched_since = None if interval is None else self.now
        row.interval_seconds = interval_seconds
        row.grace_seconds = None if grace is None else int(grace.total_seconds())
        self.stored.integrations[name] = self._saved(row)

    # -- removals -----------------------------------------------------------

    def _remove_integration(self, name: str) -> None:
        self.session.delete(self.stored.integrations.pop(name))

    def _remove_responder(self, handle: str) -> None:
        row = self.stored.responders[handle]
        row.active = False
        self.session.add(row)

    def _remove_rotation(self, name: str) -> None:
        row = self.stored.rotations.pop(name)
        self.session.exec(delete(RotationVersion).where(col(RotationVersion.rotation_id) == row.id))
        self.session.exec(delete(RotationMember).where(col(RotationMember.rotation_id) == row.id))
        self.session.delete(row)

    def _remove_schedule(self, name: str) -> None:
        row = self.stored.schedules.pop(name)
        self.session.exec(delete(Override).where(col(Override.schedule_id) == row.id))
        self.session.exec(delete(ScheduleLayer).where(col(ScheduleLayer.schedule_id) == row.id))
        self.session.delete(row)

    def _remove_policy(self, name: str) -> None:
        """Cases keep their frozen policy snapshot; only the link to the policy goes, and
        each case so changed is journaled, fed to the consoles and audited."""
        row = self.stored.policies.pop(name)
        linked = (
            select(Case)
            .where(col(Case.policy_id) == row.id)
            .order_by(col(Case.id))
            .with_for_update()
        )
        for case in self.session.exec(linked).all():
            case.policy_id = None
            self.tx.journal(
                case,
                TimelineKind.POLICY_REMOVED,
                f"Policy {name} was removed by the team file; the case keeps the copy of it "
                "taken when it triggered",
            )
            self.tx.finish(case, POLICY_REMOVED, {"policy": name})
        self.session.exec(delete(PolicyStep).where(col(PolicyStep.policy_id) == row.id))
        self.session.delete(row)

    def _remove_routing(self, category: str) -> None:
        self.session.delete(self.stored.routes.pop(category))

    def _remove_sla(self, severity: int) -> None:
        self.session.delete(self.stored.slas.pop(severity))


def _set_version(row: Rotation | RotationVersion, version: RotationSpec) -> None:
    """Write one version's fields in their stored spellings."""
    text = version.to_text()
    row.timezone, row.shift, row.handoff = (
        version.timezone,
        str(text["shift"]),
        str(text["handoff"]),
    )
    row.start = version.start
    row.days = ",".join(format_days(version.days)) if version.days is not None else None
    row.hours = format_hours(version.hours) if version.hours is not None else None
    row.since, row.turn_offset = version.since, version.offset

"""Escalation planning: what one due case pages now, and where its chain goes next.

Pure of storage and of time: a plan is decided from the case's escalation state (a
`DueCase`, read by the engine's claim), the instant it runs at and the people its targets
mean at that instant (a `Resolver`). The engine writes a batch of plans in one transaction
(`app.engine.store`). The rules are the design's escalation semantics; see
`app.engine.runner` for the whole picture.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from operator import attrgetter
from typing import Any, NamedTuple

from sqlmodel import Session

from app.rules.notify import Contact, Profile, SupportHours, urgency_of
from app.services.paging import LATE_AFTER, contacts_of, profile_of
from app.services.policies import FALLBACK_POLICY, PolicySnapshot
from app.services.targets import resolve_reach
from data.clock import how_long
from data.domain import DEFAULT_HIGH_URGENCY, EngineAction, Status, TimelineKind, Urgency

log = logging.getLogger("vigil.engine")

MIN_STEP_DELAY = timedelta(seconds=1)
SUPERVISORS = ("role:supervisor",)
TRIGGERED = Status.TRIGGERED.value
ACKNOWLEDGED = Status.ACKNOWLEDGED.value


class DueCase(NamedTuple):
    """The escalation state of one claimed case, as plain values (a tuple: a burst claims
    thousands, made straight from the rows read)."""

    id: int
    ref: str
    status: str
    escalation_cycle: int
    escalation_step: int
    escalation_round: int
    next_escalation_at: datetime
    exhausted: bool
    assignee_id: int | None
    acknowledged_at: datetime | None
    acknowledged_by_id: int | None
    snoozed_until: datetime | None
    """Set while the case is snoozed: its snooze ends when it is due."""
    severity: int
    snapshot: str
    """The frozen policy as JSON text: cases on one policy share one parse."""

    def state(self) -> tuple[object, ...]:
        """Everything `plan_case` reads of the case: two cases with the same state get the
        same plan. Every field counts but `NOT_STATE`, so a field added later is part of
        the state unless said otherwise (never a plan shared by mistake)."""
        return _state_of(self)


NOT_STATE = frozenset({"id", "ref", "assignee_id"})
"""What a due case's plan does not depend on: who it is, and its assignee (which decides
only who is assigned, at write time)."""
_state_of = attrgetter(*(name for name in DueCase._fields if name not in NOT_STATE))


# --- the chain of a frozen policy ---------------------------------------------------

Position = tuple[int, int]
"""(1-based step, 0-based round)."""


@dataclass(frozen=True, slots=True)
class Step:
    delay: timedelta
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Chain:
    """A policy snapshot as the engine walks it."""

    steps: tuple[Step, ...]
    repeat: int
    high_urgency: tuple[int, ...] = DEFAULT_HIGH_URGENCY
    """The severities paged at high urgency (the policy's, else sev1 and sev2)."""

    def after(self, step: int, round_: int) -> Position | None:
        """The position that follows (step, round_); None once the chain has run out."""
        if step < len(self.steps):
            return step + 1, round_
        if self.steps and round_ < self.repeat:
            return 1, round_ + 1
        return None

    def step(self, position: Position) -> Step:
        return self.steps[position[0] - 1]


def read_chain(snapshot: object) -> Chain:
    """Check a policy snapshot (`PolicySnapshot.of`, which every reader of one uses); raise
    ValueError naming the key path that is wrong. A snapshot without steps is unreadable
    here (the engine escalates such a case with the fallback policy)."""
    if isinstance(snapshot, dict) and "steps" not in snapshot:
        raise ValueError("policy_snapshot.steps: expected a list, got None")
    policy = PolicySnapshot.of(snapshot)
    steps = tuple(
        Step(max(timedelta(seconds=step.delay_seconds), MIN_STEP_DELAY), step.targets)
        for step in policy.steps
    )
    return Chain(steps, policy.repeat, policy.high_urgency)


@lru_cache(maxsize=512)
def chain_from_json(text: str) -> Chain:
    """Snapshots are read as JSON text, so a batch of cases on one policy parses it once."""
    try:
        snapshot = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"policy_snapshot: not valid JSON ({exc})") from None
    return read_chain(snapshot)


FALLBACK_CHAIN = read_chain(FALLBACK_POLICY)


# --- planning one case --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    """A reachable responder, as plain values (ORM attribute access is slow at volume)."""

    id: int
    handle: str
    contacts: tuple[Contact, ...]
    """Each way to reach them, in their order."""
    profile: Profile
    """Their zone, quiet hours and notification rules."""
    support: SupportHours | None = None
    """The support hours of the schedule that reached them: low urgency waits for them."""


Reachable = list[Person]


class Resolver:
    """Targets resolved once per distinct target list and instant per batch."""

    def __init__(self, session: Session, at: datetime) -> None:
        self.session = session
        self.at = at
        self._cache: dict[tuple[tuple[str, ...], datetime], Reachable] = {}
        self._contacts: dict[int, tuple[Contact, ...]] = {}

    def reachable(self, targets: tuple[str, ...], at: datetime | None = None) -> Reachable:
        """The people `targets` mean at `at` (default: the batch's instant) who have a way
        to be reached, with their contacts."""
        at = self.at if at is None else at
        if all(target.startswith("user:") for target in targets):
            at = self.at  # a person named is the same person at any instant: one lookup
        found = self._cache.get((targets, at))
        if found is None:
            people = resolve_reach(self.session, list(targets), at)
            unknown = [p.id for p, _ in people if p.id is not None and p.id not in self._contacts]
            self._contacts.update(contacts_of(self.session, unknown))
            found = [
                Person(p.id, p.handle, self._contacts[p.id], profile_of(p), support)
                for p, support in people
                if p.id is not None and self._contacts[p.id]
            ]
            self._cache[(targets, at)] = found
        return found


@dataclass(slots=True)
class StepClaim:
    """One StepRun row: the claim on a (case, cycle, step, round)."""

    cycle: int
    position: Position
    due_at: datetime
    targets: tuple[str, ...]
    paged: int = 0
    missed: bool = False
    """Overtaken after downtime: its people are paged late by a catch-up (`Plan.late`)."""
    held: bool = False
    """Already in the database (found by a careful retry): not written again."""

    def copy(self) -> StepClaim:
        return StepClaim(
            self.cycle, self.position, self.due_at, self.targets, self.paged, self.missed, self.held
        )


@dataclass(slots=True)
class Plan:
    """What one claimed case will write; built first, then written in bulk with its batch."""

    row: DueCase
    status: str
    cycle: int
    acknowledged_at: datetime | None
    acknowledged_by: int | None
    claims: list[StepClaim] = field(default_factory=list)
    events: list[tuple[TimelineKind, str, dict[str, Any]]] = field(default_factory=list)
    pages: Reachable = field(default_factory=list)
    """Who the live claim pages."""
    late: list[tuple[StepClaim, Reachable]] = field(default_factory=list)
    """A catch-up: each overtaken claim and the people paged late for it (each person once
    per case, and nobody the live claim pages)."""
    notice: Reachable = field(default_factory=list)
    """The supervisors told that escalation was delayed (on one case of a batch)."""
    notice_due: datetime | None = None
    reason: str = "escalation"
    next_at: datetime | None = None
    exhausted: bool = False
    missed: int = 0
    """Steps overtaken (paged late by the catch-up)."""
    skipped: int = 0
    behind: timedelta = timedelta(0)
    """How long after its due time the case's first due step is paged."""
    urgency: str = Urgency.HIGH.value
    """How hard its pages push (by severity and the policy): low ones wait out quiet hours."""

    @property
    def delayed(self) -> bool:
        """Escalation was held up: steps overtaken, or paged `LATE_AFTER` late or more."""
        return bool(self.missed) or self.behind >= LATE_AFTER

    @property
    def late_pages(self) -> int:
        return sum(len(people) for _, people in self.late)

    @property
    def live(self) -> StepClaim:
        """The claim this plan pages (the last one; the others were missed or empty)."""
        return self.claims[-1]

    @property
    def assignee(self) -> int | None:
        """A case without an assignee gets the first person paged."""
        if self.row.assignee_id is not None:
            return self.row.assignee_id
        for people in (self.pages, *(people for _, people in self.late)):
            if people:
                return people[0].id
        return None

    @property
    def action(self) -> str:
        return (EngineAction.EXHAUSTED if self.exhausted else EngineAction.ESCALATE).value

    def copy_for(self, row: DueCase) -> Plan:
        """This plan for another case in the same state (`DueCase.state`): its own claims
        and timeline entries, the same people."""
        claims = [claim.copy() for claim in self.claims]
        late = self.late
        if late:
            own = {id(old): new for old, new in zip(self.claims, claims, strict=True)}
            late = [(own[id(claim)], people) for claim, people in late]
        return Plan(  # every field in order, by position (a burst copies thousands)
            row,
            self.status,
            self.cycle,
            self.acknowledged_at,
            self.acknowledged_by,
            claims,
            self.events.copy(),
            self.pages,
            late,
            self.notice.copy(),
            self.notice_due,
            self.reason,
            self.next_at,
            self.exhausted,
            self.missed,
            self.skipped,
            self.behind,
            self.urgency,
        )

    def alike(self) -> tuple[Any, ...] | None:
        """Equal for plans whose `detail` is equal, and cheap: copies of one plan share its
        people (None for a plan with pages sent late or a delay notice: see `detail`)."""
        if self.late or self.notice:
            return None
        position = self.live.position
        return (self.exhausted, self.cycle, position, id(self.pages), self.missed, self.skipped)

    def detail(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The audit record's detail, with a key equal for equal details (JSON memo)."""
        step, round_ = self.live.position
        paged = [person.handle for person in self.pages]
        detail: dict[str, Any] = {
            "cycle": self.cycle,
            "step": step,
            "round": round_,
            "paged": paged,
            "missed": self.missed,
            "skipped": self.skipped,
        }
        if not (self.late or self.notice):
            return (self.cycle, step, round_, *paged, self.missed, self.skipped), detail
        detail["late"] = [
            [person.handle, claim.position[0], claim.position[1]]
            for claim, people in self.late
            for person in people
        ]
        if self.notice:
            detail["delay_notice"] = [person.handle for person in self.notice]
        return (id(self),), detail


def readable_utc(moment: datetime) -> str:
    """`2026-12-06 15:50:28Z`: an instant in a timeline or a log line, for people."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def describe_positions(items: Iterable[Position]) -> str:
    return ", ".join(f"step {step} (round {round_ + 1})" for step, round_ in items)


def _step_failed(ref: str, position: Position, exc: ValueError) -> Reachable:
    """A step that cannot be resolved pages nobody; the chain goes on."""
    log.error("%s: %s cannot be resolved (%s)", ref, describe_positions([position]), exc)
    return []


def plan_case(row: DueCase, now: datetime, resolver: Resolver) -> Plan:
    """Decide what one due case pages now, and where it goes next.

    After downtime the chain is walked as it would have run (each overtaken step taking
    its full delay) to the step it would have reached by now, which pages as usual; every
    person an overtaken step would have paged is paged once now, late (`_plan_catch_up`).
    """
    plan = Plan(
        row,
        status=row.status,
        cycle=row.escalation_cycle,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by_id,
    )
    chain = _read_case_chain(plan)
    plan.urgency = urgency_of(row.severity, chain.high_urgency).value
    step, round_ = row.escalation_step, row.escalation_round
    due: datetime = row.next_escalation_at
    plan.behind = max(timedelta(0), now - due)
    if plan.status == ACKNOWLEDGED:
        plan.status, plan.cycle, step, round_ = TRIGGERED, plan.cycle + 1, 0, 0
        plan.acknowledged_at = plan.acknowledged_by = None
        if row.snoozed_until is not None:
            text = f"Snoozed until {readable_utc(row.snoozed_until)}: escalating again from step 1"
            plan.events.append((TimelineKind.SNOOZE_END, text, {"cycle": plan.cycle}))
        else:
            text = (
                f"Acknowledged but not resolved by {readable_utc(due)}: "
                "escalating again from step 1"
            )
            plan.events.append((TimelineKind.ACK_TIMEOUT, text, {"cycle": plan.cycle}))
    elif row.exhausted or step > len(chain.steps):
        plan.cycle, step, round_ = plan.cycle + 1, 0, 0
        text = "Escalating again from step 1 after the chain ran out"
        plan.events.append((TimelineKind.RESTART, text, {"cycle": plan.cycle}))

    overtaken: list[StepClaim] = []
    skipped: list[Position] = []
    last_round = round_
    position = chain.after(step, round_)
    while position is not None:
        current = chain.step(position)
        if due + current.delay <= now:
            # After downtime: the step after this one was already due by now.
            claim = StepClaim(plan.cycle, position, due, current.targets, missed=True)
            plan.claims.append(claim)
            overtaken.append(claim)
            due += current.delay
        else:
            plan.claims.append(StepClaim(plan.cycle, position, due, current.targets))
            try:
                plan.pages = resolver.reachable(current.targets)
            except ValueError as exc:
                plan.pages = _step_failed(row.ref, position, exc)
            if plan.pages:
                plan.live.paged = len(plan.pages)
                plan.next_at = now + current.delay
                break
            skipped.append(position)
            due = now
        last_round = position[1]
        position = chain.after(*position)

    if skipped:
        text = f"Nobody on call or reachable for {describe_positions(skipped)}: moved on at once"
        data = [{"step": s, "round": r} for s, r in skipped]
        plan.events.append((TimelineKind.SKIPPED, text, {"skipped": data}))
    plan.missed, plan.skipped = len(overtaken), len(skipped)
    if position is None:
        _plan_exhaustion(plan, (len(chain.steps) + 1, last_round), due, resolver)
    if overtaken:
        _plan_catch_up(plan, overtaken, now, resolver)
    return plan


def _plan_catch_up(
    plan: Plan, overtaken: list[StepClaim], now: datetime, resolver: Resolver
) -> None:
    """Page once, late, everyone the overtaken steps would have paged (the people they
    meant at their due times), except whom the live claim pages now; say so in the
    timeline."""
    seen = {person.id for person in plan.pages}
    lines: list[str] = []
    data: list[dict[str, Any]] = []
    for claim in overtaken:
        try:
            people = resolver.reachable(claim.targets, claim.due_at)
        except ValueError as exc:
            people = _step_failed(plan.row.ref, claim.position, exc)
        fresh = [person for person in people if person.id not in seen]
        seen.update(person.id for person in fresh)
        again = [person.handle for person in people if person not in fresh]
        claim.paged = len(fresh)
        plan.late.append((claim, fresh))
        late_by = now - claim.due_at
        line = describe_positions([claim.position]) + ": "
        if fresh:
            line += f"{', '.join(person.handle for person in fresh)}, {how_long(late_by)} late"
            if again:
                line += f" ({', '.join(again)} paged once only)"
        elif again:
            line += f"{', '.join(again)} paged once only"
        else:
            line += "nobody reachable"
        lines.append(line)
        data.append(
            {
                "step": claim.position[0],
                "round": claim.position[1],
                "due_at": claim.due_at.isoformat(),
                "late_by_seconds": int(late_by.total_seconds()),
                "paged": [person.handle for person in fresh],
            }
        )
    continues = "exhaustion" if plan.exhausted else describe_positions([plan.live.position])
    text = (
        f"Escalation was {how_long(plan.behind)} behind (the engine was not running or "
        f"could not reach the database); caught up by paging late, once each: "
        f"{'; '.join(lines)}. Continuing at {continues}"
    )
    summary = {"late": data, "behind_seconds": _seconds(plan)}
    plan.events.append((TimelineKind.CATCH_UP, text, summary))


def _seconds(plan: Plan) -> int:
    return int(plan.behind.total_seconds())


def plan_delay_notice(plans: list[Plan], now: datetime, resolver: Resolver) -> Plan | None:
    """Tell the supervisors on duty, once for a batch, that escalation was delayed (for how
    long, how many cases, which). The notice rides on the most delayed case's live claim
    (its pages are step `-step` of that claim, reason "delayed"), so it is written with
    that claim or not at all. Returns the plan that carries it."""
    delayed = [plan for plan in plans if plan.delayed and not plan.live.held]
    if not delayed:
        return None
    anchor = min(delayed, key=lambda plan: (plan.row.next_escalation_at, plan.row.id))
    try:
        anchor.notice = resolver.reachable(SUPERVISORS)
    except ValueError as exc:
        anchor.notice = _step_failed(anchor.row.ref, anchor.live.position, exc)
    anchor.notice_due = anchor.row.next_escalation_at
    refs = [plan.row.ref for plan in delayed]
    longest = how_long(max(plan.behind for plan in delayed))
    who = ", ".join(person.handle for person in anchor.notice)
    if not who:
        who = "nobody (no supervisor is reachable)"
    count = f"{len(refs)} case{'s' if len(refs) != 1 else ''}"
    text = (
        f"Escalation was delayed by up to {longest} for {count} ({', '.join(refs)}): "
        f"caught up now; told the supervisors on duty: {who}"
    )
    log.warning(text)
    data = {
        "cases": refs,
        "behind_seconds": max(_seconds(plan) for plan in delayed),
        "told": [person.handle for person in anchor.notice],
    }
    anchor.events.append((TimelineKind.DELAYED, text, data))
    return anchor


def _read_case_chain(plan: Plan) -> Chain:
    try:
        return chain_from_json(plan.row.snapshot)
    except ValueError as exc:
        log.error("%s: cannot read its policy (%s); using the fallback policy", plan.row.ref, exc)
        text = (
            f"The case's policy could not be read ({exc}); "
            f"escalating with {FALLBACK_POLICY['name']}"
        )
        plan.events.append((TimelineKind.FALLBACK_POLICY, text, {}))
        return FALLBACK_CHAIN


def _plan_exhaustion(plan: Plan, position: Position, due: datetime, resolver: Resolver) -> None:
    """Out of steps: the supervisors on duty are paged once and nothing more is due."""
    plan.claims.append(StepClaim(plan.cycle, position, due, SUPERVISORS))
    try:
        plan.pages = resolver.reachable(SUPERVISORS)
    except ValueError as exc:
        plan.pages = _step_failed(plan.row.ref, position, exc)
    plan.live.paged = len(plan.pages)
    plan.reason = "exhausted"
    plan.exhausted = True
    plan.next_at = None
    who = ", ".join(person.handle for person in plan.pages)
    if not who:
        who = "nobody (no supervisor is reachable)"
        log.warning("%s: escalation exhausted and no supervisor is reachable", plan.row.ref)
    rounds = position[1] + 1
    text = (
        f"Escalation exhausted after {rounds} round{'s' if rounds != 1 else ''}: "
        f"paging the supervisors on duty: {who}"
    )
    plan.events.append((TimelineKind.EXHAUSTED, text, {"round": position[1]}))

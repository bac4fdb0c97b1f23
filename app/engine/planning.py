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
from typing import Any

from sqlmodel import Session

from app.services.paging import contacts_of
from app.services.policies import FALLBACK_POLICY
from app.services.targets import resolve_targets
from data.domain import Status

log = logging.getLogger("vigil.engine")

MIN_STEP_DELAY = timedelta(seconds=1)
SUPERVISORS = ("role:supervisor",)
TRIGGERED = Status.TRIGGERED.value
ACKNOWLEDGED = Status.ACKNOWLEDGED.value


@dataclass(frozen=True, slots=True)
class DueCase:
    """The escalation state of one claimed case, as plain values."""

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
    snapshot: str
    """The frozen policy as JSON text: cases on one policy share one parse."""


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

    def after(self, step: int, round_: int) -> Position | None:
        """The position that follows (step, round_); None once the chain has run out."""
        if step < len(self.steps):
            return step + 1, round_
        if self.steps and round_ < self.repeat:
            return 1, round_ + 1
        return None

    def step(self, position: Position) -> Step:
        return self.steps[position[0] - 1]


def _whole(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: expected a whole number of at least 0, got {value!r}")
    return value


def read_chain(snapshot: object) -> Chain:
    """Check a policy snapshot; raise ValueError naming the key path that is wrong."""
    if not isinstance(snapshot, dict):
        raise ValueError(f"policy_snapshot: expected an object, got {type(snapshot).__name__}")
    raw_steps = snapshot.get("steps")
    if not isinstance(raw_steps, list):
        raise ValueError(f"policy_snapshot.steps: expected a list, got {raw_steps!r}")
    steps = []
    for index, raw in enumerate(raw_steps):
        where = f"policy_snapshot.steps[{index}]"
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: expected an object, got {raw!r}")
        delay = _whole(raw.get("delay_seconds"), f"{where}.delay_seconds")
        targets = raw.get("targets")
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise ValueError(f"{where}.targets: expected a list of strings, got {targets!r}")
        steps.append(Step(max(timedelta(seconds=delay), MIN_STEP_DELAY), tuple(targets)))
    repeat = _whole(snapshot.get("repeat", 0), "policy_snapshot.repeat")
    return Chain(tuple(steps), repeat)


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
    contacts: tuple[tuple[int, str], ...]
    """(contact method id, channel) of each way to reach them, in their order."""


Reachable = list[Person]


class Resolver:
    """Targets resolved once per distinct target list per batch, at the batch's instant."""

    def __init__(self, session: Session, at: datetime) -> None:
        self.session = session
        self.at = at
        self._cache: dict[tuple[str, ...], Reachable] = {}
        self._contacts: dict[int, tuple[tuple[int, str], ...]] = {}

    def reachable(self, targets: tuple[str, ...]) -> Reachable:
        """The people `targets` mean now who have a way to be reached, with their contacts."""
        found = self._cache.get(targets)
        if found is None:
            people = resolve_targets(self.session, list(targets), self.at)
            unknown = [p.id for p in people if p.id is not None and p.id not in self._contacts]
            for responder_id, methods in contacts_of(self.session, unknown).items():
                self._contacts[responder_id] = tuple((m.id or 0, m.kind) for m in methods)
            found = [
                Person(p.id, p.handle, self._contacts[p.id])
                for p in people
                if p.id is not None and self._contacts[p.id]
            ]
            self._cache[targets] = found
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
    held: bool = False
    """Already in the database (found by a careful retry): not written again."""


@dataclass(slots=True)
class Plan:
    """What one claimed case will write; built first, then written in bulk with its batch."""

    row: DueCase
    status: str
    cycle: int
    acknowledged_at: datetime | None
    acknowledged_by: int | None
    claims: list[StepClaim] = field(default_factory=list)
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    pages: Reachable = field(default_factory=list)
    reason: str = "escalation"
    next_at: datetime | None = None
    exhausted: bool = False
    missed: int = 0
    skipped: int = 0

    @property
    def live(self) -> StepClaim:
        """The claim this plan pages (the last one; the others were missed or empty)."""
        return self.claims[-1]

    @property
    def assignee(self) -> int | None:
        """A case without an assignee gets the first person paged."""
        if self.row.assignee_id is not None or not self.pages:
            return self.row.assignee_id
        return self.pages[0].id

    @property
    def action(self) -> str:
        return "engine.exhausted" if self.exhausted else "engine.escalate"

    def detail(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The audit record's detail, with a key equal for equal details (JSON memo)."""
        step, round_ = self.live.position
        paged = [person.handle for person in self.pages]
        key = (self.cycle, step, round_, *paged, self.missed, self.skipped)
        return key, {
            "cycle": self.cycle,
            "step": step,
            "round": round_,
            "paged": paged,
            "missed": self.missed,
            "skipped": self.skipped,
        }


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def describe_positions(items: Iterable[Position]) -> str:
    return ", ".join(f"step {step} (round {round_ + 1})" for step, round_ in items)


def _step_failed(ref: str, position: Position, exc: ValueError) -> Reachable:
    """A step that cannot be resolved pages nobody; the chain goes on."""
    log.error("%s: %s cannot be resolved (%s)", ref, describe_positions([position]), exc)
    return []


def plan_case(row: DueCase, now: datetime, resolver: Resolver) -> Plan:
    """Decide what one due case pages now, and where it goes next."""
    plan = Plan(
        row,
        status=row.status,
        cycle=row.escalation_cycle,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by_id,
    )
    chain = _read_case_chain(plan)
    step, round_ = row.escalation_step, row.escalation_round
    due: datetime = row.next_escalation_at
    if plan.status == ACKNOWLEDGED:
        plan.status, plan.cycle, step, round_ = TRIGGERED, plan.cycle + 1, 0, 0
        plan.acknowledged_at = plan.acknowledged_by = None
        text = f"Acknowledged but not resolved by {utc_text(due)}: escalating again from step 1"
        plan.events.append(("ack_timeout", text, {"cycle": plan.cycle}))
    elif row.exhausted or step > len(chain.steps):
        plan.cycle, step, round_ = plan.cycle + 1, 0, 0
        text = "Escalating again from step 1 after the chain ran out"
        plan.events.append(("restart", text, {"cycle": plan.cycle}))

    missed: list[StepClaim] = []
    skipped: list[Position] = []
    last_round = round_
    position = chain.after(step, round_)
    while position is not None:
        # After downtime: pass every step whose successor was already due by now.
        if due + chain.step(position).delay <= now:
            claim = StepClaim(plan.cycle, position, due, chain.step(position).targets, missed=True)
            plan.claims.append(claim)
            missed.append(claim)
            due += chain.step(position).delay
        else:
            current = chain.step(position)
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

    if missed:
        resumed = "exhaustion" if position is None else describe_positions([position])
        text = f"The engine was behind: missed {describe_positions(c.position for c in missed)}, "
        data = [
            {"step": c.position[0], "round": c.position[1], "due_at": c.due_at.isoformat()}
            for c in missed
        ]
        plan.events.append(("missed", text + f"not paged; resuming at {resumed}", {"missed": data}))
    if skipped:
        text = f"Nobody on call or reachable for {describe_positions(skipped)}: moved on at once"
        data = [{"step": s, "round": r} for s, r in skipped]
        plan.events.append(("skipped", text, {"skipped": data}))
    plan.missed, plan.skipped = len(missed), len(skipped)
    if position is None:
        _plan_exhaustion(plan, (len(chain.steps) + 1, last_round), due, resolver)
    return plan


def _read_case_chain(plan: Plan) -> Chain:
    try:
        return chain_from_json(plan.row.snapshot)
    except ValueError as exc:
        log.error("%s: cannot read its policy (%s); using the fallback policy", plan.row.ref, exc)
        text = (
            f"The case's policy could not be read ({exc}); "
            f"escalating with {FALLBACK_POLICY['name']}"
        )
        plan.events.append(("fallback_policy", text, {}))
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
    plan.events.append(("exhausted", text, {"round": position[1]}))

"""Storing parsed intake events through the case service, one event at a time.

Each event is its own transaction: a bad event never blocks or undoes a good one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.core.errors import BadInput, NotFound, NothingToDo, Refused
from app.intake.events import IntakeError, IntakeEvent
from app.intake.registry import parse_intake
from app.services.cases import CaseService


@dataclass
class IntakeOutcome:
    opened: list[str] = field(default_factory=list)
    deduplicated: list[str] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    case_ids: list[int] = field(default_factory=list)
    errors: list[IntakeError] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (
            self.opened
            or self.deduplicated
            or self.acknowledged
            or self.resolved
            or self.unchanged
            or self.errors
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "deduplicated": self.deduplicated,
            "acknowledged": self.acknowledged,
            "resolved": self.resolved,
            "unchanged": self.unchanged,
            "errors": [{"position": e.position, "reason": e.reason} for e in self.errors],
        }

    def as_text(self) -> str:
        parts = [
            f"{len(self.opened)} opened",
            f"{len(self.deduplicated)} deduplicated",
            f"{len(self.acknowledged)} acknowledged",
            f"{len(self.resolved)} resolved",
        ]
        if self.unchanged:
            parts.append(f"{len(self.unchanged)} unchanged")
        # An event can be wrong in several ways: count the events, then the problems.
        rejected = len({e.position for e in self.errors})
        problems = len(self.errors)
        parts.append(
            f"{rejected} rejected" + (f" ({problems} problems)" if problems != rejected else "")
        )
        lines = [", ".join(parts) + "."]
        if self.opened:
            lines.append("Opened: " + " ".join(self.opened))
        return "\n".join(lines)


def _apply(service: CaseService, actor: str, event: IntakeEvent, outcome: IntakeOutcome) -> None:
    if event.action == "trigger":
        assert event.title is not None
        assert event.category is not None
        assert event.severity is not None
        result = service.open_case(
            actor,
            title=event.title,
            category=event.category.value,
            severity=event.severity,
            details=event.details,
            policy=event.policy,
            dedup_key=event.dedup_key,
            sensitive=event.sensitive,
            source=event.source,
        )
        (outcome.opened if result.created else outcome.deduplicated).append(result.ref)
        if result.created:
            outcome.case_ids.append(result.case_id)
        return
    assert event.dedup_key is not None
    ref = service.open_ref_for_key(event.dedup_key)
    if ref is None:
        raise NotFound(f"dedup_key: no open case with dedup key {event.dedup_key!r}")
    try:
        if event.action == "acknowledge":
            service.acknowledge(actor, ref)
            outcome.acknowledged.append(ref)
        else:
            service.resolve(actor, ref)
            outcome.resolved.append(ref)
    except NothingToDo:
        outcome.unchanged.append(ref)


def store_intake(service: CaseService, actor: str, text: str, fmt: str = "auto") -> IntakeOutcome:
    try:
        batch = parse_intake(text, fmt)
    except ValueError as exc:
        raise BadInput("--format", str(exc)) from None
    service.require_actor(actor)
    outcome = IntakeOutcome(errors=list(batch.errors))
    for event in batch.events:
        try:
            _apply(service, actor, event, outcome)
        except (BadInput, Refused) as exc:
            outcome.errors.append(IntakeError(event.position, str(exc)))
    outcome.errors.sort(key=lambda e: _position_key(e.position))
    return outcome


def _position_key(position: str) -> tuple[int, ...]:
    numbers = [int(token) for token in position.replace(",", " ").split() if token.isdigit()]
    return tuple(numbers)

"""Storing parsed intake events through the case service, one event at a time.

Each event is its own transaction: a bad event never blocks or undoes a good one. The same
rules hold for `vigil intake` and for `vigil serve`: an acknowledge or resolve whose case is
already in that state is unchanged, and one whose dedup key has no open case (unknown, or
already resolved: Alertmanager re-sends resolved alerts) is accepted and dropped, as
PagerDuty does. A sender's resolve closes its case whoever it is assigned to. A change event
is a change note (`vigil changes`), never a page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.core.errors import BadInput, NothingToDo, Refused
from app.intake.events import NO_DEFAULTS, ChangeEvent, IntakeDefaults, IntakeError, IntakeEvent
from app.intake.registry import parse_intake
from app.services.cases import CaseService
from app.services.unit_of_work import actor_of
from data import audit
from data.intake import ChangeNote


@dataclass
class IntakeOutcome:
    opened: list[str] = field(default_factory=list)
    deduplicated: list[str] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # dedup keys with no open case
    changes: list[int] = field(default_factory=list)  # change notes recorded
    case_ids: list[int] = field(default_factory=list)
    errors: list[IntakeError] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (
            self.opened
            or self.deduplicated
            or self.acknowledged
            or self.resolved
            or self.unchanged
            or self.dropped
            or self.changes
            or self.errors
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "deduplicated": self.deduplicated,
            "acknowledged": self.acknowledged,
            "resolved": self.resolved,
            "unchanged": self.unchanged,
            "dropped": self.dropped,
            "changes": len(self.changes),
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
        if self.dropped:
            parts.append(f"{len(self.dropped)} dropped (no open case for the dedup key)")
        if self.changes:
            parts.append(f"{len(self.changes)} change notes")
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


def apply_event(
    service: CaseService,
    actor: str,
    event: IntakeEvent | ChangeEvent,
    outcome: IntakeOutcome,
    integration: str = "",
) -> None:
    """Store one parsed event and say in `outcome` what it did; raises `BadInput` or
    `Refused` for an event the desk refuses (an unknown policy, say)."""
    if isinstance(event, ChangeEvent):
        outcome.changes.append(record_change_note(service, actor, event, integration))
        return
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
            source=f"{event.source}:{integration}" if integration else event.source,
            links=[(link.href, link.text) for link in event.links],
        )
        (outcome.opened if result.created else outcome.deduplicated).append(result.ref)
        if result.created:
            outcome.case_ids.append(result.case_id)
        return
    assert event.dedup_key is not None
    ref = service.open_ref_for_key(event.dedup_key)
    if ref is None:
        outcome.dropped.append(event.dedup_key)
        return
    try:
        if event.action == "acknowledge":
            service.acknowledge(actor, ref)
            outcome.acknowledged.append(ref)
        else:
            sender = f"{event.source} integration {integration}" if integration else event.source
            service.resolve(actor, ref, sender=sender)
            outcome.resolved.append(ref)
    except NothingToDo:
        outcome.unchanged.append(ref)


def record_change_note(
    service: CaseService, actor: str, event: ChangeEvent, integration: str = ""
) -> int:
    """Keep a change event as a note the desk can read; audited, never paged."""
    happened = None
    if event.happened_at:
        happened = datetime.fromisoformat(event.happened_at.replace("Z", "+00:00"))
        happened = happened.astimezone(UTC) if happened.tzinfo else happened.replace(tzinfo=UTC)
    with service.db.write() as session:
        audit.lock_head(session)
        actor_row = actor_of(session, actor)
        now = service.clock.now()
        note = ChangeNote(
            received_at=now,
            happened_at=happened,
            integration=integration,
            summary=event.summary,
            source=event.source,
            details=event.details,
            links=[{"href": link.href, "text": link.text} for link in event.links],
        )
        session.add(note)
        session.flush()
        audit.append(
            session,
            at=now,
            actor=actor_row.handle,
            action="change.note",
            case_ref=None,
            detail={"integration": integration, "source": event.source},
        )
        assert note.id is not None
        return note.id


def store_intake(
    service: CaseService,
    actor: str,
    text: str,
    fmt: str = "auto",
    defaults: IntakeDefaults = NO_DEFAULTS,
) -> IntakeOutcome:
    try:
        batch = parse_intake(text, fmt, defaults)
    except ValueError as exc:
        raise BadInput("--format", str(exc)) from None
    service.require_actor(actor)
    outcome = IntakeOutcome(errors=list(batch.errors))
    for event in batch.events:
        try:
            apply_event(service, actor, event, outcome, defaults.integration)
        except (BadInput, Refused) as exc:
            outcome.errors.append(IntakeError(event.position, str(exc)))
    outcome.errors.sort(key=lambda e: _position_key(e.position))
    return outcome


def _position_key(position: str) -> tuple[int, ...]:
    numbers = [int(token) for token in position.replace(",", " ").split() if token.isdigit()]
    return tuple(numbers)

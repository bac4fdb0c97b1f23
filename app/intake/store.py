"""Storing parsed intake events through the case service, one event at a time.

Each event is its own transaction, in which a new case also pages its first step: a bad
event never blocks or undoes a good one. `vigil intake` keeps its batch's progress in the
same transactions (`store_intake`): an input known by the SHA-256 of its bytes, each event by
its number in it, so the same input given again after a run stopped stores only the events
that run had not; events are never merged because they look alike. The same
rules hold for `vigil intake` and for `vigil serve`: an acknowledge or resolve whose case is
already in that state is unchanged, and one whose dedup key has no open case (unknown, or
already resolved: Alertmanager re-sends resolved alerts) is accepted and dropped, as
PagerDuty does. A sender's resolve closes its case whoever it is assigned to. A change event
is a change note (`vigil changes`), never a page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlmodel import col, select

from app.core.errors import BadInput, NothingToDo, Refused
from app.intake.events import ChangeEvent, IntakeError, IntakeEvent
from app.intake.registry import parse_intake
from app.services.cases import CaseService, NewCase, OpenResult
from app.services.unit_of_work import Along, Tx
from data import audit
from data.db import Database
from data.intake import ChangeNote, InputBatch, InputEvent


@dataclass(frozen=True)
class EventResult:
    """What one event did, said as soon as its transaction commits."""

    position: str
    outcome: str
    """opened, deduplicated, acknowledged, resolved, unchanged, dropped, change or
    rejected."""
    ref: str | None = None
    paged: tuple[str, ...] = ()
    """Who a new case's first step paged, in the transaction that opened it."""
    detail: str = ""
    """The dedup key of a dropped event; the reason of a rejected one."""
    case_id: int | None = None
    """The case this run opened (not said: a ref is what people use)."""
    earlier: bool = False
    """Stored by an earlier run of the same input (a resumed batch)."""

    def as_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"position": self.position, "outcome": self.outcome}
        if self.ref is not None:
            found["ref"] = self.ref
        if self.outcome == "opened":
            found["paged"] = list(self.paged)
        if self.outcome == "dropped":
            found["dedup_key"] = self.detail
        if self.outcome == "rejected":
            found["reason"] = self.detail
        found["earlier"] = self.earlier
        return found

    def as_text(self) -> str:
        said = {
            "opened": f"opened {self.ref}, paged {', '.join(self.paged) or 'nobody reachable'}",
            "deduplicated": f"joined the open case {self.ref} (same dedup key)",
            "acknowledged": f"acknowledged {self.ref}",
            "resolved": f"resolved {self.ref}",
            "unchanged": f"{self.ref} unchanged",
            "dropped": f"dropped (no open case for dedup key {self.detail!r})",
            "change": "change note recorded",
            "rejected": f"rejected: {self.detail}",
        }[self.outcome]
        return f"{self.position}: {said}" + (" (stored by an earlier run)" if self.earlier else "")


@dataclass
class IntakeOutcome:
    opened: list[str] = field(default_factory=list)
    deduplicated: list[str] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # dedup keys with no open case
    changes: int = 0  # change notes recorded
    case_ids: list[int] = field(default_factory=list)  # cases opened by this run
    errors: list[IntakeError] = field(default_factory=list)

    def add(self, result: EventResult) -> None:
        if result.outcome == "change":
            self.changes += 1
        elif result.outcome == "dropped":
            self.dropped.append(result.detail)
        elif result.outcome == "rejected":
            self.errors.append(IntakeError(result.position, result.detail))
        else:
            assert result.ref is not None
            kept: list[str] = getattr(self, result.outcome)
            kept.append(result.ref)
            if result.case_id is not None and result.outcome == "opened":
                self.case_ids.append(result.case_id)

    def extend(self, other: IntakeOutcome) -> None:
        """Add what `other` counted (a group's events, once committed): every field, so a
        field added later is added here too."""
        for kind in fields(self):
            mine = getattr(self, kind.name)
            if isinstance(mine, list):
                mine.extend(getattr(other, kind.name))
        self.changes += other.changes

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
            "changes": self.changes,
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
            parts.append(f"{self.changes} change notes")
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
    along: Along | None = None,
) -> EventResult:
    """Store one parsed event, add what it did to `outcome` and return it; raises
    `BadInput` or `Refused` for an event the desk refuses (an unknown policy, say).
    `along` writes more in the event's transaction, if it stores anything."""
    result = _store_event(service, actor, event, integration, along)
    outcome.add(result)
    return result


def _store_event(
    service: CaseService,
    actor: str,
    event: IntakeEvent | ChangeEvent,
    integration: str,
    along: Along | None,
) -> EventResult:
    position = event.position
    if isinstance(event, ChangeEvent):
        record_change_note(service, actor, event, integration, along)
        return EventResult(position, "change")
    if event.action == "trigger":
        opened = service.open_case(actor, **vars(_new_case(event, integration)), along=along)
        return _opened(event, opened)
    assert event.dedup_key is not None
    ref = service.open_ref_for_key(event.dedup_key)
    if ref is None:
        return EventResult(position, "dropped", detail=event.dedup_key)
    try:
        if event.action == "acknowledge":
            service.acknowledge(actor, ref, along)
            return EventResult(position, "acknowledged", ref)
        service.resolve(actor, ref, sender=_sender(event, integration), along=along)
        return EventResult(position, "resolved", ref)
    except NothingToDo:
        return EventResult(position, "unchanged", ref)


def _sender(event: IntakeEvent, integration: str) -> str:
    """Who says a case is over, as its timeline and audit record name them."""
    return f"{event.source} integration {integration}" if integration else event.source


def _new_case(event: IntakeEvent, integration: str) -> NewCase:
    assert event.title is not None
    assert event.category is not None
    assert event.severity is not None
    return NewCase(
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


def _opened(event: IntakeEvent, opened: OpenResult) -> EventResult:
    if not opened.created:
        return EventResult(event.position, "deduplicated", opened.ref)
    return EventResult(event.position, "opened", opened.ref, opened.paged, case_id=opened.case_id)


def apply_together(
    service: CaseService,
    actor: str,
    events: Sequence[tuple[IntakeEvent | ChangeEvent, str, IntakeOutcome]],
) -> None:
    """Store events of several requests in order, each as (event, integration, the outcome
    it adds to), inside a group (`UnitOfWork.together`): each run of triggers is opened in
    one change (`CaseService.open_cases`), each run of resolves closed in one change
    (`CaseService.resolve_from_senders`), every other event alone, as `apply_event`."""
    run: list[tuple[IntakeEvent, str, IntakeOutcome]] = []

    def open_triggers() -> None:
        wanted = [_new_case(event, integration) for event, integration, _ in run]
        results = service.open_cases(actor, wanted)
        for (event, _, outcome), result in zip(run, results, strict=True):
            if isinstance(result, BadInput):
                outcome.errors.append(IntakeError(event.position, str(result)))
            else:
                outcome.add(_opened(event, result))

    def resolve_all() -> None:
        keys = [event.dedup_key or "" for event, _, _ in run]  # a resolve always has one
        senders = [_sender(event, integration) for event, integration, _ in run]
        refs = service.resolve_from_senders(actor, list(zip(keys, senders, strict=True)))
        for (event, _, outcome), key, ref in zip(run, keys, refs, strict=True):
            if ref is None:
                outcome.add(EventResult(event.position, "dropped", detail=key))
            else:
                outcome.add(EventResult(event.position, "resolved", ref))

    def finish_run() -> None:
        if run:
            (open_triggers if run[0][0].action == "trigger" else resolve_all)()
            run.clear()

    for event, integration, outcome in events:
        action = event.action if isinstance(event, IntakeEvent) else None
        if run and action != run[0][0].action:
            finish_run()
        if isinstance(event, IntakeEvent) and action in ("trigger", "resolve"):
            run.append((event, integration, outcome))
        else:
            apply_or_refuse(service, actor, event, outcome, integration)
    finish_run()


def apply_or_refuse(
    service: CaseService,
    actor: str,
    event: IntakeEvent | ChangeEvent,
    outcome: IntakeOutcome,
    integration: str,
) -> None:
    """`apply_event`, an event the desk refuses counted among `outcome`'s errors."""
    try:
        apply_event(service, actor, event, outcome, integration)
    except (BadInput, Refused) as exc:
        outcome.errors.append(IntakeError(event.position, str(exc)))


def record_change_note(
    service: CaseService,
    actor: str,
    event: ChangeEvent,
    integration: str = "",
    along: Along | None = None,
) -> int:
    """Keep a change event as a note the desk can read; audited, never paged."""
    with service.work(actor, along) as tx:
        note = ChangeNote(
            received_at=tx.now,
            happened_at=event.happened_at,
            integration=integration,
            summary=event.summary,
            source=event.source,
            details=event.details,
            links=[{"href": link.href, "text": link.text} for link in event.links],
        )
        tx.session.add(note)
        tx.session.flush()
        audit.append(
            tx.session,
            at=tx.now,
            actor=tx.actor.handle,
            action="change.note",
            case_ref=None,
            detail={"integration": integration, "source": event.source},
        )
        assert note.id is not None
        return note.id


# --- batches of `vigil intake` ------------------------------------------------------

OUTCOME_OF = {
    "case.open": "opened",
    "case.duplicate": "deduplicated",
    "case.ack": "acknowledged",
    "case.ack_partial": "acknowledged",
    "case.resolve": "resolved",
}
"""The result an event's last audited change means (no change at all: a change note)."""


@dataclass
class BatchProgress:
    """A batch of `vigil intake` in the database: what its events stored so far."""

    batch_id: int
    digest: str
    done: dict[int, EventResult]
    """Results stored by earlier runs, by the event's number."""

    def recorder(self, number: int) -> Along:
        """Writes that event `number` is done, in the transaction that stores it."""

        def record(tx: Tx) -> None:
            outcome, ref, paged = "change", None, []
            if tx.done:
                action, case_id = tx.done[-1]
                outcome = OUTCOME_OF[action]
                ref, paged = tx.refs[case_id], tx.paged.get(case_id, [])
            tx.session.add(
                InputEvent(
                    batch_id=self.batch_id, number=number, outcome=outcome, ref=ref, paged=paged
                )
            )

        return record


def input_digest(data: bytes) -> str:
    """A batch's identity: the SHA-256 of the input's bytes."""
    return hashlib.sha256(data).hexdigest()


def open_batch(
    db: Database, now: datetime, digest: str, fmt: str, events: Sequence[IntakeEvent | ChangeEvent]
) -> BatchProgress:
    """The open batch of this input (a run of it stopped before the end), or a new one."""
    with db.write() as session:
        batch = session.exec(
            select(InputBatch)
            .where(
                InputBatch.digest == digest,
                InputBatch.format == fmt,
                col(InputBatch.finished_at).is_(None),
            )
            .order_by(col(InputBatch.id).desc())
        ).first()
        if batch is None or batch.events != len(events):
            batch = InputBatch(digest=digest, format=fmt, events=len(events), started_at=now)
            session.add(batch)
            session.flush()
        assert batch.id is not None
        rows = session.exec(select(InputEvent).where(InputEvent.batch_id == batch.id)).all()
    done = {
        row.number: EventResult(
            events[row.number].position, row.outcome, row.ref, tuple(row.paged), earlier=True
        )
        for row in rows
    }
    return BatchProgress(batch.id, digest, done)


def close_batch(db: Database, progress: BatchProgress, now: datetime) -> None:
    """The run went through every event: the same input given later is a new batch."""
    with db.write() as session:
        batch = session.get(InputBatch, progress.batch_id)
        assert batch is not None
        batch.finished_at = now
        session.add(batch)


@dataclass
class BatchRun:
    """What one run of `vigil intake` did: the outcome of every event and where it was."""

    outcome: IntakeOutcome
    digest: str
    events: int
    earlier: int
    """Events stored by earlier runs of the same input (skipped, said again)."""
    unreadable: list[IntakeError]
    """The problems of the input's bad events, found before any was stored."""
    handled: int = 0
    """Events this run went through (stored, refused or dropped), earlier ones included."""
    stopped: bool = False

    def as_json(self) -> dict[str, Any]:
        batch = {
            "digest": self.digest,
            "events": self.events,
            "earlier": self.earlier,
            "handled": self.handled,
            "stopped": self.stopped,
        }
        return {**self.outcome.as_json(), "batch": batch}


def store_intake(
    service: CaseService,
    actor: str,
    data: bytes,
    fmt: str = "auto",
    *,
    said: Callable[[EventResult], None] | None = None,
    resuming: Callable[[BatchRun], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> BatchRun:
    """Store the events of one input, each in its own transaction with its batch's progress,
    telling `said` each result once it has committed (earlier runs' results first, when
    the input resumes an open batch: `resuming` is told before them). Between two events,
    `stop()` ends the run early, leaving the batch open for the same input to resume."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:  # replaced, a sender's text would be stored changed
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise BadInput(
            "input",
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line}, column {column}",
        ) from None
    try:
        parsed = parse_intake(text, fmt)
    except ValueError as exc:
        raise BadInput("--format", str(exc)) from None
    service.require_actor(actor)
    progress = open_batch(service.db, service.clock.now(), input_digest(data), fmt, parsed.events)
    run = BatchRun(
        IntakeOutcome(errors=list(parsed.errors)),
        progress.digest,
        len(parsed.events),
        len(progress.done),
        parsed.errors,
    )
    if progress.done and resuming is not None:
        resuming(run)
    for number, event in enumerate(parsed.events):
        result = progress.done.get(number)
        if result is None:
            if stop is not None and stop():
                run.stopped = True
                break
            result = _store_numbered(service, actor, event, progress, number)
        run.outcome.add(result)
        run.handled += 1
        if said is not None:
            said(result)
    if not run.stopped:
        close_batch(service.db, progress, service.clock.now())
    run.outcome.errors.sort(key=lambda e: _position_key(e.position))
    return run


def _store_numbered(
    service: CaseService,
    actor: str,
    event: IntakeEvent | ChangeEvent,
    progress: BatchProgress,
    number: int,
) -> EventResult:
    try:
        return _store_event(service, actor, event, "", progress.recorder(number))
    except (BadInput, Refused) as exc:
        return EventResult(event.position, "rejected", detail=str(exc))


def _position_key(position: str) -> tuple[int, ...]:
    numbers = [int(token) for token in position.replace(",", " ").split() if token.isdigit()]
    return tuple(numbers)

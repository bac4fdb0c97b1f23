"""Plain view objects: what crosses from the services into widgets. No ORM rows, no sessions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One line of the priority queue."""

    case_id: int
    ref: str
    severity: int  # 1..4
    category: str
    title: str
    status: str  # triggered, acknowledged, resolved
    assignee: str | None
    escalation_step: int
    escalation_round: int
    created_at: datetime
    sla_due_at: datetime | None  # ack deadline while triggered, respond deadline once acked
    exhausted: bool = False
    paged_to_me: bool = False
    sensitive: bool = False
    stage: str = "triage"
    version: int = 1


@dataclass(frozen=True, slots=True)
class PageView:
    handle: str
    step: int
    round: int
    sent_at: datetime
    reason: str
    channels: tuple[tuple[str, str], ...] = ()  # (channel, delivery status)


@dataclass(frozen=True, slots=True)
class TimelineView:
    at: datetime
    kind: str
    actor: str | None
    text: str


@dataclass(frozen=True, slots=True)
class NoteView:
    at: datetime
    author: str
    body: str


@dataclass(frozen=True, slots=True)
class ActionItemView:
    title: str
    owner: str
    due_at: datetime | None
    status: str


@dataclass(frozen=True, slots=True)
class CaseDetailView:
    """Everything the detail pane shows; `details` is None until the viewer reveals it."""

    case_id: int
    ref: str
    title: str
    category: str
    severity: int
    status: str
    stage: str
    assignee: str | None
    sensitive: bool
    details: str | None
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    sla_ack_due_at: datetime | None
    sla_respond_due_at: datetime | None
    escalation_step: int
    escalation_round: int
    step_count: int
    next_escalation_at: datetime | None
    exhausted: bool
    policy: str | None
    pages: tuple[PageView, ...] = ()
    timeline: tuple[TimelineView, ...] = ()
    notes: tuple[NoteView, ...] = ()
    action_items: tuple[ActionItemView, ...] = ()
    revealed: bool = False
    extra: dict[str, str] = field(default_factory=dict)

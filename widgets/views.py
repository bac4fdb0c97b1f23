"""Plain view objects: what crosses from the services into widgets. No ORM rows, no sessions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from data.domain import ClockState, clock_state

HIDDEN = "[sensitive: hidden until revealed]"
"""What stands in for free text of a sensitive case until the viewer reveals it."""


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
    # Casework flags: the most urgent running legal clock, and the earliest due open
    # action item. The table derives their state from its own clock as time passes.
    clock_kind: str = ""  # a ClockKind value; "" when no legal clock runs
    clock_due_at: datetime | None = None
    clock_reminder_at: datetime | None = None
    action_due_at: datetime | None = None
    awaiting_approval: int = 0  # disclosures requested and waiting for a supervisor
    # The case's place in the queue's order, as its source keys it: the table hands it
    # back (`SeekAnchor`) so a window next to this row is read by seeking from it.
    sort_key: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class SeekAnchor:
    """A place in the queue a window is read from: a row the table holds (its index and
    `sort_key`), or an end of the queue (index -1 for the top, the total for the bottom,
    and no key). The window is the rows after it, or before it when it lies below the
    window, so its cost does not grow with how deep it is."""

    index: int
    key: tuple[Any, ...] | None = None


@dataclass(frozen=True, slots=True)
class PageView:
    handle: str
    step: int
    round: int
    sent_at: datetime
    reason: str
    channels: tuple[tuple[str, str], ...] = ()  # (channel, delivery status)
    due_at: datetime | None = None
    """When its step was due: a page sent late (reason catch-up) shows how late."""


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
    revealed: bool = False
    extra: dict[str, str] = field(default_factory=dict)
    # When each SLA was met (None: not yet), by the rule the queue and the figures share:
    # responded at the first response, not at resolve.
    sla_ack_met_at: datetime | None = None
    sla_respond_met_at: datetime | None = None
    links: tuple[tuple[str, str], ...] = ()  # (text, address) a sender attached
    snoozed_until: datetime | None = None  # out of the queue until then, then it pages
    snooze_reason: str = ""


# --- casework ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClockView:
    name: str
    label: str
    kind: str  # a ClockKind value
    state: str  # a ClockState value
    due_at: datetime | None  # None while pending
    reminder_at: datetime | None
    started_at: datetime | None
    done_at: datetime | None = None
    outcome: str = ""  # filed, filed late, waived, released, expired
    reference: str | None = None  # the filed report's id
    extensions: int = 0
    extensions_left: int = 0
    done_by: str | None = None  # who filed the report, or who waived the clock

    @property
    def running(self) -> bool:
        return self.state in (ClockState.OK, ClockState.WARN, ClockState.BREACHED)

    def state_at(self, now: datetime) -> str:
        """The state at `now` of a clock read earlier: a running one moves on with time."""
        if not self.running or self.due_at is None:
            return self.state
        return clock_state(self.kind, self.due_at, self.reminder_at, now)


@dataclass(frozen=True, slots=True)
class VerificationStepView:
    step: str
    label: str
    done: bool
    facts: tuple[tuple[str, str], ...] = ()  # (fact, value) in checklist order
    recorded_by: str | None = None
    recorded_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class VerificationView:
    required: bool
    complete: bool
    missing: tuple[str, ...]
    steps: tuple[VerificationStepView, ...]


@dataclass(frozen=True, slots=True)
class PartnerView:
    name: str
    kind: str
    agency: str
    contact: str
    verified_channel: str
    active: bool = True


@dataclass(frozen=True, slots=True)
class DisclosureView:
    number: int
    status: str  # requested, disclosed, declined
    data: tuple[str, ...]
    accounts: int
    to: str  # partner name
    agency: str
    basis: str
    basis_label: str
    emergency: bool
    requested_by: str
    requested_at: datetime
    decided_by: str | None  # who approved (or declined)
    decided_at: datetime | None  # when it was disclosed (or declined)
    override_reason: str | None = None
    decline_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ContainmentView:
    step: str
    label: str
    needs_reference: bool
    done: bool
    done_by: str | None = None
    done_at: datetime | None = None
    reference: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class ActionView:
    id: int
    case_id: int
    ref: str
    title: str
    owner: str
    owner_kind: str  # person, partner, or "" for a free-text owner
    due_at: datetime | None
    status: str
    overdue: bool
    created_at: datetime
    completed_at: datetime | None = None
    completed_by: str | None = None


@dataclass(frozen=True, slots=True)
class CaseworkView:
    """Everything the casework part of the detail pane shows for one case."""

    case_id: int
    ref: str
    category: str
    sensitive: bool
    revealed: bool
    verification: VerificationView
    disclosures: tuple[DisclosureView, ...]
    clocks: tuple[ClockView, ...]
    containment: tuple[ContainmentView, ...]
    actions: tuple[ActionView, ...]
    partners: tuple[PartnerView, ...]
    # What does not match the agency directory in the request's origin (fraud defence).
    request_flags: tuple[str, ...] = ()
    # The CyberTipline filing in one line: status, NCMEC report id, tries, NCMEC's message.
    tipline: str = ""
    tipline_status: str = ""  # the filing's status alone (data.domain.FilingStatus); "": none
    tipline_next_try: datetime | None = None  # while NCMEC is down: when it is tried again

    @property
    def overdue_actions(self) -> int:
        return sum(1 for a in self.actions if a.overdue)


# --- the team view -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleLine:
    """One urgency's notification rule, worded (`phone at once, mail after 2m`)."""

    urgency: str
    text: str


@dataclass(frozen=True, slots=True)
class TeammateView:
    """One active responder as the team view shows them."""

    handle: str
    name: str
    role: str
    zone: str
    on_call: tuple[str, ...]
    """The schedules they are on call in now."""
    contacts: tuple[str, ...]
    """Kind and name of each contact (`apprise: phone`), never a URL."""
    rules: tuple[RuleLine, ...]
    quiet_hours: str
    """`22:00-07:00 (low urgency waits)`, or `none`."""


@dataclass(frozen=True, slots=True)
class ScheduleLine:
    """One schedule: who is on call in it now and its support hours, worded."""

    name: str
    on_call: str
    support: str


@dataclass(frozen=True, slots=True)
class TeamView:
    title: str
    schedules: tuple[ScheduleLine, ...]
    people: tuple[TeammateView, ...]

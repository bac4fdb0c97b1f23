"""SQLModel tables of the desk. Every timestamp is UTC (see `data.types.UTCDateTime`).

Annotations here are evaluated as each class is built (no `from __future__ import
annotations`): pydantic would otherwise compile and evaluate every field's annotation from
its text, and every command pays for these classes at start-up.
"""

from datetime import date, datetime
from typing import Any

from sqlalchemy import DDL, JSON, Column, Index, UniqueConstraint, event, text
from sqlalchemy.orm import deferred
from sqlalchemy.orm.attributes import get_history
from sqlalchemy.orm.base import PASSIVE_NO_INITIALIZE
from sqlmodel import Field, SQLModel

from data.changes import ANNOUNCE_FUNCTION, ANNOUNCE_TRIGGER
from data.contacts import digest, shown_url
from data.domain import Status
from data.sealing import sealed_column
from data.types import UTCDateTime


def _json_column() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def _json_list_column() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


def _utc(nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


# --- people -----------------------------------------------------------------


class Responder(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    handle: str = Field(unique=True, index=True)
    name: str
    role: str = "specialist"
    timezone: str = "UTC"
    active: bool = True
    # "HH:MM-HH:MM" in `timezone`: low-urgency pages wait until it ends.
    quiet_hours: str | None = None
    # Personal notification rules: urgency -> [[delay seconds, contact name], ...] in order.
    notify: dict[str, Any] = _json_column()
    # The PostgreSQL login that is this person (None: the handle); see `data.access`.
    db_login: str | None = Field(default=None, unique=True, index=True)


_CONTACT_URL = sealed_column("url", nullable=True)
_CONTACT_SECRET = sealed_column("secret", nullable=True)


class ContactMethod(SQLModel, table=True):
    __tablename__ = "contact_method"
    # The URL and the secret are read only where a page is delivered (the services' logins
    # may, people's may not: `data.access`); everything else knows them by
    # `url_shown` and the digests, which follow them on every write (below).
    __mapper_args__ = {
        "properties": {"url": deferred(_CONTACT_URL), "secret": deferred(_CONTACT_SECRET)}
    }
    id: int | None = Field(default=None, primary_key=True)
    responder_id: int = Field(foreign_key="responder.id", index=True, ondelete="CASCADE")
    position: int = 0
    kind: str
    # What notification rules call it (the team file's `name`, else its kind).
    name: str | None = None
    # Sealed at rest (`data.sealing`): a webhook's URL, or an Apprise URL (all of it a secret:
    # it holds the tokens), and a webhook's secret.
    url: str | None = Field(default=None, sa_column=_CONTACT_URL)
    secret: str | None = Field(default=None, sa_column=_CONTACT_SECRET)
    url_shown: str | None = None
    url_digest: str | None = None
    secret_digest: str | None = None
    # Set by the team file for this contact: a webhook's plain http:// URL or a secret under
    # 16 bytes (`allow_insecure`); a private, loopback or link-local destination of a
    # webhook or an Apprise URL (`allow_private`). Refused otherwise.
    allow_insecure: bool = False
    allow_private: bool = False
    # The receiver answered 410 Gone: the contact receives no more pages.
    gone_at: datetime | None = _utc(nullable=True)


def _contact_known_on_insert(_mapper: Any, _connection: Any, target: ContactMethod) -> None:
    # Runs before the row is sealed (first among the listeners): the values are still plain.
    _contact_known(target, target.__dict__.get("url"), target.__dict__.get("secret"))


def _contact_known_on_update(_mapper: Any, _connection: Any, target: ContactMethod) -> None:
    url = get_history(target, "url", passive=PASSIVE_NO_INITIALIZE).added
    secret = get_history(target, "secret", passive=PASSIVE_NO_INITIALIZE).added
    if url:
        target.url_shown = shown_url(url[0], target.kind) if url[0] else None
        target.url_digest = digest(url[0] or None)
    if secret:
        target.secret_digest = digest(secret[0] or None)


def _contact_known(target: ContactMethod, url: str | None, secret: str | None) -> None:
    target.url_shown = shown_url(url, target.kind) if url else None
    target.url_digest, target.secret_digest = digest(url or None), digest(secret or None)


event.listen(ContactMethod, "before_insert", _contact_known_on_insert, insert=True)
event.listen(ContactMethod, "before_update", _contact_known_on_update, insert=True)


# --- rotations and schedules ------------------------------------------------


class Rotation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    timezone: str
    shift: str  # team-file duration: 8h, 1d, 7d
    handoff: str  # HH:MM local to `timezone`
    start: date
    days: str | None = None  # comma-separated mon..sun
    hours: str | None = None  # HH:MM-HH:MM local
    # A change deals from the next hand-off (`app.rules.rotations.change_rotation`): this
    # version from `since` (None: from its first turn), the ones before it in
    # `rotation_version`. Turn k belongs to members[(k + turn_offset) % len(members)].
    since: datetime | None = _utc(nullable=True)
    turn_offset: int = 0


class RotationVersion(SQLModel, table=True):
    """A rotation as it was before a change, kept so its turns stay as they were dealt."""

    __tablename__ = "rotation_version"
    id: int | None = Field(default=None, primary_key=True)
    rotation_id: int = Field(foreign_key="rotation.id", index=True, ondelete="CASCADE")
    since: datetime | None = _utc(nullable=True)
    turn_offset: int = 0
    timezone: str
    shift: str
    handoff: str
    start: date
    days: str | None = None
    hours: str | None = None
    members: list[str] = _json_list_column()  # handles in turn order


class RotationMember(SQLModel, table=True):
    __tablename__ = "rotation_member"
    __table_args__ = (UniqueConstraint("rotation_id", "position"),)
    id: int | None = Field(default=None, primary_key=True)
    rotation_id: int = Field(foreign_key="rotation.id", index=True, ondelete="CASCADE")
    position: int
    responder_id: int = Field(foreign_key="responder.id")


class Schedule(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    timezone: str | None = None
    holiday_region: str | None = None
    holiday_cover_id: int | None = Field(default=None, foreign_key="responder.id")
    support_hours: str | None = None
    """HH:MM-HH:MM in the schedule's zone: low-urgency pages wait for them."""
    support_days: str | None = None
    """The days support hours keep ("mon,tue"); None: every day."""


class ScheduleLayer(SQLModel, table=True):
    __tablename__ = "schedule_layer"
    __table_args__ = (UniqueConstraint("schedule_id", "position"),)
    id: int | None = Field(default=None, primary_key=True)
    schedule_id: int = Field(foreign_key="schedule.id", index=True, ondelete="CASCADE")
    position: int
    rotation_id: int = Field(foreign_key="rotation.id")


class Override(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    schedule_id: int = Field(foreign_key="schedule.id", index=True, ondelete="CASCADE")
    responder_id: int = Field(foreign_key="responder.id")
    starts_at: datetime = Field(sa_type=UTCDateTime, index=True)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    reason: str = ""
    created_by_id: int | None = Field(default=None, foreign_key="responder.id")
    created_at: datetime | None = _utc(nullable=True)


class Holiday(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("day", "region"),)
    id: int | None = Field(default=None, primary_key=True)
    day: date = Field(index=True)
    name: str
    region: str


# --- policies, routing, SLAs ------------------------------------------------


class Policy(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    repeat: int = 0
    ack_timeout_seconds: int | None = None
    # Severities paged at high urgency, as "1,2"; None: the desk's default (sev1 and sev2).
    high_urgency: str | None = None


class PolicyStep(SQLModel, table=True):
    __tablename__ = "policy_step"
    __table_args__ = (UniqueConstraint("policy_id", "position"),)
    id: int | None = Field(default=None, primary_key=True)
    policy_id: int = Field(foreign_key="policy.id", index=True, ondelete="CASCADE")
    position: int
    delay_seconds: int
    targets: list[str] = _json_list_column()
    require_all: bool = False


class Routing(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    category: str = Field(unique=True)  # a category value, or "default"
    policy_id: int = Field(foreign_key="policy.id")


class SlaTarget(SQLModel, table=True):
    __tablename__ = "sla_target"
    severity: int = Field(primary_key=True)
    ack_seconds: int
    respond_seconds: int


# --- cases ------------------------------------------------------------------


_CASE_DETAILS = sealed_column("details")


class Case(SQLModel, table=True):
    # Details are sealed at rest and read only where they are shown: listing cases never
    # loads or opens them.
    __mapper_args__ = {"properties": {"details": deferred(_CASE_DETAILS)}}
    __table_args__ = (
        # The queue's order: unacknowledged first, then severity, then age.
        Index("ix_case_queue", "queue_rank", "severity", "created_at", "id"),
        # The other orders a person may choose (data.queries.SORT_COLUMNS), each a seek too.
        Index("ix_case_by_severity", "severity", "queue_rank", "created_at", "id"),
        Index("ix_case_by_age", "created_at", "id", "queue_rank"),
        Index("ix_case_by_status", "queue_rank", "created_at", "id"),
        # The open queue by age or by severity: without these, a seek from the top first
        # reads past every resolved case older (or as severe) than the first open one.
        Index(
            "ix_case_open_by_age",
            "created_at",
            "id",
            sqlite_where=text("queue_rank < 2"),
            postgresql_where=text("queue_rank < 2"),
        ),
        Index(
            "ix_case_open_by_severity",
            "severity",
            "queue_rank",
            "created_at",
            "id",
            sqlite_where=text("queue_rank < 2"),
            postgresql_where=text("queue_rank < 2"),
        ),
        # The engine: what escalates next.
        Index("ix_case_due", "status", "next_escalation_at"),
        # One open case per dedup key, enforced by the database itself.
        Index(
            "ux_case_open_dedup",
            "dedup_key",
            unique=True,
            sqlite_where=text(f"dedup_key IS NOT NULL AND status != '{Status.RESOLVED.value}'"),
            postgresql_where=text(f"dedup_key IS NOT NULL AND status != '{Status.RESOLVED.value}'"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(unique=True, index=True)
    title: str
    category: str
    severity: int
    status: str = Status.TRIGGERED.value
    # 0 triggered, 1 acknowledged, 2 resolved: kept with `status` so the queue's order
    # is an index scan, not a sort of every open case.
    queue_rank: int = 0
    stage: str = "triage"
    sensitive: bool = False
    details: str = Field(default="", sa_column=_CASE_DETAILS)
    dedup_key: str | None = None
    source: str = "vigil"
    assignee_id: int | None = Field(default=None, foreign_key="responder.id", index=True)
    policy_id: int | None = Field(default=None, foreign_key="policy.id")
    # The policy as it was when the case triggered: editing a policy never strands a case.
    policy_snapshot: dict[str, Any] = _json_column()
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    acknowledged_at: datetime | None = _utc(nullable=True)
    acknowledged_by_id: int | None = Field(default=None, foreign_key="responder.id")
    first_response_at: datetime | None = _utc(nullable=True)
    resolved_at: datetime | None = _utc(nullable=True)
    resolved_by_id: int | None = Field(default=None, foreign_key="responder.id")
    # A cycle is one run of the chain from step 1; reassign and ack timeout start a new one.
    escalation_cycle: int = 0
    escalation_step: int = 0  # 1-based step last paged; 0 before the first page
    escalation_round: int = 0  # 0-based repeat round
    next_escalation_at: datetime | None = _utc(nullable=True)
    exhausted: bool = False
    version: int = 1
    # A snoozed case is acknowledged and out of the open queue until `snoozed_until`, when
    # the engine re-triggers it (its next escalation is due then).
    snoozed_until: datetime | None = _utc(nullable=True)
    snooze_reason: str = Field(default="", sa_column_kwargs={"server_default": ""})


class CaseNote(SQLModel, table=True):
    __tablename__ = "case_note"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True, ondelete="CASCADE")
    author_id: int = Field(foreign_key="responder.id")
    body: str = Field(sa_column=sealed_column("body"))  # sealed at rest (`data.sealing`)
    created_at: datetime = Field(sa_type=UTCDateTime)


class ActionItem(SQLModel, table=True):
    __tablename__ = "action_item"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True, ondelete="CASCADE")
    title: str
    owner: str = ""
    due_at: datetime | None = _utc(nullable=True)
    status: str = "open"
    created_at: datetime = Field(sa_type=UTCDateTime)
    # Casework: `owner` is a responder's handle (person) or a partner's name (partner);
    # empty for a free-text owner.
    owner_kind: str = ""
    completed_at: datetime | None = _utc(nullable=True)
    completed_by_id: int | None = Field(default=None, foreign_key="responder.id")


class TimelineEvent(SQLModel, table=True):
    __tablename__ = "timeline_event"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True, ondelete="CASCADE")
    at: datetime = Field(sa_type=UTCDateTime)
    kind: str
    actor: str | None = None
    text: str = ""
    data: dict[str, Any] = _json_column()


# --- escalation -------------------------------------------------------------


class StepRun(SQLModel, table=True):
    """The claim on one (case, step, round): its uniqueness is what makes a page exactly-once."""

    __tablename__ = "step_run"
    # The unique claim leads with case_id, so it also serves every lookup by case.
    __table_args__ = (UniqueConstraint("case_id", "cycle", "step", "round", name="ux_step_run"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", ondelete="CASCADE")
    cycle: int = 0
    step: int
    round: int
    due_at: datetime = Field(sa_type=UTCDateTime)
    ran_at: datetime = Field(sa_type=UTCDateTime)
    engine: str = ""
    targets: list[str] = _json_list_column()
    paged: int = 0
    # Overtaken while escalation was held up (the engine down, the database unreachable):
    # its people are paged late by the catch-up (reason "catch-up"), under this claim.
    missed: bool = False


class Page(SQLModel, table=True):
    __table_args__ = (
        # Leads with case_id, so it also serves every lookup by case.
        UniqueConstraint("case_id", "cycle", "step", "round", "responder_id", name="ux_page"),
        Index("ix_page_responder_sent", "responder_id", "sent_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", ondelete="CASCADE")
    responder_id: int = Field(foreign_key="responder.id")
    cycle: int = 0
    step: int  # 0 for a reassign page, else the policy step
    round: int
    # escalation, reassign, exhausted, manual, catch-up (sent late for an overtaken step),
    # delayed (a supervisor told that escalation was delayed: step is minus the step of the
    # claim it rides on)
    reason: str = "escalation"
    due_at: datetime = Field(sa_type=UTCDateTime)
    sent_at: datetime = Field(sa_type=UTCDateTime)
    acknowledged_at: datetime | None = _utc(nullable=True)


OUTBOX_PENDING = "channel IN ('webhook', 'apprise') AND status = 'pending'"
OUTBOX_HELD = "channel IN ('webhook', 'apprise') AND status = 'held'"


class Delivery(SQLModel, table=True):
    """One channel of one page: an outbox row that survives restarts."""

    __table_args__ = (
        Index("ix_delivery_pending", "status", "next_attempt_at"),
        # The outbox (webhook and Apprise) reads only its own pending rows, in order and
        # per contact: console and desktop rows stay pending while nobody's console is
        # open, and must not make every outbox run longer.
        Index(
            "ix_delivery_webhook_due",
            "next_attempt_at",
            "id",
            sqlite_where=text(OUTBOX_PENDING),
            postgresql_where=text(OUTBOX_PENDING),
        ),
        Index(
            "ix_delivery_webhook_contact",
            "contact_id",
            "id",
            sqlite_where=text(OUTBOX_PENDING),
            postgresql_where=text(OUTBOX_PENDING),
        ),
        # Rows a notification rule delays or quiet hours hold, until they come due.
        Index(
            "ix_delivery_outbox_held",
            "next_attempt_at",
            sqlite_where=text(OUTBOX_HELD),
            postgresql_where=text(OUTBOX_HELD),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    page_id: int = Field(foreign_key="page.id", index=True, ondelete="CASCADE")
    channel: str
    contact_id: int | None = Field(default=None, foreign_key="contact_method.id")
    # pending, held (a rule's delay or quiet hours: not due yet), delivered, failed,
    # unavailable, cancelled (the case was acknowledged before it came due)
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime | None = _utc(nullable=True)
    last_attempt_at: datetime | None = _utc(nullable=True)
    delivered_at: datetime | None = _utc(nullable=True)
    last_error: str | None = None
    idempotency_key: str = ""


class DeliveryAttempt(SQLModel, table=True):
    __tablename__ = "delivery_attempt"
    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="delivery.id", index=True, ondelete="CASCADE")
    at: datetime = Field(sa_type=UTCDateTime)
    ok: bool
    detail: str = ""


class UsedLink(SQLModel, table=True):
    """An action link already followed: each link acts once (its signature is the key)."""

    __tablename__ = "used_link"
    signature: str = Field(primary_key=True)
    delivery_id: int | None = Field(default=None, foreign_key="delivery.id", ondelete="SET NULL")
    used_at: datetime = Field(sa_type=UTCDateTime)


class EngineHeartbeat(SQLModel, table=True):
    __tablename__ = "engine_heartbeat"
    name: str = Field(primary_key=True)
    started_at: datetime = Field(sa_type=UTCDateTime)
    last_cycle_at: datetime = Field(sa_type=UTCDateTime)
    cycles: int = 0


# --- shift work -------------------------------------------------------------


class Handover(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    author_id: int = Field(foreign_key="responder.id")
    incoming_id: int | None = Field(default=None, foreign_key="responder.id")
    shift_start: datetime = Field(sa_type=UTCDateTime)
    shift_end: datetime = Field(sa_type=UTCDateTime)
    # The notes, also carried in the report: both sealed at rest.
    notes: str = Field(default="", sa_column=sealed_column("notes"))
    report: dict[str, Any] = Field(
        default_factory=dict, sa_column=sealed_column("report", as_json=True)
    )
    submitted_at: datetime = Field(sa_type=UTCDateTime)
    acknowledged_at: datetime | None = _utc(nullable=True)
    acknowledged_by_id: int | None = Field(default=None, foreign_key="responder.id")


class PostMortem(SQLModel, table=True):
    __tablename__ = "post_mortem"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", unique=True, ondelete="CASCADE")
    summary: str = ""
    root_cause: str = ""
    factors: str = ""
    status: str = "draft"
    created_by_id: int = Field(foreign_key="responder.id")
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


# --- audit and change feed --------------------------------------------------


class AuditRecord(SQLModel, table=True):
    """Append-only and hash-chained: `hash` covers `prev_hash` and every field below."""

    __tablename__ = "audit_record"
    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(unique=True)
    at: datetime = Field(sa_type=UTCDateTime)
    actor: str
    action: str
    case_ref: str | None = Field(default=None, index=True)
    detail: dict[str, Any] = _json_column()
    prev_hash: str
    hash: str


class AuditHead(SQLModel, table=True):
    """A single row locked by every writer: it serialises the chain across consoles."""

    __tablename__ = "audit_head"
    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = ""


class CaseChange(SQLModel, table=True):
    """A feed of changed cases: consoles read what changed since their last id.

    On PostgreSQL every statement that adds to the feed also notifies the channel
    `data.changes.CHANGE_CHANNEL` (a trigger), so consoles need not poll for it.
    """

    __tablename__ = "case_change"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int
    at: datetime = Field(sa_type=UTCDateTime)


for _statement in (ANNOUNCE_FUNCTION, ANNOUNCE_TRIGGER):
    event.listen(
        CaseChange.__table__,  # type: ignore[attr-defined]
        "after_create",
        DDL(_statement).execute_if(dialect="postgresql"),
    )


class Setting(SQLModel, table=True):
    key: str = Field(primary_key=True)
    value: str

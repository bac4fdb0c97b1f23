"""SQLModel tables of the desk's cases: people, policies, cases, pages, deliveries, the audit
chain and the change feed. Every timestamp is UTC (see `data.types.UTCDateTime`).

Every command that reads or changes a case builds these; tables only some commands use live
in modules of their own (`data.schema.TABLE_MODULES`): who is on call (`data.oncall`), the
engine's own rows (`data.escalation`), shift work, casework, intake, agencies, tipline filings.

Annotations here are evaluated as each class is built (no `from __future__ import
annotations`): pydantic would otherwise compile and evaluate every field's annotation from
its text, and every command pays for these classes at start-up.
"""

import threading
from datetime import datetime
from typing import Any

from sqlalchemy import DDL, Index, UniqueConstraint, event, text
from sqlalchemy.orm import deferred
from sqlalchemy.orm.attributes import get_history
from sqlalchemy.orm.base import PASSIVE_NO_INITIALIZE
from sqlmodel import Field, SQLModel

from data.changes import ANNOUNCE_FUNCTION, ANNOUNCE_TRIGGER
from data.contacts import digest, shown_url
from data.domain import EngineAction, Status
from data.sealing import sealed_column
from data.types import UTCDateTime, json_column, json_list_column, table_of, utc_column

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
    notify: dict[str, Any] = json_column()
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
    gone_at: datetime | None = utc_column(nullable=True)


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
    targets: list[str] = json_list_column()
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
        # The engine: what escalates next.
        Index("ix_case_due", "status", "next_escalation_at"),
        # The partial indexes are declared by `declare_partial_indexes`.
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
    policy_snapshot: dict[str, Any] = json_column()
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    acknowledged_at: datetime | None = utc_column(nullable=True)
    acknowledged_by_id: int | None = Field(default=None, foreign_key="responder.id")
    first_response_at: datetime | None = utc_column(nullable=True)
    resolved_at: datetime | None = utc_column(nullable=True)
    resolved_by_id: int | None = Field(default=None, foreign_key="responder.id")
    # A cycle is one run of the chain from step 1; reassign and ack timeout start a new one.
    escalation_cycle: int = 0
    escalation_step: int = 0  # 1-based step last paged; 0 before the first page
    escalation_round: int = 0  # 0-based repeat round
    next_escalation_at: datetime | None = utc_column(nullable=True)
    exhausted: bool = False
    version: int = 1
    # A snoozed case is acknowledged and out of the open queue until `snoozed_until`, when
    # the engine re-triggers it (its next escalation is due then).
    snoozed_until: datetime | None = utc_column(nullable=True)
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
    due_at: datetime | None = utc_column(nullable=True)
    status: str = "open"
    created_at: datetime = Field(sa_type=UTCDateTime)
    # Casework: `owner` is a responder's handle (person) or a partner's name (partner);
    # empty for a free-text owner.
    owner_kind: str = ""
    completed_at: datetime | None = utc_column(nullable=True)
    completed_by_id: int | None = Field(default=None, foreign_key="responder.id")


class TimelineEvent(SQLModel, table=True):
    __tablename__ = "timeline_event"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True, ondelete="CASCADE")
    at: datetime = Field(sa_type=UTCDateTime)
    kind: str
    actor: str | None = None
    text: str = ""
    data: dict[str, Any] = json_column()


# --- escalation -------------------------------------------------------------


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
    acknowledged_at: datetime | None = utc_column(nullable=True)


OUTBOX_PENDING = "channel IN ('webhook', 'apprise') AND status = 'pending'"
OUTBOX_HELD = "channel IN ('webhook', 'apprise') AND status = 'held'"


class Delivery(SQLModel, table=True):
    """One channel of one page: an outbox row that survives restarts."""

    __table_args__ = (
        Index("ix_delivery_pending", "status", "next_attempt_at"),
        # The partial indexes are declared by `declare_partial_indexes`.
    )
    id: int | None = Field(default=None, primary_key=True)
    page_id: int = Field(foreign_key="page.id", index=True, ondelete="CASCADE")
    channel: str
    contact_id: int | None = Field(default=None, foreign_key="contact_method.id")
    # pending, held (a rule's delay or quiet hours: not due yet), delivered, failed,
    # unavailable, cancelled (the case was acknowledged before it came due)
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime | None = utc_column(nullable=True)
    last_attempt_at: datetime | None = utc_column(nullable=True)
    delivered_at: datetime | None = utc_column(nullable=True)
    last_error: str | None = None
    idempotency_key: str = ""


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
    detail: dict[str, Any] = json_column()
    prev_hash: str
    hash: str


class AuditHead(SQLModel, table=True):
    """A single row locked by every writer: it serialises the chain across consoles."""

    __tablename__ = "audit_head"
    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = ""


_OPEN_QUEUE = "queue_rank < 2"
_OPEN_DEDUP = f"dedup_key IS NOT NULL AND status != '{Status.RESOLVED.value}'"
_ENGINE_BATCH = f"case_ref IS NULL AND action = '{EngineAction.ESCALATE.value}'"
_PARTIAL_INDEXES: tuple[tuple[type[SQLModel], str, tuple[str, ...], str, bool], ...] = (
    # The open queue by age or by severity: without these, a seek from the top first
    # reads past every resolved case older (or as severe) than the first open one.
    (Case, "ix_case_open_by_age", ("created_at", "id"), _OPEN_QUEUE, False),
    (
        Case,
        "ix_case_open_by_severity",
        ("severity", "queue_rank", "created_at", "id"),
        _OPEN_QUEUE,
        False,
    ),
    # One open case per dedup key, enforced by the database itself.
    (Case, "ux_case_open_dedup", ("dedup_key",), _OPEN_DEDUP, True),
    # The outbox (webhook and Apprise) reads only its own pending rows, in order and per
    # contact: console and desktop rows stay pending while nobody's console is open, and
    # must not make every outbox run longer.
    (Delivery, "ix_delivery_webhook_due", ("next_attempt_at", "id"), OUTBOX_PENDING, False),
    (Delivery, "ix_delivery_webhook_contact", ("contact_id", "id"), OUTBOX_PENDING, False),
    # Rows a notification rule delays or quiet hours hold, until they come due.
    (Delivery, "ix_delivery_outbox_held", ("next_attempt_at",), OUTBOX_HELD, False),
    # The engine's batch records (`data.audit.engine_batch`), which a case's audit log reads
    # beside its own records: few among the chain's millions.
    (AuditRecord, "ix_audit_record_engine_batch", ("seq",), _ENGINE_BATCH, False),
)

_DECLARING = threading.Lock()
"""Two threads that walk the whole schema at once declare each index once."""


def declare_partial_indexes() -> None:
    """Put the partial indexes of cases and deliveries on the metadata, once.

    A partial index names its dialects (`sqlite_where`, `postgresql_where`), and naming one
    imports it: PostgreSQL's whole dialect package, tens of milliseconds, in every command on
    SQLite. Queries need no declaration to use an index the database has, so only what
    creates or compares the whole schema (`data.schema.every_table`) declares them.
    """
    with _DECLARING:
        for model, name, columns, where, unique in _PARTIAL_INDEXES:
            table = table_of(model)
            if name in {index.name for index in table.indexes}:
                continue
            Index(
                name,
                *(table.c[column] for column in columns),
                unique=unique,
                sqlite_where=text(where),
                postgresql_where=text(where),
            )


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
        table_of(CaseChange),
        "after_create",
        DDL(_statement).execute_if(dialect="postgresql"),
    )


class Setting(SQLModel, table=True):
    key: str = Field(primary_key=True)
    value: str

"""Intake tables: the integrations that send alerts (each with its hashed key), the links a
sender attached to a case, and the change notes of PagerDuty change events. Every timestamp
is UTC (`data.types.UTCDateTime`).

Annotations are evaluated as each class is built, as in `data.models` (start-up time).
"""

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

# The tables these rows' keys refer to: the ORM resolves every key of a row it writes.
import data.models  # noqa: F401
from data.types import UTCDateTime, json_list_column, utc_column

# The formats an integration may speak (`app.intake.registry` has one module for each).
INTEGRATION_FORMATS = ("pagerduty", "alertmanager", "grafana", "vigil")
HEARTBEAT = "heartbeat"
"""The format of a heartbeat monitor's row (`[[heartbeat]]` in the team file): a sender
that says "still alive" on a schedule, and whose silence opens a case."""


class Integration(SQLModel, table=True):
    """A sender of alerts, declared in the team file (`[[integration]]`). Its key is stored
    as a SHA-256 hash only; `vigil integration key NAME` makes a new one and shows it once."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    format: str  # pagerduty, alertmanager, grafana, vigil
    category: str | None = None  # default category of its cases
    severity: int | None = None  # default severity where the alert names none
    policy: str | None = None  # escalation policy of its cases (else routing)
    rate_limit: int = 120  # events a minute
    key_hash: str | None = Field(default=None, unique=True)
    key_set_at: datetime | None = utc_column(nullable=True)
    # Heartbeat monitors only: a beat is due every `interval_seconds`, and a case opens once
    # `grace_seconds` more have passed without one, counted from the last beat or, before
    # the first, from when the monitor was declared (`watched_since`). `down_since` is set
    # while its case is open, so the silence opens one case, and the next beat resolves it.
    interval_seconds: int | None = None
    grace_seconds: int | None = None
    watched_since: datetime | None = utc_column(nullable=True)
    last_beat_at: datetime | None = utc_column(nullable=True)
    down_since: datetime | None = utc_column(nullable=True)


class CaseLink(SQLModel, table=True):
    """A link a sender attached to a case (PagerDuty links, images and client_url;
    Alertmanager generatorURL and runbook_url; Grafana dashboard and panel URLs)."""

    __tablename__ = "case_link"
    __table_args__ = (UniqueConstraint("case_id", "position"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", ondelete="CASCADE")
    position: int
    href: str
    text: str = ""


class ChangeNote(SQLModel, table=True):
    """A change the desk should know of (a deploy, a configuration change): never a page."""

    __tablename__ = "change_note"
    id: int | None = Field(default=None, primary_key=True)
    received_at: datetime = Field(sa_type=UTCDateTime, index=True)
    happened_at: datetime | None = utc_column(nullable=True)
    integration: str = ""
    summary: str
    source: str = ""
    details: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    links: list[dict[str, Any]] = json_list_column()


class InputBatch(SQLModel, table=True):
    """One input given to `vigil intake`, known by the SHA-256 of its bytes and the format
    it was read as. A run that stops (a signal, `kill -9`, a full disk) leaves its batch
    open and the same input resumes it; a run that finishes closes it, so the same input
    given later is a new batch."""

    __tablename__ = "input_batch"
    id: int | None = Field(default=None, primary_key=True)
    digest: str = Field(index=True)
    format: str
    events: int  # the events parsed from it (the bad ones are not among them)
    started_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = utc_column(nullable=True)


class InputEvent(SQLModel, table=True):
    """What one event of a batch stored, written in that event's own transaction: the
    batch's progress, so a resumed run skips it and can still say what it did."""

    __tablename__ = "input_event"
    __table_args__ = (UniqueConstraint("batch_id", "number"),)
    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="input_batch.id", ondelete="CASCADE")
    number: int  # its place among the batch's events, from 0
    outcome: str  # opened, deduplicated, acknowledged, resolved, change
    ref: str | None = None  # the case (none for a change note)
    paged: list[str] = json_list_column()

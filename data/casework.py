"""Casework tables: request verification, disclosures, legal clock facts, containment,
partners and the desk's casework settings. Every timestamp is UTC (`data.types.UTCDateTime`).

Clock states are never stored: they are computed from the facts kept here (when a report was
filed, how often a hold was extended), so changing the desk's clock settings never leaves a
stale deadline behind.

Annotations are evaluated as each class is built, as in `data.models` (start-up time).
"""

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

# The tables these rows' keys refer to: the ORM resolves every key of a row it writes.
import data.models  # noqa: F401
from data.domain import DisclosureStatus
from data.sealing import sealed_column
from data.types import UTCDateTime, json_column, json_list_column, utc_column

# --- vocabulary -------------------------------------------------------------


class Partner(SQLModel, table=True):
    """A directory entry: an agency or team a case works with, and how to reach it safely."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)  # short key, e.g. metro-pd
    kind: str
    agency: str  # the organisation as it appears in reports
    contact: str = ""
    # A channel confirmed independently of any request (e.g. the dispatch number listed in
    # the agency's public directory): what identity checks call back on.
    verified_channel: str = ""
    active: bool = True
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by_id: int | None = Field(default=None, foreign_key="responder.id")


class CasePartner(SQLModel, table=True):
    __tablename__ = "case_partner"
    __table_args__ = (UniqueConstraint("case_id", "partner_id"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True, ondelete="CASCADE")
    partner_id: int = Field(foreign_key="partner.id")
    linked_at: datetime = Field(sa_type=UTCDateTime)
    linked_by_id: int | None = Field(default=None, foreign_key="responder.id")


# --- verification and disclosure -------------------------------------------


class VerificationRecord(SQLModel, table=True):
    """One step of a request's verification checklist; recording it again replaces it."""

    __tablename__ = "verification_record"
    __table_args__ = (UniqueConstraint("case_id", "step"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True, ondelete="CASCADE")
    step: str
    # What the requester said and how they were checked back: sealed at rest.
    facts: dict[str, Any] = Field(
        default_factory=dict, sa_column=sealed_column("facts", as_json=True)
    )
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    recorded_by_id: int = Field(foreign_key="responder.id")


class Disclosure(SQLModel, table=True):
    """One disclosure decision. Basis and agency are copied in when it is requested, so the
    yearly report stays the same when the settings or the directory change later."""

    __table_args__ = (UniqueConstraint("case_id", "number"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True, ondelete="CASCADE")
    number: int  # 1, 2, ... within the case
    data: list[str] = json_list_column()
    accounts: int = 1
    partner_id: int = Field(foreign_key="partner.id")
    agency: str
    basis: str
    basis_label: str
    emergency: bool = False  # an emergency basis: counted in the yearly report
    status: str = DisclosureStatus.REQUESTED.value
    requested_at: datetime = Field(sa_type=UTCDateTime)
    requested_by_id: int = Field(foreign_key="responder.id")
    decided_at: datetime | None = utc_column(nullable=True, index=True)
    decided_by_id: int | None = Field(default=None, foreign_key="responder.id")
    # Set when a supervisor recorded the disclosure before verification was complete.
    override_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    decline_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


# --- legal clocks, containment ----------------------------------------------


class ClockEvent(SQLModel, table=True):
    """A fact a legal clock is computed from: a report filed, a hold extended, a waiver."""

    __tablename__ = "clock_event"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True, ondelete="CASCADE")
    clock: str
    kind: str
    at: datetime = Field(sa_type=UTCDateTime)  # when it happened (a report may be filed earlier)
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    by_id: int = Field(foreign_key="responder.id")
    reference: str | None = None  # the report id, for a filed report
    note: str = Field(default="", sa_column=sealed_column("note"))


class ContainmentRecord(SQLModel, table=True):
    """A containment step done on a case: who, when, and its evidence reference."""

    __tablename__ = "containment_record"
    __table_args__ = (UniqueConstraint("case_id", "step"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True, ondelete="CASCADE")
    step: str
    done_at: datetime = Field(sa_type=UTCDateTime)
    done_by_id: int = Field(foreign_key="responder.id")
    reference: str | None = None
    # Sealed at rest (`data.sealing`): it may describe the person at risk.
    note: str = Field(default="", sa_column=sealed_column("note"))


class CaseworkSettings(SQLModel, table=True):
    """The desk's casework settings as written in the team file (one row, validated on write):
    `clocks`, `disclosure_basis` and `containment` tables."""

    __tablename__ = "casework_settings"
    id: int = Field(default=1, primary_key=True)
    document: dict[str, Any] = json_column()
    updated_at: datetime = Field(sa_type=UTCDateTime)
    updated_by: str

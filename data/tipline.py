"""CyberTipline tables: the desk's NCMEC account, the evidence files of a case, and the one
filing of a case's report. Every timestamp is UTC (`data.types.UTCDateTime`).

`TiplineFiling.case_id` is unique: the row is the claim on filing a case's report, the way
`StepRun` is the claim on paging a step, so two consoles or engines never file one case twice.

Annotations are evaluated as each class is built, as in `data.models` (start-up time).
"""

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Text, UniqueConstraint
from sqlalchemy.orm import deferred
from sqlmodel import Field, SQLModel

# The tables these rows' keys refer to: the ORM resolves every key of a row it writes.
import data.models  # noqa: F401
from data.sealing import sealed_column
from data.types import UTCDateTime, json_column

_PASSWORD = sealed_column("password")


class TiplineAccount(SQLModel, table=True):
    """The desk's NCMEC-issued Reporting API account (one row). The password is a secret:
    sealed at rest like a webhook's, never printed, exported or written to the audit chain."""

    __tablename__ = "tipline_account"
    # Read only by who sends the report (`data.access`: the services' logins, not people's).
    __mapper_args__ = {"properties": {"password": deferred(_PASSWORD)}}
    id: int = Field(default=1, primary_key=True)
    url: str
    username: str
    password: str = Field(repr=False, sa_column=_PASSWORD)
    # NCMEC's production service is refused unless a supervisor set this.
    production: bool = False
    reporter_first_name: str
    reporter_last_name: str
    reporter_email: str
    updated_at: datetime = Field(sa_type=UTCDateTime)
    updated_by: str


class EvidenceFile(SQLModel, table=True):
    """A file reported with a CSEA case: where the desk's evidence store keeps it, its
    hashes (taken when it was added, checked again before upload) and its classification."""

    __tablename__ = "evidence_file"
    __table_args__ = (UniqueConstraint("case_id", "sha256"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True, ondelete="CASCADE")
    path: str = Field(sa_column=Column(Text, nullable=False))
    original_name: str
    sha256: str
    md5: str
    size: int
    industry_classification: str  # A1, A2, B1 or B2 (the industry's categorisation scale)
    added_at: datetime = Field(sa_type=UTCDateTime)
    added_by_id: int = Field(foreign_key="responder.id")


class TiplineFiling(SQLModel, table=True):
    """The claim on filing one case's CyberTipline report, and how far the filing got."""

    __tablename__ = "tipline_filing"
    __table_args__ = (UniqueConstraint("case_id", name="ux_tipline_filing"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", ondelete="CASCADE")
    status: str  # see data.domain.FilingStatus
    holder: str = ""  # the filer working on it now ("" when nobody is)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    draft: dict[str, Any] = json_column()
    report_id: str | None = None
    files_sent: int = 0
    retractions: int = 0
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_code: int | None = None
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    started_at: datetime = Field(sa_type=UTCDateTime)
    started_by: str
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

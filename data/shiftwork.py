"""Tables of shift work: handovers, post-mortems and the action items a post-mortem assigns.

A post-mortem's action items are follow-ups that keep a case from happening again, each with
an owner on the desk and a due date; they are kept apart from a case's own action items
(`data.models.ActionItem`), which are the work of handling the case itself.

Annotations are evaluated as each class is built, as in `data.models` (start-up time).
"""

from datetime import date, datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

# The tables these rows' keys refer to: the ORM resolves every key of a row it writes.
import data.models  # noqa: F401
from data.sealing import sealed_column
from data.types import UTCDateTime, utc_column


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
    acknowledged_at: datetime | None = utc_column(nullable=True)
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


class PostMortemAction(SQLModel, table=True):
    __tablename__ = "post_mortem_action"
    __table_args__ = (UniqueConstraint("post_mortem_id", "position"),)
    id: int | None = Field(default=None, primary_key=True)
    post_mortem_id: int = Field(foreign_key="post_mortem.id", index=True, ondelete="CASCADE")
    position: int  # 1-based, as people refer to them: "action 2"
    title: str
    owner_id: int = Field(foreign_key="responder.id", index=True)
    due_on: date
    status: str = "open"  # open, done
    created_at: datetime = Field(sa_type=UTCDateTime)
    done_at: datetime | None = utc_column(nullable=True)

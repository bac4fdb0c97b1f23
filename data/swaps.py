"""Tables of on-call trading: shift swap requests, and the hand-off notices already given.

A swap request is a specialist's offer of part of their own shift on one schedule; when someone
takes it and (if the desk requires it) a supervisor approves it, it becomes an override, and
`override_id` links the request to that override. The notice log holds one row per hand-off
notice ever produced; its uniqueness is what makes each notice exactly-once, even with several
engines and consoles claiming notices from one database.

Annotations are evaluated as each class is built, as in `data.models` (start-up time).
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

# The tables these rows' keys refer to: the ORM resolves every key of a row it writes.
import data.models
import data.oncall  # noqa: F401
from data.types import UTCDateTime, json_list_column, utc_column


class SwapStatus(StrEnum):
    OPEN = "open"  # offered, nobody has taken it yet
    TAKEN = "taken"  # taken, waiting for a supervisor's approval
    APPROVED = "approved"  # an override now puts the taker on call
    DECLINED = "declined"  # a supervisor said no
    CANCELLED = "cancelled"  # withdrawn before approval
    REVOKED = "revoked"  # its override was removed or cut short afterwards


OPEN_SWAP_STATUSES = frozenset({SwapStatus.OPEN.value, SwapStatus.TAKEN.value})

REQUIRE_APPROVAL_KEY = "swaps.require_approval"
"""The `setting` row that says whether a taken swap waits for a supervisor ("false": not)."""


class SwapRequest(SQLModel, table=True):
    __tablename__ = "swap_request"
    id: int | None = Field(default=None, primary_key=True)
    schedule_id: int = Field(foreign_key="schedule.id", index=True, ondelete="CASCADE")
    requester_id: int = Field(foreign_key="responder.id")
    # `--with HANDLE`: only this person may take it; anyone else on the desk when unset.
    wanted_id: int | None = Field(default=None, foreign_key="responder.id")
    taker_id: int | None = Field(default=None, foreign_key="responder.id")
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    note: str = ""
    status: str = Field(default=SwapStatus.OPEN.value, index=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    taken_at: datetime | None = utc_column(nullable=True)
    decided_at: datetime | None = utc_column(nullable=True)
    # Who approved or declined; None for a swap granted without approval.
    decided_by_id: int | None = Field(default=None, foreign_key="responder.id")
    decision_note: str = ""
    override_id: int | None = Field(default=None, foreign_key="override.id", ondelete="SET NULL")


class HandoffNoticeLog(SQLModel, table=True):
    """One produced hand-off notice; (handle, schedule, shift_start, kind) is claimed once."""

    __tablename__ = "handoff_notice"
    __table_args__ = (
        UniqueConstraint("handle", "schedule", "shift_start", "kind", name="ux_handoff_notice"),
    )
    id: int | None = Field(default=None, primary_key=True)
    handle: str
    schedule: str
    shift_start: datetime = Field(sa_type=UTCDateTime)
    kind: str  # on, off
    at: datetime = Field(sa_type=UTCDateTime)  # when the person goes on or off call
    claimed_at: datetime = Field(sa_type=UTCDateTime, index=True)
    open_case_refs: list[str] = json_list_column()

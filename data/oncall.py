"""Tables of who is on call: rotations, schedules, overrides and holidays. Every timestamp is
UTC (see `data.types.UTCDateTime`).

They are read where escalation picks its people, a calendar is drawn, a case is shown with
who is paged next or the team is changed, so listing, noting or acknowledging a case never
builds them (each table costs a command start-up time). Annotations are evaluated as each
class is built, as in `data.models`.
"""

from datetime import date, datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

# The tables these rows' keys refer to: the ORM resolves every key of a row it writes.
import data.models  # noqa: F401
from data.types import UTCDateTime, json_list_column, utc_column


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
    since: datetime | None = utc_column(nullable=True)
    turn_offset: int = 0


class RotationVersion(SQLModel, table=True):
    """A rotation as it was before a change, kept so its turns stay as they were dealt."""

    __tablename__ = "rotation_version"
    id: int | None = Field(default=None, primary_key=True)
    rotation_id: int = Field(foreign_key="rotation.id", index=True, ondelete="CASCADE")
    since: datetime | None = utc_column(nullable=True)
    turn_offset: int = 0
    timezone: str
    shift: str
    handoff: str
    start: date
    days: str | None = None
    hours: str | None = None
    members: list[str] = json_list_column()  # handles in turn order


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
    created_at: datetime | None = utc_column(nullable=True)


class Holiday(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("day", "region"),)
    id: int | None = Field(default=None, primary_key=True)
    day: date = Field(index=True)
    name: str
    region: str

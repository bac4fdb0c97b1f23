"""The engine's own tables: step claims, delivery attempts, used action links, heartbeats.

Pages and deliveries, which a case's own changes touch, are in `data.models`; these are
written where escalation runs and pages are delivered. Annotations are evaluated as each
class is built, as in `data.models` (start-up time).
"""

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

# The tables these rows' keys refer to: the ORM resolves every key of a row it writes.
import data.models  # noqa: F401
from data.types import UTCDateTime, json_list_column


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
    targets: list[str] = json_list_column()
    paged: int = 0
    # Overtaken while escalation was held up (the engine down, the database unreachable):
    # its people are paged late by the catch-up (reason "catch-up"), under this claim.
    missed: bool = False


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

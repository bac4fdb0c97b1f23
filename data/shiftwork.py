"""Tables of shift work beyond `data.models`: the action items a post-mortem assigns.

A post-mortem's action items are follow-ups that keep a case from happening again, each with
an owner on the desk and a due date; they are kept apart from a case's own action items
(`data.models.ActionItem`), which are the work of handling the case itself.

Annotations are evaluated as each class is built, as in `data.models` (start-up time).
"""

from datetime import date, datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from data.types import UTCDateTime


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
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)

"""The agency directory's verified channels and the origin of each emergency request.

A channel (a call-back number or an e-mail domain) belongs to a law-enforcement partner of
the directory and was confirmed independently of any request. A request's origin (who sent
it, from where, citing which law) is checked against them; what does not match is flagged.

Annotations are evaluated as each class is built, as in `data.models` (start-up time).
"""

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

# The tables these rows' keys refer to: the ORM resolves every key of a row it writes.
import data.casework
import data.models  # noqa: F401
from data.types import UTCDateTime, json_list_column


class AgencyChannel(SQLModel, table=True):
    __tablename__ = "agency_channel"
    __table_args__ = (UniqueConstraint("kind", "value"),)
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(foreign_key="partner.id", index=True)
    kind: str  # phone or domain
    value: str  # normalised: digits with a leading '+', or a lowercase domain
    source: str  # where it was confirmed, e.g. "the state police's public directory"
    added_at: datetime = Field(sa_type=UTCDateTime)
    added_by_id: int = Field(foreign_key="responder.id")
    active: bool = True


class RequestOrigin(SQLModel, table=True):
    """Where an emergency or legal request came from, and the flags that raised."""

    __tablename__ = "request_origin"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", unique=True, ondelete="CASCADE")
    sender_email: str = ""
    sender_phone: str = ""
    cited_law: str = ""
    flags: list[str] = json_list_column()
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    recorded_by_id: int = Field(foreign_key="responder.id")

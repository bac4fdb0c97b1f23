"""The agency directory as the casework reads it: the verified channels that are listed."""

from __future__ import annotations

from sqlmodel import Session, col, select

from app.core.errors import BadInput, NotAllowed
from app.rules.fraud import normalise_phone
from data.agency import AgencyChannel, RequestOrigin
from data.domain import ChannelKind


def listed(session: Session, kind: ChannelKind) -> set[str]:
    return set(
        session.exec(
            select(AgencyChannel.value).where(
                AgencyChannel.kind == kind.value, col(AgencyChannel.active).is_(True)
            )
        ).all()
    )


def refuse_request_number(session: Session, case_id: int, via: str) -> None:
    """An identity check may not rest on the number the request itself gave, unless the
    directory lists it."""
    origin = session.exec(select(RequestOrigin).where(RequestOrigin.case_id == case_id)).first()
    if origin is None or not origin.sender_phone:
        return
    try:
        called = normalise_phone("via", via)
    except BadInput:
        return  # not a number: an address or a person, checked by the desk
    if called == origin.sender_phone and called not in listed(session, ChannelKind.PHONE):
        raise NotAllowed(
            f"{called} is the number the request came from and is not in the agency "
            "directory; call back on a number from the directory (vigil agency call-back)"
        )

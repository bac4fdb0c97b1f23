"""Instants in and out: parsing what a person types, writing what a machine reads.

Stored times are UTC; JSON carries ISO 8601 with a `Z`; a person sees their own zone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import overload
from zoneinfo import ZoneInfo

from app.core.errors import BadInput
from data.domain import check_instant, parse_duration


@overload
def iso(value: datetime) -> str: ...
@overload
def iso(value: None) -> None: ...
@overload
def iso(value: datetime | None) -> str | None: ...
def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z`, as the contract asks for JSON."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_instant(field: str, value: str) -> datetime:
    """An ISO 8601 instant; a value without an offset is refused (it would be ambiguous)."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(
            field, f"expected an ISO 8601 time such as 2026-12-24T20:00:00+11:00, got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        raise BadInput(field, f"expected a time with an offset (Z or +11:00), got {value!r}")
    return bounded_instant(field, parsed)


def bounded_instant(field: str, value: datetime) -> datetime:
    """`value` in UTC, or BadInput naming `field` unless it lies between 1970 and 2199 (so
    no later arithmetic on it can leave the calendar)."""
    try:
        return check_instant(value)
    except ValueError as exc:
        raise BadInput(field, str(exc)) from None


def format_instant(at: datetime | None, zone: ZoneInfo, *, seconds: bool = False) -> str:
    """`Thu 26 Nov 2026 20:00 AEDT` on the wall clock of `zone`; `-` for no value."""
    if at is None:
        return "-"
    return at.astimezone(zone).strftime(f"%a %d %b %Y %H:%M{':%S' if seconds else ''} %Z")


def shown(moment: datetime, zone: ZoneInfo) -> str:
    """`Thu 26 Nov 2026 20:00 AEDT (09:00 UTC)`: the viewer's wall clock, then UTC."""
    if zone.key == "UTC":
        return format_instant(moment, zone)
    utc = moment.astimezone(UTC)
    local = moment.astimezone(zone)
    day = "" if utc.date() == local.date() else f"{utc:%a %d %b} "
    return f"{format_instant(moment, zone)} ({day}{utc:%H:%M} UTC)"


def parse_due(text: str | None, now: datetime, field: str = "due") -> datetime | None:
    """A due time given as a duration from `now` (`4h`, `2d`) or as a time with an offset;
    a bad one is refused naming `field`."""
    if text is None:
        return None
    if _DURATION_SHAPE.match(text):
        try:
            return bounded_instant(field, now + parse_duration(text))
        except ValueError as exc:
            raise BadInput(field, str(exc)) from None
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise BadInput(
            field, f"expected a duration such as 4h or 2d, or a time with an offset, got {text!r}"
        )
    return bounded_instant(field, parsed)


_DURATION_SHAPE = re.compile(r"^\s*[0-9]+[a-z]\s*$")

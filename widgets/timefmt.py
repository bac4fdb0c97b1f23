"""Showing instants to a person: in their own zone, short when it is today."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC_ZONE = ZoneInfo("UTC")


def viewer_zone(name: str) -> ZoneInfo:
    """The viewer's zone; UTC if the stored name is unknown to this machine."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC_ZONE


def format_when(at: datetime, zone: ZoneInfo, now: datetime) -> str:
    """`09:02` for today (in `zone`), `Tue 25 Nov 09:02` otherwise."""
    local = at.astimezone(zone)
    if local.date() == now.astimezone(zone).date():
        return local.strftime("%H:%M")
    return local.strftime("%a %d %b %H:%M")


def format_age(age: timedelta) -> str:
    """A rough age: `42s`, `5m`, `3h`, `2d`."""
    seconds = max(0, int(age.total_seconds()))
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 90 * 60:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def plural(count: int, noun: str) -> str:
    """`1 case`, `2 cases`: a count and its noun (a regular plural: an `s`)."""
    return f"{count} {noun}{'' if count == 1 else 's'}"

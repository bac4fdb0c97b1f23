"""Domain vocabulary shared by every layer: the contract values of the design."""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum


class Category(StrEnum):
    EDR = "edr"
    CSEA = "csea"
    THREAT_TO_LIFE = "threat_to_life"
    SELF_HARM = "self_harm"
    VIOLENT_EXTREMISM = "violent_extremism"
    DOXXING = "doxxing"
    LE_REQUEST = "le_request"
    PRESERVATION = "preservation"
    OTHER = "other"


CATEGORY_LABELS: dict[Category, str] = {
    Category.EDR: "Emergency data request",
    Category.CSEA: "CSEA report",
    Category.THREAT_TO_LIFE: "Threat to life",
    Category.SELF_HARM: "Self-harm",
    Category.VIOLENT_EXTREMISM: "Violent extremism",
    Category.DOXXING: "Doxxing",
    Category.LE_REQUEST: "Legal process",
    Category.PRESERVATION: "Preservation request",
    Category.OTHER: "Other",
}


class Status(StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Stage(StrEnum):
    TRIAGE = "triage"
    INVESTIGATING = "investigating"
    AWAITING_PARTNER = "awaiting_partner"
    CONTAINED = "contained"
    CLOSED = "closed"


class Role(StrEnum):
    SPECIALIST = "specialist"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class ContactKind(StrEnum):
    CONSOLE = "console"
    DESKTOP = "desktop"
    WEBHOOK = "webhook"


SEVERITIES = (1, 2, 3, 4)
SEVERITY_LABELS = {1: "imminent risk to life", 2: "urgent", 3: "serious", 4: "routine"}


def parse_severity(text: str | int) -> int:
    """Accept `sev1`..`sev4` or `1`..`4`; raise ValueError naming what was expected."""
    raw = str(text).strip().lower()
    if raw.startswith("sev"):
        raw = raw[3:]
    if raw in {"1", "2", "3", "4"}:
        return int(raw)
    raise ValueError(f"expected sev1, sev2, sev3, sev4 or 1-4, got {text!r}")


def severity_name(severity: int) -> str:
    return f"sev{severity}"


def parse_category(text: str) -> Category:
    try:
        return Category(str(text).strip().lower())
    except ValueError:
        allowed = ", ".join(c.value for c in Category)
        raise ValueError(f"expected one of {allowed}, got {text!r}") from None


_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """Parse `30s`, `5m`, `2h`, `1d`, `7d` (and `1w`) into a timedelta."""
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ValueError(f"expected a duration such as 30s, 5m, 2h, 1d or 7d, got {text!r}")
    amount, unit = int(match.group(1)), match.group(2)
    if amount <= 0:
        raise ValueError(f"expected a positive duration, got {text!r}")
    return timedelta(seconds=amount * _UNIT_SECONDS[unit])


def format_duration(delta: timedelta) -> str:
    """The shortest exact team-file spelling of a duration."""
    seconds = int(delta.total_seconds())
    for unit in ("d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

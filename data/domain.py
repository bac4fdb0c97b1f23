"""Domain vocabulary shared by every layer: the contract values of the design."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum, unique


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


def category_label(category: str) -> str:
    """A category as people read it; an unknown stored value as it is."""
    try:
        return CATEGORY_LABELS[Category(category)]
    except ValueError:
        return category


class Status(StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class EngineAction(StrEnum):
    """What the escalation engine records as itself (`data.access` lets any login write
    these as "engine": a console runs the engine's code under its person's login)."""

    ESCALATE = "engine.escalate"
    EXHAUSTED = "engine.exhausted"
    REPAIR = "engine.repair"
    CONTACT_GONE = "contact.gone"


@unique
class TimelineKind(StrEnum):
    """What a line of a case's timeline records (`TimelineEvent.kind`), as stored: every
    writer passes one of these, and readers compare against them."""

    # The case's own life (app.services.cases).
    OPENED = "opened"
    DUPLICATE = "duplicate"
    ACK_PARTIAL = "ack_partial"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    MERGED = "merged"
    MERGED_IN = "merged_in"
    REOPENED = "reopened"
    RESOLVED = "resolved"
    REASSIGNED = "reassigned"
    NOTE = "note"
    STAGE = "stage"
    REVEAL = "reveal"
    ESCALATE = "escalate"
    ACTION_ITEM = "action_item"
    # Paging, the escalation engine and the outbox.
    PAGED = "paged"
    SNOOZE_END = "snooze_end"
    ACK_TIMEOUT = "ack_timeout"
    RESTART = "restart"
    SKIPPED = "skipped"
    CATCH_UP = "catch_up"
    DELAYED = "delayed"
    FALLBACK_POLICY = "fallback_policy"
    EXHAUSTED = "exhausted"
    REPAIR = "repair"
    WEBHOOK_GONE = "webhook_gone"
    # Casework, the CyberTipline and post-mortems.
    VERIFICATION = "verification"
    DISCLOSURE = "disclosure"
    CLOCK = "clock"
    CONTAINMENT = "containment"
    PARTNER = "partner"
    FRAUD = "fraud"
    EVIDENCE = "evidence"
    TIPLINE = "tipline"
    POSTMORTEM = "postmortem"
    # The desk's configuration (app.services.team).
    POLICY_REMOVED = "policy_removed"


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
    APPRISE = "apprise"


OUTBOX_CHANNELS = (ContactKind.WEBHOOK.value, ContactKind.APPRISE.value)
"""Channels the engine's outbox sends (the console and desktop ones are the console's)."""


class Urgency(StrEnum):
    """How hard a page pushes: high goes through at any hour, low waits out quiet hours."""

    HIGH = "high"
    LOW = "low"


DEFAULT_HIGH_URGENCY = (1, 2)
"""Severities paged at high urgency unless a policy says otherwise."""


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


_DURATION = re.compile(r"^([0-9]+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# --- bounds: every duration, count and instant that comes in has a range --------------
#
# One table, checked at every entry (team file, command line, console forms, intake), so a
# value that passes can never overflow a date later (`ack_timeout = "3000000d"` once made
# every acknowledgement of its policy fail). The ranges are generous for real desks.


@dataclass(frozen=True, slots=True)
class DurationRange:
    """The durations a field accepts, both ends included."""

    low: timedelta
    high: timedelta

    def __str__(self) -> str:
        return f"from {format_duration(self.low)} to {format_duration(self.high)}"


@dataclass(frozen=True, slots=True)
class CountRange:
    """The whole numbers a field accepts, both ends included."""

    low: int
    high: int

    def __str__(self) -> str:
        return f"from {self.low:,} to {self.high:,}"

    def check(self, value: object) -> int:
        """`value` if it is a whole number in range; ValueError saying what was expected."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number {self}, got {_shown(value)}")
        if not self.low <= value <= self.high:
            raise ValueError(f"expected a whole number {self}, got {_shown(value)}")
        return value


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...{text[-10:]} ({len(text)} characters)"


ANY_DURATION = DurationRange(timedelta(seconds=1), timedelta(days=3660))
"""Any duration at all: up to ten years (legal clocks count in calendar years, `1y`)."""
STEP_DELAY = DurationRange(timedelta(seconds=1), timedelta(days=7))
ACK_TIMEOUT = DurationRange(timedelta(minutes=1), timedelta(days=30))
SLA_TARGET = DurationRange(timedelta(minutes=1), timedelta(days=30))
SHIFT_LENGTH = DurationRange(timedelta(hours=1), timedelta(days=28))
OVERRIDE_LENGTH = DurationRange(timedelta(minutes=1), timedelta(days=366))
HEARTBEAT_INTERVAL = DurationRange(timedelta(minutes=1), timedelta(days=7))
HEARTBEAT_GRACE = DurationRange(timedelta(seconds=1), timedelta(days=1))
REQUEST_TIMEOUT = DurationRange(timedelta(seconds=1), timedelta(minutes=5))
"""`vigil serve --request-timeout`: what a sender has for a request's head, and for its body."""
CLOCK_SPAN = DurationRange(timedelta(minutes=1), timedelta(days=3660))
"""A legal clock's period, its reminder and a hold's extension (preservation: 90 days)."""

REPEAT = CountRange(0, 100)
"""How many more times a policy's chain starts over."""
POLICY_STEPS = CountRange(1, 20)
CLOCK_YEARS = CountRange(1, 10)
EXTENSIONS = CountRange(0, 20)
"""How many times a hold may be extended."""
DAYS = CountRange(1, 366)
"""`--days` of the calendar and the figures: a year at most."""
LIMIT = CountRange(1, 10_000_000)
ID_RANGE = CountRange(1, 2**63 - 1)
"""A row's number as typed (`override remove 3`): what an SQL BIGINT holds."""

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)
"""Instants a person or a feed may give: 1970 to the end of 2199 (UTC)."""
INSTANT_RANGE = "between 1970-01-01 and 2199-12-31"


def check_instant(value: datetime) -> datetime:
    """`value` (aware) if it lies between `EARLIEST` and `LATEST`; ValueError otherwise.

    Checked in UTC after the offset is applied: 9999-12-31T23:00-05:00 is out of range
    however it is written, and so is 0001-01-01 in any zone."""
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ValueError(f"expected a time {INSTANT_RANGE}, got {value.isoformat()}")
    return utc


def check_day(value: date) -> date:
    """A calendar day between 1970-01-01 and 2199-12-31; ValueError otherwise."""
    if not EARLIEST.date() <= value <= LATEST.date():
        raise ValueError(f"expected a date {INSTANT_RANGE}, got {value.isoformat()}")
    return value


def parse_duration(text: str, bounds: DurationRange = ANY_DURATION) -> timedelta:
    """Parse `30s`, `5m`, `2h`, `1d`, `7d` (and `1w`) into a timedelta within `bounds`."""
    match = _DURATION.match(str(text).strip())
    if not match or len(match.group(1)) > 12:
        if match:
            raise ValueError(f"expected a duration {bounds}, got {_shown(text)}")
        raise ValueError(f"expected a duration such as 30s, 5m, 2h, 1d or 7d, got {_shown(text)}")
    amount, unit = int(match.group(1)), match.group(2)
    if amount <= 0:
        raise ValueError(f"expected a positive duration, got {text!r}")
    seconds = amount * _UNIT_SECONDS[unit]
    if not bounds.low.total_seconds() <= seconds <= bounds.high.total_seconds():
        raise ValueError(f"expected a duration {bounds}, got {text!r}")
    return timedelta(seconds=seconds)


def check_duration(delta: timedelta, bounds: DurationRange) -> timedelta:
    """A duration already parsed (a form's minutes, a span) checked against `bounds`."""
    if not bounds.low <= delta <= bounds.high:
        raise ValueError(f"expected a duration {bounds}, got {format_duration(delta)}")
    return delta


def format_duration(delta: timedelta) -> str:
    """The shortest exact team-file spelling of a duration."""
    seconds = int(delta.total_seconds())
    for unit in ("d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# --- legal clocks -------------------------------------------------------------


class ClockKind(StrEnum):
    DEADLINE = "deadline"  # something must be filed by `due` (a report to an authority)
    HOLD = "hold"  # data must be kept until `due` (a preservation period)


class ClockState(StrEnum):
    PENDING = "pending"  # not started yet (a hold waiting for its report)
    OK = "ok"
    WARN = "warn"  # inside the reminder window
    BREACHED = "breached"  # a deadline passed with nothing filed
    DONE = "done"  # filed, waived, or the hold ended


CLOCK_URGENCY = {ClockState.BREACHED: 0, ClockState.WARN: 1, ClockState.OK: 2}
"""Running clocks, most urgent first."""


def clock_state(kind: str, due_at: datetime, reminder_at: datetime | None, now: datetime) -> str:
    """A started, unfinished clock at `now`: past due, a deadline is breached and a hold
    has ended; inside the reminder window it warns."""
    if now >= due_at:
        return ClockState.DONE if kind == ClockKind.HOLD else ClockState.BREACHED
    if reminder_at is not None and now >= reminder_at:
        return ClockState.WARN
    return ClockState.OK


# --- casework ------------------------------------------------------------------


class VerificationStepName(StrEnum):
    """The checklist of an emergency data request, in the order it is worked."""

    IDENTITY = "identity"  # requester confirmed through an independent channel
    AGENCY = "agency"  # agency and officer recorded
    EMERGENCY = "emergency"  # the claimed danger of death or serious physical injury
    GOOD_FAITH = "good_faith"  # the specialist's good-faith determination


class DataCategory(StrEnum):
    SUBSCRIBER = "subscriber"
    IP_LOGS = "ip_logs"
    CONTENT = "content"
    LOCATION = "location"


class DisclosureStatus(StrEnum):
    REQUESTED = "requested"  # waiting for a supervisor
    DISCLOSED = "disclosed"  # approved and made
    DECLINED = "declined"


class PartnerKind(StrEnum):
    LAW_ENFORCEMENT = "law_enforcement"
    NGO = "ngo"
    PRODUCT = "product"
    POLICY = "policy"
    LEGAL = "legal"
    OTHER = "other"


# Teams of our own company: they own action items but never receive a disclosure.
INTERNAL_PARTNER_KINDS = frozenset({PartnerKind.PRODUCT, PartnerKind.POLICY, PartnerKind.LEGAL})


class ClockEventKind(StrEnum):
    FILED = "filed"  # the report a deadline clock asks for was filed
    EXTENDED = "extended"  # a hold was extended on a renewed request
    WAIVED = "waived"  # a supervisor ended the clock early, with a reason


class ActionStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class OwnerKind(StrEnum):
    PERSON = "person"
    PARTNER = "partner"


# --- partners ---------------------------------------------------------------


class FilingStatus(StrEnum):
    """How far a CyberTipline filing got (`data.tipline.TiplineFiling`)."""

    CLAIMED = "claimed"  # a filer holds the claim; nothing is open at NCMEC
    SUBMITTED = "submitted"  # NCMEC gave a report id; files and finish still to come
    FINISHED = "finished"  # NCMEC has the finished report: filed
    REJECTED = "rejected"  # NCMEC refused it (a validation failure): fix and file again
    WAITING = "waiting"  # NCMEC unreachable: retried with backoff, the clock still running


# The industry's categorisation scale, as the Reporting API's fileDetails names it:
# A = prepubescent, B = pubescent; 1 = sex act, 2 = lascivious exhibition.
INDUSTRY_CLASSIFICATIONS = ("A1", "A2", "B1", "B2")


class ChannelKind(StrEnum):
    PHONE = "phone"
    DOMAIN = "domain"

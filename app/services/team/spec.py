"""The team file as data: what a file declares (`TeamSpec`), the problems found in one, and
the vocabulary every step shares (kinds, names, handles).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from app.core.errors import NotAllowed, VigilError
from app.rules.rotations import (
    HolidaySpec,
    RotationSpec,
)
from data.contacts import digest, shown_url
from data.domain import (
    ContactKind,
    Role,
    format_duration,
)
from data.intake import Integration
from data.models import Policy, Responder, Routing, SlaTarget
from data.oncall import Holiday, Override, Rotation, Schedule
from widgets.timefmt import plural

KINDS = (
    "responder",
    "rotation",
    "schedule",
    "override",
    "policy",
    "routing",
    "sla",
    "holiday",
    "integration",
    "heartbeat",
)
INTEGRATION_KEYS = ("category", "severity", "policy", "rate_limit")
HEARTBEAT_KEYS = ("grace", "category", "severity", "policy")
HANDLE = re.compile(r"^[a-z][a-z0-9._-]{0,31}$")
DB_LOGIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.@-]{0,62}$")
DB_LOGIN_RULE = (
    "a PostgreSQL login: a letter or '_', then letters, digits, '_', '.', '@' or '-' (63 at most)"
)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
HANDLE_RULE = (
    "a handle: a lowercase letter, then lowercase letters, digits, '.', '_' or '-' (32 at most)"
)
NAME_RULE = "a name of letters, digits, '.', '_' or '-' (64 at most)"
TARGET_KINDS = ("schedule", "rotation", "user", "role")
T = TypeVar("T")
Row = TypeVar(
    "Row",
    Responder,
    Rotation,
    Schedule,
    Override,
    Policy,
    Routing,
    SlaTarget,
    Holiday,
    Integration,
)
EXPORT_HEADER = """\
# Vigil team file: `vigil team apply FILE.toml` makes the team exactly this.
# Secrets are never exported. A webhook contact without `secret` keeps the secret already
# stored for the same responder and URL when this file is applied, and a webhook URL shown
# as `https://host/...#kept:…` (its path and query may hold a token) keeps the stored URL,
# as an Apprise URL shown as `ntfy://...#kept:…` (all of it may hold tokens) does.
# An integration or heartbeat keeps its stored key (`vigil integration key NAME` makes one).
"""


# --- errors -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TeamError:
    """One problem in a team file: its key path (`rotation[1].handoff`) and what is wrong.

    `name` is the entry's name or handle, shown next to its index so a long file is easy to
    search: `rotation[1] (us-day).handoff: expected ...`.
    """

    path: str
    message: str
    name: str | None = None

    @property
    def where(self) -> str:
        if not self.name:
            return self.path
        head, dot, rest = self.path.partition(".")
        return f"{head} ({printable(self.name)}){dot}{rest}"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class TeamFileError(VigilError, ValueError):
    """A team file that cannot be applied; lists every problem found, not just the first."""

    exit_code = 2

    def __init__(self, errors: Sequence[TeamError], source: str = "team file") -> None:
        self.errors = list(errors)
        self.source = source
        count = len(self.errors)
        heading = f"{source}: {plural(count, 'problem')}; nothing was applied"
        super().__init__("\n".join([heading, *(f"  {error}" for error in self.errors)]))


class TeamPermissionError(NotAllowed, PermissionError):
    """Once a team exists, only one of its active supervisors or admins may change it."""


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def printable(text: str) -> str:
    """Text from the file as a message may show it: a key or name holding a line break or
    a terminal escape is quoted with escapes (as TOML writes it), never printed raw."""
    if text.isprintable():
        return text
    escaped = "".join(
        ch if ch.isprintable() and ch not in '"\\' else _ESCAPES.get(ch, f"\\u{ord(ch):04x}")
        for ch in text
    )
    return f'"{escaped}"'


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC, to the microsecond: what a team file holds, read back exactly."""
    return moment.astimezone(UTC).isoformat()


# --- the spec ---------------------------------------------------------------


CONTACT_FLAGS = ("allow_insecure", "allow_private")
"""A webhook contact's allowances: plain http:// or a short secret; a private address."""


@dataclass(frozen=True, slots=True)
class KeptSecrets:
    """A stored contact's URL and secret as the team file knows them without reading them
    (people's logins may not): as shown, and by digest (`data.contacts`)."""

    shown: str
    url_digest: str
    secret_digest: str | None


@dataclass(frozen=True, slots=True, eq=False)
class ContactSpec:
    """A contact as a file declares it (`url` and `secret` in full), or as stored (`kept`
    stands for them). Two are the same contact when their kinds, names, allowances and the
    digests of their URLs and secrets are equal."""

    kind: str
    url: str | None = None
    secret: str | None = field(default=None, repr=False)
    allow_insecure: bool = False
    allow_private: bool = False
    name: str | None = None
    """What notification rules call it (else its kind)."""
    kept: KeptSecrets | None = field(default=None, repr=False)
    """The stored URL and secret this contact keeps where the file does not give them."""

    @property
    def url_digest(self) -> str | None:
        if self.url is not None:
            return digest(self.url)
        return self.kept.url_digest if self.kept else None

    @property
    def secret_digest(self) -> str | None:
        if self.secret is not None:
            return digest(self.secret)
        return self.kept.secret_digest if self.kept else None

    @property
    def shown(self) -> str | None:
        """The URL as Vigil prints it, never its token."""
        if self.url is not None:
            return shown_url(self.url, self.kind)
        return self.kept.shown if self.kept else None

    def _identity(self) -> tuple[object, ...]:
        return (
            self.kind,
            self.url_digest,
            self.secret_digest,
            self.allow_insecure,
            self.allow_private,
            self.name,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ContactSpec) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __str__(self) -> str:
        """Never shows the secret (only whether there is one) nor the URL's token."""
        text = self.kind if self.shown is None else f"{self.kind} {self.shown}"
        if self.name:
            text += f" {self.name!r}"
        allowed = [name for name in CONTACT_FLAGS if getattr(self, name)]
        if allowed:
            text += f" ({', '.join(allowed)})"
        return f"{text} (with secret)" if self.secret_digest else text

    @property
    def flags(self) -> dict[str, bool]:
        """The allowances the file sets (true ones only), as the file writes them."""
        return {name: True for name in CONTACT_FLAGS if getattr(self, name)}


NotifyRulesSpec = tuple[tuple[str, tuple[tuple[timedelta, str], ...]], ...]
"""Personal notification rules: (urgency, ((delay, contact name), ...)), by urgency."""


def rules_from_stored(stored: dict[str, Any] | None) -> NotifyRulesSpec:
    return tuple(
        sorted(
            (urgency, tuple((timedelta(seconds=int(d)), str(n)) for d, n in entries))
            for urgency, entries in (stored or {}).items()
        )
    )


def rules_to_stored(rules: NotifyRulesSpec) -> dict[str, list[list[Any]]]:
    return {
        urgency: [[int(delay.total_seconds()), name] for delay, name in entries]
        for urgency, entries in rules
    }


@dataclass(frozen=True, slots=True)
class ResponderSpec:
    handle: str
    name: str
    role: str = Role.SPECIALIST.value
    timezone: str = "UTC"
    contacts: tuple[ContactSpec, ...] = ()
    quiet_hours: str | None = None
    """HH:MM-HH:MM in `timezone`: low-urgency pages wait until it ends."""
    notify: NotifyRulesSpec = ()
    db_login: str | None = None  # the PostgreSQL login that is this person; None: the handle

    @property
    def reachable(self) -> bool:
        """Whether a page reaches them away from an open console."""
        return any(contact.kind != ContactKind.CONSOLE for contact in self.contacts)


@dataclass(frozen=True, slots=True)
class TeamSchedule:
    name: str
    layers: tuple[str, ...]
    timezone: str | None = None
    holiday_region: str | None = None
    holiday_cover: str | None = None
    support_hours: str | None = None
    """HH:MM-HH:MM in the schedule's zone: low-urgency pages through it wait for them."""
    support_days: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class TeamOverride:
    schedule: str
    who: str
    start: datetime  # UTC
    end: datetime  # UTC
    reason: str = ""


@dataclass(frozen=True, slots=True)
class StepSpec:
    delay: timedelta
    targets: tuple[str, ...]
    require_all: bool = False

    def __str__(self) -> str:
        every = ", all must acknowledge" if self.require_all else ""
        return f"{', '.join(self.targets)} ({format_duration(self.delay)}{every})"


@dataclass(frozen=True, slots=True)
class PolicySpec:
    name: str
    steps: tuple[StepSpec, ...]
    repeat: int = 0
    ack_timeout: timedelta | None = None
    high_urgency: tuple[int, ...] | None = None
    """Severities paged at high urgency; None: sev1 and sev2."""


@dataclass(frozen=True, slots=True)
class IntegrationSpec:
    """A sender of alerts; its key is made by `vigil integration key NAME`, never written."""

    name: str
    format: str
    category: str | None = None
    severity: int | None = None
    policy: str | None = None
    rate_limit: int = 120  # events a minute
    # A heartbeat monitor (format "heartbeat"): a beat every `interval`, `grace` of slack.
    interval: timedelta | None = None
    grace: timedelta | None = None


@dataclass(frozen=True, slots=True)
class SlaSpec:
    severity: int
    ack: timedelta
    respond: timedelta


@dataclass(frozen=True)
class TeamSpec:
    """A valid team file, ready to plan against what is stored."""

    responders: tuple[ResponderSpec, ...] = ()
    rotations: tuple[RotationSpec, ...] = ()
    schedules: tuple[TeamSchedule, ...] = ()
    overrides: tuple[TeamOverride, ...] = ()
    policies: tuple[PolicySpec, ...] = ()
    routing: tuple[tuple[str, str], ...] = ()  # (category or "default", policy name)
    slas: tuple[SlaSpec, ...] = ()
    holidays: tuple[HolidaySpec, ...] = ()
    integrations: tuple[IntegrationSpec, ...] = ()
    # The casework tables (`clocks`, `disclosure_basis`, `containment`) as written; an
    # absent table means the built-in defaults.
    casework: Mapping[str, Any] = field(default_factory=dict)
    source: str = "team file"

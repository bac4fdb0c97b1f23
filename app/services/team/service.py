"""The team file: one TOML file declares the whole team, and applying it is idempotent.

`parse_team` reads the text into a `TeamSpec`, collecting every problem with its key path
(`rotation[1].handoff`), so a file is fixed in one pass and nothing is stored while anything
is wrong. `plan_apply` compares a spec with what is stored; `apply_team` writes the difference
in one transaction with one `team.apply` audit record. `export_team` prints what is stored in
the same format, never a secret, so that applying an export changes nothing.

The file is the whole team: responders missing from it are deactivated (cases point at them),
rotations, schedules, policies, routes, SLA targets and integrations missing from it are
removed. An integration's key is never in the file: `vigil integration key NAME` makes one,
and applying a file keeps the stored key of an integration it still declares. Overrides
and holidays are upserted by their natural key and never removed by a file: an override placed
from a console stays until its schedule goes.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from app.core.errors import NotAllowed, VigilError
from app.rules.casework import (
    CASEWORK_KEYS,
    CaseworkConfigError,
    parse_casework_config,
    settings_document,
)
from app.rules.destinations import contact_problems
from app.rules.rotations import (
    HolidaySpec,
    RotationSpec,
    format_days,
    format_hours,
    parse_days,
    parse_handoff,
    parse_hours,
)
from app.services.casework.settings import settings_toml, store_settings, stored_settings
from app.services.unit_of_work import SUPERVISING
from data import audit
from data.db import Database
from data.domain import (
    ACK_TIMEOUT,
    ANY_DURATION,
    OVERRIDE_LENGTH,
    POLICY_STEPS,
    REPEAT,
    SHIFT_LENGTH,
    SLA_TARGET,
    STEP_DELAY,
    Category,
    ContactKind,
    DurationRange,
    Role,
    check_day,
    check_duration,
    check_instant,
    format_duration,
    parse_duration,
    parse_severity,
    severity_name,
)
from data.intake import INTEGRATION_FORMATS, Integration
from data.models import (
    Case,
    ContactMethod,
    Delivery,
    Holiday,
    Override,
    Policy,
    PolicyStep,
    Responder,
    Rotation,
    RotationMember,
    Routing,
    Schedule,
    ScheduleLayer,
    SlaTarget,
)

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
)
INTEGRATION_KEYS = ("category", "severity", "policy", "rate_limit")
HANDLE = re.compile(r"^[a-z][a-z0-9._-]{0,31}$")
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
# as `https://host/...#kept:…` (its path and query may hold a token) keeps the stored URL.
# An integration keeps its stored key (`vigil integration key NAME` makes a new one).
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
        return f"{head} ({_printable(self.name)}){dot}{rest}"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class TeamFileError(VigilError, ValueError):
    """A team file that cannot be applied; lists every problem found, not just the first."""

    exit_code = 2

    def __init__(self, errors: Sequence[TeamError], source: str = "team file") -> None:
        self.errors = list(errors)
        self.source = source
        count = len(self.errors)
        heading = f"{source}: {count} problem{'' if count == 1 else 's'}; nothing was applied"
        super().__init__("\n".join([heading, *(f"  {error}" for error in self.errors)]))


class TeamPermissionError(NotAllowed, PermissionError):
    """Once a team exists, only one of its active supervisors or admins may change it."""


# --- the spec ---------------------------------------------------------------


CONTACT_FLAGS = ("allow_insecure", "allow_private")
"""A webhook contact's allowances: plain http:// or a short secret; a private address."""

KEPT_URL = re.compile(r"^https?://[^/?#@]+/\.\.\.#kept:[0-9a-f]{8}$")
"""A webhook URL as `shown_url` prints it; applying it keeps the stored URL it stands for."""


def shown_url(url: str) -> str:
    """A webhook URL as Vigil prints it (export, plans, the audit log): its scheme and host,
    and in place of the rest, where chat services put their tokens, a fingerprint that
    `vigil team apply` matches against the stored URL. A bare host is shown whole."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    if parts.path in ("", "/") and not (parts.query or parts.fragment) and host == parts.netloc:
        return url
    fingerprint = hashlib.sha256(url.encode()).hexdigest()[:8]
    return f"{parts.scheme}://{host}/...#kept:{fingerprint}"


@dataclass(frozen=True, slots=True)
class ContactSpec:
    kind: str
    url: str | None = None
    secret: str | None = field(default=None, repr=False)
    allow_insecure: bool = False
    allow_private: bool = False

    def __str__(self) -> str:
        """Never shows the secret (only whether there is one) nor the URL's token."""
        text = self.kind if self.url is None else f"{self.kind} {shown_url(self.url)}"
        allowed = [name for name in CONTACT_FLAGS if getattr(self, name)]
        if allowed:
            text += f" ({', '.join(allowed)})"
        return f"{text} (with secret)" if self.secret else text

    @property
    def flags(self) -> dict[str, bool]:
        """The allowances the file sets (true ones only), as the file writes them."""
        return {name: True for name in CONTACT_FLAGS if getattr(self, name)}


@dataclass(frozen=True, slots=True)
class ResponderSpec:
    handle: str
    name: str
    role: str = Role.SPECIALIST.value
    timezone: str = "UTC"
    contacts: tuple[ContactSpec, ...] = ()

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


@dataclass(frozen=True, slots=True)
class IntegrationSpec:
    """A sender of alerts; its key is made by `vigil integration key NAME`, never written."""

    name: str
    format: str
    category: str | None = None
    severity: int | None = None
    policy: str | None = None
    rate_limit: int = 120  # events a minute


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


# --- reading ----------------------------------------------------------------


def load_team_file(path: str | Path) -> TeamSpec:
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise TeamFileError(
            [TeamError("", f"cannot read the file: {exc.strerror or exc}")], source
        ) from exc
    except UnicodeDecodeError as exc:
        raise TeamFileError(
            [TeamError("", f"expected UTF-8 text, found byte {exc.object[exc.start]:#04x}")],
            source,
        ) from exc
    return parse_team(text, source)


_TOML_WHERE = re.compile(r"^(?P<message>.*?)\s*\(at line (?P<line>\d+), column (?P<column>\d+)\)$")


def parse_team(text: str, source: str = "team file") -> TeamSpec:
    """Parse and check a whole team file; raise `TeamFileError` listing every problem."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_WHERE.match(str(exc))
        if match is None:
            raise TeamFileError([TeamError("", f"TOML syntax: {exc}")], source) from exc
        where = f"line {match['line']}, column {match['column']}"
        message = match["message"]
        raise TeamFileError(
            [TeamError(where, f"TOML syntax: {message[:1].lower()}{message[1:]}")], source
        ) from exc
    spec, errors = _Reader(document, source).read()
    if errors:
        raise TeamFileError(errors, source)
    return spec


def validate(document: Mapping[str, Any]) -> list[TeamError]:
    """Every problem of an already-parsed TOML document, in file order."""
    return _Reader(document, "team file").read()[1]


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, date | datetime):
        return value.isoformat()
    return repr(value)


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _zone_problem(name: str) -> str | None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return (
            f"expected an IANA time zone such as Europe/Dublin, got {name!r}"
            f"{_suggest(name, available_timezones())}"
        )
    return None


def _printable(text: str) -> str:
    """Text from the file as a message may show it: a key or name holding a line break or
    a terminal escape is quoted with escapes (as TOML writes it), never printed raw."""
    if text.isprintable():
        return text
    escaped = "".join(
        ch if ch.isprintable() and ch not in '"\\' else _ESCAPES.get(ch, f"\\u{ord(ch):04x}")
        for ch in text
    )
    return f'"{escaped}"'


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


class _Entry:
    """One table of the file: reads its values and reports problems under its key path.

    A getter that finds a bad value records the problem and returns a stand-in, so reading
    goes on and every problem is found; the spec is thrown away when there was any.
    """

    def __init__(
        self, errors: list[TeamError], path: str, table: Mapping[str, Any], name: str | None
    ) -> None:
        self.errors = errors
        self.path = path
        self.table = table
        self.name = name

    def key_path(self, key: str) -> str:
        shown = _printable(key)
        return f"{self.path}.{shown}" if self.path else shown

    def error(self, key: str | None, message: str) -> None:
        path = self.path if key is None else self.key_path(key)
        self.errors.append(TeamError(path, message, self.name))

    def child(self, key: str, table: Mapping[str, Any]) -> _Entry:
        return _Entry(self.errors, self.key_path(key), table, self.name)

    def check_keys(self, required: Sequence[str], optional: Sequence[str] = ()) -> None:
        allowed = (*required, *optional)
        for key in self.table:
            if key not in allowed:
                self.error(
                    str(key),
                    f"unknown key {key!r}{_suggest(str(key), allowed)} "
                    f"(expected {', '.join(allowed)})",
                )
        for key in required:
            if key not in self.table:
                self.error(key, "required key is missing")

    def text(self, key: str, default: str = "") -> str:
        value = self.table.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            self.error(key, f"expected a string, got {_describe(value)}")
            return default
        if not value.strip():
            self.error(key, "expected a non-empty string, got ''")
            return default
        return value.strip()

    def optional_text(self, key: str) -> str | None:
        return (self.text(key) or None) if key in self.table else None

    def choice(self, key: str, choices: Sequence[str], default: str) -> str:
        value = self.text(key, default)
        if value not in choices:
            self.error(
                key,
                f"expected one of {', '.join(choices)}, got {value!r}{_suggest(value, choices)}",
            )
            return default
        return value

    def texts(self, key: str) -> list[str]:
        """A non-empty array of strings; problems reported per element (`members[2]`)."""
        value = self.table.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(key, f"expected an array of strings, got {_describe(value)}")
            return []
        if not value:
            self.error(key, "expected at least one entry, got an empty array")
        out = []
        for index, item in enumerate(value):
            if isinstance(item, str) and item.strip():
                out.append(item.strip())
            else:
                self.error(f"{key}[{index}]", f"expected a non-empty string, got {_describe(item)}")
        return out

    def duration(self, key: str, bounds: DurationRange = ANY_DURATION) -> timedelta:
        value = self.table.get(key)
        if value is None:
            return timedelta(0)
        if not isinstance(value, str):
            self.error(key, f'expected a duration string such as "5m", got {_describe(value)}')
            return timedelta(0)
        try:
            return parse_duration(value, bounds)
        except ValueError as exc:
            self.error(key, str(exc))
            return timedelta(0)

    def optional_duration(self, key: str, bounds: DurationRange = ANY_DURATION) -> timedelta | None:
        return self.duration(key, bounds) if key in self.table else None

    def zone(self, key: str, default: str = "UTC") -> str:
        name = self.text(key)
        if not name:
            return default
        problem = _zone_problem(name)
        if problem:
            self.error(key, problem)
            return default
        return name

    def day(self, key: str) -> date | None:
        value = self.table.get(key)
        if value is None:
            return None
        day: date | None = None
        if isinstance(value, date) and not isinstance(value, datetime):
            day = value
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                day = date.fromisoformat(value.strip())
        if day is not None:
            try:
                return check_day(day)
            except ValueError as exc:
                self.error(key, str(exc))
                return None
        self.error(key, f"expected a date YYYY-MM-DD such as 2026-11-03, got {_describe(value)}")
        return None

    def flag(self, key: str) -> bool:
        value = self.table.get(key, False)
        if not isinstance(value, bool):
            self.error(key, f"expected true or false, got {_describe(value)}")
            return False
        return value

    def instant(self, key: str, zone: ZoneInfo | None, zone_note: str) -> datetime | None:
        """An ISO 8601 date and time; without an offset it is local to `zone`."""
        value = self.table.get(key)
        if value is None:
            return None
        moment: datetime | None = None
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, str) and len(value.strip()) > 10:  # a date alone is no instant
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                moment = None
        if moment is None:
            self.error(
                key,
                "expected an ISO 8601 date and time such as 2026-12-24T20:00:00+11:00, "
                f"got {_describe(value)}",
            )
            return None
        if moment.tzinfo is None:
            if zone is None:
                self.error(key, f"{_describe(value)} has no UTC offset and {zone_note}")
                return None
            moment = moment.replace(tzinfo=zone)
        try:
            return check_instant(moment)
        except ValueError as exc:
            self.error(key, str(exc))
            return None


class _Reader:
    """Reads one parsed TOML document into a `TeamSpec`, collecting every problem."""

    def __init__(self, document: Mapping[str, Any], source: str) -> None:
        self.document = document
        self.source = source
        self.errors: list[TeamError] = []
        self.handles: set[str] = set()
        self.rotation_names: set[str] = set()
        self.schedule_names: set[str] = set()
        self.policy_names: set[str] = set()

    def read(self) -> tuple[TeamSpec, list[TeamError]]:
        _Entry(self.errors, "", self.document, None).check_keys((), KINDS + CASEWORK_KEYS)
        try:
            parse_casework_config(self.document)
        except CaseworkConfigError as exc:
            self.errors.extend(TeamError(p.path, p.message) for p in exc.problems)
        responders = self._entries("responder", "handle")
        rotations = self._entries("rotation", "name")
        schedules = self._entries("schedule", "name")
        policies = self._entries("policy", "name")
        self.handles = self._names(responders, "handle", HANDLE, HANDLE_RULE)
        self.rotation_names = self._names(rotations, "name", NAME, NAME_RULE)
        self.schedule_names = self._names(schedules, "name", NAME, NAME_RULE)
        self.policy_names = self._names(policies, "name", NAME, NAME_RULE)

        rotation_specs = [self._rotation(entry) for entry in rotations]
        schedule_specs = [self._schedule(entry) for entry in schedules]
        spec = TeamSpec(
            responders=tuple(self._responder(entry) for entry in responders),
            rotations=tuple(spec for spec in rotation_specs if spec is not None),
            schedules=tuple(schedule_specs),
            overrides=self._overrides(schedule_specs, rotation_specs),
            policies=tuple(self._policy(entry) for entry in policies),
            routing=self._routing(),
            slas=self._slas(),
            holidays=self._holidays(),
            integrations=self._integrations(),
            casework=settings_document(self.document),
            source=self.source,
        )
        return spec, sorted(self.errors, key=_file_order)

    # -- structure ----------------------------------------------------------

    def _entries(self, kind: str, name_key: str) -> list[_Entry]:
        value = self.document.get(kind)
        if value is None:
            return []
        if not isinstance(value, list):
            self.errors.append(
                TeamError(kind, f"expected an array of tables [[{kind}]], got {_describe(value)}")
            )
            return []
        entries = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                self.errors.append(
                    TeamError(f"{kind}[{index}]", f"expected a table, got {_describe(item)}")
                )
                continue
            name = item.get(name_key)
            entries.append(
                _Entry(
                    self.errors, f"{kind}[{index}]", item, name if isinstance(name, str) else None
                )
            )
        return entries

    def _table(self, key: str) -> _Entry | None:
        value = self.document.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.errors.append(TeamError(key, f"expected a table [{key}], got {_describe(value)}"))
            return None
        return _Entry(self.errors, key, value, None)

    @staticmethod
    def _names(entries: list[_Entry], key: str, pattern: re.Pattern[str], rule: str) -> set[str]:
        """The names the file defines (even of entries with other problems), checked once."""
        first: dict[str, str] = {}
        for entry in entries:
            name = entry.text(key)
            if not name:
                continue
            if not pattern.match(name):
                entry.error(key, f"expected {rule}, got {name!r}")
            if name in first:
                entry.error(key, f"duplicate {key} {name!r}: {first[name]} has it already")
            else:
                first[name] = entry.path
        return set(first)

    def _reference(self, entry: _Entry, key: str, value: str, kind: str) -> None:
        """Report `value` unless the file defines a `kind` (responder, rotation...) by it."""
        known, section = {
            "responder": (self.handles, "[[responder]] handle"),
            "rotation": (self.rotation_names, "[[rotation]]"),
            "schedule": (self.schedule_names, "[[schedule]]"),
            "policy": (self.policy_names, "[[policy]]"),
        }[kind]
        if value and value not in known:
            entry.error(
                key,
                f"unknown {kind} {value!r} (not a {section} in this file){_suggest(value, known)}",
            )

    # -- entries ------------------------------------------------------------

    def _responder(self, entry: _Entry) -> ResponderSpec:
        entry.check_keys(("handle", "name"), ("role", "timezone", "contacts"))
        name = entry.text("name")
        role = entry.choice("role", [role.value for role in Role], Role.SPECIALIST.value)
        timezone = entry.zone("timezone")
        return ResponderSpec(entry.name or "", name, role, timezone, self._contacts(entry))

    def _contacts(self, entry: _Entry) -> tuple[ContactSpec, ...]:
        value = entry.table.get("contacts", [])
        example = '[{ kind = "desktop" }]'
        if not isinstance(value, list):
            entry.error("contacts", f"expected an array of contacts such as {example}")
            return ()
        contacts: list[ContactSpec] = []
        seen: dict[tuple[str, str | None], int] = {}
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                entry.error(
                    f"contacts[{index}]",
                    f'expected a table such as {{ kind = "desktop" }}, got {_describe(item)}',
                )
                continue
            contact = entry.child(f"contacts[{index}]", item)
            kinds = [kind.value for kind in ContactKind]
            kind = contact.choice("kind", kinds, "")
            url: str | None = None
            secret: str | None = None
            flags = dict.fromkeys(CONTACT_FLAGS, False)
            if not kind:
                continue
            if kind == ContactKind.WEBHOOK:
                contact.check_keys(("kind", "url"), ("secret", *CONTACT_FLAGS))
                url = contact.text("url")
                secret = contact.optional_text("secret")
                flags = {name: contact.flag(name) for name in CONTACT_FLAGS}
                parts = urlsplit(url)
                if url and (parts.scheme not in ("http", "https") or not parts.netloc):
                    contact.error("url", f"expected an http:// or https:// URL, got {url!r}")
                elif url:
                    for key, message in contact_problems(url, secret, **flags):
                        contact.error(key, message)
            else:
                contact.check_keys(("kind",))
            if (kind, url) in seen:
                contact.error(None, f"duplicate contact: same as contacts[{seen[kind, url]}]")
            seen.setdefault((kind, url), index)
            contacts.append(ContactSpec(kind, url, secret, **flags))
        return tuple(contacts)

    def _rotation(self, entry: _Entry) -> RotationSpec | None:
        entry.check_keys(
            ("name", "timezone", "shift", "handoff", "start", "members"), ("days", "hours")
        )
        before = len(self.errors)
        timezone = entry.zone("timezone")
        shift = entry.duration("shift", SHIFT_LENGTH)
        if shift % timedelta(minutes=1):
            entry.error("shift", f"expected whole minutes, got {format_duration(shift)}")
        handoff = self._parsed(entry, "handoff", parse_handoff)
        start = entry.day("start")
        members = entry.texts("members")
        for index, member in enumerate(members):
            self._reference(entry, f"members[{index}]", member, "responder")
        days = None
        if "days" in entry.table:
            raw_days = entry.table["days"]
            if not isinstance(raw_days, list):
                entry.error(
                    "days",
                    "expected a list of day names such as ['tue', 'wed'], "
                    f"got {_describe(raw_days)}",
                )
            else:
                try:
                    days = parse_days(raw_days)
                except ValueError as exc:
                    entry.error("days", str(exc))
        hours = self._parsed(entry, "hours", parse_hours)
        if len(self.errors) > before or entry.name is None or handoff is None or start is None:
            return None
        try:
            return RotationSpec(
                name=entry.name,
                timezone=timezone,
                shift=shift,
                handoff=handoff,
                start=start,
                members=tuple(members),
                days=days,
                hours=hours,
            )
        except ValueError as exc:
            # The rotation math has the last word on what a rotation may be.
            entry.error(None, str(exc).removeprefix(f"rotation {entry.name!r}: "))
            return None

    @staticmethod
    def _parsed(entry: _Entry, key: str, parse: Callable[[str], T]) -> T | None:
        """A string value run through one of the rotation parsers; None if absent or bad."""
        if key not in entry.table:
            return None
        text = entry.text(key)
        if not text:
            return None
        try:
            return parse(text)
        except ValueError as exc:
            entry.error(key, str(exc))
            return None

    def _schedule(self, entry: _Entry) -> TeamSchedule:
        entry.check_keys(("name", "layers"), ("timezone", "holiday_region", "holiday_cover"))
        layers = entry.texts("layers")
        first: dict[str, int] = {}
        for index, layer in enumerate(layers):
            self._reference(entry, f"layers[{index}]", layer, "rotation")
            if layer in first:
                entry.error(f"layers[{index}]", f"{layer!r} is already layers[{first[layer]}]")
            first.setdefault(layer, index)
        timezone = entry.zone("timezone", "") or None
        region = entry.optional_text("holiday_region")
        cover = entry.optional_text("holiday_cover")
        if cover is not None:
            self._reference(entry, "holiday_cover", cover, "responder")
            if region is None:
                entry.error("holiday_cover", "needs a holiday_region whose holidays it covers")
        return TeamSchedule(entry.name or "", tuple(layers), timezone, region, cover)

    def _overrides(
        self, schedules: list[TeamSchedule], rotations: list[RotationSpec | None]
    ) -> tuple[TeamOverride, ...]:
        zones = _schedule_zones(schedules, [r for r in rotations if r is not None])
        overrides: list[TeamOverride] = []
        first: dict[tuple[str, str, datetime, datetime], str] = {}
        for entry in self._entries("override", "who"):
            entry.check_keys(("schedule", "who", "from", "to"), ("reason",))
            schedule = entry.text("schedule")
            who = entry.text("who")
            self._reference(entry, "schedule", schedule, "schedule")
            self._reference(entry, "who", who, "responder")
            zone = zones.get(schedule)
            note = (
                f"the time zone of schedule {schedule!r} is unknown; add an offset such as +00:00"
            )
            start = entry.instant("from", zone, note)
            end = entry.instant("to", zone, note)
            reason = entry.text("reason")
            if start is None or end is None:
                continue
            if end <= start:
                entry.error(
                    "to",
                    f"expected a time after `from` ({_utc_text(start)}), got {_utc_text(end)}",
                )
            else:
                try:
                    check_duration(end - start, OVERRIDE_LENGTH)
                except ValueError as exc:
                    entry.error("to", f"an override lasts {OVERRIDE_LENGTH}: {exc}")
            key = (schedule, who, start, end)
            if key in first:
                entry.error(None, f"duplicate override: same as {first[key]}")
            first.setdefault(key, entry.path)
            overrides.append(TeamOverride(schedule, who, start, end, reason))
        return tuple(overrides)

    def _policy(self, entry: _Entry) -> PolicySpec:
        entry.check_keys(("name", "steps"), ("repeat", "ack_timeout"))
        repeat = entry.table.get("repeat", 0)
        try:
            REPEAT.check(repeat)
        except ValueError as exc:
            entry.error("repeat", str(exc))
            repeat = 0
        ack_timeout = entry.optional_duration("ack_timeout", ACK_TIMEOUT)
        raw_steps = entry.table.get("steps")
        steps: list[StepSpec] = []
        if raw_steps is not None and not isinstance(raw_steps, list):
            entry.error(
                "steps",
                'expected an array of steps such as [{ delay = "5m", targets = '
                f'["schedule:primary"] }}], got {_describe(raw_steps)}',
            )
        elif raw_steps == []:
            entry.error("steps", "expected at least one step, got an empty array")
        elif raw_steps:
            if len(raw_steps) > POLICY_STEPS.high:
                entry.error("steps", f"expected {POLICY_STEPS} steps, got {len(raw_steps)}")
            for index, item in enumerate(raw_steps):
                if not isinstance(item, dict):
                    entry.error(f"steps[{index}]", f"expected a table, got {_describe(item)}")
                    continue
                step = entry.child(f"steps[{index}]", item)
                step.check_keys(("delay", "targets"), ("require_all",))
                delay = step.duration("delay", STEP_DELAY)
                targets = step.texts("targets")
                for position, target in enumerate(targets):
                    self._target(step, f"targets[{position}]", target)
                steps.append(StepSpec(delay, tuple(targets), step.flag("require_all")))
        return PolicySpec(entry.name or "", tuple(steps), repeat, ack_timeout)

    def _target(self, step: _Entry, key: str, target: str) -> None:
        kind, colon, name = target.partition(":")
        if not colon or kind not in TARGET_KINDS or not name:
            step.error(
                key,
                f"expected schedule:NAME, rotation:NAME, user:HANDLE or role:ROLE, got {target!r}",
            )
        elif kind in ("schedule", "rotation"):
            self._reference(step, key, name, kind)
        elif kind == "user":
            self._reference(step, key, name, "responder")
        elif name not in [role.value for role in Role]:
            roles = ", ".join(role.value for role in Role)
            step.error(key, f"unknown role {name!r} (expected one of {roles})")

    def _routing(self) -> tuple[tuple[str, str], ...]:
        table = self._table("routing")
        if table is None:
            return ()
        keys = ["default", *(category.value for category in Category)]
        routes = []
        for key in table.table:
            if key not in keys:
                table.error(
                    key,
                    f"unknown category {key!r}{_suggest(key, keys)} (expected {', '.join(keys)})",
                )
            policy = table.text(key)
            self._reference(table, key, policy, "policy")
            routes.append((key, policy))
        return tuple(routes)

    def _slas(self) -> tuple[SlaSpec, ...]:
        table = self._table("sla")
        if table is None:
            return ()
        slas: list[SlaSpec] = []
        first: dict[int, str] = {}
        for key, value in table.table.items():
            try:
                severity = parse_severity(key)
            except ValueError as exc:
                table.error(key, str(exc))
                continue
            if severity in first:
                table.error(key, f"duplicate severity: {first[severity]} has it already")
            first.setdefault(severity, key)
            if not isinstance(value, dict):
                table.error(
                    key,
                    f'expected a table such as {{ ack = "5m", respond = "30m" }}, '
                    f"got {_describe(value)}",
                )
                continue
            target = table.child(key, value)
            target.check_keys(("ack", "respond"))
            slas.append(
                SlaSpec(
                    severity,
                    target.duration("ack", SLA_TARGET),
                    target.duration("respond", SLA_TARGET),
                )
            )
        return tuple(slas)

    def _integrations(self) -> tuple[IntegrationSpec, ...]:
        entries = self._entries("integration", "name")
        self._names(entries, "name", NAME, NAME_RULE)
        out: list[IntegrationSpec] = []
        for entry in entries:
            entry.check_keys(("name", "format"), INTEGRATION_KEYS)
            fmt = entry.choice("format", INTEGRATION_FORMATS, INTEGRATION_FORMATS[0])
            category = entry.optional_text("category")
            if category is not None and category not in [c.value for c in Category]:
                names = ", ".join(c.value for c in Category)
                entry.error("category", f"expected one of {names}, got {category!r}")
            severity = None
            raw = entry.table.get("severity")
            if raw is not None:
                try:
                    severity = parse_severity(raw)
                except (ValueError, TypeError):
                    entry.error("severity", f"expected sev1-sev4 or 1-4, got {_describe(raw)}")
            policy = entry.optional_text("policy")
            if policy is not None:
                self._reference(entry, "policy", policy, "policy")
            limit = entry.table.get("rate_limit", 120)
            if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
                entry.error(
                    "rate_limit",
                    f"expected events a minute, a whole number 1-100000, got {_describe(limit)}",
                )
                limit = 120
            out.append(IntegrationSpec(entry.name or "", fmt, category, severity, policy, limit))
        return tuple(out)

    def _holidays(self) -> tuple[HolidaySpec, ...]:
        holidays: list[HolidaySpec] = []
        first: dict[tuple[date, str], str] = {}
        for entry in self._entries("holiday", "name"):
            entry.check_keys(("date", "name", "region"))
            day, name, region = entry.day("date"), entry.text("name"), entry.text("region")
            if day is None or not name or not region:
                continue  # the problem is recorded; the rest of the file is still read
            if (day, region) in first:
                entry.error(
                    None,
                    f"duplicate holiday: {first[day, region]} has this date and region",
                )
            first.setdefault((day, region), entry.path)
            holidays.append(HolidaySpec(day, name, region))
        return tuple(holidays)


def _schedule_zones(
    schedules: Sequence[TeamSchedule], rotations: Sequence[RotationSpec]
) -> dict[str, ZoneInfo]:
    """Where an override time without an offset lives: the schedule's own `timezone`, else
    the zone of its first layer's rotation."""
    rotation_zone = {rotation.name: rotation.timezone for rotation in rotations}
    zones = {}
    for schedule in schedules:
        name = schedule.timezone or (
            rotation_zone.get(schedule.layers[0]) if schedule.layers else None
        )
        if name and _zone_problem(name) is None:
            zones[schedule.name] = ZoneInfo(name)
    return zones


_ORDER_PATH = re.compile(r"^(\w+)(?:\[(\d+)\])?")


def _file_order(error: TeamError) -> tuple[int, int]:
    """Errors grouped by section in file order, then by entry; stable within an entry."""
    match = _ORDER_PATH.match(error.path)
    if match is None or match.group(1) not in KINDS:
        return (-1, 0)
    return (KINDS.index(match.group(1)), int(match.group(2) or 0))


# --- state: what is stored and what the file wants, in one comparable shape ---

Record = dict[str, Any]
State = dict[str, dict[Any, Record]]
OverrideKey = tuple[str, str, datetime, datetime]


@dataclass
class _Stored:
    """The stored team, loaded once per plan, with the rows the writer updates in place."""

    responders: dict[str, Responder]
    contacts: dict[int, list[ContactMethod]]
    rotations: dict[str, Rotation]
    members: dict[int, list[int]]  # rotation id -> responder ids in turn order
    schedules: dict[str, Schedule]
    layers: dict[int, list[int]]  # schedule id -> rotation ids, bottom first
    overrides: dict[OverrideKey, Override]
    policies: dict[str, Policy]
    steps: dict[int, list[PolicyStep]]
    routes: dict[str, Routing]
    slas: dict[int, SlaTarget]
    holidays: dict[tuple[date, str], Holiday]
    integrations: dict[str, Integration] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session) -> _Stored:
        responders = session.exec(select(Responder).order_by(col(Responder.handle))).all()
        handle = {r.id: r.handle for r in responders}
        contacts: dict[int, list[ContactMethod]] = {}
        for contact in session.exec(
            select(ContactMethod).order_by(col(ContactMethod.position), col(ContactMethod.id))
        ):
            contacts.setdefault(contact.responder_id, []).append(contact)
        rotations = session.exec(select(Rotation).order_by(col(Rotation.name))).all()
        members: dict[int, list[int]] = {}
        for member in session.exec(select(RotationMember).order_by(col(RotationMember.position))):
            members.setdefault(member.rotation_id, []).append(member.responder_id)
        schedules = session.exec(select(Schedule).order_by(col(Schedule.name))).all()
        schedule_name = {s.id: s.name for s in schedules}
        layers: dict[int, list[int]] = {}
        for layer in session.exec(select(ScheduleLayer).order_by(col(ScheduleLayer.position))):
            layers.setdefault(layer.schedule_id, []).append(layer.rotation_id)
        overrides = {
            (schedule_name[o.schedule_id], handle[o.responder_id], o.starts_at, o.ends_at): o
            for o in session.exec(
                select(Override).order_by(col(Override.starts_at), col(Override.id))
            )
        }
        policies = session.exec(select(Policy).order_by(col(Policy.name))).all()
        steps: dict[int, list[PolicyStep]] = {}
        for step in session.exec(select(PolicyStep).order_by(col(PolicyStep.position))):
            steps.setdefault(step.policy_id, []).append(step)
        return cls(
            responders={r.handle: r for r in responders},
            contacts=contacts,
            rotations={r.name: r for r in rotations},
            members=members,
            schedules={s.name: s for s in schedules},
            layers=layers,
            overrides=overrides,
            policies={p.name: p for p in policies},
            steps=steps,
            routes={r.category: r for r in session.exec(select(Routing))},
            slas={s.severity: s for s in session.exec(select(SlaTarget))},
            holidays={
                (h.day, h.region): h
                for h in session.exec(select(Holiday).order_by(col(Holiday.day)))
            },
            integrations={
                i.name: i for i in session.exec(select(Integration).order_by(col(Integration.name)))
            },
        )

    def state(self) -> State:
        handles = {r.id: r.handle for r in self.responders.values()}
        rotation_names = {r.id: r.name for r in self.rotations.values()}
        policy_names = {p.id: p.name for p in self.policies.values()}
        state: State = {kind: {} for kind in KINDS}
        for responder in self.responders.values():
            contacts = self.contacts.get(responder.id or 0, [])
            state["responder"][responder.handle] = {
                "name": responder.name,
                "role": responder.role,
                "timezone": responder.timezone,
                "active": responder.active,
                "contacts": tuple(
                    ContactSpec(c.kind, c.url, c.secret, c.allow_insecure, c.allow_private)
                    for c in contacts
                ),
            }
        for rotation in self.rotations.values():
            members = tuple(handles[m] for m in self.members.get(rotation.id or 0, []))
            state["rotation"][rotation.name] = _stored_rotation(rotation, members)
        for schedule in self.schedules.values():
            state["schedule"][schedule.name] = {
                "layers": tuple(rotation_names[r] for r in self.layers.get(schedule.id or 0, [])),
                "timezone": schedule.timezone,
                "holiday_region": schedule.holiday_region,
                "holiday_cover": handles.get(schedule.holiday_cover_id),
            }
        for key, override in self.overrides.items():
            state["override"][key] = {"reason": override.reason}
        for policy in self.policies.values():
            state["policy"][policy.name] = {
                "repeat": policy.repeat,
                "ack_timeout": (
                    None
                    if policy.ack_timeout_seconds is None
                    else timedelta(seconds=policy.ack_timeout_seconds)
                ),
                "steps": tuple(
                    StepSpec(timedelta(seconds=s.delay_seconds), tuple(s.targets), s.require_all)
                    for s in self.steps.get(policy.id or 0, [])
                ),
            }
        for category, route in self.routes.items():
            state["routing"][category] = {"policy": policy_names[route.policy_id]}
        for severity, sla in sorted(self.slas.items()):
            state["sla"][severity] = {
                "ack": timedelta(seconds=sla.ack_seconds),
                "respond": timedelta(seconds=sla.respond_seconds),
            }
        for day_region, holiday in sorted(self.holidays.items()):
            state["holiday"][day_region] = {"name": holiday.name}
        for name, integration in self.integrations.items():
            state["integration"][name] = {
                "format": integration.format,
                "category": integration.category,
                "severity": integration.severity,
                "policy": integration.policy,
                "rate_limit": integration.rate_limit,
            }
        return state


def _rotation_record(rotation: RotationSpec) -> Record:
    text = rotation.to_text()
    return {
        "timezone": text["timezone"],
        "shift": text["shift"],
        "handoff": text["handoff"],
        "start": rotation.start,
        "members": rotation.members,
        "days": tuple(format_days(rotation.days)) if rotation.days is not None else None,
        "hours": format_hours(rotation.hours) if rotation.hours is not None else None,
    }


def _stored_rotation(row: Rotation, members: tuple[str, ...]) -> Record:
    """A stored rotation in its canonical spelling (as it was written, if it does not parse)."""
    try:
        spec = RotationSpec.from_text(
            name=row.name,
            timezone=row.timezone,
            shift=row.shift,
            handoff=row.handoff,
            start=row.start,
            members=members,
            days=row.days,
            hours=row.hours,
        )
    except ValueError:
        return {
            "timezone": row.timezone,
            "shift": row.shift,
            "handoff": row.handoff,
            "start": row.start,
            "members": members,
            "days": tuple(row.days.split(",")) if row.days else None,
            "hours": row.hours,
        }
    return _rotation_record(spec)


def _wanted(spec: TeamSpec, stored: _Stored) -> State:
    """The state the file asks for; a webhook without `secret` keeps the stored one, and
    one whose URL is as `vigil team export` shows it keeps the stored URL."""
    state: State = {kind: {} for kind in KINDS}
    problems: list[TeamError] = []
    for index, responder in enumerate(spec.responders):
        webhooks = [
            c
            for c in stored.contacts.get(_row_id(stored.responders.get(responder.handle)), [])
            if c.kind == ContactKind.WEBHOOK and c.url
        ]
        urls = {shown_url(c.url): c.url for c in webhooks if c.url}
        kept = {c.url: c.secret for c in webhooks if c.secret}
        contacts = []
        for position, contact in enumerate(responder.contacts):
            url = contact.url
            if url is not None and KEPT_URL.match(url):
                if url not in urls:
                    problems.append(
                        TeamError(
                            f"responder[{index}].contacts[{position}].url",
                            f"{url!r} stands for a stored webhook URL (as `vigil team export` "
                            f"prints it), but {responder.handle} has no such webhook stored; "
                            "write the full URL",
                            responder.handle,
                        )
                    )
                    continue
                url = urls[url]
            secret = contact.secret or kept.get(url or "")
            contacts.append(
                ContactSpec(
                    contact.kind, url, secret, contact.allow_insecure, contact.allow_private
                )
            )
        state["responder"][responder.handle] = {
            "name": responder.name,
            "role": responder.role,
            "timezone": responder.timezone,
            "active": True,
            "contacts": tuple(contacts),
        }
    if problems:
        raise TeamFileError(problems, spec.source)
    for rotation in spec.rotations:
        state["rotation"][rotation.name] = _rotation_record(rotation)
    for schedule in spec.schedules:
        state["schedule"][schedule.name] = {
            "layers": schedule.layers,
            "timezone": schedule.timezone,
            "holiday_region": schedule.holiday_region,
            "holiday_cover": schedule.holiday_cover,
        }
    for override in spec.overrides:
        key = (override.schedule, override.who, override.start, override.end)
        state["override"][key] = {"reason": override.reason}
    for policy in spec.policies:
        state["policy"][policy.name] = {
            "repeat": policy.repeat,
            "ack_timeout": policy.ack_timeout,
            "steps": policy.steps,
        }
    for category, policy_name in spec.routing:
        state["routing"][category] = {"policy": policy_name}
    for sla in spec.slas:
        state["sla"][sla.severity] = {"ack": sla.ack, "respond": sla.respond}
    for holiday in spec.holidays:
        state["holiday"][holiday.day, holiday.region] = {"name": holiday.name}
    for integration in spec.integrations:
        state["integration"][integration.name] = {
            "format": integration.format,
            "category": integration.category,
            "severity": integration.severity,
            "policy": integration.policy,
            "rate_limit": integration.rate_limit,
        }
    return state


def _row_id(row: Responder | None) -> int:
    """The id of a stored responder; 0 (no row has it) for one not stored yet."""
    return (row.id or 0) if row is not None else 0


def _id(row: Any) -> int:
    """The primary key of a row that has been flushed."""
    assert row.id is not None, f"{type(row).__name__} not flushed"
    return int(row.id)


# --- the plan ---------------------------------------------------------------

Action = Literal["add", "change", "remove"]
_MARK = {"add": "+", "change": "~", "remove": "-"}


@dataclass(frozen=True)
class Change:
    """One entry added, changed or removed; `details` never carry a secret."""

    kind: str
    action: Action
    label: str
    details: tuple[str, ...] = ()
    key: Any = field(default=None, repr=False, compare=False)
    wanted: Record | None = field(default=None, repr=False, compare=False)

    @property
    def line(self) -> str:
        text = f"{_MARK[self.action]} {self.kind} {self.label}"
        return f"{text}: {'; '.join(self.details)}" if self.details else text


@dataclass(frozen=True)
class Plan:
    """What applying a file changes. Empty means the stored team already is the file."""

    changes: tuple[Change, ...] = ()
    kept_overrides: tuple[OverrideKey, ...] = ()  # stored, not in the file, left alone

    @property
    def empty(self) -> bool:
        return not self.changes

    def lines(self) -> list[str]:
        return [change.line for change in self.changes]

    def summary(self) -> dict[str, dict[str, int]]:
        """Per kind with any change: how many were added, changed and removed."""
        out: dict[str, dict[str, int]] = {}
        for change in self.changes:
            counts = out.setdefault(change.kind, {"added": 0, "changed": 0, "removed": 0})
            counts[{"add": "added", "change": "changed", "remove": "removed"}[change.action]] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "changes": self.lines(),
            "kept_overrides": [_label("override", key) for key in self.kept_overrides],
        }


def _render(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return "[" + ", ".join(_render(item) for item in value) + "]"
    return str(value)


def _label(kind: str, key: Any) -> str:
    if kind == "override":
        schedule, who, start, end = key
        return f"{who} on {schedule} from {_utc_text(start)} to {_utc_text(end)}"
    if kind == "sla":
        return severity_name(key)
    if kind == "holiday":
        day, region = key
        return f"{day.isoformat()} {region}"
    return str(key)


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _field_changes(old: Record, new: Record) -> tuple[str, ...]:
    details = []
    for name, value in new.items():
        before = old.get(name)
        if before == value:
            continue
        shown_before, shown_after = _render(before), _render(value)
        if shown_before == shown_after:  # only something unshown (a secret) differs
            details.append(f"{name}: secret changed")
        else:
            details.append(f"{name}: {shown_before} -> {shown_after}")
    return tuple(details)


def _plan(stored: _Stored, spec: TeamSpec) -> Plan:
    before, after = stored.state(), _wanted(spec, stored)
    changes: list[Change] = []
    kept: list[OverrideKey] = []
    for kind in KINDS:
        old, new = before[kind], after[kind]
        for key, record in new.items():
            label = _label(kind, key)
            if key not in old:
                details = tuple(
                    f"{name}={_render(value)}"
                    for name, value in record.items()
                    if value not in (None, "") and name != "active"
                )
                changes.append(Change(kind, "add", label, details, key, record))
            elif details := _field_changes(old[key], record):
                changes.append(Change(kind, "change", label, details, key, record))
        for key, record in old.items():
            if key in new:
                continue
            label = _label(kind, key)
            if kind == "responder":
                if record["active"]:
                    changes.append(Change(kind, "remove", label, ("deactivated",), key))
            elif kind == "override":
                if key[0] in after["schedule"]:  # else it goes with its schedule, said there
                    kept.append(key)
            elif kind == "holiday":
                continue
            elif kind == "schedule":
                overrides = sum(1 for o in before["override"] if o[0] == key)
                details = (f"with its {overrides} override(s)",) if overrides else ()
                changes.append(Change(kind, "remove", label, details, key))
            else:
                changes.append(Change(kind, "remove", label, (), key))
    return Plan(tuple(changes), tuple(kept))


def plan_apply(session: Session, spec: TeamSpec) -> Plan:
    """What applying `spec` would change in the stored team, without changing anything."""
    return _with_casework(session, _plan(_Stored.load(session), spec), spec)


def _with_casework(session: Session, plan: Plan, spec: TeamSpec) -> Plan:
    """Add the casework settings to the plan when the file's differ from the stored ones."""
    stored = stored_settings(session)
    wanted = dict(spec.casework)
    if stored == wanted:
        return plan
    changed = sorted(k for k in CASEWORK_KEYS if stored.get(k) != wanted.get(k))
    change = Change("casework", "change", "settings", tuple(changed), None, wanted)
    return Plan(changes=(*plan.changes, change), kept_overrides=plan.kept_overrides)


# --- applying ---------------------------------------------------------------


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    warnings: tuple[str, ...] = ()
    applied: bool = False  # False for a dry run and for an empty plan


def _check_actor(stored: _Stored, actor: str) -> None:
    """On a team with active responders, only an active supervisor or admin may apply."""
    active = [r for r in stored.responders.values() if r.active]
    if not active:
        return  # bootstrap: the first file makes the team
    me = stored.responders.get(actor)
    rule = "only an active supervisor or admin may apply a team file"
    if me is None or not me.active:
        raise TeamPermissionError(
            f"'{actor}' is not an active responder of this team; {rule} "
            "(use --as HANDLE or VIGIL_USER)"
        )
    if me.role not in SUPERVISING:
        raise TeamPermissionError(f"'{actor}' is a {me.role}; {rule}")


def team_warnings(spec: TeamSpec, plan: Plan, actor: str) -> tuple[str, ...]:
    """What is allowed but probably not meant."""
    warnings = []
    for responder in spec.responders:
        if not responder.contacts:
            warnings.append(
                f"responder {responder.handle} has no contact method: pages never reach them"
            )
        elif not responder.reachable:
            warnings.append(
                f"responder {responder.handle} has only the console as contact: "
                "pages reach them only while a console is open"
            )
    supervising = sorted(r.handle for r in spec.responders if r.role in SUPERVISING)
    if spec.responders and not supervising:
        warnings.append(
            "no responder is a supervisor or admin: nobody will be allowed to apply the next file"
        )
    elif spec.responders and actor not in supervising:
        warnings.append(
            f"'{actor}' is not a supervisor or admin in this file: only "
            f"{', '.join(supervising)} may apply the next one"
        )
    if plan.kept_overrides:
        warnings.append(
            f"{len(plan.kept_overrides)} stored override(s) not in the file are kept: "
            + "; ".join(_label("override", key) for key in plan.kept_overrides)
        )
    handles = {r.handle for r in spec.responders}
    for key in plan.kept_overrides:
        if key[1] not in handles:
            warnings.append(
                f"the kept override {_label('override', key)} names {key[1]}, "
                "who is not in this file"
            )
    return tuple(warnings)


def apply_team(
    db: Database, spec: TeamSpec, *, actor: str, now: datetime, dry_run: bool = False
) -> ApplyResult:
    """Make the stored team what `spec` declares, in one transaction with one audit record.

    Raises `TeamPermissionError` when `actor` may not change the existing team (checked on a
    dry run too, so it tells the truth about what a real run would do).
    """
    if now.tzinfo is None:
        raise ValueError("apply_team needs an aware `now`")
    if dry_run:
        with db.read() as session:
            stored = _Stored.load(session)
            _check_actor(stored, actor)
            plan = _with_casework(session, _plan(stored, spec), spec)
        return ApplyResult(plan, team_warnings(spec, plan, actor), applied=False)
    with db.write() as session:
        audit.lock_head(session)  # one writer at a time, across consoles sharing a database
        stored = _Stored.load(session)
        _check_actor(stored, actor)
        plan = _with_casework(session, _plan(stored, spec), spec)
        if not plan.empty:
            _Writer(session, stored, now, actor).run(plan)
            audit.append(
                session,
                at=now,
                actor=actor,
                action="team.apply",
                detail={"source": spec.source, **plan.as_dict()},
            )
    return ApplyResult(plan, team_warnings(spec, plan, actor), applied=not plan.empty)


class _Writer:
    """Writes a plan: additions and changes in dependency order, then removals in reverse."""

    def __init__(self, session: Session, stored: _Stored, now: datetime, actor: str) -> None:
        self.session = session
        self.stored = stored
        self.now = now
        self.actor = actor

    def run(self, plan: Plan) -> None:
        put: dict[str, Callable[[Any, Record], None]] = {
            "responder": self._put_responder,
            "rotation": self._put_rotation,
            "schedule": self._put_schedule,
            "override": self._put_override,
            "policy": self._put_policy,
            "routing": self._put_routing,
            "sla": self._put_sla,
            "holiday": self._put_holiday,
            "integration": self._put_integration,
            "casework": self._put_casework,
        }
        remove: dict[str, Callable[[Any], None]] = {
            "responder": self._remove_responder,
            "rotation": self._remove_rotation,
            "schedule": self._remove_schedule,
            "policy": self._remove_policy,
            "routing": self._remove_routing,
            "sla": self._remove_sla,
            "integration": self._remove_integration,
        }
        for change in plan.changes:
            if change.action != "remove":
                assert change.wanted is not None
                put[change.kind](change.key, change.wanted)
        for change in reversed(plan.changes):
            if change.action == "remove":
                remove[change.kind](change.key)
                self.session.flush()

    def _put_casework(self, _key: Any, wanted: Record) -> None:
        store_settings(self.session, wanted, self.actor, self.now)

    def _saved(self, row: Row) -> Row:
        self.session.add(row)
        self.session.flush()
        return row

    def _responder_id(self, handle: str) -> int:
        return _id(self.stored.responders[handle])

    # -- additions and changes ----------------------------------------------

    def _put_responder(self, handle: str, wanted: Record) -> None:
        row = self.stored.responders.get(handle) or Responder(handle=handle, name="")
        row.name, row.role, row.timezone = wanted["name"], wanted["role"], wanted["timezone"]
        row.active = True
        self.stored.responders[handle] = self._saved(row)
        self._put_contacts(_id(row), wanted["contacts"])

    def _put_contacts(self, responder_id: int, contacts: tuple[ContactSpec, ...]) -> None:
        """Reuse the row of the same kind and URL, so deliveries keep pointing at it."""
        existing = list(self.stored.contacts.get(responder_id, []))
        rows = []
        for position, contact in enumerate(contacts):
            row = next(
                (c for c in existing if (c.kind, c.url) == (contact.kind, contact.url)), None
            )
            if row is None:
                row = ContactMethod(responder_id=responder_id, kind=contact.kind, url=contact.url)
            else:
                existing.remove(row)
            row.position, row.secret = position, contact.secret
            row.allow_insecure, row.allow_private = contact.allow_insecure, contact.allow_private
            self.session.add(row)
            rows.append(row)
        for gone in existing:
            self.session.exec(
                update(Delivery).where(col(Delivery.contact_id) == gone.id).values(contact_id=None)
            )
            self.session.delete(gone)
        self.session.flush()
        self.stored.contacts[responder_id] = rows

    def _put_rotation(self, name: str, wanted: Record) -> None:
        row = self.stored.rotations.get(name) or Rotation(
            name=name, timezone="", shift="", handoff="", start=wanted["start"]
        )
        row.timezone, row.shift, row.handoff = (
            wanted["timezone"],
            wanted["shift"],
            wanted["handoff"],
        )
        row.start = wanted["start"]
        row.days = ",".join(wanted["days"]) if wanted["days"] is not None else None
        row.hours = wanted["hours"]
        self.stored.rotations[name] = row = self._saved(row)
        self.session.exec(delete(RotationMember).where(col(RotationMember.rotation_id) == row.id))
        for position, handle in enumerate(wanted["members"]):
            self.session.add(
                RotationMember(
                    rotation_id=_id(row), position=position, responder_id=self._responder_id(handle)
                )
            )
        self.session.flush()

    def _put_schedule(self, name: str, wanted: Record) -> None:
        row = self.stored.schedules.get(name) or Schedule(name=name)
        row.timezone, row.holiday_region = wanted["timezone"], wanted["holiday_region"]
        cover = wanted["holiday_cover"]
        row.holiday_cover_id = self._responder_id(cover) if cover else None
        self.stored.schedules[name] = row = self._saved(row)
        self.session.exec(delete(ScheduleLayer).where(col(ScheduleLayer.schedule_id) == row.id))
        for position, rotation in enumerate(wanted["layers"]):
            self.session.add(
                ScheduleLayer(
                    schedule_id=_id(row),
                    position=position,
                    rotation_id=_id(self.stored.rotations[rotation]),
                )
            )
        self.session.flush()

    def _put_override(self, key: OverrideKey, wanted: Record) -> None:
        row = self.stored.overrides.get(key)
        if row is None:
            schedule, who, start, end = key
            row = Override(
                schedule_id=_id(self.stored.schedules[schedule]),
                responder_id=self._responder_id(who),
                starts_at=start,
                ends_at=end,
                created_by_id=_row_id(self.stored.responders.get(self.actor)) or None,
                created_at=self.now,
            )
        row.reason = wanted["reason"]
        self.stored.overrides[key] = self._saved(row)

    def _put_policy(self, name: str, wanted: Record) -> None:
        row = self.stored.policies.get(name) or Policy(name=name)
        row.repeat = wanted["repeat"]
        timeout = wanted["ack_timeout"]
        row.ack_timeout_seconds = None if timeout is None else int(timeout.total_seconds())
        self.stored.policies[name] = row = self._saved(row)
        self.session.exec(delete(PolicyStep).where(col(PolicyStep.policy_id) == row.id))
        steps: tuple[StepSpec, ...] = wanted["steps"]
        for position, step in enumerate(steps):
            self.session.add(
                PolicyStep(
                    policy_id=_id(row),
                    position=position,
                    delay_seconds=int(step.delay.total_seconds()),
                    targets=list(step.targets),
                    require_all=step.require_all,
                )
            )
        self.session.flush()

    def _put_routing(self, category: str, wanted: Record) -> None:
        policy_id = _id(self.stored.policies[wanted["policy"]])
        row = self.stored.routes.get(category) or Routing(category=category, policy_id=policy_id)
        row.policy_id = policy_id
        self.stored.routes[category] = self._saved(row)

    def _put_sla(self, severity: int, wanted: Record) -> None:
        row = self.stored.slas.get(severity) or SlaTarget(
            severity=severity, ack_seconds=0, respond_seconds=0
        )
        row.ack_seconds = int(wanted["ack"].total_seconds())
        row.respond_seconds = int(wanted["respond"].total_seconds())
        self.stored.slas[severity] = self._saved(row)

    def _put_holiday(self, key: tuple[date, str], wanted: Record) -> None:
        day, region = key
        row = self.stored.holidays.get(key) or Holiday(day=day, region=region, name="")
        row.name = wanted["name"]
        self.stored.holidays[key] = self._saved(row)

    def _put_integration(self, name: str, wanted: Record) -> None:
        """The stored key stays: a file never holds one."""
        row = self.stored.integrations.get(name) or Integration(name=name, format="")
        row.format, row.category, row.severity = (
            wanted["format"],
            wanted["category"],
            wanted["severity"],
        )
        row.policy, row.rate_limit = wanted["policy"], wanted["rate_limit"]
        self.stored.integrations[name] = self._saved(row)

    # -- removals -----------------------------------------------------------

    def _remove_integration(self, name: str) -> None:
        self.session.delete(self.stored.integrations.pop(name))

    def _remove_responder(self, handle: str) -> None:
        row = self.stored.responders[handle]
        row.active = False
        self.session.add(row)

    def _remove_rotation(self, name: str) -> None:
        row = self.stored.rotations.pop(name)
        self.session.exec(delete(RotationMember).where(col(RotationMember.rotation_id) == row.id))
        self.session.delete(row)

    def _remove_schedule(self, name: str) -> None:
        row = self.stored.schedules.pop(name)
        self.session.exec(delete(Override).where(col(Override.schedule_id) == row.id))
        self.session.exec(delete(ScheduleLayer).where(col(ScheduleLayer.schedule_id) == row.id))
        self.session.delete(row)

    def _remove_policy(self, name: str) -> None:
        """Cases keep their frozen policy snapshot; only the link to the policy goes."""
        row = self.stored.policies.pop(name)
        self.session.exec(update(Case).where(col(Case.policy_id) == row.id).values(policy_id=None))
        self.session.exec(delete(PolicyStep).where(col(PolicyStep.policy_id) == row.id))
        self.session.delete(row)

    def _remove_routing(self, category: str) -> None:
        self.session.delete(self.stored.routes.pop(category))

    def _remove_sla(self, severity: int) -> None:
        self.session.delete(self.stored.slas.pop(severity))


# --- export -----------------------------------------------------------------


def _toml_string(text: str) -> str:
    out = ['"']
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, timedelta):
        return _toml_string(format_duration(value))
    if isinstance(value, datetime):
        return _toml_string(_utc_text(value))
    if isinstance(value, date):
        return _toml_string(value.isoformat())
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + pairs + " }"
    return _toml_string(str(value))


def _toml_table(header: str, values: Mapping[str, Any]) -> list[str]:
    lines = [header]
    for key, value in values.items():
        if value is None:
            continue
        lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    return [*lines, ""]


def export_team(session: Session) -> str:
    """The stored team as a team file: deterministic, secrets left out, and applying it
    changes nothing."""
    stored = _Stored.load(session)
    state = stored.state()
    active = {h for h, r in state["responder"].items() if r["active"]}
    out = [EXPORT_HEADER]
    for handle in sorted(active):
        record = state["responder"][handle]
        contacts = [
            {"kind": c.kind}
            if c.url is None
            else {"kind": c.kind, "url": shown_url(c.url), **c.flags}
            for c in record["contacts"]
        ]
        out += _toml_table(
            "[[responder]]",
            {
                "handle": handle,
                "name": record["name"],
                "role": record["role"],
                "timezone": record["timezone"],
                "contacts": contacts,
            },
        )
    for name, record in sorted(state["rotation"].items()):
        out += _toml_table("[[rotation]]", {"name": name, **record})
    for name, record in sorted(state["schedule"].items()):
        out += _toml_table("[[schedule]]", {"name": name, **record})
    for key, record in sorted(state["override"].items()):
        schedule, who, start, end = key
        values = {"schedule": schedule, "who": who, "from": start, "to": end}
        block = _toml_table("[[override]]", {**values, "reason": record["reason"] or None})
        if who not in active:
            block = [
                f"# kept in the database, not exported: {who} is no longer an active responder",
                *(f"# {line}" if line else line for line in block),
            ]
        out += block
    for name, record in sorted(state["policy"].items()):
        out += ["[[policy]]", f"name = {_toml_string(name)}", f"repeat = {record['repeat']}"]
        if record["ack_timeout"] is not None:
            out.append(f"ack_timeout = {_toml_value(record['ack_timeout'])}")
        out.append("steps = [")
        for step in record["steps"]:
            values = {"delay": step.delay, "targets": list(step.targets)}
            if step.require_all:
                values["require_all"] = True
            out.append(f"  {_toml_value(values)},")
        out += ["]", ""]
    if state["routing"]:
        order = ["default", *(category.value for category in Category)]
        routes = sorted(
            state["routing"].items(),
            key=lambda item: order.index(item[0]) if item[0] in order else len(order),
        )
        out += _toml_table("[routing]", {k: v["policy"] for k, v in routes})
    if state["sla"]:
        out += _toml_table(
            "[sla]",
            {
                severity_name(k): {"ack": v["ack"], "respond": v["respond"]}
                for k, v in state["sla"].items()
            },
        )
    for (day, region), record in state["holiday"].items():
        out += _toml_table("[[holiday]]", {"date": day, "name": record["name"], "region": region})
    for name, record in sorted(state["integration"].items()):
        severity = record["severity"]
        values = {
            "name": name,
            **record,
            "severity": None if severity is None else severity_name(severity),
        }
        out += _toml_table("[[integration]]", values)
    casework = settings_toml(stored_settings(session))
    if casework:
        out += ["", casework]
    return "\n".join(out).rstrip("\n") + "\n"

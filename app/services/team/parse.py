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
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from app.core import toml
from app.core.text import LINE_LIMIT, LONG_LINE_LIMIT, line_problem
from app.rules.casework import (
    CASEWORK_KEYS,
    CaseworkConfigError,
    parse_casework_config,
    settings_document,
)
from app.rules.destinations import apprise_url_problem, contact_problems
from app.rules.notify import check_quiet_hours, parse_notify_delay
from app.rules.rotations import (
    HolidaySpec,
    RotationSpec,
    format_days,
    format_hours,
    parse_days,
    parse_handoff,
    parse_hours,
    wall_to_utc,
)
from app.services.team.spec import (
    CONTACT_FLAGS,
    DB_LOGIN,
    DB_LOGIN_RULE,
    HANDLE,
    HANDLE_RULE,
    HEARTBEAT_KEYS,
    INTEGRATION_KEYS,
    KINDS,
    NAME,
    NAME_RULE,
    TARGET_KINDS,
    ContactSpec,
    IntegrationSpec,
    NotifyRulesSpec,
    PolicySpec,
    ResponderSpec,
    SlaSpec,
    StepSpec,
    T,
    TeamError,
    TeamFileError,
    TeamOverride,
    TeamSchedule,
    TeamSpec,
    iso_utc,
    printable,
)
from data.domain import (
    ACK_TIMEOUT,
    ANY_DURATION,
    HEARTBEAT_GRACE,
    HEARTBEAT_INTERVAL,
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
    Urgency,
    check_day,
    check_duration,
    check_instant,
    format_duration,
    parse_duration,
    parse_severity,
)
from data.intake import HEARTBEAT, INTEGRATION_FORMATS

HEARTBEAT_SEVERITY = 2
"""A silent sender is a dead intake path: serious unless the file says otherwise."""
HEARTBEAT_GRACE_DEFAULT = timedelta(minutes=1)

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


# Every text of a team file is one line of at most LINE_LIMIT characters, but these.
_LONG_KEYS = frozenset({"url", "secret"})
_TOML_WHERE = re.compile(r"^(?P<message>.*?)\s*\(at line (?P<line>\d+), column (?P<column>\d+)\)$")


def parse_team(text: str, source: str = "team file") -> TeamSpec:
    """Parse and check a whole team file; raise `TeamFileError` listing every problem."""
    try:
        document = toml.loads(text)
    except toml.TOMLDecodeError as exc:
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
        shown = printable(key)
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
        problem = line_problem(value.strip(), LONG_LINE_LIMIT if key in _LONG_KEYS else LINE_LIMIT)
        if problem:
            self.error(key, problem)
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
            problem = line_problem(item.strip()) if isinstance(item, str) else None
            if problem:
                self.error(f"{key}[{index}]", problem)
            elif isinstance(item, str) and item.strip():
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
            moment = wall_to_utc(moment, zone)  # the hand-off rule for gaps and repeats
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
        self._logins(responders)
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

    @staticmethod
    def _logins(responders: list[_Entry]) -> None:
        """One database login is one person: no two responders share one (two equal handles
        are reported as such)."""
        first: dict[str, tuple[str, bool]] = {}
        for entry in responders:
            explicit = "db_login" in entry.table
            login = entry.table.get("db_login") or entry.table.get("handle")
            if not isinstance(login, str) or not login:
                continue
            if login not in first:
                first[login] = (entry.path, explicit)
            elif explicit or first[login][1]:
                entry.error("db_login", f"login {login!r} is {first[login][0]}'s already")

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
        entry.check_keys(
            ("handle", "name"),
            ("role", "timezone", "contacts", "quiet_hours", "notify", "db_login"),
        )
        name = entry.text("name")
        role = entry.choice("role", [role.value for role in Role], Role.SPECIALIST.value)
        timezone = entry.zone("timezone")
        contacts = self._contacts(entry)
        quiet = entry.optional_text("quiet_hours")
        if quiet is not None:
            quiet = self._parsed(entry, "quiet_hours", check_quiet_hours)
        notify = self._notify(entry, contacts)
        db_login = entry.optional_text("db_login")
        if db_login is not None and not DB_LOGIN.match(db_login):
            entry.error("db_login", f"expected {DB_LOGIN_RULE}, got {db_login!r}")
        return ResponderSpec(
            entry.name or "", name, role, timezone, contacts, quiet, notify, db_login
        )

    def _notify(self, entry: _Entry, contacts: Sequence[ContactSpec]) -> NotifyRulesSpec:
        """`notify = { high = [{ after = "2m", contact = "mail" }, ...], low = [...] }`."""
        value = entry.table.get("notify")
        if value is None:
            return ()
        example = '{ high = [{ contact = "phone" }, { after = "2m", contact = "mail" }] }'
        if not isinstance(value, dict):
            entry.error("notify", f"expected a table such as {example}, got {_describe(value)}")
            return ()
        names = [contact.name or contact.kind for contact in contacts]
        rules: list[tuple[str, tuple[tuple[timedelta, str], ...]]] = []
        urgencies = [urgency.value for urgency in Urgency]
        for urgency, items in value.items():
            key = f"notify.{urgency}"
            if urgency not in urgencies:
                entry.error(key, f"expected an urgency ({', '.join(urgencies)}), got {urgency!r}")
                continue
            if not isinstance(items, list) or not items:
                entry.error(key, f"expected a non-empty array such as {example}")
                continue
            entries: list[tuple[timedelta, str]] = []
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    entry.error(f"{key}[{index}]", f"expected a table, got {_describe(item)}")
                    continue
                rule = entry.child(f"{key}[{index}]", item)
                rule.check_keys(("contact",), ("after",))
                after = timedelta(0)
                if "after" in item:
                    after = self._parsed(rule, "after", parse_notify_delay) or timedelta(0)
                contact = rule.text("contact")
                if contact and contact not in names:
                    rule.error(
                        "contact",
                        f"expected the name or kind of one of this responder's contacts "
                        f"({', '.join(names) or 'none'}), got {contact!r}",
                    )
                entries.append((after, contact))
            rules.append((urgency, tuple(entries)))
        return tuple(sorted(rules))

    def _contacts(self, entry: _Entry) -> tuple[ContactSpec, ...]:
        value = entry.table.get("contacts", [])
        example = '[{ kind = "desktop" }]'
        if not isinstance(value, list):
            entry.error("contacts", f"expected an array of contacts such as {example}")
            return ()
        contacts: list[ContactSpec] = []
        seen: dict[tuple[str, str | None], int] = {}
        names: set[str] = set()
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
            label = contact.optional_text("name")
            if label is not None and label in names:
                contact.error("name", f"duplicate contact name {label!r}")
            names.add(label or kind)
            if kind == ContactKind.APPRISE:
                contact.check_keys(("kind", "url"), ("name", "allow_private"))
                url = contact.text("url")
                flags["allow_private"] = contact.flag("allow_private")
                problem = url and apprise_url_problem(url, allow_private=flags["allow_private"])
                if problem:
                    contact.error("url", problem)
            elif kind == ContactKind.WEBHOOK:
                contact.check_keys(("kind", "url"), ("name", "secret", *CONTACT_FLAGS))
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
                contact.check_keys(("kind",), ("name",))
            if (kind, url) in seen:
                contact.error(None, f"duplicate contact: same as contacts[{seen[kind, url]}]")
            seen.setdefault((kind, url), index)
            allow_insecure, allow_private = (flags.get(name, False) for name in CONTACT_FLAGS)
            contacts.append(
                ContactSpec(kind, url, secret, allow_insecure, allow_private, name=label)
            )
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
        days = self._days(entry, "days")
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
        entry.check_keys(
            ("name", "layers"),
            ("timezone", "holiday_region", "holiday_cover", "support_hours", "support_days"),
        )
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
        support = self._parsed(entry, "support_hours", parse_hours)
        days = self._days(entry, "support_days")
        if days is not None and support is None:
            entry.error("support_days", "needs support_hours (such as 08:00-18:00) to restrict")
        return TeamSchedule(
            entry.name or "",
            tuple(layers),
            timezone,
            region,
            cover,
            format_hours(support) if support is not None else None,
            tuple(format_days(days)) if days is not None else None,
        )

    @staticmethod
    def _days(entry: _Entry, key: str) -> frozenset[int] | None:
        """A list of day names (`days`, `support_days`); None if absent or bad."""
        if key not in entry.table:
            return None
        raw = entry.table[key]
        if not isinstance(raw, list):
            entry.error(
                key, f"expected a list of day names such as ['tue', 'wed'], got {_describe(raw)}"
            )
            return None
        try:
            return parse_days(raw)
        except ValueError as exc:
            entry.error(key, str(exc))
            return None

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
                    f"expected a time after `from` ({iso_utc(start)}), got {iso_utc(end)}",
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
        entry.check_keys(("name", "steps"), ("repeat", "ack_timeout", "high_urgency"))
        high_urgency: tuple[int, ...] | None = None
        if "high_urgency" in entry.table:
            severities = entry.table["high_urgency"]
            try:
                if not isinstance(severities, list):
                    raise ValueError("expected an array")
                high_urgency = tuple(sorted({parse_severity(item) for item in severities}))
            except ValueError:
                entry.error(
                    "high_urgency",
                    f'expected an array of severities such as ["sev1", "sev2"], got '
                    f"{_describe(severities)}",
                )
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
        return PolicySpec(entry.name or "", tuple(steps), repeat, ack_timeout, high_urgency)

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
        """`[[integration]]` and `[[heartbeat]]` entries: one namespace, as one key command
        serves both."""
        integrations = self._entries("integration", "name")
        heartbeats = self._entries("heartbeat", "name")
        self._names([*integrations, *heartbeats], "name", NAME, NAME_RULE)
        out: list[IntegrationSpec] = []
        for entry in integrations:
            entry.check_keys(("name", "format"), INTEGRATION_KEYS)
            fmt = entry.choice("format", INTEGRATION_FORMATS, INTEGRATION_FORMATS[0])
            category, severity, policy = self._case_defaults(entry, None)
            limit = entry.table.get("rate_limit", 120)
            if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
                entry.error(
                    "rate_limit",
                    f"expected events a minute, a whole number 1-100000, got {_describe(limit)}",
                )
                limit = 120
            out.append(IntegrationSpec(entry.name or "", fmt, category, severity, policy, limit))
        for entry in heartbeats:
            entry.check_keys(("name", "interval"), HEARTBEAT_KEYS)
            category, severity, policy = self._case_defaults(entry, HEARTBEAT_SEVERITY)
            grace = entry.optional_duration("grace", HEARTBEAT_GRACE)
            out.append(
                IntegrationSpec(
                    entry.name or "",
                    HEARTBEAT,
                    category or Category.OTHER.value,
                    severity,
                    policy,
                    interval=entry.duration("interval", HEARTBEAT_INTERVAL),
                    grace=grace or HEARTBEAT_GRACE_DEFAULT,
                )
            )
        return tuple(out)

    def _case_defaults(
        self, entry: _Entry, severity_default: int | None
    ) -> tuple[str | None, int | None, str | None]:
        """The category, severity and policy an integration's cases take."""
        category = entry.optional_text("category")
        if category is not None and category not in [c.value for c in Category]:
            names = ", ".join(c.value for c in Category)
            entry.error("category", f"expected one of {names}, got {category!r}")
        severity = severity_default
        raw = entry.table.get("severity")
        if raw is not None:
            try:
                severity = parse_severity(raw)
            except (ValueError, TypeError):
                entry.error("severity", f"expected sev1-sev4 or 1-4, got {_describe(raw)}")
        policy = entry.optional_text("policy")
        if policy is not None:
            self._reference(entry, "policy", policy, "policy")
        return category, severity, policy

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

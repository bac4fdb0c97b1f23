"""What every intake format shares: the event and error it produces, and the field checks
that name the field at fault. Pure parsing, no database: `vigil intake` stores what comes out.
One bad event never hides the good ones: every problem becomes an `IntakeError` naming where
the event was and which field is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from app.core.text import fold_spaces, text_problem
from data.domain import Category, check_instant, parse_category, parse_severity

Action = Literal["trigger", "acknowledge", "resolve"]
ACTIONS: tuple[Action, ...] = get_args(Action)

TITLE_MAX = 200
DETAILS_MAX = 20_000
DEDUP_KEY_MAX = 255
POLICY_MAX = 100
LINK_MAX = 2_000
LINKS_MAX = 20
# Where an alert names no severity it still pages: sev2, as Alertmanager's own PagerDuty
# receiver sends such alerts as "error" (PagerDuty's sev2), unless the integration says.
DEFAULT_SEVERITY = 2

_SEVERITY_SPELLINGS = "sev1, sev2, sev3, sev4 or 1-4"
_CATEGORY_NAMES = ", ".join(category.value for category in Category)
OUR_ACTIONS: dict[str, Action] = {action: action for action in ACTIONS}
_SHOW_MAX = 60


@dataclass(frozen=True)
class Link:
    """A link a sender attached (a runbook, a dashboard, the alert's source)."""

    href: str
    text: str = ""


@dataclass(frozen=True)
class IntakeDefaults:
    """What an integration supplies where an event is silent: its name, category, severity
    and escalation policy (`[[integration]]` in the team file)."""

    integration: str = ""
    category: Category | None = None
    severity: int | None = None
    policy: str | None = None

    @property
    def fallback_severity(self) -> int:
        return self.severity or DEFAULT_SEVERITY


NO_DEFAULTS = IntakeDefaults()


@dataclass(frozen=True)
class IntakeEvent:
    """One event ready to store. Acknowledge and resolve carry only `dedup_key`."""

    action: Action
    title: str | None
    category: Category | None
    severity: int | None
    details: str
    policy: str | None
    dedup_key: str | None
    sensitive: bool
    source: str
    position: str
    links: tuple[Link, ...] = ()

    @classmethod
    def trigger(
        cls,
        source: str,
        position: str,
        *,
        title: str,
        category: Category,
        severity: int,
        details: str,
        dedup_key: str | None,
        sensitive: bool,
        policy: str | None = None,
        links: tuple[Link, ...] = (),
    ) -> IntakeEvent:
        """An event that opens a case (a CSEA report is always sensitive)."""
        return cls(
            links=links,
            action="trigger",
            title=title,
            category=category,
            severity=severity,
            details=details,
            policy=policy,
            dedup_key=dedup_key,
            sensitive=sensitive or category is Category.CSEA,
            source=source,
            position=position,
        )

    @classmethod
    def closing(cls, action: Action, dedup_key: str, source: str, position: str) -> IntakeEvent:
        """An acknowledge or resolve, which finds its case by dedup key alone."""
        return cls(
            action=action,
            title=None,
            category=None,
            severity=None,
            details="",
            policy=None,
            dedup_key=dedup_key,
            sensitive=False,
            source=source,
            position=position,
        )


@dataclass(frozen=True)
class ChangeEvent:
    """A change the desk should know of (PagerDuty change events): a note, never a page."""

    summary: str
    source: str
    happened_at: datetime | None  # in UTC
    details: str
    links: tuple[Link, ...]
    position: str


@dataclass(frozen=True)
class IntakeError:
    position: str
    reason: str

    def __str__(self) -> str:
        return f"{self.position}: {self.reason}"


@dataclass(frozen=True)
class IntakeBatch:
    events: list[IntakeEvent | ChangeEvent]
    errors: list[IntakeError]


Outcome = IntakeEvent | ChangeEvent | IntakeError
EventParser = Callable[[dict[str, Any], str, "Problems"], "IntakeEvent | ChangeEvent | None"]


@dataclass(frozen=True)
class IntakeFormat:
    """One format a sender speaks: its name, a line of help, how to recognise one of its
    payloads, and its parser."""

    name: str
    help: str
    looks_like: Callable[[dict[str, Any]], bool]
    parse: Callable[[str, dict[str, Any], IntakeDefaults], list[Outcome]]
    fallback: bool = False  # `auto` tries it last: it takes what no other format claims


class Problems:
    """Every problem of one event, so a sender learns them all at once."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def add(self, field: str, message: str) -> None:
        self.reasons.append(f"{field}: {message}")


def conclude(position: str, value: object, parse: EventParser) -> list[Outcome]:
    """An event when nothing is wrong with it, else one error per problem.

    A parser returns None only after recording why, so no event goes missing.
    """
    if not isinstance(value, dict):
        return [not_an_object_error(position, value)]
    problems = Problems()
    event = parse(value, position, problems)
    if event is None or problems.reasons:
        return [IntakeError(position, reason) for reason in problems.reasons]
    return [event]


def links_field(problems: Problems, field: str, value: object) -> tuple[Link, ...]:
    """PagerDuty's `links`: a list of {href, text}; also used for `images` (href, alt)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.add(field, f"expected a list of {{href, text}}, got {show(value)}")
        return ()
    links: list[Link] = []
    for index, item in enumerate(value[:LINKS_MAX]):
        where = f"{field}[{index}]"
        if not isinstance(item, dict):
            problems.add(where, f"expected an object with href, got {show(item)}")
            continue
        href = link_href(problems, f"{where}.href", item.get("href"), missing="required")
        text = item.get("text", item.get("alt"))
        label = string(problems, f"{where}.text", text, limit=TITLE_MAX) if text else None
        if href:
            links.append(Link(href, label or ""))
    return tuple(links)


def link_href(
    problems: Problems, field: str, value: object, *, missing: str | None = None
) -> str | None:
    """A web address to click: http or https only (never javascript: or a local file)."""
    href = string(problems, field, value, limit=LINK_MAX, missing=missing)
    if href is None:
        return None
    if not href.lower().startswith(("http://", "https://")):
        problems.add(field, f"expected an http:// or https:// address, got {show(href)}")
        return None
    return href


def not_an_object_error(position: str, value: object) -> IntakeError:
    return IntakeError(position, f"expected a JSON object, got {show(value)}")


def action_and_key(
    problems: Problems, field: str, action_value: object, key_value: object
) -> tuple[Action | None, str | None]:
    """The action, and the dedup key that acknowledge and resolve cannot do without."""
    action = choice(problems, field, action_value, OUR_ACTIONS, missing="required")
    dedup_key = string(
        problems,
        "dedup_key",
        key_value,
        limit=DEDUP_KEY_MAX,
        missing=None if action in (None, "trigger") else f"required for {field} {action!r}",
    )
    return action, dedup_key


# Our own events: the keys of `vigil page`.


# Field checks shared by every format. Each reports its problem and returns None.


def string(
    problems: Problems,
    field: str,
    value: object,
    *,
    limit: int | None = None,
    missing: str | None = None,
    text: bool = False,
) -> str | None:
    """A one-line value (stripped) or, with `text`, free text that may hold tabs and newlines."""
    if value is not None and not isinstance(value, str):
        problems.add(field, f"expected a string, got {show(value)}")
        return None
    if value is None or not value.strip():
        if missing:
            problems.add(field, missing)
        return None
    kept = value if text else fold_spaces(value.strip())
    if limit is not None and len(kept) > limit:
        problems.add(field, f"at most {limit} characters, got {len(kept)}")
        return None
    problem = text_problem(kept, single_line=not text)
    if problem:
        problems.add(field, problem)
        return None
    return kept


def choice(
    problems: Problems,
    field: str,
    value: object,
    options: Mapping[str, Action],
    *,
    missing: str | None = None,
) -> Action | None:
    if value is None and missing:
        problems.add(field, missing)
        return None
    if isinstance(value, str) and value.strip().lower() in options:
        return options[value.strip().lower()]
    problems.add(field, f"expected {either(list(options))}, got {show(value)}")
    return None


def severity_field(
    problems: Problems,
    field: str,
    value: object,
    *,
    aliases: Mapping[str, int] | None = None,
    ours: bool = True,
    missing: str | None = None,
) -> int | None:
    """Our spellings (sev1-sev4, 1-4), a sender's own names (`aliases`), or both."""
    if value is None:
        if missing:
            problems.add(field, missing)
        return None
    if aliases and isinstance(value, str) and value.strip().lower() in aliases:
        return aliases[value.strip().lower()]
    if ours and isinstance(value, str | int) and not isinstance(value, bool):
        try:
            return parse_severity(value)
        except ValueError:
            pass
    names = list(aliases or {})
    expected = f"{', '.join(names)}, {_SEVERITY_SPELLINGS}" if ours else either(names)
    problems.add(field, f"expected {expected.removeprefix(', ')}, got {show(value)}")
    return None


def known_category(value: object) -> Category | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_category(value)
    except ValueError:
        return None


def category_field(
    problems: Problems, field: str, value: object, *, missing: str | None = None
) -> Category | None:
    if value is None:
        if missing:
            problems.add(field, missing)
        return None
    category = known_category(value)
    if category is None:
        problems.add(field, f"expected one of {_CATEGORY_NAMES}, got {show(value)}")
    return category


def instant(problems: Problems, field: str, value: object) -> datetime | None:
    """An ISO 8601 time between 1970 and 2199, in UTC (one without an offset is taken as
    UTC, as senders that leave it out mean)."""
    given = string(problems, field, value, limit=64)
    if given is None:
        return None
    try:
        parsed = datetime.fromisoformat(given.replace("Z", "+00:00"))
    except ValueError:
        problems.add(field, f"expected an ISO 8601 time, got {given!r}")
        return None
    try:
        return check_instant(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
    except ValueError as exc:
        problems.add(field, str(exc))
        return None


def flag(problems: Problems, field: str, value: object) -> bool:
    """JSON true/false, or "true"/"false" where the sender can only send strings (labels)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    problems.add(field, f"expected true or false, got {show(value)}")
    return False


# Wording.


def show(value: object) -> str:
    """A short, printable rendering of a JSON value for a message."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    shown = repr(value)
    return shown if len(shown) <= _SHOW_MAX else f"{shown[: _SHOW_MAX - 3]}..."


def not_an_object(value: object, missing: str, kind: str = "an object") -> str:
    return missing if value is None else f"expected {kind}, got {show(value)}"


def either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def path(field: str, key: str) -> str:
    return f"{field}.{key}" if key.isidentifier() else f"{field}[{show(key)}]"


def render(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

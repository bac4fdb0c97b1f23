"""Turn intake text into plain events: our own, PagerDuty Events API v2, Alertmanager webhooks.

Pure parsing, no database: `vigil intake` stores what comes out. One bad event never hides the
good ones: every problem becomes an `IntakeError` naming where the event was and which field is
wrong, and no JSON value, however odd, makes `parse_intake` raise.

Mappings to our vocabulary:

- PagerDuty `payload.severity`: critical -> sev1, error -> sev2, warning -> sev3, info -> sev4.
  `payload.custom_details` may carry `severity` (sev1-sev4 or 1-4, overrides the mapping),
  `vigil_category` or `category` (must be one of ours), `sensitive` (true/false) and `details`.
  Without a category there, `payload.class` is used when it names one of ours, else `other`.
  The details are `custom_details.details`, then source, component, group, class and the other
  custom details as `key: value` lines; when the sender marks the event sensitive, only
  `custom_details.details` is kept, exactly as given.
- Alertmanager `labels.severity`: critical/page -> sev1, error/high -> sev2, warning -> sev3,
  info/low -> sev4; sev1-sev4 and 1-4 are accepted too. `labels.category` must be one of ours
  (default `other`), `labels.sensitive` is "true" or "false". Each alert is one event, keyed
  `alertmanager:<fingerprint>`, or by a hash of its sorted labels when it has no fingerprint.
- CSEA is always sensitive, whatever the sender says.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from data.domain import Category, parse_category, parse_severity

Action = Literal["trigger", "acknowledge", "resolve"]
Source = Literal["vigil", "pagerduty", "alertmanager"]

FORMATS = ("auto", *get_args(Source))
ACTIONS: tuple[Action, ...] = get_args(Action)

TITLE_MAX = 200
DETAILS_MAX = 20_000
DEDUP_KEY_MAX = 255
POLICY_MAX = 100

PAGERDUTY_SEVERITIES = {"critical": 1, "error": 2, "warning": 3, "info": 4}
ALERTMANAGER_SEVERITIES = {
    "critical": 1,
    "page": 1,
    "error": 2,
    "high": 2,
    "warning": 3,
    "info": 4,
    "low": 4,
}
ALERTMANAGER_PREFIX = "alertmanager:"

VIGIL_KEYS = (
    "action",
    "title",
    "category",
    "severity",
    "details",
    "policy",
    "dedup_key",
    "sensitive",
)

_SEVERITY_SPELLINGS = "sev1, sev2, sev3, sev4 or 1-4"
_CATEGORY_NAMES = ", ".join(category.value for category in Category)
# Custom details that steer the event rather than describe it.
_PAGERDUTY_CONTROL_KEYS = frozenset(
    {"category", "vigil_category", "severity", "sensitive", "details"}
)
_PAGERDUTY_FACTS = ("source", "component", "group", "class")
_OUR_ACTIONS: dict[str, Action] = {action: action for action in ACTIONS}
_ALERT_STATUSES: dict[str, Action] = {"firing": "trigger", "resolved": "resolve"}
_JSON_SPACE = " \t\r\n"
# A terminal shows what these do, not what they are; lone surrogates cannot be stored as UTF-8.
_LINE_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_TEXT_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_SHOW_MAX = 60


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
    source: Source
    position: str

    @classmethod
    def trigger(
        cls,
        source: Source,
        position: str,
        *,
        title: str,
        category: Category,
        severity: int,
        details: str,
        dedup_key: str | None,
        sensitive: bool,
        policy: str | None = None,
    ) -> IntakeEvent:
        """An event that opens a case (a CSEA report is always sensitive)."""
        return cls(
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
    def closing(cls, action: Action, dedup_key: str, source: Source, position: str) -> IntakeEvent:
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
class IntakeError:
    position: str
    reason: str

    def __str__(self) -> str:
        return f"{self.position}: {self.reason}"


@dataclass(frozen=True)
class IntakeBatch:
    events: list[IntakeEvent]
    errors: list[IntakeError]


def parse_intake(text: str, fmt: str = "auto") -> IntakeBatch:
    """Parse a JSON array, a single JSON object or JSON lines of events in format `fmt`.

    `auto` decides per event, so one batch may mix formats. Raises ValueError only for an
    unknown `fmt`; problems with the events themselves come back in `errors`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    events: list[IntakeEvent] = []
    errors: list[IntakeError] = []
    for item in _read_items(text):
        outcomes = [item] if isinstance(item, IntakeError) else _parse_item(*item, fmt)
        for outcome in outcomes:
            if isinstance(outcome, IntakeError):
                errors.append(outcome)
            else:
                events.append(outcome)
    return IntakeBatch(events, errors)


# Reading the text into positioned JSON values.


def _read_items(text: str) -> Iterator[tuple[str, object] | IntakeError]:
    text = text.removeprefix("\ufeff")
    if not text.strip(_JSON_SPACE):
        return
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        if _is_one_broken_document(text):
            yield IntakeError("input", f"not valid JSON: {_json_problem(exc, with_line=True)}")
        else:
            yield from _read_lines(text)
        return
    if isinstance(document, list):
        for index, value in enumerate(document, 1):
            yield f"event {index}", value
    else:
        yield "event 1", document


def _read_lines(text: str) -> Iterator[tuple[str, object] | IntakeError]:
    """JSON lines: a broken line is reported and the others still count."""
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip(_JSON_SPACE):
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as exc:
            yield IntakeError(f"line {number}", f"not valid JSON: {_json_problem(exc)}")
        else:
            yield f"line {number}", value


def _is_one_broken_document(text: str) -> bool:
    """A pretty-printed array or object with a typo is one error, not one per line."""
    first = next(line for line in text.split("\n") if line.strip(_JSON_SPACE))
    try:
        json.loads(first)
    except (ValueError, RecursionError):
        opening = first.strip(_JSON_SPACE)
        return opening.startswith("[") or opening == "{"
    return False


def _json_problem(exc: ValueError | RecursionError, with_line: bool = False) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, json.JSONDecodeError):
        where = f"line {exc.lineno}, column {exc.colno}" if with_line else f"column {exc.colno}"
        # The decoder's own wording sometimes ends in "at", expecting the place to follow.
        return f"{exc.msg.removesuffix(' at')} at {where}"
    return str(exc)


# Dispatching each value to its format.

_Outcome = IntakeEvent | IntakeError
_Parser = Callable[[dict[str, Any], str, "_Problems"], IntakeEvent | None]


class _Problems:
    """Every problem of one event, so a sender learns them all at once."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def add(self, field: str, message: str) -> None:
        self.reasons.append(f"{field}: {message}")


def _parse_item(position: str, value: object, fmt: str) -> list[_Outcome]:
    if not isinstance(value, dict):
        return [_not_an_object_error(position, value)]
    try:
        source = _detect(value, fmt)
        if source == "alertmanager":
            return _alertmanager_webhook(position, value)
        return _conclude(position, value, _PARSERS[source])
    except RecursionError:
        return [IntakeError(position, "nested too deeply")]


def _detect(value: dict[str, Any], fmt: str) -> str:
    if fmt != "auto":
        return fmt
    if "event_action" in value and ("routing_key" in value or "payload" in value):
        return "pagerduty"
    if "alerts" in value and ("version" in value or "receiver" in value or "groupKey" in value):
        return "alertmanager"
    return "vigil"


def _conclude(position: str, value: object, parse: _Parser) -> list[_Outcome]:
    """An event when nothing is wrong with it, else one error per problem.

    A parser returns None only after recording why, so no event goes missing.
    """
    if not isinstance(value, dict):
        return [_not_an_object_error(position, value)]
    problems = _Problems()
    event = parse(value, position, problems)
    if event is None or problems.reasons:
        return [IntakeError(position, reason) for reason in problems.reasons]
    return [event]


def _not_an_object_error(position: str, value: object) -> IntakeError:
    return IntakeError(position, f"expected a JSON object, got {_show(value)}")


def _action_and_key(
    problems: _Problems, field: str, action_value: object, key_value: object
) -> tuple[Action | None, str | None]:
    """The action, and the dedup key that acknowledge and resolve cannot do without."""
    action = _choice(problems, field, action_value, _OUR_ACTIONS, missing="required")
    dedup_key = _string(
        problems,
        "dedup_key",
        key_value,
        limit=DEDUP_KEY_MAX,
        missing=None if action in (None, "trigger") else f"required for {field} {action!r}",
    )
    return action, dedup_key


# Our own events: the keys of `vigil page`.


def _vigil_event(value: dict[str, Any], position: str, problems: _Problems) -> IntakeEvent | None:
    for key in value:
        if key not in VIGIL_KEYS:
            problems.add(_show(key), f"unknown key, expected one of {', '.join(VIGIL_KEYS)}")
    action, dedup_key = _action_and_key(
        problems, "action", value.get("action") or "trigger", value.get("dedup_key")
    )
    if action is None:
        return None
    if action != "trigger":
        return (
            None if dedup_key is None else IntakeEvent.closing(action, dedup_key, "vigil", position)
        )
    title = _string(problems, "title", value.get("title"), limit=TITLE_MAX, missing="required")
    category = _category(problems, "category", value.get("category"), missing="required")
    severity = _severity(problems, "severity", value.get("severity"), missing="required")
    details = _string(problems, "details", value.get("details"), limit=DETAILS_MAX, text=True)
    policy = _string(problems, "policy", value.get("policy"), limit=POLICY_MAX)
    sensitive = _flag(problems, "sensitive", value.get("sensitive"))
    if title is None or category is None or severity is None:
        return None
    return IntakeEvent.trigger(
        "vigil",
        position,
        title=title,
        category=category,
        severity=severity,
        details=details or "",
        dedup_key=dedup_key,
        sensitive=sensitive,
        policy=policy,
    )


# PagerDuty Events API v2.


def _pagerduty_event(
    value: dict[str, Any], position: str, problems: _Problems
) -> IntakeEvent | None:
    action, dedup_key = _action_and_key(
        problems, "event_action", value.get("event_action"), value.get("dedup_key")
    )
    if action is None:
        return None
    if action != "trigger":
        return (
            None
            if dedup_key is None
            else IntakeEvent.closing(action, dedup_key, "pagerduty", position)
        )
    payload = value.get("payload")
    if not isinstance(payload, dict):
        problems.add("payload", _not_an_object(payload, "required for event_action 'trigger'"))
        return None
    title = _string(
        problems, "payload.summary", payload.get("summary"), limit=TITLE_MAX, missing="required"
    )
    facts = {
        name: _string(
            problems,
            f"payload.{name}",
            payload.get(name),
            missing="required" if name == "source" else None,
        )
        for name in _PAGERDUTY_FACTS
    }
    severity = _severity(
        problems,
        "payload.severity",
        payload.get("severity"),
        aliases=PAGERDUTY_SEVERITIES,
        ours=False,
        missing="required",
    )
    custom = payload.get("custom_details")
    controls: dict[str, Any] = custom if isinstance(custom, dict) else {}
    if controls.get("severity") is not None:
        severity = _severity(problems, "payload.custom_details.severity", controls["severity"])
    category = _pagerduty_category(problems, controls, facts["class"])
    said_sensitive = _flag(problems, "payload.custom_details.sensitive", controls.get("sensitive"))
    details = _pagerduty_details(problems, custom, facts, keep_as_given=said_sensitive)
    if title is None or severity is None or category is None:
        return None
    return IntakeEvent.trigger(
        "pagerduty",
        position,
        title=title,
        category=category,
        severity=severity,
        details=details,
        dedup_key=dedup_key,
        sensitive=said_sensitive,
    )


def _pagerduty_category(
    problems: _Problems, controls: dict[str, Any], event_class: str | None
) -> Category | None:
    named = {
        key: _category(problems, f"payload.custom_details.{key}", controls[key])
        for key in ("vigil_category", "category")
        if controls.get(key) is not None
    }
    chosen = set(named.values())
    if None in chosen:
        return None
    if len(chosen) > 1:
        problems.add(
            "payload.custom_details.category",
            f"{named['category']!s} conflicts with vigil_category {named['vigil_category']!s}",
        )
        return None
    if chosen:
        return chosen.pop()
    return _known_category(event_class) or Category.OTHER


def _pagerduty_details(
    problems: _Problems, custom: object, facts: Mapping[str, str | None], keep_as_given: bool
) -> str:
    """`custom_details.details` first, then the facts a responder needs, one per line."""
    if isinstance(custom, dict):
        given = _string(
            problems,
            "payload.custom_details.details",
            custom.get("details"),
            limit=DETAILS_MAX,
            text=True,
        )
        extras = {
            key: extra
            for key, extra in custom.items()
            if key not in _PAGERDUTY_CONTROL_KEYS and extra is not None
        }
    else:
        given, extras = (None if custom is None else _render(custom)), {}
    if keep_as_given:
        return given or ""
    lines = [f"{name}: {fact}" for name, fact in facts.items() if fact]
    lines += [f"{key}: {_render(extra)}" for key, extra in extras.items()]
    rendered = "\n\n".join(part for part in (given or "", "\n".join(lines)) if part.strip())
    details = _string(
        problems, "details (rendered from payload)", rendered, limit=DETAILS_MAX, text=True
    )
    return details or ""


# Alertmanager webhook, version 4.


def _alertmanager_webhook(position: str, value: dict[str, Any]) -> list[_Outcome]:
    version, alerts = value.get("version"), value.get("alerts")
    if version is not None and version != "4":
        return [IntakeError(position, f'version: expected "4", got {_show(version)}')]
    if not isinstance(alerts, list):
        return [IntakeError(position, f"alerts: {_not_an_object(alerts, 'required', 'a list')}")]
    if not alerts:
        return [IntakeError(position, "alerts: expected at least one alert, got an empty list")]
    outcomes: list[_Outcome] = []
    for index, alert in enumerate(alerts, 1):
        outcomes += _conclude(f"{position}, alert {index}", alert, _alertmanager_alert)
    return outcomes


def _alertmanager_alert(
    alert: dict[str, Any], position: str, problems: _Problems
) -> IntakeEvent | None:
    action = _choice(problems, "status", alert.get("status"), _ALERT_STATUSES, missing="required")
    labels = _string_map(problems, "labels", alert.get("labels"))
    annotations = _string_map(problems, "annotations", alert.get("annotations"))
    if labels is None or annotations is None:
        return None
    dedup_key = _alert_dedup_key(problems, alert.get("fingerprint"), labels)
    if action is None or dedup_key is None:
        return None
    if action != "trigger":
        return IntakeEvent.closing(action, dedup_key, "alertmanager", position)
    title = _alert_title(problems, annotations, labels)
    severity = _severity(
        problems,
        "labels.severity",
        labels.get("severity"),
        aliases=ALERTMANAGER_SEVERITIES,
        missing="required",
    )
    raw_category = labels.get("category")
    category = (
        Category.OTHER
        if raw_category is None
        else _category(problems, "labels.category", raw_category)
    )
    sensitive = _flag(problems, "labels.sensitive", labels.get("sensitive"))
    label_lines = "\n".join(f"{name}={label}" for name, label in sorted(labels.items()))
    description = annotations.get("description", "").strip()
    rendered = "\n\n".join(part for part in (description, f"labels:\n{label_lines}") if part)
    details = _string(
        problems,
        "details (from annotations.description and labels)",
        rendered,
        limit=DETAILS_MAX,
        text=True,
    )
    if title is None or severity is None or category is None:
        return None
    return IntakeEvent.trigger(
        "alertmanager",
        position,
        title=title,
        category=category,
        severity=severity,
        details=details or "",
        dedup_key=dedup_key,
        sensitive=sensitive,
    )


def _alert_title(
    problems: _Problems, annotations: dict[str, str], labels: dict[str, str]
) -> str | None:
    for field, candidate in (
        ("annotations.summary", annotations.get("summary", "")),
        ("labels.alertname", labels.get("alertname", "")),
    ):
        if candidate.strip():
            return _string(problems, field, candidate, limit=TITLE_MAX)
    problems.add("title", "required: annotations.summary or labels.alertname")
    return None


def _alert_dedup_key(
    problems: _Problems, fingerprint: object, labels: dict[str, str]
) -> str | None:
    """The fingerprint names the alert; without one, the same labels always give the same key."""
    given = _string(
        problems, "fingerprint", fingerprint, limit=DEDUP_KEY_MAX - len(ALERTMANAGER_PREFIX)
    )
    if given:
        return ALERTMANAGER_PREFIX + given
    if labels:
        canonical = json.dumps(labels, sort_keys=True, separators=(",", ":"))
        return ALERTMANAGER_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()[:32]
    problems.add("fingerprint", "required when the alert has no labels")
    return None


def _string_map(problems: _Problems, field: str, value: object) -> dict[str, str] | None:
    """Alertmanager labels and annotations: an object of strings; absent means empty."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(field, _not_an_object(value, "required"))
        return None
    wrong = {key: item for key, item in value.items() if not isinstance(item, str)}
    for key, item in wrong.items():
        problems.add(_path(field, key), f"expected a string, got {_show(item)}")
    return None if wrong else dict(value)


_PARSERS: dict[str, _Parser] = {"vigil": _vigil_event, "pagerduty": _pagerduty_event}


# Field checks shared by every format. Each reports its problem and returns None.


def _string(
    problems: _Problems,
    field: str,
    value: object,
    *,
    limit: int | None = None,
    missing: str | None = None,
    text: bool = False,
) -> str | None:
    """A one-line value (stripped) or, with `text`, free text that may hold tabs and newlines."""
    if value is not None and not isinstance(value, str):
        problems.add(field, f"expected a string, got {_show(value)}")
        return None
    if value is None or not value.strip():
        if missing:
            problems.add(field, missing)
        return None
    kept = value if text else value.strip()
    if limit is not None and len(kept) > limit:
        problems.add(field, f"at most {limit} characters, got {len(kept)}")
        return None
    forbidden = (_TEXT_FORBIDDEN if text else _LINE_FORBIDDEN).search(kept)
    if forbidden:
        code = ord(forbidden.group())
        kind = "lone surrogate" if 0xD800 <= code <= 0xDFFF else "control character"
        problems.add(
            field, f"{kind} U+{code:04X} at character {forbidden.start() + 1} is not allowed"
        )
        return None
    return kept


def _choice(
    problems: _Problems,
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
    problems.add(field, f"expected {_either(list(options))}, got {_show(value)}")
    return None


def _severity(
    problems: _Problems,
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
    expected = f"{', '.join(names)}, {_SEVERITY_SPELLINGS}" if ours else _either(names)
    problems.add(field, f"expected {expected.removeprefix(', ')}, got {_show(value)}")
    return None


def _known_category(value: object) -> Category | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_category(value)
    except ValueError:
        return None


def _category(
    problems: _Problems, field: str, value: object, *, missing: str | None = None
) -> Category | None:
    if value is None:
        if missing:
            problems.add(field, missing)
        return None
    category = _known_category(value)
    if category is None:
        problems.add(field, f"expected one of {_CATEGORY_NAMES}, got {_show(value)}")
    return category


def _flag(problems: _Problems, field: str, value: object) -> bool:
    """JSON true/false, or "true"/"false" where the sender can only send strings (labels)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    problems.add(field, f"expected true or false, got {_show(value)}")
    return False


# Wording.


def _show(value: object) -> str:
    """A short, printable rendering of a JSON value for a message."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    shown = repr(value)
    return shown if len(shown) <= _SHOW_MAX else f"{shown[: _SHOW_MAX - 3]}..."


def _not_an_object(value: object, missing: str, kind: str = "an object") -> str:
    return missing if value is None else f"expected {kind}, got {_show(value)}"


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _path(field: str, key: str) -> str:
    return f"{field}.{key}" if key.isidentifier() else f"{field}[{_show(key)}]"


def _render(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

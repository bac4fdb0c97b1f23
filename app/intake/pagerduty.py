"""PagerDuty Events API v2: `event_action` trigger, acknowledge or resolve.

`payload.severity`: critical -> sev1, error -> sev2, warning -> sev3, info -> sev4.
`payload.custom_details` may carry `severity` (sev1-sev4 or 1-4, overrides the mapping),
`vigil_category` or `category` (must be one of ours), `sensitive` (true/false) and `details`.
Without a category there, `payload.class` is used when it names one of ours, else `other`.
The details are `custom_details.details`, then source, component, group, class and the other
custom details as `key: value` lines; when the sender marks the event sensitive, only
`custom_details.details` is kept, exactly as given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.intake.events import (
    DETAILS_MAX,
    TITLE_MAX,
    IntakeEvent,
    IntakeFormat,
    Outcome,
    Problems,
    action_and_key,
    category_field,
    conclude,
    flag,
    known_category,
    not_an_object,
    render,
    severity_field,
    string,
)
from data.domain import Category

PAGERDUTY_SEVERITIES = {"critical": 1, "error": 2, "warning": 3, "info": 4}
# Custom details that steer the event rather than describe it.
_PAGERDUTY_CONTROL_KEYS = frozenset(
    {"category", "vigil_category", "severity", "sensitive", "details"}
)
_PAGERDUTY_FACTS = ("source", "component", "group", "class")


def _event(value: dict[str, Any], position: str, problems: Problems) -> IntakeEvent | None:
    action, dedup_key = action_and_key(
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
        problems.add("payload", not_an_object(payload, "required for event_action 'trigger'"))
        return None
    title = string(
        problems, "payload.summary", payload.get("summary"), limit=TITLE_MAX, missing="required"
    )
    facts = {
        name: string(
            problems,
            f"payload.{name}",
            payload.get(name),
            missing="required" if name == "source" else None,
        )
        for name in _PAGERDUTY_FACTS
    }
    severity = severity_field(
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
        severity = severity_field(problems, "payload.custom_details.severity", controls["severity"])
    category = _pagerduty_category(problems, controls, facts["class"])
    said_sensitive = flag(problems, "payload.custom_details.sensitive", controls.get("sensitive"))
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
    problems: Problems, controls: dict[str, Any], event_class: str | None
) -> Category | None:
    named = {
        key: category_field(problems, f"payload.custom_details.{key}", controls[key])
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
    return known_category(event_class) or Category.OTHER


def _pagerduty_details(
    problems: Problems, custom: object, facts: Mapping[str, str | None], keep_as_given: bool
) -> str:
    """`custom_details.details` first, then the facts a responder needs, one per line."""
    if isinstance(custom, dict):
        given = string(
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
        given, extras = (None if custom is None else render(custom)), {}
    if keep_as_given:
        return given or ""
    lines = [f"{name}: {fact}" for name, fact in facts.items() if fact]
    lines += [f"{key}: {render(extra)}" for key, extra in extras.items()]
    rendered = "\n\n".join(part for part in (given or "", "\n".join(lines)) if part.strip())
    details = string(
        problems, "details (rendered from payload)", rendered, limit=DETAILS_MAX, text=True
    )
    return details or ""


def parse(position: str, value: dict[str, Any]) -> list[Outcome]:
    return conclude(position, value, _event)


def looks_like(value: dict[str, Any]) -> bool:
    return "event_action" in value and ("routing_key" in value or "payload" in value)


FORMAT = IntakeFormat(
    name="pagerduty",
    help="PagerDuty Events API v2",
    looks_like=looks_like,
    parse=parse,
)

"""PagerDuty Events API v2: `event_action` trigger, acknowledge or resolve.

`payload.severity`: critical -> sev1, error -> sev2, warning -> sev3, info -> sev4.
`payload.custom_details` may carry `severity` (sev1-sev4 or 1-4, overrides the mapping),
`vigil_category` or `category` (must be one of ours), `sensitive` (true/false) and `details`.
Without a category there, `payload.class` is used when it names one of ours, else `other`.
The details are `custom_details.details`, then source, component, group, class and the other
custom details as `key: value` lines; when the sender marks the event sensitive, only
`custom_details.details` is kept, exactly as given. `links`, `images` (as links, their `alt`
as text) and `client_url` (as a link named by `client`) are kept on the case. A trigger
without `dedup_key` gets one (`pd-` and 32 hex digits), which the sender is told, so its
acknowledge and resolve can find the case, as PagerDuty does.

A trigger's `payload.timestamp` is not read: the case opens when the event arrives, and a
page is never refused over a field the desk does not use.

A change event (`POST /v2/change/enqueue`, or an event with `payload.summary` but no
`event_action` key) is a change note the desk can read (`vigil changes`), never a page; its
`payload.timestamp` is kept, between 1970 and 2199.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from app.intake.events import (
    DETAILS_MAX,
    TITLE_MAX,
    ChangeEvent,
    IntakeDefaults,
    IntakeEvent,
    IntakeFormat,
    Link,
    Outcome,
    Problems,
    action_and_key,
    category_field,
    conclude,
    flag,
    instant,
    known_category,
    link_href,
    links_field,
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


def _event(
    value: dict[str, Any], position: str, problems: Problems, defaults: IntakeDefaults
) -> IntakeEvent | ChangeEvent | None:
    if "event_action" not in value and isinstance(value.get("payload"), dict):
        return _change(value, position, problems)
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
    category = _pagerduty_category(problems, controls, facts["class"], defaults)
    said_sensitive = flag(problems, "payload.custom_details.sensitive", controls.get("sensitive"))
    details = _pagerduty_details(problems, custom, facts, keep_as_given=said_sensitive)
    links = _pagerduty_links(problems, value)
    if title is None or severity is None or category is None:
        return None
    return IntakeEvent.trigger(
        "pagerduty",
        position,
        title=title,
        category=category,
        severity=severity,
        details=details,
        dedup_key=dedup_key or f"pd-{uuid.uuid4().hex}",
        sensitive=said_sensitive,
        policy=defaults.policy,
        links=links,
    )


def _pagerduty_links(problems: Problems, value: dict[str, Any]) -> tuple[Link, ...]:
    links = [*links_field(problems, "links", value.get("links"))]
    links += links_field(problems, "images", value.get("images"))
    client_url = link_href(problems, "client_url", value.get("client_url"))
    if client_url:
        client = string(problems, "client", value.get("client"), limit=TITLE_MAX)
        links.append(Link(client_url, client or "client"))
    return tuple(links)


def _change(value: dict[str, Any], position: str, problems: Problems) -> ChangeEvent | None:
    """A change event: summary required; source, timestamp, custom details and links kept."""
    payload: dict[str, Any] = value["payload"]
    summary = string(
        problems, "payload.summary", payload.get("summary"), limit=TITLE_MAX, missing="required"
    )
    source = string(problems, "payload.source", payload.get("source"), limit=TITLE_MAX)
    happened_at = instant(problems, "payload.timestamp", payload.get("timestamp"))
    custom = payload.get("custom_details")
    details = "" if custom is None else render(custom)
    links = links_field(problems, "links", value.get("links"))
    if summary is None:
        return None
    return ChangeEvent(
        summary=summary,
        source=source or "",
        happened_at=happened_at,
        details=details[:DETAILS_MAX],
        links=links,
        position=position,
    )


def _pagerduty_category(
    problems: Problems,
    controls: dict[str, Any],
    event_class: str | None,
    defaults: IntakeDefaults,
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
    return known_category(event_class) or defaults.category or Category.OTHER


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


def parse(position: str, value: dict[str, Any], defaults: IntakeDefaults) -> list[Outcome]:
    return conclude(
        position, value, lambda event, where, problems: _event(event, where, problems, defaults)
    )


def looks_like(value: dict[str, Any]) -> bool:
    if "event_action" in value:
        return "routing_key" in value or "payload" in value
    # A change event: a routing key and a payload with a summary, no action.
    payload = value.get("payload")
    return "routing_key" in value and isinstance(payload, dict) and "summary" in payload


FORMAT = IntakeFormat(
    name="pagerduty",
    help="PagerDuty Events API v2",
    looks_like=looks_like,
    parse=parse,
)

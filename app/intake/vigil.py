"""Our own events: a JSON object with the keys of `vigil page`, and `action` to acknowledge
or resolve by `dedup_key`."""

from __future__ import annotations

from typing import Any

from app.intake.events import (
    DETAILS_MAX,
    POLICY_MAX,
    TITLE_MAX,
    IntakeDefaults,
    IntakeEvent,
    IntakeFormat,
    Outcome,
    Problems,
    action_and_key,
    category_field,
    conclude,
    flag,
    severity_field,
    show,
    string,
)

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


def _event(
    value: dict[str, Any], position: str, problems: Problems, defaults: IntakeDefaults
) -> IntakeEvent | None:
    for key in value:
        if key not in VIGIL_KEYS:
            problems.add(show(key), f"unknown key, expected one of {', '.join(VIGIL_KEYS)}")
    action, dedup_key = action_and_key(
        problems, "action", _or_trigger(value.get("action")), value.get("dedup_key")
    )
    if action is None:
        return None
    if action != "trigger":
        return (
            None if dedup_key is None else IntakeEvent.closing(action, dedup_key, "vigil", position)
        )
    title = string(problems, "title", value.get("title"), limit=TITLE_MAX, missing="required")
    category = (
        defaults.category
        if value.get("category") is None and defaults.category is not None
        else category_field(problems, "category", value.get("category"), missing="required")
    )
    severity = (
        defaults.severity
        if value.get("severity") is None and defaults.severity is not None
        else severity_field(problems, "severity", value.get("severity"), missing="required")
    )
    details = string(problems, "details", value.get("details"), limit=DETAILS_MAX, text=True)
    policy = string(problems, "policy", value.get("policy"), limit=POLICY_MAX) or defaults.policy
    sensitive = flag(problems, "sensitive", value.get("sensitive"))
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


def parse(position: str, value: dict[str, Any], defaults: IntakeDefaults) -> list[Outcome]:
    return conclude(
        position, value, lambda event, where, problems: _event(event, where, problems, defaults)
    )


FORMAT = IntakeFormat(
    name="vigil",
    help="our own events, the keys of `vigil page`",
    looks_like=lambda value: True,
    parse=parse,
    fallback=True,
)


def _or_trigger(action: object) -> object:
    """No action (absent or null) is a trigger; any other value is checked as given."""
    return "trigger" if action is None else action

"""Alertmanager webhook, version 4: each alert is one event.

`labels.severity`: critical/page -> sev1, error/high -> sev2, warning -> sev3, info/low ->
sev4; sev1-sev4 and 1-4 are accepted too. `labels.category` must be one of ours (default
`other`), `labels.sensitive` is "true" or "false". Each alert is keyed
`alertmanager:<fingerprint>`, or by a hash of its sorted labels when it has no fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from app.intake.events import (
    DEDUP_KEY_MAX,
    DETAILS_MAX,
    TITLE_MAX,
    Action,
    IntakeError,
    IntakeEvent,
    IntakeFormat,
    Outcome,
    Problems,
    category_field,
    choice,
    conclude,
    flag,
    not_an_object,
    path,
    severity_field,
    show,
    string,
)
from data.domain import Category

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
_ALERT_STATUSES: dict[str, Action] = {"firing": "trigger", "resolved": "resolve"}


def parse(position: str, value: dict[str, Any]) -> list[Outcome]:
    version, alerts = value.get("version"), value.get("alerts")
    if version is not None and version != "4":
        return [IntakeError(position, f'version: expected "4", got {show(version)}')]
    if not isinstance(alerts, list):
        return [IntakeError(position, f"alerts: {not_an_object(alerts, 'required', 'a list')}")]
    if not alerts:
        return [IntakeError(position, "alerts: expected at least one alert, got an empty list")]
    outcomes: list[Outcome] = []
    for index, alert in enumerate(alerts, 1):
        outcomes += conclude(f"{position}, alert {index}", alert, _alertmanager_alert)
    return outcomes


def _alertmanager_alert(
    alert: dict[str, Any], position: str, problems: Problems
) -> IntakeEvent | None:
    action = choice(problems, "status", alert.get("status"), _ALERT_STATUSES, missing="required")
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
    severity = severity_field(
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
        else category_field(problems, "labels.category", raw_category)
    )
    sensitive = flag(problems, "labels.sensitive", labels.get("sensitive"))
    label_lines = "\n".join(f"{name}={label}" for name, label in sorted(labels.items()))
    description = annotations.get("description", "").strip()
    rendered = "\n\n".join(part for part in (description, f"labels:\n{label_lines}") if part)
    details = string(
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
    problems: Problems, annotations: dict[str, str], labels: dict[str, str]
) -> str | None:
    for field, candidate in (
        ("annotations.summary", annotations.get("summary", "")),
        ("labels.alertname", labels.get("alertname", "")),
    ):
        if candidate.strip():
            return string(problems, field, candidate, limit=TITLE_MAX)
    problems.add("title", "required: annotations.summary or labels.alertname")
    return None


def _alert_dedup_key(problems: Problems, fingerprint: object, labels: dict[str, str]) -> str | None:
    """The fingerprint names the alert; without one, the same labels always give the same key."""
    given = string(
        problems, "fingerprint", fingerprint, limit=DEDUP_KEY_MAX - len(ALERTMANAGER_PREFIX)
    )
    if given:
        return ALERTMANAGER_PREFIX + given
    if labels:
        canonical = json.dumps(labels, sort_keys=True, separators=(",", ":"))
        return ALERTMANAGER_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()[:32]
    problems.add("fingerprint", "required when the alert has no labels")
    return None


def _string_map(problems: Problems, field: str, value: object) -> dict[str, str] | None:
    """Alertmanager labels and annotations: an object of strings; absent means empty."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(field, not_an_object(value, "required"))
        return None
    wrong = {key: item for key, item in value.items() if not isinstance(item, str)}
    for key, item in wrong.items():
        problems.add(path(field, key), f"expected a string, got {show(item)}")
    return None if wrong else dict(value)


def looks_like(value: dict[str, Any]) -> bool:
    return "alerts" in value and ("version" in value or "receiver" in value or "groupKey" in value)


FORMAT = IntakeFormat(
    name="alertmanager",
    help="Alertmanager webhook, version 4",
    looks_like=looks_like,
    parse=parse,
)

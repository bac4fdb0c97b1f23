"""Alertmanager webhook, version 4: each alert is one event.

`labels.severity`: critical/page -> sev1, error/high -> sev2, warning -> sev3, info/low ->
sev4; sev1-sev4 and 1-4 are accepted too. An alert without a severity still pages: it takes
the integration's severity, else sev2 (`events.DEFAULT_SEVERITY`), and its details say so.
`labels.category` must be one of ours (else the integration's category, else `other`),
`labels.sensitive` is "true" or "false". Each alert is keyed `alertmanager:<fingerprint>`,
or by a hash of its sorted labels when it has no fingerprint. `generatorURL` and the
annotations `runbook_url`, `dashboard_url` and `panel_url` are kept as links. A resolved
alert resolves its case; a resolved alert whose case is closed or unknown is dropped.
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
    IntakeDefaults,
    IntakeError,
    IntakeEvent,
    IntakeFormat,
    Link,
    Outcome,
    Problems,
    category_field,
    choice,
    conclude,
    flag,
    link_href,
    not_an_object,
    path,
    severity_field,
    show,
    string,
)
from data.domain import Category, severity_name

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


# Annotations (and Grafana's alert fields) that are links, with the text they are shown by.
LINK_ANNOTATIONS = (
    ("runbook_url", "runbook"),
    ("dashboard_url", "dashboard"),
    ("panel_url", "panel"),
)


def parse(position: str, value: dict[str, Any], defaults: IntakeDefaults) -> list[Outcome]:
    return parse_group(position, value, defaults, source="alertmanager", version="4")


def parse_group(
    position: str,
    value: dict[str, Any],
    defaults: IntakeDefaults,
    *,
    source: str,
    version: str,
    extra_links: tuple[tuple[str, str], ...] = (),
) -> list[Outcome]:
    """A webhook group of alerts as Alertmanager sends it (Grafana's has the same shape)."""
    given, alerts = value.get("version"), value.get("alerts")
    if given is not None and given != version:
        return [IntakeError(position, f'version: expected "{version}", got {show(given)}')]
    if not isinstance(alerts, list):
        return [IntakeError(position, f"alerts: {not_an_object(alerts, 'required', 'a list')}")]
    if not alerts:
        return [IntakeError(position, "alerts: expected at least one alert, got an empty list")]
    outcomes: list[Outcome] = []
    for index, alert in enumerate(alerts, 1):
        outcomes += conclude(
            f"{position}, alert {index}",
            alert,
            lambda item, where, problems: alert_event(
                item, where, problems, defaults, source=source, extra_links=extra_links
            ),
        )
    return outcomes


def alert_event(
    alert: dict[str, Any],
    position: str,
    problems: Problems,
    defaults: IntakeDefaults,
    *,
    source: str,
    extra_links: tuple[tuple[str, str], ...] = (),
) -> IntakeEvent | None:
    action = choice(problems, "status", alert.get("status"), _ALERT_STATUSES, missing="required")
    labels = _string_map(problems, "labels", alert.get("labels"))
    annotations = _string_map(problems, "annotations", alert.get("annotations"))
    if labels is None or annotations is None:
        return None
    dedup_key = _alert_dedup_key(problems, alert.get("fingerprint"), labels, f"{source}:")
    if action is None or dedup_key is None:
        return None
    if action != "trigger":
        return IntakeEvent.closing(action, dedup_key, source, position)
    title = _alert_title(problems, annotations, labels)
    severity_note = ""
    severity: int | None
    if labels.get("severity") is None:
        severity = defaults.fallback_severity
        whose = "the integration's default" if defaults.severity else "Vigil's default"
        severity_note = f"No severity label: paged as {severity_name(severity)} ({whose})."
    else:
        severity = severity_field(
            problems, "labels.severity", labels.get("severity"), aliases=ALERTMANAGER_SEVERITIES
        )
    raw_category = labels.get("category")
    category = (
        (defaults.category or Category.OTHER)
        if raw_category is None
        else category_field(problems, "labels.category", raw_category)
    )
    sensitive = flag(problems, "labels.sensitive", labels.get("sensitive"))
    links = _alert_links(problems, alert, annotations, extra_links)
    label_lines = "\n".join(f"{name}={label}" for name, label in sorted(labels.items()))
    description = annotations.get("description", "").strip()
    rendered = "\n\n".join(
        part for part in (severity_note, description, f"labels:\n{label_lines}") if part
    )
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
        source,
        position,
        title=title,
        category=category,
        severity=severity,
        details=details or "",
        dedup_key=dedup_key,
        sensitive=sensitive,
        policy=defaults.policy,
        links=links,
    )


def _alert_links(
    problems: Problems,
    alert: dict[str, Any],
    annotations: dict[str, str],
    extra: tuple[tuple[str, str], ...],
) -> tuple[Link, ...]:
    """The alert's source, then its runbook and dashboards: what a responder clicks first."""
    found = [("generatorURL", alert.get("generatorURL"), "source")]
    found += [(f"annotations.{key}", annotations.get(key), text) for key, text in LINK_ANNOTATIONS]
    found += [(key, alert.get(key), text) for key, text in extra]
    links: list[Link] = []
    for field, value, text in found:
        if value in (None, ""):
            continue
        href = link_href(problems, field, value)
        if href and all(link.href != href for link in links):
            links.append(Link(href, text))
    return tuple(links)


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


def _alert_dedup_key(
    problems: Problems, fingerprint: object, labels: dict[str, str], prefix: str
) -> str | None:
    """The fingerprint names the alert; without one, the same labels always give the same key."""
    given = string(problems, "fingerprint", fingerprint, limit=DEDUP_KEY_MAX - len(prefix))
    if given:
        return prefix + given
    if labels:
        canonical = json.dumps(labels, sort_keys=True, separators=(",", ":"))
        return prefix + hashlib.sha256(canonical.encode()).hexdigest()[:32]
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
    if value.get("version") == "1":
        return False  # Grafana's webhook contact point
    return "alerts" in value and ("version" in value or "receiver" in value or "groupKey" in value)


FORMAT = IntakeFormat(
    name="alertmanager",
    help="Alertmanager webhook, version 4",
    looks_like=looks_like,
    parse=parse,
)

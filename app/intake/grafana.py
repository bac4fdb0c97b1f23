"""Grafana's webhook contact point, version "1": Alertmanager's group of alerts, with
Grafana's own links.

Each alert is keyed `grafana:<fingerprint>` and follows the Alertmanager rules (severity and
category labels, a missing severity takes the integration's or sev2); `generatorURL`,
`dashboardURL`, `panelURL` and the `runbook_url` annotation are kept as links, `silenceURL`
too, so a responder can silence it where it was raised.
"""

from __future__ import annotations

from typing import Any

from app.intake.alertmanager import parse_group
from app.intake.events import IntakeDefaults, IntakeFormat, Outcome

GRAFANA_LINKS = (("dashboardURL", "dashboard"), ("panelURL", "panel"), ("silenceURL", "silence"))


def parse(position: str, value: dict[str, Any], defaults: IntakeDefaults) -> list[Outcome]:
    return parse_group(
        position, value, defaults, source="grafana", version="1", extra_links=GRAFANA_LINKS
    )


def looks_like(value: dict[str, Any]) -> bool:
    return "alerts" in value and (value.get("version") == "1" or "orgId" in value)


FORMAT = IntakeFormat(
    name="grafana",
    help='Grafana webhook contact point, version "1"',
    looks_like=looks_like,
    parse=parse,
)

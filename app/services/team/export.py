"""`vigil team export`: what is stored, printed in the team file's format, never a secret, so
that applying an export changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session

from app.services.casework.settings import settings_toml, stored_settings
from app.services.team.plan import Stored
from app.services.team.spec import EXPORT_HEADER, iso_utc
from data.domain import (
    Category,
    format_duration,
    severity_name,
)
from data.intake import HEARTBEAT

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
        return _toml_string(iso_utc(value))
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


def _integration_values(name: str, record: Mapping[str, Any]) -> dict[str, Any]:
    severity = record["severity"]
    return {
        "name": name,
        **record,
        "severity": None if severity is None else severity_name(severity),
    }


def export_team(session: Session) -> str:
    """The stored team as a team file: deterministic, secrets left out, and applying it
    changes nothing."""
    stored = Stored.load(session)
    state = stored.state()
    active = {h for h, r in state["responder"].items() if r["active"]}
    out = [EXPORT_HEADER]
    for handle in sorted(active):
        record = state["responder"][handle]
        contacts = [
            {
                "kind": c.kind,
                **({"name": c.name} if c.name else {}),
                **({} if c.shown is None else {"url": c.shown, **c.flags}),
            }
            for c in record["contacts"]
        ]
        notify = {
            urgency: [
                {"after": format_duration(delay) if delay else "0m", "contact": name}
                for delay, name in entries
            ]
            for urgency, entries in record["notify"]
        }
        out += _toml_table(
            "[[responder]]",
            {
                "handle": handle,
                "name": record["name"],
                "role": record["role"],
                "timezone": record["timezone"],
                "db_login": record["db_login"],
                "contacts": contacts,
                "quiet_hours": record["quiet_hours"],
                "notify": notify or None,
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
        if record["high_urgency"] is not None:
            severities = [severity_name(s) for s in record["high_urgency"]]
            out.append(f"high_urgency = {_toml_value(severities)}")
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
    integrations = sorted(state["integration"].items())
    for name, record in integrations:
        if record["format"] != HEARTBEAT:
            values = {**record, "interval": None, "grace": None}
            out += _toml_table("[[integration]]", _integration_values(name, values))
    for name, record in integrations:
        if record["format"] == HEARTBEAT:
            values = {**record, "format": None, "rate_limit": None}
            out += _toml_table("[[heartbeat]]", _integration_values(name, values))
    casework = settings_toml(stored_settings(session))
    if casework:
        out += ["", casework]
    return "\n".join(out).rstrip("\n") + "\n"

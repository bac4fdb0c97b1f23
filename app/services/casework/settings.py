"""The desk's casework settings as stored: read, replaced (audited) and written as TOML."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlmodel import Session

from app.rules.casework import CaseworkConfig, config_of, effective_config, settings_document
from data.casework import (
    CaseworkSettings,
)


def stored_settings(session: Session) -> dict[str, Any]:
    row = session.get(CaseworkSettings, 1)
    return dict(row.document) if row is not None else {}


def load_config(session: Session) -> CaseworkConfig:
    return config_of(json.dumps(stored_settings(session), sort_keys=True))


def store_settings(session: Session, document: Mapping[str, Any], actor: str, now: datetime) -> str:
    """Validate and store the casework tables of a team document (the caller audits);
    returns the digest of what was stored."""
    settings = settings_document(document)
    effective_config(settings)  # refuse anything that would not load
    row = session.get(CaseworkSettings, 1)
    if row is None:
        row = CaseworkSettings(id=1, document=settings, updated_at=now, updated_by=actor)
    else:
        row.document, row.updated_at, row.updated_by = settings, now, actor
    session.add(row)
    return digest(settings)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def settings_toml(document: Mapping[str, Any]) -> str:
    """The casework tables as team-file TOML (the shapes `parse_casework_config` reads)."""
    lines: list[str] = []
    if "clock_presets" in document:
        lines += [f"clock_presets = {_toml_value(list(document['clock_presets']))}", ""]
    for category, clocks in document.get("clocks", {}).items():
        if not clocks:
            lines += [f"[clocks.{_toml_key(category)}]", ""]
        for name, body in clocks.items():
            lines.append(f"[clocks.{_toml_key(category)}.{_toml_key(name)}]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in body.items()]
            lines.append("")
    for key, body in document.get("disclosure_basis", {}).items():
        lines.append(f"[disclosure_basis.{_toml_key(key)}]")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in body.items()]
        lines.append("")
    containment = document.get("containment", {})
    if containment:
        lines.append("[containment]")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in containment.items()]
        lines.append("")
    return "\n".join(lines)


def digest(value: Any) -> str:
    """A short fingerprint of recorded facts, so the audit chain proves them unchanged
    without repeating them."""
    body = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()

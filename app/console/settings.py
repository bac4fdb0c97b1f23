"""The console's personal settings file: `$XDG_CONFIG_HOME/vigil/console.toml`
(default `~/.config/vigil/console.toml`).

It holds the keymap, by binding id::

    [keymap]
    "queue.ack" = "A"
    "queue.resolve" = "ctrl+r"

and the queue's saved views, each a set of filters and an order under a name (the
console writes them when the person saves a view with `w`)::

    [views.triage]
    severities = [1, 2]
    unassigned = true
    sort = "age"

A mistake in the file never keeps the console from opening during a shift: the valid
entries apply, and each invalid one is reported on screen by its key path. (The chosen
theme is remembered in the database instead, per person, so it follows them to any desk.)
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit

from app.core import toml
from data.queries import SORT_COLUMNS, QueueFilter

FILE_NAME = "console.toml"
KNOWN_TABLES = ("keymap", "views")
MAX_VIEW_NAME = 40


def settings_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "vigil" / FILE_NAME


@dataclass(frozen=True)
class ConsoleSettings:
    keymap: dict[str, str] = field(default_factory=dict)
    """Binding id -> keys (comma-separated for several), applied with `App.set_keymap`."""
    views: dict[str, QueueFilter] = field(default_factory=dict)
    """Saved views by name: filters and an order, without the viewer (`me` is unset)."""
    problems: tuple[str, ...] = ()
    """What was wrong in the file, one line per entry, naming its key path."""
    path: Path | None = None
    """The file read (or to be written), None for the defaults of a test."""


VIEW_FIELDS: dict[str, type] = {
    "mine": bool,
    "unassigned": bool,
    "snoozed": bool,
    "include_resolved": bool,
    "search": str,
    "categories": list,
    "severities": list,
    "clocks": list,
    "sort": str,
}
"""What a saved view keeps of a `QueueFilter`, by field, with its TOML type."""


def view_table(flt: QueueFilter) -> dict[str, Any]:
    """A view as its TOML table: only what differs from the plain queue."""
    plain = QueueFilter()
    table: dict[str, Any] = {}
    for name in VIEW_FIELDS:
        value = getattr(flt, name)
        if value != getattr(plain, name):
            table[name] = sorted(value) if isinstance(value, frozenset) else value
    return table


def parse_view(where: str, table: object) -> tuple[QueueFilter | None, list[str]]:
    """A view from its TOML table, or None and what is wrong with it (by key path)."""
    if not isinstance(table, Mapping):
        return None, [f'{where}: expected a table of filters, such as sort = "age"']
    problems = []
    values: dict[str, Any] = {}
    value: Any
    for key, value in table.items():
        kind = VIEW_FIELDS.get(key)
        typed = kind is not None and isinstance(value, kind)
        if kind is None:
            problems.append(
                f"{where}.{key}: unknown filter; expected one of {', '.join(VIEW_FIELDS)}"
            )
        elif not typed:
            problems.append(f"{where}.{key}: expected a {kind.__name__}, got {value!r}")
        elif key == "sort" and value not in SORT_COLUMNS:
            problems.append(
                f"{where}.sort: expected one of {', '.join(SORT_COLUMNS)}, got {value!r}"
            )
        elif key == "severities" and not all(v in (1, 2, 3, 4) for v in value):
            problems.append(f"{where}.severities: expected numbers 1 to 4, got {value!r}")
        elif kind is list:
            values[key] = frozenset(value)
        else:
            values[key] = value
    if problems:
        return None, problems
    return QueueFilter(**values), []


def save_view(path: Path, name: str, flt: QueueFilter) -> None:
    """Write a view into the settings file under `name`, keeping the rest of the file as
    it was (its comments too); written whole to a new file, then moved over the old."""
    document = (
        tomlkit.parse(path.read_text(encoding="utf-8")) if path.is_file() else tomlkit.document()
    )
    views = document.get("views")
    if not isinstance(views, MutableMapping):
        views = tomlkit.table(is_super_table=True)
        document["views"] = views
    views[name] = view_table(flt)
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(tomlkit.dumps(document), encoding="utf-8")
    fresh.replace(path)


def load_settings(known_ids: Collection[str], path: Path | None = None) -> ConsoleSettings:
    """Read the settings file; a missing file means defaults."""
    path = path or settings_path()
    if not path.is_file():
        return ConsoleSettings(path=path)
    try:
        document = toml.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, toml.TOMLDecodeError) as exc:
        return ConsoleSettings(problems=(f"{path.name}: cannot be read: {exc}",), path=path)
    problems = [
        f"{path.name}: {key}: unknown setting; expected one of {', '.join(KNOWN_TABLES)}"
        for key in document
        if key not in KNOWN_TABLES
    ]
    keymap: dict[str, str] = {}
    table = document.get("keymap", {})
    if not isinstance(table, dict):
        problems.append(f'{path.name}: keymap: expected a table of binding id = "keys"')
        table = {}
    for binding_id, keys in table.items():
        where = f'{path.name}: keymap."{binding_id}"'
        if binding_id not in known_ids:
            problems.append(
                f"{where}: unknown binding id; expected one of {', '.join(sorted(known_ids))}"
            )
        elif not isinstance(keys, str) or not keys.strip():
            problems.append(f'{where}: expected keys as a string such as "A" or "ctrl+r"')
        else:
            keymap[binding_id] = keys.strip()
    views: dict[str, QueueFilter] = {}
    saved = document.get("views", {})
    if not isinstance(saved, dict):
        problems.append(f"{path.name}: views: expected tables such as [views.triage]")
        saved = {}
    for name, table in saved.items():
        view, wrong = parse_view(f"{path.name}: views.{name}", table)
        problems += wrong
        if view is not None:
            views[name] = view
    return ConsoleSettings(keymap=keymap, views=views, problems=tuple(problems), path=path)

"""The console's personal settings file: `$XDG_CONFIG_HOME/vigil/console.toml`
(default `~/.config/vigil/console.toml`).

It holds the keymap, by binding id::

    [keymap]
    "queue.ack" = "A"
    "queue.resolve" = "ctrl+r"

A mistake in the file never keeps the console from opening during a shift: the valid
entries apply, and each invalid one is reported on screen by its key path. (The chosen
theme is remembered in the database instead, per person, so it follows them to any desk.)
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

FILE_NAME = "console.toml"
KNOWN_TABLES = ("keymap",)


def settings_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "vigil" / FILE_NAME


@dataclass(frozen=True)
class ConsoleSettings:
    keymap: dict[str, str] = field(default_factory=dict)
    """Binding id -> keys (comma-separated for several), applied with `App.set_keymap`."""
    problems: tuple[str, ...] = ()
    """What was wrong in the file, one line per entry, naming its key path."""


def load_settings(known_ids: Collection[str], path: Path | None = None) -> ConsoleSettings:
    """Read the settings file; a missing file means defaults."""
    path = path or settings_path()
    if not path.is_file():
        return ConsoleSettings()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return ConsoleSettings(problems=(f"{path.name}: cannot be read: {exc}",))
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
    return ConsoleSettings(keymap=keymap, problems=tuple(problems))

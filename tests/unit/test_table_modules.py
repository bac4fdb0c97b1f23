"""Each module of tables stands alone: whatever imports it can write its rows.

A command declares only the tables it uses (`tests/cli/test_cli_startup.py`), and the ORM
resolves every foreign key of a table it writes: a table whose target is declared in a
module nobody imported fails at the first flush, far from the import that forgot it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from data.schema import TABLE_MODULES

PROBE = """
import importlib, json, sys
from sqlmodel import SQLModel
importlib.import_module(sys.argv[1])
unresolved = []
for table in SQLModel.metadata.tables.values():
    for key in table.foreign_keys:
        try:
            key.column
        except Exception as exc:
            unresolved.append(f"{table.name}.{key.parent.name}: {exc.__class__.__name__}")
print(json.dumps(unresolved))
"""


@pytest.mark.parametrize("module", TABLE_MODULES)
def test_every_foreign_key_of_a_table_module_resolves_on_its_own(module: str) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, module], capture_output=True, text=True, check=True
    )
    assert json.loads(probe.stdout) == []

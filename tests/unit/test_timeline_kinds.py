"""Every line of a case's timeline has a kind of `TimelineKind`: the journal refuses any
other, and every kind the code writes as text (the engine's plan events) is a member."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from data.domain import TimelineKind
from data.journal import add_timeline
from data.models import Case

ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

KIND_ARGUMENT = {"add_timeline": 3, "timeline_row": 2, "journal": 1, "_done": 2}
"""Where the writers take the kind: `add_timeline(session, case, at, kind, …)`, the rows of a
bulk writer `timeline_row(case_id, at, kind, …)`, the unit of work's
`tx.journal(case, kind, …)` and casework's `self._done(tx, case, kind, …)`."""
METHODS = {"journal", "_done"}
"""Writers called as methods (a function of the same name elsewhere is something else)."""


class _Session:
    """Just enough of a session for the journal: what it was asked to add."""

    def __init__(self) -> None:
        self.added: list[Any] = []

    def add(self, row: Any) -> None:
        self.added.append(row)


def _case() -> Case:
    return Case(id=7, ref="C-7", title="t", category="other", severity=3)


def test_the_journal_refuses_a_kind_that_is_not_a_timeline_kind() -> None:
    session = _Session()
    with pytest.raises(ValueError, match="shrugged"):
        add_timeline(session, _case(), AT, "shrugged", "Nothing happened")
    assert session.added == []


def test_the_journal_stores_a_kind_as_its_plain_text() -> None:
    session = _Session()
    add_timeline(session, _case(), AT, TimelineKind.MERGED_IN, "Merged in")
    (row,) = session.added
    assert row.kind == "merged_in"
    assert type(row.kind) is str


def _kind_nodes(tree: ast.AST) -> list[ast.expr]:
    """The kind of every timeline line written in `tree`: the kind argument of the journal's
    writers, and the first item of every tuple appended to a plan's `events`."""
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name in METHODS and not isinstance(func, ast.Attribute):
            continue
        if name in KIND_ARGUMENT and len(node.args) > KIND_ARGUMENT[name]:
            found.append(node.args[KIND_ARGUMENT[name]])
        elif (
            name == "append"
            and isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Attribute)
            and func.value.attr == "events"
            and node.args
            and isinstance(node.args[0], ast.Tuple)
        ):
            found.append(node.args[0].elts[0])
    return found


def _written_kinds() -> dict[str, list[str]]:
    """Each kind written in app/ and data/, spelled as text or as `TimelineKind.NAME`, with
    where; anything else but a parameter passed on as its source, so the test names it."""
    written: dict[str, list[str]] = {}
    for package in ("app", "data"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in _kind_nodes(tree):
                if isinstance(node, ast.Name):
                    continue  # a writer passing its own `kind: TimelineKind` on (mypy checks)
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    kind = node.value
                elif (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "TimelineKind"
                ):
                    kind = TimelineKind[node.attr].value
                else:
                    kind = f"<{ast.unparse(node)}>"
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                written.setdefault(kind, []).append(where)
    return written


def test_every_kind_the_code_writes_is_a_timeline_kind() -> None:
    written = _written_kinds()
    members = {kind.value for kind in TimelineKind}
    assert {kind: where for kind, where in written.items() if kind not in members} == {}
    # The scan finds the writers it guards: the services' and the engine's plan events.
    assert {"opened", "paged", "tipline", "postmortem", "exhausted", "catch_up"} <= set(written)


def test_every_timeline_kind_is_written_somewhere() -> None:
    assert {kind.value for kind in TimelineKind} - set(_written_kinds()) == set()

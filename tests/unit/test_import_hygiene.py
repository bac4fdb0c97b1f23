"""The layout is the architecture: data/ knows nothing of screens or services, and widgets/
never reach for the database or the services."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from data.schema import TABLE_MODULES

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "data": ("app", "widgets", "textual"),
    "widgets": ("app", "data.db", "data.queries", *TABLE_MODULES, "sqlmodel", "sqlalchemy"),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_in_their_layer(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in _imports(path):
            for banned in FORBIDDEN[package]:
                if name == banned or name.startswith(banned + "."):
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def _all_imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """Every module of ours `path` imports: at the top, inside functions and behind
    `TYPE_CHECKING` alike (a cycle there still ties two modules into one)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found.update(name if name in modules else node.module for name in names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    ours = set()
    for name in found:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != module:
            ours.add(name)
    return ours


def test_no_import_cycles_anywhere() -> None:
    modules: dict[str, Path] = {}
    for package in ("app", "data", "widgets", "themes"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    graph = {name: _all_imports(path, name, set(modules)) for name, path in modules.items()}
    cycles = [sorted(group) for group in _strongly_connected(graph) if len(group) > 1]
    assert cycles == []


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit to meet)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(group)
    return groups


def test_every_module_that_declares_tables_is_in_the_schema() -> None:
    """A database is created, migrated and searched for sealed values from
    `data.schema.every_table()`, which imports `TABLE_MODULES`: a table declared elsewhere
    would be missing from a new database (commands no longer import every table module)."""
    from data.schema import TABLE_MODULES

    declaring = set()
    for path in sorted((ROOT / "data").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                keyword.arg == "table" for keyword in node.keywords
            ):
                relative = path.relative_to(ROOT).with_suffix("")
                declaring.add(".".join(relative.parts))
    assert declaring == set(TABLE_MODULES)

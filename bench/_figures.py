"""Figures a benchmark reports, kept apart from the text it prints.

Each benchmark prints its own lines for a person and also calls `record` for every figure
worth keeping. When `python -m bench` runs it, the figures go to the JSON-lines file named
by `VIGIL_BENCH_FIGURES`, and the README's performance table is written from them, so the
table always says what the code measured last, on which machine, and when.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

FIGURES_FILE = "VIGIL_BENCH_FIGURES"
"""Environment variable: where `record` appends figures (unset: nowhere)."""


@dataclass(frozen=True)
class Figure:
    """One measured value, with the yardstick it is read against.

    `baseline` is a value measured in the same run in the same unit (an empty app's first
    paint, a bare commit, `python -c pass`), so `ratio` compares across machines; `target`
    is the design's goal in words, and `met` whether this run met it (None: no target).
    """

    bench: str
    figure: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline <= 0:
            return None
        return self.value / self.baseline


def record(
    bench: str,
    figure: str,
    value: float,
    unit: str,
    *,
    baseline: float | None = None,
    baseline_name: str = "",
    target: str = "",
    met: bool | None = None,
) -> None:
    """Keep one figure for the performance table, if this run is collecting them."""
    path = os.environ.get(FIGURES_FILE)
    if not path:
        return
    found = Figure(bench, figure, value, unit, baseline, baseline_name, target, met)
    with Path(path).open("a", encoding="utf-8") as sink:
        sink.write(json.dumps(asdict(found)) + "\n")


def read_figures(path: Path) -> list[Figure]:
    """The figures recorded in a JSON-lines file, in the order they were measured."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Figure(**json.loads(line)) for line in lines if line.strip()]

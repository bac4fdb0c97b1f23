"""The performance table is written from recorded figures, between the README's markers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.__main__ import BEGIN, END, table, write_readme
from bench._figures import FIGURES_FILE, Figure, read_figures, record

WHEN = datetime(2026, 12, 6, 7, 30, tzinfo=UTC)


def test_recorded_figures_come_back_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = tmp_path / "figures.jsonl"
    monkeypatch.setenv(FIGURES_FILE, str(sink))
    record("engine", "burst", 120.0, "ms", baseline=6.0, baseline_name="bare", met=True)
    record("cli", "help", 40.0, "ms")
    found = read_figures(sink)
    assert [f.figure for f in found] == ["burst", "help"]
    assert found[0].ratio == pytest.approx(20.0)
    assert found[1].ratio is None


def test_nothing_is_recorded_unless_a_run_collects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(FIGURES_FILE, raising=False)
    monkeypatch.chdir(tmp_path)
    record("engine", "burst", 1.0, "ms")
    assert list(tmp_path.iterdir()) == []


def test_the_table_names_machine_date_baseline_ratio_and_verdict() -> None:
    figures = [
        Figure("engine", "burst", 300.0, "ms", 10.0, "a bare commit", "< 250 ms", False),
        Figure("rotations", "a month", 1.5, "ms"),
    ]
    text = table(figures, "full", WHEN, "a test machine")
    assert "on 2026-12-06 (07:30 UTC): a test machine." in text
    assert (
        "| engine | burst | 300 ms | a bare commit: 10.0 ms | 30.00x | < 250 ms | **no** |" in text
    )
    assert "| rotations | a month | 1.50 ms |  |  |  |  |" in text


def test_the_readme_table_is_replaced_between_its_markers_only(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{BEGIN}\nold table\n{END}\nafter\n")
    write_readme(readme, "new table")
    assert readme.read_text() == f"# Title\n\nbefore\n{BEGIN}\nnew table\n{END}\nafter\n"


def test_a_readme_without_markers_is_refused_and_left_alone(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n")
    with pytest.raises(SystemExit, match="markers"):
        write_readme(readme, "new table")
    assert readme.read_text() == "# Title\n"

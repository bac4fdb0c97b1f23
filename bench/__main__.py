"""Every benchmark in one run, and the README's performance table written from its figures.

    uv run python -m bench                      # the full run (a few minutes), table printed
    uv run python -m bench --readme README.md   # the same, and the README's table replaced
    uv run python -m bench --scale ci           # small sizes: checks they all still work

Each benchmark runs in a fresh process (so memory and imports are its own), prints what it
prints for a person, and records its figures (`bench._figures`). The table that comes out
names the machine, the date, and beside each figure its baseline from the same run and the
ratio, so a figure read later can be told from one measured elsewhere. PostgreSQL is
measured too when VIGIL_TEST_PG is set. A benchmark that misses a target still counts as
run (its figures say so); one that crashes or records nothing fails the whole run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench._figures import FIGURES_FILE, Figure, read_figures

BEGIN = "<!-- performance table: written by `python -m bench --readme README.md` -->"
END = "<!-- end of performance table -->"


@dataclass(frozen=True)
class Bench:
    """A benchmark module and its arguments at each scale."""

    module: str
    ci: Sequence[str]
    full: Sequence[str]


BENCHES = [
    Bench("bench_rotations", ["--runs", "1"], ["--runs", "5"]),
    Bench("bench_queue_widget", ["--runs", "1", "--updates", "20"], ["--runs", "5"]),
    Bench(
        "bench_engine",
        ["--sizes", "200", "--spreads", "0,1"],
        ["--sizes", "1000,10000", "--spreads", "0,1,10"],
    ),
    Bench(
        "bench_outbox",
        ["--pages", "100", "--contacts", "10", "--rounds", "2", "--every", "0.5", "--drip", "1"],
        [],
    ),
    Bench(
        "bench_console",
        ["--sizes", "300", "--resolved", "2000", "--runs", "1", "--acks", "3", "--notes", "1"],
        ["--sizes", "10000,100000", "--resolved", "1000000", "--runs", "3"],
    ),
    Bench(
        "bench_cli",
        ["--runs", "1", "--open", "300", "--resolved", "2000"],
        ["--runs", "5", "--open", "100000", "--resolved", "1000000"],
    ),
    Bench("bench_serve", ["--events", "100", "--clients", "5"], ["--events", "3000"]),
]


def run_bench(bench: Bench, scale: str, figures_file: Path) -> list[Figure]:
    """Runs one benchmark in its own process; its figures, or SystemExit if it broke."""
    arguments = list(bench.ci if scale == "ci" else bench.full)
    print(f"\n== {bench.module} {' '.join(arguments)}", flush=True)
    figures_file.unlink(missing_ok=True)
    env = {**os.environ, FIGURES_FILE: str(figures_file)}
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{bench.module}", *arguments], env=env, check=False
    )
    if done.returncode not in (0, 1):  # 1: a target missed, which the figures record
        raise SystemExit(f"bench: {bench.module} failed with exit status {done.returncode}")
    found = read_figures(figures_file)
    if not found:
        raise SystemExit(f"bench: {bench.module} recorded no figures")
    return found


def machine(load: float) -> str:
    """The machine the figures come from, in one line; `load` is the load average when the
    run began (other work on the machine slows every figure)."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    parts = [
        f"{model}, {os.cpu_count()} cores (load average {load:.1f} at the start)",
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()}",
        f"SQLite {sqlite3.sqlite_version}",
    ]
    if version := postgres_version():
        parts.append(f"PostgreSQL {version} on the same machine")
    return "; ".join(parts)


def postgres_version() -> str | None:
    url = os.environ.get("VIGIL_TEST_PG")
    if not url:
        return None
    from sqlalchemy import create_engine, text

    from data.db import normalise_url

    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as connection:
            return str(connection.execute(text("SHOW server_version")).scalar_one()).split()[0]
    finally:
        engine.dispose()


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(figures: list[Figure], scale: str, when: datetime, where: str) -> str:
    """The performance table in Markdown, with where and when it was measured."""
    command = "python -m bench" + (" --scale ci" if scale == "ci" else "")
    lines = [
        f"Measured by `{command}` on {when:%Y-%m-%d} ({when:%H:%M} UTC): {where}.",
        "",
        "| Benchmark | Figure | Value | Baseline (same run) | Ratio | Target | Met |",
        "|---|---|--:|---|--:|---|:-:|",
    ]
    for figure in figures:
        baseline = ""
        if figure.baseline is not None:
            baseline = f"{figure.baseline_name}: {_number(figure.baseline)} {figure.unit}"
        ratio = figure.ratio
        met = {True: "yes", False: "**no**", None: ""}[figure.met]
        lines.append(
            f"| {figure.bench} | {figure.figure} | {_number(figure.value)} {figure.unit} "
            f"| {baseline} | {'' if ratio is None else f'{ratio:.2f}x'} "
            f"| {figure.target} | {met} |"
        )
    return "\n".join(lines)


def write_readme(readme: Path, text: str) -> None:
    """Replaces the table between the README's markers (both must be there)."""
    content = readme.read_text(encoding="utf-8")
    start, end = content.find(BEGIN), content.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"bench: {readme} lacks the performance table's markers")
    content = content[: start + len(BEGIN)] + "\n" + text + "\n" + content[end:]
    readme.write_text(content, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["ci", "full"], default="full")
    parser.add_argument(
        "--only", help="comma-separated benchmark modules, e.g. bench_engine,bench_cli"
    )
    parser.add_argument("--readme", type=Path, help="write the table into this README")
    args = parser.parse_args(argv)
    chosen = BENCHES
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {bench.module for bench in BENCHES}
        if unknown:
            known = ", ".join(bench.module for bench in BENCHES)
            parser.error(f"--only: unknown {', '.join(sorted(unknown))}; expected some of {known}")
        chosen = [bench for bench in BENCHES if bench.module in wanted]
    when, load = datetime.now(UTC), os.getloadavg()[0]
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as folder:
        for bench in chosen:
            figures += run_bench(bench, args.scale, Path(folder) / "figures.jsonl")
    text = table(figures, args.scale, when, machine(load))
    print("\n" + text)
    if args.readme:
        write_readme(args.readme, text)
        print(f"\nWrote the table into {args.readme}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The command line's start-up, as a person feels it: whole processes, timed from outside.

    uv run python -m bench.bench_cli [--runs 5] [--open 100000] [--resolved 1000000]

Each command runs `--runs` times after one warm-up run, and the median wall time is kept,
beside `python -c pass` and `python -c "import sqlmodel"`, which are timed turn about with
the commands, once a round (the machine is shared and its load drifts: a baseline timed
apart from the commands, even a minute apart, moved their ratios by a tenth). Targets:

- `vigil --help` within 0.05 s of `python -c pass` (argparse alone, nothing heavy);
- `vigil cases`, `show`, `ack` and `page` at most 1.3 x `python -c "import sqlmodel"`;
- on the large desk (`--open` open and `--resolved` resolved cases, built once and cached
  by `bench.bench_console`) each at most 1.2 x its time on the 50-case demo desk.

Every process runs with bytecode caches, as an installed Python has them: the warm-up writes
any that are missing, even where the environment sets PYTHONDONTWRITEBYTECODE (timing the
compiler on every run would measure the machine's setting, not the command).

SQLite only: the desks are copied to a temporary folder first, so the acknowledgements and
pages the benchmark makes never reach a cached desk. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

from sqlmodel import col, func, select

from app.core.clock import SystemClock
from app.services.cases import CaseService
from bench._figures import record
from bench.bench_console import SUPERVISOR, DeskCache, DeskSize, say
from data.db import Database
from data.models import Case

PYTHON = sys.executable
VIGIL = str(Path(sys.executable).with_name("vigil"))
HELP_MARGIN = 0.05
COMMAND_RATIO = 1.3
DESK_RATIO = 1.2
DEMO_SUPERVISOR = "dana"


def process_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment the timed processes run in: this one, with bytecode caches written."""
    return {name: value for name, value in environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def wall_time(argv: Sequence[str], env: dict[str, str]) -> float:
    started = perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return perf_counter() - started


PASS = "python -c pass"
IMPORT_SQLMODEL = 'python -c "import sqlmodel"'
BASELINES: dict[str, Sequence[str]] = {
    PASS: [PYTHON, "-c", "pass"],
    IMPORT_SQLMODEL: [PYTHON, "-c", "import sqlmodel"],
}


def round_about(
    commands: Mapping[str, Callable[[int], Sequence[str]]], runs: int, env: dict[str, str]
) -> dict[str, list[float]]:
    """Wall times of `runs` rounds after a warm-up round: each round runs every command once
    (run `i` of a command is its `make_argv(i)`), then each baseline in this process's own
    environment, so a drift in the machine's load reaches commands and baselines alike."""
    base_env = process_env(os.environ)
    times: dict[str, list[float]] = {name: [] for name in (*commands, *BASELINES)}
    for i in range(runs + 1):
        for name, make_argv in commands.items():
            took = wall_time(make_argv(i), env)
            if i:
                times[name].append(took)
        for name, argv in BASELINES.items():
            took = wall_time(argv, base_env)
            if i:
                times[name].append(took)
    return times


def triggered_refs(url: str, actor: str, count: int) -> list[str]:
    """`count` triggered cases to show and acknowledge, opened first where there are fewer."""
    db = Database.open(url, migrate=False)
    try:
        service = CaseService(db, SystemClock())
        with db.read() as session:
            have = session.exec(select(func.count()).where(Case.status == "triggered")).one()
        for number in range(count - have):
            service.open_case(actor, title=f"Benchmark case {number}", category="other", severity=4)
        with db.read() as session:
            statement = (
                select(Case.ref)
                .where(Case.status == "triggered")
                .order_by(col(Case.id).desc())
                .limit(count)
            )
            return list(session.exec(statement).all())
    finally:
        db.dispose()


@dataclass
class DeskTimes:
    label: str
    samples: dict[str, list[float]]

    def median(self, name: str) -> float:
        return statistics.median(self.samples[name])

    def over(self, name: str, baseline: str) -> float:
        return self.median(name) - self.median(baseline)

    def ratio(self, name: str, baseline: str) -> float:
        return self.median(name) / self.median(baseline)


def time_desk(label: str, url: str, actor: str, runs: int) -> DeskTimes:
    """Each command's times on the desk at `url`, run by supervisor `actor`, with the
    baselines' taken turn about with them."""
    env = {**process_env(os.environ), "VIGIL_DB": url, "VIGIL_USER": actor}
    refs = triggered_refs(url, actor, runs + 1)
    commands: dict[str, Callable[[int], Sequence[str]]] = {
        "vigil --help": lambda _i: [VIGIL, "--help"],
        "vigil cases": lambda _i: [VIGIL, "cases"],
        "vigil show": lambda i: [VIGIL, "show", refs[i]],
        "vigil ack": lambda i: [VIGIL, "ack", refs[i]],
        "vigil page": lambda i: [
            VIGIL,
            "page",
            "--title",
            f"Benchmark page {i}",
            "--category",
            "other",
            "--severity",
            "4",
        ],
    }
    return DeskTimes(label, round_about(commands, runs, env))


def demo_desk(folder: Path) -> str:
    url = f"sqlite:///{folder / 'demo.db'}"
    env = {**process_env(os.environ), "VIGIL_DB": url}
    subprocess.run([VIGIL, "demo", "--no-console"], env=env, capture_output=True, check=True)
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per command (median)")
    parser.add_argument("--open", type=int, default=100_000, help="open cases, large desk")
    parser.add_argument("--resolved", type=int, default=1_000_000, help="resolved, large desk")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "vigil-bench-console",
        help="folder of the cached SQLite desks (shared with bench.bench_console)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.open < args.runs + 1 or args.resolved < 0:
        parser.error("--runs: at least 1; --open: more than --runs; --resolved: at least 0")

    cached = DeskCache(args.cache, rebuild=False).sqlite_url(DeskSize(args.open, args.resolved))
    with tempfile.TemporaryDirectory(prefix="vigil-bench-cli-") as scratch:
        folder = Path(scratch)
        large = folder / "large.db"
        shutil.copyfile(cached.removeprefix("sqlite:///"), large)
        desks = [
            time_desk("demo desk", demo_desk(folder), DEMO_SUPERVISOR, args.runs),
            time_desk(
                f"large desk ({args.open:,} open, {args.resolved:,} resolved)",
                f"sqlite:///{large}",
                SUPERVISOR,
                args.runs,
            ),
        ]

    failed = False
    small, big = desks
    for baseline in BASELINES:
        say(
            f"{baseline:<28} {small.median(baseline) * 1000:5.0f} ms beside the demo desk, "
            f"{big.median(baseline) * 1000:5.0f} ms beside the large desk"
        )
    say("")
    say(f"{'command':<14} {'demo desk':>10} {'large desk':>11}   target (each desk's baseline)")
    for name in (name for name in small.samples if name not in BASELINES):
        if name == "vigil --help":
            worst = max(desks, key=lambda desk: desk.over(name, PASS))
            baseline, baseline_name = PASS, "python -c pass"
            ok = worst.over(name, PASS) <= HELP_MARGIN
            target = (
                f"+{worst.over(name, PASS) * 1000:.0f} ms over python -c pass "
                f"(<= {HELP_MARGIN * 1000:.0f})"
            )
            recorded_target = f"<= {HELP_MARGIN * 1000:.0f} ms over the baseline"
        else:
            worst = max(desks, key=lambda desk: desk.ratio(name, IMPORT_SQLMODEL))
            baseline, baseline_name = IMPORT_SQLMODEL, "python -c 'import sqlmodel'"
            growth = big.median(name) / small.median(name)
            ok = worst.ratio(name, IMPORT_SQLMODEL) <= COMMAND_RATIO and growth <= DESK_RATIO
            target = (
                f"{worst.ratio(name, IMPORT_SQLMODEL):.2f} x import sqlmodel "
                f"(<= {COMMAND_RATIO}), large/demo {growth:.2f} (<= {DESK_RATIO})"
            )
            recorded_target = f"<= {COMMAND_RATIO}x the baseline; large desk <= {DESK_RATIO}x demo"
        record(
            "command line",
            f"{name}, worst desk",
            worst.median(name) * 1000,
            "ms",
            baseline=worst.median(baseline) * 1000,
            baseline_name=baseline_name,
            target=recorded_target,
            met=ok,
        )
        failed |= not ok
        say(
            f"{name:<14} {small.median(name) * 1000:8.0f} ms {big.median(name) * 1000:8.0f} ms   "
            f"{target}{'' if ok else '  MISSED'}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

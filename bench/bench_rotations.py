"""How fast the schedule math answers, for a follow-the-sun schedule of three layers.

Prints the time to compute a month of effective shifts (three layers in Sydney, New York and
Los Angeles, one restricted to Tue-Sat, 40 overrides, holiday cover) and the time to say who
is on call at 10,000 random instants of that month: through `on_call_many` (one computation,
one bisection per instant) and, for comparison, `on_call` asked one instant at a time.
Run: `uv run python bench/bench_rotations.py [--runs N] [--seed S]`.
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from time import perf_counter

from app.rules.rotations import (
    HolidaySpec,
    OverrideSpec,
    RotationSpec,
    ScheduleSpec,
    on_call,
    on_call_many,
    parse_days,
    parse_hours,
    schedule_shifts,
)
from bench._figures import record

MONTH_START = datetime(2026, 10, 1, tzinfo=UTC)  # spans the Sydney spring-forward change
MONTH = timedelta(days=31)
INSTANTS = 10_000
ONE_BY_ONE = 1_000
HANDLES = ("ana", "ben", "cat", "dan", "eve", "fay", "gus", "hal")


def build_schedule(rng: random.Random) -> ScheduleSpec:
    layers = (
        RotationSpec(
            "syd-day",
            "Australia/Sydney",
            timedelta(days=1),
            time(8),
            date(2026, 1, 5),
            ("ana", "ben", "cat"),
            hours=parse_hours("08:00-20:00"),
        ),
        RotationSpec(
            "ny-8h",
            "America/New_York",
            timedelta(hours=8),
            time(0),
            date(2026, 1, 5),
            ("dan", "eve", "fay", "gus"),
        ),
        RotationSpec(
            "la-week",
            "America/Los_Angeles",
            timedelta(days=7),
            time(9),
            date(2026, 1, 6),
            ("hal", "ana"),
            days=parse_days(["tue", "wed", "thu", "fri", "sat"]),
            hours=parse_hours("09:00-17:00"),
        ),
    )
    overrides = []
    for _ in range(40):
        opens = MONTH_START + timedelta(minutes=rng.randrange(int(MONTH.total_seconds() // 60)))
        length = timedelta(minutes=rng.randrange(30, 36 * 60))
        overrides.append(OverrideSpec(rng.choice(HANDLES), opens, opens + length))
    return ScheduleSpec(
        "follow-the-sun",
        layers,
        overrides=tuple(overrides),
        holidays=(HolidaySpec(date(2026, 10, 5), "Labour Day", "AU-NSW"),),
        holiday_region="AU-NSW",
        holiday_cover="ben",
        timezone="Australia/Sydney",
    )


def timed(runs: int, work: Callable[[], object]) -> tuple[float, float]:
    """Median and best wall time of `runs` calls, in seconds."""
    times = []
    for _ in range(runs):
        started = perf_counter()
        work()
        times.append(perf_counter() - started)
    return statistics.median(times), min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="repetitions per figure")
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    schedule = build_schedule(rng)
    month_end = MONTH_START + MONTH
    span = int(MONTH.total_seconds())
    instants = [MONTH_START + timedelta(seconds=rng.randrange(span)) for _ in range(INSTANTS)]

    shifts = schedule_shifts(schedule, MONTH_START, month_end)
    median, best = timed(args.runs, lambda: schedule_shifts(schedule, MONTH_START, month_end))
    print(
        f"month of shifts ({len(shifts)} shifts): {median * 1000:.1f} ms (best {best * 1000:.1f})"
    )

    record("rotations", f"a month of shifts ({len(shifts)} shifts)", median * 1000, "ms")
    median, best = timed(args.runs, lambda: on_call_many(schedule, instants))
    print(
        f"on_call_many, {INSTANTS:,} instants: {median * 1000:.1f} ms (best {best * 1000:.1f}), "
        f"{median / INSTANTS * 1e6:.1f} us per instant"
    )

    record("rotations", "who is on call, per instant (many at once)", median / INSTANTS * 1e6, "µs")
    sample = instants[:ONE_BY_ONE]
    median, best = timed(max(1, args.runs // 2), lambda: [on_call(schedule, at) for at in sample])
    print(
        f"on_call one at a time, {ONE_BY_ONE:,} instants: {median * 1000:.0f} ms "
        f"(best {best * 1000:.0f}), {median / ONE_BY_ONE * 1000:.2f} ms per instant"
    )
    record(
        "rotations",
        "who is on call, per instant (one at a time)",
        median / ONE_BY_ONE * 1e6,
        "µs",
    )


if __name__ == "__main__":
    main()

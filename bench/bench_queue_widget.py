"""How fast the queue widget paints, beside an empty Textual app in the same process.

Prints, for 1,000 / 10,000 / 100,000 rows served through the window protocol, the time
from constructing a headless app to the first frame that shows queue rows, and its ratio
to an empty app's first frame, two ways: the app answers the table's first
`WindowNeeded` ("asked"), or passes the first page with the count at mount ("given"),
which saves the round trip and the extra frames. Then the cost of `update_row` for one
case: the call itself, and the time until the repainted frame is out (which includes
Textual's frame pacing). Times end when the frame is composed (headless apps write
nothing to a terminal). Run: `uv run python -m bench.bench_queue_widget [--runs N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from time import perf_counter

from textual.app import App, ComposeResult

from bench._figures import record
from bench._timing import FrameWatch, empty_app_first_paint, percentile
from widgets.queue_table import QueueTable
from widgets.views import QueueRow

SIZE = (160, 48)
ROW_COUNTS = (1_000, 10_000, 100_000)
NOW = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
FIRST_PAGE = 100


def make_rows(count: int) -> list[QueueRow]:
    return [
        QueueRow(
            case_id=index + 1,
            ref=f"ESC-{index + 1:06d}",
            severity=index % 4 + 1,
            category=("emergency", "csea", "threat", "account")[index % 4],
            title=f"Escalation {index + 1}: partner request awaiting review",
            status=("triggered", "acknowledged")[index % 2],
            assignee=("amara", "bo", None)[index % 3],
            escalation_step=index % 3 + 1,
            escalation_round=1,
            created_at=NOW - timedelta(minutes=index),
            sla_due_at=NOW + timedelta(seconds=600 - index * 7),
            paged_to_me=index % 11 == 0,
        )
        for index in range(count)
    ]


class QueueApp(App[None]):
    """Serves the table's window requests from memory, as a screen would from the database."""

    def __init__(self, rows: Sequence[QueueRow], *, give_first_page: bool = False) -> None:
        super().__init__()
        self.rows = rows
        self.give_first_page = give_first_page

    def compose(self) -> ComposeResult:
        yield QueueTable(now=NOW)

    def shows_content(self) -> bool:
        """Rows are cached, so the frame just composed painted them."""
        return self.query_one(QueueTable).cached_row_count > 0

    def on_mount(self) -> None:
        table = self.query_one(QueueTable)
        table.set_total(len(self.rows))
        table.focus()
        if self.give_first_page:
            table.set_window(0, self.rows[:FIRST_PAGE])

    def on_queue_table_window_needed(self, message: QueueTable.WindowNeeded) -> None:
        end = message.offset + message.limit
        message.table.set_window(message.offset, self.rows[message.offset : end])


async def first_paint_queue(rows: Sequence[QueueRow], give_first_page: bool) -> float:
    since = perf_counter()
    app = QueueApp(rows, give_first_page=give_first_page)
    watch = FrameWatch(app, app.shows_content, since=since)
    await app.run_async(headless=True, size=SIZE)
    return watch.first_paint


async def update_row_costs(rows: Sequence[QueueRow], updates: int) -> tuple[list[float], ...]:
    """Per update: the `update_row` call alone, and until its frame has been written."""
    app = QueueApp(rows)
    watch = FrameWatch(app, app.shows_content, stay=True)
    calls: list[float] = []
    frames: list[float] = []
    async with app.run_test(headless=True, size=SIZE) as pilot:
        while not watch.first_paint:
            await pilot.pause()
        table = app.query_one(QueueTable)
        for version in range(2, updates + 2):
            row = rows[version % 40]
            changed = dataclasses.replace(row, title=f"{row.title} (v{version})", version=version)
            watch.frame_out.clear()
            start = perf_counter()
            table.update_row(changed)
            calls.append(perf_counter() - start)
            await watch.frame_out.wait()
            frames.append(perf_counter() - start)
    return calls, frames


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median shown)")
    parser.add_argument("--updates", type=int, default=200, help="update_row samples")
    args = parser.parse_args(argv)

    datasets = {count: make_rows(count) for count in ROW_COUNTS}
    ways = {"asked": False, "given": True}
    # Warm up once so imports and CSS parsing are not charged to whichever runs first.
    asyncio.run(empty_app_first_paint(SIZE))
    asyncio.run(first_paint_queue(datasets[ROW_COUNTS[0]], give_first_page=False))

    empty_runs: list[float] = []
    queue_runs: dict[tuple[int, str], list[float]] = {}
    for _ in range(args.runs):  # interleaved, so drift in the machine hits all alike
        empty_runs.append(asyncio.run(empty_app_first_paint(SIZE)))
        for count, rows in datasets.items():
            for way, give in ways.items():
                paint = asyncio.run(first_paint_queue(rows, give_first_page=give))
                queue_runs.setdefault((count, way), []).append(paint)

    empty = statistics.median(empty_runs)
    print(f"First paint, headless {SIZE[0]}x{SIZE[1]}, median of {args.runs} runs")
    print(f"  {'empty Textual app':<34}{empty * 1000:9.1f} ms")
    for (count, way), runs in queue_runs.items():
        queue = statistics.median(runs)
        label = f"queue, {count:,} rows, first page {way}"
        print(f"  {label:<34}{queue * 1000:9.1f} ms   {queue / empty:5.2f}x empty")
        record(
            "queue widget",
            f"first paint, {count:,} rows, first page {way}",
            queue * 1000,
            "ms",
            baseline=empty * 1000,
            baseline_name="an empty Textual app",
        )

    calls, frames = asyncio.run(update_row_costs(datasets[ROW_COUNTS[-1]], args.updates))
    record(
        "queue widget",
        f"update_row on a visible case, {ROW_COUNTS[-1]:,} rows, to frame out (p99)",
        percentile(frames, 99) * 1000,
        "ms",
    )
    print(f"update_row on a visible case, {ROW_COUNTS[-1]:,} rows, {args.updates} updates")
    print(
        f"  call            median {statistics.median(calls) * 1e6:7.1f} µs"
        f"   p99 {percentile(calls, 99) * 1e6:7.1f} µs"
    )
    print(
        f"  to frame out    median {statistics.median(frames) * 1000:7.2f} ms"
        f"   p99 {percentile(frames, 99) * 1000:7.2f} ms"
    )


if __name__ == "__main__":
    main()

"""Opening the console for a measurement, and the memory probe run in a fresh process.

    python -m bench._console_probe URL|empty FOLDER

prints, as JSON, the resident memory after the first paint (and, for a console, after
every row of its queue has been loaded). It imports only what is measured (the console
only when it is the one measured), so the figure is the console's or Textual's, not the
benchmark's.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bench._timing import FrameWatch, empty_app_first_paint

if TYPE_CHECKING:
    from app.console import VigilApp
    from data.db import Database

SIZE = (160, 48)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""The benchmark desk's present: every stored time is relative to it, and the console's
clock stands still at it."""
VIEWER = "ana"


def open_console(db: Database, folder: Path) -> VigilApp:
    """The console of the desk's viewer, without its engine or anyone's settings file."""
    from app.console import build_app
    from app.core.clock import FakeClock

    app = build_app(
        db,
        FakeClock(NOW),
        VIEWER,
        engine=False,
        settings_file=folder / "no-console-settings.toml",
        cursor_blink=False,
    )
    if app is None:
        raise RuntimeError(f"bench desk: {VIEWER!r} is not an active responder")
    return app


def shows_queue(app: VigilApp) -> Callable[[], bool]:
    """Whether the queue's visible lines all hold rows (no placeholders left)."""
    from widgets.queue_table import QueueTable

    def screen_filled() -> bool:
        tables = app.query(QueueTable)
        if not tables:
            return False
        table = tables.first()
        top = table.scroll_offset.y
        visible = min(table.total - top, table.scrollable_content_region.height - 1)
        return visible > 0 and all(
            table.row_at(index) is not None for index in range(top, top + visible)
        )

    return screen_filled


def rss_kb() -> int:
    """Resident memory now, from /proc (Linux); elsewhere the peak so far."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


async def memory_probe(url: str | None, folder: Path) -> dict[str, int]:
    """RSS after the first paint, and after scrolling through (so loading) every row of
    the queue. With no URL, an empty Textual app's RSS at its first frame."""
    if url is None:
        await empty_app_first_paint(SIZE)
        return {"first_paint_kb": rss_kb()}
    from data.db import Database
    from widgets.queue_table import QueueTable

    db = Database.open(url, migrate=False)
    app = open_console(db, folder)
    watch = FrameWatch(app, shows_queue(app), stay=True)
    figures: dict[str, int] = {}
    async with app.run_test(size=SIZE) as pilot:
        while not watch.first_paint:
            await pilot.pause()
        await app.workers.wait_for_complete()
        figures["first_paint_kb"] = rss_kb()
        table = app.query_one(QueueTable)
        # The table asks for its window plus a margin each side: a step of a window apart
        # leaves no row unasked.
        step = table.window_margin
        for top in range(0, table.total + step, step):
            table.scroll_to(y=top, animate=False)
            await pilot.pause()
            await app.workers.wait_for_complete()
        await pilot.pause()
        figures["cached_rows"] = table.cached_row_count
        figures["paged_kb"] = rss_kb()
    db.dispose()
    return figures


if __name__ == "__main__":
    target, folder = sys.argv[1], Path(sys.argv[2])
    found = asyncio.run(memory_probe(None if target == "empty" else target, folder))
    print(json.dumps(found))

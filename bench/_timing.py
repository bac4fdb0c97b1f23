"""Frame timing shared by the benchmarks: when a headless app composes the frame that
shows what is being waited for.

Headless apps write nothing to a terminal, so a frame counts as out once it is composed.
The yardstick is Textual's own first frame: an empty app, timed the same way in the same
process, so figures compare across machines as ratios.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

from rich.console import RenderableType
from textual.app import App
from textual.screen import Screen


class FrameWatch:
    """Watches the frames one app composes.

    `first_paint` is the time from `since` (default: now) to the first frame composed
    while `shows_content()` held; unless `stay`, the app exits then. `frame_out` is set at
    every frame (clear it to wait for the next one), and `frame_where` waits for a frame
    composed while some condition held.
    """

    def __init__(
        self,
        app: App[Any],
        shows_content: Callable[[], bool] = lambda: True,
        *,
        since: float | None = None,
        stay: bool = False,
    ) -> None:
        self.app = app
        self.started = perf_counter() if since is None else since
        self.shows_content = shows_content
        self.stay = stay
        self.first_paint = 0.0
        self.frame_out = asyncio.Event()
        self._awaited: list[tuple[Callable[[], bool], asyncio.Future[float]]] = []
        display = app._display

        def timed_display(screen: Screen[Any], renderable: RenderableType | None) -> None:
            display(screen, renderable)
            # Inside `batch_update` Textual holds frames back: nothing reached the screen.
            if renderable is not None and not app._batch_count:
                self._frame(perf_counter())

        app._display = timed_display  # type: ignore[method-assign]

    def frame_where(self, condition: Callable[[], bool]) -> asyncio.Future[float]:
        """The `perf_counter` time of the first frame composed while `condition()` held
        (checked at each frame from now on). Call it on the app's event loop."""
        found: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._awaited.append((condition, found))
        return found

    def _frame(self, moment: float) -> None:
        self.frame_out.set()
        for entry in list(self._awaited):
            condition, found = entry
            if found.done():
                self._awaited.remove(entry)
            elif condition():
                found.set_result(moment)
                self._awaited.remove(entry)
        if not self.first_paint and self.shows_content():
            self.first_paint = moment - self.started
            if not self.stay:
                self.app.exit()


async def empty_app_first_paint(size: tuple[int, int]) -> float:
    """Seconds from constructing an empty Textual app to its first frame."""
    since = perf_counter()
    app: App[None] = App()
    watch = FrameWatch(app, since=since)
    await app.run_async(headless=True, size=size)
    return watch.first_paint


def percentile(samples: Sequence[float], percent: int) -> float:
    """The `percent`th percentile (inclusive method: never beyond the worst sample)."""
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[percent - 1]

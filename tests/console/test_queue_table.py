"""The virtual priority-queue table, driven through Pilot with 100,000 in-memory rows."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from rich.color import Color as RichColor
from rich.segment import Segment
from textual.app import App, ComposeResult
from textual.color import Color
from textual.geometry import Region
from textual.message import Message
from textual.pilot import Pilot
from textual.strip import Strip

from widgets.queue_table import QueueTable, format_countdown, format_open_for
from widgets.views import QueueRow, SeekAnchor

NOW = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
TOTAL = 100_000


def make_row(index: int, **changes: object) -> QueueRow:
    """Row `index` of the queue: case id index + 1, ref ESC-{index + 1}."""
    row = QueueRow(
        case_id=index + 1,
        ref=f"ESC-{index + 1:06d}",
        severity=index % 4 + 1,
        category="emergency",
        title=f"Case {index + 1} needs attention",
        status="triggered",
        assignee="amara",
        escalation_step=1,
        escalation_round=1,
        created_at=NOW - timedelta(minutes=index),
        sla_due_at=NOW + timedelta(hours=1),
        sort_key=(index,),
    )
    return dataclasses.replace(row, **changes) if changes else row  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def many_rows() -> list[QueueRow]:
    return [make_row(index) for index in range(TOTAL)]


class QueueApp(App[None]):
    """Composes the table and answers its window requests from an in-memory list."""

    def __init__(self, rows: Sequence[QueueRow], *, answer: bool = True) -> None:
        super().__init__()
        self.rows = list(rows)
        self.answer = answer
        self.requests: list[tuple[int, int]] = []
        self.anchors: list[SeekAnchor] = []
        self.answered = asyncio.Event()
        self.asked = asyncio.Event()

    def compose(self) -> ComposeResult:
        yield QueueTable(now=NOW)

    @property
    def table(self) -> QueueTable:
        return self.query_one(QueueTable)

    def on_mount(self) -> None:
        self.table.set_total(len(self.rows))
        self.table.focus()

    def on_queue_table_window_needed(self, message: QueueTable.WindowNeeded) -> None:
        self.requests.append((message.offset, message.limit))
        self.anchors.append(message.anchor)
        self.asked.set()
        if self.answer:
            self.send_window(message.offset, message.limit)

    def send_window(self, offset: int, limit: int) -> None:
        self.table.set_window(offset, self.rows[offset : offset + limit])
        self.answered.set()

    @asynccontextmanager
    async def request_made(self, pilot: Pilot[None]) -> AsyncIterator[None]:
        """Around a move of the table: wait (by event, not by time: how soon a paint asks
        depends on the machine's load) for the window request the paint after it makes,
        then let its answer be handled."""
        self.asked.clear()
        yield
        await pilot.pause()
        await asyncio.wait_for(self.asked.wait(), timeout=10)
        await pilot.pause()

    async def scroll_and_wait_for_request(self, pilot: Pilot[None], top: int) -> None:
        async with self.request_made(pilot):
            self.table.scroll_to(y=top, animate=False)

    async def rows_shown_at(self, pilot: Pilot[None], top: int) -> None:
        """Scroll to `top`, then wait (by event, not by time) until the window the table
        asks for there has been answered and painted: how soon a paint asks for it, and
        how soon the request reaches the app, depend on the machine's load."""
        self.table.scroll_to(y=top, animate=False)
        await pilot.pause()  # its last step paints, so the request is made by now
        while self.table.row_at(top) is None:
            self.answered.clear()
            await asyncio.wait_for(self.answered.wait(), timeout=10)
        await pilot.pause()


def painted_lines(table: QueueTable) -> list[int]:
    """The lines the table paints from now on, in order (each `render_line` call)."""
    painted: list[int] = []
    render_line = table.render_line

    def spy_render_line(y: int) -> Strip:
        painted.append(y)
        return render_line(y)

    table.render_line = spy_render_line  # type: ignore[method-assign]
    return painted


def screen_lines(app: App[None]) -> list[str]:
    """The text on screen, as the compositor would paint it."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def cell_style(strip: Strip, text: str) -> Segment:
    """The segment of a rendered line that holds `text`."""
    return next(segment for segment in strip if text in segment.text)


def theme_color(app: App[None], variable: str) -> RichColor:
    return Color.parse(app.theme_variables[variable]).rich_color


async def test_first_paint_shows_the_top_rows(many_rows: list[QueueRow]) -> None:
    app = QueueApp(many_rows)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        lines = screen_lines(app)
        assert "Ref" in lines[0]
        assert "Title" in lines[0]
        assert "ESC-000001" in lines[1]
        assert "Case 1 needs attention" in lines[1]
        assert "ESC-000047" in lines[47]
        assert app.requests[0][0] == 0
        # Only a window around the viewport is asked for, never the whole queue.
        assert app.requests[0][1] < 500
        assert app.table.cached_row_count < 500


async def test_a_first_page_given_with_the_count_is_not_asked_for(
    many_rows: list[QueueRow],
) -> None:
    class Eager(QueueApp):
        def on_mount(self) -> None:
            self.table.set_total(len(self.rows))
            self.table.set_window(0, self.rows[:60])

    app = Eager(many_rows)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert app.requests == []
        assert "ESC-000001" in screen_lines(app)[1]


async def test_scrolling_to_the_end_requests_a_window_and_shows_the_last_rows(
    many_rows: list[QueueRow],
) -> None:
    app = QueueApp(many_rows)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        async with app.request_made(pilot):
            await pilot.press("end")
        offset, limit = app.requests[-1]
        assert offset <= TOTAL - 1 < offset + limit
        lines = screen_lines(app)
        assert "ESC-100000" in lines[-1]
        assert "ESC-099954" in lines[1]
        assert app.table.cursor_index == TOTAL - 1
        await pilot.press("home")
        await pilot.pause()
        assert "ESC-000001" in screen_lines(app)[1]


async def test_a_window_is_sought_from_the_nearest_known_place(
    many_rows: list[QueueRow],
) -> None:
    """Each request names where to seek from: the held row right above (scrolling down)
    or below (scrolling up) the rows it lacks, which it does not ask for again, or the
    nearer end of the queue for a jump; never a count of rows from the top."""
    app = QueueApp(many_rows)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.table
        assert app.anchors == [SeekAnchor(-1)]
        first_offset, first_limit = app.requests[0]
        await app.scroll_and_wait_for_request(pilot, first_limit)  # just past the held rows
        offset, _ = app.requests[-1]
        held_last = first_offset + first_limit - 1
        assert offset == held_last + 1
        assert app.anchors[-1] == SeekAnchor(held_last, (held_last,))
        async with app.request_made(pilot):
            await pilot.press("end")
        offset, limit = app.requests[-1]
        assert offset + limit == TOTAL
        assert app.anchors[-1] == SeekAnchor(TOTAL)
        bottom = offset
        await app.scroll_and_wait_for_request(pilot, bottom - 100)  # above the held bottom
        offset, limit = app.requests[-1]
        assert offset + limit == bottom
        assert app.anchors[-1] == SeekAnchor(bottom, (bottom,))
        await app.scroll_and_wait_for_request(pilot, 30_000)  # a jump: the highest row held above
        offset, _ = app.requests[-1]
        above = max(index for index in range(offset) if table.row_at(index) is not None)
        assert above < 1000
        assert app.anchors[-1] == SeekAnchor(above, (above,))
        assert "ESC-030001" in screen_lines(app)[1]
        table.replace_window(TOTAL, 0, [])  # nothing held at all: the nearer end
        await app.scroll_and_wait_for_request(pilot, 70_000)
        assert app.anchors[-1] == SeekAnchor(TOTAL)
        assert "ESC-070001" in screen_lines(app)[1]


async def test_one_request_while_a_window_is_pending(many_rows: list[QueueRow]) -> None:
    app = QueueApp(many_rows, answer=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.table
        assert len(app.requests) == 1
        assert "···" in screen_lines(app)[1]
        for step in range(1, 20):  # small scrolls stay inside the pending window
            table.scroll_to(y=step, animate=False)
            await pilot.pause()
        assert len(app.requests) == 1
        await app.scroll_and_wait_for_request(pilot, 50_000)
        assert len(app.requests) == 2
        offset, limit = app.requests[-1]
        assert offset <= 50_000 < offset + limit
        app.send_window(offset, limit)
        await pilot.pause()
        assert "ESC-050001" in screen_lines(app)[1]


async def test_a_short_answer_is_not_asked_again(many_rows: list[QueueRow]) -> None:
    """If the source returns fewer rows than asked, the table does not loop on requests."""
    app = QueueApp(many_rows, answer=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        offset, _ = app.requests[0]
        app.table.set_window(offset, many_rows[:10])
        for _ in range(3):
            app.table.refresh()
            await pilot.pause()
        assert len(app.requests) == 1


async def test_update_row_repaints_only_that_line(many_rows: list[QueueRow]) -> None:
    app = QueueApp(many_rows)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.table
        painted = painted_lines(table)
        refreshed: list[tuple[Region, ...]] = []
        refresh = table.refresh

        def spy_refresh(*regions: Region, **kwargs: bool) -> QueueTable:
            refreshed.append(regions)
            return refresh(*regions, **kwargs)

        table.refresh = spy_refresh  # type: ignore[method-assign]
        changed = dataclasses.replace(many_rows[5], title="Caller reached", version=2)
        assert table.update_row(changed)
        await pilot.pause()
        assert painted == [6]
        assert len(refreshed) == 1
        (region,) = refreshed[0]
        assert (region.y, region.height) == (6, 1)
        lines = screen_lines(app)
        assert "Caller reached" in lines[6]
        assert "Case 5 needs attention" in lines[5]
        assert "Case 7 needs attention" in lines[7]


async def test_a_refetched_window_repaints_only_the_lines_that_changed(
    many_rows: list[QueueRow],
) -> None:
    app = QueueApp(many_rows)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.table
        await pilot.press("down", "down")
        painted = painted_lines(table)
        # Read again after changes elsewhere: every row is newer, one reads differently.
        rows = [dataclasses.replace(row, version=row.version + 1) for row in many_rows[:60]]
        rows[5] = dataclasses.replace(rows[5], title="Caller reached")
        table.replace_window(len(many_rows), 0, rows, follow_case=3)
        await pilot.pause()
        assert painted == [6]
        assert table.cursor_index == 2
        assert table.row_at(0) == rows[0]
        assert "Caller reached" in screen_lines(app)[6]
        # The cursor's case moved down two places: the cursor goes with it.
        moved = [rows[0], rows[1], rows[3], rows[4], rows[2], *rows[5:]]
        table.replace_window(len(many_rows), 0, moved)
        await pilot.pause()
        assert table.cursor_index == 4
        assert table.cursor_row == rows[2]


async def test_update_row_ignores_unknown_cases_and_older_versions(
    many_rows: list[QueueRow],
) -> None:
    app = QueueApp(many_rows)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.table
        far_away = dataclasses.replace(many_rows[90_000], title="not cached")
        assert not table.update_row(far_away)
        assert table.update_row(dataclasses.replace(many_rows[2], title="v3", version=3))
        assert not table.update_row(dataclasses.replace(many_rows[2], title="v2", version=2))
        # A window read before the update does not bring the old row back.
        app.send_window(0, 10)
        await pilot.pause()
        assert "v3" in screen_lines(app)[3]


async def test_cursor_follows_its_case_after_every_row_is_forgotten(
    many_rows: list[QueueRow],
) -> None:
    app = QueueApp(many_rows)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.table
        await pilot.press("down", "down", "down")
        assert table.cursor_row is not None
        assert table.cursor_row.case_id == 4
        # Two cases above it were resolved: the filter now starts at case 3.
        app.rows = many_rows[2:]
        table.replace_window(len(app.rows), 0, [])
        await pilot.pause()
        assert table.cursor_index == 1
        assert table.cursor_row is not None
        assert table.cursor_row.case_id == 4
        # Its case gone, the cursor keeps its index.
        app.rows = [row for row in app.rows if row.case_id != 4]
        table.replace_window(len(app.rows), 0, [])
        await pilot.pause()
        assert table.cursor_index == 1
        assert table.cursor_row is not None
        assert table.cursor_row.case_id == 5


async def test_the_cursor_goes_to_a_case_that_arrives_later(many_rows: list[QueueRow]) -> None:
    app = QueueApp(many_rows)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.table
        table.replace_window(len(many_rows), 0, [], follow_case=70_001)
        assert table.cursor_index == 0
        app.send_window(69_990, 20)
        await pilot.pause()
        assert table.cursor_index == 70_000
        await pilot.pause()
        assert any("ESC-070001" in line for line in screen_lines(app))


async def test_sla_colours_follow_the_injected_now() -> None:
    rows = [
        make_row(0, sla_due_at=NOW + timedelta(hours=1)),
        make_row(1, sla_due_at=NOW + timedelta(minutes=4, seconds=32)),
        make_row(2, sla_due_at=NOW - timedelta(minutes=2, seconds=10)),
        make_row(3, sla_due_at=None, status="resolved"),
    ]
    app = QueueApp(rows)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.table
        table.blur()
        await pilot.pause()
        calm = cell_style(table.render_line(1), "1:00:00")
        warn = cell_style(table.render_line(2), "4:32")
        breached = cell_style(table.render_line(3), "-2:10")
        assert "—" in table.render_line(4).text
        assert calm.style is not None
        assert warn.style is not None
        assert breached.style is not None
        assert calm.style.color == theme_color(app, "foreground")
        assert warn.style.color == theme_color(app, "warning")
        assert breached.style.bgcolor == theme_color(app, "error")  # a badge on any row
        table.set_now(NOW + timedelta(minutes=5))
        await pilot.pause()
        now_breached = cell_style(table.render_line(2), "-0:28")
        assert now_breached.style is not None
        assert now_breached.style.bgcolor == theme_color(app, "error")
        assert "55:00" in table.render_line(1).text


async def test_severity_mine_and_exhausted_rows_stand_out() -> None:
    rows = [
        make_row(0, severity=1),
        make_row(1, severity=4, paged_to_me=True),
        make_row(2, exhausted=True),
    ]
    app = QueueApp(rows)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.table
        table.action_last()  # cursor away from the rows under test
        await pilot.pause()
        sev1 = cell_style(table.render_line(1), "sev1")
        assert sev1.style is not None
        assert sev1.style.color == theme_color(app, "error")
        mine_line = table.render_line(2)
        assert mine_line.text.startswith("●")
        plain_ref = cell_style(table.render_line(1), "ESC-000001")
        mine_ref = cell_style(mine_line, "ESC-000002")
        assert mine_ref.style is not None
        assert plain_ref.style is not None
        assert mine_ref.style.bgcolor != plain_ref.style.bgcolor
        assert mine_ref.style.bold
        exhausted = cell_style(table.render_line(3), "EXH")
        assert exhausted.style is not None
        # On the cursor's row the mark is a badge in its own colour, never the cursor's.
        assert exhausted.style.bgcolor == theme_color(app, "error")
        table.action_first()
        await pilot.pause()
        exhausted = cell_style(table.render_line(3), "EXH")
        assert exhausted.style is not None
        assert exhausted.style.color == theme_color(app, "error")


async def test_flash_blinks_a_bounded_number_of_times() -> None:
    rows = [make_row(index) for index in range(5)]
    app = QueueApp(rows)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.table
        table.flash_interval = 0.01
        steady = cell_style(table.render_line(3), "ESC-000003").style
        refreshed: list[tuple[Region, ...]] = []
        refresh = table.refresh

        def spy_refresh(*regions: Region, **kwargs: bool) -> QueueTable:
            refreshed.append(regions)
            return refresh(*regions, **kwargs)

        table.refresh = spy_refresh  # type: ignore[method-assign]
        table.flash(3, blinks=2)
        assert cell_style(table.render_line(3), "ESC-000003").style != steady
        await pilot.pause(0.3)
        assert cell_style(table.render_line(3), "ESC-000003").style == steady
        # Lit, then three toggles (off, on, off), each repainting that one line only.
        assert [(region.y, region.height) for (region,) in refreshed] == [(3, 1)] * 4


async def test_highlighted_and_selected_messages(many_rows: list[QueueRow]) -> None:
    messages: list[Message] = []

    def hook(message: Message) -> None:
        if isinstance(message, QueueTable.Highlighted | QueueTable.Selected):
            messages.append(message)

    app = QueueApp(many_rows)
    async with app.run_test(size=(160, 48), message_hook=hook) as pilot:
        await pilot.pause()
        await pilot.press("down", "down", "enter")
        await pilot.pause()
    seen = [(type(message).__name__, message.case_id, message.ref) for message in messages]  # type: ignore[attr-defined]
    # Each message is seen once per node it bubbles through (table, screen, app).
    unique = list(dict.fromkeys(seen))
    assert unique == [
        ("Highlighted", 1, "ESC-000001"),
        ("Highlighted", 2, "ESC-000002"),
        ("Highlighted", 3, "ESC-000003"),
        ("Selected", 3, "ESC-000003"),
    ]


async def test_messages_reach_the_app(many_rows: list[QueueRow]) -> None:
    class Listening(QueueApp):
        def __init__(self, rows: Sequence[QueueRow]) -> None:
            super().__init__(rows)
            self.selected: list[int] = []

        def on_queue_table_selected(self, message: QueueTable.Selected) -> None:
            self.selected.append(message.case_id)

    app = Listening(many_rows)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.click(QueueTable, offset=(20, 4))
        assert app.table.cursor_index == 3
        await pilot.press("enter")
        await pilot.pause()
        assert app.selected == [4]


async def test_paging_moves_the_cursor_a_screen_at_a_time(many_rows: list[QueueRow]) -> None:
    app = QueueApp(many_rows)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.table
        await pilot.press("pagedown")
        assert table.cursor_index == 47
        await pilot.pause()
        assert "ESC-000048" in "\n".join(screen_lines(app))
        await pilot.press("pageup")
        assert table.cursor_index == 0


async def test_far_rows_are_evicted(many_rows: list[QueueRow]) -> None:
    class SmallCache(QueueTable):
        max_cached_rows = 600

    class SmallApp(QueueApp):
        def compose(self) -> ComposeResult:
            yield SmallCache(now=NOW)

    app = SmallApp(many_rows)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        for target in (10_000, 20_000, 30_000, 40_000):
            await app.rows_shown_at(pilot, target)
        assert app.table.cached_row_count <= 600 + 47
        assert "ESC-040001" in screen_lines(app)[1]


async def test_work_after_a_paint_waits_for_the_frame(many_rows: list[QueueRow]) -> None:
    """`call_after_paint` runs its callbacks once the table's next paint is composed (not
    before, so they cannot hold that frame up), and once only; a table that does not
    paint (hidden) runs them after `paint_wait` all the same."""
    painted: list[int] = []
    ran: list[tuple[str, int]] = []

    class Watched(QueueTable):
        paint_wait = 0.05

        def render_lines(self, crop: Region) -> list[Strip]:
            painted.append(len(painted))
            return super().render_lines(crop)

    class WatchedApp(QueueApp):
        def compose(self) -> ComposeResult:
            yield Watched(now=NOW)

    app = WatchedApp(many_rows)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.table
        before = len(painted)
        table.call_after_paint(lambda: ran.append(("shown", len(painted))))
        assert ran == []  # not at once: the frame comes first
        await pilot.pause()  # ends with a paint
        await pilot.pause()  # the table's queue, where the callback waits, is processed
        assert len(painted) > before
        assert ran == [("shown", before + 1)]  # right after the first paint that followed
        table.refresh()
        await pilot.pause()
        await pilot.pause()
        assert len(ran) == 1
        table.display = False
        await pilot.pause()
        table.call_after_paint(lambda: ran.append(("hidden", len(painted))))
        await pilot.pause(0.15)
        assert [what for what, _ in ran] == ["shown", "hidden"]


async def test_narrow_terminal_keeps_the_essential_columns(many_rows: list[QueueRow]) -> None:
    app = QueueApp(many_rows)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        header, first = screen_lines(app)[:2]
        for label in ("Ref", "Sev", "Title", "Status", "SLA"):
            assert label in header
        for label in ("Assignee", "Category", "Step"):
            assert label not in header
        assert "ESC-000001" in first
        assert "1:00:00" in first
        assert "amara" not in first
    app = QueueApp(many_rows)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        header = screen_lines(app)[0]
        for label in ("Assignee", "Category", "Step", "Age"):
            assert label in header


async def test_long_titles_are_cut_with_an_ellipsis() -> None:
    app = QueueApp([make_row(0, title="A very long title " * 10)])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        line = screen_lines(app)[1]
        assert "…" in line
        assert "1:00:00" in line


async def test_set_window_rejects_bad_input_and_drops_rows_past_the_end() -> None:
    app = QueueApp([make_row(index) for index in range(3)], answer=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.table
        with pytest.raises(ValueError, match="offset must be >= 0"):
            table.set_window(-1, [])
        naive = make_row(0, created_at=datetime(2025, 1, 1))
        with pytest.raises(ValueError, match=r"QueueRow\.created_at of case 1 is a naive"):
            table.set_window(0, [naive])
        table.set_window(1, [make_row(1), make_row(2), make_row(3)])
        assert table.cached_row_count == 2
        assert table.row_at(3) is None
        with pytest.raises(ValueError, match="now: expected an aware datetime"):
            table.set_now(datetime(2025, 1, 1))


def test_every_binding_can_be_remapped_and_explained() -> None:
    for binding in QueueTable.BINDINGS:
        assert not isinstance(binding, tuple)
        assert binding.id is not None
        assert binding.id.startswith("queue.")
        assert binding.tooltip


@pytest.mark.parametrize(
    ("age", "text"),
    [
        (timedelta(seconds=59), "0m"),
        (timedelta(minutes=3), "3m"),
        (timedelta(hours=2, minutes=5), "2h05m"),
        (timedelta(days=3, hours=7), "3d"),
        (timedelta(minutes=-2), "0m"),
    ],
)
def test_format_open_for(age: timedelta, text: str) -> None:
    assert format_open_for(age) == text


@pytest.mark.parametrize(
    ("remaining", "text"),
    [
        (timedelta(minutes=4, seconds=32, milliseconds=900), "4:32"),
        (timedelta(minutes=-2, seconds=-10, milliseconds=-300), "-2:10"),
        (timedelta(milliseconds=-200), "-0:00"),
        (timedelta(hours=1, minutes=5), "1:05:00"),
        (timedelta(days=2, hours=3), "2d03h"),
    ],
)
def test_format_countdown(remaining: timedelta, text: str) -> None:
    assert format_countdown(remaining) == text

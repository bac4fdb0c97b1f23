"""The status header: who I am, who is on call, the database, the engine, and the time.

It renders what it is given and never reads a clock or a database: the screen calls
`set_now` from its one timer and `set_status` when new facts arrive. When the line is
too narrow, the least needed parts go first: the product name, the database, then who is
on call; then the clock shortens, then who I am. The engine's state (and a clock at odds
with the database's) always stays: a stopped engine means nobody gets paged, and a
database problem has a line of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from textual.app import RenderResult
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from widgets.timefmt import UTC_ZONE, format_age, viewer_zone

SEPARATOR = Content.styled(" │ ", "$foreground-muted")
TWO_LINES_FROM = 120
"""From this width on, who is on call gets a line of its own."""
ENGINE_STALE_AFTER = timedelta(seconds=60)
NO_SENDER = Content.styled("chat/push pages wait: no engine login runs", "$sla-breach bold")
"""On a PostgreSQL desk with roles only `vigil engine` as the engine's login sends them."""
"""A heartbeat older than this means the escalation engine is not running."""


@dataclass(frozen=True, slots=True)
class OnCallView:
    """Who holds one schedule now, and who takes it next and when."""

    schedule: str
    now: str | None
    next: str | None
    next_at: datetime | None


@dataclass(frozen=True, slots=True)
class Identity:
    """The person at the console and the database it is connected to."""

    handle: str
    role: str
    timezone: str
    database: str


class StatusHeader(Widget):
    """One line of status, and a second line for a standing notice when there is one."""

    notice: reactive[str] = reactive("", layout=True)
    """A standing message (e.g. desktop notifications are unavailable); empty for none."""
    trouble: reactive[str] = reactive("", layout=True)
    """A problem happening now (e.g. the database does not answer); empty for none."""

    def __init__(
        self,
        identity: Identity,
        *,
        now: datetime,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.identity = identity
        self._zone = viewer_zone(identity.timezone)
        self._now = now
        self._on_call: tuple[OnCallView, ...] | None = None
        self._heartbeat_at: datetime | None = None
        self._clock_skew: timedelta | None = None
        self._no_sender = False
        self._status_known = False

    def set_now(self, now: datetime) -> None:
        if now == self._now:
            return
        self._now = now
        self.refresh()

    def set_status(
        self,
        on_call: tuple[OnCallView, ...] | None,
        heartbeat_at: datetime | None,
        clock_skew: timedelta | None = None,
        *,
        no_sender: bool = False,
    ) -> None:
        """`on_call` None means the desk's schedules could not be read; `clock_skew` is how
        far this host's clock is ahead of the database's (None: they agree); `no_sender`:
        this console may not send chat, push and webhook pages and no engine that may has
        run lately, so they wait."""
        self._on_call = on_call
        self._heartbeat_at = heartbeat_at
        self._clock_skew = clock_skew
        self._no_sender = no_sender
        self._status_known = True
        self.refresh()

    def render(self) -> RenderResult:
        width = self.content_region.width or self.size.width
        if width >= TWO_LINES_FROM:
            lines = [
                self._status_line(width, with_on_call=False),
                Content.assemble(("on call ", "$foreground-muted"), self._on_call_part()),
            ]
        else:
            lines = [self._status_line(width, with_on_call=True)]
        if self.trouble:
            lines.append(Content.styled(self.trouble, "$error bold"))
        if self.notice:
            lines.append(Content.styled(self.notice, "$warning"))
        return Content("\n").join(line.truncate(width, ellipsis=True) for line in lines)

    # --------------------------------------------------------------- the parts

    def _status_line(self, width: int, *, with_on_call: bool) -> Content:
        # (part, how readily it is given up when space runs short: higher goes first; 2
        # and up only). Who I am, the engine and a clock at odds with the database's are
        # never given up whole: on a very narrow line the
        # clock shortens first, then who I am; the engine's state keeps what room is left.
        parts: list[tuple[Content, int]] = [
            (Content.styled("Vigil", "$primary bold"), 4),
            (self._who(), 0),
            (self._engine_part(), 1),
            *([(self._skew_part(), 1)] if self._clock_skew is not None else []),
            *([(NO_SENDER, 1)] if self._no_sender else []),
        ]
        if with_on_call:
            parts.insert(2, (Content.assemble("on call ", self._on_call_part()), 2))
        clocks = self._clocks()
        clock = clocks[0]
        room = width - clock.cell_length - 1
        # A long database path gives up its middle before it gives up its place.
        others = SEPARATOR.join([part for part, _ in parts[1:]]).cell_length
        database = _middle_out(self.identity.database, room - others - 2 * SEPARATOR.cell_length)
        parts.append((Content.styled(database, "$foreground-muted"), 3))
        left = SEPARATOR.join([part for part, _ in parts])
        while left.cell_length > room and (droppable := [p for p in parts if p[1] >= 2]):
            parts.remove(max(droppable, key=lambda item: item[1]))
            left = SEPARATOR.join([part for part, _ in parts])
        for shorter in clocks[1:]:
            if left.cell_length <= room:
                break
            clock = shorter
            room = width - clock.cell_length - (1 if clock.cell_length else 0)
        if left.cell_length > room:  # parts[0] is who I am: the handle alone, then nothing
            engine = SEPARATOR.join([part for part, _ in parts[1:]])
            left = Content.assemble((self.identity.handle, "bold"), SEPARATOR, engine)
            if left.cell_length > room:
                left = engine
        left = left.truncate(max(0, room), ellipsis=True)
        gap = max(1, width - left.cell_length - clock.cell_length) if clock.cell_length else 0
        return Content.assemble(left, " " * gap, clock).truncate(width)

    def _who(self) -> Content:
        return Content.assemble((self.identity.handle, "bold"), f" ({self.identity.role})")

    def _clocks(self) -> list[Content]:
        """The clock, then ever shorter forms of it for a narrow line, then none."""
        local = self._now.astimezone(self._zone)
        utc = self._now.astimezone(UTC_ZONE).strftime("%H:%M UTC")
        return [
            Content.assemble(
                (local.strftime("%a %H:%M:%S %Z"), "bold"), ("  ", ""), (utc, "$foreground-muted")
            ),
            Content.styled(local.strftime("%H:%M:%S %Z"), "bold"),
            Content.styled(local.strftime("%H:%M"), "bold"),
            Content(""),
        ]

    def _on_call_part(self) -> Content:
        if not self._status_known:
            return Content.styled("…", "$foreground-muted")
        if self._on_call is None:
            return Content.styled("unknown (schedules unreadable)", "$warning")
        if not self._on_call:
            return Content.styled("no schedules", "$foreground-muted")
        pieces = []
        for item in self._on_call:
            holder = (
                Content.styled(item.now, "bold")
                if item.now
                else Content.styled("GAP", "$sla-breach bold")
            )
            piece = Content.assemble(f"{item.schedule} ", holder)
            if item.next and item.next_at:
                when = item.next_at.astimezone(self._zone).strftime("%H:%M")
                piece = Content.assemble(piece, f" → {item.next} {when}")
            pieces.append(piece)
        return Content("; ").join(pieces)

    def _skew_part(self) -> Content:
        skew = self._clock_skew or timedelta(0)
        side = "ahead of" if skew > timedelta(0) else "behind"
        return Content.styled(f"clock {format_age(abs(skew))} {side} the database", "$warning bold")

    def _engine_part(self) -> Content:
        if not self._status_known:
            return Content.styled("engine …", "$foreground-muted")
        if self._heartbeat_at is None:
            return Content.styled("engine: never ran", "$sla-warn bold")
        age = self._now - self._heartbeat_at
        text = f"engine {format_age(age)} ago"
        if age > ENGINE_STALE_AFTER:
            return Content.styled(f"{text} (stopped?)", "$sla-breach bold")
        return Content.styled(text, "$success")


def _middle_out(text: str, room: int, *, least: int = 24) -> str:
    """`text` cut in the middle to `room` cells (never below `least`): both ends of a
    database path say more than either alone."""
    room = max(room, least)
    if len(text) <= room:
        return text
    head = (room - 1) // 2
    return f"{text[:head]}…{text[len(text) - (room - 1 - head) :]}"

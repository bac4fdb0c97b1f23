"""The console's one exit to the terminal for text: every line of every widget passes here.

Textual hands a widget's text to the terminal as it is, escape sequences included, so a
title or a name stored before the input checks (or written into the database by hand)
could clear the screen or retitle the window. Each of those characters takes no cell, so
dropping them keeps every line exactly as wide as Textual laid it out.
"""

from __future__ import annotations

from rich.segment import Segment
from textual.color import Color
from textual.filter import LineFilter

from app.core.text import drop_unsafe, has_unsafe


class TerminalSafe(LineFilter):
    """Drops the control, bidi and invisible characters of each line's text."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        if not any(has_unsafe(segment.text) for segment in segments if not segment.control):
            return segments
        return [
            segment
            if segment.control
            else Segment(drop_unsafe(segment.text), segment.style, segment.control)
            for segment in segments
        ]

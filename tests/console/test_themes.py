"""The console's themes: every colour a person must read meets WCAG AA (4.5:1) against
what is behind it, in each theme, on the highlighted row too.

Two checks: the theme variables themselves (each text colour against the backgrounds it
is painted on), and the queue as the console paints it, every segment of every row with
the cursor on each row in turn, focused and not.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.color import Color as RichColor
from rich.segment import Segment
from sqlmodel import select
from textual.app import App
from textual.color import Color

from app.core.clock import FakeClock
from app.services.cases import CaseService
from data.db import Database
from data.models import Case
from tests.console_harness import console_opener
from tests.factories import add_policy, add_responder
from themes import THEME_VARIABLE_DEFAULTS, THEMES

AA = 4.5


def luminance(color: Color) -> float:
    """WCAG relative luminance of an opaque colour."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(color.r) + 0.7152 * channel(color.g) + 0.0722 * channel(color.b)


def contrast(a: Color, b: Color) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def theme_variables(name: str) -> dict[str, str]:
    """What the console resolves `$name` to under theme `name`."""

    class Probe(App[None]):
        def get_theme_variable_defaults(self) -> dict[str, str]:
            return dict(THEME_VARIABLE_DEFAULTS)

    probe = Probe()
    for theme in THEMES:
        probe.register_theme(theme)
    probe.theme = name
    return probe.get_css_variables()


def solid(variables: dict[str, str], name: str, under: str = "surface") -> Color:
    """Variable `name` as painted over variable `under` (alpha blended)."""
    behind = Color.parse(variables[under])
    return behind + Color.parse(variables[name])


# Text colours the console paints on the queue's and the pane's backgrounds.
TEXT_COLOURS = (
    "foreground",
    "foreground-muted",
    "sev1",
    "sev2",
    "sev3",
    "sev4",
    "sla-breach",
    "sla-warn",
    "sensitive",
    "paged-me",
)


@pytest.mark.parametrize("theme", [t.name for t in THEMES])
def test_every_text_colour_reads_on_the_backgrounds_of_each_theme(theme: str) -> None:
    variables = theme_variables(theme)
    low = []
    for background in ("surface", "background"):
        for name in TEXT_COLOURS:
            ratio = contrast(solid(variables, name, background), solid(variables, background))
            if ratio < AA:
                low.append(f"${name} on ${background}: {ratio:.2f}")
    assert low == [], f"{theme}: below {AA}:1: {low}"


@pytest.mark.parametrize("theme", [t.name for t in THEMES])
def test_each_severity_has_a_colour_of_its_own(theme: str) -> None:
    """Neighbouring severities never share a colour: told apart at a glance, not only by
    their label (sev2 and sev3 were both yellow in high contrast)."""
    variables = theme_variables(theme)
    assert_distinct([solid(variables, f"sev{n}") for n in (1, 2, 3, 4)], theme)


def assert_distinct(colours: list[Color], theme: str) -> None:
    """No two of `colours` alike: at least 100 apart summed over R, G and B (dark red and
    dark amber are 106 apart; yellow and yellow 0)."""
    for index, colour in enumerate(colours):
        for other in colours[index + 1 :]:
            distance = sum(abs(a - b) for a, b in zip(colour.rgb, other.rgb, strict=True))
            assert distance >= 100, f"{theme}: {colour.hex} and {other.hex} look alike"


# --- the queue as painted ---------------------------------------------------------------


def _rgb(color: RichColor | None) -> Color:
    assert color is not None, "every painted segment has a colour and a background"
    return Color.from_rich_color(color)


def segment_contrast(segment: Segment) -> float:
    style = segment.style
    assert style is not None
    fore, back = _rgb(style.color), _rgb(style.bgcolor)
    if style.reverse:
        fore, back = back, fore
    return contrast(fore, back)


def _desk_in_every_state(db: Database, clock: FakeClock) -> None:
    """A queue with every colour it has: each severity, an SLA breached (sev2, sev1), one
    in its warning minutes, an exhausted chain, an acknowledged case, cases paged to ana."""
    cases = CaseService(db, clock)
    refs = {}
    for title, severity in (
        ("Breached sev1", 1),
        ("Breached sev2", 2),
        ("Warning sev3", 3),
        ("Calm sev4", 4),
        ("Acknowledged sev2", 2),
    ):
        refs[title] = cases.open_case(
            "sue", title=title, category="threat_to_life", severity=severity
        ).ref
        clock.advance(minutes=1)
    cases.acknowledge("ana", refs["Acknowledged sev2"])
    with db.write() as session:
        case = session.exec(select(Case).where(Case.ref == refs["Breached sev1"])).one()
        case.exhausted = True
        session.add(case)
    # sev3's hour to acknowledge ends in 3 minutes; sev1 and sev2 are long breached.
    clock.advance(minutes=54)


@pytest.mark.parametrize("theme", [t.name for t in THEMES])
async def test_the_queue_reads_in_every_theme_on_every_row_and_the_highlighted_one(
    db: Database, clock: FakeClock, tmp_path: Path, theme: str
) -> None:
    add_responder(db, "ana", contacts=("console",))
    add_responder(db, "sue", "supervisor")
    add_policy(db, "to ana", [(600, ["user:ana"])], route=["default"])
    _desk_in_every_state(db, clock)
    opener: Callable[..., Any] = console_opener(db, clock, tmp_path)
    async with opener() as console:
        console.app.theme = theme
        await console.settle()
        table = console.screen.table
        rows = table.total
        assert rows == 5
        texts = " ".join(table.render_line(y).text for y in range(rows + 1))
        assert "EXH" in texts
        assert "-" in texts  # a breached countdown
        low: list[str] = []
        for focused in (True, False):
            if focused:
                table.focus()
            else:
                console.screen.detail.focus()
            await console.settle()
            table.action_first()
            for cursor in range(rows):
                await console.settle()
                assert table.cursor_index == cursor
                for y in range(rows + 1):
                    for segment in table.render_line(y):
                        if not segment.text.strip():
                            continue
                        ratio = segment_contrast(segment)
                        if ratio < AA:
                            where = "cursor row" if y - 1 == cursor else f"row {y}"
                            low.append(f"{segment.text.strip()!r} ({where}): {ratio:.2f}")
                table.action_cursor_down()
        assert low == [], f"{theme}: below {AA}:1: {sorted(set(low))}"
        # Away from the cursor each severity label has its own colour.
        labels = [next(s for s in table.render_line(y) if f"sev{y}" in s.text) for y in range(1, 5)]
        assert_distinct([_rgb(s.style.color if s.style else None) for s in labels], theme)

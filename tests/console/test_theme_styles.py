"""Every text colour the stylesheets under themes/ declare reads at WCAG AA (4.5:1) in each
theme, against the background it is declared on.

The stylesheets are read as written, not a hand-kept list of pairs, so a new rule is checked
the day it is added. A rule's background is its own, else its enclosing rule's (nested
`& > ...` component classes, such as the queue's highlighted row and its badges); a rule
that sets a colour on no background of its own may be painted on any of the theme's
grounds ($background, $surface, $panel), and must read on each. Disabled text
(`$foreground-disabled`) is left out, as WCAG leaves out inactive controls.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from textual.color import Color

from tests.console.test_themes import AA, contrast, theme_variables
from themes import STYLES, THEMES

GROUNDS = ("background", "surface", "panel")
EXEMPT = {"$foreground-disabled"}


@dataclass
class Rule:
    selector: str
    declarations: dict[str, str] = field(default_factory=dict)
    children: list[Rule] = field(default_factory=list)


def parse(text: str) -> list[Rule]:
    """The rules of a stylesheet, nested rules under their parent."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    rules, _ = _block(text, 0)
    return rules


def _block(text: str, position: int) -> tuple[list[Rule], int]:
    rules: list[Rule] = []
    start = position
    while position < len(text):
        char = text[position]
        if char == "{":
            rule = Rule(text[start:position].strip())
            inner, position = _block(text, position + 1)
            rule.children = inner
            rule.declarations = _declarations(rule)
            rules.append(rule)
            start = position
        elif char == "}":
            if text[start:position].strip():
                rules.append(Rule("", _parse_declarations(text[start:position])))
            return rules, position + 1
        elif char == ";":
            rules.append(Rule("", _parse_declarations(text[start : position + 1])))
            start = position + 1
        position += 1
    return rules, position


def _parse_declarations(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(";"):
        name, colon, value = part.partition(":")
        if colon and name.strip():
            out[name.strip()] = value.strip()
    return out


def _declarations(rule: Rule) -> dict[str, str]:
    """Fold the loose declarations parsed as nameless children into their rule."""
    found: dict[str, str] = {}
    nested = []
    for child in rule.children:
        if child.selector:
            nested.append(child)
        else:
            found.update(child.declarations)
    rule.children = nested
    return found


def resolve(value: str, variables: dict[str, str], behind: Color) -> Color:
    """A colour value as Textual paints it over `behind`: `$name`, a literal, an alpha
    (`$primary 30%`), or `auto 90%` (the readable one of black and white)."""
    head, *rest = value.split()
    alpha = float(rest[0].rstrip("%")) / 100 if rest else 1.0
    if head.startswith("$"):  # a variable may itself be `auto 87%` or another variable
        painted = resolve(variables[head[1:]], variables, behind)
        return behind + painted.multiply_alpha(alpha)
    if head == "auto":
        return behind + behind.get_contrast_text(alpha)
    return behind + Color.parse(head).multiply_alpha(alpha)


def pairs(
    rules: list[Rule], variables: dict[str, str], grounds: list[tuple[str, Color]]
) -> Iterator[tuple[str, str, Color, Color]]:
    """(selector, colour value, text, background) of every rule that sets a colour."""
    for rule in rules:
        own = rule.declarations.get("background")
        if own is not None:
            here = [(f"{name} + {own}", resolve(own, variables, c)) for name, c in grounds]
        else:
            here = grounds
        text = rule.declarations.get("color")
        if text is not None and text not in EXEMPT:
            for name, ground in here:
                yield f"{rule.selector} (on {name})", text, resolve(text, variables, ground), ground
        yield from pairs(rule.children, variables, here)


STYLESHEETS = sorted(STYLES.glob("*.tcss"))


def test_every_stylesheet_is_read() -> None:
    assert {path.name for path in STYLESHEETS} >= {
        "console.tcss",
        "queue.tcss",
        "urgency.tcss",
        "calendar.tcss",
        "dialogs.tcss",
        "shiftwork.tcss",
    }
    queue = parse((STYLES / "queue.tcss").read_text())
    (table,) = queue
    selectors = [child.selector for child in table.children]
    assert "&:focus > .queue-table--cursor" in selectors
    assert table.children[0].declarations == {
        "background": "$panel",
        "color": "$foreground",
        "text-style": "bold",
    }


@pytest.mark.parametrize("theme", [t.name for t in THEMES])
def test_every_declared_text_colour_reads_on_its_background(theme: str) -> None:
    variables = theme_variables(theme)
    grounds = [(f"${name}", Color.parse(variables[name])) for name in GROUNDS]
    low = []
    for path in STYLESHEETS:
        rules = parse(path.read_text())
        own = {  # a stylesheet's own `$name: value;` variables
            name[1:]: value
            for rule in rules
            if not rule.selector
            for name, value in rule.declarations.items()
            if name.startswith("$")
        }
        for where, value, text, ground in pairs(rules, variables | own, grounds):
            ratio = contrast(text, ground)
            if ratio < AA:
                low.append(f"{path.name}: {where}: {value} {ratio:.2f}")
    assert low == [], f"{theme}: below {AA}:1:\n" + "\n".join(sorted(set(low)))

"""Text a person typed, checked once for every field that stores it."""

from __future__ import annotations

import unicodedata

from app.core.errors import BadInput

# A terminal obeys control characters instead of showing them (an escape sequence can
# clear or retitle the screen of whoever reads the text), and a lone surrogate cannot be
# stored: free text refuses both (tabs and line breaks are text). A line (a title, a name,
# a label) must also print as it is stored: no invisible format characters (bidi overrides,
# zero-width spaces), unassigned or private-use code points, or line separators.
_TEXT_ONLY = frozenset("\t\n\r")
_KINDS = {
    "Cc": "control character",
    "Cs": "lone surrogate",
    "Cf": "invisible format character",
    "Co": "private-use character",
    "Cn": "unassigned character",
    "Zl": "line separator",
    "Zp": "paragraph separator",
}
_NEVER_IN_TEXT = frozenset({"Cc", "Cs"})


def text_problem(text: str, *, single_line: bool) -> str | None:
    """Why `text` may not be stored as a line (or, not `single_line`, as free text), naming
    the first character at fault; None when it may."""
    for position, char in enumerate(text, 1):
        category = unicodedata.category(char)
        if single_line:
            if char.isprintable() or category == "Zs":
                continue
        elif category not in _NEVER_IN_TEXT or char in _TEXT_ONLY:
            continue
        kind = _KINDS.get(category, "character")
        return f"{kind} U+{ord(char):04X} at character {position} is not allowed"
    return None


def fold_spaces(text: str) -> str:
    """Every kind of space as a plain one (a no-break space pasted into a title)."""
    return "".join(" " if unicodedata.category(char) == "Zs" else char for char in text)


def clean_text(field: str, value: str, limit: int, *, required: bool) -> str:
    """`value` stripped, or BadInput naming `field` if it is empty, too long or unprintable."""
    text = (value or "").strip()
    if required and not text:
        raise BadInput(field, "required, got an empty value")
    if len(text) > limit:
        raise BadInput(field, f"at most {limit} characters, got {len(text)}")
    problem = text_problem(text, single_line=False)
    if problem:
        raise BadInput(field, problem)
    return text


def one_line(field: str, value: str | None, limit: int, *, required: bool) -> str:
    """Like `clean_text`, and no line breaks or tabs either (titles, names, labels)."""
    text = fold_spaces(clean_text(field, value or "", limit, required=required))
    if any(char in _TEXT_ONLY for char in text):
        raise BadInput(field, "a single line without control characters")
    problem = text_problem(text, single_line=True)
    if problem:
        raise BadInput(field, problem)
    return text


def md_cell(text: str) -> str:
    """Text for a Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")

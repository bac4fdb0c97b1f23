"""Text a person typed, checked once for every field that stores it."""

from __future__ import annotations

import re

from app.core.errors import BadInput

# A terminal obeys control characters instead of showing them (an escape sequence can
# clear or retitle the screen of whoever reads the text); a lone surrogate cannot be stored.
# Tabs and line breaks are text.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_text(field: str, value: str, limit: int, *, required: bool) -> str:
    """`value` stripped, or BadInput naming `field` if it is empty, too long or unprintable."""
    text = (value or "").strip()
    if required and not text:
        raise BadInput(field, "required, got an empty value")
    if len(text) > limit:
        raise BadInput(field, f"at most {limit} characters, got {len(text)}")
    forbidden = _FORBIDDEN.search(text)
    if forbidden:
        code = ord(forbidden.group())
        kind = "lone surrogate" if 0xD800 <= code <= 0xDFFF else "control character"
        raise BadInput(
            field, f"{kind} U+{code:04X} at character {forbidden.start() + 1} is not allowed"
        )
    return text


def one_line(field: str, value: str | None, limit: int, *, required: bool) -> str:
    """Like `clean_text`, and no line breaks or tabs either (titles, names, labels)."""
    text = clean_text(field, value or "", limit, required=required)
    if any(ord(ch) < 32 for ch in text):
        raise BadInput(field, "a single line without control characters")
    return text


def md_cell(text: str) -> str:
    """Text for a Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")

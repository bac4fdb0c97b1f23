"""Text a person typed, checked once for every field that stores it."""

from __future__ import annotations

import re
import unicodedata
from typing import TextIO

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


LINE_LIMIT = 200
"""Names, labels, reasons and every other one-line text a team file or a form stores."""
LONG_LINE_LIMIT = 2048
"""URLs and secrets."""


def line_problem(text: str, limit: int = LINE_LIMIT) -> str | None:
    """Why `text` may not be stored as a line of at most `limit` characters; None if it may."""
    if len(text) > limit:
        return f"at most {limit} characters, got {len(text)}"
    return text_problem(text, single_line=True)


def clean_text(field: str, value: str, limit: int, *, required: bool) -> str:
    """`value` stripped, line breaks as newlines, or BadInput naming `field` if it is empty,
    too long, unprintable or holds a character that reorders or hides the text around it."""
    text = (value or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if required and not text:
        raise BadInput(field, "required, got an empty value")
    if len(text) > limit:
        raise BadInput(field, f"at most {limit} characters, got {len(text)}")
    problem = text_problem(text, single_line=False)
    hiding = _HIDING.search(text)
    if problem is None and hiding is not None:
        problem = (
            f"invisible format character U+{ord(hiding.group()):04X} at character "
            f"{hiding.start() + 1} is not allowed (it reorders or hides the text around it)"
        )
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


# What a terminal obeys instead of printing, or what hides or reorders text: C0 and C1
# controls, DEL, bidi embeddings, overrides and isolates, zero-width and other invisible
# format characters, line and paragraph separators. Newline and tab are text; a carriage
# return only as part of CRLF (iCalendar's line ending).
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f"
    "\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]|\r(?!\n)"
)
# Free text may hold these (zero-width joiners shape emoji and several scripts), never
# the characters that reorder or hide what is around them.
_HIDING = re.compile("[\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def _mark(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode picture of the control: ␛ for ESC
    if code == 0x7F:
        return "\u2421"
    return f"<U+{code:04X}>"


def visible(text: str) -> str:
    """`text` as a terminal may print it: every control, bidi or invisible character shown
    as a mark (␛, <U+202E>) instead of obeyed. For what was stored before these checks, or
    written into the database by hand."""
    return _UNSAFE.sub(_mark, text)


# In a line already laid out on screen, newline and tab are no text either.
_UNSAFE_IN_LINE = re.compile(f"{_UNSAFE.pattern}|[\t\n\r]")


def has_unsafe(text: str) -> bool:
    return _UNSAFE_IN_LINE.search(text) is not None


def drop_unsafe(text: str) -> str:
    """A laid-out line's text without those characters (a mark would not fit: each of them
    takes no cell)."""
    return _UNSAFE_IN_LINE.sub("", text)


def json_safe(text: str) -> str:
    """JSON text with every such character escaped as `\\uXXXX`: the same value, parsed."""
    return _UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


class VisibleWriter:
    """A text stream that passes everything through `visible`: the command line's one
    exit, so no renderer (text, Markdown, iCalendar) can hand a terminal a raw escape."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(visible(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)

"""The few pieces of RFC 5545 the on-call feed needs, written directly: content lines of TEXT,
UTC DATE-TIME, lists of TEXT and non-standard properties, folded and ended with CRLF.

A year's feed is more than a thousand events; building each through the icalendar library
cost most of a second, and these few string operations cost a few hundredths. The feed's
bytes are the ones that library wrote for it, so a calendar that subscribed before sees no
change. Two differences: a backslash written before an `N` stays a backslash (the library
wrote `C:\\New` as `C:\\new`, which reads as a line break), and a fold never parts an escaped
backslash from the one it escapes (the library's could).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

CRLF = "\r\n"
# A folded line's pieces each hold at most this many octets: with the space that opens a
# continuation line, no line is longer than the 75 octets of §3.1 (the first piece is cut at
# the same width, as the icalendar library cuts it).
FOLD_OCTETS = 74
_FOLD = b"\r\n "
_BACKSLASH = ord("\\")

# §3.3.11: a backslash, semicolon or comma is escaped with a backslash and a line break is
# written `\n`; a CR LF pair, a lone LF and a lone CR are each one line break.
_LINE_BREAKS = {ord("\n"): "\\n", ord("\r"): "\\n"}
_ESCAPES = str.maketrans({"\\": "\\\\", ";": "\\;", ",": "\\,"} | _LINE_BREAKS)


def escape_text(value: str) -> str:
    """A TEXT value as §3.3.11 writes it."""
    return value.replace("\r\n", "\n").translate(_ESCAPES)


def utc_datetime(moment: datetime) -> str:
    """A DATE-TIME in UTC, `YYYYMMDDTHHMMSSZ` (§3.3.5, form #2), whole seconds."""
    at = moment.astimezone(UTC)
    return f"{at.year:04d}{at.month:02d}{at.day:02d}T{at.hour:02d}{at.minute:02d}{at.second:02d}Z"


def fold(line: str) -> str:
    """`line` cut into pieces of at most `FOLD_OCTETS` octets, each after the first opened by
    a space (§3.1); a cut never falls inside a UTF-8 character, nor between a backslash and
    the character it escapes (a reader that unescapes before it unfolds still reads it)."""
    data = line.encode("utf-8")
    if len(data) <= FOLD_OCTETS:
        return line
    pieces = []
    start = 0
    while len(data) - start > FOLD_OCTETS:
        cut = start + FOLD_OCTETS
        while data[cut] & 0xC0 == 0x80:  # a continuation octet: back to the character's first
            cut -= 1
        backslashes = 0
        while cut - backslashes > start and data[cut - backslashes - 1] == _BACKSLASH:
            backslashes += 1
        if backslashes % 2:  # the last one escapes the character after the cut
            cut -= 1
        pieces.append(data[start:cut])
        start = cut
    pieces.append(data[start:])
    return _FOLD.join(pieces).decode("utf-8")


def content_line(name: str, value: str) -> str:
    """`NAME:VALUE`, folded, with its CRLF; `value` is already in its iCalendar form."""
    return fold(f"{name}:{value}") + CRLF


def text_line(name: str, value: str) -> str:
    return content_line(name, escape_text(value))


def verbatim_line(name: str, value: str) -> str:
    r"""A non-standard (`X-`) property, its value as it is: the icalendar library writes and
    reads these verbatim (RFC 7265's UNKNOWN), as the feed has written them, so a reader
    takes `a, b` for `a, b` and `a\, b` for `a\, b`. A line break, which no content line
    can hold, is written `\n`."""
    return content_line(name, value.replace("\r\n", "\n").translate(_LINE_BREAKS))


def texts_line(name: str, values: Iterable[str]) -> str:
    """A property whose value is a list of TEXT (CATEGORIES), comma-separated."""
    return content_line(name, ",".join(escape_text(value) for value in values))


def datetime_line(name: str, moment: datetime) -> str:
    return content_line(name, utc_datetime(moment))


def component(name: str, lines: Iterable[str]) -> str:
    """`BEGIN:name`, the content lines given, `END:name`."""
    return f"BEGIN:{name}{CRLF}{''.join(lines)}END:{name}{CRLF}"

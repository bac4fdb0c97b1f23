"""The feed's own RFC 5545 writer: TEXT escaping, UTC DATE-TIME, CATEGORIES and the folding of
long lines at octet boundaries that never cut a UTF-8 character or an escape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from icalendar import Calendar

from app.services.shiftwork.ical import (
    FOLD_OCTETS,
    component,
    datetime_line,
    escape_text,
    fold,
    text_line,
    texts_line,
    utc_datetime,
    verbatim_line,
)


def physical_lines(folded: str) -> list[bytes]:
    return folded.encode("utf-8").split(b"\r\n")


def unfold(folded: str) -> str:
    return folded.replace("\r\n ", "")


def test_each_special_character_is_escaped() -> None:
    assert escape_text("a\\b") == "a\\\\b"
    assert escape_text("a;b") == "a\\;b"
    assert escape_text("a,b") == "a\\,b"
    assert escape_text("a\nb") == "a\\nb"
    # A CR LF pair is one line break; a lone CR is one too.
    assert escape_text("a\r\nb") == "a\\nb"
    assert escape_text("a\rb") == "a\\nb"
    assert escape_text("\\;,\n") == "\\\\\\;\\,\\n"
    # A backslash already before a letter is the person's own: escaped, not taken as `\n`.
    assert escape_text("C:\\New") == "C:\\\\New"
    assert escape_text('Zoë "Ōkubo": 日本 🚀') == 'Zoë "Ōkubo": 日本 🚀'


def test_escaped_text_reads_back_as_written() -> None:
    value = "Ana; Ruiz, of Sydney \\ Parramatta\nsecond line é 🚀"
    feed = component(
        "VEVENT", [text_line("SUMMARY", value), texts_line("CATEGORIES", ["a,b", "c;d"])]
    )
    [event] = Calendar.from_ical(component("VCALENDAR", [feed])).walk("VEVENT")
    assert str(event["summary"]) == value
    assert [str(c) for c in event["categories"].cats] == ["a,b", "c;d"]


def test_categories_are_a_comma_separated_list_of_escaped_texts() -> None:
    assert texts_line("CATEGORIES", ["rotation"]) == "CATEGORIES:rotation\r\n"
    assert texts_line("CATEGORIES", ["a,b", "c;d", "e"]) == "CATEGORIES:a\\,b,c\\;d,e\r\n"


def test_non_standard_properties_are_verbatim_but_for_line_breaks() -> None:
    assert verbatim_line("X-VIGIL-SOURCE", "holiday:King, Jr.; \\ é") == (
        "X-VIGIL-SOURCE:holiday:King, Jr.; \\ é\r\n"
    )
    assert verbatim_line("X-WR-CALNAME", "a\nb\r\nc\rd") == "X-WR-CALNAME:a\\nb\\nc\\nd\r\n"


def test_date_times_are_utc_whole_seconds() -> None:
    sydney = timezone(timedelta(hours=11))
    assert utc_datetime(datetime(2026, 12, 7, 2, 0, 0, 999_999, tzinfo=sydney)) == (
        "20261206T150000Z"
    )
    assert utc_datetime(datetime(1970, 1, 1, tzinfo=UTC)) == "19700101T000000Z"
    assert datetime_line("DTSTART", datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)) == (
        "DTSTART:21991231T235959Z\r\n"
    )


def test_a_component_is_begin_its_lines_and_end() -> None:
    assert component("VEVENT", ["UID:a\r\n", "SUMMARY:b\r\n"]) == (
        "BEGIN:VEVENT\r\nUID:a\r\nSUMMARY:b\r\nEND:VEVENT\r\n"
    )


def test_a_short_line_is_not_folded() -> None:
    assert FOLD_OCTETS == 74
    line = "X" * 74
    assert fold(line) == line
    assert text_line("SUMMARY", "s" * 65) == "SUMMARY:" + "s" * 65 + "\r\n"  # 73 octets


def test_lines_of_75_and_76_octets_are_folded_after_74() -> None:
    assert fold("X" * 75) == "X" * 74 + "\r\n X"
    assert fold("X" * 76) == "X" * 74 + "\r\n XX"
    # Continuation lines hold 74 octets after their space: 75 in all.
    assert fold("X" * 200) == "X" * 74 + "\r\n " + "X" * 74 + "\r\n " + "X" * 52


def test_a_multibyte_character_across_the_boundary_moves_whole_to_the_next_line() -> None:
    for char in ("é", "日", "🚀"):  # 2, 3 and 4 octets
        size = len(char.encode())
        for before in range(FOLD_OCTETS - size + 1, FOLD_OCTETS):  # it would cross octet 74
            assert fold("X" * before + char + "Y") == "X" * before + "\r\n " + char + "Y"
    # Filling the first line exactly, it stays there.
    assert fold("X" * 72 + "é" + "Y") == "X" * 72 + "é" + "\r\n Y"
    assert fold("X" * 70 + "🚀" + "Y") == "X" * 70 + "🚀" + "\r\n Y"


def test_a_fold_never_separates_an_escape() -> None:
    # `\;` would straddle the boundary: the backslash moves down with its character.
    assert fold("X" * 73 + "\\;Y") == "X" * 73 + "\r\n \\;Y"
    # `\\` ending exactly at the boundary is whole: the fold comes after it.
    assert fold("X" * 72 + "\\\\Y") == "X" * 72 + "\\\\" + "\r\n Y"
    # An odd run of backslashes: the last one escapes what follows the boundary.
    assert fold("X" * 71 + "\\\\\\nY") == "X" * 71 + "\\\\" + "\r\n \\nY"


@given(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=400))
def test_any_folded_line_unfolds_to_itself_in_lines_of_at_most_75_octets(value: str) -> None:
    line = "DESCRIPTION:" + escape_text(value)
    folded = fold(line)
    assert unfold(folded) == line
    lines = physical_lines(folded)
    for number, octets in enumerate(lines):
        assert len(octets) <= 75
        octets.decode("utf-8")  # no character cut in two
        if number:
            assert octets.startswith(b" ")
            assert len(octets) > 1
    for octets in lines[:-1]:
        trailing = len(octets) - len(octets.rstrip(b"\\"))
        assert trailing % 2 == 0  # no escape left open at the end of a line

"""Text cannot attack a terminal: refused where it comes in, escaped wherever it goes out.

The hostile text holds an OSC title change, a screen wipe, a C1 CSI, a bell, a bidi
override, a zero-width space and a bare carriage return. Typed in, it is refused naming
the field; written into the database by hand (or by an older version), it reaches no
output raw: the command line's text and JSON, Markdown, iCalendar and the console.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import select

from app.core.clock import FakeClock
from app.core.text import visible
from data.db import Database
from data.models import CaseNote
from tests.console_harness import console_opener
from tests.factories import FullDesk, build_full_desk

HOSTILE = "Ti\x1b]0;pwned\x07tle\x1b[2J \u202eevil\u200b\x9b31m\rover"
RAW = ("\x1b", "\x07", "\u202e", "\u200b", "\x9b", "\rover")


@pytest.fixture
def desk(sqlite_url: str, clock: FakeClock, tmp_path: Path) -> FullDesk:
    return build_full_desk(sqlite_url, clock, tmp_path)


def _write_by_hand(desk: FullDesk) -> None:
    """What an older version, or someone with sqlite3, left in every text column."""
    db = Database.open(desk.url)
    try:
        with db.write() as session:
            for statement in (
                "UPDATE 'case' SET title = :t",
                "UPDATE responder SET name = :t",
                "UPDATE override SET reason = :t",
                "UPDATE case_note SET body = :t",
                "UPDATE action_item SET title = :t",
                "UPDATE holiday SET name = :t",
            ):
                session.execute(text(statement), {"t": HOSTILE})
    finally:
        db.dispose()


def _assert_nothing_raw(where: str, output: str) -> None:
    found = [repr(seq) for seq in RAW if seq in output]
    assert not found, f"{where}: {found} reached the output raw"


def test_stored_hostile_text_reaches_no_output_raw(desk: FullDesk) -> None:
    _write_by_hand(desk)
    sensitive, assigned = desk.refs["sensitive"], desk.refs["assigned"]
    outputs = [
        ("cases", "--all"),
        ("show", assigned),
        ("oncall",),
        ("override", "list"),
        ("handover", "--format", "md", "--since", "2026-11-01T00:00:00Z"),
        ("handover", "show", "1"),
        ("calendar", "export", "--days", "60"),
        ("action", "list"),
        ("postmortem", "show", desk.refs["resolved"]),
        ("audit", "log"),
        ("team", "export"),
        ("stats",),
        ("casework", "show", sensitive),
    ]
    for argv in outputs:
        code, out, err = desk.run("cara", *argv)
        assert code == 0, f"{argv}: {err}"
        _assert_nothing_raw(" ".join(argv), out + err)
    shown = desk.ok("cara", "show", assigned)
    assert visible(HOSTILE) in shown  # made visible, not dropped
    assert "␛]0;pwned␇" in shown
    assert "<U+202E>" in shown

    for argv in (("cases", "--all"), ("show", assigned), ("override", "list")):
        out = desk.ok("cara", *argv, "--json")
        _assert_nothing_raw(" ".join(argv) + " --json", out)
        assert json.dumps(HOSTILE) in json.dumps(json.loads(out))  # escaped, kept exactly
    body = json.loads(desk.ok("cara", "show", assigned, "--json"))
    assert body["title"] == HOSTILE  # JSON escapes; the value is kept exactly


def test_a_post_mortem_written_to_a_file_is_escaped_too(desk: FullDesk, tmp_path: Path) -> None:
    _write_by_hand(desk)
    target = tmp_path / "pm.md"
    desk.ok("cara", "postmortem", "show", desk.refs["resolved"], "--out", str(target))
    written = target.read_text()
    assert "<U+202E>" in written
    _assert_nothing_raw("postmortem --out", written)


def test_the_ical_export_keeps_its_line_endings_and_escapes_the_rest(desk: FullDesk) -> None:
    _write_by_hand(desk)
    out = desk.ok("cara", "calendar", "export", "--days", "60")
    assert "BEGIN:VCALENDAR\r\n" in out
    _assert_nothing_raw("calendar export", out)


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (("page", "--title", HOSTILE, "--category", "other", "--severity", "4"), "title"),
        (("page", "--title", "T", "--category", "other", "--severity", "4",
          "--details", "a\u202eb"), "details"),
        (("page", "--title", "T", "--category", "other", "--severity", "4",
          "--dedup-key", "k\u200b"), "dedup_key"),
        (("note", "ESC-0001", "a\x1b[2Jb"), "text"),
        (("note", "ESC-0001", "a\u2066b"), "text"),
    ],
    ids=["title", "details-bidi", "dedup-zero-width", "note-escape", "note-isolate"],
)  # fmt: skip
def test_hostile_text_typed_in_is_refused_naming_the_field(
    desk: FullDesk, argv: tuple[str, ...], field: str
) -> None:
    code, out, err = desk.run("cara", *argv)
    assert (code, out) == (2, "")
    assert f"{field}:" in err
    _assert_nothing_raw("the refusal", err)


def test_a_carriage_return_in_free_text_is_a_line_break(desk: FullDesk) -> None:
    ref = desk.refs["assigned"]
    desk.ok("cara", "note", ref, "first\rsecond\r\nthird")
    db = Database.open(desk.url)
    try:
        with db.read() as session:
            bodies = [note.body for note in session.exec(select(CaseNote))]
    finally:
        db.dispose()
    assert "first\nsecond\nthird" in bodies


def test_team_file_text_is_one_printable_line_of_bounded_length(
    desk: FullDesk, tmp_path: Path
) -> None:
    team = desk.files["team"].read_text()
    cases = {
        "escape": ('name = "Ana Ruiz"', 'name = "Ana \\u001b]0;pwned\\u0007"', "control"),
        "bidi": ('name = "Ana Ruiz"', 'name = "Ana \\u202eziuR"', "U+202E"),
        "huge": ('name = "Ana Ruiz"', f'name = "{"A" * 5_000_000}"', "at most 200 characters"),
    }
    assert 'name = "Ana Ruiz"' in team
    for label, (old, new, said) in cases.items():
        path = tmp_path / f"{label}.toml"
        path.write_text(team.replace(old, new))
        code, _, err = desk.run("cara", "team", "apply", str(path))
        assert code == 2, (label, err)
        assert "responder[" in err
        assert ".name: " in err
        assert said in err, (label, err[:300])
        _assert_nothing_raw(label, err)


def test_an_override_reason_is_checked_like_every_line(desk: FullDesk) -> None:
    code, _, err = desk.run(
        "cara", "override", "--schedule", "primary", "--who", "dev",
        "--from", "2027-01-10T10:00:00Z", "--to", "2027-01-10T12:00:00Z",
        "--reason", "x\x1b[2J",
    )  # fmt: skip
    assert code == 2
    assert "reason:" in err


async def test_the_console_prints_no_stored_escape(desk: FullDesk, tmp_path: Path) -> None:
    _write_by_hand(desk)
    db = Database.open(desk.url)
    try:
        opener = console_opener(db, desk.clock, tmp_path)
        async with opener(handle="cara") as console:
            await console.press("escape")  # the pending handover's dialog
            await console.settle()
            app = console.app
            update = app.screen._compositor.render_update(full=True)
            terminal = update.render_segments(app.console)
            assert "pwned" in terminal  # the text is there, its escapes are not
            for raw in ("\x1b]0;", "\x1b[2J", "\x07", "\u202e", "\u200b", "\x9b", "\rover"):
                assert raw not in terminal, repr(raw)
    finally:
        db.dispose()

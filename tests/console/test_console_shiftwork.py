"""Shift work at the console: the handover (write, submit, acknowledge, the pending one on
opening, searching past ones), post-mortems (a supervisor opens, writes and exports one; a
specialist is refused), response templates (filled, edited, logged on the case) and the
desk's figures (the Stats screen against `compute_stats` of a desk known by hand).

Each console runs against a fresh SQLite database with a frozen clock; a second person is a
second console opened after the first, or the services called from the test itself. The SVG
snapshots at the end freeze the clock too, and name the database by a relative path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select
from textual.content import Content
from textual.widgets import Input, OptionList, Select, Static, TextArea

from app.console import VigilApp, build_app
from app.console.screens.dialogs import Confirm, TextPrompt
from app.console.screens.handover import HandoverScreen, PendingHandoverDialog, parse_since
from app.console.screens.postmortem import PostMortemScreen, export_path
from app.console.screens.queue import QueueScreen
from app.console.screens.stats import StatsScreen, stats_view, tally_text
from app.console.screens.template import TemplateDialog, still_to_fill
from app.core.clock import FakeClock
from app.core.errors import BadInput
from app.engine.runner import EscalationEngine
from app.services.cases import CaseService
from app.services.shiftwork.handover import HandoverService
from app.services.shiftwork.postmortem import PostMortemService
from app.services.shiftwork.stats import SlaTally, compute_stats, load_facts
from data.db import Database
from data.models import CaseNote
from data.shiftwork import Handover, PostMortem, PostMortemAction
from tests.console_harness import FakeDesktop, OpenConsole, console_opener, snapshot_keys
from tests.factories import add_policy, add_responder, add_rotation, add_schedule
from widgets.handover_view import HandoverBrowser
from widgets.stats_view import (
    AttainmentChart,
    LoadChart,
    bucket,
    column_cells,
    horizontal_bar,
    stacked_bar,
)

SIZE = (160, 48)
MARKER = "SECRET-DETAIL-4471"
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def _desk(db: Database) -> None:
    """ana and ben take one-day turns from 08:00 UTC (ben's began at 08:00 today, so ana's
    last shift ended then and ben is the incoming person); sue supervises."""
    add_responder(db, "ana")
    add_responder(db, "ben", timezone="UTC")
    add_responder(db, "sue", "supervisor")
    add_policy(db, "standard", [(600, ["user:ben"])], route=["default"])
    add_rotation(db, "day", ["ana", "ben"], start=date(2026, 11, 1))
    add_schedule(db, "primary", ["day"])


@pytest.fixture
def desk(db: Database, clock: FakeClock) -> CaseService:
    _desk(db)
    return CaseService(db, clock)


@pytest.fixture
def open_console(db: Database, clock: FakeClock, tmp_path: Path) -> OpenConsole:
    return console_opener(db, clock, tmp_path)


def _open(service: CaseService, title: str, severity: int, **kwargs: Any) -> str:
    return service.open_case(
        "sue", title=title, category=kwargs.pop("category", "edr"), severity=severity, **kwargs
    ).ref


def _plain(widget: Static) -> str:
    rendered = widget.render()
    return rendered.plain if isinstance(rendered, Content) else str(rendered)


def _handovers(db: Database) -> list[Handover]:
    with db.read() as session:
        return list(session.exec(select(Handover).order_by(col(Handover.id))).all())


# --- the handover --------------------------------------------------------------------


async def test_write_submit_then_the_incoming_person_acknowledges_on_opening(
    desk: CaseService, open_console: OpenConsole, clock: FakeClock
) -> None:
    clock.set(NOW - timedelta(hours=2))  # in ana's shift, which ended at 08:00
    ref = _open(desk, "Threat to life: a school named", 1)
    clock.set(NOW)
    async with open_console("ana") as console:
        await console.press("h")
        screen = console.app.screen
        assert isinstance(screen, HandoverScreen)
        preview = _plain(screen.query_one("#preview", Static))
        assert "Shift of ana" in preview
        assert "incoming ben" in preview
        assert ref in preview  # still open, so it is handed over
        assert screen.notes.has_focus
        await console.type(f"Watch {ref}: police call back at noon")
        await console.press("ctrl+s")
        console.said("Handover 1 submitted for ben")
        assert screen.tabs.active == "past"
        past = screen.query_one("#past-browser", HandoverBrowser)
        assert [row.handover_id for row in past.rows] == [1]
        assert past.rows[0].state == "waiting for ben"
        assert screen.notes.text == ""
    (row,) = _handovers(desk.db)
    assert row.notes == f"Watch {ref}: police call back at noon"
    assert row.acknowledged_at is None

    async with open_console("ben") as console:
        dialog = console.app.screen
        assert isinstance(dialog, PendingHandoverDialog)
        body = _plain(dialog.query_one("#pending-body", Static))
        assert "police call back at noon" in body
        assert "Waiting for ben's acknowledgement" in body
        await console.press("a")
        console.said("Handover 1 from ana acknowledged")
        assert isinstance(console.app.screen, QueueScreen)
    (row,) = _handovers(desk.db)
    assert row.acknowledged_at == NOW
    assert row.acknowledged_by_id == row.incoming_id


async def test_the_pending_handover_opens_in_the_handover_screen_for_acknowledging(
    desk: CaseService, open_console: OpenConsole, clock: FakeClock
) -> None:
    HandoverService(desk.db, clock).submit("ana", "Quiet night; nothing open.")
    async with open_console("ben") as console:
        assert isinstance(console.app.screen, PendingHandoverDialog)
        await console.press("h")
        screen = console.app.screen
        assert isinstance(screen, HandoverScreen)
        assert screen.tabs.active == "inbox"
        inbox = screen.query_one("#inbox-browser", HandoverBrowser)
        assert [row.author for row in inbox.rows] == ["ana"]
        assert "For me (1)" in str(screen.tabs.get_tab("inbox").label)
        await console.press("a")
        console.said("Handover 1 from ana acknowledged")
        assert inbox.rows == ()
        assert _handovers(desk.db)[0].acknowledged_at is not None


async def test_later_keeps_the_handover_waiting_and_says_how_to_open_it(
    desk: CaseService, open_console: OpenConsole, clock: FakeClock
) -> None:
    HandoverService(desk.db, clock).submit("ana", "Nothing to report.")
    async with open_console("ben") as console:
        await console.press("escape")
        assert isinstance(console.app.screen, QueueScreen)
        toast = console.said("Handover 1 from ana still waits for your acknowledgement")
        assert "h opens the handover screen" in toast.message
    assert _handovers(desk.db)[0].acknowledged_at is None


async def test_the_author_cannot_acknowledge_their_own_handover(
    desk: CaseService, open_console: OpenConsole, clock: FakeClock
) -> None:
    HandoverService(desk.db, clock).submit("ana", "Over to ben.")
    async with open_console("ana") as console:
        assert isinstance(console.app.screen, QueueScreen)  # nothing waits for ana
        await console.press("h")
        await console.press("f4", "a")
        toast = console.said("only they may acknowledge it")
        assert toast.title == "Not allowed"
    assert _handovers(desk.db)[0].acknowledged_at is None


async def test_past_handovers_are_searchable(
    desk: CaseService, open_console: OpenConsole, clock: FakeClock
) -> None:
    handovers = HandoverService(desk.db, clock)
    handovers.submit("ana", "Dentist override for ben tomorrow.")
    clock.advance(minutes=30)
    handovers.submit("ben", "Agency liaison changed; new number in the wiki.")
    async with open_console("sue") as console:
        await console.press("h")
        await console.press("f4")
        await console.press("slash")
        screen = console.app.screen
        assert isinstance(screen, HandoverScreen)
        past = screen.query_one("#past-browser", HandoverBrowser)
        assert [row.author for row in past.rows] == ["ben", "ana"]  # newest first
        await console.type("dentist")
        assert [row.author for row in past.rows] == ["ana"]
        await console.press("enter")
        assert past.table.has_focus
        report = _plain(past.query_one(".report Static", Static))
        assert "Dentist override for ben tomorrow." in report
        await console.press("slash", "ctrl+u")
        await console.type("nobody wrote this")
        assert past.rows == ()


async def test_a_report_without_a_shift_asks_for_its_start(
    desk: CaseService, open_console: OpenConsole
) -> None:
    """sue is on no schedule: the preview says so, and a typed start makes the report."""
    async with open_console("sue") as console:
        await console.press("h")
        screen = console.app.screen
        assert isinstance(screen, HandoverScreen)
        assert "No report yet" in _plain(screen.query_one("#preview", Static))
        screen.query_one("#handover-since").focus()
        await console.type("2026-11-26 06:00")
        await console.press("enter")
        preview = _plain(screen.query_one("#preview", Static))
        assert "Shift of sue" in preview
        assert "from the time given" in preview


def test_since_is_read_on_the_persons_clock_unless_it_has_an_offset() -> None:
    assert parse_since("", "Australia/Sydney") is None
    assert parse_since("2026-11-26 08:00", "Australia/Sydney") == datetime(
        2026, 11, 25, 21, 0, tzinfo=UTC
    )
    assert parse_since("2026-11-26T08:00Z", "Australia/Sydney") == datetime(
        2026, 11, 26, 8, 0, tzinfo=UTC
    )
    with pytest.raises(BadInput, match=r"since.*2026-11-26 08:00"):
        parse_since("yesterday", "UTC")


async def test_closing_with_unsubmitted_notes_asks_first(
    desk: CaseService, open_console: OpenConsole
) -> None:
    async with open_console("ana") as console:
        await console.press("h")
        await console.type("half written")
        await console.press("escape")
        assert isinstance(console.app.screen, Confirm)
        await console.press("n")
        assert isinstance(console.app.screen, HandoverScreen)
        await console.press("escape")
        await console.press("y")
        assert isinstance(console.app.screen, QueueScreen)
    assert _handovers(desk.db) == []


# --- post-mortems ----------------------------------------------------------------------


async def test_a_supervisor_opens_writes_and_exports_a_post_mortem(
    desk: CaseService, open_console: OpenConsole, tmp_path: Path
) -> None:
    ref = _open(desk, "CSEA report: re-upload", 1, category="csea", details=MARKER)
    async with open_console("sue") as console:
        await console.press("P")
        assert isinstance(console.app.screen, Confirm)
        await console.press("y")
        screen = console.app.screen
        assert isinstance(screen, PostMortemScreen)
        console.said(f"Post-mortem of {ref} opened (draft)")
        facts = _plain(screen.query_one("#pm-facts", Static))
        assert "sev1 · csea · case triggered" in facts
        assert "not acknowledged" in facts
        assert screen.query_one("#pm-summary", TextArea).has_focus
        await console.type("Re-upload caught by hash match.")
        screen.query_one("#pm-root-cause").focus()
        await console.type("The hash list sync lagged.")
        screen.query_one("#pm-factors").focus()
        await console.type("Sync job paused")
        await console.press("enter")
        await console.type("No alert on lag")
        await console.press("ctrl+s")
        console.said(f"Post-mortem of {ref} saved")
        await console.press("ctrl+n")
        assert screen.query_one("#pm-action-title").has_focus
        await console.type("Alert when the sync lags")
        await console.press("enter")
        await console.type("ben")
        await console.press("enter")
        await console.type("2026-12-01")
        await console.press("enter")
        console.said(f"Action item 1 of {ref} added for ben")
        screen.query_one("#pm-status", Select).value = "review"
        await console.settle()
        console.said(f"Post-mortem of {ref} is review")
        await console.press("ctrl+o")
        prompt = console.app.screen
        assert isinstance(prompt, TextPrompt)
        await console.press("enter")
        target = tmp_path / "xdg" / "vigil" / "postmortems" / f"{ref}.md"
        assert console.said("Wrote the post-mortem").message.endswith(f"to {target}.")
        timeline = _plain(screen.query_one("#pm-timeline", Static))
    with desk.db.read() as session:
        pm = session.exec(select(PostMortem)).one()
        actions = session.exec(select(PostMortemAction)).all()
    assert (pm.summary, pm.root_cause, pm.factors, pm.status) == (
        "Re-upload caught by hash match.",
        "The hash list sync lagged.",
        "Sync job paused\nNo alert on lag",
        "review",
    )
    assert [(a.title, a.due_on) for a in actions] == [
        ("Alert when the sync lags", date(2026, 12, 1))
    ]
    exported = target.read_text(encoding="utf-8")
    assert "## Root cause\n\nThe hash list sync lagged." in exported
    assert "- No alert on lag" in exported
    assert "| 1 | Alert when the sync lags | ben | 2026-12-01 | open |" in exported
    assert MARKER not in exported
    assert MARKER not in timeline


async def test_export_to_a_typed_path(
    desk: CaseService, open_console: OpenConsole, clock: FakeClock, tmp_path: Path
) -> None:
    ref = _open(desk, "EDR: Metro Police", 2)
    PostMortemService(desk.db, clock).open_for("sue", ref, "Handled within the hour.")
    target = tmp_path / "reviews" / "edr.md"
    async with open_console("sue") as console:
        await console.press("P")
        await console.press("ctrl+o")
        prompt = console.app.screen
        assert isinstance(prompt, TextPrompt)
        prompt.query_one("#prompt-input", Input).value = str(target)
        await console.press("enter")
        console.said(f"to {target}")
    assert "Handled within the hour." in target.read_text(encoding="utf-8")


def test_export_paths_default_to_the_data_folder(tmp_path: Path) -> None:
    folder = tmp_path / "xdg" / "vigil" / "postmortems"
    assert export_path("", "ESC-0007") == folder / "ESC-0007.md"
    assert export_path("q4/esc7.md", "ESC-0007") == folder / "q4" / "esc7.md"
    assert export_path(str(tmp_path / "x.md"), "ESC-0007") == tmp_path / "x.md"


async def test_a_specialist_is_refused_opening_a_post_mortem(
    desk: CaseService, open_console: OpenConsole
) -> None:
    _open(desk, "Threat to life", 1)
    async with open_console("ana") as console:
        await console.press("P")
        toast = console.said("only supervisors and admins may open one")
        assert toast.title == "Not allowed"
        assert isinstance(console.app.screen, QueueScreen)
    with desk.db.read() as session:
        assert session.exec(select(PostMortem)).all() == []


async def test_a_specialist_reads_a_post_mortem_but_may_not_edit_it(
    desk: CaseService, open_console: OpenConsole, clock: FakeClock
) -> None:
    ref = _open(desk, "Threat to life", 1)
    PostMortemService(desk.db, clock).open_for("sue", ref, "What happened.")
    async with open_console("ana") as console:
        await console.press("P")
        screen = console.app.screen
        assert isinstance(screen, PostMortemScreen)
        summary = screen.query_one("#pm-summary", TextArea)
        assert (summary.text, summary.read_only) == ("What happened.", True)
        assert screen.query_one("#pm-status", Select).disabled
        assert "Read only" in _plain(screen.query_one("#pm-status-note", Static))
        await console.press("ctrl+s")
        assert console.said("Only supervisors and admins may edit").severity == "error"


async def test_a_refused_status_change_shows_the_stored_status_again(
    desk: CaseService, open_console: OpenConsole, clock: FakeClock
) -> None:
    ref = _open(desk, "Still open", 2)
    PostMortemService(desk.db, clock).open_for("sue", ref)
    async with open_console("sue") as console:
        await console.press("P")
        status = console.app.screen.query_one("#pm-status", Select)
        status.value = "final"
        await console.settle()
        assert console.said("resolve it before final").title == "Not allowed"
        assert status.value == "draft"


# --- response templates ----------------------------------------------------------------


async def test_fill_a_template_edit_it_and_log_it_on_the_case(
    desk: CaseService, open_console: OpenConsole
) -> None:
    ref = _open(desk, "EDR: Metro Police welfare check", 2, details="Officer on the phone.")
    async with open_console("ana") as console:
        await console.press("T")
        dialog = console.app.screen
        assert isinstance(dialog, TemplateDialog)
        options = dialog.query_one("#template-list", OptionList)
        names = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert names == ["disclosure_decision", "emergency_ack", "internal_update", "more_info"]
        options.highlighted = names.index("more_info")
        await console.press("enter")
        editor = dialog.editor
        assert editor.text.startswith("Subject: More information needed for your request")
        assert f"(our reference {ref})" in editor.text
        assert "[officer]" in _plain(dialog.query_one("#template-about", Static))
        editor.text = editor.text.replace("[officer]", "Sergeant Lee").replace(
            "[agency]", "Metro Police"
        )
        editor.focus()
        editor.move_cursor(editor.document.end)
        await console.type("PS: call us back")
        await console.press("ctrl+s")
        assert isinstance(console.app.screen, Confirm)  # two fields are still [bracketed]
        await console.press("y")
        console.said(f"Logged the response on {ref} as a note")
        assert isinstance(console.app.screen, QueueScreen)
        await console.poll()
        view = console.screen.detail.view
        assert view is not None
        assert view.notes[-1].body.startswith("Subject: More information needed")
    with desk.db.read() as session:
        (note,) = session.exec(select(CaseNote)).all()
    assert "Dear Sergeant Lee," in note.body
    assert note.body.endswith("PS: call us back")
    assert "[request_reference]" in note.body


async def test_a_sensitive_case_is_filled_without_its_details(
    desk: CaseService, open_console: OpenConsole, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = tmp_path / "config" / "vigil" / "templates"
    team.mkdir(parents=True)
    (team / "facts.md").write_text(
        '+++\ntitle = "Facts"\naudience = "internal"\n+++\n{ref}: {details}\n', encoding="utf-8"
    )
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    ref = _open(desk, "CSEA report", 1, category="csea", details=MARKER)
    async with open_console("ana") as console:
        await console.press("T")
        dialog = console.app.screen
        assert isinstance(dialog, TemplateDialog)
        options = dialog.query_one("#template-list", OptionList)
        options.highlighted = 0
        # Those for any category come first for csea (the shipped ones for law enforcement
        # name other categories): the team's own, then the internal update.
        assert [options.get_option_at_index(i).id for i in (0, 1)] == ["facts", "internal_update"]
        assert dialog.editor.text.startswith(f"{ref}: [sensitive details withheld")
        assert MARKER not in dialog.editor.text
        await console.press("escape")
        assert isinstance(console.app.screen, QueueScreen)
    with desk.db.read() as session:
        assert session.exec(select(CaseNote)).all() == []


def test_fields_still_to_fill_are_the_bracketed_ones_left() -> None:
    assert still_to_fill("Dear [officer], from [agency]", ("officer", "agency", "date")) == [
        "officer",
        "agency",
    ]
    assert still_to_fill("Dear Sergeant Lee", ("officer",)) == []


# --- the desk's figures -------------------------------------------------------------------


def _known_desk(db: Database, clock: FakeClock) -> CaseService:
    """Three cases this morning (UTC), each paging ben (who lives on UTC) at once:

    ESC-0001 sev1 edr at 03:00 (night for ben): acked 03:04, resolved 04:00.
    ESC-0002 sev2 csea at 07:10: acked 07:20, a note (the first response) at 07:30.
    ESC-0003 sev3 other at 07:40: never acknowledged; its 1h ack deadline passed at 08:40.
    """
    cases = CaseService(db, clock)
    engine = EscalationEngine(db, clock, name="test")

    def at(hour: int, minute: int = 0) -> None:
        clock.set(datetime(2026, 11, 26, hour, minute, tzinfo=UTC))

    at(3)
    first = _open(cases, "EDR at night", 1)
    engine.run_due()
    at(3, 4)
    cases.acknowledge("ben", first)
    at(4)
    cases.resolve("ben", first)
    at(7, 10)
    second = _open(cases, "CSEA report", 2, category="csea")
    engine.run_due()
    at(7, 20)
    cases.acknowledge("ben", second)
    at(7, 30)
    cases.add_note("ben", second, "Reported to the hotline.")
    at(7, 40)
    _open(cases, "Spam wave", 3, category="other")
    engine.run_due()
    clock.set(NOW)
    return cases


async def test_the_stats_screen_draws_the_figures_of_compute_stats(
    db: Database, clock: FakeClock, open_console: OpenConsole
) -> None:
    _desk(db)
    _known_desk(db, clock)
    since = NOW - timedelta(days=7)
    with db.read() as session:
        facts = load_facts(session, since, NOW)
    expected = compute_stats(facts, since, NOW, zone="Australia/Sydney")
    # The same figures, checked by hand.
    assert expected.cases_opened == 3
    tta = expected.time_to_acknowledge
    assert (tta.mean_seconds, tta.p90_seconds) == (420, 600)
    assert (expected.pages, expected.night_pages) == (3, 1)
    async with open_console("ana") as console:
        await console.press("s")
        screen = console.app.screen
        assert isinstance(screen, StatsScreen)
        assert screen.stats == expected
        board = screen.board
        assert board.view == stats_view(expected, 7)
        tiles = [_plain(tile) for tile in board.query(".stats-figure Static").results(Static)]
        assert tiles[:2] == ["3", "busiest Thu 26 Nov: 3"]
        assert "mean 7m 00s  p90 10m 00s" in tiles
        assert "mean 1h 00m  p90 1h 00m" in tiles
        assert "3 sent, 1 at night" in tiles
        severity = board.query_one("#stats-by-severity", AttainmentChart).render()
        assert isinstance(severity, Content)
        lines = severity.plain.splitlines()
        rows = {line.split()[0]: " ".join(line.split()[1:]) for line in lines[1:]}
        # sev1: acknowledged in 4 of its 5 minutes; resolved without a first response, so
        # the 30-minute respond deadline was missed. sev3: not acknowledged within the hour,
        # its 8-hour respond deadline still ahead.
        assert rows["sev1"].startswith("1 ")
        assert "100% 1/1" in rows["sev1"]
        assert rows["sev1"].endswith("0% 0/1")
        assert "0% 0/1" in rows["sev3"]
        assert rows["sev3"].endswith("1 pending")
        assert rows["sev4"].startswith("0 ")
        load = board.query_one("#stats-load", LoadChart).render()
        assert isinstance(load, Content)
        ben = next(line for line in load.plain.splitlines() if line.startswith("ben"))
        assert ben.split()[-5:] == ["3", "pages", "1", "night", "100%"]
        assert "Fairness of the load 0.33" in load.plain
        await console.press("p")
        assert screen.days == 30
        assert _plain(board.query_one("#stats-period", Static)).startswith("Last 30 days")
        await console.press("escape")
        assert isinstance(console.app.screen, QueueScreen)


def test_attainment_is_worded_met_out_of_decided() -> None:
    assert tally_text(SlaTally(met=5, missed=1, pending=2)) == "83% 5/6"
    assert tally_text(SlaTally(pending=2)) == "2 pending"
    assert tally_text(SlaTally()) == "-"


def test_bars_and_columns_scale_to_the_eighth_of_a_cell() -> None:
    assert horizontal_bar(0.5, 10) == "█████"
    assert horizontal_bar(0.5, 1) == "▌"
    assert horizontal_bar(1 / 8, 2) == "▎"
    assert horizontal_bar(2.0, 3) == "███"
    day, night = stacked_bar(0.5, 0.25, 8)
    assert (day, night) == ("████", "██")
    assert len("".join(stacked_bar(0.33, 0.67, 7))) <= 7
    assert column_cells(8, 8, 2) == ["█", "█"]
    assert column_cells(1, 100, 2) == [" ", "▁"]  # above zero always shows
    assert column_cells(0, 0, 2) == [" ", " "]
    assert bucket([1, 2, 3, 4, 5], 2) == [6, 9]
    assert bucket([1, 2], 5) == [1, 2]


# --- snapshots ------------------------------------------------------------------------------

WIDE = (160, 48)
NARROW = (80, 24)

SnapCompare = Callable[..., bool]


@pytest.fixture
def snap_desk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Database, FakeClock]]:
    """The known desk of the figures: ana's shift ended at 08:00, ben's is under way."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    db = Database.open("sqlite:///vigil.db")
    clock = FakeClock(NOW)
    _desk(db)
    _known_desk(db, clock)
    yield db, clock
    db.dispose()


def _snap_app(snap_desk: tuple[Database, FakeClock], handle: str) -> VigilApp:
    db, clock = snap_desk
    app = build_app(
        db,
        clock,
        handle,
        engine=False,
        desktop=FakeDesktop(),
        settings_file=Path("no-settings.toml"),
        cursor_blink=False,
    )
    assert app is not None
    return app


NOTES = "ESC-0003 paged nobody who answered; sue knows. Hotline replied on ESC-0002."


def test_handover_wide(snap_compare: SnapCompare, snap_desk: tuple[Database, FakeClock]) -> None:
    """ana's handover being written: the form beside the report of her shift (cases opened,
    acknowledged and resolved, the sev3 still open with its missed deadline, ben next)."""
    assert snap_compare(
        _snap_app(snap_desk, "ana"), terminal_size=WIDE, run_before=snapshot_keys("h", text=NOTES)
    )


def test_handover_narrow(snap_compare: SnapCompare, snap_desk: tuple[Database, FakeClock]) -> None:
    """At 80x24 the form goes above the report."""
    assert snap_compare(
        _snap_app(snap_desk, "ana"), terminal_size=NARROW, run_before=snapshot_keys("h", text=NOTES)
    )


def test_stats_wide(snap_compare: SnapCompare, snap_desk: tuple[Database, FakeClock]) -> None:
    """The figures of the known desk: tiles, cases per day, attainment bars, the load."""
    assert snap_compare(
        _snap_app(snap_desk, "ana"), terminal_size=WIDE, run_before=snapshot_keys("s")
    )


def test_stats_narrow(snap_compare: SnapCompare, snap_desk: tuple[Database, FakeClock]) -> None:
    """At 80x24 the tiles take two rows and the board scrolls."""
    assert snap_compare(
        _snap_app(snap_desk, "ana"), terminal_size=NARROW, run_before=snapshot_keys("s")
    )

"""The desk's second round of console features, driven from the keyboard with Pilot:
marking cases for bulk acknowledge, resolve and reassign.

As in test_console.py, each test opens the console as one person on a fresh SQLite
database with a frozen clock; "another console" is the case service called from the test.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from app.console.bulk import BulkOutcome, bulk_summary, run_bulk
from app.console.screens.dialogs import TextPrompt
from app.console.screens.handover import HandoverScreen
from app.console.screens.inbox import InboxScreen
from app.console.settings import load_settings
from app.core.clock import FakeClock
from app.services.cases import CaseService
from app.services.casework.service import CaseworkService
from app.services.shiftwork.handover import HandoverService
from data.db import Database
from data.models import AuditRecord, Case, Responder
from data.queries import QueueFilter
from tests.console_harness import Console, OpenConsole, console_opener
from tests.factories import add_policy, add_responder


@pytest.fixture
def service(db: Database, clock: FakeClock) -> CaseService:
    add_responder(db, "ana")
    add_responder(db, "ben")
    add_responder(db, "sue", "supervisor")
    add_policy(db, "standard", [(600, ["user:ben"])], route=["default"])
    return CaseService(db, clock)


@pytest.fixture
def open_console(db: Database, clock: FakeClock, tmp_path: Path) -> OpenConsole:
    return console_opener(db, clock, tmp_path)


def _open(service: CaseService, title: str, severity: int) -> str:
    return service.open_case("sue", title=title, category="edr", severity=severity).ref


def _case(db: Database, ref: str) -> Case:
    with db.read() as session:
        return session.exec(select(Case).where(Case.ref == ref)).one()


def _audit_actions(db: Database, action: str) -> list[str | None]:
    with db.read() as session:
        records = session.exec(
            select(AuditRecord).where(AuditRecord.action == action).order_by(col(AuditRecord.seq))
        ).all()
        return [record.case_ref for record in records]


def _line(console: Console, ref: str) -> str:
    table = console.screen.table
    index = table.index_of(_case(console.app.db, ref).id or 0)
    assert index is not None
    return table.render_line(index + 1 - int(table.scroll_offset.y)).text


def _summary(console: Console) -> str:
    return str(console.screen.query_one("#filter-summary").render())


# --- marking ------------------------------------------------------------------------


async def test_space_marks_the_row_moves_on_and_the_bar_counts_the_marks(
    service: CaseService, open_console: Callable[..., Any]
) -> None:
    refs = [_open(service, f"Case {n}", n) for n in (1, 2, 3)]
    async with open_console() as console:
        assert "✓" not in _line(console, refs[0])
        await console.press("space")
        assert console.cursor_ref() == refs[1]
        await console.press("space")
        assert [ref for _, ref in console.screen.table.marked] == refs[:2]
        assert _line(console, refs[0]).startswith("✓")
        assert _line(console, refs[1]).startswith("✓")
        assert not _line(console, refs[2]).startswith("✓")
        assert "2 marked" in _summary(console)
        await console.press("k", "space")  # space again unmarks
        assert [ref for _, ref in console.screen.table.marked] == refs[:1]
        assert "1 marked" in _summary(console)
        await console.press("escape")
        assert console.screen.table.marked == ()
        assert "marked" not in _summary(console)
        assert "✓" not in _line(console, refs[0])


async def test_a_new_filter_drops_the_marks(
    service: CaseService, open_console: Callable[..., Any]
) -> None:
    _open(service, "Urgent", 1)
    _open(service, "Routine", 3)
    async with open_console() as console:
        await console.press("space")
        await console.press("1")
        assert console.screen.table.marked == ()


# --- bulk actions -------------------------------------------------------------------


async def test_bulk_acknowledge_acts_on_each_marked_case_with_an_audit_record_each(
    service: CaseService, open_console: Callable[..., Any]
) -> None:
    refs = [_open(service, f"Case {n}", n) for n in (1, 2, 3)]
    async with open_console() as console:
        await console.press("space", "space")
        await console.press("a")
        assert [_case(service.db, ref).status for ref in refs] == [
            "acknowledged",
            "acknowledged",
            "triggered",
        ]
        assert _audit_actions(service.db, "case.ack") == refs[:2]
        toast = console.said("2 cases acknowledged")
        assert toast.message == f"{refs[0]}, {refs[1]}"
        assert console.screen.table.marked == ()
        rows = {row.ref: row.status for row in map(console.screen.table.row_at, range(3)) if row}
        assert rows[refs[0]] == rows[refs[1]] == "acknowledged"


async def test_bulk_resolve_reports_each_refusal_and_keeps_those_cases_marked(
    service: CaseService, open_console: Callable[..., Any]
) -> None:
    mine = _open(service, "Mine to close", 1)
    bens = _open(service, "Ben's case", 2)
    free = _open(service, "Nobody's", 3)
    service.acknowledge("ana", mine)
    service.acknowledge("ben", bens)
    async with open_console() as console:
        # the queue: triggered first (free), then acknowledged by severity (mine, bens)
        assert console.refs() == [free, mine, bens]
        await console.press("space", "space", "space")
        await console.press("r")
        prompt = console.app.screen
        assert isinstance(prompt, TextPrompt)
        await console.type("closed together")
        await console.press("enter")
        assert _case(service.db, mine).status == "resolved"
        assert _case(service.db, free).status == "resolved"
        assert _case(service.db, bens).status == "acknowledged"
        toast = console.said("2 cases resolved, 1 not")
        assert toast.severity == "warning"
        assert f"{bens}: {bens} is assigned to ben" in toast.message
        assert [ref for _, ref in console.screen.table.marked] == [bens]
        assert console.refs() == [bens]
        assert sorted(_audit_actions(service.db, "case.resolve")) == sorted([mine, free])


async def test_a_supervisor_reassigns_the_marked_cases_to_one_person(
    service: CaseService, open_console: Callable[..., Any]
) -> None:
    refs = [_open(service, f"Case {n}", n) for n in (1, 2)]
    async with open_console("sue") as console:
        await console.press("space", "space", "R")
        await console.type("ben")
        await console.press("enter")
        with service.db.read() as session:
            ben = session.exec(select(Responder).where(Responder.handle == "ben")).one()
        assert [_case(service.db, ref).assignee_id for ref in refs] == [ben.id, ben.id]
        assert _audit_actions(service.db, "case.reassign") == refs
        console.said("2 cases reassigned")


# --- the bulk runner on its own -----------------------------------------------------


def test_a_database_failure_stops_the_run_and_says_which_cases_were_not_tried(
    service: CaseService, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    refs = [_open(service, f"Case {n}", n) for n in (1, 2, 3)]
    cases = tuple((_case(service.db, ref).id or 0, ref) for ref in refs)
    real = service.acknowledge
    calls: list[str] = []

    def flaky(actor: str, ref: str) -> Case:
        calls.append(ref)
        if ref == refs[1]:
            raise OperationalError("UPDATE case", {}, Exception("database is locked"))
        return real(actor, ref)

    monkeypatch.setattr(service, "acknowledge", flaky)
    outcomes = run_bulk(service, "ana", "ack", cases, "")
    assert calls == refs[:2]
    assert [o.done for o in outcomes] == [True, False, False]
    assert "database is locked" in outcomes[1].problem
    assert outcomes[2].problem == "not tried: the database did not answer"
    assert _case(service.db, refs[2]).status == "triggered"


def test_the_summary_counts_in_the_singular_and_lists_each_problem() -> None:
    title, text = bulk_summary("ack", (BulkOutcome(1, "ESC-0001"),))
    assert (title, text) == ("1 case acknowledged", "ESC-0001")
    title, text = bulk_summary(
        "resolve", (BulkOutcome(1, "ESC-0001", "already resolved"), BulkOutcome(2, "ESC-0002"))
    )
    assert title == "1 case resolved, 1 not"
    assert text == "ESC-0001: already resolved"


# --- snooze and reopen --------------------------------------------------------------


async def test_snooze_asks_until_and_why_then_the_case_leaves_the_queue_for_the_snoozed_view(
    service: CaseService, open_console: Callable[..., Any], clock: FakeClock
) -> None:
    ref = _open(service, "Waiting on the agency", 2)
    other = _open(service, "Other", 3)
    async with open_console() as console:
        await console.press("z")
        await console.type("nonsense")
        await console.press("enter")
        assert console.said("until: expected a duration such as 4h").severity == "error"
        assert _case(service.db, ref).snoozed_until is None
        await console.press("z")
        await console.type("2h")
        await console.press("enter")
        assert isinstance(console.app.screen, TextPrompt)
        await console.type("agency calls back")
        await console.press("enter")
        case = _case(service.db, ref)
        assert case.snoozed_until == clock.now() + timedelta(hours=2)
        assert case.snooze_reason == "agency calls back"
        console.said(f"{ref} snoozed until")
        assert console.refs() == [other]
        await console.press("Z")
        assert console.refs() == [ref]
        assert _summary(console).startswith("1 snoozed case · snoozed only")
        view = console.screen.detail.view
        assert view is not None
        assert view.snoozed_until == case.snoozed_until
        live = str(console.screen.detail.query_one("#detail-live").render())
        assert "Snoozed     until" in live
        assert "pages again in 2:00:00" in live


async def test_reopen_a_case_resolved_today_from_the_queue(
    service: CaseService, open_console: Callable[..., Any]
) -> None:
    ref = _open(service, "Closed too soon", 2)
    service.resolve("sue", ref)
    async with open_console("sue") as console:
        await console.press("f")  # the filter dialog: include resolved cases
        await console.press("tab", "tab", "space", "ctrl+s")
        assert console.refs() == [ref]
        await console.press("o")
        await console.type("second request arrived")
        await console.press("enter")
        assert _case(service.db, ref).status == "acknowledged"
        console.said(f"{ref} reopened")
        assert _audit_actions(service.db, "case.reopen") == [ref]


# --- copy ---------------------------------------------------------------------------


async def test_y_copies_the_reference_through_osc_52_and_the_marked_ones_together(
    service: CaseService, open_console: Callable[..., Any]
) -> None:
    import base64

    refs = [_open(service, f"Case {n}", n) for n in (1, 2, 3)]
    async with open_console() as console:
        driver = console.app._driver
        assert driver is not None
        written: list[str] = []
        write = driver.write

        def recording(data: str) -> None:
            written.append(data)
            write(data)

        driver.write = recording  # type: ignore[method-assign]
        await console.press("y")
        assert console.app.clipboard == refs[0]
        encoded = base64.b64encode(refs[0].encode()).decode()
        assert f"\x1b]52;c;{encoded}\a" in written
        console.said(f"{refs[0]} copied to the clipboard")
        await console.press("j", "space", "space", "y")
        assert console.app.clipboard == f"{refs[1]} {refs[2]}"


# --- the full-screen case -----------------------------------------------------------


@pytest.mark.parametrize("size", [(160, 48), (80, 24)])
async def test_x_shows_the_case_full_screen_with_every_section_and_acts_on_it(
    service: CaseService, open_console: Callable[..., Any], size: tuple[int, int]
) -> None:
    ref = _open(service, "Whole case", 2)
    service.add_note("sue", ref, "called the agency")
    async with open_console(size=size) as console:
        screen = console.screen
        await console.press("x")
        assert screen.has_class("-case-full")
        assert not screen.table.display
        assert screen.detail.region.width == size[0]
        assert screen.detail.has_focus
        text = "\n".join(
            str(part.render())
            for part in screen.detail.query(
                "#detail-head, #detail-live, #detail-body, #detail-history"
            )
        )
        for section in (
            "Whole case",
            "Acknowledge",
            "Escalation",
            "Details",
            "Pages (",
            "Notes (1)",
            "called the agency",
            "Timeline (",
        ):
            assert section in text, section
        await console.press("a")  # the case keys act on the case shown
        assert _case(service.db, ref).status == "acknowledged"
        await console.press("escape")
        assert not screen.has_class("-case-full")
        assert screen.table.has_focus
        assert screen.table.region.width > 0


# --- legal clocks -------------------------------------------------------------------


async def test_l_shows_only_cases_with_legal_clocks_a_resolved_one_that_owes_a_report_too(
    service: CaseService, open_console: Callable[..., Any]
) -> None:
    owed = service.open_case("sue", title="CSEA report", category="csea", severity=1).ref
    service.resolve("sue", owed)  # its CyberTipline report is not filed
    edr = _open(service, "EDR", 2)
    done = service.open_case("sue", title="Spam", category="other", severity=4).ref
    service.resolve("sue", done)
    async with open_console() as console:
        assert sorted(console.refs()) == sorted([owed, edr])
        await console.press("L")
        assert console.refs() == [owed]
        assert "legal clocks" in _summary(console)
        row = console.screen.table.cursor_row
        assert row is not None
        assert (row.status, row.clock_kind) == ("resolved", "deadline")
        await console.press("L")
        assert sorted(console.refs()) == sorted([owed, edr])


async def test_bulk_resolve_leaves_a_case_that_owes_a_report_for_its_own_confirmation(
    service: CaseService, open_console: Callable[..., Any]
) -> None:
    owed = service.open_case("sue", title="CSEA report", category="csea", severity=1).ref
    edr = _open(service, "EDR", 2)
    async with open_console("sue") as console:
        await console.press("space", "space", "r", "enter")
        assert _case(service.db, edr).status == "resolved"
        assert _case(service.db, owed).status == "triggered"
        toast = console.said("1 case resolved, 1 not")
        assert f"{owed}: still owes CyberTipline report to NCMEC" in toast.message
        assert "resolve it on its own to confirm" in toast.message


# --- the header at any width ----------------------------------------------------------


@pytest.mark.parametrize("width", [30, 40, 50, 60, 70, 80, 100, 120, 160, 200])
def test_the_header_keeps_the_engines_state_at_any_width(width: int, clock: FakeClock) -> None:
    from widgets.header import Identity, OnCallView, StatusHeader

    now = clock.now()
    header = StatusHeader(
        Identity("ana", "specialist", "Australia/Sydney", "sqlite:/a/long/path/to/vigil.db"),
        now=now,
    )
    on_call = (OnCallView("primary", "ana", "ben", now + timedelta(hours=3)),)
    header.set_status(on_call, now - timedelta(minutes=5))
    line = str(header._status_line(width, with_on_call=True))
    assert len(line) <= width
    assert "engine 5m ago (stopped?)" in line
    if width >= 50:
        assert "ana (specialist)" in line
    header.set_status(on_call, now - timedelta(minutes=5), timedelta(minutes=11))
    line = str(header._status_line(width, with_on_call=True))
    assert "engine 5m ago (stopped?)" in line
    if width >= 80:
        assert "clock 11m ahead of the database" in line


@pytest.mark.parametrize("width", [80, 160])
def test_the_header_says_when_chat_pages_wait_for_an_engine_login(
    width: int, clock: FakeClock
) -> None:
    from widgets.header import Identity, OnCallView, StatusHeader

    now = clock.now()
    header = StatusHeader(
        Identity("ana", "specialist", "Australia/Sydney", "postgresql://db/vigil"), now=now
    )
    on_call = (OnCallView("primary", "ana", "ben", now + timedelta(hours=3)),)
    header.set_status(on_call, now - timedelta(seconds=5))
    assert "pages wait" not in str(header._status_line(width, with_on_call=False))
    header.set_status(on_call, now - timedelta(seconds=5), no_sender=True)
    line = str(header._status_line(width, with_on_call=width < 100))
    assert len(line) <= width
    assert "engine 5s ago" in line
    assert "chat/push pages wait" in line


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_a_stopped_engine_and_a_database_problem_stay_in_the_header(
    service: CaseService,
    open_console: Callable[..., Any],
    db: Database,
    clock: FakeClock,
    size: tuple[int, int],
) -> None:
    from data.escalation import EngineHeartbeat

    with db.write() as session:
        session.add(
            EngineHeartbeat(
                name="engine@elsewhere",
                started_at=clock.now() - timedelta(hours=1),
                last_cycle_at=clock.now() - timedelta(minutes=5),
            )
        )
    async with open_console(size=size) as console:
        header = console.screen.header
        header.trouble = "The database did not answer: database is locked"
        await console.settle()
        lines = str(header.render()).splitlines()
        assert "engine 5m ago (stopped?)" in lines[0]
        assert "ana (specialist)" in lines[0]
        assert ("on call" in lines[0]) is False  # at 80 it gave way; at 160 it has a line
        assert any(line.startswith("The database did not answer") for line in lines)
        assert all(len(line) <= size[0] for line in lines)


# --- merging duplicates ---------------------------------------------------------------


async def test_shift_m_merges_the_selected_case_into_the_one_named(
    service: CaseService, open_console: Callable[..., Any]
) -> None:
    keep = _open(service, "EDR: Metro PD", 1)
    dup = _open(service, "EDR: Metro PD again", 2)
    async with open_console() as console:
        await console.press("j", "M")
        await console.type(keep)
        await console.press("enter")
        assert _case(service.db, dup).status == "resolved"
        console.said(f"{dup} merged into {keep} and resolved")
        await console.poll()
        assert console.refs() == [keep]
        view = console.screen.detail.view
        assert view is not None
        assert view.timeline[-1].text.startswith(f"{dup} (EDR: Metro PD again) merged into")


# --- the inbox ----------------------------------------------------------------------


async def test_the_inbox_lists_what_waits_and_enter_goes_to_the_case(
    db: Database, clock: FakeClock, service: CaseService, open_console: Callable[..., Any]
) -> None:
    refs = [_open(service, f"Case {n}", n) for n in (1, 2, 3)]
    casework = CaseworkService(db, clock)
    clock.advance(minutes=5)
    casework.add_action("sue", refs[2], "Call the officer back", owner="ana")
    clock.advance(minutes=5)
    since = clock.now() - timedelta(hours=8)
    HandoverService(db, clock).submit("ben", "Quiet night.", since=since, to="ana")
    async with open_console() as console:
        await console.press("escape")  # the handover shown at opening: later
        assert console.cursor_ref() == refs[0]
        await console.press("i")
        screen = console.app.screen
        assert isinstance(screen, InboxScreen)
        lines = [
            screen.inbox.render_line(y).text for y in range(1, len(screen.inbox.rows_shown) + 1)
        ]
        assert "Action item" in lines[0]
        assert f"{refs[2]}: Call the officer back" in lines[0]
        assert "Enter, then I" in lines[0]
        assert "Acknowledge handover" in lines[1]
        assert "Enter, then a" in lines[1]
        # In ana's zone: the item was added at 09:05 UTC, 20:05 in Sydney.
        assert "20:05" in lines[0]
        await console.press("enter")
        assert console.app.screen is console.screen
        assert console.cursor_ref() == refs[2]
        await console.press("i", "down", "enter")
        assert isinstance(console.app.screen, HandoverScreen)
        assert console.app.screen.initial_tab == "inbox"


async def test_an_empty_inbox_says_so_and_escape_leaves_the_cursor_alone(
    service: CaseService, open_console: Callable[..., Any]
) -> None:
    refs = [_open(service, f"Case {n}", n) for n in (1, 2)]
    async with open_console() as console:
        await console.press("down", "i")
        assert "Nothing waits on you." in str(console.app.screen.query_one("#inbox-empty").render())
        await console.press("escape")
        assert console.app.screen is console.screen
        assert console.cursor_ref() == refs[1]


# --- sort and saved views -----------------------------------------------------------


async def test_s_orders_by_each_column_and_paging_follows_the_order(
    db: Database, clock: FakeClock, service: CaseService, open_console: Callable[..., Any]
) -> None:
    """Forty cases, more than a screen: every order is read by seeking, so the rows the
    table pages in further down are those of the chosen order."""
    for n in range(40):
        clock.advance(minutes=1)
        ref = _open(service, f"Case {n}", 4 - n % 4)
        if n % 3 == 0:
            service.acknowledge("ben", ref)
    with db.read() as session:
        opened = list(session.exec(select(Case)).all())

    def order(*key: Callable[[Case], Any]) -> list[str]:
        return [c.ref for c in sorted(opened, key=lambda c: tuple(k(c) for k in key))]

    expected = {
        "severity": order(lambda c: c.severity, lambda c: c.queue_rank, lambda c: c.created_at),
        "age": order(lambda c: c.created_at),
        "status": order(lambda c: c.queue_rank, lambda c: c.created_at),
        "queue": order(lambda c: c.queue_rank, lambda c: c.severity, lambda c: c.created_at),
    }
    async with open_console() as console:
        for sort in ("severity", "age", "status", "queue"):
            await console.press("S")
            await console.press("G")  # the bottom: the table seeks the rows it lacks
            await console.press("g")
            assert console.refs() == expected[sort], sort
            assert (f"by {sort}" in _summary(console)) == (sort != "queue")


async def test_a_saved_view_is_written_to_the_config_file_and_recalled_by_name(
    service: CaseService, open_console: Callable[..., Any], tmp_path: Path
) -> None:
    refs = [_open(service, f"Case {n}", n) for n in (1, 2, 3, 2)]
    settings = tmp_path / "console.toml"
    settings.write_text('# mine\n[keymap]\n"queue.note" = "N"\n', encoding="utf-8")
    async with open_console(settings_file=settings) as console:
        await console.press("2", "S", "S")  # sev2 only, by age
        assert console.refs() == [refs[1], refs[3]]
        await console.press("w")
        await console.type("sev2 by age")
        await console.press("enter")
        console.said("View “sev2 by age” saved.")
        await console.press("escape")
        assert len(console.refs()) == 4
        await console.press("W")
        await console.type("sev2 by age")
        await console.press("enter")
        assert console.refs() == [refs[1], refs[3]]
        assert "sev2 · by age" in _summary(console)
        await console.press("W")
        await console.type("nothing")
        await console.press("enter")
        console.said("No view named “nothing”.")
    text = settings.read_text(encoding="utf-8")
    assert text.startswith('# mine\n[keymap]\n"queue.note" = "N"\n')  # kept as it was
    assert '[views."sev2 by age"]\nseverities = [2]\nsort = "age"\n' in text
    # A console opened later has the view.
    async with open_console(settings_file=settings) as console:
        await console.press("W")
        await console.type("sev2 by age")
        await console.press("enter")
        assert console.refs() == [refs[1], refs[3]]


def test_a_wrong_saved_view_names_its_key_path(tmp_path: Path) -> None:
    path = tmp_path / "console.toml"
    path.write_text(
        '[views.a]\nsort = "sla"\n[views.b]\nseverities = [5]\n[views.c]\ncolour = 1\n'
        '[views.d]\nmine = true\nsort = "age"\n',
        encoding="utf-8",
    )
    settings = load_settings(set(), path)
    assert settings.problems == (
        "console.toml: views.a.sort: expected one of queue, severity, age, status, got 'sla'",
        "console.toml: views.b.severities: expected numbers 1 to 4, got [5]",
        "console.toml: views.c.colour: unknown filter; expected one of mine, unassigned, "
        "snoozed, include_resolved, search, categories, severities, clocks, sort",
    )
    assert settings.views == {"d": QueueFilter(mine=True, sort="age")}


async def test_the_inbox_says_when_the_filters_hide_the_case_it_goes_to(
    db: Database, clock: FakeClock, service: CaseService, open_console: Callable[..., Any]
) -> None:
    refs = [_open(service, f"Case {n}", n) for n in (1, 3)]
    CaseworkService(db, clock).add_action("sue", refs[1], "Call back", owner="ana")
    async with open_console() as console:
        await console.press("1")  # sev1 only: the sev3 case is hidden
        await console.press("i", "enter")
        assert console.app.screen is console.screen
        console.said("That case is not in the queue as filtered; Esc clears the filters.")
        assert console.cursor_ref() == refs[0]

"""SVG snapshots of the console, at 80x24 (usable) and 160x48 (comfortable).

Every snapshot runs against the same small desk, built with a frozen clock, so the
countdowns, ages and the header's clock never move; the database is a relative path
so the header names it the same way on every machine. Review the report before
accepting a change with `--snapshot-update`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.console import VigilApp, build_app
from app.core.clock import FakeClock
from app.delivery.local import UNAVAILABLE, DesktopOutcome, claim_my_pages, record_desktop
from app.services.cases import CaseService
from app.services.casework.service import CaseworkService
from app.services.shiftwork.handover import HandoverService
from data.db import Database
from tests.console_harness import snapshot_keys
from tests.factories import add_policy, add_responder

WIDE = (160, 48)
NARROW = (80, 24)
START = datetime(2026, 11, 26, 8, 10, tzinfo=UTC)

SnapCompare = Callable[..., bool]


class NoDesktop:
    def notify(self, title: str, message: str) -> DesktopOutcome:
        return DesktopOutcome(UNAVAILABLE, "no notification backend")


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Database, FakeClock]]:
    """Five open cases in every state the queue shows, one of them sensitive and one
    paged to ana; a resolved one stays out of the open queue."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    db = Database.open("sqlite:///vigil.db")
    clock = FakeClock(START)
    ana = add_responder(db, "ana", contacts=("console", "desktop"))
    add_responder(db, "ben", timezone="America/New_York")
    add_responder(db, "sue", "supervisor")
    add_policy(
        db, "emergency", [(300, ["user:ana"]), (600, ["role:supervisor"])], route=["default"]
    )
    cases = CaseService(db, clock)

    def open_case(minutes_ago: int, **fields: Any) -> str:
        clock.set(START)
        clock.advance(minutes=50 - minutes_ago)
        return cases.open_case("sue", **fields).ref

    gone = open_case(48, title="Spam wave, duplicate reports", category="other", severity=4)
    slow = open_case(
        45,
        title="Preservation request: Riverbend County Sheriff",
        category="preservation",
        severity=4,
        details="Preserve account data for 90 days; legal process to follow.",
    )
    watched = open_case(
        40,
        title="Violent extremism: recruitment channel linked from a livestream",
        category="violent_extremism",
        severity=3,
        details="Channel mirrored in three places; law enforcement referral drafted.",
    )
    open_case(
        30,
        title="CSEA report: re-upload of previously actioned material",
        category="csea",
        severity=1,
        details="Hash match against the industry list; account id 8841-22; NCMEC report due.",
    )
    urgent = open_case(
        12,
        title="EDR: Metro Police, welfare concern after threatening messages",
        category="edr",
        severity=2,
        details="Officer on the phone; badge verified. Needs subscriber info and last login.",
    )
    paged = open_case(
        4,
        title="Threat to life: post names a school and tomorrow's date",
        category="threat_to_life",
        severity=1,
        details="Trusted flagger report; screenshots attached to the ticket.",
    )
    clock.set(START + timedelta(minutes=47))
    cases.acknowledge("ana", slow)
    cases.acknowledge("ben", watched)
    cases.add_note("ben", watched, "Referral sent to the fusion centre; waiting on reply.")
    cases.resolve("sue", gone, note="duplicates merged")
    cases.reassign("sue", paged, "ana")
    cases.escalate_now("sue", urgent)
    clock.set(START + timedelta(minutes=50))
    # The pages were shown before: the snapshots are of a console already open.
    for alert in claim_my_pages(db, clock, ana):
        record_desktop(db, clock, alert.desktop_delivery_ids, NoDesktop().notify("", ""))
    yield db, clock
    db.dispose()


def _app(desk: tuple[Database, FakeClock]) -> VigilApp:
    db, clock = desk
    app = build_app(
        db,
        clock,
        "ana",
        engine=False,
        desktop=NoDesktop(),
        settings_file=Path("no-settings.toml"),
        cursor_blink=False,
    )
    assert app is not None
    return app


# --- the queue ------------------------------------------------------------------------


def test_queue_wide(snap_compare: SnapCompare, desk: tuple[Database, FakeClock]) -> None:
    """The queue beside the detail pane: triggered cases first (the one paged to ana
    marked), then the acknowledged ones; the cursor on ana's page, its pages listed."""
    assert snap_compare(_app(desk), terminal_size=WIDE, run_before=snapshot_keys("down"))


def test_queue_narrow(snap_compare: SnapCompare, desk: tuple[Database, FakeClock]) -> None:
    """At 80x24 the detail pane goes below the queue, columns drop, and the footer still
    shows every case action and help."""
    assert snap_compare(_app(desk), terminal_size=NARROW, run_before=snapshot_keys("down"))


# --- the detail pane ----------------------------------------------------------------------


def test_detail_sensitive_hidden_wide(
    snap_compare: SnapCompare, desk: tuple[Database, FakeClock]
) -> None:
    """The CSEA case (first in the queue) selected: its details are a placeholder that
    says how to reveal them."""
    assert snap_compare(_app(desk), terminal_size=WIDE, run_before=snapshot_keys())


def test_detail_sensitive_revealed_wide(
    snap_compare: SnapCompare, desk: tuple[Database, FakeClock]
) -> None:
    """After `v` the details show and the pane's edge marks them as revealed."""
    assert snap_compare(_app(desk), terminal_size=WIDE, run_before=snapshot_keys("v"))


def test_detail_sensitive_hidden_narrow(
    snap_compare: SnapCompare, desk: tuple[Database, FakeClock]
) -> None:
    """The same placeholder at 80x24: Enter moves into the pane below the queue and
    Page Down scrolls it to the details."""
    assert snap_compare(
        _app(desk), terminal_size=NARROW, run_before=snapshot_keys("enter", "pagedown")
    )


def test_detail_sensitive_revealed_narrow(
    snap_compare: SnapCompare, desk: tuple[Database, FakeClock]
) -> None:
    """The revealed details at 80x24, scrolled into view the same way."""
    assert snap_compare(
        _app(desk), terminal_size=NARROW, run_before=snapshot_keys("v", "enter", "pagedown")
    )


# --- help ------------------------------------------------------------------------------


def test_help_wide(snap_compare: SnapCompare, desk: tuple[Database, FakeClock]) -> None:
    """Every key of the queue with what it does and its keymap id."""
    assert snap_compare(_app(desk), terminal_size=WIDE, run_before=snapshot_keys("question_mark"))


def test_help_narrow(snap_compare: SnapCompare, desk: tuple[Database, FakeClock]) -> None:
    """The help screen at 80x24 scrolls; its note on remapping stays in view."""
    assert snap_compare(_app(desk), terminal_size=NARROW, run_before=snapshot_keys("question_mark"))


# --- themes ------------------------------------------------------------------------------


def _high_contrast_later(desk: tuple[Database, FakeClock]) -> VigilApp:
    """The desk ten minutes later, so the sev2 EDR case's acknowledgement is breached, in
    the high-contrast theme."""
    desk[1].set(START + timedelta(minutes=60))
    app = _app(desk)
    app.theme = "vigil-high-contrast"
    return app


def test_high_contrast_breached_sev2_highlighted_wide(
    snap_compare: SnapCompare, desk: tuple[Database, FakeClock]
) -> None:
    """High contrast with the cursor on a breached sev2: the severity and the breached
    SLA are badges in their own colours (black on yellow, black on red), never the
    cursor's yellow on yellow; sev3 is cyan, apart from sev2's yellow."""
    assert snap_compare(
        _high_contrast_later(desk), terminal_size=WIDE, run_before=snapshot_keys("down", "down")
    )


def test_high_contrast_breached_sev2_highlighted_narrow(
    snap_compare: SnapCompare, desk: tuple[Database, FakeClock]
) -> None:
    """The same at 80x24."""
    assert snap_compare(
        _high_contrast_later(desk), terminal_size=NARROW, run_before=snapshot_keys("down", "down")
    )


# --- the desk's second round: marks and the full-screen case ---------------------------


def test_marked_cases_wide(snap_compare: SnapCompare, desk: tuple[Database, FakeClock]) -> None:
    """Two cases marked with space: a ✓ column appears before the others, the marked
    rows are bold, the filter line counts them, and the cursor moved past them."""
    assert snap_compare(_app(desk), terminal_size=WIDE, run_before=snapshot_keys("space", "space"))


def test_marked_cases_narrow(snap_compare: SnapCompare, desk: tuple[Database, FakeClock]) -> None:
    """The same at 80x24: the mark column costs the title one cell."""
    assert snap_compare(
        _app(desk), terminal_size=NARROW, run_before=snapshot_keys("space", "space")
    )


def test_full_case_wide(snap_compare: SnapCompare, desk: tuple[Database, FakeClock]) -> None:
    """x on ben's acknowledged case: the pane takes the screen, every section in view
    (SLAs, escalation, details, casework, pages, notes, timeline)."""
    assert snap_compare(_app(desk), terminal_size=WIDE, run_before=snapshot_keys("G", "k", "x"))


def test_full_case_narrow(snap_compare: SnapCompare, desk: tuple[Database, FakeClock]) -> None:
    """The same at 80x24, where the pane scrolls."""
    assert snap_compare(_app(desk), terminal_size=NARROW, run_before=snapshot_keys("G", "k", "x"))


# --- the inbox ---------------------------------------------------------------------------


def _inbox_later(desk: tuple[Database, FakeClock]) -> VigilApp:
    """What waits on ana two minutes on: an action item she owns on ben's case (a minute
    overdue), the CSEA case handed to her with its NCMEC report owed, and ben's handover
    to her."""
    db, clock = desk
    CaseworkService(db, clock).add_action(
        "sue",
        "ESC-0003",
        "Chase the fusion centre for a reply",
        owner="ana",
        due_at=clock.now() + timedelta(minutes=1),
    )
    CaseService(db, clock).reassign("sue", "ESC-0004", "ana")
    HandoverService(db, clock).submit(
        "ben", "Quiet apart from the referral.", since=START - timedelta(hours=8), to="ana"
    )
    clock.advance(minutes=2)
    return _app(desk)


def test_inbox_wide(snap_compare: SnapCompare, desk: tuple[Database, FakeClock]) -> None:
    """`i`: each waiting item with what it is, since when in ana's zone, and the keys that
    act on it; the overdue action item and the breached report in the warning colour."""
    assert snap_compare(
        _inbox_later(desk), terminal_size=WIDE, run_before=snapshot_keys("escape", "i")
    )


def test_inbox_narrow(snap_compare: SnapCompare, desk: tuple[Database, FakeClock]) -> None:
    """The same at 80x24, where the About column is cut at the edge."""
    assert snap_compare(
        _inbox_later(desk), terminal_size=NARROW, run_before=snapshot_keys("escape", "i")
    )

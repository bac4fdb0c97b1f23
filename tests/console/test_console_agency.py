"""The agency directory at the console (`A`): a supervisor lists and unlists verified
call-back numbers and e-mail domains through the functions the command line uses (each change
in the audit chain); a specialist sees the same list read-only and is refused changes.

The SVG snapshot names the database by a relative path, with a frozen clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import col, select
from textual.widgets import DataTable, Static

from app.console import VigilApp, build_app
from app.console.screens.agency import AgencyScreen
from app.console.screens.casework import FormDialog
from app.console.screens.dialogs import Confirm
from app.console.screens.queue import QueueScreen
from app.core.clock import FakeClock
from app.services.casework.agency import AgencyService
from data import audit
from data.db import Database
from data.models import AuditRecord
from tests.console_harness import Console, FakeDesktop, OpenConsole, console_opener, snapshot_keys
from tests.factories import CaseworkDesk, add_responder

NOW = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)


def _desk(db: Database, clock: FakeClock) -> AgencyService:
    """ana (a specialist), sue (a supervisor), two police partners and a legal team; metro-pd's
    switchboard and mail domain listed."""
    add_responder(db, "ana")
    add_responder(db, "sue", "supervisor")
    casework = CaseworkDesk(db, clock)
    casework.add_partner(
        "sue",
        name="metro-pd",
        kind="law_enforcement",
        agency="Metro Police Department",
        verified_channel="dispatch from the state police directory",
    )
    casework.add_partner(
        "sue",
        name="river-so",
        kind="law_enforcement",
        agency="Riverbend County Sheriff",
        verified_channel="switchboard from the county directory",
    )
    casework.add_partner("sue", name="legal", kind="legal", agency="Legal team")
    directory = AgencyService(db, clock)
    directory.add_channel("sue", "metro-pd", phone="+1 555 0100", source="state police list")
    directory.add_channel(
        "sue", "metro-pd", domain="metro-pd.example.gov", source="agency website, by phone"
    )
    return directory


@pytest.fixture
def directory(db: Database, clock: FakeClock) -> AgencyService:
    clock.set(NOW)
    return _desk(db, clock)


@pytest.fixture
def open_console(db: Database, clock: FakeClock, tmp_path: Path) -> OpenConsole:
    return console_opener(db, clock, tmp_path)


def _rows(screen: AgencyScreen) -> list[list[str]]:
    table = screen.query_one("#agency-channels", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def _changes(db: Database) -> list[tuple[str, str, str]]:
    with db.read() as session:
        assert audit.verify(session).ok
        records = session.exec(
            select(AuditRecord)
            .where(col(AuditRecord.action).startswith("agency.channel."))
            .order_by(col(AuditRecord.seq))
        ).all()
    return [(r.action, r.actor, str(r.detail.get("value"))) for r in records]


async def _open(console: Console) -> AgencyScreen:
    await console.press("A")
    screen = console.app.screen
    assert isinstance(screen, AgencyScreen)
    return screen


async def test_a_supervisor_lists_and_unlists_channels_and_each_is_audited(
    directory: AgencyService, open_console: OpenConsole
) -> None:
    async with open_console("sue") as console:
        screen = await _open(console)
        assert _rows(screen) == [
            [
                "Metro Police Department",
                "metro-pd",
                "e-mail domain",
                "metro-pd.example.gov",
                "agency website, by phone, 07:00",
            ],
            [
                "Metro Police Department",
                "metro-pd",
                "call-back number",
                "+15550100",
                "state police list, 07:00",
            ],
        ]
        count = str(screen.query_one("#agency-count", Static).render())
        assert "1 agency: 1 call-back number, 1 e-mail domain" in count

        await console.press("a")
        form = console.app.screen
        assert isinstance(form, FormDialog)
        assert form.fields[0].choices == ("metro-pd", "river-so")  # police only
        for value in ("river-so", "+1 555 0199", "", "county directory, 2026 edition"):
            if value:
                await console.type(value)
            await console.press("enter")
        console.said("Listed +15550199 for river-so")
        assert ["Riverbend County Sheriff", "river-so", "call-back number", "+15550199"] in [
            row[:4] for row in _rows(screen)
        ]

        await console.press("a")  # both a number and a domain: the service says
        for value in ("river-so", "+1 555 0111", "river.example.gov", "x"):
            await console.type(value)
            await console.press("enter")
        assert console.said("Check the input").severity == "error"
        await console.press("a")  # what was typed comes back
        assert isinstance(console.app.screen, FormDialog)
        assert console.app.screen.query_one("#field-domain").value == "river.example.gov"  # type: ignore[attr-defined]
        await console.press("escape")

        await console.press("down", "d")  # the second row: metro-pd's number
        confirm = console.app.screen
        assert isinstance(confirm, Confirm)
        assert "metro-pd's call-back number +15550100" in confirm.question
        await console.press("enter")
        console.said("No longer listed: +15550100 of metro-pd")
        assert "+15550100" not in [row[3] for row in _rows(screen)]
        await console.press("escape")
        assert isinstance(console.app.screen, QueueScreen)
    assert [c.value for c in directory.channels()] == ["metro-pd.example.gov", "+15550199"]
    assert _changes(directory.db)[-2:] == [
        ("agency.channel.add", "sue", "+15550199"),
        ("agency.channel.remove", "sue", "+15550100"),
    ]


async def test_a_specialist_sees_the_directory_read_only_and_is_refused_changes(
    directory: AgencyService, open_console: OpenConsole
) -> None:
    before = _changes(directory.db)
    async with open_console("ana") as console:
        screen = await _open(console)
        assert "read-only" in str(screen.query_one("#agency-title", Static).render())
        assert len(_rows(screen)) == 2
        for key in ("a", "d"):
            await console.press(key)
            assert console.app.screen is screen  # no form, no question
        refusals = [t for t in console.toasts if t.title == "Not allowed"]
        assert len(refusals) == 2
        assert "Only a supervisor or admin may change the agency directory" in refusals[0].message
    assert _changes(directory.db) == before
    assert len(directory.channels()) == 2


# --- snapshot ------------------------------------------------------------------------------

SnapCompare = Callable[..., bool]


@pytest.fixture
def snap_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[VigilApp]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    db = Database.open("sqlite:///vigil.db")
    _desk(db, FakeClock(NOW))
    app = build_app(
        db,
        FakeClock(NOW),
        "sue",
        engine=False,
        desktop=FakeDesktop(),
        settings_file=Path("no-settings.toml"),
        cursor_blink=False,
    )
    assert app is not None
    yield app
    db.dispose()


def test_agency_directory_wide(snap_compare: SnapCompare, snap_app: VigilApp) -> None:
    """sue's agency directory at 160x48: metro-pd's mail domain and call-back number, each
    with where it was confirmed and when."""
    assert snap_compare(snap_app, terminal_size=(160, 48), run_before=snapshot_keys("A"))

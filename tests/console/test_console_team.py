"""The team view (`t`): each responder's role, zone, whether they are on call now, their
contacts by kind and name (never a URL: Apprise and webhook URLs hold secrets), their
notification rules per urgency and quiet hours, and each schedule's support hours.

The desk is declared by a team file, as a desk would be, against a fresh SQLite database
with a frozen clock; the SVG snapshot names the database by a relative path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from textual.content import Content
from textual.widgets import Static

from app.console import VigilApp, build_app
from app.console.screens.team import TeamScreen
from app.core.clock import FakeClock
from app.services.team.apply import apply_team
from app.services.team.parse import parse_team
from app.services.team.roster import team_view
from data.db import Database
from tests.console_harness import FakeDesktop, OpenConsole, console_opener, snapshot_keys
from widgets.team_view import TeammateCard
from widgets.timefmt import viewer_zone

# Monday 7 December 2026, 09:00 in Sydney: ana's week on the business schedule.
NOW = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)
SECRETS = ("s3cr3t", "hunter2", "T0KA", "zzhook", "0123456789abcdef")

TEAM = """
[[responder]]
handle = "ana"
name = "Ana Ruiz"
timezone = "Australia/Sydney"
quiet_hours = "22:00-07:00"
contacts = [
  { kind = "console" },
  { kind = "apprise", name = "phone", url = "ntfys://ntfy.example/vigil-s3cr3t" },
  { kind = "apprise", name = "mail", url = "mailtos://ana:hunter2@mail.example?to=a@b.org" },
  { kind = "apprise", name = "slack", url = "slack://T0KA/T0KB/T0KC/#on-call" },
]
notify.high = [{ contact = "phone" }, { after = "2m", contact = "mail" },
               { after = "5m", contact = "slack" }]
notify.low = [{ after = "10m", contact = "mail" }]

[[responder]]
handle = "ben"
name = "Ben Okafor"
timezone = "America/New_York"
contacts = [{ kind = "console" },
            { kind = "webhook", url = "https://ops.example/zzhook", secret = "0123456789abcdef" }]

[[responder]]
handle = "sue"
name = "Sue Park"
role = "supervisor"
timezone = "Europe/Dublin"
contacts = [{ kind = "console" }, { kind = "desktop" }]

[[rotation]]
name = "syd"
timezone = "Australia/Sydney"
shift = "7d"
handoff = "08:00"
start = "2026-11-30"
members = ["ben", "ana"]

[[schedule]]
name = "business"
layers = ["syd"]
support_hours = "08:00-18:00"
support_days = ["mon", "tue", "wed", "thu", "fri"]

[[policy]]
name = "desk"
steps = [{ delay = "10m", targets = ["schedule:business"] }]

[routing]
default = "desk"
"""


def _desk(db: Database, clock: FakeClock) -> None:
    apply_team(db, parse_team(TEAM), actor="root", now=clock.now())


def _plain(widget: Static) -> str:
    rendered = widget.render()
    return rendered.plain if isinstance(rendered, Content) else str(rendered)


@pytest.fixture
def open_console(db: Database, clock: FakeClock, tmp_path: Path) -> OpenConsole:
    clock.set(NOW)
    _desk(db, clock)
    return console_opener(db, clock, tmp_path)


async def test_the_team_view_shows_rules_contacts_and_who_is_on_call_without_secrets(
    db: Database, clock: FakeClock, open_console: OpenConsole
) -> None:
    async with open_console("ben") as console:
        await console.press("t")
        screen = console.app.screen
        assert isinstance(screen, TeamScreen)
        with db.read() as session:
            expected = team_view(session, NOW, viewer_zone("America/New_York"))
        assert screen.board.view == expected
        cards = {card.person.handle: card for card in screen.query(TeammateCard).results()}
        assert list(cards) == ["ana", "ben", "sue"]
        ana = [_plain(s) for s in cards["ana"].query(Static).results(Static)]
        assert "on call: business" in ana
        assert "console, apprise: phone, apprise: mail, apprise: slack" in ana
        assert "phone at once, mail after 2m, slack after 5m" in ana
        assert "mail after 10m" in ana
        assert "22:00-07:00 in Australia/Sydney: low urgency waits" in ana
        ben = [_plain(s) for s in cards["ben"].query(Static).results(Static)]
        assert "off call" in ben
        assert "console, webhook" in ben
        assert ben.count("every contact at once") == 2
        shown = " ".join(_plain(s) for s in screen.query(Static).results(Static))
        assert "support 08:00-18:00 mon tue wed thu fri (Australia/Sydney)" in shown
        assert "://" not in shown
        for secret in SECRETS:
            assert secret not in shown
        await console.press("escape")
        assert not isinstance(console.app.screen, TeamScreen)


# --- snapshot ------------------------------------------------------------------------------

SnapCompare = Callable[..., bool]


@pytest.fixture
def snap_desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[VigilApp]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    db = Database.open("sqlite:///vigil.db")
    clock = FakeClock(NOW)
    _desk(db, clock)
    app = build_app(
        db,
        clock,
        "sue",
        engine=False,
        desktop=FakeDesktop(),
        settings_file=Path("no-settings.toml"),
        cursor_blink=False,
    )
    assert app is not None
    yield app
    db.dispose()


def test_team_wide(snap_compare: SnapCompare, snap_desk: VigilApp) -> None:
    """sue's team view at 160x48: the business schedule's support hours, ana on call with
    her rules and quiet hours, ben and sue told on every contact at once."""
    assert snap_compare(snap_desk, terminal_size=(160, 48), run_before=snapshot_keys("t"))

"""Legal clock presets: each ships with its citation and what starts and stops it; the US set
is on by default, the one whose period the law does not fix ships off; a desk switches them on
in its team file and the clocks run from the case as any other."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta

import pytest

from app.core.clock import FakeClock
from app.rules.casework import (
    CaseworkConfigError,
    ClockFacts,
    effective_config,
    legal_clocks,
    merged_settings,
)
from app.rules.clock_presets import PRESETS
from app.services.casework.settings import settings_toml
from data.db import Database
from tests.factories import CaseworkDesk, add_policy, add_responder

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _names(config_presets: list[str], category: str) -> list[str]:
    config = effective_config({"clock_presets": config_presets})
    return [spec.name for spec in config.clocks_for(category)]


def test_every_preset_states_its_citation_what_starts_and_stops_it() -> None:
    for preset in PRESETS.values():
        assert preset.citation
        assert preset.starts
        assert preset.stops
    assert [n for n, p in PRESETS.items() if p.default_on] == ["us"]
    assert "no period" in PRESETS["eu-dsa-18"].note  # unverifiable: off, and it says why


def test_presets_add_their_clocks_and_the_us_set_can_be_left_out() -> None:
    assert _names(["us"], "csea") == ["tipline", "preserve_reported"]
    assert _names(["us", "au-esafety"], "csea") == [
        "esafety_removal",
        "tipline",
        "preserve_reported",
    ]
    assert _names(["eu-tco"], "violent_extremism") == ["tco_removal"]
    assert _names(["eu-tco"], "csea") == []  # no US clocks without the US preset
    assert _names(["us"], "threat_to_life") == []  # DSA Art. 18 is off by default
    assert _names(["us", "eu-dsa-18"], "threat_to_life") == ["dsa_art18"]


def test_an_unknown_preset_is_named_by_its_key_path() -> None:
    with pytest.raises(CaseworkConfigError) as caught:
        effective_config({"clock_presets": ["us", "uk-osa"]})
    assert caught.value.field == "clock_presets[1]"
    assert "eu-tco" in caught.value.message


def test_the_tco_clock_runs_one_hour_from_receipt() -> None:
    config = effective_config({"clock_presets": ["eu-tco"]})
    [clock] = legal_clocks(ClockFacts("violent_extremism", T0), config, T0 + timedelta(minutes=50))
    assert (clock.due_at, clock.state) == (T0 + timedelta(hours=1), "warn")
    [late] = legal_clocks(ClockFacts("violent_extremism", T0), config, T0 + timedelta(minutes=61))
    assert late.state == "breached"
    removed = ClockFacts("violent_extremism", T0, filed={"tco_removal": (T0, "TCO-2026-17")})
    [done] = legal_clocks(removed, config, T0 + timedelta(hours=2))
    assert (done.state, done.reference) == ("done", "TCO-2026-17")


def test_a_desk_switches_presets_on_in_its_team_file(any_db: Database, clock: FakeClock) -> None:
    clock.set(T0)
    add_responder(any_db, "ana")
    add_responder(any_db, "sam", "supervisor")
    add_policy(any_db, "standard", [(1800, ["user:ana"])], route=["default"])
    desk = CaseworkDesk(any_db, clock)
    team_file = 'clock_presets = ["us", "au-esafety"]\n'
    desk.apply_settings("sam", tomllib.loads(team_file))
    ref = desk.open_case("ana", title="Notice 4411", category="doxxing", severity=2).ref
    clock.advance(timedelta(hours=21))
    [removal] = desk.casework("ana", ref).clocks
    assert (removal.name, removal.state) == ("esafety_removal", "warn")
    desk.file_report("ana", ref, report_id="eSafety notice 4411", clock="esafety_removal")
    assert desk.casework("ana", ref).clocks[0].state == "done"
    exported = settings_toml(merged_settings({"clock_presets": ["us", "au-esafety"]}))
    assert tomllib.loads(exported)["clock_presets"] == ["us", "au-esafety"]

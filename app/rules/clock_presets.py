"""Legal clocks shipped with their citations, for the desk's three legal homes.

A desk switches presets on in its team file (`clock_presets = ["au-esafety", "eu-tco"]`);
each adds its clock tables to the categories it names, under the desk's own clocks of the
same name. Every preset states its citation, what starts its clock and what stops it. The
US set is on by default (it is the built-in `[clocks]`); a preset whose period the law does
not fix ships switched off and says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from data.domain import Category

US_PRESET = "us"  # the built-in [clocks]: turned off by leaving it out of clock_presets
STOP_BY_FILING = "a report or confirmation recorded: vigil clock file REF --clock NAME"


@dataclass(frozen=True)
class ClockPreset:
    name: str
    title: str
    citation: str
    starts: str
    stops: str
    default_on: bool
    note: str = ""
    # category -> clock name -> clock table, as `[clocks.CATEGORY.NAME]` in the team file
    clocks: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)


_REMOVAL_24H = {
    "kind": "deadline",
    "label": "eSafety removal notice: remove within 24 hours (Online Safety Act 2021 (Cth))",
    "due": "24h",
    "remind": "4h",
}
_TCO_1H = {
    "kind": "deadline",
    "label": "TCO removal order: remove or disable within 1 hour (Regulation (EU) 2021/784)",
    "due": "1h",
    "remind": "15m",
}
_DSA_18 = {
    "kind": "deadline",
    "label": "DSA Art. 18: inform the Member State concerned or Europol promptly (desk target)",
    "due": "1h",
    "remind": "15m",
}

PRESETS: dict[str, ClockPreset] = {
    US_PRESET: ClockPreset(
        name=US_PRESET,
        title="United States: CyberTipline, REPORT Act hold, 2703(f) preservation",
        citation=(
            "18 U.S.C. 2258A(a)(1) (report 'as soon as reasonably possible'; the 24 h is the "
            "desk's target); 18 U.S.C. 2258A(h) as amended by the REPORT Act, Pub. L. 118-59 "
            "(preserve 1 year); 18 U.S.C. 2703(f)(2) (90 days, once more 90 on renewal)"
        ),
        starts="the case is received; the hold starts when the CyberTipline report is filed",
        stops="the report filed (vigil tipline file, or vigil clock file); holds end or are waived",
        default_on=True,
        note="Built in: the default [clocks] of csea and preservation cases.",
    ),
    "au-esafety": ClockPreset(
        name="au-esafety",
        title="Australia: eSafety Commissioner removal notices",
        citation=(
            "Online Safety Act 2021 (Cth) ss 65, 77, 88 and 109: remove 'within 24 hours "
            "after the notice was given', or a longer period the Commissioner allows"
        ),
        starts="the removal notice is received (the case is opened for it)",
        stops=STOP_BY_FILING + " (the notice's reference once removed)",
        default_on=False,
        clocks={
            Category.CSEA.value: {"esafety_removal": _REMOVAL_24H},
            Category.VIOLENT_EXTREMISM.value: {"esafety_removal": _REMOVAL_24H},
            Category.DOXXING.value: {"esafety_removal": _REMOVAL_24H},
        },
    ),
    "eu-tco": ClockPreset(
        name="eu-tco",
        title="EU: Terrorist Content Online removal orders",
        citation=(
            "Regulation (EU) 2021/784, Art. 3(3): remove or disable access 'as soon as "
            "possible and in any event within one hour of receipt of the removal order'"
        ),
        starts="the removal order is received at the contact point (the case is opened for it)",
        stops=STOP_BY_FILING + " (the order's reference once removed)",
        default_on=False,
        clocks={Category.VIOLENT_EXTREMISM.value: {"tco_removal": _TCO_1H}},
    ),
    "eu-dsa-18": ClockPreset(
        name="eu-dsa-18",
        title="EU: DSA Art. 18 notification of a threat to life or safety",
        citation=(
            "Regulation (EU) 2022/2065, Art. 18(1) and (2): 'promptly inform' the law "
            "enforcement or judicial authorities of the Member State concerned, or, where it "
            "cannot be identified, of the Member State of establishment or Europol"
        ),
        starts="the desk becomes aware of information giving rise to the suspicion (the case)",
        stops=STOP_BY_FILING + " (the authority informed and its reference)",
        default_on=False,
        note=(
            "Switched off: the law says 'promptly' and fixes no period, so no deadline can be "
            "verified against its text; the 1 h is a desk target to set deliberately."
        ),
        clocks={Category.THREAT_TO_LIFE.value: {"dsa_art18": _DSA_18}},
    ),
}


def with_presets(document: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
    """`document` (merged casework settings) with the clocks of presets `names` added to
    their categories; a clock the desk names itself wins over a preset's of that name."""
    own = document.get("clocks", {})
    if not isinstance(own, dict):
        return dict(document)  # not a table: its reader says so
    clocks = {
        category: dict(tables) if isinstance(tables, dict) else tables
        for category, tables in own.items()
    }
    for name in names:
        for category, tables in PRESETS[name].clocks.items():
            mine = clocks.get(category, {})
            if isinstance(mine, dict):
                clocks[category] = {**tables, **mine}
    return {**document, "clocks": clocks}

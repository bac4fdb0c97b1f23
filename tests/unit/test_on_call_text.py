"""`vigil oncall`'s text where a schedule has nobody now and nobody next."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from app.cli.render import on_call_text
from app.services.shiftwork.calendar import OnCallEntry


def test_a_schedule_with_nobody_on_call_says_so_for_now_and_next() -> None:
    entry = OnCallEntry(schedule="primary", current=None, upcoming=None)
    text = on_call_text([entry], datetime(2026, 1, 1, tzinfo=UTC), ZoneInfo("UTC"), {})
    assert text.splitlines() == [
        "On call at Thu 01 Jan 2026 00:00 UTC:",
        "  primary",
        "    now:  nobody (coverage gap)",
        "    next: nobody within a year",
    ]

"""When each contact is told: urgency, personal rules and quiet hours (pure rules), and the
links' settings from the environment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.core.errors import BadInput
from app.rules.notify import (
    Contact,
    Profile,
    notices,
    parse_high_urgency,
    parse_notify_delay,
    quiet_until,
    urgency_of,
)
from app.services.links import LinkSettings
from data.domain import Urgency

NEW_YORK = ZoneInfo("America/New_York")
CONTACTS = (
    Contact(1, "console", "console"),
    Contact(2, "apprise", "phone"),
    Contact(3, "apprise", "mail"),
    Contact(4, "desktop", "desktop"),
)


def test_urgency_follows_severity_and_the_policy() -> None:
    assert [urgency_of(s) for s in (1, 2, 3, 4)] == [Urgency.HIGH] * 2 + [Urgency.LOW] * 2
    assert urgency_of(3, parse_high_urgency("1,2,3")) == Urgency.HIGH
    assert parse_high_urgency(None) == (1, 2)


@pytest.mark.parametrize(
    ("local", "ends"),
    [
        (datetime(2026, 12, 7, 2, 0), datetime(2026, 12, 7, 7, 0)),
        (datetime(2026, 12, 6, 23, 30), datetime(2026, 12, 7, 7, 0)),
        (datetime(2026, 12, 7, 7, 0), None),
        (datetime(2026, 12, 7, 12, 0), None),
        # The night the clocks go back: 07:00 local is still 07:00 local.
        (datetime(2026, 11, 1, 1, 30), datetime(2026, 11, 1, 7, 0)),
    ],
)
def test_quiet_hours_wrap_midnight_in_the_persons_zone(
    local: datetime, ends: datetime | None
) -> None:
    at = local.replace(tzinfo=NEW_YORK)
    found = quiet_until("22:00-07:00", "America/New_York", at)
    expected = None if ends is None else ends.replace(tzinfo=NEW_YORK).astimezone(UTC)
    assert found == expected


def test_rules_order_the_contacts_and_the_console_always_hears_at_once() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    profile = Profile.of("UTC", None, {"high": [[0, "phone"], [120, "mail"], [300, "phone"]]})
    told = {n.contact_id: (n.due_at - now, n.held) for n in notices(CONTACTS, profile, "high", now)}
    assert told == {
        1: (timedelta(0), False),
        2: (timedelta(0), False),
        3: (timedelta(minutes=2), True),
    }
    # No rules for low urgency: every contact at once.
    assert {n.contact_id for n in notices(CONTACTS, profile, "low", now)} == {1, 2, 3, 4}


def test_quiet_hours_hold_low_urgency_only() -> None:
    at = datetime(2026, 12, 7, 2, 0, tzinfo=NEW_YORK)
    ends = datetime(2026, 12, 7, 7, 0, tzinfo=NEW_YORK)
    profile = Profile.of("America/New_York", "22:00-07:00", {"low": [[60, "mail"]]})
    low = {n.contact_id: n.due_at for n in notices(CONTACTS, profile, "low", at)}
    assert low == {1: at, 3: ends + timedelta(minutes=1)}
    high = notices(CONTACTS, profile, "high", at)
    assert all(n.due_at == at and not n.held for n in high)


@pytest.mark.parametrize(("text", "seconds"), [("0m", 0), ("90s", 90), ("2m", 120), ("1d", 86400)])
def test_a_rule_delay_is_from_nothing_to_a_day(text: str, seconds: int) -> None:
    assert parse_notify_delay(text) == timedelta(seconds=seconds)


def test_a_rule_delay_over_a_day_is_refused() -> None:
    with pytest.raises(ValueError, match="0m to 1d"):
        parse_notify_delay("25h")


def test_link_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIGIL_PUBLIC_URL", raising=False)
    monkeypatch.delenv("VIGIL_LINK_TTL", raising=False)
    assert LinkSettings.from_env() == LinkSettings(None, timedelta(hours=1))
    monkeypatch.setenv("VIGIL_PUBLIC_URL", "https://vigil.example/")
    monkeypatch.setenv("VIGIL_LINK_TTL", "30m")
    assert LinkSettings.from_env() == LinkSettings("https://vigil.example", timedelta(minutes=30))
    monkeypatch.setenv("VIGIL_LINK_TTL", "30d")
    with pytest.raises(BadInput, match="VIGIL_LINK_TTL: expected between 1m and 7d"):
        LinkSettings.from_env()
    monkeypatch.setenv("VIGIL_LINK_TTL", "1h")
    monkeypatch.setenv("VIGIL_PUBLIC_URL", "vigil.example")
    with pytest.raises(BadInput, match="VIGIL_PUBLIC_URL: expected"):
        LinkSettings.from_env()

"""When each contact is told: urgency, personal rules and quiet hours (pure rules), and the
links' settings from the environment."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.core.errors import BadInput
from app.rules.notify import (
    Contact,
    Profile,
    SupportHours,
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


SYDNEY = ZoneInfo("Australia/Sydney")
WEEKDAYS_SUPPORT = SupportHours(time(8), time(18), "Australia/Sydney", frozenset(range(5)))


@pytest.mark.parametrize(
    ("local", "begins"),
    [
        # Saturday evening before the clocks go forward (Sunday 4 October 2026): Monday
        # 08:00 is 08:00 local at the new offset.
        (datetime(2026, 10, 3, 20, 0), datetime(2026, 10, 5, 8, 0)),
        (datetime(2026, 10, 5, 7, 59), datetime(2026, 10, 5, 8, 0)),
        (datetime(2026, 10, 5, 8, 0), None),
        (datetime(2026, 10, 5, 17, 59), None),
        (datetime(2026, 10, 5, 18, 0), datetime(2026, 10, 6, 8, 0)),
        # Friday evening, the weekend the clocks go back (Sunday 5 April 2026).
        (datetime(2026, 4, 3, 18, 30), datetime(2026, 4, 6, 8, 0)),
    ],
)
def test_support_hours_begin_on_the_schedules_wall_clock(
    local: datetime, begins: datetime | None
) -> None:
    found = WEEKDAYS_SUPPORT.begins_after(local.replace(tzinfo=SYDNEY))
    expected = None if begins is None else begins.replace(tzinfo=SYDNEY).astimezone(UTC)
    assert found == expected


def test_support_hours_that_wrap_midnight_belong_to_the_day_they_start() -> None:
    nights = SupportHours(time(22), time(6), "UTC", frozenset({4}))  # Friday nights
    saturday_early = datetime(2026, 12, 12, 3, 0, tzinfo=UTC)
    assert nights.begins_after(saturday_early) is None
    assert nights.begins_after(datetime(2026, 12, 12, 7, 0, tzinfo=UTC)) == datetime(
        2026, 12, 18, 22, 0, tzinfo=UTC
    )


def test_support_hours_hold_low_urgency_only_and_then_wait_out_quiet_hours() -> None:
    at = datetime(2026, 10, 3, 20, 0, tzinfo=SYDNEY)
    monday = datetime(2026, 10, 5, 8, 0, tzinfo=SYDNEY)
    plain = Profile.of("Australia/Sydney", None, None)
    low = {
        n.contact_id: (n.due_at, n.held)
        for n in notices(CONTACTS, plain, "low", at, WEEKDAYS_SUPPORT)
    }
    assert low == {1: (at, False), 2: (monday, True), 3: (monday, True), 4: (monday, True)}
    high = notices(CONTACTS, plain, "high", at, WEEKDAYS_SUPPORT)
    assert all(n.due_at == at and not n.held for n in high)
    # Support begins at 08:00 Sydney, inside the person's own quiet hours (in New York it
    # is 17:00 on Sunday there, quiet from 16:00 to 18:00): they wait for both.
    quiet = Profile.of("America/New_York", "16:00-18:00", None)
    due = {n.due_at for n in notices(CONTACTS, quiet, "low", at, WEEKDAYS_SUPPORT) if n.held}
    assert due == {datetime(2026, 10, 4, 18, 0, tzinfo=NEW_YORK)}


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

"""The team file's channels: Apprise contacts (secret URLs), personal notification rules,
quiet hours and a policy's high urgency, applied, planned, exported and applied again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import select

from app.services.team.apply import apply_team
from app.services.team.export import export_team
from app.services.team.parse import parse_team
from app.services.team.spec import TeamFileError
from data.db import Database
from data.models import AuditRecord, ContactMethod, Policy, Responder
from data.oncall import Schedule

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
NTFY = "ntfys://ntfy.example/vigil-t0pic-ana"
MAIL = "mailtos://ana:pa55w0rd@mail.example?to=ana@example.org"
SLACK = "slack://T0KENA/B0KENB/C0KENC"
SECRETS = ("t0pic", "pa55w0rd", "T0KENA", "B0KENB", "C0KENC")

TEAM = f"""
[[responder]]
handle = "ana"
name = "Ana Ruiz"
role = "supervisor"
timezone = "Australia/Sydney"
quiet_hours = "22:00-07:00"
contacts = [
  {{ kind = "console" }},
  {{ kind = "apprise", name = "phone", url = "{NTFY}" }},
  {{ kind = "apprise", name = "mail", url = "{MAIL}" }},
  {{ kind = "apprise", name = "slack", url = "{SLACK}" }},
]
notify.high = [{{ contact = "phone" }}, {{ after = "2m", contact = "mail" }}]
notify.low = [{{ after = "5m", contact = "slack" }}]

[[policy]]
name = "desk"
high_urgency = ["sev1", "sev2", "sev3"]
steps = [{{ delay = "5m", targets = ["user:ana"] }}]

[routing]
default = "desk"
"""


@pytest.fixture
def db(any_db: Database) -> Database:
    return any_db


def apply(db: Database, text: str) -> list[str]:
    return apply_team(db, parse_team(text, "test.toml"), actor="ana", now=NOW).plan.lines()


def test_apprise_urls_are_stored_whole_and_never_printed(db: Database) -> None:
    lines = apply(db, TEAM)
    with db.read() as session:
        contacts = session.exec(select(ContactMethod).where(ContactMethod.kind == "apprise"))
        urls = [contact.url for contact in contacts]  # opened from their sealed form
        audit_text = " ".join(str(r.detail) for r in session.exec(select(AuditRecord)))
    assert sorted(u or "" for u in urls) == sorted([NTFY, MAIL, SLACK])
    exported = export_team_text(db)
    for secret in SECRETS:
        assert secret not in exported
        assert secret not in "\n".join(lines)
        assert secret not in audit_text
    assert 'url = "ntfys://...#kept:' in exported
    assert apply(db, exported) == []  # the export stands for the stored URLs


def test_rules_quiet_hours_and_urgency_round_trip(db: Database) -> None:
    apply(db, TEAM)
    with db.read() as session:
        ana = session.exec(select(Responder)).one()
        policy = session.exec(select(Policy)).one()
    assert ana.quiet_hours == "22:00-07:00"
    assert ana.notify == {"high": [[0, "phone"], [120, "mail"]], "low": [[300, "slack"]]}
    assert policy.high_urgency == "1,2,3"
    exported = export_team_text(db)
    assert 'quiet_hours = "22:00-07:00"' in exported
    assert (
        'notify = { high = [{ after = "0m", contact = "phone" }, '
        '{ after = "2m", contact = "mail" }], low = [{ after = "5m", contact = "slack" }] }'
    ) in exported
    assert 'high_urgency = ["sev1", "sev2", "sev3"]' in exported
    changed = apply(db, exported.replace('after = "2m"', 'after = "3m"'))
    assert len(changed) == 1
    assert changed[0].startswith("~ responder ana: notify:")


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        (
            'contact = "phone" }, {',
            'contact = "pager" }, {',
            "responder[0] (ana).notify.high[0].contact",
            "expected the name or kind of one of this responder's contacts",
        ),
        ('after = "2m"', 'after = "2d"', "responder[0] (ana).notify.high[1].after", "0m to 1d"),
        ("22:00-07:00", "25:00-07:00", "responder[0] (ana).quiet_hours", "expected a time"),
        (f'url = "{SLACK}"', 'url = "no-scheme"', "responder[0] (ana).contacts[3].url", "Apprise"),
        ('name = "mail"', 'name = "phone"', "responder[0] (ana).contacts[2].name", "duplicate"),
        ('"sev3"]', '"sev9"]', "policy[0] (desk).high_urgency", "expected an array of sev"),
    ],
)
def test_bad_channel_settings_are_named_by_key_path(
    db: Database, old: str, new: str, where: str, message: str
) -> None:
    assert old in TEAM
    with pytest.raises(TeamFileError) as caught:
        apply(db, TEAM.replace(old, new, 1))
    found = {e.where: e.message for e in caught.value.errors}
    assert where in found
    assert message in found[where]
    for secret in SECRETS:
        assert secret not in str(caught.value)


def export_team_text(db: Database) -> str:
    with db.read() as session:
        return export_team(session)


SUPPORT_TEAM = (
    TEAM
    + """
[[rotation]]
name = "syd"
timezone = "Australia/Sydney"
shift = "7d"
handoff = "08:00"
start = "2026-11-30"
members = ["ana"]

[[schedule]]
name = "business"
layers = ["syd"]
support_hours = "08:00-18:00"
support_days = ["mon", "tue", "wed", "thu", "fri"]
"""
)


def test_support_hours_are_stored_exported_and_applied_again(db: Database) -> None:
    apply(db, SUPPORT_TEAM)
    with db.read() as session:
        schedule = session.exec(select(Schedule)).one()
    assert (schedule.support_hours, schedule.support_days) == ("08:00-18:00", "mon,tue,wed,thu,fri")
    exported = export_team_text(db)
    assert 'support_hours = "08:00-18:00"' in exported
    assert 'support_days = ["mon", "tue", "wed", "thu", "fri"]' in exported
    assert apply(db, exported) == []
    changed = apply(db, exported.replace('"08:00-18:00"', '"09:00-17:00"'))
    assert len(changed) == 1
    assert changed[0].startswith("~ schedule business: support_hours:")


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ('"08:00-18:00"', '"08:00"', "schedule[0] (business).support_hours", "HH:MM-HH:MM"),
        ('"08:00-18:00"', '"08:00-08:00"', "schedule[0] (business).support_hours", "same time"),
        ('"fri"]', '"fry"]', "schedule[0] (business).support_days", "expected one of mon"),
        (
            '["mon", "tue", "wed", "thu", "fri"]',
            '"mon"',
            "schedule[0] (business).support_days",
            "expected a list of day names",
        ),
        (
            'support_hours = "08:00-18:00"\n',
            "",
            "schedule[0] (business).support_days",
            "needs support_hours",
        ),
    ],
)
def test_bad_support_hours_are_named_by_key_path(
    db: Database, old: str, new: str, where: str, message: str
) -> None:
    assert old in SUPPORT_TEAM
    with pytest.raises(TeamFileError) as caught:
        apply(db, SUPPORT_TEAM.replace(old, new, 1))
    found = {e.where: e.message for e in caught.value.errors}
    assert where in found, found
    assert message in found[where]
    with db.read() as session:
        assert session.exec(select(Schedule)).all() == []

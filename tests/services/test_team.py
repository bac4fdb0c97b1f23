"""The team file: parse, check every problem at once, plan, apply idempotently, export."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import col, select

from app.core.clock import FakeClock
from app.core.errors import BadInput
from app.core.text import line_problem
from app.rules.rotations import HolidaySpec
from app.services.cases import CaseService
from app.services.team import apply as team_apply
from app.services.team.apply import apply_team
from app.services.team.export import export_team
from app.services.team.parse import load_team_file, parse_team, validate
from app.services.team.plan import plan_apply
from app.services.team.spec import (
    ContactSpec,
    ResponderSpec,
    TeamError,
    TeamFileError,
    TeamPermissionError,
    TeamSpec,
)
from data import audit, queries
from data.contacts import KEPT_URL, shown_url
from data.db import Database
from data.domain import Status, TimelineKind
from data.models import (
    AuditRecord,
    Case,
    ContactMethod,
    Delivery,
    Page,
    Policy,
    PolicyStep,
    Responder,
    Routing,
    SlaTarget,
    TimelineEvent,
)
from data.oncall import Holiday, Override, Rotation, RotationMember, Schedule, ScheduleLayer
from data.schema import every_table
from tests.factories import snapshot_policy

FIXTURES = Path(__file__).parent.parent / "fixtures" / "team"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SECRETS = ("s3cr3t-ana-0123456789", "eli-secret-0123456789")


# --- fixtures (candidates for tests/conftest.py) ----------------------------


@pytest.fixture
def db(any_db: Database) -> Database:
    """Team tests run on SQLite and (with VIGIL_TEST_PG) on PostgreSQL."""
    return any_db


def dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in key order: equal dumps mean nothing was stored."""
    with db.engine.connect() as connection:
        return {
            table.name: [
                tuple(row)
                for row in connection.execute(table.select().order_by(*table.primary_key.columns))
            ]
            for table in every_table().sorted_tables
        }


def audit_count(db: Database) -> int:
    with db.read() as session:
        return audit.count(session)


# --- helpers ----------------------------------------------------------------


def good_text() -> str:
    return (FIXTURES / "good.toml").read_text()


def edited(*replacements: tuple[str, str], base: str | None = None) -> str:
    """The good file with exact replacements; each must match so a test cannot go stale."""
    result = good_text() if base is None else base
    for old, new in replacements:
        assert old in result, f"not in the file: {old!r}"
        result = result.replace(old, new, 1)
    return result


def without_blocks(text_: str, starts: list[str]) -> str:
    """Drop whole tables (up to the next blank line) that begin with one of `starts`."""
    blocks = text_.split("\n\n")
    kept = [b for b in blocks if not any(b.strip().startswith(s) for s in starts)]
    assert len(kept) == len(blocks) - len(starts), "a block to drop was not found"
    return "\n\n".join(kept)


def apply_text(
    db: Database, text_: str, *, actor: str = "cara", dry_run: bool = False
) -> team_apply.ApplyResult:
    return apply_team(db, parse_team(text_, "test.toml"), actor=actor, now=NOW, dry_run=dry_run)


def bootstrap(db: Database) -> team_apply.ApplyResult:
    """The first file of an empty database, applied by someone not (yet) on the team."""
    return apply_text(db, good_text(), actor="root")


def pk(row: Any) -> int:
    assert row.id is not None
    return int(row.id)


def add_console_override(db: Database, who: str, start: datetime, reason: str = "") -> None:
    """An override on "primary" placed from a console, not from the file."""
    with db.write() as session:
        primary = session.exec(select(Schedule).where(Schedule.name == "primary")).one()
        person = session.exec(select(Responder).where(Responder.handle == who)).one()
        session.add(
            Override(
                schedule_id=pk(primary),
                responder_id=pk(person),
                starts_at=start,
                ends_at=start + timedelta(days=1),
                reason=reason,
            )
        )


def export(db: Database) -> str:
    with db.read() as session:
        return export_team(session)


def errors_of(text_: str) -> list[TeamError]:
    with pytest.raises(TeamFileError) as caught:
        parse_team(text_, "test.toml")
    return caught.value.errors


def paths(text_: str) -> list[str]:
    return [error.path for error in errors_of(text_)]


# --- parsing the good file --------------------------------------------------


def test_good_file_parses_into_a_spec() -> None:
    spec = load_team_file(FIXTURES / "good.toml")

    assert [r.handle for r in spec.responders] == ["ana", "ben", "cara", "dev", "eli"]
    ana = spec.responders[0]
    assert ana.contacts[1].kind == "webhook"
    assert ana.contacts[1].secret == "s3cr3t-ana-0123456789"
    assert "s3cr3t-ana-0123456789" not in repr(spec)
    syd, us, _, supervisors = spec.rotations
    assert syd.days == frozenset({1, 2, 3, 4, 5})
    assert syd.hours is not None
    assert us.start == date(2026, 11, 2)  # a TOML date as well as a string
    assert supervisors.shift == timedelta(days=7)  # "1w"
    # Without an offset: the schedule's zone (Sydney, +11 in summer).
    assert spec.overrides[1].start == datetime(2026, 12, 31, 7, 0, tzinfo=UTC)
    assert spec.overrides[0].start == datetime(2026, 12, 24, 9, 0, tzinfo=UTC)
    assert spec.policies[0].steps[1].require_all is True
    assert spec.policies[0].ack_timeout == timedelta(minutes=30)
    assert dict(spec.routing)["csea"] == "emergency"
    assert [s.severity for s in spec.slas] == [1, 2, 4]


def test_override_without_offset_falls_back_to_first_layer_zone() -> None:
    text_ = edited(
        ("from = 2027-01-04T00:00:00Z", 'from = "2027-01-04T09:00:00"'),
        ("to = 2027-01-05T00:00:00Z", 'to = "2027-01-05T09:00:00"'),
    )
    # "secondary" has no timezone key; its first layer "supervisors" is in UTC.
    override = parse_team(text_).overrides[2]
    assert override.start == datetime(2027, 1, 4, 9, 0, tzinfo=UTC)


GAP_TEAM = """
[[responder]]
handle = "ana"
name = "Ana"

[[rotation]]
name = "r"
timezone = "{zone}"
shift = "1d"
handoff = "09:00"
start = "2026-01-05"
members = ["ana"]

[[schedule]]
name = "s"
layers = ["r"]

[[override]]
schedule = "s"
who = "ana"
from = "{start}"
to = "{end}"
"""


@pytest.mark.parametrize(
    ("zone", "start", "end", "starts_at", "ends_at"),  # the last two: UTC in 2026
    [
        # Clocks go 02:00 -> 03:00: the skipped 02:30 is 03:00 local, as a hand-off would be.
        (
            "America/Los_Angeles",
            "2026-03-08T02:30",
            "2026-03-08T12:00",
            "03-08T10:00",
            "03-08T19:00",
        ),
        ("America/New_York", "2026-03-08T02:30", "2026-03-08T12:00", "03-08T07:00", "03-08T16:00"),
        ("Australia/Sydney", "2026-10-04T02:30", "2026-10-04T12:00", "10-03T16:00", "10-04T01:00"),
        # An end in the gap is the gap's end too.
        (
            "America/Los_Angeles",
            "2026-03-07T20:00",
            "2026-03-08T02:59",
            "03-08T04:00",
            "03-08T10:00",
        ),
    ],
)
def test_override_time_in_the_spring_forward_gap_is_the_gap_end(
    zone: str, start: str, end: str, starts_at: str, ends_at: str
) -> None:
    override = parse_team(GAP_TEAM.format(zone=zone, start=start, end=end)).overrides[0]
    assert override.start == datetime.fromisoformat(f"2026-{starts_at}+00:00")
    assert override.end == datetime.fromisoformat(f"2026-{ends_at}+00:00")


def test_override_time_in_a_repeated_hour_is_its_first_occurrence() -> None:
    text_ = GAP_TEAM.format(
        zone="America/New_York", start="2026-11-01T01:30", end="2026-11-01T09:00"
    )
    # 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST).
    assert parse_team(text_).overrides[0].start == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


# --- applying ---------------------------------------------------------------


def test_good_file_applies(db: Database) -> None:
    result = bootstrap(db)

    assert result.applied
    assert not result.plan.empty
    assert result.plan.summary()["responder"] == {"added": 5, "changed": 0, "removed": 0}
    with db.read() as session:
        responders = {r.handle: r for r in session.exec(select(Responder))}
        assert responders["cara"].role == "supervisor"
        assert responders["cara"].active
        assert responders["eli"].name == 'Eli "E" Stone'
        ana_contacts = session.exec(
            select(ContactMethod)
            .where(ContactMethod.responder_id == responders["ana"].id)
            .order_by(col(ContactMethod.position))
        ).all()
        assert [(c.kind, c.url, c.secret) for c in ana_contacts] == [
            ("desktop", None, None),
            ("webhook", "https://chat.example/hook/ana", "s3cr3t-ana-0123456789"),
        ]
        syd = session.exec(select(Rotation).where(Rotation.name == "syd-day")).one()
        assert (syd.shift, syd.handoff, syd.days, syd.hours) == (
            "1d",
            "08:00",
            "tue,wed,thu,fri,sat",
            "08:00-20:00",
        )
        dub = session.exec(select(Rotation).where(Rotation.name == "dub-day")).one()
        members = session.exec(
            select(RotationMember)
            .where(RotationMember.rotation_id == dub.id)
            .order_by(col(RotationMember.position))
        ).all()
        by_id = {r.id: r.handle for r in responders.values()}
        assert [by_id[m.responder_id] for m in members] == ["cara", "dev", "cara"]
        primary = session.exec(select(Schedule).where(Schedule.name == "primary")).one()
        assert primary.holiday_cover_id == responders["ben"].id
        layers = session.exec(
            select(ScheduleLayer)
            .where(ScheduleLayer.schedule_id == primary.id)
            .order_by(col(ScheduleLayer.position))
        ).all()
        rotation_names = {r.id: r.name for r in session.exec(select(Rotation))}
        assert [rotation_names[layer.rotation_id] for layer in layers] == [
            "syd-day",
            "dub-day",
            "us-day",
        ]
        overrides = session.exec(select(Override).order_by(col(Override.starts_at))).all()
        assert overrides[0].starts_at == datetime(2026, 12, 24, 9, 0, tzinfo=UTC)
        assert overrides[0].reason == "Christmas swap"
        assert overrides[0].created_at == NOW
        emergency = session.exec(select(Policy).where(Policy.name == "emergency")).one()
        assert snapshot_policy(session, emergency) == {
            "name": "emergency",
            "repeat": 2,
            "ack_timeout_seconds": 1800,
            "steps": [
                {"delay_seconds": 300, "targets": ["schedule:primary"], "require_all": False},
                {
                    "delay_seconds": 600,
                    "targets": ["schedule:secondary", "role:supervisor"],
                    "require_all": True,
                },
            ],
        }
        routes = {r.category: r.policy_id for r in session.exec(select(Routing))}
        assert routes["csea"] == emergency.id
        assert len(routes) == 4
        slas = {
            s.severity: (s.ack_seconds, s.respond_seconds) for s in session.exec(select(SlaTarget))
        }
        assert slas == {1: (300, 1800), 2: (900, 7200), 4: (14400, 86400)}
        holidays = session.exec(select(Holiday).order_by(col(Holiday.day))).all()
        assert [(h.day, h.name) for h in holidays] == [
            (date(2026, 12, 25), "Christmas Day"),
            (date(2026, 12, 26), "Boxing Day"),
        ]
        records = audit.verify(session)
        assert records.ok
        assert records.checked == 1


def test_apply_writes_one_audit_record_with_the_plan(db: Database) -> None:
    result = bootstrap(db)
    with db.read() as session:
        record = session.exec(select(AuditRecord)).one()
    assert (record.actor, record.action) == ("root", "team.apply")
    assert record.detail["summary"] == result.plan.summary()
    assert record.detail["changes"] == result.plan.lines()
    assert not any(secret in str(record.detail) for secret in SECRETS)


def test_apply_twice_is_idempotent(db: Database) -> None:
    bootstrap(db)
    before, records = dump(db), audit_count(db)

    second = apply_text(db, good_text())

    assert second.plan.empty
    assert second.plan.lines() == []
    assert not second.applied
    assert dump(db) == before
    assert audit_count(db) == records


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_new_override_over_already_is_left_out_a_stored_one_is_kept(
    db: Database, dry_run: bool
) -> None:
    """Who was on call stays as it was: a file placed an override that was over, and
    `oncall --at` then changed its answer. One the desk already holds, begun or over,
    applies again as it is; a new one over already is left out and said, on a dry run as
    on a real one (an export applied to another desk, a dated file applied late)."""
    bootstrap(db)
    later = datetime(2027, 1, 2, tzinfo=UTC)  # the file's overrides have begun by then
    again = apply_team(db, parse_team(good_text(), "test.toml"), actor="cara", now=later)
    assert again.plan.empty
    before, records = dump(db), audit_count(db)
    past = good_text() + (
        '\n[[override]]\nschedule = "primary"\nwho = "dev"\n'
        'from = "2026-12-01T00:00:00Z"\nto = "2026-12-02T00:00:00Z"\n'
    )
    result = apply_team(db, parse_team(past, "test.toml"), actor="cara", now=later, dry_run=dry_run)
    assert result.plan.empty
    [warning] = [w for w in result.warnings if "is over" in w]
    assert warning.startswith("override dev on primary from 2026-12-01T00:00:00+00:00")
    assert "is not placed: who was on call then stays as it was" in warning
    assert dump(db) == before
    assert audit_count(db) == records


def test_a_new_override_begun_already_starts_now_and_is_that_override_after(
    db: Database,
) -> None:
    """Its past part would change who was on call; from now on it holds. Applied again,
    later, the same file finds it (stored from when it began), not a new one each time."""
    bootstrap(db)
    later = datetime(2027, 1, 2, tzinfo=UTC)
    begun = good_text() + (
        '\n[[override]]\nschedule = "primary"\nwho = "dev"\n'
        'from = "2027-01-01T00:00:00Z"\nto = "2027-01-03T00:00:00Z"\n'
    )
    first = apply_team(db, parse_team(begun, "test.toml"), actor="cara", now=later)
    assert first.plan.lines() == [
        "+ override dev on primary from 2027-01-02T00:00:00+00:00 to 2027-01-03T00:00:00+00:00"
    ]
    hour_on = later + timedelta(hours=1)
    again = apply_team(db, parse_team(begun, "test.toml"), actor="cara", now=hour_on)
    assert again.plan.empty
    assert again.plan.kept_overrides == ()
    with db.read() as session:
        starts = session.exec(
            select(Override.starts_at).where(Override.ends_at == datetime(2027, 1, 3, tzinfo=UTC))
        ).all()
    assert starts == [later]


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_file_that_names_nobody_is_refused_on_a_desk_with_people(
    db: Database, dry_run: bool
) -> None:
    """An empty or truncated file deactivated everyone, its applier too, and the desk was
    then anyone's to found again."""
    bootstrap(db)
    before, records = dump(db), audit_count(db)
    with pytest.raises(BadInput, match="names no responder: applying it would deactivate all"):
        apply_text(db, "", dry_run=dry_run)
    assert (dump(db), audit_count(db)) == (before, records)


def test_export_round_trips(db: Database) -> None:
    bootstrap(db)
    exported = export(db)
    before, records = dump(db), audit_count(db)

    result = apply_text(db, exported)

    assert result.plan.empty, result.plan.lines()
    assert dump(db) == before
    assert audit_count(db) == records
    assert export(db) == exported  # deterministic
    assert exported.startswith("# Vigil team file")
    assert "Secrets are never exported" in exported


def test_webhook_urls_are_shown_by_host_and_fingerprint_never_by_their_token() -> None:
    """Chat services put the token in the path or the query: neither is ever printed."""
    shown = shown_url
    slack = "https://hooks.slack.com/services/T0/B0/s3cretT0ken"
    assert shown(slack).startswith("https://hooks.slack.com/...#kept:")
    assert "s3cret" not in shown(slack)
    assert shown("https://chat.example/hook?token=abc") != shown(
        "https://chat.example/hook?token=abd"
    )
    assert "pw" not in shown("https://user:pw@chat.example/")
    assert shown("https://chat.example") == "https://chat.example"  # nothing to hide
    assert KEPT_URL.match(shown(slack))


def test_an_exported_webhook_url_applies_as_the_stored_one(db: Database) -> None:
    bootstrap(db)
    exported = export(db)
    assert "https://chat.example/hook/ana" not in exported
    assert shown_url("https://chat.example/hook/ana") in exported
    # Moved to the end of the list: the stored URL (and its secret) still come back.
    moved = edited(
        (
            'contacts = [{ kind = "desktop" }, '
            '{ kind = "webhook", url = "https://chat.example/hook/cara" }]',
            'contacts = [{ kind = "webhook", url = "https://chat.example/hook/cara" }, '
            '{ kind = "desktop" }]',
        ),
        base=exported.replace(
            shown_url("https://chat.example/hook/cara"),
            "https://chat.example/hook/cara",
        ),
    )
    apply_text(db, moved)
    with db.read() as session:
        hooks = {
            c.url: c.secret for c in session.exec(select(ContactMethod)) if c.kind == "webhook"
        }
    assert hooks["https://chat.example/hook/ana"] == "s3cr3t-ana-0123456789"


def test_a_shown_url_that_stands_for_nothing_stored_is_refused_with_its_path(
    db: Database,
) -> None:
    bootstrap(db)
    stranger = shown_url("https://chat.example/hook/someone-else")
    text_ = export(db).replace(shown_url("https://chat.example/hook/ana"), stranger)
    before, records = dump(db), audit_count(db)
    with pytest.raises(TeamFileError) as caught:
        apply_text(db, text_)
    [error] = caught.value.errors
    assert error.where == "responder[0] (ana).contacts[1].url"
    assert "write the full URL" in error.message
    assert (dump(db), audit_count(db)) == (before, records)  # nothing applied


ANA_HOOK = 'url = "https://chat.example/hook/ana", secret = "s3cr3t-ana-0123456789"'


@pytest.mark.parametrize(
    ("hook", "where", "message"),
    [
        (
            'url = "http://chat.example/hook/ana"',
            "responder[0] (ana).contacts[1].url",
            "plain http:// is refused (the page and its signature would travel in clear): "
            "use https://, or set allow_insecure = true on this contact",
        ),
        (
            'url = "https://chat.example/hook/ana", secret = "short-key"',
            "responder[0] (ana).contacts[1].secret",
            "expected a secret of at least 16 bytes, got 9: use a longer one, "
            "or set allow_insecure = true on this contact",
        ),
        (
            'url = "https://chat.example/hook/ana", secret = "whsec_QUJD"',
            "responder[0] (ana).contacts[1].secret",
            "expected a secret of at least 16 bytes, got 3",
        ),
        (
            'url = "https://10.0.0.7/hook/ana"',
            "responder[0] (ana).contacts[1].url",
            "10.0.0.7 is a private address: refused unless allow_private = true on this contact",
        ),
        (
            'url = "https://localhost:8443/hook/ana"',
            "responder[0] (ana).contacts[1].url",
            "localhost is a loopback address",
        ),
        (
            f"{ANA_HOOK}, allow_private = 1",
            "responder[0] (ana).contacts[1].allow_private",
            "expected true or false, got 1",
        ),
    ],
)
def test_insecure_or_private_webhooks_are_refused_unless_allowed(
    hook: str, where: str, message: str
) -> None:
    with pytest.raises(TeamFileError) as caught:
        parse_team(edited((ANA_HOOK, hook)), "test.toml")
    [error] = caught.value.errors
    assert error.where == where
    assert error.message.startswith(message)
    assert "short-key" not in str(caught.value)


def test_allowed_webhooks_apply_and_their_allowances_are_exported(db: Database) -> None:
    bootstrap(db)
    local = (
        'url = "http://127.0.0.1:8787/hook/ana?token=t0ken-9", secret = "short-key", '
        "allow_insecure = true, allow_private = true"
    )
    apply_text(db, edited((ANA_HOOK, local)))
    with db.read() as session:
        # URLs are sealed at rest: found among the opened rows, not by SQL.
        (hook,) = [c for c in session.exec(select(ContactMethod)) if "8787" in (c.url or "")]
        assert (hook.allow_insecure, hook.allow_private, hook.secret) == (True, True, "short-key")

    exported = export(db)
    shown = shown_url("http://127.0.0.1:8787/hook/ana?token=t0ken-9")
    assert f'url = "{shown}", allow_insecure = true, allow_private = true }}' in exported
    assert "t0ken-9" not in exported
    assert "short-key" not in exported
    assert apply_text(db, exported).plan.empty  # the secret is kept, the allowances too

    # Without its allowance the same contact is refused, by key path.
    with pytest.raises(TeamFileError) as caught:
        apply_text(db, exported.replace(", allow_insecure = true", ""))
    assert [e.where for e in caught.value.errors] == ["responder[0] (ana).contacts[1].url"]


def test_an_allowance_is_a_change_shown_without_the_secret(db: Database) -> None:
    bootstrap(db)
    result = apply_text(db, edited((ANA_HOOK, f"{ANA_HOOK}, allow_private = true")))
    shown = shown_url("https://chat.example/hook/ana")
    assert result.plan.lines() == [
        f"~ responder ana: contacts: [desktop, webhook {shown} (with secret)] -> "
        f"[desktop, webhook {shown} (allow_private) (with secret)]"
    ]


def test_the_audit_record_of_an_apply_never_holds_a_webhook_token(db: Database) -> None:
    bootstrap(db)
    apply_text(db, edited(("https://chat.example/hook/ana", "https://chat.example/hook/t0ken-9")))
    with db.read() as session:
        details = [str(r.detail) for r in session.exec(select(AuditRecord))]
    assert details
    assert not [d for d in details if "hook/ana" in d or "t0ken-9" in d]


def test_export_writes_utc_times_dates_and_durations(db: Database) -> None:
    bootstrap(db)
    exported = export(db)
    assert 'from = "2026-12-31T07:00:00+00:00"' in exported
    assert 'start = "2026-11-02"' in exported
    assert 'shift = "7d"' in exported  # "1w" in the file, spelt by format_duration
    assert '{ delay = "10m", targets = ["schedule:secondary", "role:supervisor"], ' in exported


def test_export_of_an_empty_database_applies_as_nothing(sqlite_db: Database) -> None:
    exported = export(sqlite_db)
    assert parse_team(exported) == parse_team("")
    assert apply_text(sqlite_db, exported, actor="root").plan.empty


def test_dry_run_writes_nothing(db: Database) -> None:
    empty = dump(db)
    first = apply_text(db, good_text(), actor="root", dry_run=True)
    assert not first.applied
    assert len(first.plan.changes) == 25
    assert dump(db) == empty

    bootstrap(db)
    before = dump(db)
    changed = apply_text(db, edited(('role = "specialist"', 'role = "admin"')), dry_run=True)
    assert changed.plan.lines() == ["~ responder ana: role: specialist -> admin"]
    assert dump(db) == before


def test_plan_apply_reports_changes_without_writing(sqlite_db: Database) -> None:
    bootstrap(sqlite_db)
    before = dump(sqlite_db)
    spec = parse_team(edited(('sev2 = { ack = "15m", respond = "2h" }', "")))
    with sqlite_db.read() as session:
        plan = plan_apply(session, spec, NOW)
    assert plan.lines() == ["- sla sev2"]
    assert dump(sqlite_db) == before


def test_the_file_is_the_whole_team(db: Database) -> None:
    bootstrap(db)
    with db.write() as session:
        routine = session.exec(select(Policy).where(Policy.name == "routine")).one()
        session.add(
            Case(
                ref="ESC-0001",
                title="Routine request",
                category="other",
                severity=4,
                policy_id=routine.id,
                policy_snapshot=snapshot_policy(session, routine),
                created_at=NOW,
                updated_at=NOW,
            )
        )
    smaller = edited(
        # dev leaves the team; routine policy, us-day rotation and the secondary schedule go.
        ('[[responder]]\nhandle = "dev"', '[[unused]]\nhandle = "dev"'),
        (', "dev", "cara"]', ', "cara"]'),
        ('layers = ["syd-day", "dub-day", "us-day"]', 'layers = ["syd-day", "dub-day"]'),
        ('default = "routine"', 'default = "emergency"'),
        (
            'role = "specialist"\ntimezone = "Australia/Sydney"\ncontacts = [{ kind = "console" }',
            'role = "supervisor"\ntimezone = "Australia/Sydney"\ncontacts = [{ kind = "console" }',
        ),
    )
    smaller = without_blocks(smaller, ["[[unused]]", '[[rotation]]\nname = "us-day"'])
    smaller = without_blocks(
        smaller,
        [
            '[[schedule]]\nname = "secondary"',
            '[[override]]\nschedule = "secondary"',
            '[[override]]\nschedule = "primary"\nwho = "dev"',
            '[[policy]]\nname = "routine"',
        ],
    )
    smaller = smaller.replace(
        'targets = ["schedule:secondary", "role:supervisor"]', 'targets = ["role:supervisor"]'
    )

    result = apply_text(db, smaller)

    lines = result.plan.lines()
    assert "- responder dev: deactivated" in lines
    assert "~ responder ben: role: specialist -> supervisor" in lines
    assert "- rotation us-day" in lines
    assert "- schedule secondary: with its 1 override(s)" in lines
    assert "- policy routine" in lines
    assert "~ routing default: policy: routine -> emergency" in lines
    # dub-day hands off at 07:30 and 19:30 Dublin (GMT): cara's turn under way stays hers.
    assert (
        "~ rotation dub-day: members: [cara, dev, cara] -> [cara, cara]; on call now: cara; "
        "from the hand-off at 2026-11-01T19:30:00+00:00: dev -> cara"
    ) in lines
    # The override of dev on primary was not in the file: kept, and said so.
    dev_override = "dev on primary from 2026-12-31T07:00:00+00:00 to 2026-12-31T19:00:00+00:00"
    assert result.plan.as_dict()["kept_overrides"] == [dev_override]
    assert f"the kept override {dev_override} names dev, who is not in this file" in (
        result.warnings
    )
    with db.read() as session:
        dev = session.exec(select(Responder).where(Responder.handle == "dev")).one()
        assert dev.active is False  # never deleted: cases point at people
        assert session.exec(select(Rotation).where(Rotation.name == "us-day")).first() is None
        assert session.exec(select(Schedule).where(Schedule.name == "secondary")).first() is None
        assert {p.name for p in session.exec(select(Policy))} == {"emergency"}
        assert len(session.exec(select(PolicyStep)).all()) == 2
        case = session.exec(select(Case)).one()
        assert case.policy_id is None
        assert case.policy_snapshot["name"] == "routine"  # the frozen copy stays
        kept = session.exec(select(Override)).all()
        assert {(o.starts_at.year, o.reason) for o in kept} == {
            (2026, "Christmas swap"),
            (2026, ""),
        }

    # Applying the same smaller file again is a no-op, and so is its export.
    assert apply_text(db, smaller).plan.empty
    assert apply_text(db, export(db)).plan.empty
    assert 'handle = "dev"' not in export(db).split("[[rotation]]")[0]


def without_routine() -> str:
    """The good file with the routine policy gone; what it routed goes to emergency."""
    return without_blocks(
        edited(('default = "routine"', 'default = "emergency"')), ['[[policy]]\nname = "routine"']
    )


def test_a_removed_policy_changes_its_cases_as_every_change_of_a_case(db: Database) -> None:
    """Its cases lose the link to the policy through the unit of work: a line of each one's
    timeline, a row each in the change feed consoles read, an audit record each in a chain
    that still verifies, and a listener told once the change is committed."""
    bootstrap(db)
    cases = CaseService(db, FakeClock(NOW))
    open_ref = cases.open_case("ana", title="Routine", category="other", severity=4).ref
    closed_ref = cases.open_case("ben", title="Done", category="other", severity=4).ref
    cases.resolve("ben", closed_ref)
    untouched = cases.open_case("ana", title="Urgent", category="csea", severity=1).ref
    with db.read() as session:
        feed_before = queries.latest_change_id(session)
        versions = {c.ref: c.version for c in session.exec(select(Case))}
    told: list[tuple[int, int | None]] = []

    def listener(case_id: int) -> None:
        with db.read() as session:  # another transaction: it sees only what was committed
            case = session.get(Case, case_id)
            assert case is not None
            told.append((case_id, case.policy_id))

    result = apply_team(
        db, parse_team(without_routine()), actor="cara", now=NOW, on_change=listener
    )

    assert "- policy routine" in result.plan.lines()
    with db.read() as session:
        by_ref = {c.ref: c for c in session.exec(select(Case))}
        changed = [by_ref[open_ref], by_ref[closed_ref]]
        assert [c.policy_id for c in changed] == [None, None]
        assert by_ref[untouched].policy_id is not None
        assert {c.ref: c.version - versions[c.ref] for c in by_ref.values()} == {
            open_ref: 1,
            closed_ref: 1,
            untouched: 0,
        }
        for case in changed:
            [line] = session.exec(
                select(TimelineEvent).where(
                    TimelineEvent.case_id == case.id,
                    TimelineEvent.kind == TimelineKind.POLICY_REMOVED.value,
                )
            ).all()
            assert line.actor == "cara"
            assert line.text.startswith("Policy routine was removed by the team file")
        assert not session.exec(
            select(TimelineEvent).where(
                TimelineEvent.kind == TimelineKind.POLICY_REMOVED.value,
                TimelineEvent.case_id == by_ref[untouched].id,
            )
        ).all()
        feed = queries.changes_since(session, feed_before)
        assert sorted(entry.case_id for entry in feed) == sorted(c.id for c in changed)
        records = session.exec(select(AuditRecord).order_by(col(AuditRecord.seq))).all()
        *_, first, second, applied = records
        assert [(r.actor, r.action, r.case_ref, r.detail) for r in (first, second)] == [
            ("cara", "team.policy_removed", ref, {"policy": "routine"})
            for ref in sorted((open_ref, closed_ref))
        ]
        assert (applied.actor, applied.action) == ("cara", "team.apply")
        assert audit.verify(session).ok
        assert by_ref[closed_ref].status == Status.RESOLVED.value
    assert sorted(told) == sorted((c.id, None) for c in changed)


def test_a_refused_applier_changes_no_case(db: Database) -> None:
    bootstrap(db)
    ref = (
        CaseService(db, FakeClock(NOW))
        .open_case("ana", title="Routine", category="other", severity=4)
        .ref
    )
    before, records = dump(db), audit_count(db)

    with pytest.raises(TeamPermissionError, match="'ben' is a specialist"):
        apply_text(db, without_routine(), actor="ben")

    assert (dump(db), audit_count(db)) == (before, records)
    with db.read() as session:
        case = session.exec(select(Case).where(Case.ref == ref)).one()
        assert case.policy_id is not None


def test_a_desk_with_no_active_responder_is_founded_again_by_anyone(db: Database) -> None:
    """With every responder gone inactive, the next file founds the desk as the first did:
    the one applying it need not be on the team, and the record names them."""
    bootstrap(db)
    with db.write() as session:
        for person in session.exec(select(Responder)):
            person.active = False
            session.add(person)

    result = apply_text(db, good_text(), actor="root")

    assert result.applied
    with db.read() as session:
        record = session.exec(select(AuditRecord).order_by(col(AuditRecord.seq).desc())).first()
        assert record is not None
        assert (record.actor, record.action) == ("root", "team.apply")
        assert all(person.active for person in session.exec(select(Responder)))
    with pytest.raises(TeamPermissionError, match="'root' is not an active responder"):
        apply_text(db, without_routine(), actor="root")


def test_a_responder_back_in_the_file_is_reactivated(sqlite_db: Database) -> None:
    bootstrap(sqlite_db)
    with sqlite_db.write() as session:
        dev = session.exec(select(Responder).where(Responder.handle == "dev")).one()
        dev.active = False
        session.add(dev)
    result = apply_text(sqlite_db, good_text())
    assert result.plan.lines() == ["~ responder dev: active: no -> yes"]


def test_console_overrides_are_kept_and_exported(db: Database) -> None:
    bootstrap(db)
    add_console_override(db, "ana", datetime(2027, 2, 1, tzinfo=UTC), "placed at the console")
    before = dump(db)

    result = apply_text(db, good_text())

    assert result.plan.empty
    assert dump(db) == before
    assert result.plan.as_dict()["kept_overrides"] == [
        "ana on primary from 2027-02-01T00:00:00+00:00 to 2027-02-02T00:00:00+00:00"
    ]
    assert any("1 stored override(s) not in the file are kept" in w for w in result.warnings)
    exported = export(db)
    assert 'reason = "placed at the console"' in exported
    assert apply_text(db, exported).plan.kept_overrides == ()


def test_override_of_an_inactive_responder_is_exported_as_a_comment(
    sqlite_db: Database,
) -> None:
    bootstrap(sqlite_db)
    without_ana = without_blocks(
        edited(
            ('members = ["ana", "ben"]', 'members = ["ben"]'),
        ),
        ['[[responder]]\nhandle = "ana"'],
    )
    apply_text(sqlite_db, without_ana)
    add_console_override(sqlite_db, "ana", datetime(2027, 3, 1, tzinfo=UTC))
    exported = export(sqlite_db)
    assert "# kept in the database, not exported: ana is no longer an active responder" in exported
    assert '# who = "ana"' in exported
    assert apply_text(sqlite_db, exported).plan.empty


def test_overrides_and_holidays_upsert_by_natural_key(sqlite_db: Database) -> None:
    bootstrap(sqlite_db)
    result = apply_text(
        sqlite_db,
        edited(
            ('reason = "Christmas swap"', 'reason = "Swap agreed with Ana"'),
            ('name = "Boxing Day"', 'name = "Boxing Day (observed)"'),
        ),
    )
    assert result.plan.lines() == [
        "~ override ben on primary from 2026-12-24T09:00:00+00:00 to "
        "2026-12-25T21:00:00+00:00: reason: Christmas swap -> Swap agreed with Ana",
        "~ holiday 2026-12-26 AU-NSW: name: Boxing Day -> Boxing Day (observed)",
    ]
    with sqlite_db.read() as session:
        assert len(session.exec(select(Override)).all()) == 3
        assert len(session.exec(select(Holiday)).all()) == 2


def test_schedule_removal_names_the_overrides_it_takes(sqlite_db: Database) -> None:
    bootstrap(sqlite_db)
    smaller = without_blocks(
        good_text(), ['[[schedule]]\nname = "secondary"', '[[override]]\nschedule = "secondary"']
    ).replace('"schedule:secondary", ', "")
    result = apply_text(sqlite_db, smaller)
    assert "- schedule secondary: with its 1 override(s)" in result.plan.lines()
    assert result.plan.kept_overrides == ()  # it goes with its schedule, not kept
    with sqlite_db.read() as session:
        assert len(session.exec(select(Override)).all()) == 2


def test_contacts_keep_their_rows_and_deliveries(sqlite_db: Database) -> None:
    bootstrap(sqlite_db)
    with sqlite_db.write() as session:
        cara = session.exec(select(Responder).where(Responder.handle == "cara")).one()
        contacts = session.exec(
            select(ContactMethod)
            .where(ContactMethod.responder_id == cara.id)
            .order_by(col(ContactMethod.position))
        ).all()
        desktop_id, webhook_id = contacts[0].id, contacts[1].id
        case = Case(
            ref="ESC-0001", title="t", category="other", severity=4, created_at=NOW, updated_at=NOW
        )
        session.add(case)
        session.flush()
        page = Page(
            case_id=pk(case), responder_id=pk(cara), step=1, round=0, due_at=NOW, sent_at=NOW
        )
        session.add(page)
        session.flush()
        session.add(Delivery(page_id=pk(page), channel="desktop", contact_id=desktop_id))
        session.add(Delivery(page_id=pk(page), channel="webhook", contact_id=webhook_id))

    swapped = edited(
        (
            'contacts = [{ kind = "desktop" }, '
            '{ kind = "webhook", url = "https://chat.example/hook/cara" }]',
            'contacts = [{ kind = "webhook", url = "https://chat.example/hook/cara" }]',
        )
    )
    result = apply_text(sqlite_db, swapped)

    cara_hook = shown_url("https://chat.example/hook/cara")
    assert result.plan.lines() == [
        f"~ responder cara: contacts: [desktop, webhook {cara_hook}] -> [webhook {cara_hook}]"
    ]
    with sqlite_db.read() as session:
        rows = session.exec(
            select(ContactMethod).where(ContactMethod.responder_id == cara.id)
        ).all()
        assert [(r.id, r.position) for r in rows] == [(webhook_id, 0)]
        deliveries = {d.channel: d.contact_id for d in session.exec(select(Delivery))}
        assert deliveries == {"desktop": None, "webhook": webhook_id}


# --- secrets ----------------------------------------------------------------


def test_secrets_are_never_exported(db: Database) -> None:
    result = bootstrap(db)
    exported = export(db)
    for secret in SECRETS:
        assert secret not in exported
        assert secret not in "\n".join(result.plan.lines())
    assert "secret" not in exported.split("\n\n", 1)[1]  # only the header mentions secrets


def test_webhook_secret_is_kept_when_the_file_has_none(db: Database) -> None:
    bootstrap(db)
    without_secret = edited(
        (', secret = "s3cr3t-ana-0123456789"', ""),
        (', secret = "eli-secret-0123456789"', ""),
    )
    assert apply_text(db, without_secret).plan.empty
    with db.read() as session:
        stored = {c.url: c.secret for c in session.exec(select(ContactMethod)) if c.secret}
    assert stored == {
        "https://chat.example/hook/ana": "s3cr3t-ana-0123456789",
        "https://ops.example/page?to=eli": "eli-secret-0123456789",
    }


def test_a_new_secret_replaces_the_old_without_showing_either(sqlite_db: Database) -> None:
    bootstrap(sqlite_db)
    result = apply_text(
        sqlite_db,
        edited(('secret = "s3cr3t-ana-0123456789"', 'secret = "rotated-2027-0123456789"')),
    )
    assert result.plan.lines() == ["~ responder ana: contacts: secret changed"]
    with sqlite_db.read() as session:
        secrets = {c.secret for c in session.exec(select(ContactMethod)) if c.secret}
    assert secrets == {"rotated-2027-0123456789", "eli-secret-0123456789"}


def test_a_secret_belongs_to_its_url(sqlite_db: Database) -> None:
    """A webhook moved to a new URL does not carry the old URL's secret along."""
    bootstrap(sqlite_db)
    moved = edited(
        (
            'url = "https://chat.example/hook/ana", secret = "s3cr3t-ana-0123456789"',
            'url = "https://chat.example/hook/ana-2"',
        )
    )
    apply_text(sqlite_db, moved)
    with sqlite_db.read() as session:
        ana_hooks = {
            c.url: c.secret for c in session.exec(select(ContactMethod)) if c.kind == "webhook"
        }
    assert ana_hooks["https://chat.example/hook/ana-2"] is None


# --- who may apply ----------------------------------------------------------


def test_a_specialist_is_refused_once_a_team_exists(db: Database) -> None:
    bootstrap(db)
    before, records = dump(db), audit_count(db)
    changed = edited(('role = "specialist"', 'role = "admin"'))

    with pytest.raises(TeamPermissionError) as refused:
        apply_text(db, changed, actor="ben")

    assert isinstance(refused.value, PermissionError)
    assert "'ben' is a specialist" in str(refused.value)
    assert "supervisor or admin" in str(refused.value)
    assert dump(db) == before
    assert audit_count(db) == records
    with pytest.raises(TeamPermissionError):
        apply_text(db, changed, actor="ben", dry_run=True)


@pytest.mark.parametrize("actor", ["stranger", "dev"])
def test_strangers_and_inactive_supervisors_are_refused(sqlite_db: Database, actor: str) -> None:
    bootstrap(sqlite_db)
    with sqlite_db.write() as session:
        dev = session.exec(select(Responder).where(Responder.handle == "dev")).one()
        dev.role, dev.active = "supervisor", False
        session.add(dev)
    with pytest.raises(TeamPermissionError, match=f"'{actor}' is not an active responder"):
        apply_text(sqlite_db, good_text(), actor=actor)


def test_supervisors_and_admins_may_apply(sqlite_db: Database) -> None:
    bootstrap(sqlite_db)
    assert apply_text(
        sqlite_db, edited(('name = "Ana Ruiz"', 'name = "Ana R."')), actor="eli"
    ).applied
    assert apply_text(sqlite_db, good_text(), actor="cara").applied


def test_a_failed_write_leaves_everything_as_it_was(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    bootstrap(sqlite_db)
    before = dump(sqlite_db)

    def broken_append(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(team_apply.audit, "append", broken_append)
    smaller = without_blocks(good_text(), ["[[holiday]]\ndate = 2026-12-26"])
    with pytest.raises(RuntimeError, match="disk full"):
        apply_text(sqlite_db, edited(('role = "specialist"', 'role = "admin"'), base=smaller))
    assert dump(sqlite_db) == before


# --- warnings ---------------------------------------------------------------


def test_warnings_name_unreachable_people_and_lockouts(sqlite_db: Database) -> None:
    text_ = edited(
        (
            'contacts = [{ kind = "console" }, { kind = "desktop" }]',
            'contacts = [{ kind = "console" }]',
        ),
        (
            'contacts = [{ kind = "desktop" }]\n\n[[responder]]\nhandle = "eli"',
            'contacts = []\n\n[[responder]]\nhandle = "eli"',
        ),
    )
    result = apply_text(sqlite_db, text_, actor="root")
    assert result.warnings == (
        "responder ben has only the console as contact: pages reach them only while a console "
        "is open",
        "responder dev has no contact method: pages never reach them",
        "'root' is not a supervisor or admin in this file: only cara, eli may apply the next one",
    )
    only_specialists = text_.replace('role = "supervisor"', 'role = "specialist"').replace(
        'role = "admin"', 'role = "specialist"'
    )
    with pytest.raises(TeamPermissionError):
        apply_text(sqlite_db, only_specialists, actor="ana")
    result = apply_text(sqlite_db, only_specialists, actor="cara", dry_run=True)
    assert "no responder is a supervisor or admin" in result.warnings[-1]


# --- bad files --------------------------------------------------------------


BAD_FILES: dict[str, dict[str, str]] = {
    "typos.toml": {
        "responders": "unknown key 'responders'; did you mean 'responder'?",
        "responder[0].tz": "unknown key 'tz'",
        "responder[0].contacts[0].urls": "did you mean 'url'?",
        "responder[0].contacts[0].url": "required key is missing",
        "rotation[0].handof": "did you mean 'handoff'?",
        "rotation[0].handoff": "required key is missing",
        "schedule[0].layer": "did you mean 'layers'?",
        "schedule[0].layers": "required key is missing",
        "policy[0].repeats": "did you mean 'repeat'?",
        "policy[0].steps[0].requires_all": "did you mean 'require_all'?",
        "sla.sev1.acknowledge": "unknown key 'acknowledge'",
        "sla.sev1.ack": "required key is missing",
    },
    "bad_responders.toml": {
        "responder[0].handle": "expected a handle",
        "responder[0].role": "expected one of specialist, supervisor, admin, got 'boss'",
        "responder[0].timezone": "expected an IANA time zone",
        "responder[0].contacts[0].kind": (
            "expected one of console, desktop, webhook, apprise, got 'pager'"
        ),
        "responder[0].contacts[1].url": "required key is missing",
        "responder[0].contacts[2].url": "expected an http:// or https:// URL",
        "responder[1].name": "required key is missing",
        "responder[1].contacts[0].url": "unknown key 'url'",
        "responder[1].contacts[1]": "duplicate contact",
        "responder[1].contacts[2]": "duplicate contact",
        "responder[2].handle": "duplicate handle 'ben'",
        "responder[2].contacts[0].secret": "expected a string, got 42",
    },
    "bad_rotations.toml": {
        "rotation[0].timezone": "did you mean 'Australia/Sydney'?",
        "rotation[0].shift": "expected a duration",
        "rotation[0].start": "expected a date YYYY-MM-DD",
        "rotation[0].members[1]": "unknown responder 'zed'",
        "rotation[0].days": "got 'tues'",
        "rotation[0].hours": "expected a time HH:MM",
        "rotation[1].shift": "expected a duration from 1h to 28d, got '30m'",
        "rotation[1].handoff": "expected a time HH:MM between 00:00 and 23:59, got '25:00'",
        "rotation[1].members": "expected at least one entry",
        "rotation[1].days": "expected a list of day names",
        "rotation[1].hours": "start and end at the same time",
        "rotation[2].name": "duplicate name 'us-day'",
        "rotation[2].start": "expected a date YYYY-MM-DD",
    },
    "bad_schedules.toml": {
        "schedule[0].layers[1]": "unknown rotation 'us-day'",
        "schedule[0].layers[2]": "'syd-day' is already layers[0]",
        "schedule[0].holiday_cover": "unknown responder 'zed'|needs a holiday_region",
        "schedule[1].timezone": "expected an IANA time zone",
        "override[0].schedule": "unknown schedule 'tertiary'",
        "override[1].who": "unknown responder 'zed'",
        "override[1].from": "expected an ISO 8601 date and time",
        "override[2].to": "expected a time after `from` (2026-12-25T21:00:00+00:00)",
        "override[3].to": "expected a time after `from`",
        "override[4].schedule": "unknown schedule 'tertiary'",
        "override[4]": "duplicate override: same as override[0]",
        "holiday[0].date": "expected a date YYYY-MM-DD",
        "holiday[2]": "duplicate holiday: holiday[1] has this date and region",
    },
    "bad_policies.toml": {
        "policy[0].repeat": "expected a whole number from 0 to 100, got -1",
        "policy[0].ack_timeout": "expected a duration",
        "policy[0].steps[0].delay": "got '5 minutes'",
        "policy[0].steps[0].targets[0]": "unknown schedule 'secondary'",
        "policy[0].steps[0].targets[1]": "unknown rotation 'us-day'",
        "policy[0].steps[0].targets[2]": "unknown responder 'zed'",
        "policy[0].steps[1].targets[0]": "unknown role 'boss'",
        "policy[0].steps[1].targets[1]": "expected schedule:NAME, rotation:NAME, user:HANDLE",
        "policy[0].steps[1].require_all": "expected true or false",
        "policy[1].repeat": "got '2'",
        "policy[1].steps": "expected at least one step",
        "routing.cesa": "unknown category 'cesa'; did you mean 'csea'?",
        "routing.edr": "unknown policy 'urgent'",
        "sla.sev1.respond": "required key is missing",
        "sla.sev2.ack": "got 'fast'",
        "sla.sev5": "expected sev1, sev2, sev3, sev4",
    },
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_reports_every_problem_and_stores_nothing(db: Database, name: str) -> None:
    bootstrap(db)
    before, records = dump(db), audit_count(db)

    with pytest.raises(TeamFileError) as caught:
        apply_team(db, load_team_file(FIXTURES / name), actor="cara", now=NOW)

    found: dict[str, list[str]] = {}
    for error in caught.value.errors:
        found.setdefault(error.path, []).append(error.message)
    expected = BAD_FILES[name]
    assert set(found) == set(expected)
    for path, fragments in expected.items():
        for fragment in fragments.split("|"):
            assert any(fragment in message for message in found[path]), (path, found[path])
    assert str(caught.value).startswith(f"{FIXTURES / name}: {len(caught.value.errors)} problems")
    assert dump(db) == before
    assert audit_count(db) == records


def test_errors_show_the_entry_name_next_to_the_index() -> None:
    with pytest.raises(TeamFileError) as caught:
        load_team_file(FIXTURES / "bad_rotations.toml")
    assert (
        "rotation[1] (us-day).handoff: expected a time HH:MM between 00:00 and 23:59, got '25:00'"
        in [line.strip() for line in str(caught.value).splitlines()]
    )
    assert "sla.sev5: expected sev1" in str(load_errors("bad_policies.toml"))


def load_errors(name: str) -> TeamFileError:
    with pytest.raises(TeamFileError) as caught:
        load_team_file(FIXTURES / name)
    return caught.value


def test_error_kinds_map_to_exit_codes() -> None:
    assert load_errors("syntax.toml").exit_code == 2
    assert TeamPermissionError("x").exit_code == 1


def test_validate_checks_a_parsed_document() -> None:
    assert validate(tomllib.loads(good_text())) == []
    assert [e.path for e in validate({"responder": [{"handle": "ana"}]})] == ["responder[0].name"]


def test_toml_syntax_error_names_line_and_column() -> None:
    error = load_errors("syntax.toml")
    assert [(e.path, e.message) for e in error.errors] == [
        ("line 4, column 8", "TOML syntax: invalid value")
    ]


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(TeamFileError, match="cannot read the file"):
        load_team_file(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(TeamFileError, match="expected UTF-8"):
        load_team_file(binary)


@pytest.mark.parametrize(
    ("old", "new", "path", "fragment"),
    [
        ('handoff = "09:00"', 'handoff = "9am"', "rotation[1].handoff", "got '9am'"),
        ('shift = "12h"', 'shift = "12"', "rotation[2].shift", "expected a duration"),
        ('start = "2026-11-03"', 'start = "3 Nov"', "rotation[0].start", "got '3 Nov'"),
        ('hours = "08:00-20:00"', 'hours = "08:00"', "rotation[0].hours", "HH:MM-HH:MM"),
        ("repeat = 2", "repeat = 1.5", "policy[0].repeat", "got 1.5"),
        ('ack_timeout = "30m"', 'ack_timeout = "0m"', "policy[0].ack_timeout", "positive"),
        ('timezone = "Europe/Dublin"', 'timezone = "Dublin"', "responder[2].timezone", "IANA"),
        (
            'to = "2026-12-26T08:00:00+11:00"',
            'to = "2026-12-24T20:00:00+11:00"',
            "override[0].to",
            "expected a time after",
        ),
        ('date = "2026-12-25"', 'date = "2026-12-32"', "holiday[0].date", "YYYY-MM-DD"),
        (
            'region = "AU-NSW"\n\n[[holiday]]',
            'region = ""\n\n[[holiday]]',
            "holiday[0].region",
            "non-empty",
        ),
        ('holiday_cover = "ben"', 'holiday_cover = "bob"', "schedule[0].holiday_cover", "'bob'"),
        (
            '{ kind = "desktop" }]\n\n[[responder]]\nhandle = "eli"',
            '{ kind = "sms" }]\n\n[[responder]]\nhandle = "eli"',
            "responder[3].contacts[0].kind",
            "got 'sms'",
        ),
        (
            'url = "https://ops.example/page?to=eli"',
            'url = "ops.example/page"',
            "responder[4].contacts[0].url",
            "http",
        ),
        ('"role:supervisor"', '"role:boss"', "policy[0].steps[1].targets[1]", "unknown role"),
        ('"user:cara"', '"user:carla"', "policy[1].steps[0].targets[1]", "did you mean 'cara'?"),
        ('csea = "emergency"', 'csea = "urgent"', "routing.csea", "unknown policy 'urgent'"),
        ('sev4 = { ack = "4h", respond = "1d" }', 'sev4 = "4h"', "sla.sev4", "expected a table"),
    ],
)
def test_each_bad_value_is_refused_with_its_path(
    old: str, new: str, path: str, fragment: str
) -> None:
    errors = errors_of(edited((old, new)))
    assert [e.path for e in errors] == [path], [str(e) for e in errors]
    assert fragment in errors[0].message


def test_wrong_shapes_are_reported_not_crashed() -> None:
    assert paths("responder = 3") == ["responder"]
    assert paths("responder = [1]") == ["responder[0]"]
    assert paths('routing = "emergency"') == ["routing"]
    assert paths('[[responder]]\nhandle = "a"\nname = "A"\ncontacts = "desktop"') == [
        "responder[0].contacts"
    ]
    assert paths('[[responder]]\nhandle = "a"\nname = "A"\ncontacts = ["desktop"]') == [
        "responder[0].contacts[0]"
    ]
    assert paths('[[policy]]\nname = "p"\nsteps = ["schedule:x"]') == ["policy[0].steps[0]"]


# --- export quoting ---------------------------------------------------------


def test_export_quotes_any_text(tmp_path: Path) -> None:
    database = Database.open(f"sqlite:///{tmp_path}/quoting.db")
    # Any text a team file may hold: one printable line (the rest is refused by key path).
    text_ = st.text(min_size=1, max_size=30).filter(
        lambda s: s.strip() == s and s != "" and line_problem(s) is None
    )

    @settings(max_examples=40, deadline=None)
    @given(name=text_, region=text_)
    def check(name: str, region: str) -> None:
        spec = TeamSpec(
            responders=(ResponderSpec("ana", name, "admin", "UTC", (ContactSpec("desktop"),)),),
            holidays=(HolidaySpec(date(2026, 12, 25), name, region),),
        )
        apply_team(database, spec, actor="ana", now=NOW)
        again = parse_team(export(database))
        assert again.responders[0].name == name
        # Holidays are upserted, never removed by a file: earlier examples stay.
        assert HolidaySpec(date(2026, 12, 25), name, region) in again.holidays

    try:
        check()
    finally:
        database.dispose()


# --- casework settings in the team file ---------------------------------------

CLOCKS = """
[clocks.threat_to_life.authority_notice]
kind = "deadline"
label = "Notify authorities of a threat to life (DSA Article 18)"
due = "1h"
remind = "15m"
"""


def test_casework_tables_apply_export_and_round_trip(db: Database) -> None:
    bootstrap(db)
    result = apply_text(db, good_text() + CLOCKS)
    assert [c.line for c in result.plan.changes if c.kind == "casework"] == [
        "~ casework settings: clocks"
    ]
    exported = export(db)
    assert "[clocks.threat_to_life.authority_notice]" in exported
    assert apply_text(db, exported).plan.empty
    assert apply_text(db, good_text() + CLOCKS).plan.empty
    # Dropping the tables from the file returns the desk to the built-in defaults.
    assert not apply_text(db, good_text()).plan.empty
    assert "[clocks" not in export(db)


def test_bad_casework_values_are_refused_with_their_key_path() -> None:
    bad = CLOCKS.replace('due = "1h"', 'due = "soon"')
    assert "clocks.threat_to_life.authority_notice.due" in paths(good_text() + bad)


# --- database logins ----------------------------------------------------------


def test_a_responder_names_their_database_login(db: Database) -> None:
    bootstrap(db)
    text_ = good_text().replace('handle = "ana"', 'handle = "ana"\ndb_login = "ana.ruiz@desk"', 1)
    result = apply_text(db, text_)
    assert result.plan.lines() == ["~ responder ana: db_login: none -> ana.ruiz@desk"]
    with db.read() as session:
        ana = session.exec(select(Responder).where(Responder.handle == "ana")).one()
        assert ana.db_login == "ana.ruiz@desk"
    exported = export(db)
    assert 'db_login = "ana.ruiz@desk"' in exported
    assert apply_text(db, exported).plan.empty


def test_a_database_login_is_checked_and_belongs_to_one_person() -> None:
    base = '[[responder]]\nhandle = "{h}"\nname = "N"\n{extra}\n'
    bad = base.format(h="ana", extra='db_login = "ana; drop role x"')
    [error] = errors_of(bad)
    assert error.path == "responder[0].db_login"
    assert "expected a PostgreSQL login" in error.message
    shared = base.format(h="ana", extra="") + base.format(h="ben", extra='db_login = "ana"')
    [error] = errors_of(shared)
    assert error.path == "responder[1].db_login"
    assert "login 'ana' is responder[0]'s already" in error.message

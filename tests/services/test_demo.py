"""The demo desk: a month of a realistic desk, made by the real services and engine."""

from __future__ import annotations

import io
import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import undefer
from sqlmodel import col, func, select

from app.cli.main import main
from app.core.clock import FakeClock
from app.core.errors import NothingToDo
from app.demo.build import (
    CITIES,
    HISTORY,
    HISTORY_CASES,
    LIVE_COVER,
    build_demo,
    demo_team_text,
    plan_history,
    plan_live,
    wipe,
)
from app.rules.rotations import ScheduleSpec, coverage_gaps
from app.services.policies import sla_table
from app.services.team.apply import apply_team
from app.services.team.parse import parse_team
from data import audit
from data.db import Database
from data.domain import Category, Stage, Status
from data.escalation import StepRun
from data.models import AuditHead, AuditRecord, Case, ContactMethod, Page, Responder, TimelineEvent
from data.oncall import Holiday
from data.schema import every_table

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")
SPECIALISTS = [("ana", "Australia/Sydney"), ("priya", "America/New_York")]


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('demo') / 'vigil.db'}"


@pytest.fixture(scope="module")
def built(demo_url: str) -> Iterator[tuple[Database, str]]:
    """One demo desk built at NOW, shared by the read-only tests of this module."""
    db = Database.open(demo_url)
    summary = build_demo(db, now=NOW)
    yield db, summary
    db.dispose()


@pytest.fixture
def demo_db(built: tuple[Database, str]) -> Database:
    return built[0]


@pytest.mark.parametrize("years", [1, 10])
def test_the_demo_builds_years_after_its_team_file_was_written(tmp_path: Path, years: int) -> None:
    """Its team file's override (Christmas 2026) lies in the past of a demo built later: it
    is left out, as any file's override that starts before now, not a reason to refuse."""
    db = Database.open(f"sqlite:///{tmp_path / 'vigil.db'}")
    try:
        later = NOW.replace(year=NOW.year + years)
        assert "Demo desk ready" in build_demo(db, now=later)
        with db.read() as session:
            assert session.exec(select(func.count()).select_from(Case)).one() > 0
    finally:
        db.dispose()


def _cases(db: Database) -> list[Case]:
    with db.read() as session:
        return list(session.exec(select(Case).order_by(col(Case.id))).all())


def _handles(db: Database) -> dict[int | None, str]:
    with db.read() as session:
        return {r.id: r.handle for r in session.exec(select(Responder)).all()}


def fingerprint(db: Database) -> dict[str, Any]:
    """What two builds at the same `now` must agree on, down to the audit chain's head."""
    handles = _handles(db)
    with db.read() as session:
        pages = session.exec(
            select(Case.ref, Page.responder_id, Page.step, Page.round, Page.sent_at)
            .join(Case, col(Case.id) == col(Page.case_id))
            .order_by(col(Page.id))
        ).all()
        head = session.get(AuditHead, 1)
    return {
        "cases": [
            (
                c.ref,
                c.title,
                c.category,
                c.severity,
                c.status,
                c.stage,
                handles.get(c.assignee_id),
                c.created_at,
                c.acknowledged_at,
                c.resolved_at,
            )
            for c in _cases(db)
        ],
        "pages": [(ref, handles[rid], step, rnd, sent) for ref, rid, step, rnd, sent in pages],
        "audit_head": (head.seq, head.hash) if head else None,
    }


# --- the team ----------------------------------------------------------------------------


def test_team_file_is_a_follow_the_sun_desk_without_gaps() -> None:
    spec = parse_team(demo_team_text(), "demo_team.toml")
    rotations = {rotation.name: rotation for rotation in spec.rotations}
    primary = next(s for s in spec.schedules if s.name == "primary")
    schedule = ScheduleSpec(name="primary", layers=tuple(rotations[n] for n in primary.layers))
    span = (datetime(2026, 1, 6, tzinfo=UTC), datetime(2027, 12, 31, tzinfo=UTC))
    assert coverage_gaps(schedule, *span) == []
    assert rotations["syd-day"].days == frozenset({1, 2, 3, 4, 5})  # tue..sat
    assert rotations["syd-sun-thu"].days == frozenset({6, 0, 1, 2, 3})  # sun..thu
    assert {p.name for p in spec.policies} == {"emergency", "standard"}
    holidays = Counter((h.region, h.day.year) for h in spec.holidays)
    assert set(holidays) == {("AU-NSW", 2026), ("AU-NSW", 2027), ("US", 2026), ("US", 2027)}
    assert date(2026, 11, 26) in {h.day for h in spec.holidays if h.region == "US"}
    assert date(2026, 12, 28) in {h.day for h in spec.holidays if h.region == "AU-NSW"}


def test_about_ten_responders_across_three_zones(demo_db: Database) -> None:
    with demo_db.read() as session:
        people = session.exec(select(Responder)).all()
        contacts = session.exec(
            select(ContactMethod).options(undefer(ContactMethod.url))  # type: ignore[arg-type]
        ).all()
    assert 9 <= len(people) <= 12
    assert {p.timezone for p in people} == {
        "Australia/Sydney",
        "America/New_York",
        "America/Los_Angeles",
    }
    roles = Counter(p.role for p in people)
    assert roles["supervisor"] == 2
    assert roles["admin"] == 1
    ana = next(p for p in people if p.handle == LIVE_COVER)
    assert (ana.role, ana.timezone) == ("specialist", "Australia/Sydney")
    webhooks = [c for c in contacts if c.kind == "webhook"]
    assert len(webhooks) == 1
    assert webhooks[0].url is not None
    url = urlsplit(webhooks[0].url)
    assert url.scheme == "https"
    assert url.hostname == "127.0.0.1"  # on this machine, and allowed so explicitly
    assert (webhooks[0].allow_private, webhooks[0].allow_insecure) == (True, False)


# --- the cases ---------------------------------------------------------------------------


def test_about_two_hundred_cases_over_the_last_month(demo_db: Database) -> None:
    cases = _cases(demo_db)
    assert HISTORY_CASES <= len(cases) <= HISTORY_CASES + 12
    assert all(NOW - HISTORY <= c.created_at <= NOW for c in cases)
    assert {c.status for c in cases} == {s.value for s in Status}
    assert {c.category for c in cases} == {c.value for c in Category}
    assert {c.severity for c in cases} == {1, 2, 3, 4}
    assert {c.source for c in cases} == {"vigil", "pagerduty", "alertmanager"}
    resolved = [c for c in cases if c.status == Status.RESOLVED.value]
    assert len(resolved) >= 0.95 * len(cases)
    assert sum(1 for c in cases if c.dedup_key) >= 10
    # Arrivals lean to the US daytime: 09:00-18:00 in New York is 9 hours of 24.
    us_day = sum(1 for c in cases if 9 <= c.created_at.astimezone(NEW_YORK).hour < 18)
    assert us_day > 0.45 * len(cases)


def test_a_handful_are_live_and_one_sev1_pages_ana(demo_db: Database) -> None:
    cases = _cases(demo_db)
    handles = _handles(demo_db)
    triggered = [c for c in cases if c.status == Status.TRIGGERED.value]
    acknowledged = [c for c in cases if c.status == Status.ACKNOWLEDGED.value]
    assert 2 <= len(triggered) <= 3
    assert 3 <= len(acknowledged) <= 4
    assert len({c.stage for c in acknowledged}) >= 3
    assert any(c.category == Category.CSEA and c.sensitive for c in acknowledged)
    [sev1] = [c for c in triggered if c.severity == 1]
    with demo_db.read() as session:
        paged = session.exec(select(Page.responder_id).where(Page.case_id == sev1.id)).all()
    assert LIVE_COVER in {handles[rid] for rid in paged}
    assert NOW - sev1.created_at < timedelta(minutes=5)


def test_the_partner_directory_holds_police_and_a_helpline(demo_db: Database) -> None:
    from app.services.casework.views import partners

    with demo_db.read() as session:
        found = {p.name: p for p in partners(session)}
    assert {name: p.kind for name, p in found.items()} == {
        "metro-pd": "law_enforcement",
        "harbour-police": "law_enforcement",
        "safeline": "ngo",
    }
    assert all(p.verified_channel for p in found.values() if p.kind == "law_enforcement")


def test_csea_cases_are_sensitive(demo_db: Database) -> None:
    csea = [c for c in _cases(demo_db) if c.category == Category.CSEA]
    assert csea
    assert all(c.sensitive for c in csea)


def test_acknowledgements_mostly_meet_the_sla_and_some_escalate(demo_db: Database) -> None:
    cases = _cases(demo_db)
    with demo_db.read() as session:
        sla = sla_table(session)
        exhausted_pages = session.exec(select(Page).where(Page.reason == "exhausted")).all()
        reassigned = session.exec(
            select(TimelineEvent).where(TimelineEvent.kind == "reassigned")
        ).all()
        duplicates = session.exec(
            select(TimelineEvent).where(TimelineEvent.kind == "duplicate")
        ).all()
    acked = [c for c in cases if c.acknowledged_at is not None]
    late = [
        c
        for c in acked
        if c.acknowledged_at is not None
        and (c.acknowledged_at - c.created_at).total_seconds() > sla[c.severity][0]
    ]
    assert 0 < len(late) < 0.25 * len(acked)
    assert sum(1 for c in cases if c.escalation_step >= 2 or c.escalation_round >= 1) >= 5
    assert 1 <= sum(1 for c in cases if c.exhausted) <= 2
    assert exhausted_pages
    assert 3 <= len(reassigned) <= 10
    assert duplicates


def test_cases_are_worked_through_the_services(demo_db: Database) -> None:
    cases = _cases(demo_db)
    with demo_db.read() as session:
        actions = Counter(session.exec(select(AuditRecord.action)).all())
        step_runs = session.exec(select(StepRun)).all()
        stages = Counter(
            e.text.split("→ ")[-1].split(" ")[0]
            for e in session.exec(select(TimelineEvent).where(TimelineEvent.kind == "stage"))
        )
    assert actions["case.open"] == len(cases)
    assert actions["case.resolve"] == sum(1 for c in cases if c.status == Status.RESOLVED.value)
    assert actions["case.ack"] >= len([c for c in cases if c.acknowledged_by_id])
    assert actions["case.note"] > len(cases) / 2
    assert actions["case.reveal"] >= 1
    assert actions["engine.escalate"] >= len(cases)
    assert len(step_runs) >= len(cases)
    assert set(stages) >= {
        Stage.INVESTIGATING.value,
        Stage.AWAITING_PARTNER.value,
        Stage.CONTAINED.value,
    }


def test_the_audit_chain_verifies(built: tuple[Database, str], demo_url: str) -> None:
    db, summary = built
    with db.read() as session:
        report = audit.verify(session)
    assert report.ok, report.reason
    out, err = io.StringIO(), io.StringIO()
    assert main(["audit", "verify", "--db", demo_url, "--as", "ana"], out=out, err=err) == 0
    assert f"{report.checked} records" in out.getvalue()
    assert "the chain verifies" in summary
    assert f"{len(_cases(db))} cases" in summary


def test_holidays_of_both_countries_are_stored(demo_db: Database) -> None:
    with demo_db.read() as session:
        regions = Counter(session.exec(select(Holiday.region)).all())
    assert regions["AU-NSW"] >= 20
    assert regions["US"] >= 20


# --- refusing and resetting --------------------------------------------------------------


def test_a_real_desk_is_refused_and_left_alone(db: Database) -> None:
    apply_team(db, parse_team(demo_team_text()), actor="sam", now=NOW)
    err = io.StringIO()
    code = main(["demo", "--no-console", "--db", str(db.engine.url)], out=io.StringIO(), err=err)
    assert code == 1
    assert "--reset" in err.getvalue()
    with db.read() as session:
        assert session.exec(select(func.count()).select_from(Case)).one() == 0


def test_a_desk_with_only_a_team_is_refused_too(db: Database) -> None:
    apply_team(db, parse_team(demo_team_text()), actor="sam", now=NOW)
    with pytest.raises(NothingToDo, match="11 responders, 0 cases"):
        build_demo(db, now=NOW)


def test_a_demo_desk_is_rebuilt_identically_without_reset(demo_db: Database, demo_url: str) -> None:
    """Running the Quick start twice rebuilds the demo desk instead of refusing it."""
    first = fingerprint(demo_db)
    err = io.StringIO()
    code = main(
        ["demo", "--no-console", "--db", demo_url],
        clock=FakeClock(NOW),
        out=io.StringIO(),
        err=err,
    )
    assert code == 0, err.getvalue()
    assert "Demo desk ready" in err.getvalue()
    assert fingerprint(demo_db) == first


# --- the plan, without a database --------------------------------------------------------


def test_the_plan_is_deterministic_for_a_given_now() -> None:
    def plan(now: datetime) -> list[tuple[Any, ...]]:
        rng = random.Random(7)
        plans = plan_history(now, rng, SPECIALISTS) + plan_live(now, rng)
        return [(p.opened_at, p.title, p.severity, p.ack_after, p.resolve_after) for p in plans]

    assert plan(NOW) == plan(NOW)
    assert plan(NOW) != plan(NOW + timedelta(days=1))


def test_history_settles_before_now_and_live_cases_stay_open() -> None:
    rng = random.Random(3)
    history = plan_history(NOW, rng, SPECIALISTS)
    assert len(history) == HISTORY_CASES
    for plan in history:
        assert plan.resolve_after is not None
        assert plan.opened_at >= NOW - HISTORY
        assert plan.opened_at + plan.resolve_after < NOW
    live = plan_live(NOW, rng)
    assert all(p.resolve_after is None for p in live)
    assert all(NOW - timedelta(hours=3) < p.opened_at < NOW for p in live)


def test_a_case_names_one_city_in_its_title_and_its_details() -> None:
    for seed in range(40):
        rng = random.Random(seed)
        plans = plan_history(NOW, rng, SPECIALISTS) + plan_live(NOW, rng)
        for plan in plans:
            named = {city for city in CITIES if city in f"{plan.title} {plan.details}"}
            assert len(named) <= 1, (seed, plan.title, plan.details)


# --- PostgreSQL --------------------------------------------------------------------------


@pytest.mark.pg
def test_the_demo_builds_on_postgresql(pg_db: Database) -> None:
    summary = build_demo(pg_db, now=NOW)
    cases = _cases(pg_db)
    assert HISTORY_CASES <= len(cases) <= HISTORY_CASES + 12
    assert {c.status for c in cases} == {s.value for s in Status}
    with pg_db.read() as session:
        assert audit.verify(session).ok
    assert "the chain verifies" in summary

    wipe(pg_db)
    with pg_db.read() as session:
        for table in every_table().sorted_tables:
            assert session.execute(select(func.count()).select_from(table)).one()[0] == 0
    apply_team(pg_db, parse_team(demo_team_text()), actor="sam", now=NOW)
    with pg_db.read() as session:
        assert session.exec(select(func.min(Responder.id))).one() == 1  # identities restart

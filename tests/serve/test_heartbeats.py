"""Heartbeat monitors: a silent sender opens one case, its next beat resolves it.

The engine decides with the injected clock; beats arrive over real HTTP at a running
`vigil serve` (SQLite and PostgreSQL), or through the service where only the rule is tested.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlmodel import col, select

from app.core.clock import FakeClock
from app.engine.cycle import EscalationEngine
from app.services.cases import CaseService
from app.services.heartbeats import load_heartbeats, record_beat
from app.services.integrations import new_key
from app.services.team.apply import apply_team
from app.services.team.export import export_team
from app.services.team.parse import TeamFileError, parse_team
from data.clock import set_time_source
from data.db import Database
from data.models import Case, Page, TimelineEvent
from tests.serve.harness import TEAM as SERVE_TEAM
from tests.serve.harness import Served, serving

MONITORS = """
[[heartbeat]]
name = "moderation-pipeline"
interval = "5m"
grace = "1m"
severity = "sev1"
category = "csea"
policy = "desk"

[[heartbeat]]
name = "nightly-export"
interval = "1d"
"""
TEAM = SERVE_TEAM + MONITORS
INTERVAL_AND_GRACE = timedelta(minutes=6)


def _desk(db: Database, clock: FakeClock) -> dict[str, str]:
    apply_team(db, parse_team(TEAM), actor="intake", now=clock.now())
    names = ("pd", "moderation-pipeline", "nightly-export")
    return {name: new_key(db, clock, "intake", name) for name in names}


def _silent_cases(db: Database) -> list[Case]:
    with db.read() as session:
        query = select(Case).where(Case.source == "heartbeat:moderation-pipeline")
        return list(session.exec(query.order_by(col(Case.id))).all())


def _monitor(db: Database, name: str = "moderation-pipeline") -> str:
    with db.read() as session:
        (found,) = [view for view in load_heartbeats(session) if view.name == name]
    return found.state()


@pytest.fixture
def desk(any_db: Database, clock: FakeClock) -> dict[str, str]:
    return _desk(any_db, clock)


@pytest.fixture
def served(any_db: Database, clock: FakeClock, desk: dict[str, str]) -> Iterator[Served]:
    with serving(any_db, clock, desk, engine=False) as running:
        yield running


@pytest.fixture
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        yield client


def test_silence_opens_one_case_that_pages_and_the_next_beat_resolves_it(
    any_db: Database, clock: FakeClock, desk: dict[str, str]
) -> None:
    cases = CaseService(any_db, clock)
    engine = EscalationEngine(any_db, clock, name="engine-a")
    other = EscalationEngine(any_db, clock, name="engine-b")
    record_beat(cases, "intake", "moderation-pipeline")
    beat_at = clock.now()
    assert engine.next_due_at() == beat_at + INTERVAL_AND_GRACE  # the engine wakes for it

    clock.advance(INTERVAL_AND_GRACE - timedelta(seconds=1))
    engine.run_due()
    assert _silent_cases(any_db) == []  # never early

    clock.advance(timedelta(seconds=1))
    engine.run_due()
    other.run_due()  # a second engine on the same desk opens nothing more
    (case,) = _silent_cases(any_db)
    assert (case.title, case.severity, case.category) == (
        "Heartbeat moderation-pipeline is silent",
        1,
        "csea",
    )
    assert case.sensitive  # a CSEA case, whatever opened it
    with any_db.read() as session:
        pages = session.exec(select(Page).where(Page.case_id == case.id)).all()
        opened = session.exec(
            select(TimelineEvent).where(
                TimelineEvent.case_id == case.id, TimelineEvent.kind == "opened"
            )
        ).one()
    assert len(pages) == 1  # step 1 paged in the same cycle
    assert opened.actor == "engine"  # the engine acts as itself, never as a person
    assert _monitor(any_db) == "down"
    assert engine.next_due_at() is not None

    clock.advance(timedelta(hours=2))
    engine.run_due()
    assert len(_silent_cases(any_db)) == 1  # one silence, one case

    beat = record_beat(cases, "intake", "moderation-pipeline")
    assert beat.resolved == case.ref
    (case,) = _silent_cases(any_db)
    assert case.status == "resolved"
    assert _monitor(any_db) == "up"

    clock.advance(INTERVAL_AND_GRACE)
    engine.run_due()
    assert len(_silent_cases(any_db)) == 2  # silent again: a new case


def test_a_monitor_that_never_beat_counts_from_its_declaration(
    db: Database, clock: FakeClock
) -> None:
    _desk(db, clock)
    engine = EscalationEngine(db, clock, name="engine-a")
    assert _monitor(db) == "waiting"
    clock.advance(INTERVAL_AND_GRACE - timedelta(seconds=1))
    engine.run_due()
    assert _silent_cases(db) == []
    clock.advance(timedelta(seconds=1))
    engine.run_due()
    assert len(_silent_cases(db)) == 1


def test_a_beat_after_the_deadline_but_before_the_cycle_opens_nothing(
    db: Database, clock: FakeClock
) -> None:
    """The engine was away past the deadline; the sender came back first: no case."""
    _desk(db, clock)
    cases = CaseService(db, clock)
    engine = EscalationEngine(db, clock, name="engine-a")
    clock.advance(timedelta(hours=1))
    record_beat(cases, "intake", "moderation-pipeline")
    engine.run_due()
    assert _silent_cases(db) == []


def test_a_case_resolved_by_hand_while_still_silent_is_not_reopened_until_a_beat(
    db: Database, clock: FakeClock
) -> None:
    _desk(db, clock)
    cases = CaseService(db, clock)
    engine = EscalationEngine(db, clock, name="engine-a")
    clock.advance(INTERVAL_AND_GRACE)
    engine.run_due()
    (case,) = _silent_cases(db)
    cases.resolve("intake", case.ref, "sender retired; monitor to be removed")
    clock.advance(timedelta(hours=1))
    engine.run_due()
    assert len(_silent_cases(db)) == 1


def test_beats_over_http_and_refusals_alike(
    served: Served, http: httpx.Client, any_db: Database, clock: FakeClock
) -> None:
    beat = served.bearer("moderation-pipeline")
    reply = http.post("/heartbeat/moderation-pipeline", headers=beat)
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "ok"
    assert body["heartbeat"] == "moderation-pipeline"
    assert body["resolved"] is None
    assert _monitor(any_db) == "up"

    wrong = http.post("/heartbeat/moderation-pipeline", headers=served.bearer("nightly-export"))
    unknown = http.post("/heartbeat/nobody", headers=served.bearer("moderation-pipeline"))
    integration = http.post("/heartbeat/pd", headers=served.bearer("pd"))
    assert wrong.status_code == unknown.status_code == integration.status_code == 401
    assert wrong.json() == unknown.json() == integration.json()  # nothing learnt
    assert http.post("/heartbeat/moderation-pipeline").status_code == 401  # no key
    # A monitor's own key on the events route: it sends no events (a 500 once).
    as_events = http.post("/integrations/heartbeat/moderation-pipeline", json={}, headers=beat)
    assert as_events.status_code == 401
    assert as_events.json()["message"] == "authorization: not a key of this integration"
    assert http.get("/heartbeat/moderation-pipeline").status_code == 405  # only POST acts

    clock.advance(INTERVAL_AND_GRACE)
    EscalationEngine(any_db, clock, name="engine-a").run_due()
    (case,) = _silent_cases(any_db)
    back = http.post("/heartbeat/moderation-pipeline", headers=beat)
    assert back.json()["resolved"] == case.ref
    metrics = http.get("/metrics").text
    assert 'vigil_heartbeat_down{heartbeat="moderation-pipeline"} 0.0' in metrics
    assert 'vigil_heartbeat_down{heartbeat="nightly-export"} 0.0' in metrics


def test_the_team_file_declares_and_exports_monitors(db: Database, clock: FakeClock) -> None:
    _desk(db, clock)
    with db.read() as session:
        exported = export_team(session)
    assert '[[heartbeat]]\nname = "moderation-pipeline"\ninterval = "5m"\ngrace = "1m"' in (
        exported.replace('category = "csea"\n', "")
        .replace('severity = "sev1"\n', "")
        .replace('policy = "desk"\n', "")
    )
    assert 'format = "heartbeat"' not in exported
    again = apply_team(db, parse_team(exported), actor="intake", now=clock.now(), dry_run=True)
    assert not again.plan.changes  # applying the export changes nothing


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('name = "x"', "heartbeat[2] (x).interval: required key is missing"),
        ('name = "x"\ninterval = "30s"', "(x).interval: expected a duration from 1m to 7d"),
        ('name = "pd"\ninterval = "5m"', "(pd).name: duplicate name 'pd': integration[0] has it"),
        ('name = "x"\ninterval = "5m"\ngrace = "2d"', "(x).grace: expected a duration from 1s"),
        ('name = "x"\ninterval = "5m"\nrate_limit = 3', "(x).rate_limit: unknown key"),
    ],
)
def test_bad_monitors_are_refused_naming_the_field(entry: str, message: str) -> None:
    with pytest.raises(TeamFileError) as raised:
        parse_team(TEAM + "\n[[heartbeat]]\n" + entry + "\n")
    assert message in str(raised.value)


@pytest.mark.pg
def test_a_beat_from_a_host_11_minutes_fast_is_stamped_with_the_databases_time(
    pg_db: Database, clock: FakeClock
) -> None:
    """Else the fast host would postpone the alarm by 11 minutes (and a slow one raise it
    early): the engine compares beats with the database's time."""
    _desk(pg_db, clock)
    fast = FakeClock(clock.now() + timedelta(minutes=11))
    with pg_db.engine.begin() as connection:
        schema = connection.exec_driver_sql("SELECT current_schema()").scalar()
        assert isinstance(schema, str)
        set_time_source(connection, schema, clock.now())
    beat = record_beat(CaseService(pg_db, fast), "intake", "moderation-pipeline")
    assert beat.at == clock.now()
    engine = EscalationEngine(pg_db, fast, name="fast")
    assert engine.next_due_at() == clock.now() + INTERVAL_AND_GRACE

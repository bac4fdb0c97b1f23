"""`vigil serve` over real HTTP on loopback: PagerDuty Events API v2, Alertmanager, Grafana
and our own events; refusals; health and metrics. SQLite and PostgreSQL."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy.orm import undefer
from sqlmodel import col, select

import app.serve.app as serve_app
from app.core.clock import FakeClock
from app.serve import Server
from app.serve.metrics import Metrics
from data.db import Database
from data.intake import CaseLink, ChangeNote
from data.models import Case, Page
from data.wal import AUTOMATIC_PAGES
from tests.factories import REPO, wal_automatic_pages
from tests.serve.harness import Served, build_desk, free_port, pd_trigger, serving


@pytest.fixture
def served(any_db: Database, clock: FakeClock) -> Iterator[Served]:
    keys = build_desk(any_db, clock)
    with serving(any_db, clock, keys, engine=False) as running:
        yield running


@pytest.fixture
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        yield client


def cases(db: Database) -> list[Case]:
    """Every case, with its details (which are deferred: listing cases never opens them)."""
    with db.read() as session:
        statement = select(Case).options(undefer(Case.details)).order_by(col(Case.id))
        return list(session.exec(statement).all())


# --- PagerDuty Events API v2 --------------------------------------------------------------


def test_pagerduty_trigger_acknowledge_resolve_with_the_documented_responses(
    served: Served, http: httpx.Client, any_db: Database
) -> None:
    key = served.keys["pd"]
    event = pd_trigger(
        key,
        dedup_key="db-1/disk",
        links=[{"href": "https://runbooks.example/disk", "text": "Runbook"}],
        images=[{"src": "x", "href": "https://grafana.example/d/1", "alt": "Disk graph"}],
        client="Nagios",
        client_url="https://nagios.example/db-1",
    )
    reply = http.post("/v2/enqueue", json=event)
    assert reply.status_code == 202
    assert reply.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "db-1/disk",
    }
    (case,) = cases(any_db)
    assert (case.severity, case.dedup_key, case.status) == (1, "db-1/disk", "triggered")
    with any_db.read() as session:
        links = session.exec(select(CaseLink).order_by(col(CaseLink.position))).all()
        pages = session.exec(select(Page)).all()
    assert [(link.href, link.text) for link in links] == [
        ("https://runbooks.example/disk", "Runbook"),
        ("https://grafana.example/d/1", "Disk graph"),
        ("https://nagios.example/db-1", "Nagios"),
    ]
    assert len(pages) == 1  # step 1 paged before the 202 (no engine in this process)
    assert http.post("/v2/enqueue", json=event).status_code == 202  # deduplicated
    ack = {"routing_key": key, "event_action": "acknowledge", "dedup_key": "db-1/disk"}
    assert http.post("/v2/enqueue", json=ack).status_code == 202
    resolve = {**ack, "event_action": "resolve"}
    assert http.post("/v2/enqueue", json=resolve).status_code == 202
    (case,) = cases(any_db)
    assert case.status == "resolved"
    # Resolved, and unknown: accepted and dropped, as PagerDuty does.
    for again in (resolve, ack, {**resolve, "dedup_key": "never-seen"}):
        reply = http.post("/v2/enqueue", json=again)
        assert reply.status_code == 202, reply.text
        assert reply.json()["dedup_key"] == again["dedup_key"]
    assert len(cases(any_db)) == 1


def test_a_trigger_without_dedup_key_is_given_one_that_resolves_it(
    served: Served, http: httpx.Client, any_db: Database
) -> None:
    reply = http.post("/v2/enqueue", json=pd_trigger(served.keys["pd"]))
    key = reply.json()["dedup_key"]
    assert key.startswith("pd-")
    resolve = {"routing_key": served.keys["pd"], "event_action": "resolve", "dedup_key": key}
    assert http.post("/v2/enqueue", json=resolve).status_code == 202
    assert [c.status for c in cases(any_db)] == ["resolved"]


def test_bad_pagerduty_events_get_400_naming_each_field(
    served: Served, http: httpx.Client, any_db: Database
) -> None:
    bad = pd_trigger(served.keys["pd"])
    bad["payload"] = {"summary": "", "severity": "fatal"}
    reply = http.post("/v2/enqueue", json=bad)
    assert reply.status_code == 400
    body = reply.json()
    assert body["status"] == "invalid event"
    assert body["message"] == "Event object is invalid"
    assert any(e.startswith("payload.summary:") for e in body["errors"])
    assert any(e.startswith("payload.severity: expected critical, error") for e in body["errors"])
    assert any(e.startswith("payload.source:") for e in body["errors"])
    assert http.post("/v2/enqueue", json={"event_action": "trigger"}).json()["errors"] == [
        "routing_key: required"
    ]
    assert cases(any_db) == []


@pytest.mark.parametrize(
    ("content", "headers", "status", "message"),
    [
        (b"{not json", {"content-type": "application/json"}, 400, "body: not valid JSON"),
        (b"[1, 2]", {"content-type": "application/json"}, 400, "Event object is invalid"),
        (b"{}", {"content-type": "text/plain"}, 415, "content-type: expected application/json"),
        (
            b"[" * 100 + b"]" * 100,
            {"content-type": "application/json"},
            400,
            "body: nested more than",
        ),
        (b"\xff\xfe", {"content-type": "application/json"}, 400, "body: not UTF-8"),
        (b" " * 1_000_001, {"content-type": "application/json"}, 413, "body: at most"),
        (
            b'{"n": ' + b"1" * 4301 + b"}",
            {"content-type": "application/json"},
            400,
            "body: a number in it has too many digits",
        ),
    ],
    ids=["broken", "not-an-object", "content-type", "too-deep", "not-utf8", "too-big", "digits"],
)
def test_bad_bodies_get_a_4xx_with_a_sentence_never_a_500(
    http: httpx.Client, content: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    reply = http.post("/v2/enqueue", content=content, headers=headers)
    assert reply.status_code == status
    assert reply.json()["message"].startswith(message)
    assert "Traceback" not in reply.text


def test_a_null_event_action_is_refused_not_taken_for_a_change_event(
    served: Served, http: httpx.Client, any_db: Database
) -> None:
    """It was stored as a change note, then answered 500: a sender retrying added more."""
    event = pd_trigger(served.keys["pd"], event_action=None)
    reply = http.post("/v2/enqueue", json=event)
    assert reply.status_code == 400
    assert reply.json()["errors"] == ["event_action: required"]
    with any_db.read() as session:
        assert session.exec(select(ChangeNote)).all() == []
    assert cases(any_db) == []


@pytest.mark.parametrize(
    "timestamp",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "1969-12-31T23:59:59Z", "x"],
)
def test_a_change_event_s_time_out_of_range_is_refused_naming_it(
    served: Served, http: httpx.Client, any_db: Database, timestamp: str
) -> None:
    change = {"routing_key": served.keys["pd"], "payload": {"summary": "s", "timestamp": timestamp}}
    reply = http.post("/v2/change/enqueue", json=change)
    assert reply.status_code == 400
    assert reply.json()["errors"][0].startswith("payload.timestamp: expected ")
    with any_db.read() as session:
        assert session.exec(select(ChangeNote)).all() == []


@pytest.mark.parametrize("action", [False, 0, "", ["trigger"]])
def test_our_events_refuse_an_action_of_the_wrong_kind(
    served: Served, http: httpx.Client, any_db: Database, action: object
) -> None:
    event = {"title": "T", "category": "edr", "severity": "sev2", "action": action}
    reply = http.post("/integrations/vigil/ours", json=event, headers=served.bearer("ours"))
    assert reply.status_code == 400
    assert "action:" in reply.text
    assert cases(any_db) == []


def test_wrong_keys_are_refused_alike_without_naming_integrations(
    served: Served, http: httpx.Client
) -> None:
    refusals = [
        http.post("/v2/enqueue", json=pd_trigger("vigil_not-a-key")),
        # An Alertmanager integration's key is not a PagerDuty routing key.
        http.post("/v2/enqueue", json=pd_trigger(served.keys["prod"])),
        http.post("/integrations/alertmanager/prod", json={}, headers=served.bearer("pd")),
        http.post("/integrations/alertmanager/nope", json={}, headers=served.bearer("prod")),
        http.post("/integrations/alertmanager/prod", json={}),
    ]
    assert [r.status_code for r in refusals] == [401] * 5
    for reply in refusals:
        assert "prod" not in reply.text
        assert "nope" not in reply.text


def test_a_fresh_copy_of_the_integrations_is_read_without_a_worker_thread(
    served: Served, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key of each request is looked up on the event loop while this process's copy of
    the integrations is fresh; only a stale copy is reloaded, from the database, in a
    worker thread (a thread for every request cost about a tenth of each one's time)."""
    lookups: list[str] = []
    in_thread = serve_app.run_in_threadpool

    async def counted(function: Any, *args: Any) -> Any:
        lookups.append(getattr(function, "__name__", ""))
        return await in_thread(function, *args)

    monkeypatch.setattr(serve_app, "run_in_threadpool", counted)
    desk = served.server.desk
    desk._loaded_at = float("-inf")  # stale: the first request reloads
    for _ in range(3):
        assert http.post("/v2/enqueue", json=pd_trigger(served.keys["pd"])).status_code == 202
    assert lookups == ["integrations"]
    desk._loaded_at = float("-inf")
    bearer = served.bearer("prod")
    assert http.post("/integrations/alertmanager/prod", json={}, headers=bearer).status_code != 401
    assert http.post("/integrations/alertmanager/prod", json={}, headers=bearer).status_code != 401
    assert lookups == ["integrations", "integrations"]


def test_what_start_up_made_is_out_of_the_collectors_way_before_serving(
    sqlite_db: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full collection walked every object start-up made (53-71 ms, twice in a storm of
    3,000 alerts, holding up every request in flight): they are frozen before the first."""
    build_desk(sqlite_db, clock)
    frozen_when_serving: list[int] = []
    monkeypatch.setattr(
        uvicorn.Server,
        "run",
        lambda _server, sockets=None: frozen_when_serving.append(gc.get_freeze_count()),
    )
    try:
        Server(sqlite_db, clock, "intake", port=free_port(), engine=False).run()
    finally:
        gc.unfreeze()
    [frozen] = frozen_when_serving  # served once
    assert frozen > 10_000


def test_while_serving_no_commit_checkpoints_sqlites_log(
    sqlite_db: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint within a commit held up a whole group of requests (`data.wal`): while
    `vigil serve` runs, a thread of its own checkpoints; once it stops, commits do again."""
    build_desk(sqlite_db, clock)
    when_serving: list[int] = []
    monkeypatch.setattr(
        uvicorn.Server,
        "run",
        lambda _server, sockets=None: when_serving.append(wal_automatic_pages(sqlite_db)),
    )
    try:
        Server(sqlite_db, clock, "intake", port=free_port(), engine=False).run()
    finally:
        gc.unfreeze()
    assert when_serving == [0]
    assert wal_automatic_pages(sqlite_db) == AUTOMATIC_PAGES


def test_over_the_rate_limit_is_429_with_retry_after(served: Served, http: httpx.Client) -> None:
    key = served.keys["slow"]  # two events a minute
    replies = [http.post("/v2/enqueue", json=pd_trigger(key, dedup_key=f"k{i}")) for i in range(3)]
    assert [r.status_code for r in replies] == [202, 202, 429]
    assert replies[2].headers["Retry-After"] == "30"
    assert "rate limit of 2 events a minute" in replies[2].json()["message"]


def test_a_change_event_is_a_change_note_never_a_page(
    served: Served, http: httpx.Client, any_db: Database
) -> None:
    change = {
        "routing_key": served.keys["pd"],
        "payload": {
            "summary": "Deployed build 4512 to prod",
            "timestamp": "2026-11-26T08:55:00Z",
            "source": "ci",
            "custom_details": {"build": 4512},
        },
        "links": [{"href": "https://ci.example/4512", "text": "Build"}],
    }
    reply = http.post("/v2/change/enqueue", json=change)
    assert reply.status_code == 202
    assert reply.json() == {"status": "success", "message": "Change event processed"}
    assert cases(any_db) == []
    with any_db.read() as session:
        (note,) = session.exec(select(ChangeNote)).all()
    assert (note.summary, note.source, note.integration) == (
        "Deployed build 4512 to prod",
        "ci",
        "pd",
    )
    assert note.links == [{"href": "https://ci.example/4512", "text": "Build"}]
    assert note.happened_at is not None
    assert note.happened_at.hour == 8


# --- Alertmanager, Grafana, our own ----------------------------------------------------------


def am_alert(status: str = "firing", **labels: str) -> dict[str, object]:
    return {
        "status": status,
        "labels": {"alertname": "HighErrorRate", "service": "api", **labels},
        "annotations": {
            "summary": "API error rate above 5%",
            "runbook_url": "https://runbooks.example/api-errors",
        },
        "startsAt": "2026-11-26T08:59:00Z",
        "generatorURL": "http://prometheus.example/graph?g0.expr=rate",
        "fingerprint": "a1b2c3d4e5f60718",
    }


def am_group(*alerts: dict[str, object]) -> dict[str, object]:
    return {"version": "4", "receiver": "vigil", "status": "firing", "alerts": list(alerts)}


def test_alertmanager_fires_resolves_and_a_resent_resolve_is_a_no_op(
    served: Served, http: httpx.Client, any_db: Database
) -> None:
    url, auth = "/integrations/alertmanager/prod", served.bearer("prod")
    reply = http.post(url, json=am_group(am_alert()), headers=auth)
    assert reply.status_code == 202, reply.text
    assert reply.json()["opened"] == ["ESC-0001"]
    (case,) = cases(any_db)
    # No severity label: it pages anyway, at sev2, and says so.
    assert (case.severity, case.category, case.dedup_key) == (
        2,
        "other",
        "alertmanager:a1b2c3d4e5f60718",
    )
    assert "No severity label: paged as sev2" in case.details
    with any_db.read() as session:
        links = session.exec(select(CaseLink).order_by(col(CaseLink.position))).all()
    assert [(link.text, link.href) for link in links] == [
        ("source", "http://prometheus.example/graph?g0.expr=rate"),
        ("runbook", "https://runbooks.example/api-errors"),
    ]
    for _ in range(2):  # resolved, then re-sent resolved
        reply = http.post(url, json=am_group(am_alert("resolved")), headers=auth)
        assert reply.status_code == 202, reply.text
    assert reply.json()["dropped"] == ["alertmanager:a1b2c3d4e5f60718"]
    assert [c.status for c in cases(any_db)] == ["resolved"]


def test_grafana_contact_point_takes_the_integrations_severity_and_its_links(
    served: Served, http: httpx.Client, any_db: Database
) -> None:
    alert = {
        **am_alert(),
        "dashboardURL": "https://grafana.example/d/abc",
        "panelURL": "https://grafana.example/d/abc?viewPanel=2",
        "silenceURL": "https://grafana.example/alerting/silence/new",
        "values": {"B": 44.2},
    }
    body = {"version": "1", "orgId": 1, "receiver": "vigil", "state": "alerting", "alerts": [alert]}
    reply = http.post("/integrations/grafana/graf", json=body, headers=served.bearer("graf"))
    assert reply.status_code == 202, reply.text
    (case,) = cases(any_db)
    assert (case.severity, case.dedup_key) == (3, "grafana:a1b2c3d4e5f60718")
    with any_db.read() as session:
        texts = [link.text for link in session.exec(select(CaseLink)).all()]
    assert texts == ["source", "runbook", "dashboard", "panel", "silence"]


def test_our_own_events_take_a_list(served: Served, http: httpx.Client, any_db: Database) -> None:
    events = [
        {"title": "EDR from Metro PD", "category": "edr", "severity": 1, "dedup_key": "edr-1"},
        {"title": "Bad", "category": "nope", "severity": 1},
    ]
    reply = http.post("/integrations/vigil/ours", json=events, headers=served.bearer("ours"))
    assert reply.status_code == 400
    body = reply.json()
    assert body["opened"] == ["ESC-0001"]
    assert body["errors"][0]["position"] == "event 2"
    assert body["errors"][0]["reason"].startswith("category: expected one of")


# --- health and metrics --------------------------------------------------------------------


def test_health_readiness_and_metrics(served: Served, http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"
    http.post("/v2/enqueue", json=pd_trigger(served.keys["pd"], dedup_key="m1"))
    http.post("/v2/enqueue", json=pd_trigger("wrong"))
    text = http.get("/metrics").text
    assert 'vigil_intake_events_total{integration="pd",outcome="opened"} 1.0' in text
    assert 'vigil_intake_events_total{integration="",outcome="unauthorized"} 1.0' in text
    assert 'vigil_open_cases{severity="sev1"} 1.0' in text
    assert 'vigil_pages_total{reason="escalation"} 1.0' in text
    assert "vigil_escalation_lag_seconds_bucket" in text
    assert "vigil_outbox_backlog 0.0" in text
    assert "vigil_database_up 1.0" in text


def test_a_scrape_with_the_database_gone_still_answers(
    db: Database, tmp_path: Path, clock: FakeClock
) -> None:
    """Pages are counted at the scrape: a database that does not answer then leaves the
    counts as they were and says so, never a failed scrape."""
    metrics = Metrics(db, clock)
    metrics.count_pages()  # where the desk stands
    db.dispose()
    stored = tmp_path / "vigil.db"
    stored.unlink()
    stored.mkdir()  # nothing at that path can be opened as a database now
    text = metrics.exposition().decode()
    assert "vigil_database_up 0.0" in text
    assert not [line for line in text.splitlines() if line.startswith("vigil_pages_total")]


@pytest.mark.parametrize(
    ("host", "said"),
    [
        ("127.0.0.1", "--port: {port} is already in use on 127.0.0.1"),
        ("999.1.1.1", "--host: '999.1.1.1' is no address to listen on"),
        ("192.0.2.1", "--host: cannot listen on 192.0.2.1:{port}"),
    ],
    ids=["port-taken", "no-such-host", "not-this-machine"],
)
def test_a_port_or_host_it_cannot_listen_on_is_bad_input_exit_2(
    sqlite_db: Database, sqlite_url: str, clock: FakeClock, host: str, said: str
) -> None:
    """uvicorn logged the error and exited 3, outside the command line's contract."""
    build_desk(sqlite_db, clock)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        serve = ["serve", "--no-engine", "--host", host, "--port", str(port)]
        done = subprocess.run(
            [sys.executable, "-m", "app.main", "--db", sqlite_url, "--as", "intake", *serve],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stderr
    assert said.format(port=port) in done.stderr
    assert "Traceback" not in done.stderr

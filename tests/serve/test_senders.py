"""Real senders against a real `vigil serve` on loopback: Prometheus Alertmanager (Debian's
`prometheus-alertmanager`, installed by `.ci/run`) and PagerDuty's own Python client, using
the README's snippets; and two servers on one PostgreSQL taking the same trigger at once."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select

from app.core.clock import FakeClock
from app.serve import Server
from data.db import Database
from data.intake import CaseLink, ChangeNote
from data.models import Case, Page
from tests.factories import wait_until
from tests.serve.harness import build_desk, free_port, pd_trigger, self_signed, serving

README = Path(__file__).parents[2] / "README.md"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def readme_block(after: str, language: str) -> str:
    """The first ```language block after the line holding `after` in the README."""
    text = README.read_text(encoding="utf-8")
    start = text.index(after)
    match = re.compile(rf"```{language}\n(.*?)```", re.DOTALL).search(text, start)
    assert match is not None, f"no {language} block after {after!r} in the README"
    return match.group(1)


def cases(db: Database) -> list[Case]:
    with db.read() as session:
        return list(session.exec(select(Case).order_by(col(Case.id))).all())


@pytest.fixture
def alertmanager_binary() -> str:
    if ALERTMANAGER is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus-alertmanager is missing in CI; .ci/run installs it")
        pytest.skip("prometheus-alertmanager is not installed (apt-get install it to run this)")
    return ALERTMANAGER


@pytest.fixture
def alertmanager(
    alertmanager_binary: str, tmp_path: Path, db: Database, clock: FakeClock
) -> Iterator[tuple[str, Database]]:
    keys = build_desk(db, clock)
    with serving(db, clock, keys) as served:
        config = readme_block("Alertmanager's configuration", "yaml")
        config = config.replace("https://vigil.example", served.url)
        config = config.replace("KEY_OF_PROD", keys["prod"])
        # Quick flushes for the test; the README's values suit a real desk.
        config = re.sub(r"group_wait: \S+", "group_wait: 1s", config)
        config = re.sub(r"group_interval: \S+", "group_interval: 1s", config)
        (tmp_path / "alertmanager.yml").write_text(config)
        port = free_port()
        process = subprocess.Popen(
            [
                alertmanager_binary,
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:

            def ready() -> bool:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                try:
                    return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(ready, "Alertmanager ready", timedelta(seconds=20))
            yield url, db
        finally:
            process.terminate()
            process.wait(10)


def test_a_real_alertmanager_opens_cases_and_resolves_them_when_alerts_end(
    alertmanager: tuple[str, Database],
) -> None:
    url, db = alertmanager
    alerts = [
        {
            "labels": {"alertname": "ReportQueueStuck", "severity": "critical", "queue": "csea"},
            "annotations": {
                "summary": "CSEA report queue has not moved for 10 minutes",
                "runbook_url": "https://runbooks.example/report-queue",
            },
            "generatorURL": "http://prometheus.example/graph?g0.expr=queue",
        },
        {
            "labels": {"alertname": "IntakeLatencyHigh", "service": "reports"},
            "annotations": {"summary": "Report intake latency above 2 s"},
        },
    ]
    assert httpx.post(f"{url}/api/v2/alerts", json=alerts, timeout=5).status_code == 200
    wait_until(lambda: len(cases(db)) == 2, "two cases opened", timedelta(seconds=30))
    opened = {case.title: case for case in cases(db)}
    stuck = opened["CSEA report queue has not moved for 10 minutes"]
    assert stuck.severity == 1
    assert opened["Report intake latency above 2 s"].severity == 2  # no severity: sev2
    with db.read() as session:
        links = session.exec(select(CaseLink).where(CaseLink.case_id == stuck.id)).all()
    assert {link.text for link in links} == {"source", "runbook"}
    wait_until(
        lambda: _paged(db) == 2, "step 1 paged by the in-process engine", timedelta(seconds=10)
    )

    ended = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    for alert in alerts:
        alert["endsAt"] = ended
    assert httpx.post(f"{url}/api/v2/alerts", json=alerts, timeout=5).status_code == 200
    wait_until(
        lambda: all(case.status == "resolved" for case in cases(db)),
        "both cases resolved",
        timedelta(seconds=30),
    )
    assert len(cases(db)) == 2  # nothing doubled


def _paged(db: Database) -> int:
    with db.read() as session:
        return len(session.exec(select(Page)).all())


def test_pagerdutys_own_client_triggers_acknowledges_and_resolves(
    db: Database, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client speaks only HTTPS: the server serves it with a certificate made here."""
    pagerduty = pytest.importorskip("pagerduty")
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", cert)
    keys = build_desk(db, clock)
    with serving(db, clock, keys, tls=(cert, key)) as served:
        snippet = readme_block("PagerDuty's own Python client", "python")
        snippet = snippet.replace("https://vigil.example", served.url)
        snippet = snippet.replace("KEY_OF_PD", keys["pd"])
        scope: dict[str, object] = {}
        exec(compile(snippet, "README.md", "exec"), scope)
        (case,) = cases(db)
        assert case.dedup_key == scope["dedup_key"]
        assert case.status == "resolved"
        assert case.severity == 1
        assert isinstance(scope["client"], pagerduty.EventsApiV2Client)
    with db.read() as session:
        assert session.exec(select(CaseLink)).one().text == "Runbook"
        assert session.exec(select(ChangeNote)).one().summary == "Deployed build 4512"


@pytest.mark.pg
def test_two_servers_on_one_postgresql_open_one_case_for_one_trigger_sent_to_both(
    pg_db: Database, pg_url: str, clock: FakeClock
) -> None:
    keys = build_desk(pg_db, clock)
    other_db = Database.open(pg_url)
    second = Server(other_db, clock, "intake", port=free_port(), name="serve-b")
    second.start()
    try:
        with serving(pg_db, clock, keys) as first:
            for round_ in range(10):
                event = pd_trigger(keys["pd"], dedup_key=f"same-{round_}")
                barrier = threading.Barrier(4)
                replies: list[int] = []

                def send(
                    url: str,
                    event: dict[str, object] = event,
                    barrier: threading.Barrier = barrier,
                    replies: list[int] = replies,
                ) -> None:
                    barrier.wait()
                    reply = httpx.post(f"{url}/v2/enqueue", json=event, timeout=20)
                    replies.append(reply.status_code)

                threads = [
                    threading.Thread(target=send, args=(url,))
                    for url in (first.url, second.url, first.url, second.url)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                assert replies == [202] * 4
            by_key: dict[str | None, int] = {}
            for case in cases(pg_db):
                by_key[case.dedup_key] = by_key.get(case.dedup_key, 0) + 1
            assert by_key == {f"same-{round_}": 1 for round_ in range(10)}
            wait_until(lambda: _paged(pg_db) == 10, "one page each", timedelta(seconds=10))
            assert _paged(pg_db) == 10
    finally:
        second.stop()
        other_db.dispose()

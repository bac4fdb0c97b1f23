"""The command-line side of alert intake: `vigil intake` applies the same rules as
`vigil serve`; `vigil integration key`; `[[integration]]` in the team file; links in
`vigil show`; `vigil changes`; the case pane shows the links."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.core.clock import FakeClock
from app.services.integrations import hash_key
from data.db import Database
from data.intake import Integration
from tests.cli_harness import Run
from tests.serve.harness import TEAM
from widgets.case_detail import CaseDetail
from widgets.views import CaseDetailView


@pytest.fixture
def run(db: Database, sqlite_url: str, clock: FakeClock, tmp_path: Path) -> Run:
    team = tmp_path / "team.toml"
    team.write_text(TEAM)
    runner = Run(sqlite_url, clock)
    runner.ok("team", "apply", str(team), who="intake")
    return runner


def alertmanager(status: str, *labels: tuple[str, str]) -> dict[str, object]:
    alert = {
        "status": status,
        "labels": {"alertname": "QueueBacklog", **dict(labels)},
        "annotations": {"summary": "Report queue backlog", "runbook_url": "https://rb.example/q"},
        "generatorURL": "http://prom.example/graph",
        "fingerprint": "0011223344556677",
    }
    return {"version": "4", "receiver": "vigil", "alerts": [alert]}


def test_intake_resolves_then_drops_a_resent_resolve_with_exit_0(run: Run, tmp_path: Path) -> None:
    firing, resolved = tmp_path / "firing.json", tmp_path / "resolved.json"
    firing.write_text(json.dumps(alertmanager("firing")))
    resolved.write_text(json.dumps(alertmanager("resolved")))
    opened = run.summary("intake", str(firing), who="intake")
    assert opened["opened"] == ["ESC-0001"]
    assert run.summary("intake", str(resolved), who="intake")["resolved"] == ["ESC-0001"]
    code, out, err = run("intake", str(resolved), who="intake")
    assert (code, err) == (0, "")
    assert "1 dropped (no open case for the dedup key)" in out
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"action": "acknowledge", "dedup_key": "never"}))
    assert run.summary("intake", str(unknown), who="intake")["dropped"] == ["never"]


def test_a_senders_resolve_closes_a_case_someone_else_acknowledged(
    run: Run, tmp_path: Path
) -> None:
    """Intake runs as a specialist here; ana took the case; the alert ending still closes it."""
    firing, resolved = tmp_path / "firing.json", tmp_path / "resolved.json"
    firing.write_text(json.dumps(alertmanager("firing", ("severity", "warning"))))
    resolved.write_text(json.dumps(alertmanager("resolved")))
    run.ok("intake", str(firing), who="ana")
    run.ok("ack", "ESC-0001", who="ana")
    run.ok("intake", str(resolved), who="intake")
    shown = run.json("show", "ESC-0001")
    assert shown["status"] == "resolved"
    assert shown["severity"] == "sev3"


def test_show_lists_the_links_a_sender_attached(run: Run, tmp_path: Path) -> None:
    firing = tmp_path / "firing.json"
    firing.write_text(json.dumps(alertmanager("firing")))
    run.ok("intake", str(firing), who="intake")
    assert run.json("show", "ESC-0001")["links"] == [
        {"href": "http://prom.example/graph", "text": "source"},
        {"href": "https://rb.example/q", "text": "runbook"},
    ]
    text = run.ok("show", "ESC-0001")
    assert "  link: runbook  https://rb.example/q" in text
    assert "No severity label: paged as sev2 (Vigil's default)" in text


def test_a_pagerduty_change_event_is_a_note_in_vigil_changes(run: Run, tmp_path: Path) -> None:
    change = {"routing_key": "x", "payload": {"summary": "Deployed 4512", "source": "ci"}}
    path = tmp_path / "change.json"
    path.write_text(json.dumps(change))
    assert run.summary("intake", str(path), who="intake")["changes"] == 1
    assert run.json("cases") == []
    (note,) = run.json("changes")
    assert (note["summary"], note["source"]) == ("Deployed 4512", "ci")
    assert "Deployed 4512  (ci)" in run.ok("changes")


def test_integration_key_is_shown_once_stored_hashed_and_kept_by_apply(
    run: Run, db: Database, tmp_path: Path
) -> None:
    out = run.ok("integration", "key", "prod", who="intake")
    key = out.strip().splitlines()[-1]
    assert key.startswith("vigil_")
    with db.read() as session:
        stored = session.get(Integration, 2)
        assert stored is not None
    assert stored.name == "prod"
    assert stored.key_hash == hash_key(key)
    assert key not in run.ok("audit", "log", who="intake")
    team = tmp_path / "team.toml"
    run.ok("team", "apply", str(team), who="intake")  # applying again keeps the key
    with db.read() as session:
        assert session.get(Integration, 2).key_hash == hash_key(key)  # type: ignore[union-attr]
    code, _, err = run("integration", "key", "prod", who="ana")
    assert code == 1
    assert "only supervisors and admins" in err
    code, _, err = run("integration", "key", "nope", who="intake")
    assert code == 1
    assert "no integration named 'nope'" in err


def test_team_export_prints_integrations_without_keys(run: Run) -> None:
    run.ok("integration", "key", "pd", who="intake")
    exported = run.ok("team", "export", who="intake")
    assert (
        '[[integration]]\nname = "graf"\nformat = "grafana"\nseverity = "sev3"\nrate_limit = 120\n'
    ) in exported
    assert '[[integration]]\nname = "pd"\nformat = "pagerduty"\npolicy = "desk"\n' in exported
    assert 'name = "slow"\nformat = "pagerduty"\nrate_limit = 2\n' in exported
    assert "vigil_" not in exported


def test_bad_integrations_in_a_team_file_are_named(run: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        TEAM + '\n[[integration]]\nname = "x"\nformat = "nagios"\npolicy = "nope"\nrate_limit = 0\n'
    )
    code, _, err = run("team", "apply", str(bad), who="intake")
    assert code == 2
    assert "integration[5] (x).format: expected one of pagerduty, alertmanager" in err
    assert "integration[5] (x).policy: unknown policy 'nope'" in err
    assert "integration[5] (x).rate_limit: expected events a minute" in err


def test_the_case_pane_shows_the_links() -> None:
    now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    view = CaseDetailView(
        case_id=1,
        ref="ESC-0001",
        title="Report queue backlog",
        category="other",
        severity=2,
        status="triggered",
        stage="triage",
        assignee=None,
        sensitive=False,
        details="d",
        created_at=now,
        acknowledged_at=None,
        acknowledged_by=None,
        resolved_at=None,
        sla_ack_due_at=None,
        sla_respond_due_at=None,
        escalation_step=1,
        escalation_round=0,
        step_count=1,
        next_escalation_at=None,
        exhausted=False,
        policy="desk",
        links=(("runbook", "https://rb.example/q"),),
    )
    shown = CaseDetail(now=now)._details(view).plain
    assert "Links (1)" in shown
    assert "runbook https://rb.example/q" in shown

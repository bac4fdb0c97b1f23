"""The command line: the contract's commands, flags, JSON and exit codes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli.cases import PAGE_LIMIT
from app.cli.main import main
from app.core.clock import FakeClock
from data.db import Database
from tests.cli_harness import Run
from tests.factories import add_policy, add_responder


@pytest.fixture
def run(db: Database, sqlite_url: str, clock: FakeClock) -> Run:
    add_responder(db, "ana")
    add_responder(db, "ben")
    add_responder(db, "sam", "supervisor")
    add_policy(db, "emergency", [(300, ["user:ana"]), (600, ["user:sam"])], route=["default"])
    return Run(sqlite_url, clock)


def test_page_prints_the_reference_and_pages_step_one(run: Run) -> None:
    code, out, _ = run("page", "--title", "EDR: Metro PD", "--category", "edr", "--severity", "1")
    assert (code, out.strip()) == (0, "ESC-0001")
    body = run.json("show", "ESC-0001")
    assert isinstance(body, dict)
    assert body["status"] == "triggered"
    assert body["severity"] == "sev1"
    assert [(p["handle"], p["step"], p["round"]) for p in body["pages"]] == [("ana", 1, 0)]
    contract_keys = {
        "ref", "title", "category", "severity", "status", "stage", "assignee", "sensitive",
        "created_at", "acknowledged_at", "acknowledged_by", "resolved_at",
        "escalation_step", "escalation_round", "pages",
    }  # fmt: skip
    assert contract_keys <= body.keys()
    assert body["created_at"].endswith("Z")


def test_page_with_dedup_key_returns_the_open_case(run: Run) -> None:
    args = ["page", "--title", "T", "--category", "other", "--severity", "sev3"]
    assert run(*args, "--dedup-key", "k")[1].strip() == "ESC-0001"
    code, out, _ = run(*args, "--dedup-key", "k")
    assert code == 0
    assert out.startswith("ESC-0001")


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--category", "spam", "--severity", "1"], "category"),
        (["--category", "edr", "--severity", "9"], "severity"),
        (["--category", "edr", "--severity", "1", "--policy", "nope"], "policy"),
    ],
)
def test_bad_input_exits_2_naming_the_field(run: Run, argv: list[str], field: str) -> None:
    code, out, err = run("page", "--title", "T", *argv)
    assert code == 2
    assert f"{field}:" in err
    assert out == ""
    assert run.json("cases") == []


def test_usage_errors_exit_2(run: Run) -> None:
    assert run("page", "--title", "T")[0] == 2
    assert run("frobnicate")[0] == 2
    code, _, err = run("team")
    assert code == 2
    assert "apply | export" in err


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file::memory:?uri=true",
        "sqlite:///file:desk?mode=memory&cache=shared&uri=true",
    ],
)
@pytest.mark.parametrize("argv", [("cases",), ("team", "apply", "team.toml"), ("db", "upgrade")])
def test_a_database_held_in_memory_is_refused_as_the_desk(
    url: str,
    argv: tuple[str, ...],
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """It would be gone when the command ends: `team apply` on it said it made the team."""
    monkeypatch.chdir(tmp_path)
    Path("team.toml").write_text('[[responder]]\nhandle = "ana"\nname = "Ana"\n')
    out, err = io.StringIO(), io.StringIO()
    code = main(["--db", url, "--as", "ana", *argv], clock=clock, out=out, err=err)
    assert code == 2
    assert "held in memory" in err.getvalue()
    assert "sqlite:///path/vigil.db" in err.getvalue()
    monkeypatch.setenv("VIGIL_DB", url)
    assert main(["--as", "ana", *argv], clock=clock, out=out, err=err) == 2


def test_refusals_exit_1(run: Run) -> None:
    run("page", "--title", "T", "--category", "edr", "--severity", "1")
    assert run("ack", "ESC-0099")[0] == 1
    assert run("ack", "ESC-0001")[0] == 0
    code, _, err = run("ack", "ESC-0001")
    assert code == 1
    assert "already acknowledged" in err
    code, _, err = run("reassign", "ESC-0001", "--to", "ben", who="ben")
    assert code == 1
    assert "supervisors" in err
    assert run("reassign", "ESC-0001", "--to", "ben", who="sam")[0] == 0
    code, _, err = run("note", "ESC-0001", "hi", who="mallory")
    assert code == 1
    assert "'mallory' is not a responder of this desk" in err


@pytest.mark.parametrize(
    "argv",
    [
        ("cases",),
        ("show", "ESC-0001"),
        ("oncall",),
        ("audit", "log"),
        ("audit", "verify"),
        ("handover", "--format", "json"),
        ("team", "export"),
        ("calendar", "export"),
        ("stats",),
    ],
)
def test_a_handle_that_is_no_active_responder_may_not_even_read(run: Run, argv: tuple) -> None:
    """`--as` names a responder of the desk; a stranger reads nothing (exit 1, says why)."""
    run("page", "--title", "T", "--category", "csea", "--severity", "1")
    code, out, err = run(*argv, who="nobody")
    assert (code, out) == (1, "")
    assert "'nobody' is not a responder of this desk" in err
    assert "--as HANDLE" in err


def test_case_lifecycle_from_the_command_line(run: Run) -> None:
    run("page", "--title", "Threat", "--category", "threat_to_life", "--severity", "1")
    assert run("note", "ESC-0001", "Called the reporting agency")[0] == 0
    assert run("ack", "ESC-0001")[0] == 0
    assert run("resolve", "ESC-0001", "--note", "Handed to local police")[0] == 0
    assert run.json("cases") == []
    resolved = run.json("cases", "--status", "resolved")
    assert isinstance(resolved, list)
    assert [c["ref"] for c in resolved] == ["ESC-0001"]
    assert run("cases", "--status", "open")[0] == 2


def test_show_hides_sensitive_details_until_revealed_and_audits(run: Run) -> None:
    run("page", "--title", "Report", "--category", "csea", "--severity", "1", "--details", "HASH-7")
    code, out, _ = run("show", "ESC-0001")
    assert code == 0
    assert "HASH-7" not in out
    assert "hidden" in out
    body = run.json("show", "ESC-0001")
    assert isinstance(body, dict)
    assert "HASH-7" not in json.dumps(body)
    code, out, _ = run("show", "ESC-0001", "--reveal")
    assert "HASH-7" in out
    log = run.json("audit", "log", "--case", "ESC-0001")
    assert isinstance(log, list)
    assert [r["action"] for r in log][-1] == "case.reveal"


def test_show_lists_the_notes_and_timeline_of_a_sensitive_case_its_details_still_hidden(
    run: Run,
) -> None:
    run("page", "--title", "Report", "--category", "csea", "--severity", "1", "--details", "HASH-7")
    run("--as", "ana", "ack", "ESC-0001")
    run("--as", "ana", "note", "ESC-0001", "Hash match confirmed")
    code, out, _ = run("show", "ESC-0001")
    assert code == 0
    assert "HASH-7" not in out
    notes = out.split("  notes:\n", 1)[1]
    assert notes.startswith("    ")
    assert "  ana: Hash match confirmed\n" in notes
    timeline = out.split("  timeline:\n", 1)[1].split("  casework:\n")[0].splitlines()
    assert [line.strip().split("  ", 1)[1] for line in timeline] == [
        "Opened by ana from vigil; policy emergency",
        "Paged ana (step 1, round 1)",
        "Acknowledged by ana",
        "Note by ana",
    ]
    body = run.json("show", "ESC-0001")
    assert isinstance(body, dict)
    assert "HASH-7" not in json.dumps(body)
    assert [(n["author"], n["body"]) for n in body["notes"]] == [("ana", "Hash match confirmed")]
    assert body["notes"][0]["at"].endswith("Z")
    assert [e["kind"] for e in body["timeline"]] == ["opened", "paged", "acknowledged", "note"]


def test_show_prints_times_on_the_viewers_clock_and_the_casework(run: Run) -> None:
    """ana reads Sydney time (the clock stands at 09:00 UTC, 20:00 AEDT); JSON stays UTC."""
    run("page", "--title", "Report", "--category", "csea", "--severity", "1")
    code, out, _ = run("show", "ESC-0001")
    assert code == 0
    assert "  opened Thu 26 Nov 2026 20:00 AEDT (09:00 UTC)" in out
    assert "2026-11-26T09:00:00Z" not in out
    casework = out.split("  casework:\n", 1)[1]
    assert "    Legal clocks (2)\n" in casework
    assert "    Verification (optional)" in casework
    assert (
        casework
        == "".join(
            f"    {line}\n" for line in run.ok("casework", "show", "ESC-0001").splitlines()[1:]
        ).rstrip("\n")
        + "\n"
    )
    body = run.json("show", "ESC-0001")
    assert body["created_at"] == "2026-11-26T09:00:00Z"
    assert len(body["casework"]["clocks"]) == 2


def test_audit_verify_exit_codes(run: Run, db: Database) -> None:
    run("page", "--title", "T", "--category", "edr", "--severity", "1")
    assert run("audit", "verify")[0] == 0
    with db.write() as session:
        from sqlalchemy import text

        session.execute(text("UPDATE audit_record SET actor = 'x' WHERE seq = 1"))
    code, out, _ = run("audit", "verify")
    assert code == 1
    assert "record 1" in out


def test_a_cases_audit_log_shows_its_own_part_of_an_engine_batch(
    run: Run, db: Database, clock: FakeClock
) -> None:
    """Cases the engine paged together share one record; each case's log shows that record
    with what it did to this case, never the other cases' refs."""
    from app.engine.cycle import EscalationEngine
    from app.services.cases import CaseService

    service = CaseService(db, clock)  # no escalation hook: the engine pages them together
    refs = [
        service.open_case("ana", title="T", category="edr", severity=1, policy="emergency").ref
        for _ in range(3)
    ]
    assert EscalationEngine(db, clock, name="engine").run_due().pages == 3
    log = run.json("audit", "log", "--case", refs[1])
    assert [(r["actor"], r["action"], r["case"]) for r in log] == [
        ("ana", "case.open", refs[1]),
        ("engine", "engine.escalate", refs[1]),
    ]
    assert log[1]["batch_of"] == 3
    assert log[1]["detail"] == {
        "cycle": 0,
        "step": 1,
        "round": 0,
        "paged": ["ana"],
        "missed": 0,
        "skipped": 0,
    }
    text = run.ok("audit", "log", "--case", refs[1])
    assert refs[1] in text
    assert refs[0] not in text
    assert refs[2] not in text
    whole = run.json("audit", "log")[-1]
    assert (whole["case"], whole["detail"]["cases"]) == (None, 3)
    assert run("audit", "verify")[0] == 0


def test_intake_stores_good_events_and_reports_bad_ones(run: Run, tmp_path: Path) -> None:
    events = [
        {"title": "EDR: County Sheriff", "category": "edr", "severity": "sev1", "dedup_key": "a"},
        {"title": "No category", "severity": "sev2"},
        {"title": "Preservation", "category": "preservation", "severity": 4},
    ]
    path = tmp_path / "events.json"
    path.write_text(json.dumps(events))
    code, _, err = run("intake", str(path))
    assert code == 2
    assert "event 2" in err
    assert "category" in err
    cases = run.json("cases")
    assert isinstance(cases, list)
    assert sorted(c["title"] for c in cases) == ["EDR: County Sheriff", "Preservation"]
    ack = tmp_path / "ack.json"
    ack.write_text(json.dumps({"action": "acknowledge", "dedup_key": "a"}))
    assert run("intake", str(ack))[0] == 0
    assert run("intake", str(tmp_path / "missing.json"))[0] == 2


def test_intake_of_text_that_is_not_utf8_is_refused_where_the_byte_is(
    run: Run, tmp_path: Path
) -> None:
    """The byte was replaced and the event stored, its title changed without a word."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        b'{"title": "Fine", "category": "other", "severity": 2}\n'
        b'{"title": "a\xff", "category": "other", "severity": 2}\n'
    )
    code, out, err = run("intake", str(path))
    assert (code, out) == (2, "")
    assert "input: not UTF-8 text: byte 0xff at line 2, column 13" in err
    assert run.json("cases") == []


def test_intake_counts_rejected_events_not_their_problems(run: Run, tmp_path: Path) -> None:
    events = [
        {"title": "", "category": "nope", "severity": "sev9"},  # three problems
        {"title": "Fine", "category": "edr", "severity": 2},
        {"category": "edr"},  # two problems
    ]
    path = tmp_path / "events.json"
    path.write_text(json.dumps(events))
    code, out, err = run("intake", str(path))
    assert code == 2
    assert "1 opened" in out
    assert "2 rejected (5 problems)." in out
    assert err.count("event 1") == 3
    assert err.count("event 3") == 2


def test_db_upgrade_on_a_current_database(run: Run) -> None:
    code, out, _ = run("db", "upgrade")
    assert code == 0
    assert "Schema at" in out


def test_the_installed_entry_point_runs(tmp_path: Path) -> None:
    team = tmp_path / "team.toml"
    team.write_text(
        '[[responder]]\nhandle = "ana"\nname = "Ana"\nrole = "admin"\n'
        'timezone = "UTC"\ncontacts = [{ kind = "console" }]\n'
    )
    env = {**os.environ, "VIGIL_DB": f"sqlite:///{tmp_path / 'e.db'}", "VIGIL_USER": "ana"}

    def vigil(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.main", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    refused = vigil("cases", "--json")
    assert refused.returncode == 1
    assert "has no responders yet" in refused.stderr
    assert vigil("team", "apply", str(team)).returncode == 0
    proc = vigil("cases", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_cases_prints_a_first_page_and_says_how_many_more(run: Run, db: Database) -> None:
    from app.services.cases import CaseService

    service = CaseService(db, run.clock)
    for number in range(PAGE_LIMIT + 3):
        service.open_case("ana", title=f"Case {number}", category="other", severity=4)
    service.open_case("ana", title="The urgent one", category="threat_to_life", severity=1)
    resolved = service.open_case("ana", title="Done", category="other", severity=4)
    service.resolve("ana", resolved.ref)

    out = run.ok("cases")
    lines = out.strip().splitlines()
    assert "The urgent one" in lines[1]  # the most urgent first
    assert len(lines) == 1 + PAGE_LIMIT + 1  # header, a page, and the line about the rest
    assert lines[-1] == "… and 4 more; see them with --limit N or --json"
    assert "Done" not in out
    assert len(run.json("cases")) == PAGE_LIMIT + 4  # JSON is every open case
    assert len(run.json("cases", "--all")) == PAGE_LIMIT + 5
    assert len(run.json("cases", "--limit", "3")) == 3
    assert run("cases", "--limit", "0")[0] == 2

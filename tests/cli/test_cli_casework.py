"""Casework on the command line: the commands, their flags, JSON, exit codes and reports."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.core.clock import FakeClock
from data.db import Database
from tests.cli_harness import Run
from tests.factories import add_policy, add_responder


@pytest.fixture
def run(db: Database, sqlite_url: str, clock: FakeClock) -> Run:
    clock.set(datetime(2026, 5, 4, 14, 0, tzinfo=UTC))
    add_responder(db, "ana")
    add_responder(db, "ben")
    add_responder(db, "sam", "supervisor")
    add_policy(db, "standard", [(300, ["user:ana"])], route=["default"])
    runner = Run(sqlite_url, clock)
    runner.ok(
        "partner",
        "add",
        "metro-pd",
        "--kind",
        "law_enforcement",
        "--agency",
        "Metro Police Department",
        "--contact",
        "Sgt. Lee",
        "--verified-channel",
        "dispatch +1 555 0100 (state directory)",
        who="sam",
    )
    return runner


def _page(run: Run, category: str, *extra: str) -> str:
    return run.ok(
        "page", "--title", f"{category} case", "--category", category, "--severity", "1", *extra
    ).strip()


VERIFY = [
    [
        "identity",
        "--contacted",
        "Metro PD dispatch",
        "--via",
        "+1 555 0100",
        "--directory",
        "state directory",
    ],
    ["agency", "--agency", "Metro Police Department", "--officer", "Sgt. Lee"],
    ["emergency", "--danger", "death", "--statement", "Threat to kill a named person tonight"],
    ["good_faith", "--determination", "Callback matched; threat specific and imminent"],
]


def test_emergency_request_from_verification_to_yearly_report(run: Run) -> None:
    ref = _page(run, "edr")
    code, _, err = run(
        "disclosure",
        "request",
        ref,
        "--data",
        "subscriber",
        "--to",
        "metro-pd",
        "--basis",
        "us-emergency",
    )
    assert code == 1
    assert "verification of" in err
    assert "incomplete" in err
    for step in VERIFY:
        run.ok("verify", ref, *step)
    body = run.json(
        "disclosure",
        "request",
        ref,
        "--data",
        "subscriber,ip_logs",
        "--to",
        "metro-pd",
        "--basis",
        "us-emergency",
        "--accounts",
        "2",
    )
    assert (body["number"], body["status"], body["data"]) == (
        1,
        "requested",
        ["subscriber", "ip_logs"],
    )
    assert run("disclosure", "approve", ref, "1")[0] == 1  # a specialist may not approve
    waiting = run.ok("disclosure", "pending", who="sam")
    assert waiting.startswith(f"{ref} #1 requested: subscriber, ip_logs (2 accounts) to metro-pd")
    approved = run.json("disclosure", "approve", ref, "1", who="sam")
    assert run.json("disclosure", "pending") == []
    assert (approved["status"], approved["decided_by"]) == ("disclosed", "sam")
    assert approved["decided_at"] == "2026-05-04T14:00:00Z"

    shown = run.json("casework", "show", ref)
    assert shown["verification"]["complete"] is True
    assert [d["number"] for d in shown["disclosures"]] == [1]
    assert shown["partners"][0]["name"] == "metro-pd"
    text = run.ok("casework", "show", ref)
    assert "Verification (required): complete" in text
    assert "#1 disclosed: subscriber, ip_logs (2 accounts) to metro-pd" in text

    markdown = run.ok("report", "disclosures", "--year", "2026")
    assert (
        "| 18 U.S.C. 2702(b)(8) and (c)(4): emergency | Metro Police Department | 1 | 2 |"
        in markdown
    )
    csv_text = run.ok("report", "disclosures", "--year", "2026", "--format", "csv")
    assert csv_text.splitlines()[1] == (
        "2026,us-emergency,18 U.S.C. 2702(b)(8) and (c)(4): emergency,Metro Police Department,1,2"
    )
    report = run.json("report", "disclosures", "--year", "2026")
    assert (report["total_disclosures"], report["total_accounts"]) == (1, 2)
    for out in (markdown, csv_text, json.dumps(report)):
        assert ref not in out
        assert "Sgt. Lee" not in out

    assert run.json("audit", "verify")["ok"] is True
    actions = [r["action"] for r in run.json("audit", "log", "--case", ref)]
    assert actions.count("verification.record") == 4
    assert actions[-2:] == ["disclosure.request", "disclosure.approve"]


def test_supervisor_override_needs_a_reason(run: Run) -> None:
    ref = _page(run, "edr", "--severity", "2")  # sev1 would wait for a second person
    args = [
        "disclosure",
        "request",
        ref,
        "--data",
        "location",
        "--to",
        "metro-pd",
        "--basis",
        "us-emergency",
    ]
    code, _, err = run(*args, who="sam")
    assert code == 2
    assert "override_reason:" in err
    body = run.json(
        *args, "--override-reason", "Kidnapping in progress; dispatch line down", who="sam"
    )
    assert body["status"] == "disclosed"
    assert body["override_reason"] == "Kidnapping in progress; dispatch line down"


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["verify", "{ref}", "identity", "--contacted", "PD", "--via", "+1"], "directory:"),
        (["verify", "{ref}", "agency", "--agency", "PD", "--officer", "Lee", "--via", "x"], "via:"),
        (["verify", "{ref}", "emergency", "--danger", "maybe", "--statement", "x"], "danger:"),
        (["verify", "{ref}", "hunch"], "step:"),
        (
            [
                "disclosure",
                "request",
                "{ref}",
                "--data",
                "dna",
                "--to",
                "metro-pd",
                "--basis",
                "us-emergency",
            ],
            "data:",
        ),
        (
            [
                "disclosure",
                "request",
                "{ref}",
                "--data",
                "content",
                "--to",
                "metro-pd",
                "--basis",
                "2702z",
            ],
            "basis:",
        ),
        (
            [
                "disclosure",
                "request",
                "{ref}",
                "--data",
                "content",
                "--to",
                "metro-pd",
                "--basis",
                "us-emergency",
                "--accounts",
                "many",
            ],
            "accounts:",
        ),
        (["disclosure", "approve", "{ref}", "first"], "number:"),
        (
            ["clock", "file", "{ref}", "--report-id", "CT-1", "--filed-at", "2026-05-04T13:00"],
            "filed_at:",
        ),
        (["contain", "{ref}", "burn_it"], "step:"),
        (["action", "add", "{ref}", "Call", "--owner", "ana", "--due", "tomorrow"], "due:"),
        (["action", "add", "{ref}", "Call", "--partner", "nobody-pd"], "partner:"),
        (["partner", "add", "x", "--kind", "spy", "--agency", "X"], "kind:"),
        (["report", "disclosures", "--year", "twenty"], "--year:"),
        (["report", "disclosures", "--year", "2026", "--format", "xml"], "--format"),
        (["action", "add", "{ref}", "Call"], "--owner"),
    ],
)
def test_bad_values_exit_2_naming_the_field(run: Run, argv: list[str], field: str) -> None:
    ref = _page(run, "csea")
    code, out, err = run(*[a.replace("{ref}", ref) for a in argv], who="sam")
    assert code == 2, err
    assert field in err
    assert out == ""


def test_tipline_report_and_preservation_clocks(run: Run, clock: FakeClock) -> None:
    csea = _page(run, "csea")
    clocks = run.json("casework", "show", csea)["clocks"]
    assert [(c["name"], c["state"], c["due_at"]) for c in clocks] == [
        ("tipline", "ok", "2026-05-05T14:00:00Z"),
        ("preserve_reported", "pending", None),
    ]
    clock.advance(hours=3)
    filed = run.json(
        "clock",
        "file",
        csea,
        "--report-id",
        "CT-2210",
        "--filed-at",
        "2026-05-04T16:30:00Z",
    )
    assert (filed["state"], filed["outcome"], filed["reference"]) == ("done", "filed", "CT-2210")
    hold = run.json("casework", "show", csea)["clocks"][1]
    assert (hold["state"], hold["due_at"]) == ("ok", "2027-05-04T16:30:00Z")
    assert hold["reminder_at"] == "2027-04-04T16:30:00Z"
    assert run("clock", "file", csea, "--report-id", "CT-2")[0] == 1

    keep = _page(run, "preservation")
    clock.advance(days=80)
    due = run.json("clock", "due")
    assert [(d["ref"], d["clock"]["name"], d["clock"]["state"]) for d in due] == [
        (keep, "preservation", "warn")
    ]
    extended = run.json("clock", "extend", keep, "--note", "renewed by letter")
    assert (extended["extensions"], extended["extensions_left"]) == (1, 0)
    assert extended["due_at"] == "2026-10-31T17:00:00Z"  # 4 May + 180 days
    code, _, err = run("clock", "extend", keep)
    assert code == 1
    assert "extended once" in err
    assert run.ok("clock", "due").strip() == "No legal clock needs attention."
    assert run.json("audit", "verify")["ok"] is True


def test_a_report_still_owed_is_said_on_resolve_kept_in_the_queue_and_handed_over(
    run: Run, clock: FakeClock
) -> None:
    """Resolving a CSEA case whose CyberTipline report is not filed says so; the case stays
    in the default queue (and the handover's legal clocks) until the report is filed."""
    csea = _page(run, "csea")
    plain = _page(run, "other")
    clock.advance(hours=2)
    code, out, err = run("resolve", csea)
    assert code == 0
    assert out.strip() == f"{csea} resolved"
    assert f"{csea} still owes:" in err
    assert "CyberTipline report to NCMEC (18 U.S.C. 2258A), due in 22h" in err
    assert f"vigil clock file {csea} --report-id ID" in err
    resolved_plain = run.json("resolve", plain)
    assert resolved_plain["owed"] == []
    assert [c["ref"] for c in run.json("cases")] == [csea]  # the plain one left the queue
    report = run.ok("handover", "--since", "2026-05-04T13:00:00Z")
    assert "## Legal clocks due by" in report
    withheld = "[sensitive csea case, sev1: title withheld]"  # a CSEA case's title stays in
    assert f"- {csea} {withheld}: CyberTipline report to NCMEC (18 U.S.C. 2258A), due " in report
    assert "(case resolved; report still owed)" in report
    body = run.json("handover", "--since", "2026-05-04T13:00:00Z", "--format", "json")
    assert [(c["ref"], c["kind"], c["state"]) for c in body["legal_clocks"]] == [
        (csea, "deadline", "ok")
    ]

    clock.advance(hours=23)  # the report is now overdue: said as breached
    assert "CyberTipline report to NCMEC (18 U.S.C. 2258A), BREACHED, due" in run.ok(
        "handover", "--since", "2026-05-04T13:00:00Z"
    )
    run.ok("clock", "file", csea, "--report-id", "CT-9911")
    assert run.json("cases") == []
    assert "## Legal clocks due by" in run.ok("handover", "--since", "2026-05-04T13:00:00Z")
    assert (
        run.json("handover", "--since", "2026-05-04T13:00:00Z", "--format", "json")["legal_clocks"]
        == []
    )


def test_containment_partners_and_action_items(run: Run, clock: FakeClock) -> None:
    ref = _page(run, "doxxing")
    code, _, err = run("contain", ref, "evidence_preserved")
    assert code == 2
    assert "reference:" in err
    step = run.json("contain", ref, "evidence_preserved", "--reference", "sha256:9f86d0")
    assert (step["done"], step["done_by"], step["reference"]) == (True, "ana", "sha256:9f86d0")
    assert run("contain", ref, "evidence_preserved", "--reference", "sha256:1")[0] == 1

    assert run("partner", "add", "p", "--kind", "product", "--agency", "P")[0] == 1  # not sam
    run.ok(
        "partner",
        "add",
        "trust-product",
        "--kind",
        "product",
        "--agency",
        "Product Safety",
        who="sam",
    )
    listed = run.json("partner", "list")
    assert [p["name"] for p in listed] == ["metro-pd", "trust-product"]
    run.ok("partner", "link", ref, "metro-pd")

    first = run.json(
        "action", "add", ref, "Call the reporter back", "--owner", "ben", "--due", "2h"
    )
    run.json(
        "action",
        "add",
        ref,
        "Remove cached copies",
        "--partner",
        "trust-product",
        "--due",
        "2026-05-05T09:00:00+10:00",
    )
    assert first["due_at"] == "2026-05-04T16:00:00Z"
    clock.advance(hours=3)
    overdue = run.json("action", "list", "--overdue")
    assert [(a["ref"], a["title"], a["overdue"]) for a in overdue] == [
        (ref, "Call the reporter back", True)
    ]
    assert "OVERDUE" in run.ok("action", "list", "--case", ref)
    done = run.json("action", "done", ref, str(first["id"]), who="ben")
    assert (done["status"], done["completed_by"]) == ("done", "ben")
    assert run.json("action", "list", "--overdue") == []
    assert run("action", "done", ref, "999")[0] == 1

    shown = run.json("casework", "show", ref)
    assert [c["step"] for c in shown["containment"] if c["done"]] == ["evidence_preserved"]
    assert [p["name"] for p in shown["partners"]] == ["metro-pd", "trust-product"]


def test_casework_settings_apply_and_show(run: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[clocks.threat_to_life.notice]\nkind = "deadline"\ndue = "soon"\n')
    code, _, err = run("casework", "apply", str(bad), who="sam")
    assert code == 2
    assert "clocks.threat_to_life.notice.due:" in err
    broken = tmp_path / "broken.toml"
    broken.write_text("[clocks\n")
    assert run("casework", "apply", str(broken), who="sam")[0] == 2

    good = tmp_path / "team.toml"
    good.write_text(
        '[[responder]]\nhandle = "ana"\nname = "Ana"\n\n'
        "[clocks.threat_to_life.authority_notice]\n"
        'kind = "deadline"\nlabel = "Notify the authorities (DSA Art. 18)"\n'
        'due = "1h"\nremind = "15m"\n'
    )
    assert run("casework", "apply", str(good))[0] == 1  # specialists may not
    run.ok("casework", "apply", str(good), who="sam")
    settings = tomllib.loads(run.ok("casework", "settings"))
    assert settings["clocks"]["threat_to_life"]["authority_notice"]["due"] == "1h"
    assert "csea" in settings["clocks"]  # the built-ins stay where the desk said nothing
    ref = _page(run, "threat_to_life")
    clocks = run.json("casework", "show", ref)["clocks"]
    assert [(c["name"], c["due_at"]) for c in clocks] == [
        ("authority_notice", "2026-05-04T15:00:00Z")
    ]
    actions = [r["action"] for r in run.json("audit", "log")]
    assert "casework.settings" in actions


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("clocks = 5", "clocks: expected a table, got 5"),
        ("clocks = []", "clocks: expected a table, got an array"),
        ("clocks = {threat_to_life = 5}", "clocks.threat_to_life: expected a table"),
        ('clocks = {threat_to_life = "abc"}', "clocks.threat_to_life: expected a table"),
        ("clocks = {threat_to_life = [[1, 2]]}", "clocks.threat_to_life: expected a table"),
        ("clock_presets = 5", "clock_presets: expected an array"),
        ("containment = 5", "containment: expected a table"),
        ("disclosure_basis = 5", "disclosure_basis: expected a table"),
        ("x = " + "[" * 5000 + "]" * 5000, "nested too deeply"),
    ],
    ids=[
        "clocks-5",
        "clocks-array",
        "category-5",
        "category-text",
        "category-array",
        "presets-5",
        "containment-5",
        "bases-5",
        "deep",
    ],
)
@pytest.mark.parametrize("command", ["casework", "team"])
def test_casework_tables_of_the_wrong_shape_are_refused_and_nothing_is_stored(
    run: Run, tmp_path: Path, line: str, field: str, command: str
) -> None:
    """They printed tracebacks, or were stored (`clocks = 5`, exit 0) and then broke every
    `team export`."""
    before = run.ok("casework", "settings")
    path = tmp_path / "bad.toml"
    path.write_text(line + '\n\n[[responder]]\nhandle = "sam"\nname = "Sam"\nrole = "admin"\n')
    code, out, err = run(command, "apply", str(path), who="sam")
    assert (code, out) == (2, "")
    assert field in err
    assert "Traceback" not in err
    assert run.ok("casework", "settings") == before
    run.ok("team", "export", who="sam")


def test_sensitive_casework_text_is_revealed_only_on_request(run: Run) -> None:
    ref = _page(run, "edr", "--sensitive")
    for step in VERIFY:
        run.ok("verify", ref, *step)
    hidden = run.ok("casework", "show", ref)
    assert "Threat to kill" not in hidden
    assert "hidden until revealed" in hidden
    revealed = run.ok("casework", "show", ref, "--reveal")
    assert "Threat to kill a named person tonight" in revealed
    assert run.json("audit", "log", "--case", ref)[-1]["action"] == "case.reveal"

"""`vigil tipline` and `vigil evidence`: the account stored without echoing its password, the
report printed for review and filed against NCMEC's stand-in, bad input exit 2."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.core.clock import FakeClock
from data.db import Database
from tests.cli_harness import Run
from tests.factories import add_policy, add_responder
from tests.ncmec_standin import StandIn


@pytest.fixture
def ncmec() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


@pytest.fixture
def run(
    db: Database, sqlite_url: str, clock: FakeClock, ncmec: StandIn, monkeypatch: pytest.MonkeyPatch
) -> Run:
    clock.set(datetime(2026, 5, 4, 14, 0, tzinfo=UTC))
    add_responder(db, "ana")
    add_responder(db, "sam", "supervisor")
    add_policy(db, "standard", [(300, ["user:ana"])], route=["default"])
    monkeypatch.setenv("VIGIL_NCMEC_PASSWORD", ncmec.password)
    return Run(sqlite_url, clock)


def test_a_report_is_reviewed_and_filed_from_the_command_line(
    run: Run, ncmec: StandIn, tmp_path: Path
) -> None:
    setup = ["tipline", "setup", "--username", ncmec.username, "--url", ncmec.url]
    setup += ["--first-name", "Sam", "--last-name", "Okafor", "--email", "t@desk.example"]
    code, _out, err = run(*setup)
    assert code == 1
    assert "supervisor" in err
    out = run.ok(*setup, who="sam")
    assert ncmec.password not in out
    assert run.json("tipline", "status")["code"] == 0

    ref = run.ok("page", "--title", "Imagery", "--category", "csea", "--severity", "1").strip()
    image = tmp_path / "upload.jpg"
    image.write_bytes(b"reported bytes")
    run.ok("evidence", "add", ref, str(image), "--classification", "A2")
    assert "evidence.reveal" not in run.ok("audit", "log", "--case", ref)
    run.ok("evidence", "reveal", ref, "1")
    assert "viewed)" in run.ok("evidence", "list", ref)

    draft = ["--incident-type", "enticement", "--screen-name", "groomer_99"]
    review = run.ok("tipline", "review", ref, *draft)
    assert "<fileViewedByEsp>true</fileViewedByEsp>" in review
    assert "Online Enticement of Children for Sexual Acts" in review
    assert ncmec.submitted() == []  # reviewing files nothing

    out = run.ok("tipline", "file", ref, *draft)
    [report] = ncmec.submitted()
    assert "<report>" in out
    assert f"NCMEC report {report.id}" in out
    shown = run.json("tipline", "show", ref)
    assert (shown["status"], shown["report_id"]) == ("finished", report.id)
    code, _out, err = run("tipline", "file", ref)
    assert code == 1
    assert report.id in err


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--incident-type", "spam", "--screen-name", "x"], "incident_type"),
        (["--incident-type", "csam"], "reported_user"),
        (["--incident-type", "csam", "--screen-name", "x", "--incident-at", "soon"], "incident_at"),
    ],
)
def test_bad_report_facts_exit_2_naming_the_field(run: Run, argv: list[str], field: str) -> None:
    ref = run.ok("page", "--title", "Imagery", "--category", "csea", "--severity", "2").strip()
    code, _out, err = run("tipline", "file", ref, *argv)
    assert code == 2
    assert field in err

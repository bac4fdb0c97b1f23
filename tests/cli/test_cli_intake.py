"""`vigil intake` event by event: each result said as it commits, step 1 paged in the
transaction that opens the case, and a batch that resumes instead of storing twice."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import col, func, select

from app.core.clock import FakeClock
from app.engine.cycle import EscalationEngine
from app.services.cases import CaseService
from data.db import Database
from data.escalation import StepRun
from data.intake import InputBatch, InputEvent
from data.models import Case, Page
from tests.cli_harness import Run
from tests.factories import add_policy, add_responder, pages_by_case


@pytest.fixture
def run(db: Database, sqlite_url: str, clock: FakeClock) -> Run:
    add_responder(db, "ana")
    add_responder(db, "sam", "supervisor")
    add_policy(db, "emergency", [(300, ["user:ana"]), (600, ["user:sam"])], route=["default"])
    return Run(sqlite_url, clock)


def _events(path: Path, count: int, *, bad_at: int | None = None) -> Path:
    lines = []
    for number in range(count):
        event: dict[str, object] = {"title": "Report", "category": "other", "severity": 3}
        if number == bad_at:
            event["policy"] = "no-such-policy"
        lines.append(json.dumps(event))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_each_event_is_said_as_it_commits_with_who_was_paged(run: Run, tmp_path: Path) -> None:
    """Five events of one generic title are five cases (never merged by their text); the
    one the desk refuses is said in its place, and the last line sums up."""
    path = _events(tmp_path / "events.jsonl", 5, bad_at=3)
    code, out, err = run("intake", str(path))
    assert code == 2
    assert out.splitlines()[:5] == [
        "line 1: opened ESC-0001, paged ana",
        "line 2: opened ESC-0002, paged ana",
        "line 3: opened ESC-0003, paged ana",
        "line 4: rejected: policy: no escalation policy named 'no-such-policy'",
        "line 5: opened ESC-0004, paged ana",
    ]
    assert "4 opened, 0 deduplicated, 0 acknowledged, 0 resolved, 1 rejected." in out
    assert err == "vigil intake: line 4: policy: no escalation policy named 'no-such-policy'\n"


def test_json_is_one_line_per_event_then_the_batch(run: Run, db: Database, tmp_path: Path) -> None:
    path = _events(tmp_path / "events.jsonl", 3)
    lines = [json.loads(line) for line in run.ok("intake", str(path), "--json").splitlines()]
    assert lines[:3] == [
        {
            "position": f"line {n}",
            "outcome": "opened",
            "ref": f"ESC-000{n}",
            "paged": ["ana"],
            "earlier": False,
        }
        for n in (1, 2, 3)
    ]
    summary = lines[3]
    assert summary["opened"] == ["ESC-0001", "ESC-0002", "ESC-0003"]
    assert summary["batch"]["events"] == 3
    assert summary["batch"]["earlier"] == 0
    assert summary["batch"]["stopped"] is False
    assert len(lines) == 4
    printed = {line["ref"]: [(h, 0, 1, 0) for h in line["paged"]] for line in lines[:3]}
    assert pages_by_case(db) == printed


def test_the_same_input_after_a_finished_run_is_a_new_batch(run: Run, tmp_path: Path) -> None:
    """A run that went through every event closes its batch: an alert sent again later is
    a new alert, as it always was."""
    path = _events(tmp_path / "events.jsonl", 2)
    run.ok("intake", str(path))
    code, out, err = run("intake", str(path))
    assert (code, err) == (0, "")
    assert "line 1: opened ESC-0003, paged ana" in out


def test_an_open_batch_resumes_where_it_stopped_and_says_so(
    run: Run, db: Database, tmp_path: Path
) -> None:
    """A run that stopped after two of four events (as a signal or kill -9 leaves it: the
    batch open, two events stored with their progress) is resumed by the same bytes."""
    path = _events(tmp_path / "events.jsonl", 4)
    run.ok("intake", str(path))
    with db.write() as session:  # undo the close and the last two events, as a stop would
        session.execute(text("UPDATE input_batch SET finished_at = NULL"))
        session.execute(text("DELETE FROM input_event WHERE number >= 2"))
        for ref in ("ESC-0003", "ESC-0004"):
            session.execute(text('DELETE FROM "case" WHERE ref = :ref'), {"ref": ref})
    code, out, err = run("intake", str(path), "--json")
    assert code == 0
    assert "resuming an earlier run of this input" in err
    assert "2 of 4 events were stored then" in err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(line["ref"], line["earlier"]) for line in lines[:4]] == [
        ("ESC-0001", True),
        ("ESC-0002", True),
        ("ESC-0003", False),
        ("ESC-0004", False),
    ]
    assert lines[4]["batch"]["earlier"] == 2
    with db.read() as session:
        assert session.exec(select(func.count()).select_from(Case)).one() == 4
        batch = session.exec(select(InputBatch)).one()
        assert batch.finished_at is not None
        numbers = session.exec(select(InputEvent.number).order_by(col(InputEvent.number)))
        assert list(numbers) == [0, 1, 2, 3]


def test_a_different_input_is_a_new_batch(run: Run, db: Database, tmp_path: Path) -> None:
    first = _events(tmp_path / "first.jsonl", 2)
    second = tmp_path / "second.jsonl"
    second.write_bytes(first.read_bytes() + b"\n")  # one byte more: another input
    run.ok("intake", str(first))
    with db.write() as session:
        session.execute(text("UPDATE input_batch SET finished_at = NULL"))
    code, out, err = run("intake", str(second))
    assert (code, err) == (0, "")
    assert "earlier" not in out
    with db.read() as session:
        assert session.exec(select(func.count()).select_from(InputBatch)).one() == 2


def test_step_one_pages_in_the_transaction_that_opens_the_case(
    db: Database, clock: FakeClock
) -> None:
    """If the first page cannot be written, the case is not stored either; once it can,
    the case is stored with its page and claim, and no engine cycle pages step 1 again."""
    add_responder(db, "ana")
    add_policy(db, "standard", [(300, ["user:ana"]), (600, ["user:ana"])], route=["default"])
    engine = EscalationEngine(db, clock, name="intake-test")
    service = CaseService(db, clock, escalation=engine.page_within)
    with db.write() as session:
        session.execute(
            text(
                "CREATE TRIGGER no_pages BEFORE INSERT ON page "
                "BEGIN SELECT RAISE(ABORT, 'no pages today'); END"
            )
        )
    with pytest.raises(Exception, match="no pages today"):
        service.open_case("ana", title="Report", category="other", severity=3)
    with db.write() as session:
        assert session.exec(select(func.count()).select_from(Case)).one() == 0
        session.execute(text("DROP TRIGGER no_pages"))
    opened = service.open_case("ana", title="Report", category="other", severity=3)
    assert opened.paged == ("ana",)
    assert engine.run_due().cases == 0  # step 1 is claimed: nothing is due until step 2
    clock.advance(timedelta(minutes=5))
    assert engine.run_due().pages == 1
    clock.advance(timedelta(hours=1))
    engine.run_due()
    assert pages_by_case(db) == {opened.ref: [("ana", 0, 1, 0), ("ana", 0, 2, 0)]}
    with db.read() as session:
        claims = session.exec(select(StepRun.step).where(StepRun.case_id == opened.case_id))
        assert sorted(claims) == [1, 2, 3]  # 3: the exhaustion, paging no supervisor
        first = session.exec(select(Page).where(Page.step == 1)).one()
        case = session.get(Case, opened.case_id)
        assert case is not None
        assert first.sent_at == case.created_at


def test_a_service_without_an_escalation_starter_leaves_paging_to_the_engine(
    db: Database, clock: FakeClock
) -> None:
    """The console's screens and the demo builder act without a starter: a case opened so
    stays unassigned and unpaged until an engine's cycle pages it (the console tests rely
    on it), and then step 1 is paged exactly once."""
    add_responder(db, "ana")
    add_policy(db, "standard", [(300, ["user:ana"])], route=["default"])
    opened = CaseService(db, clock).open_case("ana", title="R", category="other", severity=3)
    assert opened.paged == ()
    with db.read() as session:
        case = session.get(Case, opened.case_id)
        assert case is not None
        assert case.assignee_id is None
    EscalationEngine(db, clock).run_due()
    EscalationEngine(db, clock).run_due()
    assert pages_by_case(db) == {opened.ref: [("ana", 0, 1, 0)]}

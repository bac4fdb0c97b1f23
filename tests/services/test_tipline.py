"""CyberTipline reports filed through the Reporting API exactly once, against a stand-in for
NCMEC's test environment (a real HTTP server): the documents, fileViewedByEsp from the audit
chain, the clocks, and the faults (a crash, "already finished", two filers racing, a 4100
validation failure, the server down), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlmodel import col, select

from app.core.clock import FakeClock
from app.core.errors import BadInput, NotAllowed, NothingToDo, Refused
from app.engine.runner import EngineRunner, EscalationEngine
from app.rules.tipline import ReportDraft, check_draft
from app.services.casework.ncmec import PRODUCTION_URL, ReportingClient, ReportRejected
from app.services.casework.tipline import (
    RETRY_DELAYS,
    RUN_PAUSE_CAP,
    FilingView,
    NotReached,
    TiplineService,
)
from app.services.casework.views import casework_view
from data import audit
from data.casework import ClockEvent
from data.db import Database
from data.models import AuditRecord, Case, Responder
from data.tipline import TiplineFiling
from tests.factories import CaseworkDesk, add_policy, add_responder, spawn_python
from tests.ncmec_standin import StandIn

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DRAFT = check_draft(
    incident_type="csam",
    incident_at=datetime(2026, 3, 1, 22, 15, tzinfo=UTC),
    screen_name="shadow_trader",
    esp_identifier="u-4471",
)


@pytest.fixture
def ncmec() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


class Desk:
    def __init__(self, db: Database, clock: FakeClock, server: StandIn, folder: Path) -> None:
        self.db, self.clock, self.server, self.folder = db, clock, server, folder
        self.cases = CaseworkDesk(db, clock)
        self.tipline = TiplineService(db, clock)
        self.slept: list[float] = []
        self.tipline.sleep = self.slept.append  # type: ignore[method-assign]

    def open_case(self, severity: int = 1) -> str:
        return self.cases.open_case(
            "ana", title="Reported imagery", category="csea", severity=severity
        ).ref

    def evidence(self, ref: str, name: str, content: bytes, grade: str = "A1") -> int:
        path = self.folder / name
        path.write_bytes(content)
        return self.tipline.add_evidence("ana", ref, str(path), classification=grade).id

    def filing(self, ref: str) -> TiplineFiling:
        with self.db.read() as session:
            case = session.exec(select(Case).where(Case.ref == ref)).one()
            return session.exec(select(TiplineFiling).where(TiplineFiling.case_id == case.id)).one()

    def clocks(self, ref: str) -> dict[str, tuple[str, str | None]]:
        with self.db.read() as session:
            case = session.exec(select(Case).where(Case.ref == ref)).one()
            assert case.id is not None
            view = casework_view(session, case.id, self.clock.now())
        return {c.name: (c.state, c.reference) for c in view.clocks}

    def actions(self, ref: str) -> list[str]:
        with self.db.read() as session:
            return list(
                session.exec(
                    select(AuditRecord.action)
                    .where(AuditRecord.case_ref == ref)
                    .order_by(col(AuditRecord.seq))
                )
            )


@pytest.fixture
def desk(any_db: Database, clock: FakeClock, ncmec: StandIn, tmp_path: Path) -> Desk:
    clock.set(T0)
    add_responder(any_db, "ana")
    add_responder(any_db, "ben")
    add_responder(any_db, "sam", "supervisor")
    add_policy(any_db, "standard", [(1800, ["user:ana"])], route=["default"])
    service = TiplineService(any_db, clock)
    service.setup_account(
        "sam",
        username=ncmec.username,
        password=ncmec.password,
        reporter_first_name="Sam",
        reporter_last_name="Okafor",
        reporter_email="tipline@desk.example",
        url=ncmec.url,
    )
    return Desk(any_db, clock, ncmec, tmp_path)


# --- the happy path ------------------------------------------------------------------


def test_a_report_is_filed_with_its_files_and_the_clocks_move(desk: Desk) -> None:
    ref = desk.open_case()
    first = desk.evidence(ref, "a.jpg", b"first image bytes", "A1")
    desk.evidence(ref, "b.jpg", b"second image bytes", "B2")
    desk.tipline.reveal_evidence("ana", ref, first)
    desk.clock.advance(timedelta(hours=2))

    view = desk.tipline.file_report("ana", ref, DRAFT)

    [report] = desk.server.submitted()
    assert (view.status, view.report_id, report.state) == ("finished", report.id, "finished")
    summary = report.document.find("incidentSummary")
    assert summary is not None
    assert summary.findtext("escalateToHighPriority")  # a sev1 case is escalated
    assert report.document.findtext("personOrUserReported/screenName") == "shadow_trader"
    assert report.document.findtext("reporter/reportingPerson/email") == "tipline@desk.example"
    details = {f.name: f.details for f in report.files.values()}
    assert details["a.jpg"]["fileViewedByEsp"] == "true"
    assert details["b.jpg"]["fileViewedByEsp"] == "false"
    assert details["b.jpg"]["industryClassification"] == "B2"
    # The CyberTipline clock stopped with NCMEC's id; the REPORT Act's year-long hold runs.
    clocks = desk.clocks(ref)
    assert clocks["tipline"] == ("done", report.id)
    assert clocks["preserve_reported"][0] == "ok"
    assert desk.actions(ref)[-1] == "tipline.finish"
    with desk.db.read() as session:
        finish = session.exec(
            select(AuditRecord).where(AuditRecord.action == "tipline.finish")
        ).one()
        assert audit.verify(session).ok
    assert finish.detail["report_id"] == report.id
    assert desk.server.password not in str(desk.actions(ref))
    with pytest.raises(NothingToDo, match=f"filed as CyberTipline report {report.id}"):
        desk.tipline.file_report("ana", ref)


def test_file_viewed_by_esp_is_true_exactly_for_files_revealed_in_the_audit_chain(
    desk: Desk,
) -> None:
    ref = desk.open_case()
    ids = [desk.evidence(ref, f"{n}.png", f"image {n}".encode()) for n in range(4)]
    for revealed in (ids[1], ids[3]):
        desk.tipline.reveal_evidence("ben", ref, revealed)
    # A reveal of the same bytes on another case says nothing about this one.
    other = desk.open_case()
    desk.tipline.reveal_evidence("ana", other, desk.evidence(other, "x.png", b"image 0"))

    desk.tipline.file_report("ana", ref, DRAFT)

    [report] = [r for r in desk.server.submitted() if r.files]
    viewed = {f.name: f.details["fileViewedByEsp"] for f in report.files.values()}
    assert viewed == {"0.png": "false", "1.png": "true", "2.png": "false", "3.png": "true"}
    assert [v.viewed_by_esp for v in desk.tipline.evidence("ana", ref)] == [
        False,
        True,
        False,
        True,
    ]


def test_a_broken_audit_chain_stops_the_filing(desk: Desk) -> None:
    ref = desk.open_case()
    desk.tipline.reveal_evidence("ana", ref, desk.evidence(ref, "a.png", b"bytes"))
    with desk.db.write() as session:
        record = session.exec(
            select(AuditRecord).where(AuditRecord.action == "evidence.reveal")
        ).one()
        record.detail = {**record.detail, "sha256": "0" * 64}
        session.add(record)
    with pytest.raises(NotAllowed, match="audit chain is broken"):
        desk.tipline.file_report("ana", ref, DRAFT)
    assert desk.server.submitted() == []


# --- faults ---------------------------------------------------------------------------


def test_an_unfinished_report_left_by_a_failed_run_is_retracted_then_filed_once(
    desk: Desk,
) -> None:
    """The answer to an upload is lost (the filer died, or the line): NCMEC holds an open
    report. The next run retracts it first and files once more."""
    ref = desk.open_case()
    desk.evidence(ref, "a.png", b"bytes")
    desk.tipline.retry_delays = ()
    desk.server.drop = "upload"
    with pytest.raises(NotReached):
        desk.tipline.file_report("ana", ref, DRAFT)
    [opened] = desk.server.submitted()
    assert (opened.state, desk.filing(ref).report_id) == ("open", opened.id)
    assert desk.clocks(ref)["tipline"][0] in ("ok", "warn")  # the clock keeps running

    view = desk.tipline.file_report("ana", ref)  # the retry files what was stored

    first, second = desk.server.submitted()
    assert (first.state, second.state) == ("retracted", "finished")
    assert (view.report_id, view.retractions) == (second.id, 1)
    assert desk.clocks(ref)["tipline"] == ("done", second.id)
    assert desk.actions(ref).count("tipline.submit") == 2
    assert "tipline.retract" in desk.actions(ref)


def test_already_finished_at_ncmec_counts_as_filed(desk: Desk) -> None:
    """NCMEC finished the report but its answer was lost: the retry's retract is answered
    5102 and the report it already has is recorded as filed, with no second report."""
    ref = desk.open_case()
    desk.tipline.retry_delays = ()
    desk.server.drop = "finish"
    with pytest.raises(NotReached):
        desk.tipline.file_report("ana", ref, DRAFT)
    [report] = desk.server.submitted()
    assert report.state == "finished"
    assert desk.filing(ref).status == "waiting"
    desk.server.calls.clear()

    view = desk.tipline.file_report("ana", ref)

    assert desk.server.calls == ["retract"]
    assert (view.status, view.report_id, view.retractions) == ("finished", report.id, 0)
    assert desk.clocks(ref)["tipline"] == ("done", report.id)


def test_a_validation_failure_is_terminal_and_shows_ncmecs_message(desk: Desk) -> None:
    ref = desk.open_case()
    desk.server.reject_submit = "incidentDateTime: must not be in the future"
    with pytest.raises(ReportRejected, match=r"\(4100\).*must not be in the future"):
        desk.tipline.file_report("ana", ref, DRAFT)
    filing = desk.filing(ref)
    assert (filing.status, filing.last_code) == ("rejected", 4100)
    assert "must not be in the future" in filing.last_error
    assert filing.attempts == 0  # never retried
    assert desk.server.calls.count("submit") == 1
    assert desk.clocks(ref)["tipline"][0] in ("ok", "warn")
    assert "tipline.rejected" in desk.actions(ref)
    # Fixed and filed again: the same claim row, now finished.
    fixed = ReportDraft(**{**DRAFT.as_json(), "incident_at": T0 - timedelta(hours=1)})  # type: ignore[arg-type]
    assert desk.tipline.file_report("ana", ref, fixed).status == "finished"


def test_the_server_down_is_retried_with_backoff_while_the_clock_runs(desk: Desk) -> None:
    ref = desk.open_case()
    desk.tipline.retry_delays = (5.0, 15.0, 30.0)
    desk.server.down_requests = 2
    view = desk.tipline.file_report("ana", ref, DRAFT)
    assert desk.slept == [5.0, 15.0]
    assert (view.status, view.attempts) == ("finished", 2)

    other = desk.open_case()
    desk.slept.clear()
    desk.server.down_requests = 1_000
    with pytest.raises(NotReached, match="clock keeps running"):
        desk.tipline.file_report("ana", other, DRAFT)
    assert desk.slept == [5.0, 15.0, 30.0]
    filing = desk.filing(other)
    assert (filing.status, filing.attempts, filing.holder) == ("waiting", 4, "")
    assert "NCMEC unreachable" in filing.last_error
    assert desk.clocks(other)["tipline"][0] in ("ok", "warn")
    assert filing.next_attempt_at == desk.clock.now() + timedelta(seconds=30)
    assert desk.tipline.retry_due("ana") == []  # not due yet
    desk.server.down_requests = 0
    desk.clock.advance(timedelta(seconds=30))
    [retried] = desk.tipline.retry_due("ana")
    assert isinstance(retried, FilingView)
    assert (retried.ref, retried.status) == (other, "finished")


def test_the_engine_tries_a_waiting_report_again_as_itself_backing_off(desk: Desk) -> None:
    """NCMEC down outlasts the person's run: the engine's runner tries again, once per
    due filing and without sleeping, each pause longer than the last, until it files."""
    ref = desk.open_case()
    desk.server.down_requests = 1_000
    with pytest.raises(NotReached):
        desk.tipline.file_report("ana", ref, DRAFT)
    assert desk.slept == list(RETRY_DELAYS)
    desk.slept.clear()
    runner = EngineRunner(
        EscalationEngine(desk.db, desk.clock, name="engine"), BackgroundScheduler(timezone=UTC)
    )
    runner.tipline.sleep = desk.slept.append  # type: ignore[method-assign]
    pauses = []
    for _ in range(4):
        waiting = desk.filing(ref)
        pause = waiting.next_attempt_at - desk.clock.now()
        pauses.append(pause)
        desk.clock.advance(pause - timedelta(seconds=1))
        runner._retry_filings()
        assert desk.filing(ref).attempts == waiting.attempts  # not due yet: not tried
        desk.clock.advance(timedelta(seconds=1))
        runner._retry_filings()
        assert desk.filing(ref).attempts == waiting.attempts + 1
    assert desk.slept == []  # the engine never waits on its thread
    assert pauses == [timedelta(minutes=n) for n in (1, 2, 4, 8)]
    assert runner.tipline._rest(100) == RUN_PAUSE_CAP

    desk.server.down_requests = 0
    desk.clock.advance(desk.filing(ref).next_attempt_at - desk.clock.now())
    runner._retry_filings()
    filed = desk.filing(ref)
    assert (filed.status, filed.attempts) == ("finished", 10)  # failed tries
    assert len(desk.server.submitted()) == 1
    assert desk.clocks(ref)["tipline"] == ("done", filed.report_id)
    with desk.db.read() as session:
        engine_steps = session.exec(
            select(AuditRecord.action)
            .where(AuditRecord.case_ref == ref, AuditRecord.actor == "engine")
            .order_by(col(AuditRecord.seq))
        ).all()
        filed_by = session.exec(
            select(Responder.handle)
            .join(ClockEvent, col(ClockEvent.by_id) == col(Responder.id))
            .where(ClockEvent.kind == "filed")
        ).one()
    assert engine_steps[-3:] == ["tipline.claim", "tipline.submit", "tipline.finish"]
    assert filed_by == "ana"  # the report is ana's; the engine only sent it again


def test_a_clock_keeps_running_while_ncmec_stays_down(desk: Desk) -> None:
    ref = desk.open_case()
    desk.tipline.retry_delays = ()
    desk.server.down_requests = 1_000
    with pytest.raises(NotReached):
        desk.tipline.file_report("ana", ref, DRAFT)
    desk.clock.advance(timedelta(days=2))
    assert desk.clocks(ref)["tipline"][0] == "breached"  # still running, now late


def test_two_filers_racing_file_the_case_once(desk: Desk) -> None:
    ref = desk.open_case()
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def filer(who: str) -> None:
        service = TiplineService(desk.db, desk.clock)
        start.wait(10)
        try:
            outcomes.append(service.file_report(who, ref, DRAFT).status)
        except Refused as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=filer, args=(who,)) for who in ("ana", "sam")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) in (["NotAllowed", "finished"], ["NothingToDo", "finished"])
    assert len(desk.server.submitted()) == 1
    assert desk.server.calls.count("finish") == 1


def test_a_claim_held_by_a_live_filer_refuses_a_second(desk: Desk) -> None:
    ref = desk.open_case()
    desk.server.stall = "submit"
    runner = threading.Thread(target=desk.tipline.file_report, args=("ana", ref, DRAFT))
    runner.start()
    assert desk.server.stalled.wait(30)
    with pytest.raises(NotAllowed, match="being filed by ana"):
        TiplineService(desk.db, desk.clock).file_report("sam", ref, DRAFT)
    desk.server.release.set()
    runner.join(30)
    assert desk.filing(ref).status == "finished"
    assert len(desk.server.submitted()) == 1


# --- the account and the documents ---------------------------------------------------


def test_production_is_refused_unless_the_desk_allows_it(desk: Desk) -> None:
    with pytest.raises(NotAllowed, match="production"):
        ReportingClient(PRODUCTION_URL, "u", "p")
    ReportingClient(PRODUCTION_URL, "u", "p", production_allowed=True).__exit__(None, None, None)
    with pytest.raises(BadInput, match="--production"):
        desk.tipline.setup_account(
            "sam",
            username="u",
            password="p",
            reporter_first_name="S",
            reporter_last_name="O",
            reporter_email="s@desk.example",
            url=PRODUCTION_URL,
        )
    with pytest.raises(NotAllowed, match="supervisor"):
        desk.tipline.setup_account(
            "ana",
            username="u",
            password="p",
            reporter_first_name="S",
            reporter_last_name="O",
            reporter_email="s@desk.example",
        )


def test_only_csea_cases_are_reported_and_bad_drafts_name_the_field(desk: Desk) -> None:
    other = desk.cases.open_case("ana", title="Threat", category="threat_to_life", severity=2)
    with pytest.raises(NotAllowed, match="only CSEA cases"):
        desk.tipline.file_report("ana", other.ref, DRAFT)
    with pytest.raises(BadInput) as caught:
        check_draft(incident_type="spam", incident_at=T0, screen_name="x")
    assert caught.value.field == "incident_type"
    with pytest.raises(BadInput) as caught:
        check_draft(incident_type="csam", incident_at=T0)
    assert caught.value.field == "reported_user"
    with pytest.raises(BadInput) as caught:
        check_draft(incident_type="csam", incident_at=T0, reported_email="not-an-address")
    assert caught.value.field == "reported_email"


def test_the_status_call_checks_the_account(desk: Desk) -> None:
    with desk.tipline.client() as client:
        assert client.status().code == 0
    desk.tipline.setup_account(
        "sam",
        username="desk",
        password="wrong",
        reporter_first_name="S",
        reporter_last_name="O",
        reporter_email="s@desk.example",
        url=desk.server.url,
    )
    with desk.tipline.client() as client, pytest.raises(Refused, match="account"):
        client.status()


def test_a_case_worked_by_someone_else_is_not_filed_by_a_bystander(desk: Desk) -> None:
    ref = desk.open_case()
    desk.cases.acknowledge("ana", ref)
    with pytest.raises(NotAllowed, match="assigned to ana"):
        desk.tipline.file_report("ben", ref, DRAFT)


def test_a_filer_killed_between_submit_and_finish_is_retracted_and_refiled_once(
    any_db: Database, tmp_path: Path, ncmec: StandIn
) -> None:
    """A real crash: `vigil tipline file` in its own process is killed while NCMEC holds its
    upload. The report id it stored survives; once the dead filer's lease has passed, the
    next run retracts that report and files one new one."""
    now = datetime.now(UTC)
    clock = FakeClock(now)
    add_responder(any_db, "ana")
    add_responder(any_db, "sam", "supervisor")
    add_policy(any_db, "standard", [(1800, ["user:ana"])], route=["default"])
    desk = Desk(any_db, clock, ncmec, tmp_path)
    desk.tipline.setup_account(
        "sam",
        username=ncmec.username,
        password=ncmec.password,
        reporter_first_name="Sam",
        reporter_last_name="Okafor",
        reporter_email="tipline@desk.example",
        url=ncmec.url,
    )
    ref = desk.open_case()
    desk.evidence(ref, "a.png", b"reported bytes")
    ncmec.stall = "upload"
    url = any_db.engine.url.render_as_string(hide_password=False)
    child = spawn_python(
        "-m", "app.main", "--db", url, "--as", "ana",
        "tipline", "file", ref, "--incident-type", "csam", "--screen-name", "shadow_trader",
    )  # fmt: skip
    try:
        assert ncmec.stalled.wait(60), "the filer never reached the upload"
        child.kill()
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    ncmec.stall = None
    ncmec.release.set()
    [opened] = ncmec.submitted()
    assert desk.filing(ref).report_id == opened.id  # stored the moment NCMEC gave it

    with pytest.raises(NotAllowed, match="being filed by ana"):
        desk.tipline.file_report("sam", ref)  # the dead filer's lease still holds
    clock.advance(timedelta(minutes=5))
    view = desk.tipline.file_report("sam", ref)

    first, second = ncmec.submitted()
    assert (first.id, first.state, second.state) == (opened.id, "retracted", "finished")
    assert (view.report_id, view.retractions) == (second.id, 1)
    assert len(second.files) == 1


def test_an_evidence_file_gone_or_changed_stops_the_filing_and_the_retry_refiles(
    desk: Desk,
) -> None:
    ref = desk.open_case()
    desk.evidence(ref, "a.png", b"original bytes")
    (desk.folder / "a.png").write_bytes(b"altered bytes")
    with pytest.raises(NotAllowed, match="changed since it was added"):
        desk.tipline.file_report("ana", ref, DRAFT)
    (desk.folder / "a.png").unlink()
    with pytest.raises(NotAllowed, match="cannot be read"):
        desk.tipline.file_report("ana", ref)
    assert desk.filing(ref).holder == ""  # the claim was let go
    (desk.folder / "a.png").write_bytes(b"original bytes")
    view = desk.tipline.file_report("ana", ref)
    assert [r.state for r in desk.server.submitted()] == ["retracted", "retracted", "finished"]
    assert (view.status, view.retractions) == ("finished", 2)

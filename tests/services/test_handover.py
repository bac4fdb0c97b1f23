"""The shift handover: a known shift across Sydney's change to daylight time, checked figure by
figure; submitting, acknowledging and finding handovers; the command line."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from app.core.clock import FakeClock
from app.core.errors import BadInput, NotAllowed, NotFound, NothingToDo
from app.engine.runner import EscalationEngine
from app.services.cases import CaseService
from app.services.oncall import load_all_schedules
from app.services.policies import sla_table
from app.services.shiftwork.handover import (
    HandoverService,
    NextOnCall,
    find_handovers,
    handover_by_id,
    last_shift,
    next_action,
    pending_handovers_for,
    pick_incoming,
    render_markdown,
    report_from_json,
    to_json,
)
from app.services.team.apply import apply_team
from app.services.team.parse import parse_team
from data import audit
from data.db import Database
from data.models import AuditRecord, Case, Responder
from data.queries import action_items_of
from tests.cli_harness import Run
from tests.factories import HandoverDesk, add_responder

MARKER = "MARKER-SECRET-9137"

# Sydney moves to daylight time at 02:00 on Sunday 4 October 2026 (AEST +10 -> AEDT +11).
# The rotation hands off at 08:00 local, so ana's turn of Saturday 3 October runs from
# 08:00 AEST (2 Oct 22:00Z) to 08:00 AEDT (3 Oct 21:00Z): 23 hours.
TEAM = """
[[responder]]
handle = "ana"
name = "Ana Ruiz"
timezone = "Australia/Sydney"
contacts = [{ kind = "console" }]

[[responder]]
handle = "ben"
name = "Ben Okafor"
timezone = "Australia/Sydney"
contacts = [{ kind = "console" }]

[[responder]]
handle = "sam"
name = "Sam Lee"
role = "supervisor"
timezone = "Australia/Sydney"
contacts = [{ kind = "console" }]

[[rotation]]
name = "syd"
timezone = "Australia/Sydney"
shift = "1d"
handoff = "08:00"
start = "2026-10-01"
members = ["ana", "ben"]

[[schedule]]
name = "primary"
layers = ["syd"]
timezone = "Australia/Sydney"

[[override]]
schedule = "primary"
who = "sam"
from = "2026-10-04T02:00:00Z"
to = "2026-10-04T04:00:00Z"
reason = "ben at the dentist"

[[override]]
schedule = "primary"
who = "sam"
from = "2026-10-10T02:00:00Z"
to = "2026-10-10T04:00:00Z"

[[policy]]
name = "emergency"
steps = [
  { delay = "5m", targets = ["schedule:primary"] },
  { delay = "10m", targets = ["user:sam"] },
]

[routing]
default = "emergency"
"""

SHIFT_START = datetime(2026, 10, 2, 22, 0, tzinfo=UTC)
SHIFT_END = datetime(2026, 10, 3, 21, 0, tzinfo=UTC)
NOW = datetime(2026, 10, 3, 21, 30, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def play_dst_shift(db: Database, clock: FakeClock) -> None:
    """A desk with a known history around ana's 23-hour shift; ends at NOW.

    ESC-0001 sev3, opened 2 Oct 21:00Z before the shift (ben paged), acked by ben 21:10Z; never
        responded to: its respond deadline (8h) falls in the shift, 3 Oct 05:00Z.
    ESC-0002 sev1 edr, 23:00Z: ana paged, no answer; sam paged 23:05Z, acks 23:07Z (2m past the
        5m ack SLA), notes 23:20Z, resolves 3 Oct 01:00Z.
    ESC-0003 sev2 csea (sensitive), 3 Oct 16:30Z (03:30 AEDT): ana paged, acks 16:40Z; its
        respond deadline 18:30Z passes.
    ESC-0004 sev4, 20:50Z: ana paged, then sam 20:55Z, then the chain is exhausted 21:05Z.
    ESC-0005 sev3, 21:20Z, after the shift: ben paged.
    """
    apply_team(db, parse_team(TEAM), actor="sam", now=utc("2026-09-01T00:00:00"))
    cases = CaseService(db, clock)
    engine = EscalationEngine(db, clock)

    def at(text: str) -> None:
        clock.set(utc(text))

    at("2026-10-02T21:00:00")
    cases.open_case("sam", title="Account takeover report", category="other", severity=3)
    engine.run_due()
    at("2026-10-02T21:10:00")
    cases.acknowledge("ben", "ESC-0001")

    at("2026-10-02T23:00:00")
    cases.open_case("sam", title="EDR: Metro PD | missing child", category="edr", severity=1)
    engine.run_due()
    at("2026-10-02T23:05:00")
    engine.run_due()
    at("2026-10-02T23:07:00")
    cases.acknowledge("sam", "ESC-0002")
    at("2026-10-02T23:20:00")
    cases.add_note("sam", "ESC-0002", "Called Metro PD back on the verified line.")
    at("2026-10-03T01:00:00")
    cases.resolve("sam", "ESC-0002")

    at("2026-10-03T16:30:00")
    cases.open_case(
        "sam", title="CSEA report from partner", category="csea", severity=2, details=MARKER
    )
    engine.run_due()
    at("2026-10-03T16:40:00")
    cases.acknowledge("ana", "ESC-0003")

    at("2026-10-03T20:50:00")
    cases.open_case("sam", title="Routine preservation", category="other", severity=4)
    engine.run_due()
    at("2026-10-03T20:55:00")
    engine.run_due()
    at("2026-10-03T21:05:00")
    engine.run_due()

    at("2026-10-03T21:20:00")
    cases.open_case("sam", title="After the shift", category="other", severity=3)
    engine.run_due()
    at("2026-10-03T21:30:00")


@pytest.fixture
def desk(any_db: Database, clock: FakeClock) -> HandoverDesk:
    play_dst_shift(any_db, clock)
    return HandoverDesk(any_db, clock)


def test_the_window_is_the_authors_last_shift_across_the_dst_change(
    desk: HandoverService,
) -> None:
    report = desk.report("ana")
    assert (report.shift_start, report.shift_end) == (SHIFT_START, SHIFT_END)
    assert report.shift_end - report.shift_start == timedelta(hours=23)
    assert report.handoff_at == SHIFT_END
    assert report.schedule == "primary"
    assert report.generated_at == NOW
    text = render_markdown(report, "Australia/Sydney")
    assert "Shift: Sat 03 Oct 2026 08:00 AEST to Sun 04 Oct 2026 08:00 AEDT" in text


def test_cases_opened_acknowledged_resolved_and_still_open(desk: HandoverService) -> None:
    report = desk.report("ana")
    assert [(c.ref, c.at) for c in report.opened] == [
        ("ESC-0002", utc("2026-10-02T23:00:00")),
        ("ESC-0003", utc("2026-10-03T16:30:00")),
        ("ESC-0004", utc("2026-10-03T20:50:00")),
    ]
    assert [(c.ref, c.at, c.by) for c in report.acknowledged] == [
        ("ESC-0002", utc("2026-10-02T23:07:00"), "sam"),
        ("ESC-0003", utc("2026-10-03T16:40:00"), "ana"),
    ]
    assert [(c.ref, c.at, c.by) for c in report.resolved] == [
        ("ESC-0002", utc("2026-10-03T01:00:00"), "sam")
    ]
    # Queue order: unacknowledged first, then severity; ESC-0005 opened after the shift.
    assert [
        (o.ref, o.status, o.assignee, o.next_action, o.next_action_due_at)
        for o in report.still_open
    ] == [
        (
            "ESC-0004",
            "triggered",
            "ana",
            "escalation exhausted: acknowledge or reassign",
            utc("2026-10-04T00:50:00"),  # sev4: 4h to acknowledge
        ),
        ("ESC-0003", "acknowledged", "ana", "first response", utc("2026-10-03T18:30:00")),
        ("ESC-0001", "acknowledged", "ben", "first response", utc("2026-10-03T05:00:00")),
    ]
    assert report.still_open[0].exhausted


def test_sla_breaches_are_the_deadlines_of_the_shift_that_were_missed(
    desk: HandoverService,
) -> None:
    report = desk.report("ana")
    assert [
        (b.ref, b.kind, b.due_at, b.met_at, b.late_by_seconds) for b in report.sla_breaches
    ] == [
        ("ESC-0002", "acknowledge", utc("2026-10-02T23:05:00"), utc("2026-10-02T23:07:00"), 120),
        # Not met by the report's time, 3 Oct 21:30Z: late by 16h30m and 3h.
        ("ESC-0001", "respond", utc("2026-10-03T05:00:00"), None, 59_400),
        ("ESC-0003", "respond", utc("2026-10-03T18:30:00"), None, 10_800),
    ]


def test_unanswered_pages_and_how_far_they_escalated(desk: HandoverService) -> None:
    report = desk.report("ana")
    first, second = report.unanswered
    assert first.ref == "ESC-0002"
    assert [(p.handle, p.step, p.round, p.sent_at) for p in first.pages] == [
        ("ana", 1, 0, utc("2026-10-02T23:00:00"))
    ]
    assert (first.reached_step, first.reached_reason, first.step_count) == (2, "escalation", 2)
    assert (first.answered_by, first.answered_at) == ("sam", utc("2026-10-02T23:07:00"))
    assert not first.exhausted
    assert second.ref == "ESC-0004"
    assert [(p.handle, p.step, p.sent_at) for p in second.pages] == [
        ("ana", 1, utc("2026-10-03T20:50:00")),
        ("sam", 2, utc("2026-10-03T20:55:00")),
    ]
    # The supervisors were paged at 21:05Z, after the shift: the chain ran out.
    assert (second.reached_step, second.reached_reason, second.exhausted) == (3, "exhausted", True)
    assert (second.answered_by, second.status) == (None, "triggered")


def test_who_is_on_call_next_and_the_overrides_of_that_shift(desk: HandoverService) -> None:
    report = desk.report("ana")
    # ben's turn runs to 4 Oct 21:00Z, but sam's override takes 02:00Z-04:00Z of it.
    assert report.next_on_call == (
        NextOnCall("primary", "ben", SHIFT_END, utc("2026-10-04T02:00:00"), "rotation:syd"),
    )
    assert report.incoming == "ben"
    assert [(o.who, o.start, o.end, o.reason) for o in report.overrides] == [
        ("sam", utc("2026-10-04T02:00:00"), utc("2026-10-04T04:00:00"), "ben at the dentist")
    ]


def test_since_gives_the_start_and_the_end_is_now(desk: HandoverService) -> None:
    report = desk.report("ana", since=utc("2026-10-03T16:00:00"))
    assert (report.shift_start, report.shift_end, report.handoff_at) == (
        utc("2026-10-03T16:00:00"),
        NOW,
        NOW,  # ana is not on call now, so the hand-off is now
    )
    assert report.schedule is None
    assert [c.ref for c in report.opened] == ["ESC-0003", "ESC-0004", "ESC-0005"]
    assert [b.ref for b in report.sla_breaches] == ["ESC-0003"]
    assert report.incoming == "ben"
    with pytest.raises(BadInput, match="since"):
        desk.report("ana", since=NOW)


def test_a_person_without_a_shift_is_asked_for_since(desk: HandoverService) -> None:
    with pytest.raises(NotFound, match="--since"):
        desk.report("sam")


def test_sensitive_details_never_appear_in_a_report(desk: HandoverService) -> None:
    report = desk.report("ana")
    assert "ESC-0003" in render_markdown(report)
    assert MARKER not in render_markdown(report, "Australia/Sydney")
    assert MARKER not in json.dumps(to_json(report))
    view = desk.submit("ana", "Watch ESC-0003.")
    with desk.db.read() as session:
        stored = handover_by_id(session, view.id)
    assert MARKER not in json.dumps(to_json(stored.report)) + stored.notes


def test_a_sensitive_title_leaves_only_when_asked_for_and_is_audited(
    desk: HandoverService,
) -> None:
    """The CSEA case ESC-0003 shows by reference, category and severity; its title only
    with `sensitive_titles`, which writes a reveal record for it."""
    title = "CSEA report from partner"
    withheld = "[sensitive csea case, sev2: title withheld]"
    report = desk.report("ana")
    text = render_markdown(report) + json.dumps(to_json(report))
    assert title not in text
    assert withheld in render_markdown(report)
    with desk.db.read() as session:
        before = audit.count(session)
    shown = desk.report("ana", sensitive_titles=True)
    assert title in render_markdown(shown)
    with desk.db.read() as session:
        records = session.exec(select(AuditRecord).where(AuditRecord.seq > before)).all()
    assert [(r.actor, r.action, r.case_ref) for r in records] == [
        ("ana", "case.reveal_title", "ESC-0003")
    ]
    view = desk.submit("ana", "Watch ESC-0003.")
    assert title not in json.dumps(to_json(view.report))


def test_markdown_escapes_table_cells(desk: HandoverService) -> None:
    text = render_markdown(desk.report("ana"))
    assert "EDR: Metro PD \\| missing child" in text


def test_submit_stores_the_report_for_the_incoming_person(
    desk: HandoverService, clock: FakeClock
) -> None:
    view = desk.submit("ana", "  ESC-0004 ran out of steps; call sam.  ")
    assert (view.author, view.incoming, view.pending) == ("ana", "ben", True)
    assert (view.shift_start, view.shift_end, view.submitted_at) == (SHIFT_START, SHIFT_END, NOW)
    assert view.notes == view.report.notes == "ESC-0004 ran out of steps; call sam."
    # The stored report carries the chain's head before its own `handover.submit` record.
    later = desk.report("ana")
    assert view.report.audit_head is not None
    assert later.audit_head is not None
    assert view.report.audit_head.seq == later.audit_head.seq - 1
    assert view.report == dataclasses.replace(
        later, notes=view.notes, audit_head=view.report.audit_head
    )
    assert report_from_json(to_json(view.report)) == view.report
    with desk.db.read() as session:
        ids = {r.handle: r.id for r in session.exec(select(Responder)).all()}
        assert [h.id for h in pending_handovers_for(session, ids["ben"] or 0)] == [view.id]
        assert pending_handovers_for(session, ids["sam"] or 0) == []

    with pytest.raises(NotAllowed, match="only they"):
        desk.acknowledge_handover("sam", view.id)
    with pytest.raises(NotAllowed, match="only they"):
        desk.acknowledge_handover("ana", view.id)
    clock.advance(minutes=3)
    acked = desk.acknowledge_handover("ben", view.id)
    assert (acked.acknowledged_by, acked.acknowledged_at) == ("ben", NOW + timedelta(minutes=3))
    with pytest.raises(NothingToDo, match="already acknowledged by ben"):
        desk.acknowledge_handover("ben", view.id)
    with pytest.raises(NotFound):
        desk.acknowledge_handover("ben", 99)
    with desk.db.read() as session:
        assert pending_handovers_for(session, ids["ben"] or 0) == []
        actions = session.exec(select(AuditRecord.action)).all()
        assert actions[-2:] == ["handover.submit", "handover.ack"]
        assert audit.verify(session).ok


def test_submit_refuses_bad_input(desk: HandoverService) -> None:
    with pytest.raises(BadInput, match="notes"):
        desk.submit("ana", "   ")
    with pytest.raises(BadInput, match="to"):
        desk.submit("ana", "n", to="ana")
    with pytest.raises(NotFound, match="nobody"):
        desk.submit("ana", "n", to="nobody")
    with pytest.raises(NotAllowed):
        desk.submit("ghost", "n")


def test_named_incoming_and_a_handover_nobody_was_named_for(desk: HandoverService) -> None:
    named = desk.submit("ana", "For sam.", to="sam")
    assert named.incoming == "sam"
    with pytest.raises(NotAllowed, match="only they"):
        desk.acknowledge_handover("ben", named.id)
    # sam is on no schedule: the next person of the first schedule is ben.
    assert desk.submit("sam", "Quiet.", since=utc("2026-10-03T20:00:00")).incoming == "ben"
    # ben is on call now: his run ends where sam's override begins, and sam is next.
    mine = desk.submit("ben", "Busy night.", since=utc("2026-10-03T21:00:00"))
    assert (mine.report.handoff_at, mine.incoming) == (utc("2026-10-04T02:00:00"), "sam")


def test_a_handover_for_nobody_is_acknowledged_by_anyone_but_its_author(
    db: Database, clock: FakeClock
) -> None:
    add_responder(db, "ana")
    add_responder(db, "ben")
    service = HandoverDesk(db, clock)
    view = service.submit("ana", "No schedules here.", since=clock.now() - timedelta(hours=8))
    assert (view.incoming, view.report.next_on_call, view.report.schedule) == (None, (), None)
    with pytest.raises(NotAllowed, match="you wrote"):
        service.acknowledge_handover("ana", view.id)
    acked = service.acknowledge_handover("ben", view.id)
    assert (acked.incoming, acked.acknowledged_by) == ("ben", "ben")


def test_find_handovers_by_notes_author_or_case(desk: HandoverService, clock: FakeClock) -> None:
    first = desk.submit("ana", "Metro PD called twice.")
    clock.advance(hours=1)
    second = desk.submit("ben", "Nothing new.", since=utc("2026-10-03T21:00:00"))
    with desk.db.read() as session:
        assert [v.id for v in find_handovers(session)] == [second.id, first.id]
        assert [v.id for v in find_handovers(session, search="metro pd")] == [first.id]
        assert [v.id for v in find_handovers(session, search="NOTHING new")] == [second.id]
        assert [v.id for v in find_handovers(session, search="ana")] == [second.id, first.id]
        # ESC-0002 is in ana's report only (it was resolved long before ben's window).
        assert [v.id for v in find_handovers(session, search="esc-0002")] == [first.id]
        assert find_handovers(session, search="zzz") == []
        assert [v.id for v in find_handovers(session, pending=True, limit=1)] == [second.id]


def test_last_shift_joins_an_override_that_continues_it(db: Database, clock: FakeClock) -> None:
    apply_team(db, parse_team(TEAM), actor="sam", now=utc("2026-09-01T00:00:00"))
    extra = TEAM + (
        '\n[[override]]\nschedule = "primary"\nwho = "ana"\n'
        'from = "2026-10-03T21:00:00Z"\nto = "2026-10-03T23:00:00Z"\n'
    )
    apply_team(db, parse_team(extra), actor="sam", now=utc("2026-09-01T00:00:00"))
    with db.read() as session:
        schedules = load_all_schedules(session)
    found = last_shift(schedules, "ana", utc("2026-10-03T23:30:00"))
    assert found is not None
    assert (found[1].start, found[1].end) == (SHIFT_START, utc("2026-10-03T23:00:00"))
    # In progress: the whole run, to its scheduled end.
    found = last_shift(schedules, "ana", utc("2026-10-03T12:00:00"))
    assert found is not None
    assert (found[1].start, found[1].end) == (SHIFT_START, utc("2026-10-03T23:00:00"))


def test_pick_incoming_prefers_the_authors_schedule() -> None:
    at = utc("2026-10-03T21:00:00")
    entries = [
        NextOnCall("a-supervisors", "sam", at, None, "rotation:sup"),
        NextOnCall("primary", "ana", at, None, "rotation:syd"),
        NextOnCall("secondary", "ben", at, None, "rotation:two"),
    ]
    assert pick_incoming(entries, "cara", "secondary") == entries[2]
    assert pick_incoming(entries, "cara", None) == entries[0]
    assert pick_incoming(entries, "ana", "primary") == entries[0]  # not herself
    assert pick_incoming([], "ana", "primary") is None


def test_next_action_follows_the_case(desk: HandoverService) -> None:
    cases = CaseService(desk.db, desk.clock)
    cases.add_note("ana", "ESC-0003", "Reviewed.")  # the first response
    cases.add_action_item("ana", "ESC-0003", "Ask partner for hashes", owner="ana")
    cases.add_action_item(
        "ana", "ESC-0003", "File report", owner="sam", due_at=utc("2026-10-04T05:00:00")
    )
    with desk.db.read() as session:
        case = session.exec(select(Case).where(Case.ref == "ESC-0003")).one()
        sla = sla_table(session)
        items = action_items_of(session, case.id or 0)
        assert next_action(case, sla, items) == (
            "action item: File report (sam)",
            utc("2026-10-04T05:00:00"),
        )
        assert next_action(case, sla, items[:1]) == (
            "action item: Ask partner for hashes (ana)",
            None,
        )
        assert next_action(case, sla, []) == ("triage the case", None)


# --- the command line -------------------------------------------------------------


@pytest.fixture
def run(db: Database, sqlite_url: str, clock: FakeClock) -> Run:
    play_dst_shift(db, clock)
    return Run(sqlite_url, clock)


def test_cli_report_as_markdown_and_json(run: Run) -> None:
    code, out, _ = run("handover")
    assert code == 0
    assert out.startswith("# Shift handover from ana")
    assert "| ESC-0004 | sev4 | Routine preservation | triggered (exhausted) |" in out
    assert MARKER not in out
    for flags in (["--format", "json"], ["--json"]):
        code, out, _ = run("handover", *flags)
        assert code == 0
        body = json.loads(out)
        assert (body["shift_start"], body["shift_end"]) == (
            "2026-10-02T22:00:00Z",
            "2026-10-03T21:00:00Z",
        )
        assert [b["ref"] for b in body["sla_breaches"]] == ["ESC-0002", "ESC-0001", "ESC-0003"]
        assert body["incoming"] == "ben"
        assert MARKER not in out
    code, out, _ = run("handover", "--since", "2026-10-03T16:00:00Z", "--format", "json")
    assert json.loads(out)["shift_start"] == "2026-10-03T16:00:00Z"


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["handover", "--since", "yesterday"], 2, "--since"),
        (["handover", "--since", "2026-10-03T16:00:00"], 2, "offset"),
        (["handover", "--since", "2026-12-01T00:00:00Z"], 2, "since"),
        (["handover", "--format", "pdf"], 2, "format"),
        (["handover", "ack", "one"], 2, "ID"),
        (["handover", "ack", "7"], 1, "no handover 7"),
        (["handover", "submit"], 2, "--notes"),
        (["handover", "submit", "--notes-file", "/nonexistent/notes.md"], 2, "--notes-file"),
    ],
)
def test_cli_bad_input_and_refusals(run: Run, argv: list[str], code: int, needle: str) -> None:
    got, _, err = run(*argv)
    assert got == code
    assert needle in err


def test_cli_no_shift_exits_1(run: Run) -> None:
    code, _, err = run("handover", who="sam")
    assert code == 1
    assert "--since" in err


def test_cli_submit_ack_list_show(run: Run, tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("ESC-0004 needs a supervisor.\nSecond line.", encoding="utf-8")
    code, out, _ = run("handover", "submit", "--notes-file", str(notes), "--json")
    assert code == 0
    body = json.loads(out)
    assert (body["id"], body["incoming"], body["acknowledged_at"]) == (1, "ben", None)
    assert body["report"]["notes"] == "ESC-0004 needs a supervisor.\nSecond line."

    code, out, _ = run("handover", "list", "--pending")
    assert code == 0
    assert "ana -> ben  PENDING  ESC-0004 needs a supervisor." in out
    code, out, _ = run("handover", "show", "1")
    assert out.startswith("Handover 1: not acknowledged yet")
    assert "ESC-0004 needs a supervisor." in out

    assert run("handover", "ack", "1", who="sam")[0] == 1
    code, out, _ = run("handover", "ack", "1", who="ben")
    assert (code, out.strip()) == (0, "Handover 1 from ana acknowledged by ben.")
    assert run("handover", "ack", "1", who="ben")[0] == 1

    code, out, _ = run("handover", "show", "1", "--format", "json")
    assert json.loads(out)["acknowledged_by"] == "ben"
    code, out, _ = run("handover", "list", "--search", "supervisor", "--json")
    assert [h["id"] for h in json.loads(out)] == [1]
    code, out, _ = run("handover", "list", "--pending")
    assert out.strip() == "No handovers."

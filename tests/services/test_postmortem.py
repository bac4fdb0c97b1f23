"""Post-mortems: the generated timeline and escalation of a known case, the rules of who may
write what, action items, the Markdown export without sensitive details, and the command line."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlmodel import col, select

from app.core.clock import FakeClock
from app.core.errors import BadInput, NotAllowed, NotFound, NothingToDo
from app.services.shiftwork.postmortem import (
    PostMortemService,
    cases_owing_postmortem,
    export_markdown,
    postmortem_json,
    postmortem_view,
)
from data import audit
from data.db import Database
from data.models import AuditRecord, Case, CaseChange, TimelineEvent
from tests.cli_harness import Run
from tests.factories import PostMortemDesk
from tests.services.test_handover import MARKER, play_dst_shift


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def desk(any_db: Database, clock: FakeClock) -> PostMortemDesk:
    """See `play_dst_shift`: ESC-0002 is a resolved sev1 whose first page went unanswered."""
    play_dst_shift(any_db, clock)
    return PostMortemDesk(any_db, clock)


def case_ids(db: Database) -> dict[str, int]:
    with db.read() as session:
        return {c.ref: c.id or 0 for c in session.exec(select(Case)).all()}


def test_the_timeline_and_escalation_are_generated_from_the_case(
    desk: PostMortemService,
) -> None:
    desk.open_for("sam", "ESC-0002", "Metro PD asked for subscriber data.")
    with desk.db.read() as session:
        view = postmortem_view(session, "esc-0002")
    assert (view.ref, view.status, view.author, view.summary) == (
        "ESC-0002",
        "draft",
        "sam",
        "Metro PD asked for subscriber data.",
    )
    assert (view.acknowledged_at, view.acknowledged_by) == (utc("2026-10-02T23:07:00"), "sam")
    assert (view.time_to_acknowledge_seconds, view.time_to_resolve_seconds) == (420, 7200)
    assert (view.pages_sent, view.pages_unanswered) == (2, 1)
    assert [
        (
            s.offset_seconds,
            s.step,
            s.paged,
            s.outcome,
            s.answered_by,
            s.waited_seconds,
            s.unanswered,
        )
        for s in view.escalation
    ] == [
        (0, 1, ("ana",), "escalated", None, 300, 1),
        (300, 2, ("sam",), "answered", "sam", 120, 0),
    ]
    # The post-mortem's own event on the case is left out of its timeline.
    assert [(e.offset_seconds, e.kind, e.actor) for e in view.timeline] == [
        (0, "opened", "sam"),
        (0, "paged", None),
        (300, "paged", None),
        (420, "acknowledged", "sam"),
        (1200, "note", "sam"),
        (7200, "resolved", "sam"),
    ]
    assert view.timeline[1].text == "Paged ana (step 1, round 1)"
    with desk.db.read() as session:
        own = session.exec(select(TimelineEvent).where(TimelineEvent.kind == "postmortem")).one()
    assert own.text == "Post-mortem opened by sam"


def test_which_cases_owe_a_post_mortem(desk: PostMortemService) -> None:
    ids = case_ids(desk.db)
    with desk.db.read() as session:
        # Only ESC-0002 is a resolved sev1 or sev2.
        assert cases_owing_postmortem(session) == {ids["ESC-0002"]: None}
        assert cases_owing_postmortem(session, [ids["ESC-0001"]]) == {}
        assert cases_owing_postmortem(session, []) == {}
    desk.open_for("sam", "ESC-0002")
    with desk.db.read() as session:
        assert cases_owing_postmortem(session, list(ids.values())) == {ids["ESC-0002"]: "draft"}
    desk.edit("sam", "ESC-0002", summary="S", root_cause="R")
    desk.set_status("sam", "ESC-0002", "final")
    with desk.db.read() as session:
        assert cases_owing_postmortem(session) == {}


def test_only_supervisors_write_and_final_needs_a_resolved_case_and_text(
    desk: PostMortemService,
) -> None:
    with pytest.raises(NotAllowed, match="supervisors"):
        desk.open_for("ana", "ESC-0002")
    with pytest.raises(NotFound):
        desk.open_for("sam", "ESC-0099")
    with pytest.raises(NotFound, match="open one first"):
        desk.edit("sam", "ESC-0002", summary="x")
    desk.open_for("sam", "ESC-0002")
    with pytest.raises(NothingToDo):
        desk.open_for("sam", "ESC-0002")
    with pytest.raises(NotAllowed, match="supervisors"):
        desk.edit("ana", "ESC-0002", summary="x")
    with pytest.raises(BadInput, match="sections"):
        desk.edit("sam", "ESC-0002")
    with pytest.raises(BadInput) as caught:
        desk.edit("sam", "ESC-0002", factors=["Step 1 was one person", "  "])
    assert caught.value.field == "factors[1]"
    desk.edit("sam", "ESC-0002", summary="S", factors=["One person on step 1", "Night  shift"])
    with pytest.raises(NothingToDo):
        desk.edit("sam", "ESC-0002", summary="S")
    with pytest.raises(BadInput, match="draft, review, final"):
        desk.set_status("sam", "ESC-0002", "done")
    with pytest.raises(NotAllowed, match="root cause"):
        desk.set_status("sam", "ESC-0002", "final")
    desk.edit("sam", "ESC-0002", root_cause="The first step paged one person at night.")
    desk.set_status("sam", "ESC-0002", "review")
    desk.set_status("sam", "ESC-0002", "final")
    with pytest.raises(NothingToDo):
        desk.set_status("sam", "ESC-0002", "FINAL")
    with pytest.raises(NotAllowed, match="final"):
        desk.edit("sam", "ESC-0002", summary="changed")
    with pytest.raises(NotAllowed, match="final"):
        desk.add_action("sam", "ESC-0002", "x", "ana", date(2026, 10, 20))
    desk.set_status("sam", "ESC-0002", "review")
    desk.edit("sam", "ESC-0002", summary="changed")
    with desk.db.read() as session:
        view = postmortem_view(session, "ESC-0002")
    assert view.factors == ("One person on step 1", "Night shift")
    assert (view.summary, view.status) == ("changed", "review")

    desk.open_for("sam", "ESC-0003", "S")
    desk.edit("sam", "ESC-0003", root_cause="R")
    with pytest.raises(NotAllowed, match="resolve it"):
        desk.set_status("sam", "ESC-0003", "final")


def test_action_items_with_owner_and_due_date(desk: PostMortemService) -> None:
    desk.open_for("sam", "ESC-0002")
    with pytest.raises(NotFound, match="ghost"):
        desk.add_action("sam", "ESC-0002", "Add a second person", "ghost", date(2026, 10, 20))
    # sam's clock reads Sunday 4 October (08:30 AEDT): the 3rd is past.
    with pytest.raises(BadInput) as caught:
        desk.add_action("sam", "ESC-0002", "Too late", "ana", date(2026, 10, 3))
    assert caught.value.field == "due"
    first = desk.add_action(
        "sam", "ESC-0002", "Add a second person to step 1", "ana", date(2026, 10, 4)
    )
    second = desk.add_action(
        "sam", "ESC-0002", "Shorten step 1 at night", "ben", date(2026, 10, 30)
    )
    assert (first, second) == (1, 2)
    with pytest.raises(NotAllowed, match="owner"):
        desk.complete_action("ben", "ESC-0002", 1)
    desk.complete_action("ana", "ESC-0002", 1)
    with pytest.raises(NothingToDo):
        desk.complete_action("ana", "ESC-0002", 1)
    with pytest.raises(NotFound, match="no action item 9"):
        desk.complete_action("sam", "ESC-0002", 9)
    desk.complete_action("sam", "ESC-0002", 2)  # a supervisor may
    with desk.db.read() as session:
        view = postmortem_view(session, "ESC-0002")
    assert [(a.number, a.owner, a.due_on, a.status) for a in view.actions] == [
        (1, "ana", date(2026, 10, 4), "done"),
        (2, "ben", date(2026, 10, 30), "done"),
    ]
    assert view.actions[0].done_at == desk.clock.now()


def test_every_change_is_audited_and_feeds_the_case(desk: PostMortemService) -> None:
    ref = "ESC-0002"
    with desk.db.read() as session:
        before = session.exec(select(Case).where(Case.ref == ref)).one().version
        changes = len(session.exec(select(CaseChange)).all())
    desk.open_for("sam", ref)
    desk.edit("sam", ref, summary="S", root_cause="R")
    desk.add_action("sam", ref, "Fix", "ana", date(2026, 10, 10))
    desk.complete_action("ana", ref, 1)
    desk.set_status("sam", ref, "final")
    with desk.db.read() as session:
        records = session.exec(
            select(AuditRecord).where(AuditRecord.case_ref == ref).order_by(col(AuditRecord.seq))
        ).all()
        assert [r.action for r in records][-5:] == [
            "postmortem.open",
            "postmortem.edit",
            "postmortem.action",
            "postmortem.action_done",
            "postmortem.status",
        ]
        assert records[-4].detail == {"sections": ["root_cause", "summary"]}
        assert audit.verify(session).ok
        case = session.exec(select(Case).where(Case.ref == ref)).one()
        assert case.version == before + 5
        assert len(session.exec(select(CaseChange)).all()) == changes + 5


def test_export_as_markdown_on_the_readers_clock(desk: PostMortemService) -> None:
    desk.open_for("sam", "ESC-0002", "Metro PD asked for subscriber data.")
    desk.edit(
        "sam",
        "ESC-0002",
        root_cause="Step 1 paged one person.",
        factors=["Night shift", "No backup"],
    )
    desk.add_action("sam", "ESC-0002", "Add a backup | pager", "ana", date(2026, 10, 20))
    with desk.db.read() as session:
        text = export_markdown(postmortem_view(session, "ESC-0002"), "Australia/Sydney")
    for line in (
        "# Post-mortem: ESC-0002 EDR: Metro PD | missing child",
        "- Status: draft (opened by sam, Sun 04 Oct 2026 08:30:00 AEDT)",
        "- Time to acknowledge: 7m 00s (by sam, Sat 03 Oct 2026 09:07:00 AEST)",
        "- Time to resolve: 2h 00m (Sat 03 Oct 2026 11:00:00 AEST)",
        "- Pages: 2 sent, 1 unanswered",
        "| Sat 03 Oct 2026 09:00:00 AEST | +0m 00s | step 1, round 1 | ana "
        "| no answer; next step after 5m 00s |",
        "| Sat 03 Oct 2026 09:05:00 AEST | +5m 00s | step 2, round 1 | sam "
        "| answered by sam after 2m 00s |",
        "| Sat 03 Oct 2026 09:20:00 AEST | +20m 00s | Note by sam | sam |",
        "Step 1 paged one person.",
        "- Night shift\n- No backup",
        "| 1 | Add a backup \\| pager | ana | 2026-10-20 | open |",
    ):
        assert line in text


def test_sensitive_details_never_reach_a_post_mortem(desk: PostMortemService) -> None:
    desk.reveal("sam", "ESC-0003")  # revealing does not put them in the post-mortem
    desk.open_for("sam", "ESC-0003", "CSEA report from a partner.")
    with desk.db.read() as session:
        view = postmortem_view(session, "ESC-0003")
    assert MARKER not in export_markdown(view)
    assert MARKER not in json.dumps(postmortem_json(view))
    assert "Sensitive details revealed to sam" in export_markdown(view)


def test_a_case_without_a_post_mortem_says_how_to_open_one(desk: PostMortemService) -> None:
    with desk.db.read() as session, pytest.raises(NotFound, match="postmortem open ESC-0001"):
        postmortem_view(session, "ESC-0001")


# --- the command line -------------------------------------------------------------


@pytest.fixture
def run(db: Database, sqlite_url: str, clock: FakeClock) -> Run:
    play_dst_shift(db, clock)
    return Run(sqlite_url, clock)


def test_cli_post_mortem_flow(run: Run, tmp_path: Path) -> None:
    assert run("postmortem", "open", "ESC-0002")[0] == 1  # ana is a specialist
    code, out, _ = run("postmortem", "open", "ESC-0002", "--summary", "S", who="sam")
    assert (code, out.strip()) == (0, "Post-mortem of ESC-0002 opened (draft).")
    owed = run.json("postmortem", "owed")
    assert owed == [
        {
            "ref": "ESC-0002",
            "title": "EDR: Metro PD | missing child",
            "severity": "sev1",
            "resolved_at": "2026-10-03T01:00:00Z",
            "postmortem": "draft",
        }
    ]
    edit = ["edit", "ESC-0002", "--root-cause", "R", "--factor", "A", "--factor", "B"]
    assert run("postmortem", *edit, who="sam")[0] == 0
    action = ["action", "ESC-0002", "--title", "Fix", "--owner", "ana", "--due", "2026-10-20"]
    code, out, _ = run("postmortem", *action, who="sam")
    assert (code, out.strip()) == (0, "Action item 1 of ESC-0002: ana, due 2026-10-20.")
    assert run("postmortem", "done", "ESC-0002", "1")[0] == 0  # ana owns it
    for flags in (["--json"], ["--format", "json"]):
        code, out, _ = run("postmortem", "show", "ESC-0002", *flags)
        body = json.loads(out)
        assert (body["status"], body["factors"], body["time_to_acknowledge_seconds"]) == (
            "draft",
            ["A", "B"],
            420,
        )
        assert body["actions"][0]["status"] == "done"
    target = tmp_path / "pm.md"
    code, out, err = run("postmortem", "show", "ESC-0002", "--out", str(target))
    assert (code, out, err) == (0, "", f"Wrote {target}\n")
    assert target.read_text(encoding="utf-8").startswith("# Post-mortem: ESC-0002")
    assert MARKER not in target.read_text(encoding="utf-8")
    code, out, _ = run("postmortem", "status", "ESC-0002", "final", who="sam")
    assert (code, out.strip()) == (0, "Post-mortem of ESC-0002 is final.")
    assert run.json("postmortem", "owed") == []


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["action", "ESC-0002", "--title", "T", "--owner", "ana", "--due", "soon"], 2, "--due"),
        (["done", "ESC-0002", "first"], 2, "NUMBER"),
        (["status", "ESC-0002", "published"], 2, "status"),
        (["show", "ESC-0001"], 1, "no post-mortem"),
        (["show", "ESC-0002", "--format", "pdf"], 2, "format"),
        (["open", "ESC-0404"], 1, "no case"),
    ],
)
def test_cli_errors(run: Run, argv: list[str], code: int, needle: str) -> None:
    run("postmortem", "open", "ESC-0002", who="sam")
    got, _, err = run("postmortem", *argv, who="sam")
    assert got == code
    assert needle in err

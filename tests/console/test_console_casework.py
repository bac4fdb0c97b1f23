"""Casework at the console, from the keyboard: an emergency data request from the page to a
verified disclosure, a CSEA case from the page to its filed CyberTipline report, the
refusals on the way, and the legal clock in the queue turning amber, then red.

Cases are opened as `vigil page` opens them (the case service); everything after that is
keys. The casework pane's text and the audit chain are what the tests look at.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select
from textual.widgets import Input

from app.console import build_app
from app.console.desk import read_casework
from app.console.screens.casework import CaseworkLoaded, ChoiceDialog, FormDialog
from app.console.screens.dialogs import Confirm, ConfirmWithY
from app.console.screens.queue import QueueScreen
from app.core.clock import FakeClock
from app.rules.tipline import check_draft
from app.services.cases import CaseService
from app.services.casework.agency import AgencyService
from app.services.casework.ncmec import ReportRejected
from app.services.casework.service import CaseworkService
from app.services.casework.tipline import TiplineService
from data import audit
from data.casework import Disclosure
from data.db import Database
from data.models import AuditRecord, Case
from tests.console.test_queue_table import cell_style, theme_color
from tests.console_harness import Console, FakeDesktop, OpenConsole, console_opener, snapshot_keys
from tests.factories import CaseworkDesk, add_policy, add_responder
from tests.ncmec_standin import StandIn
from widgets.casework_pane import CaseworkPane

SIZE = (160, 48)


@pytest.fixture
def desk(db: Database, clock: FakeClock) -> CaseworkDesk:
    """ana and ben (specialists), sue (supervisor), and a partner directory."""
    add_responder(db, "ana")
    add_responder(db, "ben")
    add_responder(db, "sue", "supervisor")
    add_policy(db, "standard", [(600, ["user:ben"])], route=["default"])
    service = CaseworkDesk(db, clock)
    service.add_partner(
        "sue",
        name="metro-pd",
        kind="law_enforcement",
        agency="Metro Police Department",
        verified_channel="dispatch +1 555 0100 from the state police directory",
    )
    service.add_partner("sue", name="legal", kind="legal", agency="Legal team")
    return service


@pytest.fixture
def open_console(db: Database, clock: FakeClock, tmp_path: Path) -> OpenConsole:
    return console_opener(db, clock, tmp_path)


def _page(
    desk: CaseworkService, title: str, category: str, severity: int = 1, **kwargs: Any
) -> str:
    """What `vigil page` does: open a case through the case service."""
    return (
        CaseService(desk.db, desk.clock)
        .open_case("sue", title=title, category=category, severity=severity, **kwargs)
        .ref
    )


def _pane(console: Console) -> str:
    return console.screen.detail.query_one(CaseworkPane).text


def _audit(db: Database, ref: str) -> list[tuple[str, str, dict[str, Any]]]:
    with db.read() as session:
        records = session.exec(
            select(AuditRecord).where(AuditRecord.case_ref == ref).order_by(col(AuditRecord.seq))
        ).all()
        assert audit.verify(session).ok
    return [(r.action, r.actor, dict(r.detail)) for r in records]


async def _fill(console: Console, *values: str) -> None:
    """Type each value into the form's next line (Enter moves on; the last Enter saves)."""
    assert isinstance(console.app.screen, FormDialog)
    for value in values:
        if value:
            await console.type(value)
        await console.press("enter")


async def _verify_all(console: Console) -> None:
    """V, Enter on the step it offers (the next missing one), the facts, Enter."""
    steps = [
        ("Metro PD dispatch, Sgt. Lee", "+1 555 0100", "state police directory", ""),
        ("Metro Police Department", "Sgt. Lee", "4471"),
        ("death", "Caller threatens to kill a named person tonight"),
        ("Independent callback matched; the threat is specific",),
    ]
    for facts in steps:
        await console.press("V")
        assert isinstance(console.app.screen, ChoiceDialog)
        await console.press("enter")
        await _fill(console, *facts)
        assert isinstance(console.app.screen, QueueScreen)


# --- an emergency data request ----------------------------------------------------


async def test_edr_from_page_to_verified_disclosure_from_the_keyboard(
    desk: CaseworkService, open_console: Callable[..., Any]
) -> None:
    ref = _page(desk, "EDR: Metro Police, welfare concern", "edr", sensitive=True)
    async with open_console("ana") as console:
        text = _pane(console)
        assert "Verification  required · 0 of 4 · missing identity, agency" in text
        assert "Disclosures (0)" in text

        await _verify_all(console)
        console.said(f"{ref}: Requester identity confirmed through an independent channel")
        console.said("verification is complete")
        text = _pane(console)
        assert "required · 4 of 4 · complete" in text
        assert "contacted: Metro PD dispatch, Sgt. Lee" in text
        assert "directory: state police directory" in text
        assert "caller: ana" in text  # who called: the person recording it
        # The stated emergency may describe the person at risk: hidden until revealed.
        assert "statement: [sensitive: hidden until revealed]" in text
        assert "threatens to kill" not in text

        await console.press("v")
        assert "statement: Caller threatens to kill a named person tonight" in _pane(console)

        await console.press("D")
        form = console.app.screen
        assert isinstance(form, FormDialog)
        assert "waits for a supervisor's approval" in form.note
        await _fill(console, "subscriber, ip_logs", "metro-pd", "", "")  # basis: us-emergency
        console.said(f"Disclosure 1 of {ref} requested; it waits for a supervisor's approval")
        assert "#1 awaiting approval  subscriber, ip_logs (1 account) → metro-pd" in _pane(console)
        # A specialist is never offered the decision: D opens a new request.
        await console.press("D")
        assert isinstance(console.app.screen, FormDialog)
        await console.press("escape")

    async with open_console("sue") as console:
        await console.press("D")
        choice = console.app.screen
        assert isinstance(choice, ChoiceDialog)
        await console.press("enter")  # the first request's approval is offered first
        confirm = console.app.screen
        assert isinstance(confirm, Confirm)
        assert "subscriber, ip_logs to metro-pd under us-emergency" in confirm.question
        await console.press("enter")
        console.said(f"Disclosure 1 of {ref} approved and made")
        text = _pane(console)
        assert "#1 disclosed  subscriber, ip_logs (1 account) → metro-pd" in text
        assert "basis us-emergency: 18 U.S.C. 2702(b)(8) and (c)(4): emergency" in text
        assert "requested by ana 20:00 · approved by sue 20:00" in text

    actions = _audit(desk.db, ref)
    assert [(a, who) for a, who, _ in actions if a != "case.open"] == [
        ("verification.record", "ana"),
        ("verification.record", "ana"),
        ("verification.record", "ana"),
        ("verification.record", "ana"),
        ("case.reveal", "ana"),
        ("disclosure.request", "ana"),
        ("disclosure.approve", "sue"),
    ]
    steps = [detail["step"] for a, _, detail in actions if a == "verification.record"]
    assert steps == ["identity", "agency", "emergency", "good_faith"]
    request = next(detail for a, _, detail in actions if a == "disclosure.request")
    assert (request["status"], request["to"], request["basis"]) == (
        "requested",
        "metro-pd",
        "us-emergency",
    )


async def test_a_read_from_before_the_reveal_does_not_hide_the_revealed_casework_again(
    desk: CaseworkService, open_console: Callable[..., Any]
) -> None:
    """The change feed may read the casework hidden just before a reveal lands and deliver
    it after the reveal's own read: the pane keeps showing what was revealed."""
    _page(desk, "EDR: Metro Police, welfare concern", "edr", sensitive=True)
    async with open_console("ana") as console:
        await _verify_all(console)
        await console.press("v")
        revealed = "statement: Caller threatens to kill a named person tonight"
        assert revealed in _pane(console)

        screen = console.screen
        case_id = screen.detail_case
        assert case_id is not None
        screen._post_casework(case_id, revealed=False)  # as a feed read started before it
        await console.settle()
        assert revealed in _pane(console)
        assert console.screen._casework is not None
        assert console.screen._casework[0].revealed


async def test_a_casework_read_begun_before_a_change_does_not_paint_over_it(
    desk: CaseworkService, open_console: Callable[..., Any]
) -> None:
    """Reads of the casework run in several threads (the pane's own, the change feed's)
    and may answer out of order: one begun before a change, answering after the read that
    saw the change, is dropped rather than painting the old facts back."""
    ref = _page(desk, "EDR: Metro Police, welfare concern", "edr")
    async with open_console("ana") as console:
        screen = console.screen
        case_id = screen.detail_case
        assert case_id is not None
        begun_before = screen.casework_reads.begin()
        stale = read_casework(desk.db, desk.clock, case_id, revealed=False)
        assert stale is not None

        desk.add_action("ana", ref, "Call the school", owner="ana", due_at=None)
        screen.casework_changed(case_id)  # as a screen above the queue tells it
        await console.settle()
        after = _pane(console)
        assert "Call the school" in after

        screen.post_message(CaseworkLoaded(case_id, *stale, begun_before))
        await console.settle()
        assert _pane(console) == after


async def test_a_specialists_disclosure_before_verification_is_refused(
    desk: CaseworkService, open_console: Callable[..., Any]
) -> None:
    ref = _page(desk, "EDR: unverified caller", "edr")
    async with open_console("ana") as console:
        await console.press("D")
        form = console.app.screen
        assert isinstance(form, FormDialog)
        assert form.warning
        assert "only a supervisor may record a disclosure before it is complete" in form.note
        await _fill(console, "subscriber", "metro-pd", "", "")
        toast = console.said("verification of")
        assert toast.title == "Not allowed"
        assert "is incomplete (missing identity, agency, emergency, good_faith)" in toast.message
        # What was typed comes back for the next try.
        await console.press("D")
        assert console.app.screen.query_one("#field-data", Input).value == "subscriber"
        await console.press("escape")
    with desk.db.read() as session:
        assert session.exec(select(Disclosure)).all() == []
    assert "disclosure.request" not in [a for a, _, _ in _audit(desk.db, ref)]


async def test_verifying_someone_elses_case_is_refused_before_the_form(
    desk: CaseworkService, open_console: Callable[..., Any]
) -> None:
    ref = _page(desk, "EDR: Ben's caller", "edr")
    CaseService(desk.db, desk.clock).acknowledge("ben", ref)
    async with open_console("ana") as console:
        await console.press("V")
        assert isinstance(console.app.screen, QueueScreen)  # nothing to type in vain
        toast = console.said(f"{ref} is assigned to ben")
        assert toast.title == "Not allowed"
        assert "only its assignee or a supervisor may verify a request on it" in toast.message
    async with open_console("sue") as console:
        await console.press("V")
        assert isinstance(console.app.screen, ChoiceDialog)


async def test_a_supervisors_override_of_verification_needs_a_reason(
    desk: CaseworkService, open_console: Callable[..., Any]
) -> None:
    ref = _page(desk, "EDR: no time to verify", "edr", severity=2)  # sev1 takes two people
    async with open_console("sue") as console:
        await console.press("D")
        form = console.app.screen
        assert isinstance(form, FormDialog)
        assert "say why it cannot wait" in form.note
        await _fill(console, "location", "metro-pd", "", "", "")
        assert console.app.screen is form  # still open: the reason is required
        error = str(form.query_one("#form-error").render())
        assert "Why it cannot wait: required" in error
        await console.type("Officer on scene, hostage situation in progress")
        await console.press("ctrl+s")
        console.said(f"Disclosure 1 of {ref} made: location to metro-pd under us-emergency")
        console.said("(verification overridden)")
        text = _pane(console)
        assert "#1 disclosed  location (1 account)" in text
        assert "verification overridden: Officer on scene, hostage situation in progress" in text
    request = next(d for a, _, d in _audit(desk.db, ref) if a == "disclosure.request")
    assert request["status"] == "disclosed"
    assert request["override_reason"] == "Officer on scene, hostage situation in progress"


async def test_a_specialist_is_offered_no_approval_and_no_waiver(
    desk: CaseworkService, open_console: Callable[..., Any]
) -> None:
    ref = _page(desk, "CSEA report", "csea")
    async with open_console("ana") as console:
        await console.press("F")  # one thing to do: file the report, straight to its form
        form = console.app.screen
        assert isinstance(form, FormDialog)
        assert [f.name for f in form.fields] == ["report_id", "filed_at"]
        await console.press("escape")
    async with open_console("sue") as console:
        await console.press("F")  # a supervisor may also waive either clock
        choice = console.app.screen
        assert isinstance(choice, ChoiceDialog)
        assert [c.key for c in choice.choices] == [
            "file:tipline",
            "waive:tipline",
            "waive:preserve_reported",
        ]
        await console.press("down", "enter")
        await console.type("duplicate of an already reported upload")
        await console.press("enter")
        console.said(f"{ref}: CyberTipline report to NCMEC (18 U.S.C. 2258A): waived")


# --- a CSEA case --------------------------------------------------------------------


async def test_csea_from_page_to_filed_report_from_the_keyboard(
    desk: CaseworkService, open_console: Callable[..., Any], clock: FakeClock
) -> None:
    ref = _page(desk, "CSEA: re-upload of actioned material", "csea", details="hash match")
    async with open_console("ana") as console:
        text = _pane(console)
        assert "CyberTipline report to NCMEC (18 U.S.C. 2258A)" in text
        assert "1d00h left  due Fri 27 Nov 20:00  reminder Fri 27 Nov 16:00" in text
        assert "starts when its report is filed" in text

        clock.advance(hours=2)
        await console.press("F")
        await _fill(console, "CT-2210", "30m")
        console.said(
            f"{ref}: CyberTipline report to NCMEC (18 U.S.C. 2258A): filed as report CT-2210"
        )
        text = _pane(console)
        assert "filed 21:30 by ana  report CT-2210" in text
        assert "expires Fri 26 Nov 2027 21:30" in text  # one year from the report
        assert "reminder Wed 27 Oct 2027 21:30" in text

        await console.press("K")  # containment: the first open step is offered
        choice = console.app.screen
        assert isinstance(choice, ChoiceDialog)
        await console.press("down", "down", "enter")  # evidence preserved
        await _fill(console, "", "")
        assert "Hash reference: required" in str(
            console.app.screen.query_one("#form-error").render()
        )
        await _fill(console, "sha256:9f86d0", "")  # the field in error has the focus
        console.said(f"{ref}: containment step done: Evidence preserved (hash reference)")
        assert "☑ Evidence preserved (hash reference)  ana 22:00  ref sha256:9f86d0" in _pane(
            console
        )

        await console.press("I")
        await _fill(console, "Tell the hash-sharing partner", "", "", "1h")
        console.said(f"added to {ref} for ana, due 23:00")
        assert "Tell the hash-sharing partner  ana · due 23:00" in _pane(console)
        assert "OVERDUE" not in _pane(console)

    actions = _audit(desk.db, ref)
    filed = next(d for a, who, d in actions if a == "clock.file" and who == "ana")
    assert (filed["clock"], filed["report_id"]) == ("tipline", "CT-2210")
    assert filed["filed_at"] == (clock.now() - timedelta(minutes=30)).isoformat()
    contained = next(d for a, who, d in actions if a == "containment.done" and who == "ana")
    assert (contained["step"], contained["reference"]) == ("evidence_preserved", "sha256:9f86d0")
    assert [a for a, _, _ in actions][-1] == "action.add"


async def test_resolving_with_a_report_owed_asks_naming_it_and_the_case_stays_queued(
    desk: CaseworkService, open_console: Callable[..., Any], clock: FakeClock
) -> None:
    """`r` on a CSEA case whose CyberTipline report is not filed asks first, naming the
    report and its deadline; Enter does not answer it (only y does). Once resolved, the case
    keeps its row and its clock in the default queue until the report is filed."""
    ref = _page(desk, "CSEA report", "csea")
    desk.acknowledge("ana", ref)
    clock.advance(hours=3)
    async with open_console("ana") as console:
        await console.press("r")
        await console.type("hash removed, account closed")
        await console.press("enter")
        dialog = console.app.screen
        assert isinstance(dialog, ConfirmWithY)
        assert dialog.title_text == f"Resolve {ref}: a report is still owed"
        assert "CyberTipline report to NCMEC (18 U.S.C. 2258A), due in 21h" in dialog.question
        await console.press("enter")  # an Enter meant for the note does not say yes
        assert console.app.screen is dialog
        await console.press("n")
        console.said(f"{ref} not resolved: its report is still owed.")
        assert _status(desk, ref) == "acknowledged"

        await console.press("r")  # the note typed before is offered again
        assert console.app.screen.query_one(Input).value == "hash removed, account closed"
        await console.press("enter", "y")
        console.said(f"{ref} resolved with a note; it stays in the queue until its report")
        assert _status(desk, ref) == "resolved"
        assert console.refs() == [ref]
        row = console.screen.table.cursor_row
        assert row is not None
        assert (row.status, row.clock_kind) == ("resolved", "deadline")
        assert "⚖21h" in console.screen.table.render_line(1).text

        await console.press("F")
        await _fill(console, "CT-4410", "")
        await console.poll()
        assert console.refs() == []  # filed: the case leaves the open queue


def _status(desk: CaseworkService, ref: str) -> str:
    with desk.db.read() as session:
        return session.exec(select(Case.status).where(Case.ref == ref)).one()


async def test_legal_clock_in_the_queue_turns_amber_then_red(
    desk: CaseworkService, open_console: Callable[..., Any], clock: FakeClock
) -> None:
    _page(desk, "CSEA report", "csea")
    async with open_console("ana") as console:
        table = console.screen.table

        def legal() -> Any:
            return cell_style(table.render_line(1), "⚖")

        calm = legal()
        assert calm.text.rstrip().endswith(" ⚖24h")
        assert "CSEA report" in calm.text  # no colour of its own: painted as the row is
        clock.advance(hours=21)  # inside the 4 h reminder window
        console.screen.tick()
        # On the cursor's row the cell is a badge in its own colour.
        assert legal().text.strip() == "⚖3h"
        assert legal().style.bgcolor == theme_color(console.app, "sla-warn")
        clock.advance(hours=4)
        console.screen.tick()
        assert legal().text.strip() == "⚖-60m"
        assert legal().style.bgcolor == theme_color(console.app, "sla-breach")
        assert "OVERDUE by 1:00:00" in _pane(console)


async def test_an_overdue_action_item_is_flagged_in_the_queue_and_closed_with_a_key(
    desk: CaseworkService, open_console: Callable[..., Any], clock: FakeClock
) -> None:
    ref = _page(desk, "Threat to life", "threat_to_life")
    desk.add_action(
        "ana", ref, "Call the school", owner="ana", due_at=clock.now() + timedelta(hours=1)
    )
    async with open_console("ana") as console:
        table = console.screen.table
        clock.advance(hours=2)
        console.screen.tick()
        flag = cell_style(table.render_line(1), "!")
        assert flag.text.strip() == "!"
        assert flag.style.bgcolor == theme_color(console.app, "sla-warn")  # the cursor row: a badge
        assert "Call the school  ana · due 21:00  OVERDUE" in _pane(console)

        await console.press("I")
        choice = console.app.screen
        assert isinstance(choice, ChoiceDialog)
        await console.press("down", "enter")  # Done: #1 Call the school
        console.said(f"Action item 1 of {ref} done")
        row = table.cursor_row
        assert row is not None
        assert row.action_due_at is None  # nothing open: the flag is gone
        assert "#1 ☑ Call the school  ana · done 22:00 by ana" in _pane(console)


async def test_a_disclosure_awaiting_approval_is_flagged_and_its_requester_told_the_decision(
    desk: CaseworkDesk, open_console: Callable[..., Any]
) -> None:
    ref = _page(desk, "EDR: waits for a supervisor", "edr", severity=2)
    second = _page(desk, "EDR: declined later", "edr", severity=2)
    async with open_console("ana") as console:
        table = console.screen.table
        await _verify_all(console)
        await console.press("down")
        await _verify_all(console)
        for case in (ref, second):
            desk.request_disclosure("ana", case, data="subscriber", to="metro-pd",
                                    basis="us-emergency")  # fmt: skip
        await console.poll()
        for line in (1, 2):
            flag = cell_style(table.render_line(line), "?")
            assert flag.text.strip() == "?"
        assert "#1 awaiting approval" in _pane(console)

        desk.approve_disclosure("sue", ref, 1)
        await console.poll()
        toast = console.said(f"Disclosure 1 of {ref} you requested was approved and made by sue")
        assert toast.title == "Disclosure approved"
        desk.decline_disclosure("sue", second, 1, "not an emergency")
        await console.poll()
        toast = console.said(f"Disclosure 1 of {second} you requested was declined")
        assert (toast.title, toast.severity) == ("Disclosure declined", "warning")
        await console.poll()  # told once
        assert len([t for t in console.toasts if t.title.startswith("Disclosure ")]) == 2
        assert all(row.awaiting_approval == 0 for row in map(table.row_at, (0, 1)) if row)


async def test_casework_keys_wait_for_the_casework_and_say_so(
    desk: CaseworkService, open_console: Callable[..., Any]
) -> None:
    async with open_console("ana") as console:
        await console.press("V")
        assert console.said("No case is selected.").severity == "warning"
    _page(desk, "Other", "other")
    async with open_console("ana") as console:
        await console.press("F")
        toast = console.said("has no legal clocks (other)")
        assert toast.title == "Nothing to do"
        # The palette offers the same actions under their names.
        await console.press("ctrl+p")
        await console.type("Contain: Mark a containment")
        await console.press("enter")
        assert isinstance(console.app.screen, ChoiceDialog)


# --- snapshots of the casework pane -------------------------------------------------

SNAP_START = datetime(2026, 11, 26, 8, 10, tzinfo=UTC)
SnapCompare = Callable[..., bool]


@pytest.fixture
def snap_desk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Database, FakeClock]]:
    """An emergency data request mid-way: verified (the good-faith step after a supervisor's
    override), one disclosure made and one awaiting approval, evidence preserved, an
    action item overdue; beside it a CSEA case inside its reminder window and a
    preservation hold. The database is a relative path, so the header reads the same on
    every machine."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    db = Database.open("sqlite:///vigil.db")
    clock = FakeClock(SNAP_START - timedelta(hours=21))
    add_responder(db, "ana")
    add_responder(db, "sue", "supervisor")
    add_responder(db, "max", "supervisor")
    add_policy(db, "emergency", [(300, ["user:ana"])], route=["default"])
    desk = CaseworkDesk(db, clock)
    desk.add_partner(
        "sue",
        name="metro-pd",
        kind="law_enforcement",
        agency="Metro Police Department",
        verified_channel="dispatch +1 555 0100 from the state police directory",
    )
    desk.add_partner("sue", name="legal", kind="legal", agency="Trust & Safety Legal")
    csea = _page(desk, "CSEA: re-upload of previously actioned material", "csea")
    desk.acknowledge("ana", csea)
    clock.set(SNAP_START - timedelta(hours=2))
    held = _page(desk, "Preservation request: Riverbend County Sheriff", "preservation")
    desk.acknowledge("ana", held)
    clock.set(SNAP_START)
    edr = _page(
        desk,
        "EDR: Metro Police, welfare concern after threatening messages",
        "edr",
        sensitive=True,
        details="Officer on the phone; needs subscriber info and last login.",
    )
    desk.record_verification(
        "ana",
        edr,
        "identity",
        {"contacted": "Metro PD dispatch", "via": "+1 555 0100", "directory": "state police"},
    )
    desk.record_verification("ana", edr, "agency", {"agency": "Metro PD", "officer": "Sgt. Lee"})
    desk.record_verification(
        "ana", edr, "emergency", {"danger": "death", "statement": "Threat to a named person"}
    )
    clock.advance(minutes=3)
    desk.request_disclosure(
        "sue",
        edr,
        data="location",
        to="metro-pd",
        basis="us-emergency",
        override_reason="Officer on scene; the person is in danger now",
    )
    desk.approve_disclosure("max", edr, 1)  # sev1: a second supervisor makes it
    clock.advance(minutes=2)
    desk.record_verification("ana", edr, "good_faith", {"determination": "Callback matched"})
    desk.request_disclosure(
        "ana", edr, data="subscriber, ip_logs", to="metro-pd", basis="us-emergency"
    )
    desk.mark_contained("ana", edr, "evidence_preserved", reference="sha256:9f86d081884c")
    desk.add_action(
        "ana",
        edr,
        "Call Sgt. Lee back on the dispatch line",
        owner="ana",
        due_at=clock.now() + timedelta(minutes=5),
    )
    desk.add_action(
        "ana",
        edr,
        "Review the disclosure log",
        partner="legal",
        due_at=clock.now() + timedelta(hours=2),
    )
    clock.set(SNAP_START + timedelta(minutes=15))
    yield db, clock
    db.dispose()


def _snap_app(snap_desk: tuple[Database, FakeClock]) -> Any:
    db, clock = snap_desk
    app = build_app(
        db,
        clock,
        "ana",
        engine=False,
        desktop=FakeDesktop(),
        settings_file=Path("no-settings.toml"),
        cursor_blink=False,
    )
    assert app is not None
    return app


def test_casework_pane_wide(
    snap_compare: SnapCompare, snap_desk: tuple[Database, FakeClock]
) -> None:
    """The EDR case (first in the queue, its overdue action item flagged `!`): the
    checklist with who recorded each step and when (its free text hidden until revealed),
    the disclosure a supervisor made on an override, the one awaiting approval; the
    queue's Legal column shows the CSEA clock amber and the preservation hold."""
    assert snap_compare(_snap_app(snap_desk), terminal_size=SIZE, run_before=snapshot_keys())


def test_casework_pane_narrow(
    snap_compare: SnapCompare, snap_desk: tuple[Database, FakeClock]
) -> None:
    """The CSEA case at 80x24, its casework scrolled into view below the queue: the
    CyberTipline clock amber in its reminder window, the hold waiting for the report."""
    assert snap_compare(
        _snap_app(snap_desk),
        terminal_size=(80, 24),
        run_before=snapshot_keys("down", "enter", "pagedown"),
    )


async def test_the_pane_shows_request_flags_and_the_cybertipline_filing(
    desk: CaseworkService, open_console: Callable[..., Any]
) -> None:
    """The fraud flags of a request, and a filing NCMEC refused with NCMEC's own words."""
    edr = _page(desk, "EDR: mail from a look-alike domain", "edr")
    directory = AgencyService(desk.db, desk.clock)
    directory.add_channel("sue", "metro-pd", domain="metro-pd.example.gov", source="state list")
    directory.record_origin(
        "ana", edr, sender_email="lee@metro-pd-example.com", cited_law="2702(b)(8)"
    )
    async with open_console("ana") as console:
        text = _pane(console)
        assert "Request flags (1)" in text
        assert "unlisted_domain: metro-pd-example.com is not an agency domain" in text

    csea = _page(desk, "CSEA report", "csea")
    with StandIn() as ncmec:
        tipline = TiplineService(desk.db, desk.clock)
        tipline.setup_account(
            "sue",
            username=ncmec.username,
            password=ncmec.password,
            reporter_first_name="Sue",
            reporter_last_name="Park",
            reporter_email="t@desk.example",
            url=ncmec.url,
        )
        ncmec.reject_submit = "incidentDateTime: must not be in the future"
        draft = check_draft(incident_type="csam", incident_at=desk.clock.now(), screen_name="x")
        with pytest.raises(ReportRejected):
            tipline.file_report("ana", csea, draft)
    async with open_console("ana") as console:
        await console.press("down")
        text = _pane(console)
        assert "CyberTipline" in text
        assert "rejected; NCMEC said (4100): Validation failed: incidentDateTime" in text

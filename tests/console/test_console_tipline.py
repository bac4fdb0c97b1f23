"""A CSEA case's CyberTipline report and evidence files at the console, from the keyboard:
`N` asks the incident's facts, shows the report as NCMEC would receive it and files it once
confirmed; `E` lists the evidence files and records a view (audited) before saying where a
file is, never what is in it. NCMEC is the local stand-in (tests/ncmec_standin.py); the
casework pane's text, the toasts and the audit chain are what the tests look at.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select
from textual.command import CommandPalette
from textual.widgets import DataTable, Static

from app.console import VigilApp, build_app
from app.console.screens.casework import FormDialog
from app.console.screens.dialogs import Confirm
from app.console.screens.evidence import EvidenceScreen
from app.console.screens.queue import QueueScreen
from app.console.screens.tipline import TiplineReview
from app.core.clock import FakeClock
from app.services.cases import CaseService
from app.services.casework.tipline import TiplineService
from data import audit
from data.db import Database
from data.models import AuditRecord
from tests.console_harness import Console, FakeDesktop, OpenConsole, console_opener, snapshot_keys
from tests.factories import add_policy, add_responder
from tests.ncmec_standin import StandIn
from widgets.casework_pane import CaseworkPane

CONTENT = b"evidence bytes the console must never print"


@pytest.fixture
def ncmec() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


@pytest.fixture
def tipline(db: Database, clock: FakeClock) -> TiplineService:
    """ana (a specialist) and sue (a supervisor); no NCMEC account yet."""
    add_responder(db, "ana")
    add_responder(db, "sue", "supervisor")
    add_policy(db, "standard", [(600, ["user:ana"])], route=["default"])
    return TiplineService(db, clock)


def _account(tipline: TiplineService, ncmec: StandIn) -> None:
    tipline.setup_account(
        "sue",
        username=ncmec.username,
        password=ncmec.password,
        reporter_first_name="Sue",
        reporter_last_name="Park",
        reporter_email="tipline@desk.example",
        url=ncmec.url,
    )


def _page(tipline: TiplineService, title: str, category: str = "csea") -> str:
    case = CaseService(tipline.db, tipline.clock).open_case(
        "sue", title=title, category=category, severity=2
    )
    return case.ref


@pytest.fixture
def open_console(db: Database, clock: FakeClock, tmp_path: Path) -> OpenConsole:
    return console_opener(db, clock, tmp_path)


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The filer's pauses between tries, recorded instead of slept."""
    pauses: list[float] = []
    monkeypatch.setattr(TiplineService, "sleep", staticmethod(pauses.append))
    return pauses


def _pane(console: Console) -> str:
    return console.screen.detail.query_one(CaseworkPane).text


def _actions(db: Database, ref: str) -> list[str]:
    with db.read() as session:
        assert audit.verify(session).ok
        return list(
            session.exec(
                select(AuditRecord.action)
                .where(AuditRecord.case_ref == ref)
                .order_by(col(AuditRecord.seq))
            ).all()
        )


async def _facts(console: Console, *values: str) -> None:
    """N, then the incident's facts line by line (the last Enter saves)."""
    await console.press("N")
    assert isinstance(console.app.screen, FormDialog)
    for value in values:
        if value:
            await console.type(value)
        await console.press("enter")


async def _file(console: Console) -> None:
    """On the review: f, then yes."""
    assert isinstance(console.app.screen, TiplineReview)
    await console.press("f")
    assert isinstance(console.app.screen, Confirm)
    await console.press("enter")


async def test_n_reviews_the_report_then_files_it_with_ncmec(
    tipline: TiplineService,
    ncmec: StandIn,
    open_console: Callable[..., Any],
    tmp_path: Path,
) -> None:
    ref = _page(tipline, "CSEA: hash match on an upload")
    _account(tipline, ncmec)
    upload = tmp_path / "upload.jpg"
    upload.write_bytes(CONTENT)
    tipline.add_evidence("ana", ref, str(upload), classification="A1")
    async with open_console("ana") as console:
        await _facts(console, "csam", "", "shadow_trader", "", "", "")
        review = console.app.screen
        assert isinstance(review, TiplineReview)
        # The documents `review` renders, as they would be sent.
        assert review.text == tipline.review(
            "ana", ref, tipline.draft(ref, incident_type="csam", screen_name="shadow_trader")
        )
        shown = str(review.query_one("#tipline-text", Static).render())
        assert "<report>\n  <incidentSummary>\n    <incidentType>" in shown  # one per line
        assert "<screenName>shadow_trader</screenName>" in shown
        assert "<originalFileName>upload.jpg</originalFileName>" in shown
        assert ncmec.submitted() == []  # nothing is sent before the yes

        await _file(console)
        assert isinstance(console.app.screen, QueueScreen)
        (report_id,) = ncmec.reports
        console.said(f"{ref}: CyberTipline report filed with NCMEC as report {report_id}")
        assert f"finished, NCMEC report {report_id}" in _pane(console)

        await console.press("N")  # filed once: never again
        assert console.said(f"{ref} is filed").title == "Nothing to do"
        assert isinstance(console.app.screen, QueueScreen)
    assert len(ncmec.submitted()) == 1
    assert "tipline.finish" in _actions(tipline.db, ref)


async def test_a_filing_that_ends_under_the_palette_closes_the_review_after_it(
    tipline: TiplineService, ncmec: StandIn, open_console: Callable[..., Any]
) -> None:
    ref = _page(tipline, "CSEA: filed while reading the help")
    _account(tipline, ncmec)
    ncmec.stall = "finish"
    async with open_console("ana") as console:
        await _facts(console, "csam", "", "shadow_trader", "", "", "")
        review = console.app.screen
        assert isinstance(review, TiplineReview)
        await console.press("f")
        await console.pilot.press("enter")  # yes; the filing waits on NCMEC's finish
        assert await asyncio.to_thread(ncmec.stalled.wait, 10)
        await console.pilot.press("ctrl+p")
        await console.pilot.pause()
        palette = console.app.screen
        assert isinstance(palette, CommandPalette)
        ncmec.release.set()
        await console.settle()
        assert console.app.screen is palette  # the palette stays until closed
        assert console.toasts == []
        await console.press("escape")
        assert isinstance(console.app.screen, QueueScreen)  # and the review goes after it
        console.said(f"{ref}: CyberTipline report filed with NCMEC")
        assert "finished, NCMEC report" in _pane(console)


async def test_ncmec_down_is_tried_once_then_the_pane_shows_the_engines_next_try(
    tipline: TiplineService,
    ncmec: StandIn,
    open_console: Callable[..., Any],
    slept: list[float],
) -> None:
    ref = _page(tipline, "CSEA: report while NCMEC is down")
    _account(tipline, ncmec)
    ncmec.down_requests = 1_000
    async with open_console("ana") as console:
        await _facts(console, "enticement", "", "", "u-8841", "", "")
        await _file(console)
        toast = console.said("NCMEC could not be reached")
        assert toast.severity == "error"
        assert "is not filed and its CyberTipline clock keeps running" in toast.message
        assert "every running escalation engine tries again" in toast.message
        assert isinstance(console.app.screen, QueueScreen)
        assert slept == []  # one try: the person is never held while NCMEC is down
        text = _pane(console)
        assert "waiting, 1 failed tr" in text
        assert "next try 20:01" in text  # the engines' next try

        # NCMEC is back: N files the facts the filing stored, straight to the review.
        ncmec.down_requests = 0
        await console.press("N")
        assert isinstance(console.app.screen, TiplineReview)
        assert "<espIdentifier>u-8841</espIdentifier>" in console.app.screen.text
        await _file(console)
        console.said(f"{ref}: CyberTipline report filed with NCMEC")
        assert "next try" not in _pane(console)


async def test_a_report_ncmec_refuses_shows_its_words_and_keeps_the_facts(
    tipline: TiplineService, ncmec: StandIn, open_console: Callable[..., Any]
) -> None:
    ref = _page(tipline, "CSEA: refused report")
    _account(tipline, ncmec)
    ncmec.reject_submit = "incidentDateTime: must not be in the future"
    async with open_console("ana") as console:
        await _facts(console, "csam", "", "shadow_trader", "", "", "")
        await _file(console)
        toast = console.said("NCMEC refused the report (4100)")
        assert toast.title == "Refused"
        assert "rejected; NCMEC said (4100): Validation failed: incidentDateTime" in _pane(console)
        await console.press("N")  # the facts again, as typed, with NCMEC's words
        form = console.app.screen
        assert isinstance(form, FormDialog)
        assert form.warning
        assert "NCMEC refused the last report" in form.note
        assert form.query_one("#field-screen_name").value == "shadow_trader"  # type: ignore[attr-defined]
    assert "tipline.rejected" in _actions(tipline.db, ref)


async def test_n_refuses_plainly_what_cannot_be_filed(
    tipline: TiplineService, ncmec: StandIn, open_console: Callable[..., Any]
) -> None:
    other = _page(tipline, "Spam wave", "other")
    async with open_console("ana") as console:
        await console.press("N")
        toast = console.said("only CSEA cases are reported to NCMEC")
        assert (toast.title, toast.severity) == ("Not a CSEA case", "warning")
        assert other in toast.message
        await console.press("E")
        assert len([t for t in console.toasts if t.title == "Not a CSEA case"]) == 2
        assert isinstance(console.app.screen, QueueScreen)

    ref = _page(tipline, "CSEA: no account yet")
    async with open_console("ana") as console:
        await console.press("down")
        await _facts(console, "csam", "", "x", "", "", "")
        toast = console.said("the desk has no NCMEC account yet")
        assert toast.title == "Not found"
        assert isinstance(console.app.screen, QueueScreen)

        _account(tipline, ncmec)
        # The facts typed come back; a time the service cannot read is named.
        await _facts(console, "", "yesterday", "", "", "", "")
        toast = console.said("Check the input")
        assert "incident_at" in toast.message
        assert "yesterday" in toast.message
        await console.press("N")
        form = console.app.screen
        assert isinstance(form, FormDialog)
        values = {f.name: f.value for f in form.fields}
        assert (values["incident_type"], values["incident_at"], values["screen_name"]) == (
            "csam",
            "yesterday",
            "x",
        )
        await console.press("escape")
        assert isinstance(console.app.screen, QueueScreen)
    assert ncmec.submitted() == []
    assert not any(a.startswith("tipline.") for a in _actions(tipline.db, ref))


async def test_e_lists_the_evidence_and_a_view_is_audited_and_never_shows_the_file(
    tipline: TiplineService, open_console: Callable[..., Any], tmp_path: Path
) -> None:
    ref = _page(tipline, "CSEA: two uploads")
    first, second = tmp_path / "first.jpg", tmp_path / "second.png"
    first.write_bytes(CONTENT)
    second.write_bytes(CONTENT + b"!")
    one = tipline.add_evidence("ana", ref, str(first), classification="A1")
    tipline.add_evidence("ana", ref, str(second), classification="B2", name="chat.png")
    async with open_console("ana") as console:
        await console.press("E")
        screen = console.app.screen
        assert isinstance(screen, EvidenceScreen)
        table = screen.query_one("#evidence", DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert rows[0] == [
            "1",
            "first.jpg",
            one.sha256,
            f"{len(CONTENT)} bytes",
            "A1",
            "not viewed",
        ]
        assert rows[1][1:2] + rows[1][4:] == ["chat.png", "B2", "not viewed"]

        await console.press("enter")
        confirm = console.app.screen
        assert isinstance(confirm, Confirm)
        assert "recorded in the audit chain" in confirm.question
        await console.press("escape")  # no: nothing recorded, nothing said
        assert "evidence.reveal" not in _actions(tipline.db, ref)
        assert str(screen.query_one("#evidence-where", Static).render()) == ""

        await console.press("enter", "enter")
        where = str(screen.query_one("#evidence-where", Static).render())
        assert f"Evidence file 1 is at:\n{first.resolve()}" in where
        assert table.get_row_at(0)[-1] == "viewed"
        assert table.get_row_at(1)[-1] == "not viewed"
        shown = "\n".join(str(w.render()) for w in screen.query(Static))
        assert CONTENT.decode() not in shown
        await console.press("escape")
        assert isinstance(console.app.screen, QueueScreen)
    assert _actions(tipline.db, ref).count("evidence.reveal") == 1
    assert [f.viewed_by_esp for f in tipline.evidence("ana", ref)] == [True, False]


# --- snapshots -----------------------------------------------------------------------------

SNAP_NOW = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)
SnapCompare = Callable[..., bool]


@pytest.fixture
def snap_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[VigilApp]:
    """ana's console on a CSEA case with two evidence files, the first viewed; NCMEC's
    account set up. The database is a relative path, so the header reads the same
    everywhere."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    db = Database.open("sqlite:///vigil.db")
    clock = FakeClock(SNAP_NOW)
    add_responder(db, "ana")
    add_responder(db, "sue", "supervisor")
    add_policy(db, "standard", [(600, ["user:ana"])], route=["default"])
    tipline = TiplineService(db, clock)
    tipline.setup_account(
        "sue",
        username="desk",
        password="s3cret-issued",
        reporter_first_name="Sue",
        reporter_last_name="Park",
        reporter_email="tipline@desk.example",
        url="https://exttest.cybertip.org/ispws",
    )
    ref = _page(tipline, "CSEA: hash match on an upload")
    (tmp_path / "upload.jpg").write_bytes(CONTENT)
    (tmp_path / "chat.png").write_bytes(CONTENT + b"!")
    first = tipline.add_evidence("ana", ref, "upload.jpg", classification="A1")
    tipline.add_evidence("ana", ref, "chat.png", classification="B2")
    tipline.reveal_evidence("ana", ref, first.id)
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
    yield app
    db.dispose()


def test_evidence_files_wide(snap_compare: SnapCompare, snap_app: VigilApp) -> None:
    """The evidence files over the queue at 160x48: each file's name, SHA-256, size and
    class; the first viewed, the second not."""
    assert snap_compare(snap_app, terminal_size=(160, 48), run_before=snapshot_keys("E"))


def test_report_review_wide(snap_compare: SnapCompare, snap_app: VigilApp) -> None:
    """The report as NCMEC would receive it, one element a line, before it is filed."""
    keys = ("N", "c s a m enter enter", "s h a d o w underscore t r a d e r", "ctrl+s")
    assert snap_compare(snap_app, terminal_size=(160, 48), run_before=snapshot_keys(*keys))

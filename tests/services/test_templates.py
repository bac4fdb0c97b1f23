"""Response templates: the shipped ones, a team's own folder, clear errors for broken files,
filling from a case without its sensitive details, and logging the edited text as a note."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from app.core.clock import FakeClock
from app.core.errors import BadInput, NotFound
from app.services.cases import CaseService
from app.services.shiftwork.templates import (
    CASE_PLACEHOLDERS,
    WITHHELD,
    fill,
    fill_for_case,
    get_template,
    load_templates,
    override_dir,
    parse_settings,
    parse_template,
)
from data.db import Database
from data.models import AuditRecord, CaseNote, Responder
from tests.cli_harness import Run
from tests.factories import add_policy, add_responder

MARKER = "MARKER-SECRET-5521"
SHIPPED = {"disclosure_decision", "emergency_ack", "internal_update", "more_info"}


@pytest.fixture(autouse=True)
def team_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test has its own config home, so no developer's templates leak in."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config" / "vigil" / "templates"


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.md"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def desk(db: Database, clock: FakeClock) -> CaseService:
    add_responder(db, "ana")  # Australia/Sydney
    add_responder(db, "sam", "supervisor")
    add_policy(db, "emergency", [(300, ["user:ana"])], route=["default"])
    cases = CaseService(db, clock)
    cases.open_case("ana", title="EDR: Metro PD", category="edr", severity=1, details="Plain.")
    cases.open_case("ana", title="CSEA report", category="csea", severity=2, details=MARKER)
    clock.advance(minutes=4)
    cases.acknowledge("ana", "ESC-0001")
    return cases


def test_the_shipped_templates_load_and_use_known_placeholders() -> None:
    templates = load_templates()
    assert set(templates) == SHIPPED
    for template in templates.values():
        assert template.shipped
        assert set(template.placeholders()) <= set(CASE_PLACEHOLDERS) | set(template.fields)
    assert templates["emergency_ack"].audience == "law_enforcement"
    assert templates["internal_update"].audience == "internal"
    assert templates["emergency_ack"].suits("edr")
    assert not templates["emergency_ack"].suits("doxxing")
    assert templates["internal_update"].suits("doxxing")  # no categories: suits all
    # Letters to law enforcement never carry the case's details.
    for template in templates.values():
        if template.audience == "law_enforcement":
            assert "details" not in template.placeholders()


def test_override_folder_replaces_and_adds(team_folder: Path) -> None:
    assert override_dir() == team_folder
    write(team_folder, "emergency_ack", '+++\ntitle = "Ours"\n+++\nGot it: {ref}.\n')
    write(team_folder, "thanks", '+++\ntitle = "Thanks"\naudience = "internal"\n+++\nTa.\n')
    templates = load_templates()
    assert set(templates) == SHIPPED | {"thanks"}
    assert (templates["emergency_ack"].title, templates["emergency_ack"].shipped) == (
        "Ours",
        False,
    )


def test_fill_from_a_case(desk: CaseService, clock: FakeClock) -> None:
    template = get_template(load_templates(), "emergency_ack")
    with desk.db.read() as session:
        ana = session.exec(select(Responder).where(Responder.handle == "ana")).one()
        filled = fill_for_case(
            session, template, "esc-0001", ana, clock.now(), {"officer": "Sgt Rivera"}
        )
    assert filled.ref == "ESC-0001"
    assert filled.unfilled == ("request_reference", "agency")
    lines = filled.text.splitlines()
    assert (
        lines[0] == "Subject: Your emergency request [request_reference] (our reference ESC-0001)"
    )
    assert lines[2] == "Dear Sgt Rivera,"
    assert "We received the emergency disclosure request from [agency] and" in filled.text
    # Signed by the writer, dated on the writer's clock (26 Nov 09:04Z is 20:04 AEDT).
    assert lines[-3:] == ["Ana", "Trust & Safety escalation desk", "2026-11-26"]


def test_case_placeholders_on_the_writers_clock(desk: CaseService, clock: FakeClock) -> None:
    template = parse_template(
        "t",
        "+++\ntitle = 'T'\n+++\n{ref} {severity} ({severity_label}) {category_label} "
        "{status}/{stage} {assignee} {opened_at} | {acknowledged_at} {{literal}} {today}",
        "t.md",
    )
    with desk.db.read() as session:
        ana = session.exec(select(Responder).where(Responder.handle == "ana")).one()
        text = fill_for_case(session, template, "ESC-0001", ana, clock.now()).text
        second = fill_for_case(session, template, "ESC-0002", ana, clock.now()).text
    assert text == (
        "ESC-0001 sev1 (imminent risk to life) Emergency data request acknowledged/triage ana "
        "Thu 26 Nov 2026 20:00 AEDT | Thu 26 Nov 2026 20:04 AEDT {literal} 2026-11-26"
    )
    assert "CSEA report triggered/triage unassigned" in second
    assert "| not yet" in second


def test_details_are_withheld_for_a_sensitive_case(desk: CaseService, clock: FakeClock) -> None:
    templates = load_templates()
    with desk.db.read() as session:
        ana = session.exec(select(Responder).where(Responder.handle == "ana")).one()
        update = templates["internal_update"]
        sensitive = fill_for_case(session, update, "ESC-0002", ana, clock.now())
        plain = fill_for_case(session, update, "ESC-0001", ana, clock.now())
        every = [
            fill_for_case(session, template, "ESC-0002", ana, clock.now()).text
            for template in templates.values()
        ]
    assert WITHHELD in sensitive.text
    assert "Details:\nPlain.\n" in plain.text
    assert all(MARKER not in text for text in [sensitive.text, *every])


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("no front matter\n", "bad.md", "+++"),
        ("+++\ntitle = 'T'\n", "bad.md", "not closed"),
        ("+++\ntitle = \n+++\n", "bad.md", "front matter"),
        ("+++\ntitle = 'T'\ncolour = 'red'\n+++\n", "bad.md: colour", "unknown key"),
        ("+++\naudience = 'internal'\n+++\n", "bad.md: title", "non-empty"),
        ("+++\ntitle = 'T'\naudience = 'press'\n+++\n", "bad.md: audience", "press"),
        ("+++\ntitle = 'T'\nfields = 'agency'\n+++\n", "bad.md: fields", "list"),
        ("+++\ntitle = 'T'\nfields = ['Agency!']\n+++\n", "bad.md: fields", "not a name"),
        ("+++\ntitle = 'T'\nfields = ['ref']\n+++\n", "bad.md: fields", "from the case"),
        ("+++\ntitle = 'T'\ncategories = ['spam']\n+++\n", "bad.md: categories", "spam"),
        ("+++\ntitle = 'T'\n+++\nHello\n{agency}\n", "bad.md: line 5", "{agency}"),
        ("+++\ntitle = 'T'\n+++\n\n\nA { lone brace\n", "bad.md: line 6", "lone '{'"),
        ("+++\ntitle = 'T'\n+++\nx}\n", "bad.md: line 4", "lone '}'"),
        ("+++\ntitle = 'T'\n+++\n{Not A Name}\n", "bad.md: line 4", "not a name"),
    ],
)
def test_a_broken_template_is_a_clear_error(text: str, where: str, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_template("bad", text, "bad.md")
    assert caught.value.field == where
    assert message in caught.value.message


def test_a_broken_file_in_theteam_folder_is_named(team_folder: Path) -> None:
    path = write(team_folder, "ours", "+++\ntitle = 'T'\n+++\nDear {officer},\n")
    with pytest.raises(BadInput) as caught:
        load_templates()
    assert caught.value.field == f"{path}: line 4"
    assert "unknown placeholder {officer}" in caught.value.message
    path.unlink()
    write(team_folder, "Bad Name", "+++\ntitle = 'T'\n+++\n")
    with pytest.raises(BadInput, match="file name"):
        load_templates()


def test_settings_must_be_fields_of_the_template() -> None:
    template = parse_template(
        "t", "+++\ntitle = 'T'\nfields = ['agency']\n+++\n{agency}: {ref}", "t.md"
    )
    assert fill(template, {"ref": "ESC-0001"}, {"agency": "Metro PD"}).text == "Metro PD: ESC-0001"
    with pytest.raises(BadInput) as caught:
        fill(template, {"ref": "ESC-0001"}, {"officer": "x"})
    assert caught.value.field == "--set officer"
    assert parse_settings(["a=b=c", "empty="]) == {"a": "b=c", "empty": ""}
    with pytest.raises(BadInput, match="KEY=VALUE"):
        parse_settings(["novalue"])


def test_unknown_template_is_not_found() -> None:
    with pytest.raises(NotFound, match="emergency_ack"):
        get_template(load_templates(), "nope")


# --- the command line -------------------------------------------------------------


@pytest.fixture
def run(desk: CaseService, sqlite_url: str, clock: FakeClock) -> Run:
    return Run(sqlite_url, clock)


def test_cli_list_show_and_fill(run: Run) -> None:
    body = run.json("template", "list")
    assert isinstance(body, list)
    assert {t["name"] for t in body} == SHIPPED
    shown = run.json("template", "show", "more_info")
    assert isinstance(shown, dict)
    assert shown["fields"] == ["officer", "agency", "request_reference", "missing_information"]
    code, out, err = run("template", "fill", "more_info", "ESC-0001", "--set", "officer=Det. Chen")
    assert code == 0
    assert "Dear Det. Chen," in out
    assert "To fill in: request_reference, agency, missing_information" in err


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["template", "fill", "nope", "ESC-0001"], 1, "no response template"),
        (["template", "fill", "more_info", "ESC-0099"], 1, "no case"),
        (["template", "fill", "more_info", "ESC-0001", "--set", "x"], 2, "--set"),
        (["template", "fill", "more_info", "ESC-0001", "--set", "x=1"], 2, "--set x"),
        (["template", "fill", "more_info", "ESC-0001", "--edit"], 2, "EDITOR"),
    ],
)
def test_cli_fill_errors(
    run: Run, monkeypatch: pytest.MonkeyPatch, argv: list[str], code: int, needle: str
) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.delenv("EDITOR", raising=False)
    got, _, err = run(*argv)
    assert got == code
    assert needle in err


def test_cli_fill_edit_and_log_as_a_note(
    run: Run, desk: CaseService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import sys, pathlib\n"
        "p = pathlib.Path(sys.argv[1])\n"
        "p.write_text(p.read_text().replace('[agency]', 'Metro PD'))\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    monkeypatch.delenv("VISUAL", raising=False)
    code, out, _ = run("template", "fill", "emergency_ack", "ESC-0001", "--edit", "--log", "--json")
    assert code == 0
    body = json.loads(out)
    assert body["logged"] is True
    assert "from Metro PD and are treating it as urgent" in body["text"]
    with desk.db.read() as session:
        (note,) = session.exec(select(CaseNote)).all()
        assert note.body == body["text"].strip()
        assert session.exec(select(AuditRecord.action)).all()[-1] == "case.note"


def test_cli_a_failing_editor_logs_nothing(
    run: Run, desk: CaseService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VISUAL", f"{sys.executable} -c 'raise SystemExit(3)'")
    code, _, err = run("template", "fill", "emergency_ack", "ESC-0001", "--edit", "--log")
    assert code == 1
    assert "exited with 3" in err
    with desk.db.read() as session:
        assert session.exec(select(CaseNote)).all() == []


def test_cli_log_as_is(run: Run, desk: CaseService) -> None:
    code, out, _ = run("template", "fill", "internal_update", "ESC-0002", "--log")
    assert (code, out.strip()) == (0, "Logged the response on ESC-0002 as a note.")
    with desk.db.read() as session:
        (note,) = session.exec(select(CaseNote)).all()
    assert WITHHELD in note.body
    assert MARKER not in note.body

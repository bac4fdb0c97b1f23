"""Privacy: what leaves Vigil, and who can read what it keeps.

Sensitive details (a sensitive case's details and its verification free text) carry marker
strings; every way out of Vigil is searched for them: outbound webhook bodies, desktop
notifications, handovers, post-mortem exports, team and calendar exports, the disclosure
report, the audit log, case JSON. Secrets (webhook signing keys, tokens in webhook URLs,
database passwords) are searched for in logs, error messages and the team export. Files
Vigil creates are checked to be readable by their owner only.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

import app.cli.main as cli
from app.core.clock import FakeClock
from app.delivery.local import claim_my_pages
from app.delivery.webhook import process_webhook_outbox
from app.engine.runner import EscalationEngine
from app.services.cases import CaseService
from data import schema
from data.db import Database, make_engine
from data.escalation import DeliveryAttempt
from data.models import Delivery, Responder
from tests.factories import (
    REPO,
    SENSITIVE_DETAILS,
    FullDesk,
    WebhookReceiver,
    add_policy,
    add_responder,
    add_webhook,
    build_full_desk,
)

T = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
TITLE = "TITLE-MARKER-9d2e of a sensitive case"
STATEMENT = "STATEMENT-MARKER-77ab: the person at risk lives at 1 Example Street"
SECRETS = ("s3cr3t-ana-0123456789", "eli-secret-0123456789")
"""The webhook signing keys of tests/fixtures/team/good.toml."""


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> FullDesk:
    """The full desk, plus a sensitive emergency data request with verification free text,
    its post-mortem, and every sensitive case resolved and revealed once."""
    folder = tmp_path_factory.mktemp("privacy")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "build_parser", functools.cache(cli.build_parser))
        patch.setattr(schema, "head_revision", functools.cache(schema.head_revision))
        desk = build_full_desk(f"sqlite:///{folder / 'vigil.db'}", FakeClock(T), folder)
        out = desk.ok(
            "cara", "page", "--title", TITLE, "--category", "edr", "--severity", "1",
            "--sensitive", "--details", SENSITIVE_DETAILS, "--json",
        )  # fmt: skip
        ref = json.loads(out)["ref"]
        desk.refs["sensitive_edr"] = ref
        desk.ok("ben", "ack", ref)
        desk.ok("ben", "verify", ref, "emergency", "--danger", "death", "--statement", STATEMENT)
        for key in ("sensitive", "sensitive_edr"):
            assert SENSITIVE_DETAILS in desk.ok("ben", "show", desk.refs[key], "--reveal")
            desk.ok("ben", "resolve", desk.refs[key], "--note", "handled")
            desk.ok("cara", "postmortem", "open", desk.refs[key], "--summary", "What happened")
        assert STATEMENT in desk.ok("ben", "casework", "show", ref, "--reveal")
    return desk


def _leaks(text: str) -> list[str]:
    return [marker for marker in (SENSITIVE_DETAILS, STATEMENT, *SECRETS) if marker in text]


EXPORTS = [
    ["team", "export"],
    ["calendar", "export", "--days", "60"],
    ["handover"],
    ["handover", "--format", "json", "--since", "2026-11-25T00:00:00Z"],
    ["handover", "show", "1"],
    ["handover", "list"],
    ["postmortem", "show", "{sensitive}"],
    ["postmortem", "show", "{sensitive_edr}", "--format", "json"],
    ["report", "disclosures", "--year", "2026"],
    ["report", "disclosures", "--year", "2026", "--format", "csv"],
    ["report", "disclosures", "--year", "2026", "--json"],
    ["audit", "log"],
    ["audit", "log", "--json"],
    ["cases", "--all", "--json"],
    ["show", "{sensitive}", "--json"],
    ["show", "{sensitive_edr}"],
    ["casework", "show", "{sensitive_edr}", "--json"],
    ["template", "fill", "internal_update", "{sensitive}"],
    ["stats", "--json"],
    ["action", "list", "--all"],
    ["disclosure", "pending"],
]


@pytest.mark.parametrize("argv", EXPORTS, ids=[" ".join(a) for a in EXPORTS])
def test_no_export_carries_sensitive_details_or_secrets(
    desk: FullDesk, argv: list[str], tmp_path: Path
) -> None:
    code, out, err = desk.copy(tmp_path).run("cara", *(a.format(**desk.refs) for a in argv))
    assert code == 0, err
    assert out.strip()
    assert not _leaks(out + err)


def test_the_post_mortem_written_to_a_file_carries_no_sensitive_details(
    desk: FullDesk, tmp_path: Path
) -> None:
    target = tmp_path / "pm.md"
    copy = desk.copy(tmp_path / "desk")
    copy.ok("cara", "postmortem", "show", desk.refs["sensitive"], "--out", str(target))
    assert not _leaks(target.read_text())


def test_webhook_bodies_and_desktop_lines_never_name_a_sensitive_case(tmp_path: Path) -> None:
    """The receiver and the desktop get the reference and a generic line: not the title,
    not the details; an ordinary case is named by its title."""
    db = Database.open(f"sqlite:///{tmp_path / 'vigil.db'}")
    receiver = WebhookReceiver()
    receiver.up()
    try:
        add_responder(db, "ana", contacts=("desktop",))
        # A receiver on this machine over plain http: allowed explicitly.
        url = receiver.url("hook?token=t0ken-in-url")
        add_webhook(db, "ana", url, "signing-key", allow_insecure=True, allow_private=True)
        add_policy(db, "to ana", [(300, ["user:ana"])], route=["default"])
        clock = FakeClock(T)
        service = CaseService(db, clock)
        for sensitive in (True, False):
            service.open_case(
                "ana",
                title=TITLE if sensitive else "An ordinary case",
                category="edr",
                severity=1,
                details=SENSITIVE_DETAILS,
                sensitive=sensitive,
            )
        EscalationEngine(db, clock).run_due()
        assert process_webhook_outbox(db, clock).sent == 1  # one per contact
        assert process_webhook_outbox(db, clock).sent == 1
        bodies = [body.decode() for body in receiver.bodies()]
        with db.read() as session:
            ana = session.exec(select(Responder).where(Responder.handle == "ana")).one()
        assert ana.id is not None
        lines = [alert.summary for alert in claim_my_pages(db, clock, ana.id)]
    finally:
        receiver.down()
        db.dispose()
    assert len(bodies) == 2
    assert len(lines) == 2
    for text in (*bodies, *lines):
        assert "TITLE-MARKER" not in text
        assert "DETAILS-MARKER" not in text
    assert any("An ordinary case" in body for body in bodies)
    assert any("An ordinary case" in line for line in lines)


# --- secrets ----------------------------------------------------------------------------


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record of every library, down to DEBUG."""
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.mark.parametrize("answer", ["refused", 500, 404])
def test_webhook_secrets_stay_out_of_logs_errors_and_the_console(
    answer: str | int, tmp_path: Path, all_logs: pytest.LogCaptureFixture
) -> None:
    """A failing receiver (down, erring, or gone) is reported by handle and host only:
    never the signing key, the URL's path or its token, in a log or a stored error."""
    db = Database.open(f"sqlite:///{tmp_path / 'vigil.db'}")
    receiver = WebhookReceiver(answer if isinstance(answer, int) else 200)
    if answer != "refused":
        receiver.up()
    try:
        add_responder(db, "ana", contacts=())
        url = receiver.url("services/T0K3N-PATH?token=t0ken-in-url")
        add_webhook(db, "ana", url, "signing-key-s3cret", allow_insecure=True, allow_private=True)
        add_policy(db, "to ana", [(300, ["user:ana"])], route=["default"])
        clock = FakeClock(T)
        CaseService(db, clock).open_case("ana", title="T", category="edr", severity=1)
        EscalationEngine(db, clock).run_due()
        for _ in range(3):
            process_webhook_outbox(db, clock)
            clock.advance(timedelta(hours=9))
        with db.read() as session:
            stored = [d.last_error or "" for d in session.exec(select(Delivery)).all()]
            stored += [a.detail for a in session.exec(select(DeliveryAttempt)).all()]
        out, err = _show(db, tmp_path, "ESC-0001")
    finally:
        receiver.down()
        db.dispose()
    logged = "\n".join(
        f"{record.getMessage()} {record.exc_text or ''}" for record in all_logs.records
    )
    assert f"127.0.0.1:{receiver.port}" in logged  # the host is named
    assert any(stored), "the failure is recorded on the delivery"
    for text in (logged, *stored, out, err):
        for secret in ("signing-key-s3cret", "t0ken-in-url", "T0K3N-PATH"):
            assert secret not in text


def _show(db: Database, folder: Path, ref: str) -> tuple[str, str]:
    url = str(db.engine.url.render_as_string(hide_password=False))
    desk = FullDesk(url, FakeClock(T))
    _, out, err = desk.run("ana", "show", ref)
    return out, err


def test_the_team_export_has_no_signing_keys(desk: FullDesk, tmp_path: Path) -> None:
    exported = desk.copy(tmp_path).ok("cara", "team", "export")
    assert "https://chat.example/...#kept:" in exported  # the contact is there...
    assert "hook/ana" not in exported  # ...not the path or query a token may be in...
    assert not [secret for secret in SECRETS if secret in exported]  # ...nor its key


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://vigil:pa55-not-shown@127.0.0.1:{closed}/vigil",
        "postgresql://vigil:pa55-not-shown@127.0.0.1:notaport/vigil",
        "postgresql//vigil:pa55-not-shown@127.0.0.1/vigil",
        "postgresql://vigil:pa55-not-shown@host.invalid/vigil",
    ],
    ids=["unreachable", "bad-port", "malformed", "unknown-host"],
)
def test_database_passwords_never_show_in_messages(url: str) -> None:
    code, out, err = FullDesk(url.format(closed=_closed_port()), FakeClock(T)).run("ana", "cases")
    assert code in (1, 2)
    assert err.startswith("vigil: ")
    assert "pa55-not-shown" not in out + err


def test_the_engine_process_says_plainly_it_cannot_reach_its_database() -> None:
    """`python -m app.engine.runner` against a database that does not answer: one sentence on
    stderr (no traceback, no password) and a refusal's exit code."""
    url = f"postgresql://vigil:pa55-not-shown@127.0.0.1:{_closed_port()}/vigil"
    engine = subprocess.run(
        [sys.executable, "-m", "app.engine.runner", "--db", url, "--once"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert engine.returncode == 1
    assert "cannot open the database: connection failed" in engine.stderr
    assert "Traceback" not in engine.stderr
    assert "pa55-not-shown" not in engine.stdout + engine.stderr


def _closed_port() -> int:
    """A local TCP port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- files --------------------------------------------------------------------------------


def _modes(folder: Path) -> dict[str, int]:
    return {path.name: stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir()}


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A person whose umask lets everyone read new files (022, the common default)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_the_default_database_is_readable_by_its_owner_only(
    open_umask: None, tmp_path: Path
) -> None:
    """No --db: the folder under XDG_DATA_HOME is 0700, the database and its -wal and -shm
    files (which hold the outbox and every case until a checkpoint) are 0600."""
    # A new desk has no responders yet, so `cases` is refused, but the file is made first.
    assert cli.main(["--as", "ana", "cases"], clock=FakeClock(T)) == 1
    folder = tmp_path / "xdg" / "vigil"
    db = Database(make_engine(None))  # the same default file, kept open: -wal and -shm exist
    try:
        add_responder(db, "ana")
        modes = _modes(folder)
    finally:
        db.dispose()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert set(modes) >= {"vigil.db", "vigil.db-wal", "vigil.db-shm"}
    assert all(mode == 0o600 for mode in modes.values()), {k: oct(v) for k, v in modes.items()}


def test_a_database_left_readable_by_others_is_closed_on_open(
    open_umask: None, tmp_path: Path
) -> None:
    """A file (and its -wal and -shm) created or copied world-readable before Vigil opened
    it becomes owner-only when Vigil opens it."""
    path = tmp_path / "copied.db"
    Database.open(f"sqlite:///{path}").dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").touch()
        os.chmod(f"{path}{suffix}", 0o644)
    db = Database.open(f"sqlite:///{path}")
    try:
        add_responder(db, "ana")
        modes = _modes(tmp_path)
    finally:
        db.dispose()
    assert modes == {name: 0o600 for name in modes}, {k: oct(v) for k, v in modes.items()}


# --- sensitive titles in documents that leave the console -------------------------------

DOCUMENTS = [
    ["handover", "--since", "2026-11-25T00:00:00Z"],
    ["handover", "--format", "json", "--since", "2026-11-25T00:00:00Z"],
    ["postmortem", "show", "{sensitive_edr}"],
    ["postmortem", "show", "{sensitive_edr}", "--format", "json"],
    ["template", "fill", "internal_update", "{sensitive_edr}"],
    ["postmortem", "owed"],
    ["postmortem", "owed", "--json"],
]


@pytest.mark.parametrize("argv", DOCUMENTS, ids=[" ".join(a) for a in DOCUMENTS])
def test_a_sensitive_title_leaves_only_when_asked_for_and_is_audited(
    desk: FullDesk, argv: list[str], tmp_path: Path
) -> None:
    # An hour on, so the handover's window holds the cases opened at T.
    copy = dataclasses.replace(desk.copy(tmp_path), clock=FakeClock(T + timedelta(hours=1)))
    ref = desk.refs["sensitive_edr"]
    words = [a.format(**desk.refs) for a in argv]
    out = copy.ok("cara", *words)
    assert TITLE not in out
    assert ref in out
    assert "[sensitive edr case, sev1: title withheld]" in out
    before = len(json.loads(copy.ok("cara", "audit", "log", "--json")))
    assert TITLE in copy.ok("cara", *words, "--sensitive-titles")
    added = json.loads(copy.ok("cara", "audit", "log", "--json"))[before:]
    revealed = [(r["actor"], r["action"], r["case"]) for r in added]
    assert ("cara", "case.reveal_title", ref) in revealed
    assert all(action == "case.reveal_title" for _, action, _ in revealed)


AUDIT_LOGS = [["audit", "log"], ["audit", "log", "--json"], ["audit", "log", "--case", "{ref}"]]


@pytest.mark.parametrize("argv", AUDIT_LOGS, ids=[" ".join(a) for a in AUDIT_LOGS])
def test_the_audit_log_names_a_sensitive_case_by_reference_only(
    desk: FullDesk, argv: list[str], tmp_path: Path
) -> None:
    """Its records hold no title (a case's opening records its category, severity and
    source), so there is nothing to withhold and no `--sensitive-titles` to ask for."""
    ref = desk.refs["sensitive_edr"]
    out = desk.copy(tmp_path).ok("cara", *(a.format(ref=ref) for a in argv))
    assert ref in out
    assert TITLE not in out

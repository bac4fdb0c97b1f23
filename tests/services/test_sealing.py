"""Nothing sensitive in clear at rest: sealed columns, their keys, the migration that seals
what was stored in clear, and `vigil db rotate-key`, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import select

from app.core.clock import FakeClock
from app.services.cases import CaseService
from app.services.casework.service import CaseworkService
from app.services.casework.tipline import TiplineService
from app.services.links import link_keys, signing_link_key
from app.services.shiftwork.handover import HandoverService
from data import audit
from data.db import Database
from data.keys import Keyring, SealingKeyError, decode_key, encode_key, key_id, new_key
from data.models import AuditRecord, Case, CaseNote
from data.rotation import rotate_key
from data.schema import alembic_config, current_revision, every_table, head_revision, upgrade
from data.sealing import PREFIX, SealError, sealed_columns, sealing_key_id
from tests.cli_harness import Run
from tests.factories import add_responder, add_webhook, spawn_python

SENSITIVE = "Kestrel-7731 is held at 14 Quarry Lane"
HOOK_SECRET = "whsec_c2VhbGVkLWF0LXJlc3Qtc2VjcmV0LTk5"
HOOK_TOKEN = "t0ken-Zq81xVbWm"
HOOK_URL = f"https://chat.example/hook/ana?token={HOOK_TOKEN}"
NCMEC_PASSWORD = "ispws-Pw-8821-vault"
STATEMENT = "Caller says Wren-4410 will be moved tonight"
CLOCK_NOTE = "Counsel Odile-2290 confirmed the subject is an adult"
HANDOVER_NOTES = "Ring back Marten-6615 before the morning call"
TITLE = "Tipline report 5512"  # titles are not sealed: the grep's positive control
NEEDLES = (
    SENSITIVE,
    HOOK_SECRET,
    HOOK_TOKEN,
    NCMEC_PASSWORD,
    STATEMENT,
    CLOCK_NOTE,
    HANDOVER_NOTES,
)


def _desk(db: Database, clock: FakeClock) -> str:
    """A desk with a webhook secret and URL token, an NCMEC account's password, a sensitive
    case with a note, a verification statement and a waived clock's reason, and a handover
    whose notes name it."""
    add_responder(db, "ana")
    add_responder(db, "sam", "supervisor")
    add_webhook(db, "ana", HOOK_URL, HOOK_SECRET)
    cases = CaseService(db, clock)
    ref = cases.open_case("ana", title=TITLE, category="csea", severity=1, details=SENSITIVE).ref
    cases.open_case("ana", title="Routine", category="other", severity=4, details="routine")
    cases.add_note("ana", ref, f"Called back about {SENSITIVE}")
    TiplineService(db, clock).setup_account(
        "sam",
        username="desk-esp",
        password=NCMEC_PASSWORD,
        reporter_first_name="Sam",
        reporter_last_name="Lee",
        reporter_email="sam@desk.example",
    )
    casework = CaseworkService(db, clock)
    casework.record_verification(
        "ana", ref, "emergency", {"danger": "death", "statement": STATEMENT}
    )
    casework.waive_clock("sam", ref, clock="tipline", reason=CLOCK_NOTE)
    HandoverService(db, clock).submit("ana", HANDOVER_NOTES, since=clock.now() - timedelta(hours=8))
    return ref


def _stored(db: Database) -> dict[tuple[str, str, int], str]:
    """Every non-empty value of every sealed column, as the database holds it."""
    found = {}
    with db.engine.connect() as connection:
        for table_name, column_name in sealed_columns(every_table()):
            rows = connection.execute(
                # As text: before the migration that seals them, some are JSON.
                text(
                    f'SELECT id, CAST({column_name} AS TEXT) AS stored FROM "{table_name}" '
                    f"WHERE CAST({column_name} AS TEXT) <> ''"
                )
            ).all()
            found.update({(table_name, column_name, row[0]): row[1] for row in rows})
    return found


def _hits(blob: bytes) -> list[str]:
    return [needle for needle in NEEDLES if needle.encode() in blob]


@pytest.fixture(autouse=True)
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test here has a key file of its own: they remove, loosen and rotate it."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config" / "vigil" / "secret.key"


# --- at rest --------------------------------------------------------------------------------


def test_every_sealed_column_holds_only_sealed_values(any_db: Database, clock: FakeClock) -> None:
    _desk(any_db, clock)
    stored = _stored(any_db)
    assert {(t, c) for t, c, _ in stored} == {
        ("case", "details"),
        ("case_note", "body"),
        ("contact_method", "url"),
        ("contact_method", "secret"),
        ("tipline_account", "password"),
        ("verification_record", "facts"),
        ("clock_event", "note"),
        ("handover", "notes"),
        ("handover", "report"),
    }
    assert all(value.startswith(PREFIX) for value in stored.values()), stored


def test_a_copied_sqlite_file_and_its_wal_reveal_nothing(
    sqlite_db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    _desk(sqlite_db, clock)
    database = Path(str(sqlite_db.engine.url.database))
    copy = tmp_path / "copy"
    copy.mkdir()
    for suffix in ("", "-wal"):
        source = Path(f"{database}{suffix}")
        if source.exists():
            shutil.copy(source, copy / source.name)
    copied = b"".join(path.read_bytes() for path in copy.iterdir())
    assert TITLE.encode() in copied  # the grep sees what is stored in clear
    assert _hits(copied) == []
    with sqlite_db.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    checkpointed = database.read_bytes()
    assert TITLE.encode() in checkpointed
    assert _hits(checkpointed) == []


def test_a_pg_dump_reveals_nothing(pg_db: Database, clock: FakeClock) -> None:
    if shutil.which("pg_dump") is None:
        if os.environ.get("CI"):
            pytest.fail("pg_dump is missing in CI: .ci/run installs postgresql-client")
        pytest.skip("pg_dump is not installed (apt-get install postgresql-client)")
    _desk(pg_db, clock)
    url = make_url(str(pg_db.engine.url.render_as_string(hide_password=False)))
    schema = str(url.query["options"]).split("search_path=")[1]
    dumped = subprocess.run(
        [
            "pg_dump",
            "--host",
            url.host or "127.0.0.1",
            "--port",
            str(url.port or 5432),
            "--username",
            url.username or "postgres",
            "--schema",
            schema,
            str(url.database),
        ],
        env={**os.environ, "PGPASSWORD": url.password or ""},
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    assert TITLE.encode() in dumped
    assert _hits(dumped) == []


def test_reveal_still_shows_the_text_and_is_audited(any_db: Database, clock: FakeClock) -> None:
    ref = _desk(any_db, clock)
    assert CaseService(any_db, clock).reveal("sam", ref, reason="triage") == SENSITIVE
    with any_db.read() as session:
        reveals = session.exec(select(AuditRecord).where(AuditRecord.action == "case.reveal")).all()
    assert [(r.actor, r.case_ref) for r in reveals] == [("sam", ref)]


def test_sealed_values_open_through_the_orm(any_db: Database, clock: FakeClock) -> None:
    from data.casework import VerificationRecord
    from data.models import CaseNote, ContactMethod
    from data.shiftwork import Handover

    _desk(any_db, clock)
    with any_db.read() as session:
        hook = session.exec(select(ContactMethod).where(ContactMethod.kind == "webhook")).one()
        note = session.exec(select(CaseNote)).one()
        case = session.exec(select(Case).where(Case.ref == "ESC-0002")).one()
        assert (hook.url, hook.secret) == (HOOK_URL, HOOK_SECRET)
        assert note.body == f"Called back about {SENSITIVE}"
        assert case.details == "routine"
        facts = session.exec(select(VerificationRecord)).one().facts
        assert facts == {"danger": "death", "statement": STATEMENT}
        handover = session.exec(select(Handover)).one()
        assert handover.notes == handover.report["notes"] == HANDOVER_NOTES


def test_listing_cases_opens_no_details(sqlite_db: Database, clock: FakeClock) -> None:
    _desk(sqlite_db, clock)
    with sqlite_db.read() as session:
        cases = session.exec(select(Case)).all()
        assert all("details" not in case.__dict__ for case in cases)


def test_a_value_copied_to_another_row_does_not_open(any_db: Database, clock: FakeClock) -> None:
    ref = _desk(any_db, clock)
    with any_db.engine.begin() as connection:
        connection.execute(
            text(
                'UPDATE "case" SET details = (SELECT details FROM "case" WHERE ref = :ref) '
                "WHERE ref = 'ESC-0002'"
            ),
            {"ref": ref},
        )
    with pytest.raises(SealError, match=r"case\.details of row 2 .*copied from another row"):
        CaseService(any_db, clock).reveal("sam", "ESC-0002")
    assert CaseService(any_db, clock).reveal("sam", ref) == SENSITIVE


def test_an_altered_or_hand_written_value_does_not_open(
    sqlite_db: Database, clock: FakeClock
) -> None:
    ref = _desk(sqlite_db, clock)
    stored = _stored(sqlite_db)[("case", "details", 1)]
    flipped = stored[:-6] + ("A" if stored[-6] != "A" else "B") + stored[-5:]
    for value, reason in ((flipped, "altered"), ("typed in clear", "did not seal")):
        with sqlite_db.engine.begin() as connection:
            connection.execute(text('UPDATE "case" SET details = :v WHERE id = 1'), {"v": value})
        with pytest.raises(SealError, match=reason):
            CaseService(sqlite_db, clock).reveal("sam", ref)


# --- keys: wrong, missing, malformed, unsafe --------------------------------------------------


@pytest.fixture
def cli_desk(sqlite_url: str, clock: FakeClock) -> tuple[Run, str]:
    db = Database.open(sqlite_url)
    ref = _desk(db, clock)
    db.dispose()
    return Run(sqlite_url, clock), ref


def test_the_key_file_is_made_on_first_use(cli_desk: tuple[Run, str], key_file: Path) -> None:
    run, ref = cli_desk
    assert key_file.exists()
    assert SENSITIVE in run.ok("show", ref, "--reveal", who="sam")


def test_a_wrong_key_is_refused_naming_its_source(
    cli_desk: tuple[Run, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, ref = cli_desk
    other = new_key()
    monkeypatch.setenv("VIGIL_SECRET_KEY", encode_key(other))
    code, out, err = run("show", ref, "--reveal", who="sam")
    assert code == 1
    assert "wrong key" in err
    assert "VIGIL_SECRET_KEY" in err
    assert key_id(other) in err
    assert "Traceback" not in err
    assert SENSITIVE not in out
    # Listing reads no sealed text, so it needs no key.
    assert run("cases")[0] == 0


def test_a_missing_key_file_is_refused_naming_it(cli_desk: tuple[Run, str], key_file: Path) -> None:
    run, ref = cli_desk
    key_file.unlink()
    code, _out, err = run("show", ref, "--reveal", who="sam")
    assert code == 1
    assert "no key to open sealed data" in err
    assert str(key_file) in err
    assert "Traceback" not in err


def test_a_lost_key_file_is_not_replaced_by_a_new_key(
    cli_desk: tuple[Run, str], key_file: Path, sqlite_url: str
) -> None:
    """The next write that seals is refused, naming the file to restore: a second key
    would seal new values that the restored key file then could not open."""
    run, ref = cli_desk
    key_file.unlink()
    code, _out, err = run("note", ref, "a note to seal", who="sam")
    assert code == 1
    assert f"restore the key file {key_file}" in err
    assert "VIGIL_SECRET_KEY" in err
    assert "Traceback" not in err
    assert not key_file.exists()
    db = Database.open(sqlite_url)
    with db.read() as session:
        assert not session.exec(select(CaseNote).where(CaseNote.body == "a note to seal")).all()
    db.dispose()


def test_a_service_that_seals_without_the_key_file_makes_no_key(
    any_db: Database, clock: FakeClock, key_file: Path
) -> None:
    ref = _desk(any_db, clock)
    key_file.unlink()
    with pytest.raises(SealingKeyError, match="already holds values sealed"):
        CaseService(Database(any_db.engine), clock).add_note("ana", ref, "after the loss")
    assert not key_file.exists()


def test_an_upgrade_that_seals_without_the_key_file_makes_no_key(
    any_db: Database, clock: FakeClock, key_file: Path
) -> None:
    """The migration looks through its own connection (the tables it altered are locked
    against any other) and leaves the schema where it was."""
    _desk(any_db, clock)
    command.downgrade(alembic_config(any_db.engine, any_db.keyring), "0017")
    key_file.unlink()
    with pytest.raises(SealingKeyError, match="already holds values sealed"):
        upgrade(any_db.engine)
    assert not key_file.exists()
    assert current_revision(any_db.engine) == "0017"


def test_a_database_with_nothing_sealed_gets_a_new_key(
    any_db: Database, clock: FakeClock, key_file: Path
) -> None:
    add_responder(any_db, "ana")
    assert not key_file.exists()
    CaseService(any_db, clock).open_case(
        "ana", title="T", category="other", severity=4, details="first sealed text"
    )
    assert len(_keys_in(key_file)) == 1


def test_a_malformed_key_is_bad_input(
    cli_desk: tuple[Run, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, ref = cli_desk
    monkeypatch.setenv("VIGIL_SECRET_KEY", "not-a-key")
    code, _out, err = run("show", ref, "--reveal", who="sam")
    assert code == 2
    assert "VIGIL_SECRET_KEY: expected a key as the URL-safe base64 of 32 bytes" in err


def test_a_key_file_others_may_read_is_refused(cli_desk: tuple[Run, str], key_file: Path) -> None:
    run, ref = cli_desk
    key_file.chmod(0o644)
    code, _out, err = run("show", ref, "--reveal", who="sam")
    assert code == 1
    assert "may be read by others (mode 0644)" in err
    assert f"chmod 600 {key_file}" in err


# --- item 5: one OS account's desk ----------------------------------------------------------


def test_the_database_its_journal_and_the_key_are_the_accounts_alone(
    tmp_path: Path, clock: FakeClock, key_file: Path
) -> None:
    """Even under a umask that would let everyone read: the modes are set, not inherited."""
    before = os.umask(0)
    try:
        path = tmp_path / "desk" / "vigil.db"
        db = Database.open(f"sqlite:///{path}")
        _desk(db, clock)
        with db.read() as session:
            session.exec(select(Case)).all()
            files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
        db.dispose()
    finally:
        os.umask(before)
    assert modes == {"vigil.db": 0o600, "vigil.db-wal": 0o600, "vigil.db-shm": 0o600}
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700


# --- the migration --------------------------------------------------------------------------


def test_the_migration_seals_clear_values_and_can_run_twice(
    any_db: Database, clock: FakeClock
) -> None:
    _desk(any_db, clock)
    config = alembic_config(any_db.engine, any_db.keyring)
    command.downgrade(config, "0009")  # the desk as the Vigil before sealing stored it
    in_clear = _stored(any_db)
    assert in_clear[("case", "details", 1)] == SENSITIVE
    assert in_clear[("contact_method", "secret", 3)] == HOOK_SECRET

    command.upgrade(config, "head")
    sealed = _stored(any_db)
    assert sealed.keys() == in_clear.keys()
    assert all(v.startswith(PREFIX) for v in sealed.values())
    command.stamp(config, "0009")
    command.upgrade(config, "0011")  # the sealing migration again, over sealed values
    command.stamp(config, "head")
    assert _stored(any_db) == sealed  # the second run changed nothing
    assert current_revision(any_db.engine) == head_revision()
    assert CaseService(any_db, clock).reveal("sam", "ESC-0001") == SENSITIVE


# --- rotation -------------------------------------------------------------------------------


def _keys_in(path: Path) -> list[str]:
    return path.read_text().split()


def _rotations(db: Database) -> list[AuditRecord]:
    with db.read() as session:
        statement = select(AuditRecord).where(AuditRecord.action == "db.rotate_key")
        return list(session.exec(statement).all())


def test_rotate_key_seals_everything_with_a_new_key(
    cli_desk: tuple[Run, str], key_file: Path, sqlite_url: str
) -> None:
    run, ref = cli_desk
    (old,) = _keys_in(key_file)
    rotated = run.json("db", "rotate-key")
    (new,) = _keys_in(key_file)
    assert new != old
    assert rotated["key_id"] != rotated["retired"][0]
    # Two cases' details, a note, a URL and secret, a password, verification facts, a clock's
    # reason, a handover's notes and report.
    assert rotated["resealed"] == 10
    db = Database.open(sqlite_url)
    assert {sealing_key_id(v) for v in _stored(db).values()} == {rotated["key_id"]}
    db.dispose()
    assert SENSITIVE in run.ok("show", ref, "--reveal", who="sam")
    again = run.json("db", "rotate-key")
    assert again["retired"] == [rotated["key_id"]]
    assert again["resealed"] == 10


def test_a_rotation_is_audited_in_its_own_transaction(
    any_db: Database, clock: FakeClock, key_file: Path
) -> None:
    """Who rotated, when, from which key to which and how many values: never a key."""
    _desk(any_db, clock)
    (old,) = _keys_in(key_file)
    done = rotate_key(any_db, actor="sam", at=clock.now())
    (new,) = _keys_in(key_file)
    (record,) = _rotations(any_db)
    assert (record.actor, record.at, record.case_ref) == ("sam", clock.now(), None)
    assert record.detail == {
        "key_id": done.key_id,
        "retired": [key_id(decode_key(old, "old"))],
        "resealed": 10,
    }
    assert done.key_id == key_id(decode_key(new, "new"))
    assert old not in str(record.detail)
    assert new not in str(record.detail)
    with any_db.read() as session:
        assert audit.verify(session).ok


def test_rotate_key_records_the_command_s_actor(cli_desk: tuple[Run, str], sqlite_url: str) -> None:
    run, _ref = cli_desk
    rotated = run.json("db", "rotate-key", who="sam")
    db = Database.open(sqlite_url)
    (record,) = _rotations(db)
    db.dispose()
    assert record.actor == "sam"
    assert record.detail["key_id"] == rotated["key_id"]


def test_rotation_that_fails_halfway_leaves_nothing_half_written(
    any_db: Database, clock: FakeClock, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _desk(any_db, clock)
    before = _stored(any_db)
    (old,) = _keys_in(key_file)
    monkeypatch.setattr("data.sealing.BATCH_ROWS", 1)

    def fail_after_first(written: int) -> None:
        raise RuntimeError("the disk went away")

    with pytest.raises(RuntimeError):
        rotate_key(any_db, actor="sam", at=clock.now(), after_batch=fail_after_first)
    assert _stored(any_db) == before
    assert _rotations(any_db) == []  # the audit record went with the rest
    assert _keys_in(key_file)[1:] == [old]  # the new key waits first, the old still opens
    fresh = Database(any_db.engine)  # the key file as it is now is all it needs
    assert CaseService(fresh, clock).reveal("sam", ref) == SENSITIVE

    done = rotate_key(fresh, actor="sam", at=clock.now())
    assert len(_keys_in(key_file)) == 1
    assert {sealing_key_id(v) for v in _stored(fresh).values()} == {done.key_id}
    assert CaseService(fresh, clock).reveal("sam", ref) == SENSITIVE


KILL_HALFWAY = """
import os, signal, sys
from datetime import UTC, datetime
import data.sealing
from data.db import Database
from data.rotation import rotate_key

data.sealing.BATCH_ROWS = 1
rotate_key(
    Database.open(sys.argv[1]),
    actor="sam",
    at=datetime(2026, 12, 1, tzinfo=UTC),
    after_batch=lambda n: os.kill(os.getpid(), signal.SIGKILL),
)
"""


def test_a_rotation_killed_halfway_leaves_the_desk_readable(
    sqlite_url: str, clock: FakeClock, key_file: Path
) -> None:
    db = Database.open(sqlite_url)
    ref = _desk(db, clock)
    before = _stored(db)
    db.dispose()
    process = spawn_python("-c", KILL_HALFWAY, sqlite_url)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL, err
    db = Database.open(sqlite_url)
    assert _stored(db) == before
    assert len(_keys_in(key_file)) == 2
    assert _rotations(db) == []
    assert CaseService(db, clock).reveal("sam", ref) == SENSITIVE
    db.dispose()


def test_rotating_without_the_key_file_says_to_restore_it(
    cli_desk: tuple[Run, str], key_file: Path
) -> None:
    run, _ref = cli_desk
    key_file.unlink()
    code, _out, err = run("db", "rotate-key")
    assert code == 1
    assert "holds sealed values: restore it or set VIGIL_SECRET_KEY" in err
    assert str(key_file) in err
    assert not key_file.exists()


def test_rotation_with_keys_in_the_environment(
    cli_desk: tuple[Run, str], key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, ref = cli_desk
    (old,) = _keys_in(key_file)
    monkeypatch.setenv("VIGIL_SECRET_KEY", old)
    code, _out, err = run("db", "rotate-key")
    assert code == 1
    assert "VIGIL_SECRET_KEY holds one key" in err

    new = encode_key(new_key())
    monkeypatch.setenv("VIGIL_SECRET_KEY", f"{new},{old}")
    assert "set VIGIL_SECRET_KEY to the new key alone" in run.ok("db", "rotate-key")
    monkeypatch.setenv("VIGIL_SECRET_KEY", new)
    assert SENSITIVE in run.ok("show", ref, "--reveal", who="sam")
    monkeypatch.setenv("VIGIL_SECRET_KEY", old)
    code, _out, err = run("show", ref, "--reveal", who="sam")
    assert code == 1
    assert "wrong key" in err


def test_a_running_process_seals_with_the_rotated_key(
    any_db: Database, clock: FakeClock, key_file: Path
) -> None:
    """A console left open across a rotation reads the key file again when it changes."""
    ref = _desk(any_db, clock)
    other = Database(any_db.engine)  # another process, its keyring read before the rotation
    other.keyring.keys()
    done = rotate_key(any_db, actor="sam", at=clock.now())
    CaseService(other, clock).add_note("ana", ref, "after the rotation")
    assert {sealing_key_id(v) for v in _stored(any_db).values()} == {done.key_id}


def test_a_keyring_error_names_its_source() -> None:
    keyring = Keyring.of(new_key(), source="the test's key")
    with pytest.raises(SealingKeyError, match="the test's key holds"):
        keyring.opening_key("000000000000")


def test_the_console_names_the_key_not_the_database() -> None:
    from app.console.failures import describe_failure

    error = SealingKeyError("wrong key: the data was sealed with key 1, but VIGIL_SECRET_KEY …")
    failure = describe_failure(error)
    assert failure.title == "Sealed text not opened"
    assert "VIGIL_SECRET_KEY" in failure.message
    assert not failure.database_down


def test_a_row_whose_key_is_given_up_front_is_sealed_in_its_insert(
    any_db: Database, clock: FakeClock
) -> None:
    now = clock.now()
    with any_db.write() as session:
        case = Case(
            id=77, ref="ESC-0077", title="T", category="other", severity=3, details=SENSITIVE,
            created_at=now, updated_at=now,
        )  # fmt: skip
        session.add(case)
        session.flush()
        assert case.details == SENSITIVE
    stored = _stored(any_db)[("case", "details", 77)]
    assert stored.startswith(PREFIX)
    with any_db.read() as session:
        assert session.exec(select(Case).where(Case.id == 77)).one().details == SENSITIVE


def test_a_copy_of_the_database_without_its_key_cannot_sign_acknowledge_links(
    sqlite_db: Database, sqlite_url: str, clock: FakeClock
) -> None:
    """The links' key is derived from the sealing key, never stored: whoever holds only the
    file (or a dump) cannot mint a link that acknowledges in someone's name."""
    _desk(sqlite_db, clock)
    with sqlite_db.read() as session:
        signing = signing_link_key(session)
        assert signing in link_keys(session)
    stolen = Database.open(sqlite_url, keyring=Keyring.of(new_key(), source="a thief's key"))
    try:
        with stolen.read() as session:
            assert signing not in link_keys(session)
    finally:
        stolen.dispose()
    assert signing.hex() not in Path(str(sqlite_db.engine.url.database)).read_bytes().decode(
        "latin-1"
    )

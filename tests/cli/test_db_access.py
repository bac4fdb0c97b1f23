"""On PostgreSQL the login is the person and the database enforces who may do what.

Each test installs the desk's roles under a prefix of its own (roles are cluster-wide) in its
own schema, connects as real logins of each group, and drops every role it made afterwards.
The test server trusts local logins, so none of them needs a password.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from app.cli.main import main
from app.console.desk import pages_wait_for_a_sender
from app.core.clock import FakeClock
from app.core.errors import NotAllowed
from app.delivery.webhook import claim_due
from app.engine.cycle import EscalationEngine
from app.rules.tipline import check_draft
from app.services.cases import CaseService
from app.services.casework.tipline import HANDED_OVER, FilingView, TiplineService
from app.services.heartbeats import record_beat
from app.services.unit_of_work import ENGINE
from data.db import Database
from data.keys import Keyring, encode_key, new_key
from tests.conftest import PG_SKIP_REASON, PG_URL
from tests.ncmec_standin import StandIn

pytestmark = pytest.mark.pg


TEAM = """
[[responder]]
handle = "ana"
name = "Ana Ruiz"
role = "specialist"
db_login = "{prefix}_ana"
contacts = [{{ kind = "console" }}]

[[responder]]
handle = "ben"
name = "Ben Ode"
role = "specialist"
db_login = "{prefix}_ben"
contacts = [{{ kind = "console" }}]

[[responder]]
handle = "sam"
name = "Sam Lee"
role = "supervisor"
db_login = "{prefix}_sam"
contacts = [{{ kind = "console" }}]

[[responder]]
handle = "relay"
name = "Intake relay"
role = "specialist"
db_login = "{prefix}_relay"
contacts = [{{ kind = "console" }}]

[[rotation]]
name = "day"
timezone = "UTC"
shift = "1d"
handoff = "08:00"
start = "2026-11-01"
members = ["ana", "ben"]

[[schedule]]
name = "primary"
layers = ["day"]

[[policy]]
name = "standard"
steps = [{{ delay = "5m", targets = ["schedule:primary"] }}]

[routing]
default = "standard"
"""
HEARTBEAT = """
[[heartbeat]]
name = "pipeline"
interval = "5m"
"""


@dataclass
class Desk:
    """A desk on its own schema, its roles installed under `prefix`."""

    owner_url: str
    prefix: str
    clock: FakeClock
    engines: list[Engine]

    def login(self, handle: str) -> str:
        return f"{self.prefix}_{handle}"

    def url(self, handle: str) -> str:
        """The desk's URL as `handle`'s own login."""
        return (
            make_url(self.owner_url)
            .set(username=self.login(handle))
            .render_as_string(hide_password=False)
        )

    def vigil(self, handle: str | None, *argv: str) -> tuple[int, str, str]:
        """`vigil` connected as `handle`'s login (None: as the owner)."""
        out, err = io.StringIO(), io.StringIO()
        url = self.owner_url if handle is None else self.url(handle)
        code = main(["--db", url, *argv], clock=self.clock, out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    def sql(self, handle: str, *statements: str) -> None:
        """Run `statements` in one transaction as `handle`'s login, with plain SQL."""
        engine = create_engine(self.url(handle))
        self.engines.append(engine)
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))

    def refused(self, handle: str, *statements: str) -> str:
        """The database's refusal of `statements` as `handle`."""
        with pytest.raises(DBAPIError) as caught:
            self.sql(handle, *statements)
        return str(caught.value.orig)

    def owner_engine_rows(self, query: str) -> list[object]:
        engine = create_engine(self.owner_url)
        self.engines.append(engine)
        with engine.begin() as connection:
            return list(connection.execute(text(query)).scalars())

    def owner_scalar(self, query: str) -> object:
        engine = create_engine(self.owner_url)
        self.engines.append(engine)
        with engine.begin() as connection:
            result = connection.execute(text(query))
            return result.scalar() if result.returns_rows else None


def _drop_roles(prefix: str) -> None:
    assert PG_URL is not None
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as connection:
        names = connection.execute(
            text("SELECT rolname FROM pg_roles WHERE rolname LIKE :pattern"),
            {"pattern": prefix + r"\_%"},
        ).scalars()
        for name in names:
            connection.execute(text(f'DROP OWNED BY "{name}"'))
            connection.execute(text(f'DROP ROLE "{name}"'))
    admin.dispose()


@pytest.fixture(autouse=True)
def _the_desks_key() -> None:
    """The desk's key exists before anyone seals: people's logins cannot look into sealed
    columns, so they never make one (an admin hands the key out)."""
    Keyring.from_environment().sealing_key()


@pytest.fixture
def desk(pg_url: str, clock: FakeClock, tmp_path: Path) -> Iterator[Desk]:
    prefix = f"v{uuid.uuid4().hex[:10]}"
    state = Desk(pg_url, prefix, clock, [])
    try:
        code, _out, err = state.vigil(
            None, "db", "roles", "--prefix", prefix,
            "--intake", f"{prefix}_relay", "--engine", f"{prefix}_escalator",
        )  # fmt: skip
        assert code == 0, err
        team = tmp_path / "team.toml"
        team.write_text(TEAM.format(prefix=prefix), encoding="utf-8")
        code, _out, err = state.vigil(None, "--as", "sam", "team", "apply", str(team))
        assert code == 0, err
        yield state
    finally:
        for engine in state.engines:
            engine.dispose()
        _drop_roles(prefix)


def _page(desk: Desk, handle: str) -> str:
    code, out, err = desk.vigil(
        handle, "page", "--title", "Threat in a post", "--category", "threat_to_life",
        "--severity", "2",
    )  # fmt: skip
    assert code == 0, err
    return out.strip().split()[0]


def _audit_actors(desk: Desk) -> list[tuple[str, str]]:
    code, out, err = desk.vigil("sam", "audit", "log", "--json")
    assert code == 0, err
    import json

    return [(record["actor"], record["action"]) for record in json.loads(out)]


# --- who you are ---------------------------------------------------------------------


def test_the_login_is_the_actor_of_what_it_does(desk: Desk) -> None:
    ref = _page(desk, "ana")
    code, _out, err = desk.vigil("ben", "ack", ref)
    assert code == 0, err
    assert _audit_actors(desk) == [
        ("sam", "team.apply"),  # the owner bootstrapped the team in sam's name
        ("ana", "case.open"),
        ("engine", "engine.escalate"),  # the step `vigil page` pages at once
        ("ben", "case.ack"),
    ]


def test_as_naming_someone_else_is_refused(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _page(desk, "ana")
    code, _out, err = desk.vigil("ana", "--as", "sam", "reassign", ref, "--to", "ben")
    assert code == 1
    assert f"database login '{desk.login('ana')}', which is ana" in err
    assert "cannot act as 'sam'" in err
    monkeypatch.setenv("VIGIL_USER", "sam")
    code, _out, err = desk.vigil("ana", "cases")
    assert code == 1
    assert "cannot act as 'sam'" in err
    monkeypatch.setenv("VIGIL_USER", "ana")
    code, _out, err = desk.vigil("ana", "--as", "ana", "ack", ref)
    assert code == 0, err


def test_a_login_of_nobody_on_the_desk_is_refused(desk: Desk) -> None:
    """A login a DBA put in a group by hand, which no responder names."""
    desk.owner_scalar(f'CREATE ROLE "{desk.login("eve")}" LOGIN IN ROLE "{desk.prefix}_specialist"')
    code, _out, err = desk.vigil(
        "eve", "page", "--title", "t", "--category", "other", "--severity", "4"
    )
    assert code == 1
    assert f"database login '{desk.login('eve')}' is not the login of an active responder" in err


def test_the_owner_keeps_naming_the_responder(desk: Desk) -> None:
    """The schema's owner is the desk's master key: it names whom it acts for, as SQLite."""
    ref = _page(desk, "ana")
    code, _out, err = desk.vigil(None, "--as", "sam", "ack", ref)
    assert code == 0, err
    assert _audit_actors(desk)[-1] == ("sam", "case.ack")


def test_the_owner_rotates_the_key_in_the_name_of_whom_it_acts_for(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`db rotate-key` locks every sealed table: the owner runs it, and its audit record
    names the responder the owner acts for, which the database's check of actors accepts."""
    kept = Keyring.from_environment().keys() or [new_key()]
    keys = ",".join(encode_key(key) for key in (new_key(), *kept))
    monkeypatch.setenv("VIGIL_SECRET_KEY", keys)
    code, _out, err = desk.vigil(None, "--as", "sam", "db", "rotate-key")
    assert code == 0, err
    assert _audit_actors(desk)[-1] == ("sam", "db.rotate_key")


def test_the_services_run_as_their_own_logins(desk: Desk, tmp_path: Path) -> None:
    events = tmp_path / "events.json"
    events.write_text(
        '[{"title": "Report from a partner", "category": "doxxing", "severity": "sev3"}]',
        encoding="utf-8",
    )
    code, _out, err = desk.vigil("relay", "intake", str(events))
    assert code == 0, err
    assert _audit_actors(desk)[-2:] == [("relay", "case.open"), ("engine", "engine.escalate")]
    desk.clock.advance(timedelta(minutes=10))
    code, _out, err = desk.vigil("escalator", "engine", "--once")
    assert code == 0, err
    assert _audit_actors(desk)[-1] == ("engine", "engine.exhausted")
    assert "permission denied" in desk.refused("escalator", "UPDATE responder SET active = false")
    assert "permission denied" in desk.refused("relay", "DELETE FROM audit_record")


def test_an_engines_login_clears_old_heartbeats_and_still_beats_where_it_may_not(
    desk: Desk,
) -> None:
    """A desk whose roles predate the grant to delete heartbeats: its engine beats and
    leaves them; once `vigil db roles` grants it, the next engine to start clears them."""
    gone = (desk.clock.now() - timedelta(days=8)).isoformat()
    desk.owner_scalar(
        "INSERT INTO engine_heartbeat (name, started_at, last_cycle_at, cycles) "
        f"VALUES ('engine@gone/1/aaaaaa', '{gone}', '{gone}', 3)"
    )
    engines = desk.login("engine")  # the escalator's group
    desk.owner_scalar(f"REVOKE DELETE ON engine_heartbeat FROM {engines}")
    code, _out, err = desk.vigil("escalator", "engine", "--once")
    assert code == 0, err
    names = desk.owner_engine_rows("SELECT name FROM engine_heartbeat")
    assert len(names) == 2
    assert "engine@gone/1/aaaaaa" in names
    desk.owner_scalar(f"GRANT DELETE ON engine_heartbeat TO {engines}")
    code, _out, err = desk.vigil("escalator", "engine", "--once")
    assert code == 0, err
    names = desk.owner_engine_rows("SELECT name FROM engine_heartbeat")
    assert len(names) == 2
    assert "engine@gone/1/aaaaaa" not in names


# --- what you may do, by plain SQL -----------------------------------------------------


def test_a_specialist_cannot_promote_themselves(desk: Desk) -> None:
    message = desk.refused("ana", "UPDATE responder SET role = 'admin' WHERE handle = 'ana'")
    assert "permission denied" in message
    desk.refused("ana", "INSERT INTO responder (handle, name, role, timezone, active) "
                 "VALUES ('mal', 'Mal', 'admin', 'UTC', true)")  # fmt: skip
    assert desk.owner_scalar("SELECT role FROM responder WHERE handle = 'ana'") == "specialist"


def test_a_specialist_cannot_change_policies_or_routing(desk: Desk) -> None:
    for statement in (
        "UPDATE policy SET repeat = 9",
        "DELETE FROM policy_step",
        "INSERT INTO policy (name, repeat) VALUES ('mine', 0)",
        "UPDATE routing SET policy_id = policy_id",
        "UPDATE schedule SET name = 'x'",
        "DELETE FROM rotation_member",
    ):
        assert "permission denied" in desk.refused("ana", statement), statement


def test_nobody_but_the_owner_deletes_casework(desk: Desk) -> None:
    ref = _page(desk, "ana")
    for handle in ("ana", "sam"):
        for table in ('"case"', "timeline_event", "page", "case_note"):
            message = desk.refused(handle, f"DELETE FROM {table}")
            assert "permission denied" in message, (handle, table)
    assert desk.owner_scalar(f"SELECT count(*) FROM \"case\" WHERE ref = '{ref}'") == 1


SECRET = "the address of the child: 12 Hidden Lane"


def _sensitive_case(desk: Desk) -> tuple[str, int]:
    code, out, err = desk.vigil(
        "ana", "page", "--title", "Report from a tipline", "--category", "csea",
        "--severity", "1", "--sensitive", "--details", SECRET,
    )  # fmt: skip
    assert code == 0, err
    ref = out.strip().split()[0]
    case_id = desk.owner_scalar(f"SELECT id FROM \"case\" WHERE ref = '{ref}'")
    assert isinstance(case_id, int)
    return ref, case_id


def _reveals(desk: Desk, ref: str) -> list[str]:
    return [
        str(actor)
        for actor in desk.owner_engine_rows(
            f"SELECT actor FROM audit_record WHERE action = 'case.reveal' AND case_ref = '{ref}' "
            "ORDER BY seq"
        )
    ]


def test_people_cannot_select_a_cases_details(desk: Desk) -> None:
    _ref, case_id = _sensitive_case(desk)
    for handle in ("ana", "sam"):
        for statement in (
            'SELECT details FROM "case"',
            'SELECT * FROM "case"',
            f'UPDATE "case" SET title = details WHERE id = {case_id}',
            f'UPDATE "case" SET stage = stage WHERE id = {case_id} RETURNING details',
        ):
            assert "permission denied" in desk.refused(handle, statement), (handle, statement)
    # Listing everything else still works: the queue reads every column but the details.
    desk.sql("ana", 'SELECT id, ref, title, sensitive, status FROM "case"')


def test_a_sensitive_cases_details_come_only_after_the_readers_own_reveal_is_committed(
    desk: Desk,
) -> None:
    ref, case_id = _sensitive_case(desk)
    read = f"SELECT vigil_case_details({case_id})"
    assert "committed reveal record" in desk.refused("ana", read)
    # A record written in the reading transaction does not count: a rollback would take
    # the record back and leave the read done.
    forged = (
        "INSERT INTO audit_record (seq, at, actor, action, case_ref, detail, prev_hash, hash) "
        f"VALUES (999999, now(), 'ana', 'case.reveal', '{ref}', '{{}}', 'x', 'y')"
    )
    assert "committed reveal record" in desk.refused("ana", forged, read)
    assert desk.owner_scalar("SELECT count(*) FROM audit_record WHERE seq = 999999") == 0
    # ben reveals through Vigil: his record opens the details to him, not to ana.
    code, _out, err = desk.vigil("ben", "show", ref, "--reveal")
    assert code == 0, err
    assert "committed reveal record" in desk.refused("ana", read)
    desk.sql("ben", read)
    assert _reveals(desk, ref) == ["ben"]
    # The owner reads the table itself; through Vigil it still records whom it acts for.
    code, out, err = desk.vigil(None, "--as", "sam", "show", ref, "--reveal")
    assert code == 0, err
    assert SECRET in out
    assert _reveals(desk, ref) == ["ben", "sam"]


def _schema(desk: Desk) -> str:
    found = re.search(r"search_path%3D([A-Za-z0-9_]+)", desk.owner_url)
    assert found is not None
    return found.group(1)


def test_nothing_the_reading_transaction_wrote_opens_a_cases_details(desk: Desk) -> None:
    """Each way a reader might make a reveal, or who they are, look settled while a
    rollback stands ready: a savepoint around a record of their own, someone else's
    record of another case under this case's reference, a login moved to another person."""
    ref, case_id = _sensitive_case(desk)
    read = f"SELECT vigil_case_details({case_id})"
    record = (
        "INSERT INTO audit_record (seq, at, actor, action, case_ref, detail, prev_hash, hash) "
        f"VALUES (999999, now(), 'ana', 'case.reveal', '{ref}', '{{}}', 'x', 'y')"
    )
    assert "committed reveal record" in desk.refused(
        "ana", "SAVEPOINT s", record, "RELEASE SAVEPOINT s", read
    )
    assert "committed reveal record" in desk.refused(
        "ana", "SAVEPOINT s", record, "ROLLBACK TO SAVEPOINT s", read
    )
    # Records name a case by its reference, which people may not change.
    other = _page(desk, "ana")
    code, _out, err = desk.vigil("ben", "show", other, "--reveal")
    assert code == 0, err
    swap = f"UPDATE \"case\" SET ref = '{other}' WHERE id = {case_id}"
    assert "permission denied" in desk.refused("ana", swap)
    # ben revealed this case; sam, who may edit responders, borrows ben's login mapping.
    code, _out, err = desk.vigil("ben", "show", ref, "--reveal")
    assert code == 0, err
    assert "committed reveal record" in desk.refused(
        "sam",
        f"UPDATE responder SET db_login = 'nobody_{desk.prefix}' WHERE handle = 'sam'",
        f"UPDATE responder SET db_login = '{desk.login('sam')}' WHERE handle = 'ben'",
        read,
    )
    assert desk.owner_scalar("SELECT count(*) FROM audit_record WHERE seq = 999999") == 0


def test_a_supervisor_cannot_remap_logins_by_hand(desk: Desk) -> None:
    """Moving ben's login to sam's responder row would let sam's login write in ben's name;
    responders change only through the team file, with its audit record."""
    message = desk.refused(
        "sam",
        f"UPDATE responder SET db_login = 'nobody_{desk.prefix}' WHERE handle = 'ben'",
        f"UPDATE responder SET db_login = '{desk.login('ben')}' WHERE handle = 'sam'",
    )
    assert "only through vigil team apply" in message
    assert desk.owner_scalar("SELECT db_login FROM responder WHERE handle = 'ben'") == (
        desk.login("ben")
    )


def test_a_temporary_catalog_view_does_not_fool_the_audit_checks(desk: Desk) -> None:
    """The checks read the catalog itself: a temporary `pg_roles` that says everyone is a
    superuser, first on the search path, does not let ana write in ben's name."""
    _page(desk, "ana")
    message = desk.refused(
        "ana",
        "CREATE TEMP VIEW pg_roles AS SELECT true AS rolsuper, current_user::name AS rolname",
        f'SET LOCAL search_path = pg_temp, pg_catalog, "{_schema(desk)}"',
        "INSERT INTO audit_record (seq, at, actor, action, case_ref, detail, prev_hash, hash) "
        "VALUES (999998, now(), 'ben', 'case.note', NULL, '{}', 'x', 'y')",
    )
    assert "writes audit records as ana, not as ben" in message


def test_people_neither_overwrite_details_nor_rewrite_the_timeline(desk: Desk) -> None:
    ref, case_id = _sensitive_case(desk)
    overwrite = f"UPDATE \"case\" SET details = 'nothing to see' WHERE id = {case_id}"
    for handle in ("ana", "sam"):
        assert "written once" in desk.refused(handle, overwrite), handle
        rewrite = "UPDATE timeline_event SET text = 'Sensitive details revealed to ben'"
        assert "permission denied" in desk.refused(handle, rewrite), handle
        # The timeline's "paged" lines are read from the pages: who and when stay put.
        for change in ("sent_at = sent_at - interval '1 hour'", "responder_id = responder_id"):
            repage = f"UPDATE page SET {change} WHERE case_id = {case_id}"
            assert "permission denied" in desk.refused(handle, repage), (handle, change)
    code, out, err = desk.vigil(None, "--as", "sam", "show", ref, "--reveal")
    assert code == 0, err
    assert SECRET in out


def test_a_specialist_cannot_make_a_sensitive_case_plain(desk: Desk) -> None:
    _ref, case_id = _sensitive_case(desk)
    for handle in ("ana", "sam"):
        statement = f'UPDATE "case" SET sensitive = false WHERE id = {case_id}'
        assert "permission denied" in desk.refused(handle, statement), handle
    assert desk.owner_scalar(f'SELECT sensitive FROM "case" WHERE id = {case_id}') is True


def test_through_vigil_details_show_to_whoever_reveals_them_and_the_reveal_is_theirs(
    desk: Desk,
) -> None:
    ref, _case_id = _sensitive_case(desk)
    code, out, err = desk.vigil("ben", "show", ref)
    assert code == 0, err
    assert SECRET not in out
    code, out, err = desk.vigil("ben", "show", ref, "--reveal")
    assert code == 0, err
    assert SECRET in out
    assert _reveals(desk, ref) == ["ben"]
    # A plain case's details read as before, with no reveal.
    plain = _page(desk, "ana")
    code, out, err = desk.vigil("ben", "show", plain, "--json")
    assert code == 0, err
    assert '"details": ""' in out
    assert _reveals(desk, plain) == []


HOOK = "https://hooks.example/desk/ben-t0ken-7f3e"
HOOK_SECRET = "whsec-0123456789abcdef"


def _with_a_webhook(desk: Desk, tmp_path: Path) -> Path:
    """The desk's team file with a webhook for ben (on call at the test's clock), applied
    by sam."""
    team = tmp_path / "hooked.toml"
    hooked = TEAM.format(prefix=desk.prefix).replace(
        'db_login = "' + desk.login("ben") + '"\ncontacts = [{ kind = "console" }]',
        'db_login = "' + desk.login("ben") + '"\ncontacts = [{ kind = "console" }, '
        f'{{ kind = "webhook", url = "{HOOK}", secret = "{HOOK_SECRET}" }}]',
    )
    assert HOOK in hooked
    team.write_text(hooked, encoding="utf-8")
    code, _out, err = desk.vigil("sam", "team", "apply", str(team))
    assert code == 0, err
    return team


def test_people_cannot_select_a_contacts_url_or_secret(desk: Desk, tmp_path: Path) -> None:
    _with_a_webhook(desk, tmp_path)
    for handle in ("ana", "sam"):
        for statement in (
            "SELECT url FROM contact_method",
            "SELECT secret FROM contact_method",
            "SELECT * FROM contact_method",
        ):
            assert "permission denied" in desk.refused(handle, statement), (handle, statement)
    desk.sql("ana", "SELECT id, kind, url_shown, url_digest FROM contact_method")
    desk.sql("escalator", "SELECT url, secret FROM contact_method")


def test_a_supervisor_applies_and_exports_webhooks_without_reading_them(
    desk: Desk, tmp_path: Path
) -> None:
    team = _with_a_webhook(desk, tmp_path)
    code, exported, err = desk.vigil("sam", "team", "export")
    assert code == 0, err
    assert HOOK not in exported
    assert HOOK_SECRET not in exported
    assert "https://hooks.example/...#kept:" in exported
    again = tmp_path / "exported.toml"
    again.write_text(exported, encoding="utf-8")
    code, out, err = desk.vigil("sam", "team", "apply", "--dry-run", str(again))
    assert code == 0, err
    assert "no changes" in out.lower(), out
    code, out, err = desk.vigil("sam", "team", "apply", "--dry-run", str(team))
    assert code == 0, err
    assert "no changes" in out.lower(), out
    # A new secret is a change, shown without itself.
    changed = tmp_path / "rekeyed.toml"
    changed.write_text(team.read_text().replace(HOOK_SECRET, "whsec-fedcba9876543210"))
    code, out, err = desk.vigil("sam", "team", "apply", str(changed))
    assert code == 0, err
    assert "whsec" not in out
    engine = create_engine(desk.url("escalator"))
    desk.engines.append(engine)
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT url, secret FROM contact_method WHERE url IS NOT NULL")
        ).one()
    assert HOOK not in str(stored)  # sealed at rest, as before


def test_webhook_pages_leave_through_the_engines_login_not_a_persons(
    desk: Desk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _with_a_webhook(desk, tmp_path)
    _page(desk, "ana")  # ben is on call: step 1 pages his console and his webhook
    person = Database.open(desk.url("ben"), migrate=False)
    engine = Database.open(desk.url("escalator"), migrate=False)
    try:
        assert claim_due(person, desk.clock).jobs == []
        assert "sent by an engine that runs as the engine's login" in caplog.text
        [job] = claim_due(engine, desk.clock).jobs
        assert (job.url, job.secret) == (HOOK, HOOK_SECRET)
    finally:
        person.dispose()
        engine.dispose()


def test_a_person_without_the_desks_key_is_told_to_get_it_never_given_a_new_one(
    desk: Desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person's login cannot look into the sealed columns to see whether the desk holds
    sealed values, so no key is made behind them: the refusal names the key to get."""
    ref, _case_id = _sensitive_case(desk)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "elsewhere"))
    code, _out, err = desk.vigil("ben", "note", ref, "written on a machine without the key")
    assert code == 1
    assert "VIGIL_SECRET_KEY" in err
    assert "Traceback" not in err
    assert "permission denied" not in err
    assert not (tmp_path / "elsewhere" / "vigil" / "secret.key").exists()


def test_a_specialist_cannot_alter_or_remove_audit_records(desk: Desk) -> None:
    _page(desk, "ana")
    before = desk.owner_scalar("SELECT count(*) FROM audit_record")
    for statement in (
        "UPDATE audit_record SET actor = 'sam'",
        "DELETE FROM audit_record",
        "TRUNCATE audit_record",
        "DELETE FROM audit_head",
    ):
        assert "permission denied" in desk.refused("ana", statement), statement
    assert desk.owner_scalar("SELECT count(*) FROM audit_record") == before


def test_a_specialist_cannot_move_the_audit_head_back(desk: Desk) -> None:
    _page(desk, "ana")
    message = desk.refused("ana", "UPDATE audit_head SET seq = seq - 1")
    assert "the audit head may only move to the record last written" in message


def test_an_audit_record_names_the_login_that_writes_it(desk: Desk) -> None:
    insert = (
        "INSERT INTO audit_record (seq, at, actor, action, case_ref, detail, prev_hash, hash) "
        "VALUES (999999, now(), '{actor}', 'case.note', NULL, '{{}}', 'x', 'y')"
    )
    message = desk.refused("ana", insert.format(actor="sam"))
    assert f"login {desk.login('ana')} writes audit records as ana, not as sam" in message


def test_waivers_and_disclosure_decisions_are_supervisors_rows(desk: Desk) -> None:
    ref = _page(desk, "ana")
    case_id = desk.owner_scalar(f"SELECT id FROM \"case\" WHERE ref = '{ref}'")
    ana = desk.owner_scalar("SELECT id FROM responder WHERE handle = 'ana'")
    waiver = (
        "INSERT INTO clock_event (case_id, clock, kind, at, recorded_at, by_id, note) "
        f"VALUES ({case_id}, 'tipline', '{{kind}}', now(), now(), {{by}}, 'x')"
    )
    message = desk.refused("ana", waiver.format(kind="waived", by=ana))
    assert "row-level security" in message
    sam = desk.owner_scalar("SELECT id FROM responder WHERE handle = 'sam'")
    desk.sql("sam", waiver.format(kind="waived", by=sam))
    desk.sql("ana", waiver.format(kind="filed", by=ana))

    partner = desk.owner_scalar(
        "INSERT INTO partner (name, kind, agency, contact, verified_channel, active, "
        "created_at) VALUES ('metro-pd', 'law_enforcement', 'Metro PD', '', '', true, now()) "
        "RETURNING id"
    )
    disclosure = (
        "INSERT INTO disclosure (case_id, number, data, accounts, partner_id, agency, basis, "
        "basis_label, emergency, status, requested_at, requested_by_id) VALUES "
        f"({case_id}, {{number}}, '[]', 1, {partner}, 'Metro PD', 'b', 'B', false, "
        f"'{{status}}', now(), {ana})"
    )
    message = desk.refused("ana", disclosure.format(number=1, status="disclosed"))
    assert "row-level security" in message
    desk.sql("ana", disclosure.format(number=1, status="requested"))
    desk.sql("ana", "UPDATE disclosure SET status = 'disclosed'")  # sees no row it may change
    assert desk.owner_scalar("SELECT status FROM disclosure") == "requested"
    desk.sql("sam", "UPDATE disclosure SET status = 'disclosed'")
    assert desk.owner_scalar("SELECT status FROM disclosure") == "disclosed"


def test_a_specialist_may_place_only_themselves_and_only_without_approval(desk: Desk) -> None:
    """A swap taken where the desk needs no supervisor's approval is placed by its taker."""
    ids = {
        handle: desk.owner_scalar(f"SELECT id FROM responder WHERE handle = '{handle}'")
        for handle in ("ana", "ben")
    }
    schedule = desk.owner_scalar("SELECT id FROM schedule WHERE name = 'primary'")
    place = (
        "INSERT INTO override (schedule_id, responder_id, starts_at, ends_at, reason, "
        "created_by_id) VALUES ({schedule}, {who}, now(), now() + interval '1 hour', '', {by})"
    )
    herself = place.format(schedule=schedule, who=ids["ana"], by=ids["ana"])
    assert "row-level security" in desk.refused("ana", herself)  # swaps need approval
    code, _out, err = desk.vigil("sam", "calendar", "settings", "--swap-approval", "optional")
    assert code == 0, err
    message = desk.refused("ana", place.format(schedule=schedule, who=ids["ben"], by=ids["ana"]))
    assert "row-level security" in message
    desk.sql("ana", herself)


def test_through_vigil_a_specialist_is_refused_what_supervisors_do(desk: Desk) -> None:
    code, _out, err = desk.vigil(
        "ana", "override", "--schedule", "primary", "--who", "ana",
        "--from", "2026-11-27T08:00:00Z", "--to", "2026-11-27T20:00:00Z",
    )  # fmt: skip
    assert code == 1, err
    code, _out, err = desk.vigil(
        "sam", "override", "--schedule", "primary", "--who", "ben",
        "--from", "2026-11-27T08:00:00Z", "--to", "2026-11-27T20:00:00Z",
    )  # fmt: skip
    assert code == 0, err


# --- groups follow the team file ---------------------------------------------------------


def _member(desk: Desk, handle: str, group: str) -> bool:
    return bool(
        desk.owner_scalar(
            f"SELECT pg_has_role('{desk.login(handle)}', '{desk.prefix}_{group}', 'MEMBER')"
        )
    )


def test_team_apply_keeps_each_login_in_its_group(desk: Desk, tmp_path: Path) -> None:
    assert _member(desk, "ana", "specialist")
    assert not _member(desk, "ana", "supervisor")
    assert _member(desk, "sam", "supervisor")
    assert _member(desk, "relay", "intake")
    assert not _member(desk, "relay", "specialist")
    team = TEAM.format(prefix=desk.prefix).replace(
        'handle = "ana"\nname = "Ana Ruiz"\nrole = "specialist"',
        'handle = "ana"\nname = "Ana Ruiz"\nrole = "supervisor"',
    )
    path = tmp_path / "promoted.toml"
    path.write_text(team, encoding="utf-8")
    code, _out, err = desk.vigil("sam", "team", "apply", str(path))
    assert code == 0, err
    assert _member(desk, "ana", "supervisor")
    assert not _member(desk, "ana", "specialist")
    desk.sql("ana", "UPDATE policy SET repeat = repeat")  # a supervisor may

    without_ben = (
        team.replace('handle = "ben"', 'handle = "bea"')
        .replace(f'db_login = "{desk.prefix}_ben"', f'db_login = "{desk.prefix}_bea"')
        .replace('members = ["ana", "ben"]', 'members = ["ana", "bea"]')
    )
    path.write_text(without_ben, encoding="utf-8")
    code, _out, err = desk.vigil("sam", "team", "apply", str(path))
    assert code == 0, err
    assert not _member(desk, "ben", "specialist")  # deactivated: in no group
    assert _member(desk, "bea", "specialist")  # a new responder's login, made without password
    code, _out, err = desk.vigil("ben", "cases")
    assert code == 1
    assert f"login '{desk.login('ben')}' sees no Vigil tables here" in err


def test_a_supervisors_file_that_drops_a_policy_changes_its_cases_in_their_name(
    desk: Desk, tmp_path: Path
) -> None:
    """The cases of a removed policy change as any case does, by the supervisor's own login:
    the database takes their timeline lines and audit records as the supervisor's."""
    ref = _page(desk, "ana")
    team = TEAM.format(prefix=desk.prefix).replace('"standard"', '"urgent"')
    path = tmp_path / "renamed-policy.toml"
    path.write_text(team, encoding="utf-8")
    code, _out, err = desk.vigil("sam", "team", "apply", str(path))
    assert code == 0, err
    assert _audit_actors(desk)[-2:] == [("sam", "team.policy_removed"), ("sam", "team.apply")]
    lines = desk.owner_engine_rows(
        'SELECT t.actor FROM timeline_event t JOIN "case" c ON c.id = t.case_id '
        f"WHERE c.ref = '{ref}' AND t.kind = 'policy_removed'"
    )
    assert lines == ["sam"]
    code, out, err = desk.vigil("sam", "audit", "verify")
    assert code == 0, err
    assert "Audit chain intact" in out


def test_a_login_given_up_leaves_its_group(desk: Desk, tmp_path: Path) -> None:
    team = TEAM.format(prefix=desk.prefix).replace(
        f'db_login = "{desk.prefix}_ana"', f'db_login = "{desk.prefix}_ana2"'
    )
    path = tmp_path / "renamed.toml"
    path.write_text(team, encoding="utf-8")
    code, _out, err = desk.vigil("sam", "team", "apply", str(path))
    assert code == 0, err
    assert not _member(desk, "ana", "specialist")
    assert _member(desk, "ana2", "specialist")


def test_a_supervisor_cannot_place_a_login_the_desk_does_not_name(desk: Desk) -> None:
    """The placing function reads the group from the responder table, not from its caller."""
    desk.sql("sam", f"SELECT vigil_place_login('{desk.login('mallory')}')")
    made = f"SELECT count(*) FROM pg_roles WHERE rolname = '{desk.login('mallory')}'"
    assert desk.owner_scalar(made) == 0
    assert "permission denied" in desk.refused(
        "ana", f"SELECT vigil_place_login('{desk.login('ana')}')"
    )


def test_a_specialist_cannot_apply_a_team_file(desk: Desk, tmp_path: Path) -> None:
    path = tmp_path / "team.toml"
    path.write_text(TEAM.format(prefix=desk.prefix).replace('"specialist"', '"admin"'), "utf-8")
    code, _out, err = desk.vigil("ana", "team", "apply", str(path))
    assert code == 1
    assert "only an active supervisor or admin may apply a team file" in err
    assert _member(desk, "ana", "specialist")


def test_roles_print_the_sql_for_a_dba(desk: Desk) -> None:
    code, out, err = desk.vigil(None, "db", "roles", "--print", "--prefix", "other")
    assert code == 0, err
    assert out.startswith("BEGIN;")
    assert 'CREATE ROLE "other_specialist" NOLOGIN' in out
    assert "REVOKE ALL ON" in out
    assert desk.owner_scalar("SELECT count(*) FROM pg_roles WHERE rolname = 'other_admin'") == 0


def test_the_printed_sql_run_by_a_dba_installs_the_same_roles(
    pg_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    """A DBA runs what `--print` printed; then the desk is as `vigil db roles` makes it."""
    prefix = f"v{uuid.uuid4().hex[:10]}"
    desk = Desk(pg_url, prefix, clock, [])
    try:
        code, printed, err = desk.vigil(None, "db", "roles", "--print", "--prefix", prefix)
        assert code == 0, err
        made = f"SELECT count(*) FROM pg_roles WHERE rolname LIKE '{prefix}%'"
        assert desk.owner_scalar(made) == 0  # printed, not run
        dba = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        desk.engines.append(dba)
        raw = dba.raw_connection()
        try:
            raw.cursor().execute(printed)  # one script, as psql -f would run it
        finally:
            raw.close()
        team = tmp_path / "team.toml"
        team.write_text(TEAM.format(prefix=prefix), encoding="utf-8")
        code, _out, err = desk.vigil(None, "--as", "sam", "team", "apply", str(team))
        assert code == 0, err
        assert _member(desk, "ana", "specialist")
        message = desk.refused("ana", "UPDATE responder SET role = 'admin' WHERE handle = 'ana'")
        assert "permission denied" in message
        _page(desk, "ana")
        assert _audit_actors(desk)[-2] == ("ana", "case.open")
    finally:
        for engine in desk.engines:
            engine.dispose()
        _drop_roles(prefix)


def test_a_person_cannot_install_roles(desk: Desk) -> None:
    code, _out, err = desk.vigil("sam", "db", "roles", "--prefix", desk.prefix)
    assert code == 1
    assert "only the owner of the desk's tables installs roles" in err


def test_a_swap_taken_without_approval_places_its_taker(desk: Desk) -> None:
    code, _out, err = desk.vigil("sam", "calendar", "settings", "--swap-approval", "optional")
    assert code == 0, err
    code, out, err = desk.vigil(
        "ben", "swap", "request", "--schedule", "primary",
        "--from", "2026-11-26T12:00:00Z", "--to", "2026-11-26T18:00:00Z", "--json",
    )  # fmt: skip
    assert code == 0, err
    import json

    swap = json.loads(out)
    code, _out, err = desk.vigil("ana", "swap", "take", str(swap["id"]))
    assert code == 0, err
    assert _audit_actors(desk)[-1][0] == "ana"
    assert desk.owner_scalar("SELECT count(*) FROM override") == 1


# --- every action a person may take, under the database's grants ------------------------


def _database_url(database: str, user: str = "postgres") -> str:
    assert PG_URL is not None
    url = make_url(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
    return url.set(database=database, username=user).render_as_string(hide_password=False)


def _with_logins(team_file: Path, prefix: str) -> Path:
    """The team file with each responder's login named under `prefix`."""
    import re

    text_ = re.sub(
        r'(\[\[responder\]\]\nhandle = "([a-z]+)"\n)', rf'\1db_login = "{prefix}_\2"\n',
        team_file.read_text(encoding="utf-8"),
    )  # fmt: skip
    renamed = team_file.with_name(f"logins-{team_file.name}")
    renamed.write_text(text_, encoding="utf-8")
    return renamed


@pytest.mark.slow
def test_every_action_a_role_may_take_works_as_its_own_login(tmp_path: Path) -> None:
    """Each action of the access matrix (tests/cli/test_access.py), on a fresh copy of the
    full desk, run as the own login of the least privileged person Vigil allows it to: the
    grants and row security let through every action Vigil allows, and its audit record
    names the login's responder."""
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    from app.core.clock import FakeClock as Clock
    from data.clock import install_time_source
    from tests.cli.test_access import ACTIONS, ADMIN, SPECIALIST, SUPERVISOR, T
    from tests.factories import build_full_desk

    prefix = f"v{uuid.uuid4().hex[:10]}"
    server = create_engine(_database_url("postgres"), isolation_level="AUTOCOMMIT")
    template = f"{prefix}_desk"
    cells: list[str] = []
    try:
        with server.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{template}"'))
        owner = create_engine(_database_url(template), isolation_level="AUTOCOMMIT")
        with owner.connect() as connection:
            install_time_source(connection, "public")
        owner.dispose()
        desk = build_full_desk(_database_url(template), Clock(T), tmp_path)
        changed = tmp_path / "team-changed.toml"
        changed.write_text(
            desk.files["team"].read_text().replace('name = "Dev Patel"', 'name = "Dev P."')
        )
        desk.files["team_changed"] = _with_logins(changed, prefix)
        desk.files["team"] = _with_logins(desk.files["team"], prefix)
        assert desk.run("cara", "team", "apply", str(desk.files["team"]))[0] == 0
        code, _out, err = desk.run("cara", "db", "roles", "--prefix", prefix)
        assert code == 0, err
        wrong: list[str] = []
        for number, action in enumerate(ACTIONS):
            # The least privileged role allowed: a specialist's grants are the narrowest,
            # and an admin's are a supervisor's.
            # (An action nobody may take is the SQLite matrix's business.)
            allowed = [h for h in (SPECIALIST, SUPERVISOR, ADMIN) if h in action.allowed]
            for handle in allowed[:1]:
                cell = f"{prefix}_c{number}_{handle}"
                with server.connect() as connection:
                    connection.execute(text(f'CREATE DATABASE "{cell}" TEMPLATE "{template}"'))
                cells.append(cell)
                out, err_ = io.StringIO(), io.StringIO()
                url = _database_url(cell, f"{prefix}_{handle}")
                argv = action.argv(desk)
                code = main(["--db", url, *argv], clock=desk.clock, out=out, err=err_)
                if code != 0:
                    wrong.append(f"{action.name}: refused to {handle}: {err_.getvalue().strip()}")
                    continue
                check = create_engine(_database_url(cell))
                with check.connect() as connection:
                    last = connection.execute(
                        text("SELECT actor FROM audit_record WHERE action = :a ORDER BY seq DESC"),
                        {"a": action.audit_action},
                    ).first()
                check.dispose()
                if last is None or last[0] != handle:
                    wrong.append(f"{action.name}: its {action.audit_action} record is {last}")
        assert not wrong, "\n".join(wrong)
    finally:
        with server.connect() as connection:
            for database in [*cells, template]:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        server.dispose()
        _drop_roles(prefix)


# --- the services' own rights --------------------------------------------------------


def test_a_silent_heartbeat_opens_from_a_persons_console_and_its_beat_resolves_it(
    desk: Desk, tmp_path: Path
) -> None:
    """The engine inside ana's console opens the silent monitor's case as itself, and the
    intake login records the next beat and resolves it: each may write just that."""
    team = tmp_path / "monitored.toml"
    team.write_text(TEAM.format(prefix=desk.prefix) + HEARTBEAT, encoding="utf-8")
    code, _out, err = desk.vigil("sam", "team", "apply", str(team))
    assert code == 0, err
    consoles = Database.open(desk.url("ana"), migrate=False)
    intake = Database.open(desk.url("relay"), migrate=False)
    try:
        desk.clock.advance(timedelta(minutes=6))
        EscalationEngine(consoles, desk.clock, name="ana-console").run_due()
        beat = record_beat(CaseService(intake, desk.clock), "relay", "pipeline")
        assert beat.resolved is not None
    finally:
        consoles.dispose()
        intake.dispose()
    actors = _audit_actors(desk)
    assert ("engine", "case.open") in actors
    assert ("relay", "case.resolve") in actors
    # The grant is for those two columns only: a specialist cannot re-declare a monitor.
    assert "permission denied" in desk.refused(
        "ana", "UPDATE integration SET interval_seconds = 86400 WHERE name = 'pipeline'"
    )


def _ncmec_account(supervisor: Database, desk: Desk, ncmec: StandIn) -> None:
    """sam stores the desk's NCMEC account, pointing at the stand-in."""
    TiplineService(supervisor, desk.clock).setup_account(
        "sam",
        username=ncmec.username,
        password=ncmec.password,
        reporter_first_name="Sam",
        reporter_last_name="Lee",
        reporter_email="tipline@desk.example",
        url=ncmec.url,
    )


def test_a_persons_report_is_sent_by_the_engines_login_which_alone_reads_the_password(
    desk: Desk,
) -> None:
    """ben reviews and files; his login may not read the NCMEC password, so the filing
    waits for the engine's login, which sends it as itself at its next look."""
    draft = check_draft(
        incident_type="csam", incident_at=desk.clock.now() - timedelta(hours=2),
        screen_name="shadow_trader", esp_identifier="u-4471",
    )  # fmt: skip
    supervisor = Database.open(desk.url("sam"), migrate=False)
    person = Database.open(desk.url("ben"), migrate=False)
    engine = Database.open(desk.url("escalator"), migrate=False)
    try:
        with StandIn() as ncmec:
            _ncmec_account(supervisor, desk, ncmec)
            for handle in ("ana", "sam"):
                refused = desk.refused(handle, "SELECT password FROM tipline_account")
                assert "permission denied" in refused, handle
            ref, _case_id = _sensitive_case(desk)
            waiting = TiplineService(person, desk.clock).file_report("ben", ref, draft)  # his case
            assert (waiting.status, waiting.last_error) == ("waiting", HANDED_OVER)
            assert ncmec.calls == []  # nothing sent with a person's login
            [filed] = TiplineService(engine, desk.clock).retry_due(ENGINE, patient=False)
            assert isinstance(filed, FilingView)
            assert filed.status == "finished"
            assert len(ncmec.submitted()) == 1
    finally:
        for db in (supervisor, person, engine):
            db.dispose()
    actors = _audit_actors(desk)
    assert ("ben", "tipline.hand_over") in actors
    assert ("engine", "tipline.finish") in actors


def test_a_persons_console_says_when_no_engine_login_sends_chat_pages(desk: Desk) -> None:
    """ana's console may not send chat, push and webhook pages: its header says so until a
    headless engine (the engine's login) has run; the owner's never does."""
    person = Database.open(desk.url("ana"), migrate=False)
    owner = Database.open(desk.owner_url, migrate=False)
    try:
        assert pages_wait_for_a_sender(person, desk.clock.now())
        assert not pages_wait_for_a_sender(owner, desk.clock.now())
        code, _out, err = desk.vigil("escalator", "engine", "--once")
        assert code == 0, err
        assert not pages_wait_for_a_sender(person, desk.clock.now())
        desk.clock.advance(timedelta(minutes=5))  # and the engine stopped
        assert pages_wait_for_a_sender(person, desk.clock.now())
    finally:
        person.dispose()
        owner.dispose()


def test_the_ncmec_password_goes_only_where_it_was_set_up_for(desk: Desk) -> None:
    """A supervisor cannot select the password, nor send it elsewhere by pointing the
    account's address at a server of their own with plain SQL."""
    supervisor = Database.open(desk.url("sam"), migrate=False)
    engine = Database.open(desk.url("escalator"), migrate=False)
    try:
        with StandIn() as ncmec:
            _ncmec_account(supervisor, desk, ncmec)
            with TiplineService(engine, desk.clock).client():  # as set up: it opens
                pass
            desk.sql("sam", "UPDATE tipline_account SET url = 'http://127.0.0.1:9/'")
            with pytest.raises(NotAllowed, match="changed outside vigil tipline setup"):
                TiplineService(engine, desk.clock).client()
    finally:
        supervisor.dispose()
        engine.dispose()


def test_the_intake_login_acknowledges_by_link_in_the_paged_persons_name(desk: Desk) -> None:
    """`vigil serve` acts on a signed link for the person it was sent to; no other login may
    write an acknowledgement in someone else's name."""
    ref = _page(desk, "sam")
    paged = _audit_actors(desk)
    intake = Database.open(desk.url("relay"), migrate=False)
    try:
        CaseService(intake, desk.clock).acknowledge("ana", ref, via="link")
    finally:
        intake.dispose()
    assert _audit_actors(desk)[len(paged) :] == [("ana", "case.ack")]
    forged = (
        "INSERT INTO audit_record (seq, at, actor, action, case_ref, detail, prev_hash, hash) "
        "VALUES (999, now(), 'ana', 'case.ack', 'X', '{\"how\": \"by link\"}', '', '')"
    )
    assert "writes audit records as ben" in desk.refused("ben", forged)

"""Who may do what, enforced by PostgreSQL itself: the desk's group roles, their grants, and
the checks the database makes on its own (who an audit record names, where the chain's head
may move). SQLite has no logins: there the command line's `--as` names the responder.

Each person connects with a login of their own; a responder maps to one (`db_login`, else the
handle). The group roles are named `<prefix>_specialist`, `_supervisor`, `_admin`, `_engine`
and `_intake`; the prefix is stored in the `setting` table so `team apply` finds them.

The schema's owner (the login that created the tables and runs `vigil db upgrade`) and
superusers stand outside all of this: they own the tables, so grants do not bind them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session, SQLModel

from data.domain import ClockEventKind, DisclosureStatus, EngineAction, Role
from data.models import Setting
from data.queries import DETAILS_FUNCTION
from data.schema import every_table
from data.sealing import may_select
from data.swaps import REQUIRE_APPROVAL_KEY

PREFIX_SETTING = "db.role_prefix"
PERSON_GROUPS = tuple(role.value for role in Role)
SERVICE_GROUPS = ("engine", "intake")
SUPERVISING_GROUPS = (Role.SUPERVISOR.value, Role.ADMIN.value)

ROLE_GATED = frozenset(
    {
        "responder",
        "contact_method",
        "rotation",
        "rotation_member",
        "schedule",
        "schedule_layer",
        "override",
        "holiday",
        "policy",
        "policy_step",
        "routing",
        "sla_target",
        "casework_settings",
        "partner",
        "integration",
        "setting",
        "rotation_version",
        "agency_channel",
        "tipline_account",
    }
)
"""The desk's configuration: written by supervisors and admins (`team apply`, `override`,
the settings commands), read by everyone."""

ENGINE_ACTIONS = (
    *(action.value for action in EngineAction),
    *(
        f"tipline.{step}"
        for step in ("claim", "retract", "submit", "finish", "waiting", "rejected")
    ),
)
"""What the escalation engine records as "engine": a command or a console that pages due
steps at once runs the engine's code under its person's login. The engine also tries a
CyberTipline report again while NCMEC is down (the `tipline.*` steps of a filing)."""
HEARTBEAT_SOURCE = "heartbeat:"
"""The engine also opens the case of a silent heartbeat monitor, as itself (`case.open`
whose source starts so)."""
LINK_ACKS = ("case.ack", "case.ack_partial")
"""What `vigil serve`, as the intake login, records in the name of the person whose signed
acknowledge link was followed (detail `how` = "by link")."""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def valid_prefix(prefix: str) -> bool:
    """A prefix that is a plain lowercase identifier, so every role name stays one too."""
    return (
        0 < len(prefix) <= 40
        and prefix[0].isascii()
        and prefix[0].isalpha()
        and all(c.isascii() and (c.isalnum() or c == "_") for c in prefix)
        and prefix == prefix.lower()
    )


def group_name(prefix: str, group: str) -> str:
    return f"{prefix}_{group}"


@dataclass(frozen=True)
class LoginIdentity:
    """The database's answer to "who is this?" for the current login."""

    login: str
    owner: bool
    """A superuser or the owner of the desk's tables: trusted like SQLite's account."""
    handle: str | None
    """The active responder whose login this is."""


def login_identity(session: Session) -> LoginIdentity:
    row = session.execute(
        text(
            "SELECT current_user, r.rolsuper OR pg_has_role(current_user, t.tableowner, 'MEMBER') "
            "FROM pg_roles r, pg_tables t WHERE r.rolname = current_user "
            "AND t.schemaname = current_schema() AND t.tablename = 'responder'"
        )
    ).one()
    login, owner = str(row[0]), bool(row[1])
    handle = session.execute(
        text(
            "SELECT handle FROM responder WHERE active AND coalesce(db_login, handle) = :login "
            "ORDER BY db_login IS NULL LIMIT 1"
        ),
        {"login": login},
    ).scalar()
    return LoginIdentity(login, owner, None if handle is None else str(handle))


def stored_prefix(session: Session) -> str | None:
    """The prefix `vigil db roles` installed, or None before it ran."""
    row = session.get(Setting, PREFIX_SETTING)
    return None if row is None else row.value


def place_login(session: Session, login: str) -> None:
    """Put `login` in the group of the role of the active responder it is, and in no other
    person group (in none when it is nobody's, or an inactive responder's).

    Runs through the database's `vigil_place_login`, which reads the role from the responder
    table itself (so a caller cannot choose it), creates a responder's missing login without
    a password, and leaves service logins, superusers and the owner alone."""
    session.execute(text("SELECT vigil_place_login(:login)"), {"login": login})


# --- the SQL of `vigil db roles` ------------------------------------------------


SECRET_COLUMNS = {"contact_method": ("url", "secret"), "tipline_account": ("password",)}
"""Columns no person's login may select: only the services that send pages and reports
read them (people know a contact by its shown URL and digests, `data.contacts`; a report a
person files is sent by the engine's login)."""


def reads_secrets(session: Session, table: str = "contact_method") -> bool:
    """Whether this login may read `table`'s `SECRET_COLUMNS`: always on SQLite; on
    PostgreSQL the owner and the services' logins may, people's may not."""
    return may_select(session.connection(), table, SECRET_COLUMNS[table][0])


def _grants(schema: str, prefix: str, tables: Iterable[str]) -> list[str]:
    every = [group_name(prefix, g) for g in (*PERSON_GROUPS, *SERVICE_GROUPS)]
    supervising = [group_name(prefix, g) for g in SUPERVISING_GROUPS]
    others = [g for g in every if g not in supervising]
    everyone, supervisors = ", ".join(every), ", ".join(supervising)
    rest = ", ".join(others)
    q = _quote(schema)
    out = [
        f"GRANT USAGE ON SCHEMA {q} TO {everyone};",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {q} TO {everyone};",
        f"GRANT SELECT ON {q}.alembic_version TO {everyone};",
    ]
    for table in sorted(tables):
        name = f"{q}.{_quote(table)}"
        out.append(f"REVOKE ALL ON {name} FROM PUBLIC, {everyone};")
        if table in ("audit_record", "timeline_event"):  # written once, never changed
            out.append(f"GRANT SELECT, INSERT ON {name} TO {everyone};")
        elif table == "page":  # the timeline's "paged" lines are read from its rows
            out.append(f"GRANT SELECT, INSERT ON {name} TO {everyone};")
            out.append(f"GRANT UPDATE (acknowledged_at) ON {name} TO {everyone};")
        elif table == "audit_head":
            out.append(f"GRANT SELECT, INSERT, UPDATE ON {name} TO {everyone};")
        elif table in ROLE_GATED:
            out.extend(_readers(table, name, prefix))
            out.append(f"GRANT INSERT, UPDATE, DELETE ON {name} TO {supervisors};")
        elif table == "case":
            out.extend(_case_grants(name, prefix))
        else:
            # Nothing Vigil does deletes casework: only the owner may (cascades run as it).
            out.append(f"GRANT SELECT, INSERT, UPDATE ON {name} TO {everyone};")
    # A webhook that answered 410 Gone is marked by whoever runs the outbox.
    out.append(f"GRANT UPDATE (gone_at) ON {q}.contact_method TO {rest};")
    # A heartbeat monitor's beat (the intake service) and its silence (any engine).
    out.append(f"GRANT UPDATE (last_beat_at, down_since) ON {q}.integration TO {rest};")
    # An engine clears the heartbeats of engines long gone (`app.engine.cycle`).
    out.append(f"GRANT DELETE ON {q}.engine_heartbeat TO {everyone};")
    # A swap taken where the desk needs no approval places its taker (row security below).
    out.append(f"GRANT INSERT ON {q}.override TO {rest};")
    return out


def _readers(table: str, name: str, prefix: str) -> list[str]:
    """Everyone reads the desk's configuration; people read all of a table but its
    `SECRET_COLUMNS`, which the services read."""
    every = [group_name(prefix, g) for g in (*PERSON_GROUPS, *SERVICE_GROUPS)]
    secret = SECRET_COLUMNS.get(table)
    if secret is None:
        return [f"GRANT SELECT ON {name} TO {', '.join(every)};"]
    people = ", ".join(group_name(prefix, g) for g in PERSON_GROUPS)
    services = ", ".join(group_name(prefix, g) for g in SERVICE_GROUPS)
    columns = [c.name for c in SQLModel.metadata.tables[table].columns if c.name not in secret]
    return [
        f"GRANT SELECT ON {name} TO {services};",
        f"GRANT SELECT ({', '.join(_quote(c) for c in columns)}) ON {name} TO {people};",
    ]


def _case_grants(name: str, prefix: str) -> list[str]:
    """People read every column of a case but its details, which they read only through
    `vigil_case_details` (below), and never change whether a case is sensitive, nor its
    reference (a reveal record names the case by it); the services keep the whole row (the
    engine never reads details, intake writes them)."""
    people = ", ".join(group_name(prefix, g) for g in PERSON_GROUPS)
    services = ", ".join(group_name(prefix, g) for g in SERVICE_GROUPS)
    columns = [c.name for c in SQLModel.metadata.tables["case"].columns]
    readable = ", ".join(_quote(c) for c in columns if c != "details")
    changeable = ", ".join(_quote(c) for c in columns if c not in ("sensitive", "ref", "id"))
    return [
        f"GRANT SELECT, INSERT, UPDATE ON {name} TO {services};",
        f"GRANT SELECT ({readable}), INSERT, UPDATE ({changeable}) ON {name} TO {people};",
    ]


def _row_security(schema: str, prefix: str) -> list[str]:
    """Clock waivers and disclosure decisions are supervisors' rows in tables that everyone
    writes: row-level security draws the line."""
    q = _quote(schema)
    supervisors = ", ".join(group_name(prefix, g) for g in SUPERVISING_GROUPS)
    rest = ", ".join(group_name(prefix, g) for g in (Role.SPECIALIST.value, *SERVICE_GROUPS))
    me = (
        f"(SELECT id FROM {q}.responder WHERE active AND coalesce(db_login, handle) = current_user)"
    )
    rows = {
        "clock_event": [
            f"FOR INSERT TO {rest} WITH CHECK (kind <> {_literal(ClockEventKind.WAIVED.value)})",
        ],
        "disclosure": [
            f"FOR INSERT TO {rest} WITH CHECK "
            f"(status = {_literal(DisclosureStatus.REQUESTED.value)} AND decided_by_id IS NULL)",
        ],
        # Only themselves, and only where a taken swap needs no supervisor's approval.
        "override": [
            f"FOR INSERT TO {rest} WITH CHECK (responder_id = {me} AND created_by_id = {me} "
            f"AND EXISTS (SELECT 1 FROM {q}.setting WHERE key = {_literal(REQUIRE_APPROVAL_KEY)} "
            "AND value = 'false'))",
        ],
    }
    out: list[str] = []
    for table, policies in rows.items():
        name = f"{q}.{_quote(table)}"
        out.append(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY;")
        for policy in ("vigil_read", "vigil_supervising", "vigil_others"):
            out.append(f"DROP POLICY IF EXISTS {policy} ON {name};")
        out.append(f"CREATE POLICY vigil_read ON {name} FOR SELECT USING (true);")
        out.append(
            f"CREATE POLICY vigil_supervising ON {name} FOR ALL TO {supervisors} "
            "USING (true) WITH CHECK (true);"
        )
        out.extend(f"CREATE POLICY vigil_others ON {name} {policy};" for policy in policies)
    return out


def _functions(schema: str, prefix: str) -> list[str]:
    q = _quote(schema)
    exempt = (
        "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) "
        f"OR pg_has_role(current_user, (SELECT tableowner FROM pg_tables WHERE schemaname = "
        f"{_literal(schema)} AND tablename = 'audit_record'), 'MEMBER')"
    )
    engine_actions = ", ".join(_literal(a) for a in ENGINE_ACTIONS)
    link_acks = ", ".join(_literal(a) for a in LINK_ACKS)
    intake = _literal(group_name(prefix, "intake"))
    engine = _literal(group_name(prefix, "engine"))
    person_groups = ", ".join(_literal(group_name(prefix, g)) for g in PERSON_GROUPS)
    service_groups = " OR ".join(
        f"pg_has_role(login, {_literal(group_name(prefix, g))}, 'MEMBER')" for g in SERVICE_GROUPS
    )
    supervisors = ", ".join(group_name(prefix, g) for g in SUPERVISING_GROUPS)
    everyone = ", ".join(group_name(prefix, g) for g in (*PERSON_GROUPS, *SERVICE_GROUPS))
    owner = exempt.replace("current_user", "session_user")  # inside SECURITY DEFINER
    return [
        # The actor of an audit record is the login that writes it. Checked once per
        # statement over the rows it added: the engine appends thousands in one.
        f"""CREATE OR REPLACE FUNCTION {q}.vigil_audit_actor() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    expected text;
    stranger text;
BEGIN
    IF {exempt} THEN
        RETURN NULL;
    END IF;
    SELECT handle INTO expected FROM {q}.responder
        WHERE active AND coalesce(db_login, handle) = current_user
        ORDER BY db_login IS NULL LIMIT 1;
    SELECT actor INTO stranger FROM added
        WHERE actor IS DISTINCT FROM expected
          AND NOT (actor = 'engine' AND action IN ({engine_actions}))
          AND NOT (actor = 'engine' AND action = 'case.open'
                   AND (detail::jsonb ->> 'source') LIKE {_literal(HEARTBEAT_SOURCE + "%")})
          AND NOT (action IN ({link_acks}) AND (detail::jsonb ->> 'how') = 'by link'
                   AND pg_has_role(current_user, {intake}, 'MEMBER'))
        LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF expected IS NULL THEN
        RAISE EXCEPTION 'login % is not the login of an active responder of this desk',
            current_user USING ERRCODE = 'insufficient_privilege';
    END IF;
    RAISE EXCEPTION 'login % writes audit records as %, not as %',
        current_user, expected, stranger USING ERRCODE = 'insufficient_privilege';
END
$fn$;""",
        f"DROP TRIGGER IF EXISTS vigil_audit_actor ON {q}.audit_record;",
        f"CREATE TRIGGER vigil_audit_actor AFTER INSERT ON {q}.audit_record "
        f"REFERENCING NEW TABLE AS added FOR EACH STATEMENT "
        f"EXECUTE FUNCTION {q}.vigil_audit_actor();",
        # The head may only move to the record last written: it cannot be moved back over a
        # truncation, nor ahead of the records. Checked at commit, after the record landed.
        # A transaction that appends several records moves the head several times: each
        # check looks at the head as it stands at commit.
        f"""CREATE OR REPLACE FUNCTION {q}.vigil_audit_head_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    head {q}.audit_head;
BEGIN
    IF {exempt} THEN
        RETURN NULL;
    END IF;
    SELECT * INTO head FROM {q}.audit_head WHERE id = NEW.id;
    IF EXISTS (SELECT 1 FROM {q}.audit_record WHERE seq > head.seq)
       OR (head.seq > 0 AND NOT EXISTS (
           SELECT 1 FROM {q}.audit_record WHERE seq = head.seq AND hash = head.hash)) THEN
        RAISE EXCEPTION 'the audit head may only move to the record last written'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$fn$;""",
        f"DROP TRIGGER IF EXISTS vigil_audit_head_check ON {q}.audit_head;",
        f"CREATE CONSTRAINT TRIGGER vigil_audit_head_check AFTER INSERT OR UPDATE "
        f"ON {q}.audit_head DEFERRABLE INITIALLY DEFERRED "
        f"FOR EACH ROW EXECUTE FUNCTION {q}.vigil_audit_head_check();",
        # Who a login is, and what they may do, changes only with the team file: a row of
        # `responder` written without a `team.apply` record in the same transaction is
        # refused at commit (a supervisor's hand-made remap would let one login write in
        # another's name). Checked at commit, after the record landed.
        f"""CREATE OR REPLACE FUNCTION {q}.vigil_responder_audited() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF {exempt} THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM {q}.audit_record
                   WHERE action = 'team.apply' AND NOT {q}.vigil_settled(xmin)) THEN
        RAISE EXCEPTION 'responders change only through vigil team apply, with its audit record'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$fn$;""",
        f"DROP TRIGGER IF EXISTS vigil_responder_audited ON {q}.responder;",
        f"CREATE CONSTRAINT TRIGGER vigil_responder_audited AFTER INSERT OR UPDATE OR DELETE "
        f"ON {q}.responder DEFERRABLE INITIALLY DEFERRED "
        f"FOR EACH ROW EXECUTE FUNCTION {q}.vigil_responder_audited();",
        # `team apply` keeps each login in its group; run with the rights of the one who
        # installed the roles, and only for the person groups.
        f"""CREATE OR REPLACE FUNCTION {q}.vigil_place_login(login text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    wanted text;
    grp text;
BEGIN
    SELECT CASE WHEN active THEN {_literal(prefix)} || '_' || role END INTO wanted
        FROM {q}.responder WHERE coalesce(db_login, handle) = login
        ORDER BY db_login IS NULL LIMIT 1;
    IF wanted IS NOT NULL AND wanted NOT IN ({person_groups}) THEN
        RAISE EXCEPTION 'role %: expected one of specialist, supervisor, admin', wanted;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = login) THEN
        IF wanted IS NULL THEN
            RETURN;
        END IF;
        EXECUTE format('CREATE ROLE %I LOGIN', login);
    END IF;
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = login)
       OR login IN ({person_groups}) OR {service_groups}
       OR pg_has_role(login, (SELECT tableowner FROM pg_tables WHERE schemaname =
           {_literal(schema)} AND tablename = 'responder'), 'MEMBER') THEN
        RETURN;  -- the owner, a superuser or a service login: not a person's to move
    END IF;
    FOREACH grp IN ARRAY ARRAY[{person_groups}] LOOP
        IF grp = wanted THEN
            EXECUTE format('GRANT %I TO %I', grp, login);
        ELSIF EXISTS (
            SELECT 1 FROM pg_auth_members m
            JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
            WHERE g.rolname = grp AND u.rolname = login) THEN
            EXECUTE format('REVOKE %I FROM %I', grp, login);
        END IF;
    END LOOP;
END
$fn$;""",
        # Whether a row's writer (its xmin) is settled: not this transaction nor any of its
        # savepoints, whose work a rollback would take back. Visible rows of others are
        # committed; a frozen xmin is long settled.
        f"""CREATE OR REPLACE FUNCTION {q}.vigil_settled(writer xid) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    unassigned bigint := pg_snapshot_xmax(pg_current_snapshot())::text::bigint;
    low bigint := writer::text::bigint;
    whole bigint;
BEGIN
    IF low < 3 THEN
        RETURN true;
    END IF;
    -- The writer's full id, taken in the snapshot's epoch. At or past the snapshot's
    -- horizon a visible writer can only be this transaction (or a savepoint of it); the
    -- rare row written just before an epoch wrapped is refused too, which fails closed.
    whole := ((unassigned >> 32) << 32) | low;
    IF whole >= unassigned THEN
        RETURN false;
    END IF;
    RETURN pg_xact_status(whole::text::xid8) IS DISTINCT FROM 'in progress';
END
$fn$;""",
        # A case's details, for those who may not select the column: a sensitive case's
        # only once the reader's own reveal record of it is committed. Nothing the reading
        # transaction wrote counts (a rollback, of it or of a savepoint, would take it back
        # and leave the read done): not a reveal record, not a change to the case or to
        # the responder row that maps the login. The trigger above sees to the record's actor.
        f"""CREATE OR REPLACE FUNCTION {q}.{DETAILS_FUNCTION}(wanted integer)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    target record;
    reader record;
BEGIN
    SELECT ref, sensitive, details, xmin AS writer INTO target
        FROM {q}."case" WHERE id = wanted;
    IF NOT FOUND THEN
        RETURN NULL;
    ELSIF NOT target.sensitive OR {owner} THEN
        RETURN target.details;  -- the owner reads the table itself anyway
    END IF;
    SELECT handle, xmin AS writer INTO reader FROM {q}.responder
        WHERE active AND coalesce(db_login, handle) = session_user
        ORDER BY db_login IS NULL LIMIT 1;
    IF FOUND AND {q}.vigil_settled(target.writer) AND {q}.vigil_settled(reader.writer)
       AND EXISTS (SELECT 1 FROM {q}.audit_record
                   WHERE action = 'case.reveal' AND case_ref = target.ref
                     AND actor = reader.handle AND {q}.vigil_settled(xmin)) THEN
        RETURN target.details;
    END IF;
    RAISE EXCEPTION 'the details of sensitive case % are read only after a committed reveal '
        'record of it by the reader, in a transaction that changed neither the case nor the '
        'reader', target.ref USING ERRCODE = 'insufficient_privilege';
END
$fn$;""",
        f"REVOKE ALL ON FUNCTION {q}.vigil_settled(xid) FROM PUBLIC;",
        f"GRANT EXECUTE ON FUNCTION {q}.vigil_settled(xid) TO {everyone};",
        # Details are written once (sealed in the case's INSERT); people never overwrite
        # them, as they never read them.
        f"""CREATE OR REPLACE FUNCTION {q}.vigil_details_once() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF OLD.details <> '' AND NEW.details IS DISTINCT FROM OLD.details
       AND NOT ({exempt})
       AND NOT pg_has_role(current_user, {intake}, 'MEMBER')
       AND NOT pg_has_role(current_user, {engine}, 'MEMBER') THEN
        RAISE EXCEPTION 'a case''s details are written once, when it is opened'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$fn$;""",
        f'DROP TRIGGER IF EXISTS vigil_details_once ON {q}."case";',
        f'CREATE TRIGGER vigil_details_once BEFORE UPDATE OF details ON {q}."case" '
        f"FOR EACH ROW EXECUTE FUNCTION {q}.vigil_details_once();",
        f"REVOKE ALL ON FUNCTION {q}.{DETAILS_FUNCTION}(integer) FROM PUBLIC;",
        f"GRANT EXECUTE ON FUNCTION {q}.{DETAILS_FUNCTION}(integer) TO {everyone};",
        f"DROP FUNCTION IF EXISTS {q}.vigil_place_login(text, text);",
        f"REVOKE ALL ON FUNCTION {q}.vigil_place_login(text) FROM PUBLIC;",
        f"GRANT EXECUTE ON FUNCTION {q}.vigil_place_login(text) TO {supervisors};",
    ]


def _create_role(name: str, kind: str) -> str:
    """A role made if missing; never a password (credentials are the DBA's and libpq's)."""
    return (
        "DO $do$ BEGIN "
        f"IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {_literal(name)}) THEN "
        f"CREATE ROLE {_quote(name)} {kind}; END IF; END $do$;"
    )


def _create_login(login: str) -> str:
    return _create_role(login, "LOGIN")


def _groups(prefix: str) -> list[str]:
    return [
        _create_role(group_name(prefix, group), "NOLOGIN")
        for group in (*PERSON_GROUPS, *SERVICE_GROUPS)
    ]


def role_statements(
    schema: str, prefix: str, *, engine: Iterable[str] = (), intake: Iterable[str] = ()
) -> list[str]:
    """Everything `vigil db roles` runs, in order; idempotent, so it can run again after
    `vigil db upgrade` added tables. `engine` and `intake` name the service logins."""
    tables = list(every_table().tables)
    out = _groups(prefix)
    for group, logins in (("engine", engine), ("intake", intake)):
        for login in logins:
            out.append(_create_login(login))
            out.append(f"GRANT {_quote(group_name(prefix, group))} TO {_quote(login)};")
    out += _grants(schema, prefix, tables)
    out += _row_security(schema, prefix)
    out += _functions(schema, prefix)
    out.append(
        f"INSERT INTO {_quote(schema)}.setting (key, value) "
        f"VALUES ({_literal(PREFIX_SETTING)}, {_literal(prefix)}) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;"
    )
    return out

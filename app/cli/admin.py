"""Desk administration: `vigil team apply|export`, `vigil audit verify|log`,
`vigil db upgrade|rotate-key`."""

from __future__ import annotations

import sys
from pathlib import Path

from app.cli.framework import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, Commands, Context
from app.cli.render import audit_log_text
from app.core.errors import BadInput
from app.core.times import iso
from widgets.timefmt import plural


def cmd_team_apply(ctx: Context) -> int:
    from app.services.team.apply import apply_team
    from app.services.team.parse import load_team_file
    from app.services.team.spec import TeamFileError

    try:
        spec = load_team_file(Path(ctx.args.file))
    except TeamFileError as exc:
        ctx.err.write(f"vigil team apply: {exc}\n")
        return EXIT_USAGE
    result = apply_team(
        ctx.db, spec, actor=ctx.actor, now=ctx.clock.now(), dry_run=ctx.args.dry_run
    )
    for warning in result.warnings:
        ctx.err.write(f"warning: {warning}\n")
    lines = result.plan.lines()
    head = "Dry run: would apply" if ctx.args.dry_run else "Applied"
    text = "No changes." if not lines else f"{head}:\n" + "\n".join(f"  {line}" for line in lines)
    now = result.plan.on_call_now
    if now:
        text += "\nOn call now, before -> after:\n" + "\n".join(f"  {row.line}" for row in now)
    body = {
        "changes": lines,
        "on_call_now": [row.as_dict() for row in now],
        "warnings": result.warnings,
        "dry_run": ctx.args.dry_run,
    }
    ctx.emit(body, text)
    return EXIT_OK


def cmd_team_export(ctx: Context) -> int:
    from app.services.team.export import export_team

    with ctx.db.read() as session:
        ctx.out.write(export_team(session))
    return EXIT_OK


def cmd_audit_verify(ctx: Context) -> int:
    from data import audit

    if ctx.args.since_checkpoint is not None:
        return cmd_audit_verify_since(ctx)
    with ctx.db.read() as session:
        report = audit.verify(session)
    if report.ok:
        ctx.emit(
            {"ok": True, "checked": report.checked},
            f"Audit chain intact: {report.checked} records.",
        )
        return EXIT_OK
    ctx.emit(
        {
            "ok": False,
            "checked": report.checked,
            "first_bad": report.bad_seq,
            "reason": report.reason,
        },
        f"Audit chain BROKEN at record {report.bad_seq}: {report.reason}",
    )
    return EXIT_REFUSED


def cmd_audit_checkpoint(ctx: Context) -> int:
    """Print the chain's head for safekeeping outside the database, once the chain checks."""
    from data import audit, checkpoints

    with ctx.db.read() as session:
        report = audit.verify(session)
        if not report.ok:
            ctx.err.write(
                f"vigil audit checkpoint: the audit chain is broken at record {report.bad_seq} "
                f"({report.reason}); a checkpoint of it would witness the damage\n"
            )
            return EXIT_REFUSED
        stored = checkpoints.head(session)
    checkpoint = checkpoints.Checkpoint(stored.seq, stored.hash, ctx.clock.now())
    ctx.emit(
        {
            "seq": checkpoint.seq,
            "hash": checkpoint.hash,
            "at": iso(checkpoint.at),
            "records": report.checked,
            "line": checkpoint.line(),
        },
        checkpoint.line(),
    )
    if not ctx.args.send:
        return EXIT_OK
    from app.delivery.witness import send_checkpoint

    witnesses = send_checkpoint(ctx.db, checkpoint)
    if not witnesses:
        ctx.err.write(
            "vigil audit checkpoint: sent nowhere: no active supervisor or admin has a webhook "
            "or Apprise contact in the team file\n"
        )
        return EXIT_REFUSED
    for witness in witnesses:
        said = "sent" if witness.ok else f"NOT sent: {witness.problem}"
        ctx.err.write(
            f"vigil audit checkpoint: to {witness.handle}'s {witness.kind} {witness.shown}: "
            f"{said}\n"
        )
    return EXIT_OK if all(w.ok for w in witnesses) else EXIT_REFUSED


def _checkpoint_text(ctx: Context, given: str) -> str:
    """A file of checkpoints, `-` for standard input, or the checkpoint line itself."""
    if given == "-":
        return sys.stdin.read()
    if "vigil-checkpoint" in given:
        return given
    try:
        return Path(given).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise BadInput(
            "--since-checkpoint",
            f"expected a file of checkpoints or a checkpoint line, cannot read {given!r}: "
            f"{exc.strerror or exc}",
        ) from None


def cmd_audit_verify_since(ctx: Context) -> int:
    from data import checkpoints

    try:
        witnessed = checkpoints.parse(_checkpoint_text(ctx, ctx.args.since_checkpoint))
    except ValueError as exc:
        raise BadInput("--since-checkpoint", str(exc)) from None
    with ctx.db.read() as session:
        report = checkpoints.verify_against(session, witnessed)
    latest = report.checkpoint
    taken = f", taken {iso(latest.at)}" if latest.at else ""
    payload = {
        "ok": report.ok,
        "checkpoint": {"seq": latest.seq, "hash": latest.hash, "at": iso(latest.at)},
        "checkpoints": len(witnessed),
        "records": report.records,
        "added_since": report.added,
        "problems": list(report.problems),
    }
    if report.ok:
        ctx.emit(
            payload,
            f"Audit chain intact up to the checkpoint at record {latest.seq}{taken}: nothing up "
            "to it was changed, removed, reordered or re-hashed; "
            f"{plural(report.added, 'record')} added since "
            "(those are witnessed by no checkpoint yet).",
        )
        return EXIT_OK
    ctx.emit(
        payload,
        f"Audit chain does NOT match the checkpoint at record {latest.seq}{taken}:\n"
        + "\n".join(f"  {problem}" for problem in report.problems),
    )
    return EXIT_REFUSED


def cmd_audit_log(ctx: Context) -> int:
    from sqlmodel import col, select

    from data import audit
    from data.models import AuditRecord

    with ctx.db.read() as session:
        if ctx.args.case:
            ref = ctx.args.case.strip().upper()
            said = [
                (r, action, ref, detail, r.detail.get("cases") if r.case_ref is None else None)
                for r, action, detail in audit.records_of_case(session, ref)
            ]
        else:
            records = session.exec(select(AuditRecord).order_by(col(AuditRecord.seq))).all()
            said = [(r, r.action, r.case_ref, r.detail, None) for r in records]
    body = [
        {
            "seq": r.seq,
            "at": iso(r.at),
            "actor": r.actor,
            "action": action,
            "case": case,
            "detail": detail,
            # A batch's record, shown for one of its cases: how many it covers in all.
            **({"batch_of": batch} if batch else {}),
            "hash": r.hash,
        }
        for r, action, case, detail, batch in said
    ]
    ctx.emit(body, audit_log_text(body))
    return EXIT_OK


def cmd_db_upgrade(ctx: Context) -> int:
    from data.db import make_engine, refuse_memory
    from data.schema import upgrade

    refuse_memory(ctx.args.db)
    engine = make_engine(ctx.args.db)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    text = (
        f"Schema at {after}."
        if before == after
        else f"Schema upgraded {before or 'new'} -> {after}."
    )
    ctx.emit({"from": before, "to": after}, text)
    return EXIT_OK


def cmd_db_roles(ctx: Context) -> int:
    """Install the desk's group roles, grants and checks (PostgreSQL), or print their SQL."""
    from sqlalchemy import select, text
    from sqlalchemy.exc import DBAPIError

    from app.core.errors import BadInput, NotAllowed
    from app.services.team.apply import logins_of, place_logins
    from data import access
    from data.models import Responder

    prefix = ctx.args.prefix
    if not access.valid_prefix(prefix):
        raise BadInput(
            "--prefix",
            f"expected a lowercase letter, then lowercase letters, digits or '_' "
            f"(40 at most), got {prefix!r}",
        )
    if not ctx.db.is_postgres:
        raise NotAllowed(
            "database roles are PostgreSQL's: a SQLite desk is one OS account's, and "
            "`--as` names its responder (see the README's access section)"
        )
    with ctx.db.read() as reading:
        schema = str(reading.execute(text("SELECT current_schema()")).scalar())
        owner = access.login_identity(reading).owner
    statements = access.role_statements(
        schema, prefix, engine=ctx.args.engine or (), intake=ctx.args.intake or ()
    )
    if ctx.args.print:
        ctx.out.write("BEGIN;\n" + "\n".join(statements) + "\nCOMMIT;\n")
        return EXIT_OK
    if not owner:
        raise NotAllowed(
            "only the owner of the desk's tables installs roles: connect as that login, or "
            "run `vigil db roles --print` and hand the SQL to your DBA"
        )
    try:
        with ctx.db.write() as writing:
            cursor = writing.connection().connection.cursor()
            for statement in statements:
                cursor.execute(statement)
            responders = writing.execute(select(Responder)).scalars().all()
            place_logins(writing, logins_of(responders))
    except DBAPIError as exc:
        raise NotAllowed(
            f"the database refused to install the roles ({str(exc.orig).strip()}); the login "
            "needs CREATEROLE, or run `vigil db roles --print` and hand the SQL to your DBA"
        ) from None
    groups = [access.group_name(prefix, g) for g in (*access.PERSON_GROUPS, *access.SERVICE_GROUPS)]
    ctx.emit(
        {"schema": schema, "groups": groups, "logins_placed": len(responders)},
        f"Roles installed in schema {schema}: {', '.join(groups)}; "
        f"{len(responders)} responder login(s) placed in their groups.",
    )
    return EXIT_OK


def cmd_db_rotate_key(ctx: Context) -> int:
    from data.keys import KEY_ENV
    from data.rotation import rotate_key

    done = rotate_key(ctx.db, actor=ctx.actor, at=ctx.clock.now())
    retired = ", ".join(done.retired) or "none"
    if done.key_file:
        after = (
            f"The key file holds only the new key now. Backups made before keep needing the "
            f"old key ({retired})."
        )
    else:
        after = f"Now set {KEY_ENV} to the new key alone; the old keys ({retired}) open nothing."
    ctx.emit(
        {"key_id": done.key_id, "retired": list(done.retired), "resealed": done.resealed},
        f"Sealed {done.resealed} values again with key {done.key_id}. {after}",
    )
    return EXIT_OK


def register(commands: Commands) -> None:
    team = commands.group("team")
    p = team.add(
        "apply", cmd_team_apply, "apply a team file (idempotent)", checks_its_own_actor=True
    )
    p.add_argument("file", metavar="FILE.toml")
    p.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    team.add("export", cmd_team_export, "print the team as a team file")

    audit_group = commands.group("audit")
    p = audit_group.add("verify", cmd_audit_verify, "check the hash chain")
    p.add_argument(
        "--since-checkpoint",
        metavar="FILE_OR_TEXT",
        help="also prove nothing up to this checkpoint changed (a file of checkpoints, "
        "a checkpoint line, or - for standard input)",
    )
    p = audit_group.add(
        "checkpoint",
        cmd_audit_checkpoint,
        "print the chain's head to keep outside the database (for verify --since-checkpoint)",
    )
    p.add_argument(
        "--send",
        action="store_true",
        help="also send it to every supervisor's and admin's webhook and Apprise contacts",
    )
    p = audit_group.add("log", cmd_audit_log, "list audit records")
    p.add_argument("--case", metavar="REF")

    db_group = commands.group("db")
    db_group.add("upgrade", cmd_db_upgrade, "apply schema migrations", checks_its_own_actor=True)
    p = db_group.add(
        "roles",
        cmd_db_roles,
        "PostgreSQL: install the desk's group roles, grants and checks",
        checks_its_own_actor=True,
    )
    p.add_argument("--print", action="store_true", help="print the SQL for a DBA, change nothing")
    p.add_argument(
        "--prefix",
        default="vigil",
        help="group roles are PREFIX_specialist, _supervisor, _admin, _engine, _intake",
    )
    p.add_argument(
        "--engine", action="append", metavar="LOGIN", help="a login the engine service runs as"
    )
    p.add_argument(
        "--intake", action="append", metavar="LOGIN", help="a login `vigil serve` runs as"
    )
    db_group.add(
        "rotate-key",
        cmd_db_rotate_key,
        "seal every sealed value again with a new key (all or nothing)",
        checks_its_own_actor=True,
    )

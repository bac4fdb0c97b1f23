"""Desk administration: `vigil team apply|export`, `vigil audit verify|log`,
`vigil db upgrade|rotate-key`."""

from __future__ import annotations

import json
from pathlib import Path

from app.cli.framework import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, Commands, Context


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
    ctx.emit({"changes": lines, "warnings": result.warnings, "dry_run": ctx.args.dry_run}, text)
    return EXIT_OK


def cmd_team_export(ctx: Context) -> int:
    from app.services.team.export import export_team

    with ctx.db.read() as session:
        ctx.out.write(export_team(session))
    return EXIT_OK


def cmd_audit_verify(ctx: Context) -> int:
    from data import audit

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


def cmd_audit_log(ctx: Context) -> int:
    from sqlmodel import col, select

    from app.core.times import iso
    from data.models import AuditRecord

    with ctx.db.read() as session:
        statement = select(AuditRecord).order_by(col(AuditRecord.seq))
        if ctx.args.case:
            statement = statement.where(AuditRecord.case_ref == ctx.args.case.strip().upper())
        records = session.exec(statement).all()
    body = [
        {
            "seq": r.seq,
            "at": iso(r.at),
            "actor": r.actor,
            "action": r.action,
            "case": r.case_ref,
            "detail": r.detail,
            "hash": r.hash,
        }
        for r in records
    ]
    text = "\n".join(
        f"{r['seq']:>6}  {r['at']}  {r['actor']:<12} {r['action']:<18} {r['case'] or '-':<10} "
        f"{json.dumps(r['detail'], sort_keys=True)}"
        for r in body
    )
    ctx.emit(body, text or "No audit records.")
    return EXIT_OK


def cmd_db_upgrade(ctx: Context) -> int:
    from data.db import make_engine
    from data.schema import upgrade

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


def cmd_db_rotate_key(ctx: Context) -> int:
    from data.keys import KEY_ENV
    from data.rotation import rotate_key

    done = rotate_key(ctx.db)
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
    p = team.add("apply", cmd_team_apply, "apply a team file (idempotent)")
    p.add_argument("file", metavar="FILE.toml")
    p.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    team.add("export", cmd_team_export, "print the team as a team file")

    audit_group = commands.group("audit")
    audit_group.add("verify", cmd_audit_verify, "check the hash chain")
    p = audit_group.add("log", cmd_audit_log, "list audit records")
    p.add_argument("--case", metavar="REF")

    db_group = commands.group("db")
    db_group.add("upgrade", cmd_db_upgrade, "apply schema migrations")
    db_group.add(
        "rotate-key",
        cmd_db_rotate_key,
        "seal every sealed value again with a new key (all or nothing)",
    )

"""The `vigil` command line. Exit codes (contract): 0 done, 1 refused, 2 bad input or usage."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.cases import CaseService
from app.clock import Clock, SystemClock
from app.errors import BadInput, NotFound, NothingToDo, Refused, VigilError
from data.db import Database, DatabaseError, SchemaOutOfDate
from data.domain import Category
from data.models import Case

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


class UsageError(VigilError):
    exit_code = EXIT_USAGE


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises instead of exiting, so every exit goes one way."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


@dataclass
class Context:
    args: argparse.Namespace
    clock: Clock
    out: TextIO
    err: TextIO
    _db: Database | None = None

    @property
    def actor(self) -> str:
        chosen: str | None = self.args.actor or os.environ.get("VIGIL_USER")
        return chosen or getpass.getuser()

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database.open(self.args.db)
        return self._db

    @property
    def cases(self) -> CaseService:
        return CaseService(self.db, self.clock)

    @property
    def as_json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def emit(self, payload: Any, text: str) -> None:
        if self.as_json:
            json.dump(payload, self.out, indent=2, sort_keys=False, ensure_ascii=False)
            self.out.write("\n")
        else:
            self.out.write(text if text.endswith("\n") else text + "\n")


def parse_instant(field: str, value: str) -> datetime:
    """An ISO 8601 instant; a value without an offset is refused (it would be ambiguous)."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(
            field, f"expected an ISO 8601 time such as 2026-12-24T20:00:00+11:00, got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        raise BadInput(field, f"expected a time with an offset (Z or +11:00), got {value!r}")
    return parsed.astimezone(UTC)


# --- commands ---------------------------------------------------------------


def cmd_page(ctx: Context) -> int:
    a = ctx.args
    result = ctx.cases.open_case(
        ctx.actor,
        title=a.title,
        category=a.category,
        severity=a.severity,
        details=a.details or "",
        policy=a.policy,
        dedup_key=a.dedup_key,
        sensitive=a.sensitive,
    )
    start_escalation(ctx, [result.case_id])
    ctx.emit(
        {"ref": result.ref, "created": result.created},
        result.ref if result.created else f"{result.ref} (already open for this dedup key)",
    )
    return EXIT_OK


def start_escalation(ctx: Context, case_ids: list[int]) -> None:
    """Page step 1 now, so a case opened from the command line never waits for an engine."""
    from app.engine import EscalationEngine

    EscalationEngine(ctx.db, ctx.clock, name=f"cli:{ctx.actor}").run_due(case_ids=case_ids)


def _show_case_text(body: dict[str, Any], details: str | None) -> str:
    lines = [
        f"{body['ref']}  {body['severity']}  {body['category']}  {body['status']}/{body['stage']}",
        f"  {body['title']}",
        f"  assignee: {body['assignee'] or '-'}   policy: {body['policy']}   "
        f"step {body['escalation_step']} round {body['escalation_round'] + 1}"
        + ("   EXHAUSTED" if body["exhausted"] else ""),
        f"  opened {body['created_at']}   ack by {body['sla_ack_due_at']}",
    ]
    if body["acknowledged_at"]:
        lines.append(f"  acknowledged {body['acknowledged_at']} by {body['acknowledged_by']}")
    if body["resolved_at"]:
        lines.append(f"  resolved {body['resolved_at']}")
    lines.append(f"  details: {details}")
    if body["pages"]:
        lines.append("  pages:")
        for page in body["pages"]:
            channels = ", ".join(f"{c['channel']}={c['status']}" for c in page["channels"])
            lines.append(
                f"    {page['sent_at']}  {page['handle']}  step {page['step']} "
                f"round {page['round'] + 1}  {page['reason']}  [{channels}]"
            )
    return "\n".join(lines)


def cmd_show(ctx: Context) -> int:
    from app.presenters import HIDDEN, case_json
    from data.queries import case_by_ref

    with ctx.db.read() as session:
        case = case_by_ref(session, ctx.args.ref)
        if case is None:
            raise NotFound(f"no case {ctx.args.ref!r}")
        body = case_json(session, case, with_details=True)
        sensitive = case.sensitive
    details: str | None = body.get("details")
    if sensitive:
        if ctx.args.reveal:
            details = ctx.cases.reveal(ctx.actor, case.ref, reason="vigil show --reveal")
            body["details"] = details
        else:
            details = HIDDEN + " (use --reveal; the reveal is audited)"
    ctx.emit(body, _show_case_text(body, details))
    return EXIT_OK


def cmd_cases(ctx: Context) -> int:
    from app.presenters import cases_json
    from data import queries
    from data.domain import Status

    status = ctx.args.status
    if status and status not in {s.value for s in Status}:
        raise BadInput("--status", f"expected triggered, acknowledged or resolved, got {status!r}")
    with ctx.db.read() as session:
        rows = queries.cases(session, status=status, limit=ctx.args.limit)
        if status is None and not ctx.args.all:
            # As the console's queue: open cases, and resolved ones that still owe a report.
            rows = [c for c in rows if c.queue_rank < queries.QUEUE_RANKS["resolved"]]
        body = cases_json(session, rows)
    ctx.emit(body, format_case_table(body))
    return EXIT_OK


def format_case_table(body: list[dict[str, Any]]) -> str:
    if not body:
        return "No cases."
    header = f"{'REF':<10} {'SEV':<5} {'STATUS':<13} {'CATEGORY':<18} {'ASSIGNEE':<10} TITLE"
    lines = [header]
    for c in body:
        lines.append(
            f"{c['ref']:<10} {c['severity']:<5} {c['status']:<13} {c['category']:<18} "
            f"{(c['assignee'] or '-'):<10} {c['title']}"
        )
    return "\n".join(lines)


def _owed_reports(ctx: Context, case: Case) -> list[str]:
    """What a just-resolved case still owes an authority, one line per report."""
    from app.casework import owed_report_text, owed_reports

    now = ctx.clock.now()
    with ctx.db.read() as session:
        owed = owed_reports(session, [case], now).get(case.id or 0, [])
        return [owed_report_text(clock, now) for clock in owed]


def _case_action(verb: str) -> Callable[[Context], int]:
    def run(ctx: Context) -> int:
        service, actor, ref = ctx.cases, ctx.actor, ctx.args.ref
        if verb == "ack":
            case = service.acknowledge(actor, ref)
            text = f"{case.ref} {case.status}"
        elif verb == "resolve":
            case = service.resolve(actor, ref, note=ctx.args.note)
            owed = _owed_reports(ctx, case)
            ctx.emit(
                {"ref": case.ref, "status": case.status, "stage": case.stage, "owed": owed},
                f"{case.ref} resolved",
            )
            if owed:
                lines = "".join(f"  {line}\n" for line in owed)
                ctx.err.write(
                    f"{case.ref} still owes:\n{lines}It stays in the open queue until the "
                    f"report is filed: vigil clock file {case.ref} --report-id ID\n"
                )
            return EXIT_OK
        elif verb == "reassign":
            case = service.reassign(actor, ref, ctx.args.to)
            text = f"{case.ref} reassigned to {ctx.args.to}"
        elif verb == "note":
            case = service.add_note(actor, ref, ctx.args.text)
            text = f"Note added to {case.ref}"
        elif verb == "stage":
            case = service.set_stage(actor, ref, ctx.args.stage)
            text = f"{case.ref} stage {case.stage}"
        else:
            case = service.escalate_now(actor, ref)
            start_escalation(ctx, [case.id] if case.id else [])
            text = f"{case.ref} escalated"
        ctx.emit({"ref": case.ref, "status": case.status, "stage": case.stage}, text)
        return EXIT_OK

    return run


def cmd_intake(ctx: Context) -> int:
    from app.intake_store import store_intake

    source = ctx.args.file
    if source in (None, "-"):
        text = sys.stdin.read()
    else:
        try:
            text = Path(source).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise BadInput("FILE", f"no such file {source!r}") from None
        except OSError as exc:  # a folder, no permission, a name too long...
            raise BadInput("FILE", f"cannot read {source!r}: {exc.strerror or exc}") from None
    outcome = store_intake(ctx.cases, ctx.actor, text, ctx.args.format)
    if outcome.is_empty():
        raise NothingToDo("vigil intake: the input holds no events")
    start_escalation(ctx, outcome.case_ids)
    ctx.emit(outcome.as_json(), outcome.as_text())
    for error in outcome.errors:
        ctx.err.write(f"vigil intake: {error.position}: {error.reason}\n")
    return EXIT_USAGE if outcome.errors else EXIT_OK


def cmd_team_apply(ctx: Context) -> int:
    from app.team import TeamFileError, apply_team, load_team_file

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
    from app.team import export_team

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

    from app.presenters import iso
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


def cmd_engine(ctx: Context) -> int:
    from app.engine import run_headless

    return run_headless(ctx.db, ctx.clock, once=ctx.args.once)


def cmd_demo(ctx: Context) -> int:
    from app.demo import build_demo

    summary = build_demo(ctx.db, now=ctx.clock.now(), reset=ctx.args.reset)
    ctx.err.write(summary + "\n")
    if ctx.args.no_console:
        return EXIT_OK
    return open_console(ctx, as_handle=ctx.args.actor or os.environ.get("VIGIL_USER") or "ana")


def cmd_console(ctx: Context) -> int:
    return open_console(ctx, as_handle=ctx.actor)


def open_console(ctx: Context, *, as_handle: str) -> int:
    try:
        from app.console import run_console
    except ImportError:
        ctx.args.status, ctx.args.limit, ctx.args.all = None, None, False
        return cmd_cases(ctx)
    return run_console(
        ctx.db, ctx.clock, as_handle, engine=not getattr(ctx.args, "no_engine", False)
    )


# --- parser -----------------------------------------------------------------


@dataclass
class Commands:
    """Where commands are added: the top level, or a group such as `team` or `audit`."""

    subparsers: Any
    common: argparse.ArgumentParser
    prefix: str = "vigil"

    def add(
        self, name: str, handler: Callable[[Context], int], help_text: str
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self.subparsers.add_parser(
            name, parents=[self.common], help=help_text, description=help_text
        )
        parser.set_defaults(handler=handler)
        return parser

    def group(self, name: str, help_text: str) -> Commands:
        """A command that only holds actions (`vigil team apply`, `vigil team export`)."""
        prog = f"{self.prefix} {name}"

        def missing(_ctx: Context) -> int:
            actions = " | ".join(sorted(nested.subparsers.choices))
            raise UsageError(f"{prog}: expected an action: {actions}")

        parser = self.add(name, missing, help_text)
        nested = Commands(
            parser.add_subparsers(dest=f"{name}_action", parser_class=_Parser, metavar="ACTION"),
            self.common,
            prog,
        )
        return nested


def _check_decodable(argv: Sequence[str]) -> None:
    """Bytes that are not UTF-8 reach Python as lone surrogates, which nothing can store."""
    for position, arg in enumerate(argv, 1):
        if any("\ud800" <= ch <= "\udfff" for ch in arg):
            raise UsageError(f"vigil: argument {position} is not valid UTF-8 text")


def _command_extensions() -> list[Callable[[Commands], None]]:
    """Command modules beside this one register their own commands here."""
    from app import cli_calendar, cli_casework, cli_shift

    return [cli_casework.register, cli_shift.register, cli_calendar.register]


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--db",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="database URL (else VIGIL_DB, else the SQLite file under XDG_DATA_HOME)",
    )
    common.add_argument(
        "--as",
        dest="actor",
        metavar="HANDLE",
        default=argparse.SUPPRESS,
        help="act as this responder (else VIGIL_USER, else the login name)",
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="machine-readable JSON on stdout",
    )

    parser = _Parser(
        prog="vigil",
        parents=[common],
        description="Vigil: the on-call console of an escalation-response desk.",
    )
    parser.add_argument(
        "--no-engine",
        action="store_true",
        help="open the console without the in-process escalation loop",
    )
    parser.set_defaults(handler=cmd_console)
    commands = Commands(
        parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND"), common
    )
    command = commands.add

    p = command(
        "demo", cmd_demo, "fill the database with a realistic demo desk, then open the console"
    )
    p.add_argument("--reset", action="store_true", help="wipe the database first")
    p.add_argument("--no-console", action="store_true", help="do not open the console afterwards")
    p.add_argument("--no-engine", action="store_true", help=argparse.SUPPRESS)

    team = commands.group("team", "declare or export the team")
    p = team.add("apply", cmd_team_apply, "apply a team file (idempotent)")
    p.add_argument("file", metavar="FILE.toml")
    p.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    team.add("export", cmd_team_export, "print the team as a team file")

    p = command("page", cmd_page, "open a case and start escalation; prints its reference")
    p.add_argument("--title", required=True)
    p.add_argument(
        "--category",
        required=True,
        help="one of: " + ", ".join(c.value for c in Category),
    )
    p.add_argument("--severity", required=True, help="sev1..sev4 or 1..4")
    p.add_argument("--details", default="")
    p.add_argument("--policy")
    p.add_argument("--dedup-key")
    p.add_argument("--sensitive", action="store_true")

    p = command("intake", cmd_intake, "take events as a JSON array or JSON lines")
    p.add_argument(
        "file", nargs="?", metavar="FILE", help="a file, or - for standard input (default)"
    )
    p.add_argument(
        "--format", default="auto", choices=["auto", "vigil", "pagerduty", "alertmanager"]
    )

    p = command("ack", _case_action("ack"), "acknowledge a case")
    p.add_argument("ref")
    p = command("resolve", _case_action("resolve"), "resolve a case")
    p.add_argument("ref")
    p.add_argument("--note")
    p = command(
        "reassign", _case_action("reassign"), "reassign a case (supervisors, or your own case)"
    )
    p.add_argument("ref")
    p.add_argument("--to", required=True, metavar="HANDLE")
    p = command("note", _case_action("note"), "add a note to a case")
    p.add_argument("ref")
    p.add_argument("text")
    p = command("stage", _case_action("stage"), "set a case's work stage")
    p.add_argument("ref")
    p.add_argument("stage", help="triage, investigating, awaiting_partner, contained, closed")
    p = command("escalate", _case_action("escalate"), "page the next step now")
    p.add_argument("ref")

    p = command("show", cmd_show, "show one case")
    p.add_argument("ref")
    p.add_argument("--reveal", action="store_true", help="show sensitive details (audited)")
    p = command("cases", cmd_cases, "list cases (open ones by default)")
    p.add_argument("--status", help="triggered, acknowledged or resolved")
    p.add_argument("--all", action="store_true", help="include resolved cases")
    p.add_argument("--limit", type=int, default=None)

    p = command("engine", cmd_engine, "run the escalation loop without a screen")
    p.add_argument("--once", action="store_true", help="process what is due, then exit")

    audit_group = commands.group("audit", "the audit chain")
    audit_group.add("verify", cmd_audit_verify, "check the hash chain")
    p = audit_group.add("log", cmd_audit_log, "list audit records")
    p.add_argument("--case", metavar="REF")

    db_group = commands.group("db", "database maintenance")
    db_group.add("upgrade", cmd_db_upgrade, "apply schema migrations")

    for register in _command_extensions():
        register(commands)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    clock: Clock | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        _check_decodable(sys.argv[1:] if argv is None else argv)
        args = build_parser().parse_args(argv)
        for name, default in (("db", None), ("actor", None), ("json", False)):
            if not hasattr(args, name):
                setattr(args, name, default)
        ctx = Context(args=args, clock=clock or SystemClock(), out=out, err=err)
        try:
            handler: Callable[[Context], int] = args.handler
            return handler(ctx)
        finally:
            if ctx._db is not None:
                ctx._db.dispose()
    except UsageError as exc:
        err.write(f"{exc}\n(see `vigil --help`)\n")
        return EXIT_USAGE
    except BadInput as exc:
        err.write(f"vigil: {exc}\n")
        return EXIT_USAGE
    except Refused as exc:
        err.write(f"vigil: {exc}\n")
        return EXIT_REFUSED
    except SchemaOutOfDate as exc:
        err.write(f"vigil: {exc}\n")
        return EXIT_REFUSED
    except DatabaseError as exc:
        err.write(f"vigil: {exc}\n")
        return EXIT_USAGE if str(exc).startswith("--db") else EXIT_REFUSED
    except (OperationalError, InterfaceError, PoolTimeout) as exc:
        # Locked, unreachable or gone mid-command: the transaction was rolled back.
        reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["no answer"])[0]
        err.write(f"vigil: the database did not answer ({reason}); try again in a moment\n")
        return EXIT_REFUSED
    except KeyboardInterrupt:
        err.write("vigil: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

"""Case commands: `vigil page`, `ack`, `resolve`, `reassign`, `note`, `stage`,
`escalate`, `snooze`, `reopen`, `merge`, `show` and `cases`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from app.cli.framework import EXIT_OK, Commands, Context
from app.cli.render import case_table
from app.core.errors import BadInput, NotFound

if TYPE_CHECKING:
    from data.models import Case

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
    ctx.emit(
        {"ref": result.ref, "created": result.created},
        result.ref if result.created else f"{result.ref} (already open for this dedup key)",
    )
    return EXIT_OK


def cmd_show(ctx: Context) -> int:
    from app.cli.render import case_text, format_casework, plain
    from app.services.casework.views import casework_view
    from app.services.presenters import HIDDEN, case_json, viewer_zone_of
    from data.queries import case_by_ref

    with ctx.db.read() as session:
        case = case_by_ref(session, ctx.args.ref)
        if case is None:
            raise NotFound(f"no case {ctx.args.ref!r}")
        body = case_json(session, case, with_details=True)
        sensitive = case.sensitive
        zone = viewer_zone_of(session, ctx.actor)
    details: str | None = body.get("details")
    revealed = sensitive and ctx.args.reveal
    if sensitive:
        if revealed:
            details = ctx.cases.reveal(ctx.actor, case.ref, reason="vigil show --reveal")
            body["details"] = details
        else:
            details = HIDDEN + " (use --reveal; the reveal is audited)"
    assert case.id is not None
    with ctx.db.read() as session:
        casework = casework_view(session, case.id, ctx.clock.now(), revealed=revealed)
    body["casework"] = plain(casework)
    ctx.emit(body, case_text(body, details, format_casework(casework, zone), zone))
    return EXIT_OK


PAGE_LIMIT = 50
"""Cases `vigil cases` prints for a person when no --limit is given: the most urgent first."""
MAX_LIMIT = 10_000_000


def cmd_cases(ctx: Context) -> int:
    from app.services.presenters import cases_json
    from data import queries
    from data.domain import Status

    status = ctx.args.status
    if status and status not in {s.value for s in Status}:
        raise BadInput("--status", f"expected triggered, acknowledged or resolved, got {status!r}")
    limit = ctx.args.limit
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise BadInput("--limit", f"expected a whole number from 1 to {MAX_LIMIT:,}, got {limit}")
    if limit is None and not ctx.as_json:
        limit = PAGE_LIMIT  # a person reads the first page; JSON gets every case asked for
    open_only = status is None and not ctx.args.all
    with ctx.db.read() as session:
        rows = queries.cases(session, status=status, limit=limit, open_only=open_only)
        more = 0
        if limit is not None and len(rows) == limit:
            more = queries.count_cases(session, status, open_only=open_only) - limit
        body = cases_json(session, rows)
    text = case_table(body)
    if more:
        text += f"\n… and {more:,} more; see them with --limit N or --json"
    ctx.emit(body, text)
    return EXIT_OK


def _owed_reports(ctx: Context, case: Case) -> list[str]:
    """What a just-resolved case still owes an authority, one line per report."""
    from app.services.casework.views import owed_report_text, owed_reports

    now = ctx.clock.now()
    with ctx.db.read() as session:
        owed = owed_reports(session, [case], now).get(case.id or 0, [])
        return [owed_report_text(clock, now) for clock in owed]


def cmd_snooze(ctx: Context) -> int:
    from app.core.times import format_instant, iso, parse_due
    from app.services.presenters import viewer_zone_of

    until = parse_due(ctx.args.until, ctx.clock.now(), "--until")
    assert until is not None  # a required option
    case = ctx.cases.snooze(ctx.actor, ctx.args.ref, until, ctx.args.reason)
    with ctx.db.read() as session:
        zone = viewer_zone_of(session, ctx.actor)
    ctx.emit(
        {"ref": case.ref, "status": case.status, "snoozed_until": iso(case.snoozed_until)},
        f"{case.ref} snoozed until {format_instant(case.snoozed_until, zone)}; it pages again then",
    )
    return EXIT_OK


def cmd_merge(ctx: Context) -> int:
    from data.domain import Status

    target = ctx.cases.merge(ctx.actor, ctx.args.ref, ctx.args.into)
    ref = ctx.args.ref.strip().upper()
    ctx.emit(
        {"ref": ref, "status": Status.RESOLVED.value, "into": target.ref},
        f"{ref} merged into {target.ref} and resolved",
    )
    return EXIT_OK


def cmd_reopen(ctx: Context) -> int:
    case = ctx.cases.reopen(ctx.actor, ctx.args.ref, ctx.args.reason)
    ctx.emit(
        {"ref": case.ref, "status": case.status, "stage": case.stage},
        f"{case.ref} reopened ({case.status}, {case.stage})",
    )
    return EXIT_OK


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
            text = f"{case.ref} escalated"
        ctx.emit({"ref": case.ref, "status": case.status, "stage": case.stage}, text)
        return EXIT_OK

    return run


def register(commands: Commands) -> None:
    from data.domain import Category

    p = commands.add("page", cmd_page)
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

    p = commands.add("ack", _case_action("ack"))
    p.add_argument("ref")
    p = commands.add("resolve", _case_action("resolve"))
    p.add_argument("ref")
    p.add_argument("--note")
    p = commands.add("reassign", _case_action("reassign"))
    p.add_argument("ref")
    p.add_argument("--to", required=True, metavar="HANDLE")
    p = commands.add("note", _case_action("note"))
    p.add_argument("ref")
    p.add_argument("text")
    p = commands.add("stage", _case_action("stage"))
    p.add_argument("ref")
    p.add_argument("stage", help="triage, investigating, awaiting_partner, contained, closed")
    p = commands.add("escalate", _case_action("escalate"))
    p.add_argument("ref")
    p = commands.add("snooze", cmd_snooze)
    p.add_argument("ref")
    p.add_argument(
        "--until",
        required=True,
        metavar="WHEN",
        help="a duration from now (30m, 4h, 2d) or a time with an offset; at most 7 days",
    )
    p.add_argument("--reason", required=True, help="why it can wait (kept in the timeline)")
    p = commands.add("merge", cmd_merge)
    p.add_argument("ref", help="the duplicate, resolved by the merge")
    p.add_argument("--into", required=True, metavar="REF", help="the case that carries on")
    p = commands.add("reopen", cmd_reopen)
    p.add_argument("ref")
    p.add_argument("--reason", required=True, help="why it is not over (kept in the timeline)")

    p = commands.add("show", cmd_show)
    p.add_argument("ref")
    p.add_argument("--reveal", action="store_true", help="show sensitive details (audited)")
    p = commands.add("cases", cmd_cases)
    p.add_argument("--status", help="triggered, acknowledged or resolved")
    p.add_argument("--all", action="store_true", help="include resolved cases")
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help=f"at most this many (default {PAGE_LIMIT} on screen, every one with --json)",
    )

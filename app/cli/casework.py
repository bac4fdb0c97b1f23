"""Casework commands: verification, disclosures, legal clocks, containment, partners,
action items, the casework settings and the yearly disclosure report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.cli.framework import EXIT_OK, Commands, Context
from app.cli.render import (
    action_line,
    clock_line,
    containment_line,
    disclosure_line,
    disclosure_report_markdown,
    format_casework,
    partner_line,
    plain,
    verification_lines,
)
from app.core import toml
from app.core.errors import BadInput, NotFound
from app.core.times import parse_due, parse_instant
from app.rules.casework import FACT_FLAGS, VERIFICATION_FIELDS, VERIFICATION_STEPS, merged_settings
from app.services.casework.report import disclosure_report, report_csv
from app.services.casework.service import CaseworkService
from app.services.casework.settings import settings_toml, stored_settings
from app.services.casework.views import (
    action_items,
    clocks_needing_attention,
    disclosures_awaiting_approval,
    partners,
)
from data.domain import DataCategory, PartnerKind
from data.queries import case_by_ref


def _service(ctx: Context) -> CaseworkService:
    return CaseworkService(ctx.db, ctx.clock)


def _number(field: str, text: str, *, low: int = 1, high: int = 1_000_000) -> int:
    try:
        number = int(text.strip())
    except ValueError:
        raise BadInput(field, f"expected a whole number, got {text!r}") from None
    if not low <= number <= high:
        raise BadInput(field, f"expected {low} to {high}, got {number}")
    return number


# --- commands ---------------------------------------------------------------


def cmd_verify(ctx: Context) -> int:
    a = ctx.args
    facts = {name: getattr(a, name) for name in VERIFICATION_FIELDS}
    view = _service(ctx).record_verification(ctx.actor, a.ref, a.step, facts)
    ctx.emit(plain(view), "\n".join(verification_lines(view, ctx.viewer_zone())))
    return EXIT_OK


def cmd_disclosure_request(ctx: Context) -> int:
    a = ctx.args
    view = _service(ctx).request_disclosure(
        ctx.actor,
        a.ref,
        data=a.data,
        to=a.to,
        basis=a.basis,
        accounts=_number("accounts", a.accounts),
        override_reason=a.override_reason or "",
    )
    ctx.emit(plain(view), disclosure_line(view, ctx.viewer_zone()).strip())
    return EXIT_OK


def cmd_disclosure_approve(ctx: Context) -> int:
    view = _service(ctx).approve_disclosure(
        ctx.actor, ctx.args.ref, _number("number", ctx.args.number)
    )
    ctx.emit(plain(view), disclosure_line(view, ctx.viewer_zone()).strip())
    return EXIT_OK


def cmd_disclosure_decline(ctx: Context) -> int:
    view = _service(ctx).decline_disclosure(
        ctx.actor, ctx.args.ref, _number("number", ctx.args.number), ctx.args.reason
    )
    ctx.emit(plain(view), disclosure_line(view, ctx.viewer_zone()).strip())
    return EXIT_OK


def cmd_disclosure_pending(ctx: Context) -> int:
    with ctx.db.read() as session:
        waiting = disclosures_awaiting_approval(session)
    zone = ctx.viewer_zone()
    text = "\n".join(f"{w.ref} {disclosure_line(w.disclosure, zone).strip()}" for w in waiting)
    ctx.emit(plain(waiting), text or "No disclosure awaits approval.")
    return EXIT_OK


def cmd_clock_file(ctx: Context) -> int:
    a = ctx.args
    filed_at = parse_instant("filed_at", a.filed_at) if a.filed_at else None
    view = _service(ctx).file_report(
        ctx.actor, a.ref, report_id=a.report_id, clock=a.clock, filed_at=filed_at
    )
    ctx.emit(plain(view), clock_line(view, ctx.viewer_zone()))
    return EXIT_OK


def cmd_clock_extend(ctx: Context) -> int:
    a = ctx.args
    view = _service(ctx).extend_hold(ctx.actor, a.ref, clock=a.clock, note=a.note or "")
    ctx.emit(plain(view), clock_line(view, ctx.viewer_zone()))
    return EXIT_OK


def cmd_clock_waive(ctx: Context) -> int:
    a = ctx.args
    view = _service(ctx).waive_clock(ctx.actor, a.ref, clock=a.clock, reason=a.reason)
    ctx.emit(plain(view), clock_line(view, ctx.viewer_zone()))
    return EXIT_OK


def cmd_clock_due(ctx: Context) -> int:
    with ctx.db.read() as session:
        due = clocks_needing_attention(session, ctx.clock.now())
    zone = ctx.viewer_zone()
    text = "\n".join(f"{d.ref} ({d.status})  {clock_line(d.clock, zone)}" for d in due)
    ctx.emit(plain(due), text or "No legal clock needs attention.")
    return EXIT_OK


def cmd_contain(ctx: Context) -> int:
    a = ctx.args
    view = _service(ctx).mark_contained(
        ctx.actor, a.ref, a.step, reference=a.reference or "", note=a.note or ""
    )
    ctx.emit(plain(view), containment_line(view, ctx.viewer_zone()).strip())
    return EXIT_OK


def cmd_partner_add(ctx: Context) -> int:
    a = ctx.args
    view = _service(ctx).add_partner(
        ctx.actor,
        name=a.name,
        kind=a.kind,
        agency=a.agency,
        contact=a.contact or "",
        verified_channel=a.verified_channel or "",
    )
    ctx.emit(plain(view), f"Partner added:\n{partner_line(view)}")
    return EXIT_OK


def cmd_partner_list(ctx: Context) -> int:
    with ctx.db.read() as session:
        found = partners(session)
    ctx.emit(plain(found), "\n".join(partner_line(p) for p in found) or "No partners.")
    return EXIT_OK


def cmd_partner_link(ctx: Context) -> int:
    view = _service(ctx).link_partner(ctx.actor, ctx.args.ref, ctx.args.partner)
    ctx.emit(plain(view), f"{view.name} linked to {ctx.args.ref.strip().upper()}")
    return EXIT_OK


def cmd_action_add(ctx: Context) -> int:
    a = ctx.args
    view = _service(ctx).add_action(
        ctx.actor,
        a.ref,
        a.title,
        owner=a.owner,
        partner=a.partner,
        due_at=parse_due(a.due, ctx.clock.now()),
    )
    ctx.emit(plain(view), action_line(view, ctx.viewer_zone(), with_ref=True).strip())
    return EXIT_OK


def _close_action(status: str) -> Callable[[Context], int]:
    def run(ctx: Context) -> int:
        view = _service(ctx).close_action(
            ctx.actor, ctx.args.ref, _number("id", ctx.args.id), status=status
        )
        ctx.emit(plain(view), action_line(view, ctx.viewer_zone(), with_ref=True).strip())
        return EXIT_OK

    return run


def cmd_action_list(ctx: Context) -> int:
    a = ctx.args
    with ctx.db.read() as session:
        case_id = None
        if a.case:
            case = case_by_ref(session, a.case)
            if case is None:
                raise NotFound(f"no case {a.case!r}")
            case_id = case.id
        items = action_items(
            session,
            ctx.clock.now(),
            case_id=case_id,
            overdue_only=a.overdue,
            include_closed=a.all,
        )
    zone = ctx.viewer_zone()
    text = "\n".join(action_line(i, zone, with_ref=True) for i in items)
    ctx.emit(plain(items), text or "No action items.")
    return EXIT_OK


def cmd_casework_show(ctx: Context) -> int:
    view = _service(ctx).casework(ctx.actor, ctx.args.ref, reveal=ctx.args.reveal)
    ctx.emit(plain(view), format_casework(view, ctx.viewer_zone()))
    return EXIT_OK


def cmd_casework_settings(ctx: Context) -> int:
    with ctx.db.read() as session:
        document = merged_settings(stored_settings(session))
    if ctx.as_json:
        ctx.emit(document, "")
    else:
        ctx.out.write(settings_toml(document))
    return EXIT_OK


def cmd_casework_apply(ctx: Context) -> int:
    path = Path(ctx.args.file)
    try:
        document = toml.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput("FILE", f"cannot read {ctx.args.file!r}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, toml.TOMLDecodeError) as exc:
        raise BadInput("FILE", f"{ctx.args.file}: {exc}") from None
    config = _service(ctx).apply_settings(ctx.actor, document)
    clocks = sum(len(specs) for specs in config.clocks.values())
    ctx.emit(
        {
            "clocks": clocks,
            "bases": sorted(config.bases),
            "containment": sorted(config.containment),
        },
        f"Casework settings applied: {clocks} legal clocks, {len(config.bases)} disclosure bases.",
    )
    return EXIT_OK


def cmd_report_disclosures(ctx: Context) -> int:
    year = _number("--year", ctx.args.year, low=1970, high=2199)
    with ctx.db.read() as session:
        report = disclosure_report(session, year)
    if ctx.as_json:
        body = {
            "year": report.year,
            "rows": plain(report.rows),
            "total_disclosures": report.total_disclosures,
            "total_accounts": report.total_accounts,
        }
        ctx.emit(body, "")
    elif ctx.args.format == "csv":
        ctx.out.write(report_csv(report))
    else:
        ctx.out.write(disclosure_report_markdown(report))
    return EXIT_OK


# --- registration -----------------------------------------------------------


def register(commands: Commands) -> None:
    p = commands.add("verify", cmd_verify)
    p.add_argument("ref")
    p.add_argument("step", help="one of: " + ", ".join(VERIFICATION_STEPS))
    for name, text in FACT_FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, help=text)

    disclosure = commands.group("disclosure")
    p = disclosure.add(
        "request",
        cmd_disclosure_request,
        "record a disclosure (a specialist's waits for a supervisor's approval)",
    )
    p.add_argument("ref")
    p.add_argument(
        "--data", required=True, help="comma-separated: " + ", ".join(c.value for c in DataCategory)
    )
    p.add_argument("--to", required=True, metavar="PARTNER", help="a partner of the directory")
    p.add_argument("--basis", required=True, help="a legal basis key, e.g. us-emergency")
    p.add_argument("--accounts", default="1", help="how many accounts (default 1)")
    p.add_argument(
        "--override-reason", help="a supervisor's reason to go ahead before verification is done"
    )
    p = disclosure.add("approve", cmd_disclosure_approve, "approve a requested disclosure")
    p.add_argument("ref")
    p.add_argument("number", help="the disclosure's number within the case")
    p = disclosure.add("decline", cmd_disclosure_decline, "decline a requested disclosure")
    p.add_argument("ref")
    p.add_argument("number", help="the disclosure's number within the case")
    p.add_argument("--reason", required=True)
    disclosure.add("pending", cmd_disclosure_pending, "disclosures awaiting a supervisor")

    clock = commands.group("clock")
    p = clock.add("file", cmd_clock_file, "record the report a clock asks for (CyberTipline)")
    p.add_argument("ref")
    p.add_argument("--report-id", required=True, help="the id the authority gave the report")
    p.add_argument("--clock", help="which clock, when the case has more than one")
    p.add_argument("--filed-at", metavar="ISO", help="when it was filed (default: now)")
    p = clock.add("extend", cmd_clock_extend, "extend a preservation hold on a renewed request")
    p.add_argument("ref")
    p.add_argument("--clock", help="which clock, when the case has more than one")
    p.add_argument("--note", help="the renewed request, e.g. its date and sender")
    p = clock.add("waive", cmd_clock_waive, "end a clock early, with a reason (supervisors)")
    p.add_argument("ref")
    p.add_argument("--clock", required=True)
    p.add_argument("--reason", required=True)
    clock.add("due", cmd_clock_due, "legal clocks in their reminder window or breached")

    p = commands.add("contain", cmd_contain)
    p.add_argument("ref")
    p.add_argument("step", help="a step of the case category's checklist")
    p.add_argument("--reference", help="the evidence hash reference, e.g. sha256:...")
    p.add_argument("--note")

    partner = commands.group("partner")
    p = partner.add("add", cmd_partner_add, "add a partner (supervisors)")
    p.add_argument("name", help="a short key, e.g. metro-pd")
    p.add_argument(
        "--kind", required=True, help="one of: " + ", ".join(k.value for k in PartnerKind)
    )
    p.add_argument("--agency", required=True, help="the organisation's name")
    p.add_argument("--contact")
    p.add_argument(
        "--verified-channel",
        help="a channel confirmed independently of any request (required for law enforcement)",
    )
    partner.add("list", cmd_partner_list, "list the partner directory")
    p = partner.add("link", cmd_partner_link, "link a partner to a case")
    p.add_argument("ref")
    p.add_argument("partner")

    action = commands.group("action")
    p = action.add("add", cmd_action_add, "add an action item to a case")
    p.add_argument("ref")
    p.add_argument("title")
    owner = p.add_mutually_exclusive_group(required=True)
    owner.add_argument("--owner", metavar="HANDLE", help="a responder")
    owner.add_argument("--partner", metavar="PARTNER", help="a partner team")
    p.add_argument("--due", help="a duration from now (4h, 2d) or a time with an offset")
    p = action.add("done", _close_action("done"), "mark an action item done")
    p.add_argument("ref")
    p.add_argument("id")
    p = action.add("cancel", _close_action("cancelled"), "cancel an action item")
    p.add_argument("ref")
    p.add_argument("id")
    p = action.add("list", cmd_action_list, "list open action items, soonest due first")
    p.add_argument("--case", metavar="REF")
    p.add_argument("--overdue", action="store_true", help="only overdue ones")
    p.add_argument("--all", action="store_true", help="include done and cancelled ones")

    casework = commands.group("casework")
    p = casework.add("show", cmd_casework_show, "verification, disclosures, clocks, containment")
    p.add_argument("ref")
    p.add_argument("--reveal", action="store_true", help="show sensitive free text (audited)")
    casework.add("settings", cmd_casework_settings, "print the casework settings as TOML")
    p = casework.add(
        "apply", cmd_casework_apply, "apply the [clocks], [disclosure_basis], [containment] tables"
    )
    p.add_argument("file", metavar="FILE.toml")

    report = commands.group("report")
    p = report.add("disclosures", cmd_report_disclosures, "yearly count of emergency disclosures")
    p.add_argument("--year", required=True)
    p.add_argument("--format", default="md", choices=["md", "csv"])

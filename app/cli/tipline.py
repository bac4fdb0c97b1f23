"""CyberTipline commands: the desk's NCMEC account, a case's evidence files, and filing its
report through NCMEC's Reporting API (printed for review, then filed exactly once)."""

from __future__ import annotations

import argparse
import os
import sys

from app.cli.framework import EXIT_OK, Commands, Context
from app.cli.render import evidence_line, filing_line, plain
from app.core.errors import BadInput
from app.core.times import parse_instant
from app.rules.tipline import INCIDENT_TYPES, ReportDraft
from app.services.casework.tipline import FilingView, TiplineService
from data.domain import INDUSTRY_CLASSIFICATIONS

PASSWORD_ENV = "VIGIL_NCMEC_PASSWORD"


def _service(ctx: Context) -> TiplineService:
    return TiplineService(ctx.db, ctx.clock)


def _draft(ctx: Context) -> ReportDraft | None:
    a = ctx.args
    if a.incident_type is None:
        return None
    return _service(ctx).draft(
        a.ref,
        incident_type=a.incident_type,
        incident_at=parse_instant("incident_at", a.incident_at) if a.incident_at else None,
        screen_name=a.screen_name or "",
        esp_identifier=a.esp_id or "",
        reported_email=a.reported_email or "",
        url=a.url or "",
    )


# --- commands ---------------------------------------------------------------


def cmd_setup(ctx: Context) -> int:
    a = ctx.args
    password = (
        sys.stdin.readline().rstrip("\n") if a.password_stdin else os.environ.get(PASSWORD_ENV, "")
    )
    if not password:
        raise BadInput("password", f"expected it on stdin (--password-stdin) or in {PASSWORD_ENV}")
    view = _service(ctx).setup_account(
        ctx.actor,
        username=a.username,
        password=password,
        reporter_first_name=a.first_name,
        reporter_last_name=a.last_name,
        reporter_email=a.email,
        url=a.url,
        production=a.production,
    )
    where = "PRODUCTION" if view.production else "test"
    ctx.emit(plain(view), f"NCMEC account {view.username} stored ({where}: {view.url})")
    return EXIT_OK


def cmd_status(ctx: Context) -> int:
    with _service(ctx).client() as client:
        answer = client.status()
    ctx.emit(plain(answer), f"NCMEC answered {answer.code}: {answer.description}")
    return EXIT_OK


def cmd_review(ctx: Context) -> int:
    text = _service(ctx).review(ctx.actor, ctx.args.ref, _draft(ctx))
    ctx.emit({"documents": text}, text)
    return EXIT_OK


def cmd_file(ctx: Context) -> int:
    service = _service(ctx)
    draft = _draft(ctx)
    review = service.review(ctx.actor, ctx.args.ref, draft)
    if not ctx.as_json:
        ctx.out.write(review + "\n\n")
        ctx.out.flush()
    view = service.file_report(ctx.actor, ctx.args.ref, draft)
    ctx.emit(plain(view), filing_line(view))
    return EXIT_OK


def cmd_retry(ctx: Context) -> int:
    outcomes = _service(ctx).retry_due(ctx.actor)
    lines = [filing_line(o) if isinstance(o, FilingView) else f"refused: {o}" for o in outcomes]
    payload = [plain(o) if isinstance(o, FilingView) else {"refused": str(o)} for o in outcomes]
    ctx.emit(payload, "\n".join(lines) or "No filing waits for NCMEC.")
    return EXIT_OK


def cmd_show(ctx: Context) -> int:
    view = _service(ctx).filing(ctx.actor, ctx.args.ref)
    ctx.emit(plain(view), filing_line(view))
    return EXIT_OK


def cmd_evidence_add(ctx: Context) -> int:
    a = ctx.args
    view = _service(ctx).add_evidence(
        ctx.actor, a.ref, a.path, classification=a.classification, name=a.name or ""
    )
    ctx.emit(plain(view), f"Evidence added:\n{evidence_line(view)}")
    return EXIT_OK


def cmd_evidence_list(ctx: Context) -> int:
    found = _service(ctx).evidence(ctx.actor, ctx.args.ref)
    ctx.emit(plain(found), "\n".join(evidence_line(v) for v in found) or "No evidence files.")
    return EXIT_OK


def cmd_evidence_reveal(ctx: Context) -> int:
    number = ctx.args.id
    if not number.isdigit():
        raise BadInput("id", f"expected an evidence file's number, got {number!r}")
    path = _service(ctx).reveal_evidence(ctx.actor, ctx.args.ref, int(number))
    ctx.emit({"path": str(path)}, f"{path}\n(this view is in the audit chain)")
    return EXIT_OK


# --- registration -----------------------------------------------------------


def _draft_options(p: argparse.ArgumentParser) -> None:
    add = p.add_argument
    add("ref")
    add("--incident-type", help="one of: " + ", ".join(INCIDENT_TYPES))
    add("--incident-at", metavar="ISO", help="when it happened (default: when the case opened)")
    add("--screen-name", help="the reported user's screen name")
    add("--esp-id", help="the reported user's account id on the platform")
    add("--reported-email", help="the reported user's e-mail address")
    add("--url", help="where the content was found")


def register(commands: Commands) -> None:
    tipline = commands.group("tipline")
    p = tipline.add("setup", cmd_setup, "store the desk's NCMEC account (supervisors)")
    p.add_argument("--username", required=True)
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help=f"read the password from stdin (else {PASSWORD_ENV})",
    )
    p.add_argument("--first-name", required=True, help="the reporting person's first name")
    p.add_argument("--last-name", required=True, help="the reporting person's last name")
    p.add_argument("--email", required=True, help="the reporting person's e-mail address")
    p.add_argument("--url", default="https://exttest.cybertip.org/ispws", help="the API's address")
    p.add_argument("--production", action="store_true", help="allow NCMEC's production service")
    tipline.add("status", cmd_status, "ask NCMEC whether the account works")
    _draft_options(tipline.add("review", cmd_review, "print the report as it would be filed"))
    _draft_options(tipline.add("file", cmd_file, "print the report, then file it exactly once"))
    tipline.add("retry", cmd_retry, "file again every filing whose next try is due")
    p = tipline.add("show", cmd_show, "the filing's status, NCMEC report id and tries")
    p.add_argument("ref")

    evidence = commands.group("evidence")
    p = evidence.add("add", cmd_evidence_add, "register a file of a CSEA case")
    p.add_argument("ref")
    p.add_argument("path")
    p.add_argument(
        "--classification", required=True, help="one of: " + ", ".join(INDUSTRY_CLASSIFICATIONS)
    )
    p.add_argument("--name", help="the file's original name (default: its name here)")
    p = evidence.add("list", cmd_evidence_list, "a case's evidence files and whether viewed")
    p.add_argument("ref")
    p = evidence.add("reveal", cmd_evidence_reveal, "view an evidence file (audited)")
    p.add_argument("ref")
    p.add_argument("id")

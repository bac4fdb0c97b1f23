"""Emergency-request fraud defence: the agency directory's verified channels (supervisors),
a request's origin checked against them, and the call-back on a directory number."""

from __future__ import annotations

import argparse

from app.cli.framework import EXIT_OK, Commands, Context
from app.cli.render import channel_line, origin_text, plain, verification_lines
from app.services.casework.agency import AgencyService


def _service(ctx: Context) -> AgencyService:
    return AgencyService(ctx.db, ctx.clock)


def cmd_add_channel(ctx: Context) -> int:
    a = ctx.args
    view = _service(ctx).add_channel(
        ctx.actor, a.partner, phone=a.phone, domain=a.domain, source=a.source
    )
    ctx.emit(plain(view), f"Listed:\n{channel_line(view)}")
    return EXIT_OK


def cmd_remove_channel(ctx: Context) -> int:
    view = _service(ctx).remove_channel(ctx.actor, phone=ctx.args.phone, domain=ctx.args.domain)
    ctx.emit(plain(view), f"No longer listed:\n{channel_line(view)}")
    return EXIT_OK


def cmd_list(ctx: Context) -> int:
    found = _service(ctx).channels()
    ctx.emit(plain(found), "\n".join(channel_line(c) for c in found) or "No agency channels.")
    return EXIT_OK


def cmd_request(ctx: Context) -> int:
    a = ctx.args
    view = _service(ctx).record_origin(
        ctx.actor,
        a.ref,
        sender_email=a.from_email or "",
        sender_phone=a.from_phone or "",
        cited_law=a.cites or "",
    )
    ctx.emit(plain(view), origin_text(view))
    return EXIT_OK


def cmd_call_back(ctx: Context) -> int:
    a = ctx.args
    view = _service(ctx).call_back(ctx.actor, a.ref, number=a.number, contacted=a.contacted)
    ctx.emit(plain(view), "\n".join(verification_lines(view, ctx.viewer_zone())))
    return EXIT_OK


def _one_channel(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--phone", help="a call-back number with its country code")
    group.add_argument("--domain", help="an e-mail domain, e.g. police.example.gov")


def register(commands: Commands) -> None:
    agency = commands.group("agency")
    p = agency.add(
        "add-channel", cmd_add_channel, "list an agency's verified number or domain (supervisors)"
    )
    p.add_argument("partner", help="a law-enforcement partner of the directory")
    _one_channel(p)
    p.add_argument(
        "--source", required=True, help="where it was confirmed, independently of any request"
    )
    p = agency.add("remove-channel", cmd_remove_channel, "unlist a number or domain (supervisors)")
    _one_channel(p)
    agency.add("list", cmd_list, "the agency directory's verified channels")
    p = agency.add("request", cmd_request, "record where a request came from; flag mismatches")
    p.add_argument("ref")
    p.add_argument("--from-email", help="the sender's e-mail address")
    p.add_argument("--from-phone", help="the number the request came from")
    p.add_argument("--cites", help="the law the request cites, e.g. '18 U.S.C. 2702(b)(8)'")
    p = agency.add(
        "call-back", cmd_call_back, "verify identity by calling back a number of the directory"
    )
    p.add_argument("ref")
    p.add_argument("--number", required=True, help="the directory number you called")
    p.add_argument("--contacted", required=True, help="whom you reached")

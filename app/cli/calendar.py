"""On-call commands: `vigil oncall`, `vigil override`, `vigil calendar export|gaps|settings`
and `vigil swap request|take|approve|decline|cancel|list`.

Times on screen are on the wall clock of the person running the command (their responder's
time zone, else UTC) and in UTC; JSON carries ISO 8601 UTC only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from app.cli.framework import EXIT_OK, Commands, Context
from app.cli.render import gaps_text, on_call_text, override_text
from app.core.errors import BadInput
from app.core.times import format_instant, parse_instant
from app.rules.rotations import parse_wall_time
from app.services.presenters import viewer_zone_of
from app.services.shiftwork.calendar import (
    EXPORT_DAYS,
    GAP_DAYS,
    OverrideService,
    calendar_feed,
    gaps_by_schedule,
    gaps_json,
    list_overrides,
    on_call_entries,
    on_call_json,
    parse_days,
    responder_names,
    schedules_named,
)
from app.services.shiftwork.swaps import (
    HANDOFF_LEAD_KEY,
    REQUIRE_APPROVAL_KEY,
    SwapService,
    SwapView,
    list_swaps,
    parse_lead,
    read_settings,
)
from data.domain import ID_RANGE
from data.swaps import SwapStatus

APPROVAL_CHOICES = {"required": True, "optional": False}
WALL_HELP = "2026-12-24T20:00+11:00, or 2026-12-24 20:00 on the schedule's clock"


def _window(
    ctx: Context, schedule: str, start: str, end: str
) -> tuple[tuple[datetime, datetime], list[str]]:
    """--from and --to of an override or a swap: with an offset, or on the wall clock of the
    schedule's zone, where the team file reads an override's times (the same rule: a time
    the clocks skip is the gap's end, one they pass twice its first occurrence). Also a
    line for each time the clocks skip, saying when it is read."""
    with ctx.db.read() as session:
        [spec] = schedules_named(session, schedule)
    zone = ZoneInfo(spec.zone)
    start_time = parse_wall_time("--from", start, zone)
    end_time = parse_wall_time("--to", end, zone)
    notes = [
        f"{flag} {typed.skipped} is skipped by the clocks in {zone.key}: read as "
        f"{format_instant(typed.at, zone)}\n"
        for flag, typed in (("--from", start_time), ("--to", end_time))
        if typed.skipped
    ]
    return (start_time.at, end_time.at), notes


def _number(field: str, text: str) -> int:
    try:
        number = int(text.strip().lstrip("#"))
    except ValueError:
        raise BadInput(field, f"expected a number such as 3, got {text!r}") from None
    if not 1 <= number <= ID_RANGE.high:
        raise BadInput(field, f"expected a number {ID_RANGE}, got {number}")
    return number


# --- vigil oncall ----------------------------------------------------------------------------


def cmd_oncall(ctx: Context) -> int:
    at = ctx.clock.now() if ctx.args.at is None else parse_instant("--at", ctx.args.at)
    with ctx.db.read() as session:
        schedules = schedules_named(session, ctx.args.schedule)
        names = responder_names(session)
        zone = viewer_zone_of(session, ctx.actor)
    entries = on_call_entries(schedules, at)
    ctx.emit(on_call_json(entries, at, zone, names), on_call_text(entries, at, zone, names))
    return EXIT_OK


# --- vigil override --------------------------------------------------------------------------


def cmd_override_add(ctx: Context) -> int:
    a = ctx.args
    given = (("--schedule", a.schedule), ("--who", a.who), ("--from", a.start), ("--to", a.end))
    for flag, value in given:
        if value is None:
            raise BadInput(flag, "required to place an override (or: override list | remove ID)")
    (start, end), notes = _window(ctx, a.schedule, a.start, a.end)
    view = OverrideService(ctx.db, ctx.clock).add(
        ctx.actor, schedule=a.schedule, who=a.who, start=start, end=end, reason=a.reason or ""
    )
    if view.start > start:
        notes.append(
            f"--from {format_instant(start, ctx.viewer_zone())} is past: the override starts "
            "now (who was on call before stays as it was)\n"
        )
    ctx.emit(
        view.as_json(),
        "".join(notes) + "Override placed:\n" + override_text(view, ctx.viewer_zone()),
    )
    return EXIT_OK


def cmd_override_list(ctx: Context) -> int:
    with ctx.db.read() as session:
        if ctx.args.schedule is not None:
            schedules_named(session, ctx.args.schedule)  # refuses an unknown name
        ending_after = None if ctx.args.all else ctx.clock.now()
        views = list_overrides(session, schedule=ctx.args.schedule, ending_after=ending_after)
        zone = viewer_zone_of(session, ctx.actor)
    text = "\n".join(override_text(v, zone) for v in views) or (
        "No overrides." if ctx.args.all else "No current or coming overrides (--all for past ones)."
    )
    ctx.emit([v.as_json() for v in views], text)
    return EXIT_OK


def cmd_override_remove(ctx: Context) -> int:
    view = OverrideService(ctx.db, ctx.clock).remove(ctx.actor, _number("ID", ctx.args.id))
    ctx.emit(view.as_json(), f"Override #{view.id} removed ({view.who} on {view.schedule}).")
    return EXIT_OK


# --- vigil calendar --------------------------------------------------------------------------


def cmd_calendar_export(ctx: Context) -> int:
    days = parse_days("--days", ctx.args.days)
    start = ctx.clock.now()
    with ctx.db.read() as session:
        schedules = schedules_named(session, ctx.args.schedule)
        names = responder_names(session)
    if ctx.args.who is not None and ctx.args.who not in names:
        raise BadInput("--who", f"no responder {ctx.args.who!r} on this desk")
    feed = calendar_feed(
        schedules, names, start, start + timedelta(days=days), stamp=start, who=ctx.args.who
    )
    ctx.out.write(feed)
    return EXIT_OK


def cmd_calendar_gaps(ctx: Context) -> int:
    days = parse_days("--days", ctx.args.days)
    start = ctx.clock.now()
    end = start + timedelta(days=days)
    with ctx.db.read() as session:
        schedules = schedules_named(session, ctx.args.schedule)
        zone = viewer_zone_of(session, ctx.actor)
    found = gaps_by_schedule(schedules, start, end)
    ctx.emit(gaps_json(found, start, end), gaps_text(found, start, end, zone))
    return EXIT_OK


def cmd_calendar_settings(ctx: Context) -> int:
    a = ctx.args
    if a.swap_approval is None and a.handoff_lead is None:
        with ctx.db.read() as session:
            settings = read_settings(session)
        verb = "On-call settings"
    else:
        settings = SwapService(ctx.db, ctx.clock).change_settings(
            ctx.actor,
            require_approval=None if a.swap_approval is None else APPROVAL_CHOICES[a.swap_approval],
            handoff_lead=None
            if a.handoff_lead is None
            else parse_lead("--handoff-lead", a.handoff_lead),
        )
        verb = "On-call settings changed"
    body = settings.as_json()
    text = (
        f"{verb}:\n"
        f"  {REQUIRE_APPROVAL_KEY} = {str(settings.require_approval).lower()}"
        "   (swaps need a supervisor's approval)\n"
        f"  {HANDOFF_LEAD_KEY} = {body[HANDOFF_LEAD_KEY]}"
        "   (how long before a shift its person is told)"
    )
    ctx.emit(body, text)
    return EXIT_OK


# --- vigil swap ------------------------------------------------------------------------------


def _emit_swap(ctx: Context, view: SwapView, headline: str) -> int:
    ctx.emit(view.as_json(), f"{headline}\n{view.text(ctx.viewer_zone())}")
    return EXIT_OK


def cmd_swap_request(ctx: Context) -> int:
    a = ctx.args
    (start, end), notes = _window(ctx, a.schedule, a.start, a.end)
    view = SwapService(ctx.db, ctx.clock).request(
        ctx.actor,
        schedule=a.schedule,
        start=start,
        end=end,
        with_handle=a.with_handle,
        note=a.note or "",
    )
    headline = f"Swap #{view.id} offered; take it with `vigil swap take {view.id}`."
    return _emit_swap(ctx, view, "".join(notes) + headline)


def cmd_swap_take(ctx: Context) -> int:
    view = SwapService(ctx.db, ctx.clock).take(ctx.actor, _number("ID", ctx.args.id))
    if view.status == SwapStatus.APPROVED.value:
        headline = f"Swap #{view.id} taken; override #{view.override_id} puts you on call."
    else:
        headline = f"Swap #{view.id} taken; it waits for a supervisor's approval."
    return _emit_swap(ctx, view, headline)


def cmd_swap_approve(ctx: Context) -> int:
    view = SwapService(ctx.db, ctx.clock).approve(ctx.actor, _number("ID", ctx.args.id))
    return _emit_swap(ctx, view, f"Swap #{view.id} approved as override #{view.override_id}.")


def cmd_swap_decline(ctx: Context) -> int:
    view = SwapService(ctx.db, ctx.clock).decline(
        ctx.actor, _number("ID", ctx.args.id), ctx.args.reason or ""
    )
    return _emit_swap(ctx, view, f"Swap #{view.id} declined.")


def cmd_swap_cancel(ctx: Context) -> int:
    view = SwapService(ctx.db, ctx.clock).cancel(ctx.actor, _number("ID", ctx.args.id))
    return _emit_swap(ctx, view, f"Swap #{view.id} cancelled.")


def cmd_swap_list(ctx: Context) -> int:
    status = ctx.args.status
    if status is not None and status not in {s.value for s in SwapStatus}:
        allowed = ", ".join(s.value for s in SwapStatus)
        raise BadInput("--status", f"expected one of {allowed}, got {status!r}")
    with ctx.db.read() as session:
        views = list_swaps(session, status=status, include_closed=ctx.args.all)
        zone = viewer_zone_of(session, ctx.actor)
    empty = "No swaps." if status or ctx.args.all else "No open swaps (--all for every one)."
    ctx.emit([v.as_json() for v in views], "\n".join(v.text(zone) for v in views) or empty)
    return EXIT_OK


# --- registration ----------------------------------------------------------------------------


def register(commands: Commands) -> None:
    p = commands.add("oncall", cmd_oncall)
    p.add_argument("--at", metavar="ISO", help="at this instant, e.g. 2026-12-24T20:00:00+11:00")
    p.add_argument("--schedule", metavar="NAME", help="only this schedule")

    # `vigil override --schedule ... --who ... --from ... --to ...` places one; the actions
    # `list` and `remove` sit beside it.
    p = commands.add("override", cmd_override_add)
    p.add_argument("--schedule", metavar="NAME")
    p.add_argument("--who", metavar="HANDLE")
    p.add_argument("--from", dest="start", metavar="TIME", help=WALL_HELP)
    p.add_argument("--to", dest="end", metavar="TIME", help=WALL_HELP)
    p.add_argument("--reason", help="why, for the record")
    override = Commands(
        p.add_subparsers(dest="override_action", parser_class=type(p), metavar="ACTION"),
        commands.common,
        f"{commands.prefix} override",
    )
    q = override.add("list", cmd_override_list, "list current and coming overrides")
    q.add_argument("--schedule", metavar="NAME", help="only this schedule")
    q.add_argument("--all", action="store_true", help="include overrides that are over")
    q = override.add("remove", cmd_override_remove, "remove an override (one in progress ends now)")
    q.add_argument("id", metavar="ID")

    calendar = commands.group("calendar")
    p = calendar.add("export", cmd_calendar_export, "on-call shifts as iCalendar (RFC 5545)")
    p.add_argument("--schedule", metavar="NAME", help="only this schedule")
    p.add_argument("--who", metavar="HANDLE", help="only this person's shifts")
    p.add_argument("--days", default=str(EXPORT_DAYS), help=f"1..366 (default {EXPORT_DAYS})")
    p = calendar.add("gaps", cmd_calendar_gaps, "coverage gaps per schedule")
    p.add_argument("--schedule", metavar="NAME", help="only this schedule")
    p.add_argument("--days", default=str(GAP_DAYS), help=f"1..366 (default {GAP_DAYS})")
    p = calendar.add(
        "settings",
        cmd_calendar_settings,
        "show or change (supervisors) swap approval and the hand-off notice lead time",
    )
    p.add_argument(
        "--swap-approval",
        choices=sorted(APPROVAL_CHOICES),
        help="whether a taken swap waits for a supervisor's approval (default required)",
    )
    p.add_argument(
        "--handoff-lead", metavar="DURATION", help="e.g. 30m (default), 1h; from 1m to 24h"
    )

    swap = commands.group("swap")
    p = swap.add("request", cmd_swap_request, "offer part of your own shift on a schedule")
    p.add_argument("--schedule", required=True, metavar="NAME")
    p.add_argument("--from", dest="start", required=True, metavar="TIME", help=WALL_HELP)
    p.add_argument("--to", dest="end", required=True, metavar="TIME", help=WALL_HELP)
    p.add_argument("--with", dest="with_handle", metavar="HANDLE", help="offer it to one person")
    p.add_argument("--note", help="for the taker and the approver")
    p = swap.add("take", cmd_swap_take, "take an offered shift")
    p.add_argument("id", metavar="ID")
    p = swap.add("approve", cmd_swap_approve, "approve a taken swap (supervisors)")
    p.add_argument("id", metavar="ID")
    p = swap.add("decline", cmd_swap_decline, "decline a swap (supervisors)")
    p.add_argument("id", metavar="ID")
    p.add_argument("--reason")
    p = swap.add("cancel", cmd_swap_cancel, "withdraw your offer before it is granted")
    p.add_argument("id", metavar="ID")
    p = swap.add("list", cmd_swap_list, "list swaps (open and taken ones by default)")
    p.add_argument("--status", help=", ".join(s.value for s in SwapStatus))
    p.add_argument("--all", action="store_true", help="include closed swaps")

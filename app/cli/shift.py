"""Commands of shift work: `vigil handover`, `vigil postmortem`, `vigil template`, `vigil stats`."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlmodel import select

from app.cli.framework import EXIT_OK, Commands, Context
from app.cli.render import (
    handover_list_text,
    owed_postmortems_text,
    stats_text,
    template_table,
    text_output,
)
from app.core.errors import BadInput, NothingToDo, Refused
from app.core.text import visible
from app.core.times import iso, parse_instant
from data.domain import ID_RANGE, LIMIT, CountRange, severity_name
from data.models import Responder

if TYPE_CHECKING:
    from app.services.shiftwork.handover import HandoverView
    from app.services.shiftwork.postmortem import PostMortemService

FORMATS = ("md", "json")
DEFAULT_STATS_DAYS = 7


# --- shared -------------------------------------------------------------------------


def _since(ctx: Context) -> datetime | None:
    value = getattr(ctx.args, "since", None)
    return parse_instant("--since", value) if value else None


def _emit(ctx: Context, payload: Any, text: str) -> None:
    """`--format json` is another way to say `--json`."""
    if getattr(ctx.args, "format", "md") == "json":
        ctx.args.json = True
    ctx.emit(payload, text)


def _zone(ctx: Context) -> str:
    """The zone times are shown in: the person's own, UTC when they are not of the desk."""
    with ctx.db.read() as session:
        viewer = session.exec(select(Responder).where(Responder.handle == ctx.actor)).first()
    return viewer.timezone if viewer else "UTC"


def _read_text(field: str, path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(field, f"cannot read {path!r} as UTF-8 text ({exc})") from None


def _number(field: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise BadInput(field, f"expected a number such as 3, got {value!r}") from None
    if not 1 <= number <= ID_RANGE.high:
        raise BadInput(field, f"expected a number {ID_RANGE}, got {value!r}")
    return number


def _bounded(field: str, value: int, bounds: CountRange) -> int:
    try:
        return bounds.check(value)
    except ValueError as exc:
        raise BadInput(field, str(exc)) from None


def _write_out(ctx: Context, text: str) -> None:
    target = ctx.args.out
    try:
        Path(target).write_text(visible(text), encoding="utf-8")
    except OSError as exc:
        raise BadInput("--out", f"cannot write {target!r} ({exc.strerror or exc})") from None
    ctx.err.write(f"Wrote {target}\n")


# --- handover -----------------------------------------------------------------------


def cmd_handover(ctx: Context) -> int:
    from app.services.shiftwork.handover import HandoverService, render_markdown, to_json

    service = HandoverService(ctx.db, ctx.clock)
    report = service.report(
        ctx.actor, since=_since(ctx), sensitive_titles=ctx.args.sensitive_titles
    )
    _emit(ctx, to_json(report), render_markdown(report, _zone(ctx)))
    return EXIT_OK


def _handover_json(view: HandoverView) -> dict[str, Any]:
    from app.services.shiftwork.handover import to_json

    return {
        "id": view.id,
        "author": view.author,
        "incoming": view.incoming,
        "shift_start": iso(view.shift_start),
        "shift_end": iso(view.shift_end),
        "submitted_at": iso(view.submitted_at),
        "acknowledged_at": iso(view.acknowledged_at),
        "acknowledged_by": view.acknowledged_by,
        "notes": view.notes,
        "report": to_json(view.report),
    }


def cmd_handover_submit(ctx: Context) -> int:
    from app.services.shiftwork.handover import HandoverService

    a = ctx.args
    notes = a.notes if a.notes is not None else _read_text("--notes-file", a.notes_file)
    view = HandoverService(ctx.db, ctx.clock).submit(ctx.actor, notes, since=_since(ctx), to=a.to)
    who = view.incoming or "nobody named (anyone but you may acknowledge it)"
    ctx.emit(_handover_json(view), f"Handover {view.id} submitted for {who}.")
    return EXIT_OK


def cmd_handover_ack(ctx: Context) -> int:
    from app.services.shiftwork.handover import HandoverService

    number = _number("ID", ctx.args.id)
    view = HandoverService(ctx.db, ctx.clock).acknowledge_handover(ctx.actor, number)
    ctx.emit(
        _handover_json(view),
        f"Handover {view.id} from {view.author} acknowledged by {view.acknowledged_by}.",
    )
    return EXIT_OK


def cmd_handover_list(ctx: Context) -> int:
    from app.services.shiftwork.handover import find_handovers

    with ctx.db.read() as session:
        views = find_handovers(
            session,
            search=ctx.args.search or "",
            pending=ctx.args.pending,
            limit=_bounded("--limit", ctx.args.limit, LIMIT),
        )
    ctx.emit([_handover_json(v) for v in views], handover_list_text(views))
    return EXIT_OK


def cmd_handover_show(ctx: Context) -> int:
    from app.services.shiftwork.handover import handover_by_id, render_markdown

    number = _number("ID", ctx.args.id)
    with ctx.db.read() as session:
        view = handover_by_id(session, number)
    state = (
        f"acknowledged by {view.acknowledged_by} at {iso(view.acknowledged_at)}"
        if view.acknowledged_at
        else "not acknowledged yet"
    )
    text = f"Handover {view.id}: {state}\n\n" + render_markdown(view.report, _zone(ctx))
    _emit(ctx, _handover_json(view), text)
    return EXIT_OK


# --- post-mortems -------------------------------------------------------------------


def _postmortems(ctx: Context) -> PostMortemService:
    from app.services.shiftwork.postmortem import PostMortemService

    return PostMortemService(ctx.db, ctx.clock)


def cmd_pm_open(ctx: Context) -> int:
    _postmortems(ctx).open_for(ctx.actor, ctx.args.ref, ctx.args.summary or "")
    ref = ctx.args.ref.strip().upper()
    ctx.emit({"ref": ref, "status": "draft"}, f"Post-mortem of {ref} opened (draft).")
    return EXIT_OK


def cmd_pm_edit(ctx: Context) -> int:
    a = ctx.args
    summary = _read_text("--summary-file", a.summary_file) if a.summary_file else a.summary
    _postmortems(ctx).edit(
        ctx.actor, a.ref, summary=summary, root_cause=a.root_cause, factors=a.factor
    )
    ref = a.ref.strip().upper()
    ctx.emit({"ref": ref}, f"Post-mortem of {ref} updated.")
    return EXIT_OK


def cmd_pm_status(ctx: Context) -> int:
    _postmortems(ctx).set_status(ctx.actor, ctx.args.ref, ctx.args.status)
    ref, status = ctx.args.ref.strip().upper(), ctx.args.status.strip().lower()
    ctx.emit({"ref": ref, "status": status}, f"Post-mortem of {ref} is {status}.")
    return EXIT_OK


def cmd_pm_action(ctx: Context) -> int:
    a = ctx.args
    try:
        due = date.fromisoformat(a.due.strip())
    except ValueError:
        raise BadInput("--due", f"expected a date YYYY-MM-DD, got {a.due!r}") from None
    number = _postmortems(ctx).add_action(ctx.actor, a.ref, a.title, a.owner, due)
    ref = a.ref.strip().upper()
    ctx.emit(
        {"ref": ref, "number": number, "owner": a.owner, "due_on": due.isoformat()},
        f"Action item {number} of {ref}: {a.owner}, due {due.isoformat()}.",
    )
    return EXIT_OK


def cmd_pm_done(ctx: Context) -> int:
    number = _number("NUMBER", ctx.args.number)
    _postmortems(ctx).complete_action(ctx.actor, ctx.args.ref, number)
    ref = ctx.args.ref.strip().upper()
    ctx.emit({"ref": ref, "number": number, "status": "done"}, f"Action item {number} done.")
    return EXIT_OK


def cmd_pm_show(ctx: Context) -> int:
    from app.services.sensitive import reveal_titles
    from app.services.shiftwork.postmortem import export_markdown, postmortem_json, postmortem_view

    reveal = ctx.args.sensitive_titles
    with ctx.db.read() as session:
        view = postmortem_view(session, ctx.args.ref, reveal_title=reveal)
    if reveal:
        reveal_titles(ctx.cases.work, ctx.actor, [view.ref], "postmortem")
    if ctx.args.out:
        _write_out(ctx, export_markdown(view, _zone(ctx)))
    else:
        _emit(ctx, postmortem_json(view), export_markdown(view, _zone(ctx)))
    return EXIT_OK


def cmd_pm_owed(ctx: Context) -> int:
    from app.services.sensitive import reveal_titles
    from app.services.shiftwork.postmortem import owed_postmortems

    reveal = ctx.args.sensitive_titles
    with ctx.db.read() as session:
        owed = owed_postmortems(session, reveal_titles=reveal)
    if reveal:
        reveal_titles(ctx.cases.work, ctx.actor, [o.ref for o in owed], "postmortem owed")
    body = [
        {
            "ref": o.ref,
            "title": o.title,
            "severity": severity_name(o.severity),
            "resolved_at": iso(o.resolved_at),
            "postmortem": o.status,
        }
        for o in owed
    ]
    ctx.emit(body, owed_postmortems_text(owed))
    return EXIT_OK


# --- response templates -------------------------------------------------------------


def cmd_template_list(ctx: Context) -> int:
    from app.services.shiftwork.templates import load_templates

    templates = load_templates()
    body = [
        {
            "name": t.name,
            "title": t.title,
            "audience": t.audience,
            "fields": list(t.fields),
            "categories": list(t.categories),
            "shipped": t.shipped,
        }
        for t in templates.values()
    ]
    ctx.emit(body, template_table(templates.values()))
    return EXIT_OK


def cmd_template_show(ctx: Context) -> int:
    from app.services.shiftwork.templates import get_template, load_templates

    t = get_template(load_templates(), ctx.args.name)
    ctx.emit(
        {
            "name": t.name,
            "title": t.title,
            "audience": t.audience,
            "fields": list(t.fields),
            "placeholders": t.placeholders(),
            "source": t.source,
            "body": t.body,
        },
        f"{t.title} ({t.audience}; {t.source})\nfields: {', '.join(t.fields) or '-'}\n\n{t.body}",
    )
    return EXIT_OK


def _edit(text: str) -> str:
    """Open the person's editor ($VISUAL, else $EDITOR) on `text`; return what they saved."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        raise BadInput("--edit", "set VISUAL or EDITOR to the command of your editor")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "response.md"
        path.write_text(visible(text), encoding="utf-8")
        try:
            done = subprocess.run([*shlex.split(editor), str(path)], check=False)
        except OSError as exc:
            raise BadInput("--edit", f"cannot start the editor {editor!r} ({exc})") from None
        if done.returncode != 0:
            raise Refused(f"the editor exited with {done.returncode}; nothing was logged")
        return path.read_text(encoding="utf-8")


def cmd_template_fill(ctx: Context) -> int:
    from app.services.sensitive import reveal_titles
    from app.services.shiftwork.templates import (
        fill_for_case,
        get_template,
        load_templates,
        parse_settings,
    )

    a = ctx.args
    template = get_template(load_templates(), a.name)
    settings = parse_settings(a.set or [])
    writer = ctx.cases.require_actor(ctx.actor)
    with ctx.db.read() as session:
        filled = fill_for_case(
            session,
            template,
            a.ref,
            writer,
            ctx.clock.now(),
            settings,
            reveal_title=a.sensitive_titles,
        )
    if a.sensitive_titles:
        reveal_titles(ctx.cases.work, ctx.actor, [filled.ref], "template")
    text = _edit(filled.text) if a.edit else filled.text
    logged = False
    if a.log:
        if not text.strip():
            raise NothingToDo("the response is empty; nothing was logged")
        ctx.cases.add_note(ctx.actor, filled.ref, text)
        logged = True
    body = {
        "template": filled.template,
        "ref": filled.ref,
        "text": text,
        "unfilled": list(filled.unfilled),
        "logged": logged,
    }
    if ctx.as_json:
        ctx.emit(body, "")
    elif logged:
        ctx.out.write(f"Logged the response on {filled.ref} as a note.\n")
    else:
        ctx.out.write(text_output(text))
    if filled.unfilled and not logged:
        ctx.err.write(f"To fill in: {', '.join(filled.unfilled)} (or --set KEY=VALUE)\n")
    return EXIT_OK


# --- figures ------------------------------------------------------------------------


def cmd_stats(ctx: Context) -> int:
    from app.services.shiftwork.stats import compute_stats, load_facts, stats_json

    now = ctx.clock.now()
    until = parse_instant("--until", ctx.args.until) if ctx.args.until else now
    since = _since(ctx) or until - timedelta(days=DEFAULT_STATS_DAYS)
    if since >= until:
        raise BadInput("--since", f"expected a time before {iso(until)}, got {iso(since)}")
    zone = _zone(ctx)
    with ctx.db.read() as session:
        facts = load_facts(session, since, until)
    stats = compute_stats(facts, since, until, zone=zone)
    ctx.emit(stats_json(stats), stats_text(stats))
    return EXIT_OK


# --- registration ---------------------------------------------------------------------


def register(commands: Commands) -> None:
    handover = commands.add("handover", cmd_handover)
    handover.add_argument("--since", metavar="ISO", help="start of the window (end: now)")
    handover.add_argument("--format", choices=FORMATS, default="md")
    handover.add_argument(
        "--sensitive-titles",
        action="store_true",
        help="show sensitive cases' titles too (audited as a reveal of each)",
    )
    actions = Commands(
        handover.add_subparsers(
            dest="handover_action", parser_class=type(handover), metavar="ACTION"
        ),
        commands.common,
        "vigil handover",
    )
    p = actions.add("submit", cmd_handover_submit, "close your shift: store the report with notes")
    notes = p.add_mutually_exclusive_group(required=True)
    notes.add_argument("--notes", help="your notes for the incoming person")
    notes.add_argument("--notes-file", metavar="FILE", help="the notes from a file (- for stdin)")
    p.add_argument("--since", metavar="ISO", help="start of the window (end: now)")
    p.add_argument("--to", metavar="HANDLE", help="the incoming person (default: the schedule's)")
    p = actions.add("ack", cmd_handover_ack, "acknowledge a handover you received")
    p.add_argument("id", metavar="ID")
    p = actions.add("list", cmd_handover_list, "past handovers, newest first")
    p.add_argument("--search", metavar="TEXT", help="in notes, author, case refs and titles")
    p.add_argument("--pending", action="store_true", help="only those not acknowledged yet")
    p.add_argument("--limit", type=int, default=50)
    p = actions.add("show", cmd_handover_show, "one submitted handover")
    p.add_argument("id", metavar="ID")
    p.add_argument("--format", choices=FORMATS, default="md")

    pm = commands.group("postmortem")
    p = pm.add("open", cmd_pm_open, "open a case's post-mortem (supervisors)")
    p.add_argument("ref")
    p.add_argument("--summary")
    p = pm.add("edit", cmd_pm_edit, "write the summary, root cause or contributing factors")
    p.add_argument("ref")
    p.add_argument("--summary")
    p.add_argument("--summary-file", metavar="FILE")
    p.add_argument("--root-cause")
    p.add_argument(
        "--factor", action="append", help="a contributing factor (repeat; replaces the list)"
    )
    p = pm.add("status", cmd_pm_status, "set the status: draft, review or final")
    p.add_argument("ref")
    p.add_argument("status")
    p = pm.add("action", cmd_pm_action, "add an action item with an owner and a due date")
    p.add_argument("ref")
    p.add_argument("--title", required=True)
    p.add_argument("--owner", required=True, metavar="HANDLE")
    p.add_argument("--due", required=True, metavar="YYYY-MM-DD")
    p = pm.add("done", cmd_pm_done, "mark an action item done (its owner or a supervisor)")
    p.add_argument("ref")
    p.add_argument("number", metavar="NUMBER")
    p = pm.add("show", cmd_pm_show, "the post-mortem: Markdown export (default) or JSON")
    p.add_argument("ref")
    p.add_argument("--format", choices=FORMATS, default="md")
    p.add_argument("--out", metavar="FILE", help="write the Markdown to a file")
    p.add_argument(
        "--sensitive-titles",
        action="store_true",
        help="show a sensitive case's title too (audited as a reveal)",
    )
    p = pm.add("owed", cmd_pm_owed, "resolved sev1 and sev2 cases without a final post-mortem")
    p.add_argument(
        "--sensitive-titles",
        action="store_true",
        help="show sensitive cases' titles too (audited as a reveal of each)",
    )

    template = commands.group("template")
    template.add("list", cmd_template_list, "the templates (shipped and your team's)")
    p = template.add("show", cmd_template_show, "a template's text, fields and placeholders")
    p.add_argument("name")
    p = template.add("fill", cmd_template_fill, "fill a template from a case")
    p.add_argument("name")
    p.add_argument("ref")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="a field (repeat)")
    p.add_argument("--edit", action="store_true", help="edit the text in $VISUAL or $EDITOR")
    p.add_argument("--log", action="store_true", help="log the text on the case as a note")
    p.add_argument(
        "--sensitive-titles",
        action="store_true",
        help="show a sensitive case's title too (audited as a reveal)",
    )

    p = commands.add("stats", cmd_stats)
    p.add_argument("--since", metavar="ISO", help=f"default: {DEFAULT_STATS_DAYS} days ago")
    p.add_argument("--until", metavar="ISO", help="default: now")

"""The command line's text, Markdown and JSON: the command modules build the data, this
module writes it. One module, apart from the commands, so a command imports the forms it
prints and not the services of another; it imports nothing heavy, so `vigil --help` and
every command that loads it stay quick.

Documents both faces export (the handover's `render_markdown`, the post-mortem's
`export_markdown`) and the text both faces show (`owed_report_text`, `fairness_text`) stay
beside their service, where the console can reach them too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import fields, is_dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from app.core.text import json_safe, md_cell
from app.core.times import iso, shown
from data.domain import severity_name
from widgets.timefmt import plural, viewer_zone

if TYPE_CHECKING:
    from app.rules.rotations import Shift
    from app.services.casework.agency import ChannelView, OriginView
    from app.services.casework.report import DisclosureReport
    from app.services.casework.tipline import EvidenceView, FilingView
    from app.services.shiftwork.calendar import OnCallEntry, OverrideView
    from app.services.shiftwork.handover import HandoverView
    from app.services.shiftwork.postmortem import OwedPostMortem
    from app.services.shiftwork.stats import DeskStats
    from app.services.shiftwork.templates import ResponseTemplate
    from widgets.views import (
        ActionView,
        CaseworkView,
        ClockView,
        ContainmentView,
        DisclosureView,
        PartnerView,
        VerificationView,
    )

BAR_WIDTH = 40
"""The longest bar of `vigil stats`'s cases per day, in characters."""

# --- JSON and text ----------------------------------------------------------------------


def json_output(payload: Any, *, stream: bool = False) -> str:
    """What `--json` prints: indented, with every character a terminal would obey escaped
    (`json_safe`), so the value parses back as it was. A record of a stream (`stream`) is
    one line, so a reader can act on each as it comes."""
    if stream:
        return json_safe(json.dumps(payload, ensure_ascii=False)) + "\n"
    body = json.dumps(payload, indent=2, sort_keys=False, ensure_ascii=False)
    return json_safe(body) + "\n"


def text_output(text: str) -> str:
    """What a person reads: the text, ending in one line break."""
    return text if text.endswith("\n") else text + "\n"


def plain(value: Any) -> Any:
    """A view object as JSON: ISO 8601 UTC times, lists for tuples."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


# --- casework ----------------------------------------------------------------------------


def _when(value: datetime | None, zone: ZoneInfo) -> str:
    """On the viewer's wall clock, then UTC (JSON keeps ISO 8601 UTC)."""
    return "-" if value is None else shown(value, zone)


def clock_line(clock: ClockView, zone: ZoneInfo) -> str:
    if clock.due_at is None:
        return f"{clock.label}: {clock.state} (starts when its report is filed)"
    text = f"{clock.label}: {clock.state.upper()}"
    if clock.state == "done":
        text += f", {clock.outcome} {_when(clock.done_at, zone)}"
        if clock.reference:
            text += f" (report {clock.reference})"
    else:
        verb = "expires" if clock.kind == "hold" else "due"
        text += f", {verb} {_when(clock.due_at, zone)}"
        if clock.reminder_at:
            text += f", reminder {_when(clock.reminder_at, zone)}"
    if clock.extensions or clock.extensions_left:
        text += f", extended {clock.extensions}x, {clock.extensions_left} left"
    return text


def verification_lines(view: VerificationView, zone: ZoneInfo) -> list[str]:
    head = "complete" if view.complete else f"missing {', '.join(view.missing)}"
    lines = [f"Verification ({'required' if view.required else 'optional'}): {head}"]
    for step in view.steps:
        mark = "[x]" if step.done else "[ ]"
        line = f"  {mark} {step.step}: {step.label}"
        if step.done:
            line += f" ({step.recorded_by}, {_when(step.recorded_at, zone)})"
        lines.append(line)
        lines += [f"        {key}: {value}" for key, value in step.facts]
    return lines


def disclosure_line(d: DisclosureView, zone: ZoneInfo) -> str:
    line = (
        f"  #{d.number} {d.status}: {', '.join(d.data)} ({plural(d.accounts, 'account')}) "
        f"to {d.to} ({d.agency}) under {d.basis}; "
        f"requested by {d.requested_by} {_when(d.requested_at, zone)}"
    )
    if d.decided_by:
        verb = "approved" if d.status == "disclosed" else "declined"
        line += f"; {verb} by {d.decided_by} {_when(d.decided_at, zone)}"
    if d.override_reason:
        line += f"\n      verification overridden: {d.override_reason}"
    if d.decline_reason:
        line += f"\n      declined: {d.decline_reason}"
    return line


def containment_line(step: ContainmentView, zone: ZoneInfo) -> str:
    mark = "[x]" if step.done else "[ ]"
    line = f"  {mark} {step.step}: {step.label}"
    if step.done:
        line += f" ({step.done_by}, {_when(step.done_at, zone)})"
        if step.reference:
            line += f" ref {step.reference}"
    return line


def action_line(item: ActionView, zone: ZoneInfo, *, with_ref: bool = False) -> str:
    due = f", due {_when(item.due_at, zone)}" if item.due_at else ""
    flag = " OVERDUE" if item.overdue else ""
    where = f"{item.ref} " if with_ref else ""
    return (
        f"  {where}#{item.id} [{item.status}]{flag} {item.title} "
        f"({item.owner_kind or 'owner'} {item.owner or '-'}{due})"
    )


def partner_line(p: PartnerView) -> str:
    channel = f"; verified channel: {p.verified_channel}" if p.verified_channel else ""
    contact = f"; contact: {p.contact}" if p.contact else ""
    return f"  {p.name} ({p.kind}): {p.agency}{contact}{channel}"


def format_casework(view: CaseworkView, zone: ZoneInfo) -> str:
    lines = [f"{view.ref}  {view.category}" + ("  SENSITIVE" if view.sensitive else "")]
    if view.request_flags:
        lines.append(f"Request flags ({len(view.request_flags)})")
        lines += [f"  ! {flag}" for flag in view.request_flags]
    if view.tipline:
        lines.append(f"CyberTipline: {view.tipline}")
    lines += verification_lines(view.verification, zone)
    lines.append(f"Disclosures ({len(view.disclosures)})")
    lines += [disclosure_line(d, zone) for d in view.disclosures]
    lines.append(f"Legal clocks ({len(view.clocks)})")
    lines += [f"  {clock_line(c, zone)}" for c in view.clocks]
    done = sum(1 for c in view.containment if c.done)
    lines.append(f"Containment ({done}/{len(view.containment)})")
    lines += [containment_line(c, zone) for c in view.containment]
    lines.append(f"Action items ({len(view.actions)}, {view.overdue_actions} overdue)")
    lines += [action_line(a, zone) for a in view.actions]
    lines.append(f"Partners ({len(view.partners)})")
    lines += [partner_line(p) for p in view.partners]
    return "\n".join(lines)


# --- cases -------------------------------------------------------------------------------


def case_table(body: list[dict[str, Any]]) -> str:
    """`vigil cases`: one aligned line a case."""
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


def case_text(body: dict[str, Any], details: str | None, casework: str, zone: ZoneInfo) -> str:
    """The case as `vigil show` prints it: times on the viewer's clock (then UTC), its
    casework as `vigil casework show` prints it."""

    def at(text: str | None) -> str:
        return "-" if text is None else shown(datetime.fromisoformat(text), zone)

    lines = [
        f"{body['ref']}  {body['severity']}  {body['category']}  {body['status']}/{body['stage']}",
        f"  {body['title']}",
        f"  assignee: {body['assignee'] or '-'}   policy: {body['policy']}   "
        f"step {body['escalation_step']} round {body['escalation_round'] + 1}"
        + ("   EXHAUSTED" if body["exhausted"] else ""),
        f"  opened {at(body['created_at'])}   ack by {at(body['sla_ack_due_at'])}",
    ]
    if body["acknowledged_at"]:
        lines.append(f"  acknowledged {at(body['acknowledged_at'])} by {body['acknowledged_by']}")
    if body["resolved_at"]:
        lines.append(f"  resolved {at(body['resolved_at'])}")
    lines.append(f"  details: {details}")
    for link in body.get("links", []):
        lines.append(f"  link: {link['text'] or 'link'}  {link['href']}")
    if body["pages"]:
        lines.append("  pages:")
        for page in body["pages"]:
            channels = ", ".join(f"{c['channel']}={c['status']}" for c in page["channels"])
            lines.append(
                f"    {at(page['sent_at'])}  {page['handle']}  step {page['step']} "
                f"round {page['round'] + 1}  {page['reason']}  [{channels}]"
            )
    if body["notes"]:
        lines.append("  notes:")
        for note in body["notes"]:
            text = note["body"].replace("\n", "\n      ")
            lines.append(f"    {at(note['at'])}  {note['author']}: {text}")
    if body["timeline"]:
        lines.append("  timeline:")
        lines.extend(f"    {at(event['at'])}  {event['text']}" for event in body["timeline"])
    lines.append("  casework:")
    lines.extend(f"    {line}" for line in casework.splitlines()[1:])  # its first line: the ref
    return "\n".join(lines)


def audit_log_text(body: Sequence[dict[str, Any]]) -> str:
    """`vigil audit log`: one aligned line a record, its detail as sorted JSON."""
    text = "\n".join(
        f"{r['seq']:>6}  {r['at']}  {r['actor']:<12} {r['action']:<18} {r['case'] or '-':<10} "
        f"{json.dumps(r['detail'], sort_keys=True)}"
        for r in body
    )
    return text or "No audit records."


# --- agency directory and CyberTipline ---------------------------------------------------


def channel_line(view: ChannelView) -> str:
    return (
        f"  #{view.id} {view.partner} ({view.agency}) {view.kind} {view.value}; "
        f"confirmed from {view.source}, {iso(view.added_at)}"
    )


def origin_text(view: OriginView) -> str:
    lines = [f"{view.ref} request origin recorded"]
    lines += [f"  ! {flag}" for flag in view.flags] or ["  no flags: it matches the directory"]
    return "\n".join(lines)


def filing_line(view: FilingView) -> str:
    text = f"{view.ref} CyberTipline filing: {view.status}"
    if view.report_id:
        text += f", NCMEC report {view.report_id}"
    if view.finished_at:
        text += f", filed {iso(view.finished_at)}"
    if view.retractions:
        text += f", {view.retractions} unfinished report(s) retracted"
    if view.attempts:
        text += f", {view.attempts} failed tries"
    if view.next_attempt_at:
        text += f", next try {iso(view.next_attempt_at)}"
    if view.holder:
        text += f", being filed by {view.holder}"
    if view.last_error:
        code = f" ({view.last_code})" if view.last_code is not None else ""
        text += f"\n  NCMEC said{code}: {view.last_error}"
    return text


def evidence_line(view: EvidenceView) -> str:
    viewed = "viewed" if view.viewed_by_esp else "not viewed"
    return (
        f"  #{view.id} {view.industry_classification} {view.original_name} "
        f"({view.size} bytes, sha256 {view.sha256[:16]}..., {viewed})"
    )


def disclosure_report_markdown(report: DisclosureReport) -> str:
    """`vigil report disclosures`: the year's counts as a Markdown table."""
    lines = [
        f"# Emergency disclosures, {report.year}",
        "",
        f"Disclosures made on an emergency basis between {report.year}-01-01 and "
        f"{report.year}-12-31 (UTC), counted by legal basis and agency "
        "(18 U.S.C. 2702(b)(8), (c)(4); reported under 2702(d)). Counts only.",
        "",
    ]
    if not report.rows:
        lines.append("No emergency disclosures were made this year.")
        return "\n".join(lines) + "\n"
    lines += [
        "| Legal basis | Agency | Disclosures | Accounts |",
        "| --- | --- | ---: | ---: |",
    ]
    for row in report.rows:
        lines.append(
            f"| {md_cell(row.basis_label)} | {md_cell(row.agency)} | "
            f"{row.disclosures} | {row.accounts} |"
        )
    lines.append(f"| **Total** | | **{report.total_disclosures}** | **{report.total_accounts}** |")
    return "\n".join(lines) + "\n"


# --- on call -----------------------------------------------------------------------------


def on_call_text(
    entries: Sequence[OnCallEntry], at: datetime, zone: ZoneInfo, names: dict[str, str]
) -> str:
    def shift_lines(label: str, shift: Shift | None, nobody: str) -> list[str]:
        """Who holds `shift`, from when to when; `nobody` where there is no one."""
        if shift is None:
            return [f"    {label} {nobody}"]
        who = f"{names.get(shift.who, shift.who)} ({shift.who})"
        return [
            f"    {label} {who}  [{shift.source}]",
            f"          from {shown(shift.start, zone)}",
            f"          to   {shown(shift.end, zone)}",
        ]

    lines = [f"On call at {shown(at, zone)}:"]
    if not entries:
        lines.append("  no schedules (declare them with `vigil team apply FILE.toml`)")
    for entry in entries:
        lines.append(f"  {entry.schedule}")
        lines += shift_lines("now: ", entry.current, "nobody (coverage gap)")
        lines += shift_lines("next:", entry.upcoming, "nobody within a year")
    return "\n".join(lines)


def override_text(view: OverrideView, zone: ZoneInfo) -> str:
    by = f" by {view.created_by}" if view.created_by else ""
    swap = f" (swap #{view.swap_id})" if view.swap_id else ""
    reason = f"\n    {view.reason}" if view.reason else ""
    return (
        f"#{view.id}  {view.schedule}  {view.who}{swap}  placed{by}\n"
        f"    from {shown(view.start, zone)}\n    to   {shown(view.end, zone)}{reason}"
    )


def gaps_text(
    found: Sequence[tuple[str, list[tuple[datetime, datetime]]]],
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
) -> str:
    from app.services.shiftwork.calendar import hours_of  # loaded by `vigil calendar` already

    lines = [f"Coverage gaps from {shown(start, zone)} to {shown(end, zone)}:"]
    if not found:
        lines.append("  no schedules (declare them with `vigil team apply FILE.toml`)")
    for name, gaps in found:
        if not gaps:
            lines.append(f"  {name}: fully covered")
            continue
        total = hours_of(sum((b - a for a, b in gaps), timedelta()))
        lines.append(f"  {name}: {len(gaps)} gap(s), {total:g}h uncovered")
        for a, b in gaps:
            lines.append(f"    {shown(a, zone)}  to  {shown(b, zone)}  ({hours_of(b - a):g}h)")
    return "\n".join(lines)


# --- shift work --------------------------------------------------------------------------


def handover_list_text(views: Iterable[HandoverView]) -> str:
    """`vigil handover list`: one line a handover, its notes' first line cut at 60."""
    lines = [
        f"{v.id:>5}  {iso(v.submitted_at)}  {v.author} -> {v.incoming or '?'}  "
        f"{'PENDING' if v.pending else 'acked by ' + (v.acknowledged_by or '?')}  "
        f"{(v.notes.splitlines() or [''])[0][:60]}"
        for v in views
    ]
    return "\n".join(lines) or "No handovers."


def owed_postmortems_text(owed: Iterable[OwedPostMortem]) -> str:
    text = "\n".join(
        f"{o.ref:<10} {severity_name(o.severity):<5} {o.status or 'none':<7} {o.title}"
        for o in owed
    )
    return text or "No resolved sev1 or sev2 case owes a post-mortem."


def template_table(templates: Iterable[ResponseTemplate]) -> str:
    text = "\n".join(
        f"{t.name:<22} {t.audience:<16} {'shipped' if t.shipped else 'team':<8} {t.title}"
        for t in templates
    )
    return text or "No templates."


def stats_text(stats: DeskStats) -> str:
    """`vigil stats`: the figures, the SLA and load tables, and a bar of cases per day."""
    from app.services.shiftwork.stats import (  # loaded by `vigil stats` already
        fairness_text,
        format_seconds,
        percent,
    )

    zone = viewer_zone(stats.zone)
    span = (
        f"{stats.since.astimezone(zone):%Y-%m-%d %H:%M} to "
        f"{stats.until.astimezone(zone):%Y-%m-%d %H:%M} {stats.zone}"
    )
    tta, ttr = stats.time_to_acknowledge, stats.time_to_resolve
    lines = [
        f"Desk figures, {span}",
        f"Cases opened: {stats.cases_opened}",
        f"Time to acknowledge: mean {format_seconds(tta.mean_seconds)}, "
        f"p90 {format_seconds(tta.p90_seconds)} ({plural(tta.count, 'case')})",
        f"Time to resolve:     mean {format_seconds(ttr.mean_seconds)}, "
        f"p90 {format_seconds(ttr.p90_seconds)} ({plural(ttr.count, 'case')})",
        "",
        f"{'SLA':<20} {'CASES':>5}  {'ACK MET':>8} {'MISSED':>6} {'ATTAIN':>6}  "
        f"{'RESP MET':>8} {'MISSED':>6} {'ATTAIN':>6}",
    ]
    for row in (*stats.sla_by_severity, *stats.sla_by_category):
        a, r = row.acknowledge, row.respond
        lines.append(
            f"{row.key:<20} {row.cases:>5}  {a.met:>8} {a.missed:>6} {percent(a.attainment):>6}  "
            f"{r.met:>8} {r.missed:>6} {percent(r.attainment):>6}"
        )
    lines += [
        "",
        f"Pages: {stats.pages} ({stats.night_pages} at night, 22:00-07:00 local); "
        f"fairness {fairness_text(stats.page_fairness)}, "
        f"at night {fairness_text(stats.night_fairness)} "
        "(1.00 = an even load)",
        f"{'RESPONDER':<12} {'PAGES':>5} {'NIGHT':>5} {'SHARE':>6}  ZONE",
    ]
    for load in stats.responders:
        lines.append(
            f"{load.handle:<12} {load.pages:>5} {load.night_pages:>5} {percent(load.share):>6}  "
            f"{load.timezone}"
        )
    lines += ["", f"Cases per day ({stats.zone}):"]
    busiest = max(stats.daily_counts, default=0)
    for d in stats.cases_per_day:
        bar = "#" * math.ceil(BAR_WIDTH * d.cases / busiest) if d.cases else ""
        lines.append(f"  {d.day.isoformat()}  {d.cases:>4}  {bar}")
    return "\n".join(lines)

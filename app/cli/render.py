"""The command line's text, Markdown and JSON: the command modules build the data, this
module writes it. One module, apart from the commands, so a command imports the forms it
prints and not the services of another; it imports nothing heavy, so `vigil --help` and
every command that loads it stay quick.

Documents both faces export (the handover's `render_markdown`, the post-mortem's
`export_markdown`) and the text both faces show (`owed_report_text`, `fairness_text`) stay
beside their service, where the console can reach them too.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from app.core.times import iso, shown
from widgets.timefmt import plural
from widgets.views import (
    ActionView,
    CaseworkView,
    ClockView,
    ContainmentView,
    DisclosureView,
    PartnerView,
    VerificationView,
)


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

"""What a page says to a person, on chat, push or mail.

Reference, severity, category, step and round, who else was paged for the same step, how
long the case has waited, and the acknowledge and open links. Never the case's details,
and for a sensitive case (every CSEA case is) not even its title. Two forms: plain text,
and Markdown for the services that render it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.services.links import PageLinks
from data.clock import how_long
from data.domain import Category, category_label, severity_name
from data.models import Case, Page


def is_sensitive(case: Case) -> bool:
    """Every CSEA case is sensitive, whatever its flag says."""
    return case.sensitive or case.category == Category.CSEA


@dataclass(frozen=True)
class PageMessage:
    title: str
    text: str
    markdown: str


def _position(page: Page) -> str:
    if page.reason == "reassign":
        return "reassigned to you"
    if page.reason == "delayed":
        return "escalation was delayed"
    late = " (late: escalation was delayed)" if page.reason == "catch-up" else ""
    return f"step {abs(page.step)}, round {page.round + 1}{late}"


def compose(
    case: Case,
    page: Page,
    others: Sequence[str],
    now: datetime,
    links: PageLinks | None,
) -> PageMessage:
    """The page for one person; `others` are the handles paged with them."""
    severity = severity_name(case.severity)
    category = category_label(case.category)
    what = "sensitive case: open Vigil to view" if is_sensitive(case) else case.title
    title = f"{case.ref} {severity} {category}: {what}"
    waited = f"waiting {how_long(max(now - case.created_at, now - now))}"
    also = f"also paged: {', '.join(others)}" if others else "nobody else paged"
    facts = [f"{case.ref} · {severity} · {category}", f"{_position(page)} · {waited} · {also}"]
    if links is None:
        text_links = md_links = "Acknowledge in Vigil."
    else:
        text_links = f"Acknowledge: {links.acknowledge}\nOpen: {links.open}"
        md_links = f"[Acknowledge]({links.acknowledge}) · [Open]({links.open})"
    text = "\n".join([*facts, text_links])
    markdown = "\n\n".join([f"**{facts[0]}**", facts[1], md_links])
    return PageMessage(title, text, markdown)

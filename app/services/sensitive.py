"""Sensitive cases in documents that leave the console (handover reports, post-mortems,
filled templates): shown by reference, category and severity; the title only when the
person asks for it, and then audited as a reveal of that case, as its details are."""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import col, select

from app.services.unit_of_work import UnitOfWork
from data import audit
from data.domain import severity_name
from data.models import Case


def withheld_title(category: str, severity: int) -> str:
    """What a document shows instead of a sensitive case's title."""
    return f"[sensitive {category} case, {severity_name(severity)}: title withheld]"


def reveal_titles(work: UnitOfWork, actor: str, refs: Iterable[str], document: str) -> None:
    """Record that `actor` was shown the titles of the sensitive cases among `refs` in
    `document` (one `case.reveal_title` record per case)."""
    wanted = sorted(set(refs))
    if not wanted:
        return
    with work(actor) as tx:
        sensitive = tx.session.exec(
            select(Case.ref).where(col(Case.sensitive), col(Case.ref).in_(wanted))
        ).all()
        for ref in sorted(sensitive):
            audit.append(
                tx.session,
                at=tx.now,
                actor=tx.actor.handle,
                action="case.reveal_title",
                case_ref=ref,
                detail={"in": document},
            )

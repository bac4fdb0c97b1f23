"""The journal every writer keeps: a case's timeline and the change feed consoles follow.

The case service, the engine and every other writer record here, inside their own
transaction, so a change and its trace commit together or not at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from data.domain import Status, TimelineKind
from data.models import Case, CaseChange, TimelineEvent
from data.queries import OWES_REPORT_RANK, QUEUE_RANKS, SNOOZED_RANK


def record_change(
    session: Session, case: Case, now: datetime, *, owes_report: bool | None = None
) -> None:
    """Bump the case's version and feed the change log consoles follow.

    A resolved case that still owes a report to an authority keeps the open queue's
    `OWES_REPORT_RANK`: `owes_report` says so when the writer knows (the unit of work
    asks the legal clocks); a writer that does not know leaves the rank as it was. A snoozed
    case is out of the open queue (`SNOOZED_RANK`) while it stays acknowledged."""
    changed(case, now, owes_report=owes_report)
    session.add(case)
    session.flush()
    assert case.id is not None
    session.add(CaseChange(case_id=case.id, at=now))


def changed(case: Case, now: datetime, *, owes_report: bool | None = None) -> None:
    """`record_change` on the case object alone, for a writer that feeds the change log
    of many cases in one statement."""
    if case.status != Status.ACKNOWLEDGED.value:  # a snooze lasts while acknowledged only
        case.snoozed_until = None
        case.snooze_reason = ""
    rank = QUEUE_RANKS[case.status]
    if case.snoozed_until is not None:
        rank = SNOOZED_RANK
    elif case.status == Status.RESOLVED.value:
        keep = case.queue_rank == OWES_REPORT_RANK if owes_report is None else owes_report
        rank = OWES_REPORT_RANK if keep else rank
    case.queue_rank = rank
    case.version += 1
    case.updated_at = now


def add_timeline(
    session: Session,
    case: Case,
    at: datetime,
    kind: TimelineKind,
    text: str,
    actor: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """A line of `case`'s timeline. `kind` must be a `TimelineKind` (a bare text is refused
    here, before anything is written)."""
    assert case.id is not None
    session.add(TimelineEvent(**timeline_row(case.id, at, kind, text, actor, data)))


def timeline_row(
    case_id: int,
    at: datetime,
    kind: TimelineKind,
    text: str,
    actor: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A timeline line's fields, for a writer of many rows at once (`add_timeline`'s)."""
    stored = TimelineKind(kind).value  # ValueError for a kind that is not a member
    return {
        "case_id": case_id,
        "at": at,
        "kind": stored,
        "actor": actor,
        "text": text,
        "data": data or {},
    }

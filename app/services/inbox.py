"""What waits on one person: the console's inbox (`i`).

Each kind of item is read by the service that already owns it (disclosures awaiting
approval, swaps, pending handovers, action items, owed reports); this module only gathers
them for one person, oldest first, so nothing waiting is missed because it lives on
another screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlmodel import Session, col, select

from app.services.casework.views import (
    action_items,
    disclosures_awaiting_approval,
    owed_reports,
)
from app.services.shiftwork.handover import pending_handovers_for
from app.services.shiftwork.swaps import list_swaps
from data.domain import ClockState, Status
from data.models import Case
from data.queries import QUEUE_RANKS
from data.swaps import SwapStatus


class InboxKind(StrEnum):
    APPROVE_DISCLOSURE = "approve disclosure"
    APPROVE_SWAP = "approve swap"
    TAKE_SWAP = "take swap"
    ACKNOWLEDGE_HANDOVER = "acknowledge handover"
    ACTION_ITEM = "action item"
    OWED_REPORT = "report owed"


@dataclass(frozen=True, slots=True)
class InboxItem:
    """One thing waiting on the person. `case_id` and `ref` name the case it concerns;
    `handover_id` and `swap_id` the handover or swap, for the kinds that have one."""

    kind: InboxKind
    subject: str
    since: datetime
    case_id: int | None = None
    ref: str = ""
    handover_id: int | None = None
    swap_id: int | None = None
    urgent: bool = False
    """Past its due time: an overdue action item, a breached report."""


@dataclass(frozen=True, slots=True)
class InboxReader:
    """Who the inbox is for: their id, handle and whether they supervise."""

    responder_id: int
    handle: str
    supervising: bool

    def read(self, session: Session, now: datetime) -> list[InboxItem]:
        items = [
            *self._handovers(session),
            *self._swaps(session),
            *self._owed_reports(session, now),
            *self._action_items(session, now),
        ]
        if self.supervising:
            items += self._disclosures(session)
        return sorted(items, key=lambda item: (item.since, item.kind.value, item.subject))

    def _disclosures(self, session: Session) -> list[InboxItem]:
        return [
            InboxItem(
                InboxKind.APPROVE_DISCLOSURE,
                f"{waiting.ref}: disclosure {waiting.disclosure.number} to "
                f"{waiting.disclosure.to}, asked by {waiting.disclosure.requested_by}",
                waiting.disclosure.requested_at,
                case_id=waiting.case_id,
                ref=waiting.ref,
            )
            for waiting in disclosures_awaiting_approval(session)
        ]

    def _swaps(self, session: Session) -> list[InboxItem]:
        items = []
        for swap in list_swaps(session):
            if swap.status == SwapStatus.TAKEN.value and self.supervising:
                kind = InboxKind.APPROVE_SWAP
                since = swap.taken_at or swap.created_at
                who = f"{swap.requester} to {swap.taker}"
            elif (
                swap.status == SwapStatus.OPEN.value
                and swap.requester != self.handle
                and swap.wanted in (None, self.handle)
            ):
                kind, since, who = InboxKind.TAKE_SWAP, swap.created_at, f"from {swap.requester}"
            else:
                continue
            subject = f"#{swap.id} {swap.schedule}, {who}"
            items.append(InboxItem(kind, subject, since, swap_id=swap.id))
        return items

    def _handovers(self, session: Session) -> list[InboxItem]:
        return [
            InboxItem(
                InboxKind.ACKNOWLEDGE_HANDOVER,
                f"#{handover.id} from {handover.author}",
                handover.submitted_at,
                handover_id=handover.id,
            )
            for handover in pending_handovers_for(session, self.responder_id)
        ]

    def _action_items(self, session: Session, now: datetime) -> list[InboxItem]:
        return [
            InboxItem(
                InboxKind.ACTION_ITEM,
                f"{item.ref}: {item.title}" + (" (overdue)" if item.overdue else ""),
                item.created_at,
                case_id=item.case_id,
                ref=item.ref,
                urgent=item.overdue,
            )
            for item in action_items(session, now)
            if item.owner_kind == "person" and item.owner == self.handle
        ]

    def _owed_reports(self, session: Session, now: datetime) -> list[InboxItem]:
        # Assigned cases in the open queue: a resolved case that still owes a report keeps
        # its open rank (data.queries.OWES_REPORT_RANK), so this reads no closed history.
        mine = session.exec(
            select(Case).where(
                Case.assignee_id == self.responder_id,
                col(Case.queue_rank) < QUEUE_RANKS[Status.RESOLVED.value],
            )
        ).all()
        by_id = {case.id: case for case in mine}
        return [
            InboxItem(
                InboxKind.OWED_REPORT,
                f"{by_id[case_id].ref}: {clock.label}",
                clock.started_at or by_id[case_id].created_at,
                case_id=case_id,
                ref=by_id[case_id].ref,
                urgent=clock.state == ClockState.BREACHED,
            )
            for case_id, clocks in owed_reports(session, mine, now).items()
            for clock in clocks
        ]

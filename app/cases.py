"""The case service: the one door through which every change of a case passes.

Each action runs in one write transaction that locks the audit chain, loads the actor,
checks the actor's role, changes the case, adds a timeline event, feeds the change log
that consoles follow, and appends the audit record. Either all of it lands or none does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from app.clock import Clock
from app.errors import BadInput, NotAllowed, NotFound, NothingToDo
from app.policies import FALLBACK_POLICY, route_policy, snapshot_policy
from data import audit
from data.db import Database
from data.domain import Category, Role, Stage, Status, parse_category, parse_severity
from data.models import ActionItem, Case, CaseChange, CaseNote, Page, Responder, TimelineEvent
from data.queries import OWES_REPORT_RANK, QUEUE_RANKS

MAX_TITLE = 200
MAX_DETAILS = 20_000
MAX_NOTE = 20_000
MAX_DEDUP_KEY = 255
SUPERVISING = {Role.SUPERVISOR.value, Role.ADMIN.value}


@dataclass(frozen=True)
class OpenResult:
    ref: str
    case_id: int
    created: bool


@dataclass
class Tx:
    """What one service action works with: its session, its actor and its instant."""

    session: Session
    actor: Responder
    now: datetime

    @property
    def supervising(self) -> bool:
        return self.actor.role in SUPERVISING


# A terminal obeys control characters instead of showing them (an escape sequence can
# clear or retitle the screen of whoever reads the text); a lone surrogate cannot be stored.
# Tabs and line breaks are text.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_text(field: str, value: str, limit: int, *, required: bool) -> str:
    text = (value or "").strip()
    if required and not text:
        raise BadInput(field, "required, got an empty value")
    if len(text) > limit:
        raise BadInput(field, f"at most {limit} characters, got {len(text)}")
    forbidden = _FORBIDDEN.search(text)
    if forbidden:
        code = ord(forbidden.group())
        kind = "lone surrogate" if 0xD800 <= code <= 0xDFFF else "control character"
        raise BadInput(
            field, f"{kind} U+{code:04X} at character {forbidden.start() + 1} is not allowed"
        )
    return text


def check_title(title: str) -> str:
    text = clean_text("title", title, MAX_TITLE, required=True)
    if any(ord(ch) < 32 for ch in text):
        raise BadInput("title", "a single line without control characters")
    return text


def owes_a_report(session: Session, case: Case, now: datetime) -> bool:
    """Whether a legal deadline of the case still asks for a report (neither filed nor
    waived), with what the session holds so far."""
    # The legal clocks are casework's, whose service builds on this one.
    from app.casework import owed_reports

    if case.id is None:
        return False
    session.flush()
    return bool(owed_reports(session, [case], now))


def record_change(session: Session, case: Case, now: datetime) -> None:
    """Bump the case's version and feed the change log consoles follow."""
    case.queue_rank = QUEUE_RANKS[case.status]
    if case.status == Status.RESOLVED.value and owes_a_report(session, case, now):
        case.queue_rank = OWES_REPORT_RANK
    case.version += 1
    case.updated_at = now
    session.add(case)
    session.flush()
    assert case.id is not None
    session.add(CaseChange(case_id=case.id, at=now))


def add_timeline(
    session: Session,
    case: Case,
    at: datetime,
    kind: str,
    text: str,
    actor: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    assert case.id is not None
    session.add(
        TimelineEvent(case_id=case.id, at=at, kind=kind, actor=actor, text=text, data=data or {})
    )


class CaseService:
    """Case actions on behalf of one person (`actor`), subject to that person's role."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self._on_change = on_change

    # -- plumbing -------------------------------------------------------------

    @contextmanager
    def _tx(self, actor_handle: str) -> Iterator[Tx]:
        with self.db.write() as session:
            audit.lock_head(session)
            yield Tx(session, self._actor(session, actor_handle), self.clock.now())

    @staticmethod
    def _actor(session: Session, handle: str) -> Responder:
        actor = session.exec(select(Responder).where(Responder.handle == handle)).first()
        if actor is None or not actor.active:
            raise NotAllowed(
                f"'{handle}' is not an active responder of this desk "
                "(use --as HANDLE or VIGIL_USER)"
            )
        return actor

    def require_actor(self, handle: str) -> Responder:
        """Refuse an unknown or inactive handle before any work starts."""
        with self.db.read() as session:
            return self._actor(session, handle)

    @staticmethod
    def _case(tx: Tx, ref: str) -> Case:
        case = tx.session.exec(
            select(Case).where(Case.ref == ref.strip().upper()).with_for_update()
        ).first()
        if case is None:
            raise NotFound(f"no case {ref!r}")
        return case

    def _finish(self, tx: Tx, case: Case, action: str, detail: dict[str, Any]) -> None:
        record_change(tx.session, case, tx.now)
        audit.append(
            tx.session,
            at=tx.now,
            actor=tx.actor.handle,
            action=action,
            case_ref=case.ref,
            detail=detail,
        )

    def _changed(self, case_id: int) -> None:
        if self._on_change is not None:
            self._on_change(case_id)

    @staticmethod
    def _may_work_on(tx: Tx, case: Case) -> bool:
        return tx.supervising or case.assignee_id in (None, tx.actor.id)

    def _refuse_unless_may_work_on(self, tx: Tx, case: Case, verb: str) -> None:
        if not self._may_work_on(tx, case):
            assignee = tx.session.get(Responder, case.assignee_id)
            owner = assignee.handle if assignee else "someone else"
            raise NotAllowed(
                f"{case.ref} is assigned to {owner}; "
                f"only its assignee or a supervisor may {verb} it"
            )

    # -- actions --------------------------------------------------------------

    def open_case(
        self,
        actor: str,
        *,
        title: str,
        category: str,
        severity: str | int,
        details: str = "",
        policy: str | None = None,
        dedup_key: str | None = None,
        sensitive: bool = False,
        source: str = "vigil",
    ) -> OpenResult:
        title = check_title(title)
        try:
            cat = parse_category(category)
        except ValueError as exc:
            raise BadInput("category", str(exc)) from None
        try:
            sev = parse_severity(severity)
        except ValueError as exc:
            raise BadInput("severity", str(exc)) from None
        details = clean_text("details", details, MAX_DETAILS, required=False)
        key = (dedup_key or "").strip() or None
        if key is not None and len(key) > MAX_DEDUP_KEY:
            raise BadInput("dedup_key", f"at most {MAX_DEDUP_KEY} characters, got {len(key)}")
        try:
            return self._open(actor, title, cat, sev, details, policy, key, sensitive, source)
        except IntegrityError:
            # Another console opened the same dedup key between our check and insert.
            if key is None:
                raise
            return self._open(actor, title, cat, sev, details, policy, key, sensitive, source)

    def _open(
        self,
        actor: str,
        title: str,
        category: Category,
        severity: int,
        details: str,
        policy_name: str | None,
        dedup_key: str | None,
        sensitive: bool,
        source: str,
    ) -> OpenResult:
        with self._tx(actor) as tx:
            existing = self._open_duplicate(tx, dedup_key, source) if dedup_key else None
            if existing is not None:
                result = existing
            else:
                result = self._create(
                    tx,
                    title,
                    category,
                    severity,
                    details,
                    policy_name,
                    dedup_key,
                    sensitive,
                    source,
                )
        self._changed(result.case_id)
        return result

    def _open_duplicate(self, tx: Tx, dedup_key: str, source: str) -> OpenResult | None:
        """An open case with the same dedup key absorbs the event instead of a new case."""
        existing = tx.session.exec(
            select(Case).where(Case.dedup_key == dedup_key, Case.status != Status.RESOLVED.value)
        ).first()
        if existing is None:
            return None
        assert existing.id is not None
        add_timeline(
            tx.session,
            existing,
            tx.now,
            "duplicate",
            f"Duplicate event for dedup key {dedup_key!r} from {source}",
            tx.actor.handle,
        )
        self._finish(tx, existing, "case.duplicate", {"dedup_key": dedup_key})
        return OpenResult(existing.ref, existing.id, created=False)

    def _create(
        self,
        tx: Tx,
        title: str,
        category: Category,
        severity: int,
        details: str,
        policy_name: str | None,
        dedup_key: str | None,
        sensitive: bool,
        source: str,
    ) -> OpenResult:
        policy = route_policy(tx.session, category.value, policy_name)
        if policy_name and policy is None:
            raise BadInput("policy", f"no escalation policy named {policy_name!r}")
        snapshot = snapshot_policy(tx.session, policy) if policy else dict(FALLBACK_POLICY)
        number = (tx.session.exec(select(func.max(Case.id))).one() or 0) + 1
        case = Case(
            ref=f"ESC-{number:04d}",
            title=title,
            category=category.value,
            severity=severity,
            status=Status.TRIGGERED.value,
            stage=Stage.TRIAGE.value,
            sensitive=sensitive or category == Category.CSEA,
            details=details,
            dedup_key=dedup_key,
            source=source,
            policy_id=policy.id if policy else None,
            policy_snapshot=snapshot,
            created_at=tx.now,
            updated_at=tx.now,
            next_escalation_at=tx.now,
            version=0,
        )
        tx.session.add(case)
        tx.session.flush()
        assert case.id is not None
        add_timeline(
            tx.session,
            case,
            tx.now,
            "opened",
            f"Opened by {tx.actor.handle} from {source}; policy {snapshot['name']}",
            tx.actor.handle,
        )
        self._finish(
            tx,
            case,
            "case.open",
            {
                "category": case.category,
                "severity": case.severity,
                "sensitive": case.sensitive,
                "policy": snapshot["name"],
                "source": source,
            },
        )
        return OpenResult(case.ref, case.id, created=True)

    def acknowledge(self, actor: str, ref: str) -> Case:
        with self._tx(actor) as tx:
            case = self._case(tx, ref)
            if case.status == Status.RESOLVED.value:
                raise NothingToDo(f"{case.ref} is already resolved")
            if case.status == Status.ACKNOWLEDGED.value:
                raise NothingToDo(f"{case.ref} is already acknowledged")
            pages = tx.session.exec(
                select(Page).where(
                    Page.case_id == case.id,
                    Page.cycle == case.escalation_cycle,
                    Page.step == case.escalation_step,
                    Page.round == case.escalation_round,
                )
            ).all()
            for page in pages:
                if page.responder_id == tx.actor.id and page.acknowledged_at is None:
                    page.acknowledged_at = tx.now
                    tx.session.add(page)
            if self._waiting_for_others(case, pages, tx):
                pending = len([p for p in pages if p.acknowledged_at is None])
                add_timeline(
                    tx.session,
                    case,
                    tx.now,
                    "ack_partial",
                    f"Acknowledged by {tx.actor.handle}; waiting for {pending} more "
                    "(this step needs every target)",
                    tx.actor.handle,
                )
                self._finish(tx, case, "case.ack_partial", {"waiting_for": pending})
            else:
                case.status = Status.ACKNOWLEDGED.value
                case.acknowledged_at = tx.now
                case.acknowledged_by_id = tx.actor.id
                if case.assignee_id is None or case.assignee_id != tx.actor.id:
                    case.assignee_id = tx.actor.id
                timeout = case.policy_snapshot.get("ack_timeout_seconds")
                case.next_escalation_at = (
                    tx.now + timedelta(seconds=int(timeout)) if timeout else None
                )
                add_timeline(
                    tx.session,
                    case,
                    tx.now,
                    "acknowledged",
                    f"Acknowledged by {tx.actor.handle}",
                    tx.actor.handle,
                )
                self._finish(tx, case, "case.ack", {})
            case_id = case.id
        assert case_id is not None
        self._changed(case_id)
        return case

    @staticmethod
    def _waiting_for_others(case: Case, pages: Any, tx: Tx) -> bool:
        """A multi-ack step stays triggered until every paged target acknowledges."""
        steps = case.policy_snapshot.get("steps", [])
        index = case.escalation_step - 1
        if not (0 <= index < len(steps)) or not steps[index].get("require_all"):
            return False
        if tx.supervising:
            return False
        return any(p.acknowledged_at is None for p in pages)

    def resolve(self, actor: str, ref: str, note: str | None = None) -> Case:
        note_text = clean_text("note", note or "", MAX_NOTE, required=False)
        with self._tx(actor) as tx:
            case = self._case(tx, ref)
            if case.status == Status.RESOLVED.value:
                raise NothingToDo(f"{case.ref} is already resolved")
            self._refuse_unless_may_work_on(tx, case, "resolve")
            case.status = Status.RESOLVED.value
            case.stage = Stage.CLOSED.value
            case.resolved_at = tx.now
            case.resolved_by_id = tx.actor.id
            case.next_escalation_at = None
            if case.acknowledged_at is None:
                case.acknowledged_at = tx.now
                case.acknowledged_by_id = tx.actor.id
            if case.first_response_at is None:
                case.first_response_at = tx.now
            if case.assignee_id is None:
                case.assignee_id = tx.actor.id
            if note_text:
                self._add_note_row(tx, case, note_text)
            add_timeline(
                tx.session,
                case,
                tx.now,
                "resolved",
                f"Resolved by {tx.actor.handle}" + (f": {note_text}" if note_text else ""),
                tx.actor.handle,
            )
            self._finish(tx, case, "case.resolve", {"with_note": bool(note_text)})
            case_id = case.id
        assert case_id is not None
        self._changed(case_id)
        return case

    def reassign(self, actor: str, ref: str, to_handle: str) -> Case:
        """Hand the case to someone else: page them now; the chain restarts if they don't ack."""
        with self._tx(actor) as tx:
            case = self._case(tx, ref)
            if case.status == Status.RESOLVED.value:
                raise NothingToDo(f"{case.ref} is resolved; reopen it by paging again")
            target = tx.session.exec(
                select(Responder).where(Responder.handle == to_handle.strip())
            ).first()
            if target is None or not target.active:
                raise NotFound(f"no active responder {to_handle!r}")
            if not tx.supervising and case.assignee_id not in (None, tx.actor.id):
                raise NotAllowed(
                    "only supervisors and admins may reassign a case assigned to someone else"
                )
            if case.assignee_id == target.id and case.status == Status.ACKNOWLEDGED.value:
                raise NothingToDo(f"{case.ref} is already with {target.handle}")
            previous = tx.session.get(Responder, case.assignee_id) if case.assignee_id else None
            case.assignee_id = target.id
            case.status = Status.TRIGGERED.value
            case.acknowledged_at = None
            case.acknowledged_by_id = None
            case.exhausted = False
            case.escalation_cycle += 1
            case.escalation_step = 0
            case.escalation_round = 0
            steps = case.policy_snapshot.get("steps") or [{"delay_seconds": 300}]
            wait = int(steps[0].get("delay_seconds", 300))
            case.next_escalation_at = tx.now + timedelta(seconds=wait)
            add_timeline(
                tx.session,
                case,
                tx.now,
                "reassigned",
                f"Reassigned by {tx.actor.handle} from "
                f"{previous.handle if previous else 'nobody'} to {target.handle}; "
                f"the chain restarts in {wait // 60 or wait}"
                f"{'m' if wait >= 60 else 's'} unless acknowledged",
                tx.actor.handle,
            )
            tx.session.flush()
            from app.paging import page_responders  # the engine's own paging step

            page_responders(
                tx.session,
                case,
                [target],
                step=0,
                round_=0,
                due_at=tx.now,
                now=tx.now,
                reason="reassign",
            )
            self._finish(
                tx,
                case,
                "case.reassign",
                {"from": previous.handle if previous else None, "to": target.handle},
            )
            case_id = case.id
        assert case_id is not None
        self._changed(case_id)
        return case

    def _add_note_row(self, tx: Tx, case: Case, body: str) -> None:
        assert case.id is not None
        assert tx.actor.id is not None
        tx.session.add(
            CaseNote(case_id=case.id, author_id=tx.actor.id, body=body, created_at=tx.now)
        )
        if case.first_response_at is None and case.status != Status.TRIGGERED.value:
            case.first_response_at = tx.now

    def add_note(self, actor: str, ref: str, text: str) -> Case:
        body = clean_text("text", text, MAX_NOTE, required=True)
        with self._tx(actor) as tx:
            case = self._case(tx, ref)
            self._add_note_row(tx, case, body)
            add_timeline(
                tx.session, case, tx.now, "note", f"Note by {tx.actor.handle}", tx.actor.handle
            )
            self._finish(tx, case, "case.note", {"length": len(body)})
            case_id = case.id
        assert case_id is not None
        self._changed(case_id)
        return case

    def set_stage(self, actor: str, ref: str, stage: str) -> Case:
        try:
            new_stage = Stage(stage.strip().lower())
        except ValueError:
            allowed = ", ".join(s.value for s in Stage)
            raise BadInput("stage", f"expected one of {allowed}, got {stage!r}") from None
        with self._tx(actor) as tx:
            case = self._case(tx, ref)
            self._refuse_unless_may_work_on(tx, case, "change the stage of")
            if case.stage == new_stage.value:
                raise NothingToDo(f"{case.ref} is already at stage {new_stage.value}")
            old = case.stage
            case.stage = new_stage.value
            if case.first_response_at is None and case.status != Status.TRIGGERED.value:
                case.first_response_at = tx.now
            add_timeline(
                tx.session,
                case,
                tx.now,
                "stage",
                f"Stage {old} → {new_stage.value} by {tx.actor.handle}",
                tx.actor.handle,
            )
            self._finish(tx, case, "case.stage", {"from": old, "to": new_stage.value})
            case_id = case.id
        assert case_id is not None
        self._changed(case_id)
        return case

    def reveal(self, actor: str, ref: str, reason: str = "") -> str:
        """Return the case's details; for a sensitive case the reveal is audited first."""
        with self._tx(actor) as tx:
            case = self._case(tx, ref)
            if case.sensitive:
                add_timeline(
                    tx.session,
                    case,
                    tx.now,
                    "reveal",
                    f"Sensitive details revealed to {tx.actor.handle}",
                    tx.actor.handle,
                )
                audit.append(
                    tx.session,
                    at=tx.now,
                    actor=tx.actor.handle,
                    action="case.reveal",
                    case_ref=case.ref,
                    detail={"reason": reason} if reason else {},
                )
            return case.details

    def escalate_now(self, actor: str, ref: str) -> Case:
        """Skip the wait: the next step is due now (an acknowledged case re-triggers)."""
        with self._tx(actor) as tx:
            case = self._case(tx, ref)
            if case.status == Status.RESOLVED.value:
                raise NothingToDo(f"{case.ref} is resolved")
            was = case.status
            case.status = Status.TRIGGERED.value
            case.acknowledged_at = None
            case.acknowledged_by_id = None
            case.next_escalation_at = tx.now
            add_timeline(
                tx.session,
                case,
                tx.now,
                "escalate",
                f"Escalated now by {tx.actor.handle}"
                + (" (was acknowledged)" if was != "triggered" else ""),
                tx.actor.handle,
            )
            self._finish(tx, case, "case.escalate", {"was": was})
            case_id = case.id
        assert case_id is not None
        self._changed(case_id)
        return case

    def add_action_item(
        self, actor: str, ref: str, title: str, owner: str = "", due_at: datetime | None = None
    ) -> Case:
        text = check_title(title)
        with self._tx(actor) as tx:
            case = self._case(tx, ref)
            assert case.id is not None
            tx.session.add(
                ActionItem(
                    case_id=case.id, title=text, owner=owner, due_at=due_at, created_at=tx.now
                )
            )
            add_timeline(
                tx.session, case, tx.now, "action_item", f"Action item: {text}", tx.actor.handle
            )
            self._finish(tx, case, "case.action_item", {"owner": owner})
            case_id = case.id
        self._changed(case_id)
        return case

    # -- by dedup key (intake) -----------------------------------------------

    def open_ref_for_key(self, dedup_key: str) -> str | None:
        with self.db.read() as session:
            case = session.exec(
                select(Case)
                .where(Case.dedup_key == dedup_key, Case.status != Status.RESOLVED.value)
                .order_by(col(Case.id).desc())
            ).first()
            return case.ref if case else None

"""The unit of work: the one door through which every change of a case passes.

Each change runs in one write transaction that locks the audit chain, loads the actor,
lets the service check the actor's role, changes what it changes, and records it: the
timeline, the change feed consoles follow, and the audit record. Either all of it lands
or none does. After the commit, consoles are told which cases changed and the cases that
must page now are handed to the escalation starter, whoever opened them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from app.core.clock import Clock
from app.core.errors import NotAllowed, NotFound
from app.services.casework.views import owes_a_report
from data import audit
from data.db import Database
from data.domain import Role, Status
from data.journal import record_change
from data.models import Case, Responder

SUPERVISING = {Role.SUPERVISOR.value, Role.ADMIN.value}

EscalationStarter = Callable[[Sequence[int]], None]
"""Pages what is due now for these cases (the engine's `page_now`), after the commit."""


@dataclass(frozen=True)
class ServiceActor:
    """A part of Vigil that acts as itself, not for a person: the engine opening the case
    of a silent heartbeat, say. It is named in the timeline and the audit record by its
    name and is never a responder, so no handle typed at a command line can become one."""

    name: str

    def as_responder(self) -> Responder:
        """A stand-in responder row, never stored (its id stays None)."""
        return Responder(handle=self.name, name=self.name, role=Role.ADMIN.value)


ENGINE = ServiceActor("engine")


def actor_of(session: Session, handle: str) -> Responder:
    """The active responder `handle`, or a refusal that says how to name someone else."""
    actor = session.exec(select(Responder).where(Responder.handle == handle)).first()
    if actor is None or not actor.active:
        raise NotAllowed(
            f"'{handle}' is not an active responder of this desk (use --as HANDLE or VIGIL_USER)"
        )
    return actor


@dataclass
class Tx:
    """What one change works with: its session, its actor and its instant; and what it
    changed, for the consoles and the escalation starter once it commits."""

    session: Session
    actor: Responder
    now: datetime
    changed: list[int] = field(default_factory=list)
    to_escalate: list[int] = field(default_factory=list)

    @property
    def supervising(self) -> bool:
        return self.actor.role in SUPERVISING

    def case(self, ref: str) -> Case:
        """The case `ref`, locked for this transaction."""
        case = self.session.exec(
            select(Case).where(Case.ref == ref.strip().upper()).with_for_update()
        ).first()
        if case is None:
            raise NotFound(f"no case {ref!r}")
        return case

    def may_work_on(self, case: Case) -> bool:
        return self.supervising or case.assignee_id in (None, self.actor.id)

    def refuse_unless_may_work_on(self, case: Case, verb: str) -> None:
        if not self.may_work_on(case):
            assignee = self.session.get(Responder, case.assignee_id)
            owner = assignee.handle if assignee else "someone else"
            raise NotAllowed(
                f"{case.ref} is assigned to {owner}; "
                f"only its assignee or a supervisor may {verb} it"
            )

    def finish(self, case: Case, action: str, detail: dict[str, Any]) -> None:
        """Feed the change log and append the audit record of this change of `case`."""
        owes = case.status == Status.RESOLVED.value and owes_a_report(self.session, case, self.now)
        record_change(self.session, case, self.now, owes_report=owes)
        audit.append(
            self.session,
            at=self.now,
            actor=self.actor.handle,
            action=action,
            case_ref=case.ref,
            detail=detail,
        )
        assert case.id is not None
        self.changed.append(case.id)

    def escalate(self, case: Case) -> None:
        """Page what is due for `case` as soon as this change commits."""
        assert case.id is not None
        self.to_escalate.append(case.id)


class UnitOfWork:
    """Opens the transactions of one service on behalf of a person."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        on_change: Callable[[int], None] | None = None,
        escalation: EscalationStarter | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self._on_change = on_change
        self._escalation = escalation

    @contextmanager
    def __call__(self, actor_handle: str | ServiceActor) -> Iterator[Tx]:
        with self.db.write() as session:
            audit.lock_head(session)
            if isinstance(actor_handle, ServiceActor):
                actor = actor_handle.as_responder()
            else:
                actor = actor_of(session, actor_handle)
            tx = Tx(session, actor, self.clock.now())
            yield tx
        if self._on_change is not None:
            for case_id in dict.fromkeys(tx.changed):
                self._on_change(case_id)
        if self._escalation is not None and tx.to_escalate:
            self._escalation(list(dict.fromkeys(tx.to_escalate)))

    def require_actor(self, handle: str) -> Responder:
        """Refuse an unknown or inactive handle before any work starts."""
        with self.db.read() as session:
            return actor_of(session, handle)


class Service:
    """What every service holds: the database, the clock, and its unit of work."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        on_change: Callable[[int], None] | None = None,
        escalation: EscalationStarter | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.work = UnitOfWork(db, clock, on_change=on_change, escalation=escalation)

    def require_actor(self, handle: str) -> Responder:
        return self.work.require_actor(handle)

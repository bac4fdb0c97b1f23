"""The unit of work: the one door through which every change of a case passes.

Each change runs in one write transaction that locks the audit chain, loads the actor,
lets the service check the actor's role, changes what it changes, and records it: the
timeline, the change feed consoles follow, and the audit record. Cases that must page now
(a case just opened, a step escalated by hand) are handed to the escalation starter before
the commit, in the same transaction: a case is never stored without its first page, nor
paged without being stored. Either all of it lands or none does. After the commit,
consoles are told which cases changed.

A change is by an active responder (a handle), by a part of Vigil acting as itself
(`ServiceActor`), or by whoever applies a team file (`Founder`): on a desk with no active
responder yet, the first team file is the one change allowed to someone the desk does not
know, since it is what makes the team.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from app.core.clock import Clock
from app.core.errors import NotAllowed, NotFound
from app.rules.access import may_work_on, not_yours
from data import audit
from data.clock import DatabaseClock
from data.db import Database
from data.domain import Role, Status, TimelineKind
from data.journal import add_timeline, record_change
from data.models import Case, Responder

log = logging.getLogger("vigil.work")

SUPERVISING = {Role.SUPERVISOR.value, Role.ADMIN.value}

EscalationStarter = Callable[[Session, datetime, Sequence[int]], Mapping[int, Sequence[str]]]
"""Pages what is due at this instant for these cases in this session's transaction (the
engine's `page_within`, claims and all); returns the handles paged, by case id."""

Along = Callable[["Tx"], None]
"""More to write in a change's own transaction, once its cases are paged (the intake's
progress through a batch)."""


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


@dataclass(frozen=True)
class Founder:
    """Whoever applies a team file, which may be the one that founds the desk.

    A desk with no active responder has nobody to load: its first team file is applied by a
    stand-in under `handle`, with every right, never stored (its id stays None), named in
    the timeline and the audit record by that handle. The unit of work allows it only while
    no responder is active, read once the chain's lock is held, so two first files cannot
    both pass. On a desk with active responders, `admit` rules on the handle's row (None
    when it names nobody) and raises to refuse, in the team file's own words; the handle
    must then be an active responder, as for any change."""

    handle: str
    admit: Callable[[Responder | None], None]

    def as_responder(self) -> Responder:
        """The stand-in of the founding change, never stored."""
        return Responder(handle=self.handle, name=self.handle, role=Role.ADMIN.value)


Actor = str | ServiceActor | Founder
"""Who a change is by: an active responder's handle, a part of Vigil, or a team file's
applier (see `Founder`)."""


def founding(session: Session) -> bool:
    """Whether the desk has no active responder yet, so a team file would found it."""
    return session.exec(select(Responder.id).where(col(Responder.active)).limit(1)).first() is None


def actor_of(session: Session, handle: str) -> Responder:
    """The active responder `handle`, or a refusal that says how to name someone else."""
    return _active(handle, _named(session, handle))


def actor_in(session: Session, actor: Actor) -> Responder:
    """Who a change is by, as its transaction reads the desk (under the chain's lock when it
    writes); refused as `actor_of` and `Founder` say."""
    if isinstance(actor, ServiceActor):
        return actor.as_responder()
    if isinstance(actor, Founder):
        if founding(session):
            return actor.as_responder()
        row = _named(session, actor.handle)
        actor.admit(row)
        return _active(actor.handle, row)
    return actor_of(session, actor)


def _named(session: Session, handle: str) -> Responder | None:
    return session.exec(select(Responder).where(Responder.handle == handle)).first()


def _active(handle: str, row: Responder | None) -> Responder:
    if row is None or not row.active:
        raise NotAllowed(
            f"'{handle}' is not an active responder of this desk (use --as HANDLE or VIGIL_USER)"
        )
    return row


@dataclass
class Tx:
    """What one change works with: its session, its actor and its instant; and what it
    changed, for the consoles and the escalation starter once it commits."""

    session: Session
    actor: Responder
    now: datetime
    changed: list[int] = field(default_factory=list)
    to_escalate: list[int] = field(default_factory=list)
    done: list[tuple[str, int]] = field(default_factory=list)
    """(audit action, case id) of each change, in order."""
    refs: dict[int, str] = field(default_factory=dict)
    """The reference of each changed case, by id."""
    paged: dict[int, list[str]] = field(default_factory=dict)
    """The handles each escalated case paged, by case id (once the starter has run)."""

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
        return may_work_on(self.supervising, case.assignee_id, self.actor.id)

    def refuse_unless_may_work_on(self, case: Case, verb: str) -> None:
        if not self.may_work_on(case):
            assignee = self.session.get(Responder, case.assignee_id)
            raise NotAllowed(
                not_yours(case.ref, assignee.handle if assignee else "someone else", verb)
            )

    def journal(self, case: Case, kind: TimelineKind, text: str) -> None:
        """A line of the case's timeline, by this change's actor at this change's instant."""
        add_timeline(self.session, case, self.now, kind, text, self.actor.handle)

    def finish(self, case: Case, action: str, detail: dict[str, Any]) -> None:
        """Feed the change log and append the audit record of this change of `case`."""
        owes = False
        if case.status == Status.RESOLVED.value:
            # Casework's rules and tables, loaded only when a case closes: an acknowledgement
            # or a page from the command line never reads them.
            from app.services.casework.views import owes_a_report

            owes = owes_a_report(self.session, case, self.now)
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
        self.did(action, case.id, case.ref)

    def did(self, action: str, case_id: int, ref: str) -> None:
        """Note a change of case `ref` (`action`, as audited) for the consoles and the
        change's caller: what `finish` notes, for a writer of many cases at once."""
        self.changed.append(case_id)
        self.done.append((action, case_id))
        self.refs[case_id] = ref

    def escalate(self, case: Case) -> None:
        """Page what is due for `case` within this change, before it commits."""
        assert case.id is not None
        self.to_escalate.append(case.id)


@dataclass
class Grouped:
    """Changes made together in one transaction (`UnitOfWork.together`), in order."""

    session: Session
    actor: Responder
    by: Actor
    now: datetime
    changes: list[Tx] = field(default_factory=list)
    waiting: list[Tx] = field(default_factory=list)
    """Openings whose cases are paged later, all at once (`UnitOfWork.__call__`)."""


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
        self._time = DatabaseClock(db, clock)
        """A change's instant is the database's (rule 7): the host's on SQLite."""
        self._on_change = on_change
        self._escalation = escalation
        self._grouped = threading.local()
        """The group this thread's changes join, if any (`together`)."""

    @contextmanager
    def __call__(
        self,
        actor: Actor,
        along: Along | None = None,
        *,
        at: Callable[[], datetime] | None = None,
        opening: bool = False,
    ) -> Iterator[Tx]:
        """One change by `actor`; `along` writes more in its transaction, last.

        The change's instant is the database's, read in the transaction; `at` gives it
        instead, once the chain's lock is held (the engine decides what is due by its own
        reading of the database's clock, taken each cycle; a team file is applied at the
        instant its caller planned it for).

        Inside `together`, the change joins the group's transaction in a savepoint of its
        own: a change that raises undoes only itself. An `opening` (a case opened, or an
        event joining an open one, with nothing `along`) leaves its cases to be paged with
        the group's other openings in one bulk write, before the group's next change of any
        other kind (which may act on them: an acknowledgement finds them paged) or else
        before the group commits; its `tx.paged` is filled then."""
        group: Grouped | None = getattr(self._grouped, "group", None)
        if group is not None:
            if actor != group.by or at is not None:
                raise RuntimeError(
                    "a change inside a group is by the group's actor, at its instant"
                )
            later = opening and along is None
            if not later:
                self._page_waiting(group)
            with group.session.begin_nested():
                tx = Tx(group.session, group.actor, group.now)
                yield tx
                if not (later and tx.to_escalate):
                    self._close(tx, along)
            if later and tx.to_escalate:
                group.waiting.append(tx)
            group.changes.append(tx)
            return
        with self.db.write() as session:
            audit.lock_head(session)
            by = actor_in(session, actor)
            now = at() if at is not None else self._time.now_in(session.connection())
            tx = Tx(session, by, now)
            yield tx
            self._close(tx, along)
        self._told(tx.changed)

    def _close(self, tx: Tx, along: Along | None) -> None:
        """What ends every change, before it commits: its escalated cases paged, then what
        `along` writes."""
        if self._escalation is not None and tx.to_escalate:
            self._page(tx)
        if along is not None:
            along(tx)

    def _page_waiting(self, group: Grouped) -> None:
        """Page the cases of the group's waiting openings, in one write of the escalation
        starter (a storm's step-1 pages are written as the engine writes a burst's)."""
        if not group.waiting or self._escalation is None:
            group.waiting.clear()
            return
        together = Tx(group.session, group.actor, group.now)
        for tx in group.waiting:
            together.to_escalate.extend(tx.to_escalate)
        self._page(together)
        for tx in group.waiting:
            tx.paged.update(
                {case_id: together.paged.get(case_id, []) for case_id in tx.to_escalate}
            )
        group.waiting.clear()

    @contextmanager
    def together(self, actor: Actor) -> Iterator[Grouped]:
        """Changes by `actor` made in this block on this thread share one transaction and one
        commit: the group commit of a server taking a storm of alerts, where each change's
        own transaction (the chain's lock, the actor, the clock, the commit) costs more than
        the change. Each change still runs in a savepoint of its own, so one refused change
        undoes only itself; every case escalated in the group is paged before the commit
        (openings together, see `__call__`). Consoles are told once the group commits. If
        the block raises, nothing of it is stored."""
        if getattr(self._grouped, "group", None) is not None:
            raise RuntimeError("changes are already grouped on this thread")
        with self.db.write() as session:
            audit.lock_head(session)
            group = Grouped(
                session, actor_in(session, actor), actor, self._time.now_in(session.connection())
            )
            self._grouped.group = group
            try:
                yield group
                self._page_waiting(group)
            finally:
                self._grouped.group = None
        self._told([case_id for tx in group.changes for case_id in tx.changed])

    def _page(self, tx: Tx) -> None:
        """Page the escalated cases in this transaction (the starter writes in bulk, beside
        the ORM: what the change wrote goes first, and its cases are read back after)."""
        assert self._escalation is not None
        ids = list(dict.fromkeys(tx.to_escalate))
        tx.session.flush()
        paged = self._escalation(tx.session, tx.now, ids)
        tx.paged.update({case_id: list(handles) for case_id, handles in paged.items()})
        read_again(tx.session, ids)  # as the starter left them

    def _told(self, changed: Sequence[int]) -> None:
        """Tell the listener which cases changed, once they are committed. A listener that
        fails is logged, never raised: the change is stored, and a caller told otherwise
        would do it again."""
        if self._on_change is None:
            return
        for case_id in dict.fromkeys(changed):
            try:
                self._on_change(case_id)
            except Exception:
                log.exception("a listener of changed cases failed on case id %d", case_id)

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session to read in: the group's, inside `together` (so an event sees the cases
        opened before it in the same group), else a read transaction of its own."""
        group: Grouped | None = getattr(self._grouped, "group", None)
        if group is not None:
            yield group.session
            return
        with self.db.read() as session:
            yield session

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


def read_again(session: Session, case_ids: Sequence[int]) -> None:
    """Cases written past the ORM (in bulk) that this session had loaded are read again,
    as written, so that nothing later in the transaction works on, or writes back, a
    stale copy."""
    for case_id in case_ids:
        if session.identity_key(Case, case_id) in session.identity_map:
            session.get(Case, case_id, populate_existing=True)

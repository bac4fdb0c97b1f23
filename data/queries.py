"""Read queries the queue, the command line and the engine ask most."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, and_, bindparam, exists, literal, or_, text, tuple_
from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from data.domain import Status
from data.models import (
    ActionItem,
    Case,
    CaseChange,
    CaseNote,
    Delivery,
    Page,
    Responder,
    TimelineEvent,
)
from data.sealing import is_sealed, keyring_of, unseal


@dataclass(frozen=True)
class QueueFilter:
    """What the queue shows. `me` is the viewer's responder id (for `mine`)."""

    mine: bool = False
    unassigned: bool = False
    categories: frozenset[str] = frozenset()
    severities: frozenset[int] = frozenset()
    include_resolved: bool = False
    search: str = ""
    me: int | None = None
    snoozed: bool = False
    """Only the snoozed cases (the open queue leaves them out until their snooze ends)."""
    clocks: frozenset[str] = frozenset()
    """When set, only cases of these categories (the ones that carry legal clocks), open
    or resolved with a report still owed."""
    sort: str = "queue"
    """The order, a key of `SORT_COLUMNS`: the queue's own unless the person chose another."""


QUEUE_RANKS: dict[str, int] = {Status.TRIGGERED: 0, Status.ACKNOWLEDGED: 1, Status.RESOLVED: 2}
OWES_REPORT_RANK = QUEUE_RANKS[Status.ACKNOWLEDGED.value]
"""The rank of a resolved case that still owes a report to an authority (its legal deadline
neither filed nor waived): it stays in the open queue, among the cases in hand, until the
report is filed."""
SNOOZED_RANK = 3
"""The rank of a snoozed case: past the open queue's `queue_rank < 2` (and after the
resolved cases), until the engine re-triggers it at the snooze's end."""
OPEN_BELOW = literal(QUEUE_RANKS[Status.RESOLVED.value], literal_execute=True)
"""The open queue's bound, written into the statement, not bound: SQLite uses a partial
index (`ix_case_open_by_age`, `…_by_severity`: `queue_rank < 2`) only for a query whose
condition is the index's own, literally."""


def _filtered(statement: SelectOfScalar[Case], flt: QueueFilter) -> SelectOfScalar[Case]:
    if flt.snoozed:
        statement = statement.where(col(Case.queue_rank) == SNOOZED_RANK)
    elif not flt.include_resolved:
        statement = statement.where(col(Case.queue_rank) < OPEN_BELOW)
    if flt.mine and flt.me is not None:
        # A probe of each case's own pages (by the page table's case index), not `IN` over
        # every page the person ever had: that set grows with the desk's whole history.
        paged_me = exists().where(
            col(Page.case_id) == col(Case.id), col(Page.responder_id) == flt.me
        )
        statement = statement.where(or_(col(Case.assignee_id) == flt.me, paged_me))
    if flt.unassigned:
        statement = statement.where(col(Case.assignee_id).is_(None))
    if flt.categories:
        statement = statement.where(col(Case.category).in_(sorted(flt.categories)))
    if flt.clocks:
        statement = statement.where(col(Case.category).in_(sorted(flt.clocks)))
    if flt.severities:
        statement = statement.where(col(Case.severity).in_(sorted(flt.severities)))
    if flt.search.strip():
        needle = f"%{flt.search.strip().lower()}%"
        statement = statement.where(
            or_(func.lower(Case.title).like(needle), func.lower(Case.ref).like(needle))
        )
    return statement


SORT_COLUMNS: dict[str, tuple[Any, ...]] = {
    "queue": (Case.queue_rank, Case.severity, Case.created_at, Case.id),
    "severity": (Case.severity, Case.queue_rank, Case.created_at, Case.id),
    "age": (Case.created_at, Case.id),
    "status": (Case.queue_rank, Case.created_at, Case.id),
}
"""Each order the queue offers, by name, as the columns of its own index (`ix_case_queue`,
`ix_case_by_severity`, `ix_case_by_age`, `ix_case_by_status`): every order is a seek
along an index, never a sort of the whole queue, so paging stays exact under any of
them. All ascending: the most severe, the oldest, the unacknowledged first. The SLA due
time is not among them: it is computed from each case's targets, not stored, so no index
can order by it."""


def _sort_columns(sort: str) -> tuple[Any, ...]:
    try:
        return SORT_COLUMNS[sort]
    except KeyError:
        raise ValueError(f"sort: expected one of {', '.join(SORT_COLUMNS)}, got {sort!r}") from None


def queue_order(statement: SelectOfScalar[Case], sort: str = "queue") -> SelectOfScalar[Case]:
    """By default unacknowledged first, then severity, then the oldest (least SLA time
    left); else the order `sort` names."""
    return statement.order_by(*(col(column) for column in _sort_columns(sort)))


def queue_count(session: Session, flt: QueueFilter) -> int:
    # count(*), not count(id): the database then need not read each entry's id.
    statement = _filtered(select(Case), flt).with_only_columns(
        func.count(), maintain_column_froms=True
    )
    return int(session.exec(statement).one())  # type: ignore[call-overload]


def queue_window(session: Session, flt: QueueFilter, offset: int, limit: int) -> list[Case]:
    """Rows `offset`… counted from the top: the plain reading, whose cost grows with
    `offset`. The console seeks instead (`queue_after`, `queue_before`)."""
    statement = queue_order(_filtered(select(Case), flt), flt.sort).offset(offset).limit(limit)
    return list(session.exec(statement).all())


QueueKey = tuple[Any, ...]
"""A case's place in one of the queue's orders: its values of that order's `SORT_COLUMNS`
(by default (queue_rank, severity, created_at, id), the columns of `ix_case_queue`)."""


def queue_key(case: Case, sort: str = "queue") -> QueueKey:
    assert case.id is not None
    return tuple(getattr(case, column.key) for column in _sort_columns(sort))


def _beyond(
    statement: SelectOfScalar[Case], key: QueueKey, forward: bool, sort: str
) -> SelectOfScalar[Case]:
    """Only the cases after `key` in the order (before it, unless `forward`): one range of
    the order's index, whose start the database finds by seeking."""
    columns = [cast("ColumnElement[Any]", col(column)) for column in _sort_columns(sort)]
    bound = tuple_(
        *(
            bindparam(None, value, type_=column.type)
            for column, value in zip(columns, key, strict=True)
        )
    )
    key_columns = tuple_(*columns)
    # The range goes before the filter's own `queue_rank < 2` (see `queue_position`).
    return statement.where(key_columns > bound if forward else key_columns < bound)


def _seek(
    flt: QueueFilter, key: QueueKey | None, forward: bool, statement: SelectOfScalar[Case]
) -> SelectOfScalar[Case]:
    if key is not None:
        statement = _beyond(statement, key, forward, flt.sort)
    statement = _filtered(statement, flt)
    if forward:
        return queue_order(statement, flt.sort)
    return statement.order_by(*(col(column).desc() for column in _sort_columns(flt.sort)))


def _key_beyond(
    session: Session, flt: QueueFilter, key: QueueKey | None, forward: bool, skip: int
) -> QueueKey | None:
    """The key of the `skip`-th case past `key` (or past an end of the queue when None),
    read from the index alone: a far jump steps over the entries of the index without
    reading the cases they point at. None when the queue ends first."""
    statement = _seek(flt, key, forward, select(Case))
    keys = statement.with_only_columns(*(col(column) for column in _sort_columns(flt.sort)))
    found = session.execute(keys.offset(skip - 1).limit(1)).first()
    return None if found is None else tuple(found)


def queue_after(
    session: Session, flt: QueueFilter, key: QueueKey | None, limit: int, skip: int = 0
) -> list[Case]:
    """The `limit` cases that follow `key` in the queue (the first ones when `key` is
    None), after stepping over `skip` of them: a seek, so a window deep in the queue
    costs what the first one costs, and a far jump costs a walk of the index only."""
    if skip > 0:
        key = _key_beyond(session, flt, key, True, skip)
        if key is None:
            return []
    statement = _seek(flt, key, True, select(Case)).limit(limit)
    return list(session.exec(statement).all())


def queue_before(
    session: Session, flt: QueueFilter, key: QueueKey | None, limit: int, skip: int = 0
) -> list[Case]:
    """The `limit` cases that precede `key` (the last ones of the queue when `key` is
    None), after stepping back over `skip` of them, in the queue's order."""
    if skip > 0:
        key = _key_beyond(session, flt, key, False, skip)
        if key is None:
            return []
    statement = _seek(flt, key, False, select(Case)).limit(limit)
    return list(reversed(session.exec(statement).all()))


def queue_position(session: Session, flt: QueueFilter, case: Case) -> int | None:
    """Where a case sits in the ordered queue, or None if the filter hides it.

    Counted as one index range per sort key (the cases of a lower rank, then those of its
    rank and a lower severity, and so on), so the cost grows with the position rather
    than with the whole queue.
    """
    visible = _filtered(select(Case), flt).where(col(Case.id) == case.id)
    shown = visible.with_only_columns(col(Case.id))
    if session.exec(shown).first() is None:  # type: ignore[call-overload]
        return None
    keys = tuple(col(column) for column in _sort_columns(flt.sort))
    values = queue_key(case, flt.sort)
    # The range goes before the filter's own `queue_rank < 2`: of two upper bounds on one
    # column SQLite's planner takes the first, and this one is the narrow one.
    before = [
        _filtered(
            select(Case)
            .where(*(key == value for key, value in zip(keys[:depth], values[:depth], strict=True)))
            .where(keys[depth] < values[depth]),
            flt,
        )
        .with_only_columns(func.count(), maintain_column_froms=True)
        .scalar_subquery()
        for depth in range(len(keys))
    ]
    statement = select(sum(before[1:], before[0]))
    return int(session.exec(statement).one())


def next_case_numbers(session: Session, count: int) -> list[tuple[int, int]]:
    """The numbers of the next `count` cases' references (`ESC-0042`) and the ids their rows
    take, in order, read by a writer that holds the audit chain's lock (so no other writer
    opens a case between).

    The ids are known before the rows are written, so details are sealed in the INSERT
    itself rather than by an UPDATE after it: on SQLite the ids SQLite would choose, on
    PostgreSQL the id column's own sequence (shared with every other writer)."""
    if count < 1:
        return []
    if session.get_bind().dialect.name != "postgresql":
        first = (session.exec(select(func.max(Case.id))).one() or 0) + 1
        return [(first + k, first + k) for k in range(count)]
    taken = session.execute(
        text(
            """SELECT (SELECT coalesce(max(id), 0) FROM "case") + 1, """
            """nextval(pg_get_serial_sequence('"case"', 'id')) """
            """FROM generate_series(1, :count)"""
        ),
        {"count": count},
    ).all()
    first = int(taken[0][0])
    ids = sorted(int(row[1]) for row in taken)
    return [(first + k, case_id) for k, case_id in enumerate(ids)]


def holding_open_key(*keys: str) -> ColumnElement[bool]:
    """Cases not resolved that hold one of these dedup keys: at most one a key, found
    through the partial unique index `ux_case_open_dedup` (one key is planned as `=`)."""
    return and_(col(Case.dedup_key).in_(keys), col(Case.status) != Status.RESOLVED.value)


def open_dedup_keys(session: Session, keys: Sequence[str]) -> list[str]:
    """Which of these dedup keys an open case holds."""
    if not keys:
        return []
    found = session.exec(select(Case.dedup_key).where(holding_open_key(*set(keys))))
    return [key for key in found if key is not None]


def case_by_ref(session: Session, ref: str) -> Case | None:
    return session.exec(select(Case).where(Case.ref == ref.strip().upper())).first()


DETAILS_FUNCTION = "vigil_case_details"
"""On a PostgreSQL desk with its roles installed (`data.access`), people cannot select a
case's details: they read them through this function, which gives a sensitive case's
details only to a login whose own reveal record of that case is committed."""


def case_details(session: Session, case: Case) -> str:
    """The case's details, read the one way every role may: for a sensitive case, the
    reader's `case.reveal` audit record of it is already committed (a record of the same
    transaction does not count on PostgreSQL: a rollback would take it back)."""
    assert case.id is not None
    bind = session.get_bind()
    if bind.dialect.name != "postgresql" or not _details_function_installed(session):
        return case.details
    stored = session.execute(
        text(f"SELECT {DETAILS_FUNCTION}(:case_id)"), {"case_id": case.id}
    ).scalar_one()
    if not is_sealed(stored):
        return str(stored or "")
    return unseal(keyring_of(session), stored, table="case", column="details", row_id=case.id)


def _details_function_installed(session: Session) -> bool:
    found = session.execute(
        text("SELECT to_regprocedure(:signature) IS NOT NULL"),
        {"signature": f"{DETAILS_FUNCTION}(integer)"},
    ).scalar_one()
    return bool(found)


_Row = TypeVar("_Row")


_OPEN_RANKS = (QUEUE_RANKS[Status.TRIGGERED], QUEUE_RANKS[Status.ACKNOWLEDGED], SNOOZED_RANK)
"""Every rank but resolved, named: a seek for each in the queue's index, where "not
resolved" read past every resolved case (on a desk of a million, 30 ms of `vigil cases`)."""


def _cases_where(
    statement: SelectOfScalar[_Row], status: str | None, open_only: bool
) -> SelectOfScalar[_Row]:
    if status:
        statement = statement.where(Case.status == status)
    elif open_only:  # snoozed cases are open too
        statement = statement.where(col(Case.queue_rank).in_(_OPEN_RANKS))
    return statement


def cases(
    session: Session,
    status: str | None = None,
    limit: int | None = None,
    *,
    open_only: bool = False,
) -> list[Case]:
    """Cases in queue order: of one status, or only the open ones, the first `limit`."""
    statement = queue_order(_cases_where(select(Case), status, open_only))
    if limit:
        statement = statement.limit(limit)
    return list(session.exec(statement).all())


def count_cases(session: Session, status: str | None = None, *, open_only: bool = False) -> int:
    """How many cases `cases` would list without a limit."""
    counted = select(func.count()).select_from(Case)
    return int(session.exec(_cases_where(counted, status, open_only)).one())


def handles(session: Session, ids: Sequence[int | None]) -> dict[int, str]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    rows = session.exec(select(Responder).where(col(Responder.id).in_(wanted))).all()
    return {r.id: r.handle for r in rows if r.id is not None}


def paged_unacknowledged(session: Session, responder_id: int, case_ids: Sequence[int]) -> set[int]:
    """Which of `case_ids` have a page to `responder_id` not yet acknowledged."""
    if not case_ids:
        return set()
    statement = select(Page.case_id, Page.responder_id).where(
        col(Page.case_id).in_(case_ids), col(Page.acknowledged_at).is_(None)
    )
    # The responder is matched here, not in SQL: given both, SQLite's planner walks every
    # page of the responder (ix_page_responder_sent) instead of the few of these cases.
    return {case_id for case_id, paged in session.exec(statement) if paged == responder_id}


def pages_for(session: Session, case_ids: Sequence[int]) -> list[Page]:
    if not case_ids:
        return []
    return list(
        session.exec(
            select(Page)
            .where(col(Page.case_id).in_(case_ids))
            .order_by(col(Page.sent_at), col(Page.id))
        ).all()
    )


def deliveries_for(session: Session, page_ids: Sequence[int]) -> list[Delivery]:
    if not page_ids:
        return []
    return list(
        session.exec(
            select(Delivery).where(col(Delivery.page_id).in_(page_ids)).order_by(col(Delivery.id))
        ).all()
    )


def timeline_of(session: Session, case_id: int) -> list[TimelineEvent]:
    return list(
        session.exec(
            select(TimelineEvent)
            .where(TimelineEvent.case_id == case_id)
            .order_by(col(TimelineEvent.at), col(TimelineEvent.id))
        ).all()
    )


def notes_of(session: Session, case_id: int) -> list[CaseNote]:
    return list(
        session.exec(
            select(CaseNote).where(CaseNote.case_id == case_id).order_by(col(CaseNote.id))
        ).all()
    )


def action_items_of(session: Session, case_id: int) -> list[ActionItem]:
    return list(
        session.exec(
            select(ActionItem).where(ActionItem.case_id == case_id).order_by(col(ActionItem.id))
        ).all()
    )


def latest_change_id(session: Session) -> int:
    latest = session.exec(select(func.max(CaseChange.id))).one()
    return int(latest or 0)


def changes_since(session: Session, after_id: int, limit: int = 5000) -> list[CaseChange]:
    return list(
        session.exec(
            select(CaseChange)
            .where(col(CaseChange.id) > after_id)
            .order_by(col(CaseChange.id))
            .limit(limit)
        ).all()
    )

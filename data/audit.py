"""The audit chain: append-only records, each hashing the one before it.

Every writer locks the single `audit_head` row first, which serialises appends across
consoles and engines sharing a database, so the chain never forks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, cast, func, insert, literal, or_
from sqlmodel import Session, col, select

from data.db import held_for_transaction
from data.dialects import upsert_insert
from data.domain import EngineAction
from data.models import AuditHead, AuditRecord
from data.types import table_of

GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    """The one JSON form a digest covers: sorted keys, no spaces, text as written."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_digest(
    prev_hash: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    case_ref: str | None,
    detail: dict[str, Any],
) -> str:
    body = canonical_json(
        [
            prev_hash,
            seq,
            at.astimezone(UTC).isoformat(timespec="microseconds"),
            actor,
            action,
            case_ref,
            detail,
        ]
    )
    return hashlib.sha256(body.encode()).hexdigest()


# --- the engine's batches ------------------------------------------------------------

ENGINE_BATCH = EngineAction.ESCALATE.value
"""The action of the one record an engine batch of several cases writes (its `case_ref`
empty, its detail `engine_batch`): the action any login may already write as the engine, so
a desk's installed database checks take it as they are."""


def engine_batch(groups: Iterable[tuple[str, dict[str, Any], list[str]]]) -> dict[str, Any]:
    """The detail of an engine batch's record: every case of the batch, in groups of cases
    the engine did alike to, each given as (action, that action's detail, the case refs).

    One record for a thousand cases instead of a thousand records: the digest and the row
    are written once, and the record still lists every case and everyone paged for it.
    """
    listed = [{**detail, "action": action, "refs": list(refs)} for action, detail, refs in groups]
    return {"cases": sum(len(group["refs"]) for group in listed), "groups": listed}


def batch_entry(record: AuditRecord, ref: str) -> tuple[str, dict[str, Any]] | None:
    """What an engine batch record did to case `ref`: its group's action and detail (without
    the refs), or None when the record does not list the case."""
    for group in record.detail.get("groups", ()):
        if ref in group.get("refs", ()):
            detail = {key: value for key, value in group.items() if key not in ("action", "refs")}
            return str(group.get("action", record.action)), detail
    return None


def about_case(ref: ColumnElement[str] | str) -> ColumnElement[bool]:
    """Audit records about case `ref` (a value, or a column of a query that joins cases):
    its own, and the engine batches whose detail names it. A batch is matched by the ref's
    text, quoted, so a reader that needs it exact checks with `batch_entry`."""
    own = col(AuditRecord.case_ref) == ref
    named = literal('%"').concat(ref).concat(literal('"%'))
    in_batch = and_(
        col(AuditRecord.case_ref).is_(None),
        col(AuditRecord.action) == ENGINE_BATCH,
        cast(AuditRecord.detail, Text).like(named),
    )
    return or_(own, in_batch)


def records_of_case(session: Session, ref: str) -> list[tuple[AuditRecord, str, dict[str, Any]]]:
    """Every record about case `ref` in chain order, each with the action and detail it
    records for the case: the case's own records, and the engine batches that list it."""
    found = session.exec(select(AuditRecord).where(about_case(ref)).order_by(col(AuditRecord.seq)))
    said: list[tuple[AuditRecord, str, dict[str, Any]]] = []
    for record in found:
        if record.case_ref == ref:
            said.append((record, record.action, record.detail))
        elif (entry := batch_entry(record, ref)) is not None:
            said.append((record, *entry))
    return said


_HELD = "vigil.audit_head"
"""Where a session keeps the head it locked, for the transaction that holds the lock."""


def lock_head(session: Session) -> AuditHead:
    """Take the chain's lock for this transaction, creating the head on first use.

    Two writers may both find no head on a new database: the insert ignores a head that
    appeared meanwhile, and both then lock the one row. The lock lasts as long as the
    transaction, so within one the head is read once (a change, its first page and its
    audit record each ask for it)."""
    held = held_for_transaction(session, _HELD)
    if "head" in held:
        head: AuditHead = held["head"]
        return head
    locked = select(AuditHead).where(AuditHead.id == 1).with_for_update()
    found = session.exec(locked).first()
    if found is None:
        session.execute(
            upsert_insert(session.get_bind().dialect.name, AuditHead)
            .values(id=1, seq=0, hash=GENESIS)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        found = session.exec(locked).one()
    held_for_transaction(session, _HELD)["head"] = found  # the transaction has begun by now
    return found


def append(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    case_ref: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditRecord:
    head = lock_head(session)
    record = AuditRecord(**chained(head, at, actor, action, case_ref, dict(detail or {})))
    session.add(record)
    session.add(head)
    return record


def append_many(
    session: Session,
    *,
    at: datetime,
    actor: str,
    entries: Sequence[tuple[str, str | None, dict[str, Any]]],
) -> None:
    """Records of (action, case ref, detail), chained in order and written in one statement
    (cases opened together: a record each, without an object each)."""
    if not entries:
        return
    head = lock_head(session)
    rows = [chained(head, at, actor, action, ref, dict(detail)) for action, ref, detail in entries]
    session.flush()  # records appended as objects earlier go first: ids follow the chain
    session.connection().execute(insert(table_of(AuditRecord)), rows)
    session.add(head)


def chained(
    head: AuditHead,
    at: datetime,
    actor: str,
    action: str,
    case_ref: str | None,
    detail: dict[str, Any],
) -> dict[str, Any]:
    """The next record's fields after `head`, which moves on to it."""
    seq = head.seq + 1
    digest = record_digest(head.hash, seq, at, actor, action, case_ref, detail)
    fields = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "case_ref": case_ref,
        "detail": detail,
        "prev_hash": head.hash,
        "hash": digest,
    }
    head.seq, head.hash = seq, digest
    return fields


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    bad_seq: int | None = None
    reason: str = ""


def verify_records(records: Iterable[AuditRecord], head: AuditHead | None) -> ChainReport:
    """Walk the chain in storage order; name the first record that does not fit."""
    expected_prev = GENESIS
    expected_seq = 1
    checked = 0
    for record in records:
        if record.seq != expected_seq:
            return ChainReport(
                False,
                checked,
                record.seq,
                f"record {record.seq} found where record {expected_seq} was expected "
                "(a record was deleted or the order changed)",
            )
        if record.prev_hash != expected_prev:
            return ChainReport(
                False,
                checked,
                record.seq,
                f"record {record.seq} does not follow record {expected_seq - 1}",
            )
        digest = record_digest(
            record.prev_hash,
            record.seq,
            record.at,
            record.actor,
            record.action,
            record.case_ref,
            record.detail,
        )
        if digest != record.hash:
            return ChainReport(
                False, checked, record.seq, f"record {record.seq} was changed after it was written"
            )
        expected_prev = record.hash
        expected_seq += 1
        checked += 1
    if head is not None and (head.seq != checked or head.hash != expected_prev):
        return ChainReport(
            False,
            checked,
            checked + 1,
            f"the chain ends at record {checked} but {head.seq} were written "
            "(records at the end were deleted)",
        )
    return ChainReport(True, checked)


def verify(session: Session) -> ChainReport:
    records = session.exec(select(AuditRecord).order_by(col(AuditRecord.id))).yield_per(1000)
    head = session.get(AuditHead, 1)
    return verify_records(records, head)


def count(session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(AuditRecord)).one())

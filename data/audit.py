"""The audit chain: append-only records, each hashing the one before it.

Every writer locks the single `audit_head` row first, which serialises appends across
consoles and engines sharing a database, so the chain never forks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from data.db import held_for_transaction
from data.dialects import upsert_insert
from data.models import AuditHead, AuditRecord

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


def chain_digests(
    prev_hash: str,
    first_seq: int,
    at: datetime,
    actor: str,
    action_refs_details: Iterable[tuple[str, str | None, str]],
) -> list[str]:
    """The digests of records appended in a row at one instant by one actor, each given as
    (action, case ref, `canonical_json` of its detail): the same digests `record_digest`
    gives, without serialising the shared parts once per record.

    The canonical form of a list is its items' canonical forms joined by commas, so the
    body can be put together from parts; the engine appends thousands of records a batch.
    """
    shared = ",".join(
        [
            canonical_json(at.astimezone(UTC).isoformat(timespec="microseconds")),
            canonical_json(actor),
        ]
    )
    digests: list[str] = []
    previous, seq = canonical_json(prev_hash), first_seq
    sha256 = hashlib.sha256
    for action, case_ref, detail_json in action_refs_details:
        body = (
            f"[{previous},{seq},{shared},{canonical_json(action)},"
            f"{canonical_json(case_ref)},{detail_json}]"
        )
        digest = sha256(body.encode()).hexdigest()
        digests.append(digest)
        previous = f'"{digest}"'  # hex digits need no escaping
        seq += 1
    return digests


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
    detail = dict(detail or {})
    seq = head.seq + 1
    digest = record_digest(head.hash, seq, at, actor, action, case_ref, detail)
    record = AuditRecord(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        case_ref=case_ref,
        detail=detail,
        prev_hash=head.hash,
        hash=digest,
    )
    head.seq, head.hash = seq, digest
    session.add(record)
    session.add(head)
    return record


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

"""Checkpoints: the audit chain's head, witnessed outside the database.

The chain alone stops nobody who can write: whoever can delete a record can re-hash every
record after it and move the head. A checkpoint is the head (a sequence number and the
hash of that record) copied somewhere the database cannot reach: a handover report, a
chat channel, a printout. Because each record's hash covers the one before it, the hash
at record N, recomputed from what is stored now, equals the witnessed one only if records
1 to N are exactly what they were: an edit, a deletion, a reordering or a full re-hash
anywhere up to N gives another hash at N, and a chain cut back below N has no record N.

The text form is one line a person can paste back:
`vigil-checkpoint v1 seq=N hash=HEX at=ISO` (`at` says when it was taken, nothing more).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from data import audit
from data.models import AuditHead, AuditRecord

_LINE = re.compile(
    r"vigil-checkpoint v1 seq=(?P<seq>\d{1,19}) hash=(?P<hash>[0-9a-f]{64})"
    r"(?: at=(?P<at>\S+))?"
)


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: datetime | None = None

    def line(self) -> str:
        taken = (
            f" at={self.at.astimezone(UTC).isoformat(timespec='seconds').replace('+00:00', 'Z')}"
            if self.at
            else ""
        )
        return f"vigil-checkpoint v1 seq={self.seq} hash={self.hash}{taken}"


def parse(text: str) -> list[Checkpoint]:
    """Every checkpoint line in `text` (a pasted line, a file of them, a handover report),
    in the order they appear; ValueError when there is none."""
    found = []
    for match in _LINE.finditer(text):
        at = None
        if match["at"]:
            try:
                at = datetime.fromisoformat(match["at"].replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"checkpoint at={match['at']!r}: expected ISO 8601") from None
        found.append(Checkpoint(int(match["seq"]), match["hash"], at))
    if not found:
        raise ValueError(
            "no checkpoint found: expected a line `vigil-checkpoint v1 seq=N hash=HEX` "
            "as `vigil audit checkpoint` prints it"
        )
    return found


def head(session: Session) -> Checkpoint:
    """The chain's head as stored (record 0 and the genesis hash on an empty chain)."""
    row = session.get(AuditHead, 1)
    if row is None:
        return Checkpoint(0, audit.GENESIS)
    return Checkpoint(row.seq, row.hash)


def _stored_hashes(session: Session, seqs: list[int]) -> dict[int, str]:
    rows = session.exec(
        select(AuditRecord.seq, AuditRecord.hash).where(col(AuditRecord.seq).in_(seqs))
    ).all()
    return {seq: digest for seq, digest in rows}


@dataclass(frozen=True)
class CheckpointReport:
    """The chain against the latest checkpoint given: `problems` empty means nothing up to
    it was touched; `added` records were written after it."""

    checkpoint: Checkpoint
    records: int
    added: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_against(session: Session, checkpoints: list[Checkpoint]) -> CheckpointReport:
    """Walk the chain once, recomputing every hash, and hold it against every checkpoint."""
    walked = audit.verify(session)
    # Records 1..intact are exactly what their stored hashes say (recomputed from content).
    intact = walked.checked if walked.ok else (walked.bad_seq or 1) - 1
    witnessed = sorted({(c.seq, c.hash): c for c in checkpoints}.values(), key=lambda c: c.seq)
    latest = witnessed[-1]
    problems: list[str] = []
    if not walked.ok and walked.bad_seq is not None and walked.bad_seq <= latest.seq:
        problems.append(f"record {walked.bad_seq}: {walked.reason}")
    stored = _stored_hashes(session, [c.seq for c in witnessed if 0 < c.seq <= intact])
    matched = 0  # the last record an earlier checkpoint proved untouched
    for checkpoint in witnessed:
        if checkpoint.seq == 0:
            continue
        if checkpoint.seq > intact and walked.ok:
            problems.append(
                f"the chain was cut back: it ends at record {walked.checked}, but the "
                f"checkpoint witnessed {checkpoint.seq} records "
                f"({checkpoint.seq - walked.checked} removed from the end)"
            )
            break
        if checkpoint.seq > intact:
            continue  # the walk's own finding above names where the chain breaks
        if stored[checkpoint.seq] != checkpoint.hash:
            problems.append(
                f"record {checkpoint.seq} is not the record the checkpoint witnessed "
                f"(hash {stored[checkpoint.seq][:12]}… where {checkpoint.hash[:12]}… was "
                f"witnessed): records {matched + 1} to {checkpoint.seq} were changed, removed, "
                "reordered or re-hashed since"
            )
            break
        matched = checkpoint.seq
    if not walked.ok and walked.bad_seq is not None and walked.bad_seq > latest.seq:
        problems.append(f"after the checkpoint, record {walked.bad_seq}: {walked.reason}")
    records = walked.checked if walked.ok else audit.count(session)
    return CheckpointReport(latest, records, max(records - latest.seq, 0), tuple(problems))

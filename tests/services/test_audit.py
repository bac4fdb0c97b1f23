"""The audit chain detects an edited, a deleted and a reordered record."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from sqlmodel import select

from app.core.clock import FakeClock
from app.services.cases import CaseService
from data import audit
from data.db import Database
from data.models import AuditRecord
from tests.factories import add_responder


@pytest.fixture
def chained(any_db: Database, clock: FakeClock) -> Database:
    add_responder(any_db, "ana")
    service = CaseService(any_db, clock)
    for n in range(3):
        ref = service.open_case("ana", title=f"Case {n}", category="other", severity=4).ref
        clock.advance(minutes=1)
        service.add_note("ana", ref, f"note {n}")
    return any_db


def _verify(db: Database) -> audit.ChainReport:
    with db.read() as session:
        return audit.verify(session)


def test_intact_chain_verifies(chained: Database) -> None:
    report = _verify(chained)
    assert report.ok
    assert report.checked == 6


def test_edited_record_is_named(chained: Database) -> None:
    with chained.write() as session:
        session.execute(text("UPDATE audit_record SET actor = 'mallory' WHERE seq = 3"))
    report = _verify(chained)
    assert not report.ok
    assert report.bad_seq == 3
    assert "changed" in report.reason


def test_edited_detail_is_named(chained: Database) -> None:
    with chained.write() as session:
        record = session.exec(select(AuditRecord).where(AuditRecord.seq == 2)).one()
        record.detail = {"length": 999}
        session.add(record)
    report = _verify(chained)
    assert (report.ok, report.bad_seq) == (False, 2)


def test_deleted_record_is_named(chained: Database) -> None:
    with chained.write() as session:
        session.execute(text("DELETE FROM audit_record WHERE seq = 4"))
    report = _verify(chained)
    assert not report.ok
    assert report.bad_seq == 5
    assert "deleted" in report.reason


def test_deleted_tail_is_detected(chained: Database) -> None:
    with chained.write() as session:
        session.execute(text("DELETE FROM audit_record WHERE seq = 6"))
    report = _verify(chained)
    assert not report.ok
    assert report.bad_seq == 6


def test_reordered_records_are_detected(chained: Database) -> None:
    with chained.write() as session:
        session.execute(text("UPDATE audit_record SET seq = -2 WHERE seq = 2"))
        session.execute(text("UPDATE audit_record SET seq = 2 WHERE seq = 3"))
        session.execute(text("UPDATE audit_record SET seq = 3 WHERE seq = -2"))
    report = _verify(chained)
    assert not report.ok
    assert report.bad_seq in (2, 3)


def test_rehashing_one_record_still_breaks_the_next(chained: Database) -> None:
    """Recomputing an edited record's own hash does not help: its successor no longer fits."""
    with chained.write() as session:
        record = session.exec(select(AuditRecord).where(AuditRecord.seq == 2)).one()
        record.actor = "mallory"
        record.hash = audit.record_digest(
            record.prev_hash,
            record.seq,
            record.at,
            record.actor,
            record.action,
            record.case_ref,
            record.detail,
        )
        session.add(record)
    report = _verify(chained)
    assert (report.ok, report.bad_seq) == (False, 3)


_texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
_details = st.dictionaries(
    _texts,
    st.recursive(
        st.none() | st.booleans() | st.integers() | _texts,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_texts, inner, max_size=3),
        max_leaves=6,
    ),
    max_size=4,
)


_refs = st.integers(min_value=1, max_value=99_999).map(lambda n: f"ESC-{n:04d}")


@given(
    groups=st.lists(
        st.tuples(
            st.sampled_from(["engine.escalate", "engine.exhausted"]),
            _details.map(lambda d: {k: v for k, v in d.items() if k not in ("action", "refs")}),
            st.lists(_refs, min_size=1, max_size=4, unique=True),
        ),
        min_size=1,
        max_size=4,
    ),
    stranger=_refs,
)
def test_an_engine_batch_tells_each_case_what_was_done_to_it(
    groups: list[tuple[str, dict[str, object], list[str]]], stranger: str
) -> None:
    """Each case of a batch finds its own group's action and detail, and no other."""
    seen: set[str] = set()
    distinct = []
    for action, said, refs in groups:
        fresh = [ref for ref in refs if ref not in seen]
        seen.update(fresh)
        if fresh:
            distinct.append((action, said, fresh))
    detail = audit.engine_batch(distinct)
    stored = AuditRecord(
        seq=1,
        at=datetime(2026, 12, 7, tzinfo=UTC),
        actor="engine",
        action=audit.ENGINE_BATCH,
        case_ref=None,
        detail=detail,
        prev_hash=audit.GENESIS,
        hash="",
    )
    assert detail["cases"] == sum(len(refs) for *_, refs in distinct)
    for action, said, refs in distinct:
        for ref in refs:
            assert audit.batch_entry(stored, ref) == (action, said)
    if stranger not in seen:
        assert audit.batch_entry(stored, stranger) is None

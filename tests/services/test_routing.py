"""Which policy a new case follows, and what it freezes of it: read in one statement
(`routed_snapshot`), it must agree with the policy read row by row (`snapshot_policy`).
SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from app.services.policies import FALLBACK_POLICY, routed_snapshot
from data.db import Database
from data.models import Policy, PolicyStep
from tests.factories import add_policy, snapshot_policy


def _routed(db: Database, category: str, explicit: str | None = None) -> Any:
    with db.read() as session:
        return routed_snapshot(session, category, explicit)


def _as_read_row_by_row(db: Database, policy_id: int) -> tuple[int, dict[str, Any]]:
    with db.read() as session:
        policy = session.get(Policy, policy_id)
        assert policy is not None
        return policy_id, snapshot_policy(session, policy)


def test_nothing_routes_to_the_fallback_policy_and_no_policy_by_that_name_to_none(
    any_db: Database,
) -> None:
    assert _routed(any_db, "csea") == (None, FALLBACK_POLICY)
    add_policy(any_db, "quiet", [(60, ["user:ana"])])  # no route reaches it
    assert _routed(any_db, "csea") == (None, FALLBACK_POLICY)
    assert _routed(any_db, "csea", "nowhere") is None


def test_the_categorys_route_before_the_default_and_an_explicit_policy_before_both(
    any_db: Database,
) -> None:
    standard = add_policy(any_db, "standard", [(0, ["user:ben"])], route=["default"])
    emergency = add_policy(
        any_db,
        "emergency",
        [(0, ["user:ana"]), (300, ["role:supervisor"]), (900, ["schedule:legal"])],
        route=["threat_to_life", "csea"],
        repeat=2,
        ack_timeout_seconds=1800,
        require_all=[2],
    )
    empty = add_policy(any_db, "empty", [])
    with any_db.write() as session:  # steps stored out of order come back in order
        session.execute(
            update(PolicyStep)
            .where(PolicyStep.policy_id == emergency, PolicyStep.position == 1)
            .values(position=9)
        )
        session.execute(update(Policy).where(Policy.id == emergency).values(high_urgency="1,2"))
    assert _routed(any_db, "threat_to_life") == _as_read_row_by_row(any_db, emergency)
    assert _routed(any_db, "csea")[1]["steps"][-1]["targets"] == ["user:ana"]
    assert _routed(any_db, "edr") == _as_read_row_by_row(any_db, standard)
    assert _routed(any_db, "edr", "emergency") == _as_read_row_by_row(any_db, emergency)
    assert _routed(any_db, "csea", "empty") == _as_read_row_by_row(any_db, empty)
    assert _routed(any_db, "csea", "empty")[1]["steps"] == []


def test_each_case_gets_a_copy_of_its_snapshot(any_db: Database) -> None:
    add_policy(any_db, "standard", [(0, ["user:ben"])], route=["default"])
    with any_db.read() as session:
        first = routed_snapshot(session, "edr", None)
        assert first is not None
        first[1]["steps"][0]["targets"].append("user:eve")
        again = routed_snapshot(session, "edr", None)
    assert again is not None
    assert again[1]["steps"][0]["targets"] == ["user:ben"]

"""A case's frozen policy is read once into a `PolicySnapshot`: every key `snapshot_policy`
writes, defaults for the keys an older snapshot leaves out, and a refusal naming the path of
a value that is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from app.services.policies import (
    FALLBACK_POLICY,
    FALLBACK_SNAPSHOT,
    PolicySnapshot,
    SnapshotStep,
    policy_of,
)
from data.domain import DEFAULT_HIGH_URGENCY
from data.models import Case

WRITTEN = {
    "high_urgency": [1],
    "name": "standard",
    "repeat": 2,
    "ack_timeout_seconds": 1800,
    "steps": [
        {"delay_seconds": 0, "targets": ["schedule:primary"], "require_all": False},
        {"delay_seconds": 600, "targets": ["user:ana", "role:supervisor"], "require_all": True},
    ],
}
"""A snapshot as `snapshot_policy` writes it."""


def _case(snapshot: Any) -> Case:
    return Case(
        id=1, ref="ESC-0001", title="t", category="edr", severity=1, policy_snapshot=snapshot
    )


def test_every_key_the_snapshot_carries_is_read() -> None:
    assert PolicySnapshot.of(WRITTEN) == PolicySnapshot(
        name="standard",
        steps=(
            SnapshotStep(0, ("schedule:primary",), require_all=False),
            SnapshotStep(600, ("user:ana", "role:supervisor"), require_all=True),
        ),
        repeat=2,
        ack_timeout_seconds=1800,
        high_urgency=(1,),
    )


def test_keys_left_out_read_as_their_defaults() -> None:
    assert PolicySnapshot.of({}) == PolicySnapshot(
        name=None, steps=(), repeat=0, ack_timeout_seconds=None, high_urgency=(1, 2)
    )
    assert PolicySnapshot.of({}).high_urgency == DEFAULT_HIGH_URGENCY
    older = {"name": "old", "steps": [{"delay_seconds": 60, "targets": ["user:ana"]}]}
    assert PolicySnapshot.of(older).steps == (SnapshotStep(60, ("user:ana",), False),)


def test_the_fallback_policy_reads_as_itself() -> None:
    assert FALLBACK_SNAPSHOT.name == FALLBACK_POLICY["name"]
    assert FALLBACK_SNAPSHOT.steps == (SnapshotStep(300, ("role:supervisor",), False),)
    assert FALLBACK_SNAPSHOT.repeat == 3
    assert FALLBACK_SNAPSHOT.ack_timeout_seconds is None


@pytest.mark.parametrize(
    ("snapshot", "path"),
    [
        ([], "policy_snapshot: expected an object"),
        ({"name": 3}, "policy_snapshot.name"),
        ({"steps": {}}, "policy_snapshot.steps: expected a list"),
        ({"steps": ["x"]}, r"policy_snapshot.steps\[0\]: expected an object"),
        ({"steps": [{"delay_seconds": "soon", "targets": []}]}, r"steps\[0\].delay_seconds"),
        ({"steps": [{"delay_seconds": 5, "targets": "ana"}]}, r"steps\[0\].targets"),
        ({"steps": [{"delay_seconds": 5, "targets": [], "require_all": 1}]}, "require_all"),
        ({"repeat": -1}, "policy_snapshot.repeat"),
        ({"repeat": True}, "policy_snapshot.repeat"),
        ({"ack_timeout_seconds": "1h"}, "policy_snapshot.ack_timeout_seconds"),
        ({"high_urgency": [1, "2"]}, "policy_snapshot.high_urgency"),
    ],
)
def test_a_wrong_value_is_refused_by_its_path(snapshot: Any, path: str) -> None:
    with pytest.raises(ValueError, match=path):
        PolicySnapshot.of(snapshot)


def test_a_case_reads_its_own_snapshot() -> None:
    assert policy_of(_case(WRITTEN)) == PolicySnapshot.of(WRITTEN)


def test_an_unreadable_snapshot_reads_as_the_fallback_policy_the_engine_escalates_with() -> None:
    broken = _case({"name": "standard", "steps": [{"delay_seconds": "soon"}]})
    assert policy_of(broken) is FALLBACK_SNAPSHOT

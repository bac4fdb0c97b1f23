"""A plan copied for another case in the same state (a burst planned once) carries every
field of the plan it copies, and owns what the batch later changes per case."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta

from app.engine.planning import DueCase, Person, Plan, StepClaim
from app.rules.notify import Profile
from data.domain import TimelineKind

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OWNED = {"row", "claims", "late", "events", "notice"}
"""The fields each copy has its own of (or, for `row`, is given)."""


def _due(case_id: int) -> DueCase:
    return DueCase(
        case_id, f"ESC-{case_id:04d}", "triggered", 0, 1, 0, AT, False, None, None, None, None,
        1, "{}",
    )  # fmt: skip


def _plan() -> Plan:
    """A plan with every field away from its default."""
    ana = Person(1, "ana", (), Profile())
    sue = Person(2, "sue", (), Profile())
    missed = StepClaim(3, (1, 0), AT, ("user:ana",), paged=1, missed=True)
    live = StepClaim(3, (2, 0), AT + timedelta(minutes=5), ("user:ben",), paged=1)
    values = {
        "row": _due(1),
        "status": "acknowledged",
        "cycle": 3,
        "acknowledged_at": AT,
        "acknowledged_by": 7,
        "claims": [missed, live],
        "events": [(TimelineKind.CATCH_UP, "caught up", {"late": []})],
        "pages": [ana],
        "late": [(missed, [ana])],
        "notice": [sue],
        "notice_due": AT,
        "reason": "catch-up",
        "next_at": AT + timedelta(minutes=15),
        "exhausted": True,
        "missed": 1,
        "skipped": 2,
        "behind": timedelta(minutes=9),
        "urgency": "low",
    }
    assert set(values) == {f.name for f in fields(Plan)}, "give the new field a value here"
    return Plan(**values)


def test_a_copy_carries_every_field_and_owns_what_changes_per_case() -> None:
    template = _plan()
    copy = template.copy_for(_due(2))
    assert copy.row == _due(2)
    for name in {f.name for f in fields(Plan)} - OWNED:
        assert getattr(copy, name) == getattr(template, name), name
    assert copy.claims == template.claims
    assert all(
        mine is not theirs for mine, theirs in zip(copy.claims, template.claims, strict=True)
    )
    assert copy.events == template.events
    assert copy.events is not template.events
    assert copy.notice == template.notice
    assert copy.notice is not template.notice
    # A late page's claim is the copy's own claim, not the template's.
    [(claim, people)] = copy.late
    assert claim is copy.claims[0]
    assert people == [template.pages[0]]


def test_due_cases_differing_only_in_who_they_are_share_a_state() -> None:
    assert _due(1).state() == _due(2).state()
    other = DueCase(
        2, "ESC-0002", "triggered", 0, 1, 0, AT, False, None, None, None, None, 2, "{}"
    )  # severity 2
    assert other.state() != _due(1).state()

"""The inbox: what waits on one person, each item read by the service that owns it, on the
small desk of `tests.services.test_calendar` (ana, ben and cat specialists, sam the
supervisor), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from app.core.clock import FakeClock
from app.services.inbox import InboxItem, InboxKind, InboxReader
from app.services.shiftwork.swaps import SwapService
from data.db import Database
from data.models import Responder
from tests.factories import CaseworkDesk, HandoverDesk, add_policy
from tests.services.test_calendar import START, build_desk
from tests.services.test_casework import AGENCY, EMERGENCY, GOOD_FAITH, IDENTITY
from tests.services.test_swaps import ANA_FROM, ANA_TO


@pytest.fixture
def clock(any_db: Database) -> FakeClock:
    clock = FakeClock(START)
    build_desk(any_db, clock)
    add_policy(any_db, "standard", [(1800, ["user:ana"])], route=["default"])
    return clock


@pytest.fixture
def desk(any_db: Database, clock: FakeClock) -> CaseworkDesk:
    desk = CaseworkDesk(any_db, clock)
    desk.add_partner(
        "sam",
        name="metro-pd",
        kind="law_enforcement",
        agency="Metro Police Department",
        verified_channel="dispatch +1 555 0100 from the state police directory",
    )
    return desk


def inbox(db: Database, clock: FakeClock, handle: str) -> list[InboxItem]:
    with db.read() as session:
        person = session.exec(select(Responder).where(Responder.handle == handle)).one()
        assert person.id is not None
        reader = InboxReader(person.id, handle, person.role == "supervisor")
        return reader.read(session, clock.now())


def kinds(items: list[InboxItem]) -> list[tuple[InboxKind, str]]:
    return [(item.kind, item.subject) for item in items]


def test_nothing_waits_on_a_quiet_desk(any_db: Database, clock: FakeClock) -> None:
    assert inbox(any_db, clock, "ana") == []
    assert inbox(any_db, clock, "sam") == []


def test_a_requested_disclosure_waits_on_the_supervisors_only(
    any_db: Database, clock: FakeClock, desk: CaseworkDesk
) -> None:
    ref = desk.open_case("ana", title="EDR", category="edr", severity=1).ref
    for step, facts in (
        ("identity", IDENTITY),
        ("agency", AGENCY),
        ("emergency", EMERGENCY),
        ("good_faith", GOOD_FAITH),
    ):
        desk.record_verification("ana", ref, step, facts)
    clock.advance(minutes=5)
    desk.request_disclosure("ana", ref, data="subscriber", to="metro-pd", basis="us-emergency")
    [item] = inbox(any_db, clock, "sam")
    assert (item.kind, item.ref, item.since) == (InboxKind.APPROVE_DISCLOSURE, ref, clock.now())
    assert "disclosure 1 to metro-pd, asked by ana" in item.subject
    assert inbox(any_db, clock, "ana") == []
    desk.approve_disclosure("sam", ref, 1)
    assert inbox(any_db, clock, "sam") == []


def test_an_offered_swap_waits_on_the_takers_then_a_taken_one_on_the_supervisors(
    any_db: Database, clock: FakeClock
) -> None:
    swaps = SwapService(any_db, clock)
    offered = swaps.request("ana", schedule="primary", start=ANA_FROM, end=ANA_TO)
    assert kinds(inbox(any_db, clock, "ben")) == [
        (InboxKind.TAKE_SWAP, f"#{offered.id} primary, from ana")
    ]
    assert inbox(any_db, clock, "ana") == []  # not one's own offer
    assert [item.kind for item in inbox(any_db, clock, "sam")] == [InboxKind.TAKE_SWAP]
    swaps.take("ben", offered.id)
    assert inbox(any_db, clock, "ben") == []
    assert kinds(inbox(any_db, clock, "sam")) == [
        (InboxKind.APPROVE_SWAP, f"#{offered.id} primary, ana to ben")
    ]


def test_a_swap_offered_to_one_person_waits_on_them_alone(
    any_db: Database, clock: FakeClock
) -> None:
    swaps = SwapService(any_db, clock)
    swaps.request("ana", schedule="primary", start=ANA_FROM, end=ANA_TO, with_handle="cat")
    assert [item.kind for item in inbox(any_db, clock, "cat")] == [InboxKind.TAKE_SWAP]
    assert inbox(any_db, clock, "ben") == []


def test_a_handover_waits_on_the_incoming_person_until_acknowledged(
    any_db: Database, clock: FakeClock
) -> None:
    handovers = HandoverDesk(any_db, clock)
    clock.advance(hours=2)
    view = handovers.submit("ben", "Quiet night.", since=START, to="ana")
    assert kinds(inbox(any_db, clock, "ana")) == [
        (InboxKind.ACKNOWLEDGE_HANDOVER, f"#{view.id} from ben")
    ]
    assert inbox(any_db, clock, "ana")[0].handover_id == view.id
    handovers.acknowledge_handover("ana", view.id)
    assert inbox(any_db, clock, "ana") == []


def test_an_open_action_item_waits_on_its_owner_and_turns_urgent_when_overdue(
    any_db: Database, clock: FakeClock, desk: CaseworkDesk
) -> None:
    ref = desk.open_case("sam", title="Threat", category="other", severity=2).ref
    item = desk.add_action(
        "sam", ref, "Call the reporter back", owner="ben", due_at=clock.now() + timedelta(hours=1)
    )
    [waiting] = inbox(any_db, clock, "ben")
    assert (waiting.kind, waiting.ref, waiting.urgent) == (InboxKind.ACTION_ITEM, ref, False)
    assert inbox(any_db, clock, "ana") == []
    clock.advance(hours=2)
    [late] = inbox(any_db, clock, "ben")
    assert late.urgent
    assert late.subject.endswith("(overdue)")
    desk.close_action("ben", ref, item.id)
    assert inbox(any_db, clock, "ben") == []


def test_a_report_owed_on_an_assigned_case_waits_on_the_assignee_resolved_or_not(
    any_db: Database, clock: FakeClock, desk: CaseworkDesk
) -> None:
    ref = desk.open_case("sam", title="CSEA", category="csea", severity=1).ref
    assert inbox(any_db, clock, "ben") == []  # nobody's yet
    desk.reassign("sam", ref, "ben")
    [owed] = inbox(any_db, clock, "ben")
    assert (owed.kind, owed.ref) == (InboxKind.OWED_REPORT, ref)
    desk.resolve("ben", ref)
    [still] = inbox(any_db, clock, "ben")  # resolved, the report is still owed
    assert still.kind == InboxKind.OWED_REPORT
    desk.file_report("ben", ref, report_id="CT-1")
    assert inbox(any_db, clock, "ben") == []

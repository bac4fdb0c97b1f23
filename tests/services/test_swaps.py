"""Shift swaps (request, take, approve, settings) and hand-off notices (due, never early,
claimed exactly once), on the small desk of `tests.services.test_calendar`, over Sydney's
daylight-saving start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from app.core.clock import FakeClock
from app.core.errors import BadInput, NotAllowed, NotFound, NothingToDo
from app.rules.rotations import on_call
from app.services.cases import CaseService
from app.services.oncall import load_schedule
from app.services.shiftwork.calendar import OverrideService, list_overrides
from app.services.shiftwork.swaps import (
    DEFAULT_LEAD,
    HandoffNotice,
    SwapService,
    claim_handoff_notices,
    due_handoff_notices,
    list_swaps,
    read_settings,
)
from data import audit
from data.db import Database
from data.models import AuditRecord, Responder
from data.oncall import Override
from data.swaps import HandoffNoticeLog, SwapRequest
from tests.services.test_calendar import START, build_desk, utc
from widgets.timefmt import viewer_zone


@pytest.fixture
def desk(db: Database) -> FakeClock:
    clock = FakeClock(START)
    build_desk(db, clock)
    return clock


def who_at(db: Database, schedule: str, at: datetime) -> str | None:
    with db.read() as session:
        spec = load_schedule(session, schedule)
    assert spec is not None
    shift = on_call(spec, at)
    return shift.who if shift else None


def actions(db: Database) -> list[str]:
    with db.read() as session:
        assert audit.verify(session).ok
        return list(session.exec(select(AuditRecord.action).order_by(col(AuditRecord.seq))).all())[
            1:
        ]  # the first is the team file


# Sunday 4 October (Sydney clocks just went forward): ana holds 08:00-20:00 AEDT,
# 3 Oct 21:00Z to 4 Oct 09:00Z, on both schedules.
ANA_FROM, ANA_TO = utc(4, 0), utc(4, 6)


# --- swaps -----------------------------------------------------------------------------------


def test_request_take_approve_becomes_an_override(any_db: Database) -> None:
    db, desk = any_db, FakeClock(START)
    build_desk(db, desk)
    swaps = SwapService(db, desk)
    asked = swaps.request("ana", schedule="primary", start=ANA_FROM, end=ANA_TO, note="dentist")
    assert (asked.status, asked.requester, asked.wanted, asked.taker) == ("open", "ana", None, None)
    taken = swaps.take("ben", asked.id)
    assert (taken.status, taken.taker, taken.override_id) == ("taken", "ben", None)
    assert who_at(db, "primary", utc(4, 3)) == "ana"  # nothing changes before approval
    approved = swaps.approve("sam", asked.id)
    assert (approved.status, approved.decided_by) == ("approved", "sam")
    assert approved.override_id is not None
    assert who_at(db, "primary", utc(4, 3)) == "ben"
    assert who_at(db, "backup", utc(4, 3)) == "ana"  # only the schedule asked for
    with db.read() as session:
        [override] = list_overrides(session)
    assert (override.id, override.who, override.swap_id) == (approved.override_id, "ben", asked.id)
    assert (override.start, override.end, override.created_by) == (ANA_FROM, ANA_TO, "sam")
    assert override.reason == "swap #1: ben covers ana (dentist)"
    assert actions(db) == ["swap.request", "swap.take", "override.add", "swap.approve"]


def test_a_specialist_may_not_approve(db: Database, desk: FakeClock) -> None:
    swaps = SwapService(db, desk)
    asked = swaps.request("ana", schedule="primary", start=ANA_FROM, end=ANA_TO)
    swaps.take("ben", asked.id)
    with pytest.raises(NotAllowed, match="only supervisors or admins may approve swaps"):
        swaps.approve("cat", asked.id)
    with pytest.raises(NotAllowed):
        swaps.decline("ben", asked.id)
    assert swaps.approve("ada", asked.id).status == "approved"  # an admin may


def test_request_is_only_for_your_own_shift(db: Database, desk: FakeClock) -> None:
    swaps = SwapService(db, desk)
    with pytest.raises(NotAllowed, match="ben is not on call on primary at 2026-10-04T00:00:00Z"):
        swaps.request("ben", schedule="primary", start=ANA_FROM, end=ANA_TO)
    # Partly ana's: her turn ends at 09:00Z and cat's begins.
    with pytest.raises(NotAllowed, match="at 2026-10-04T09:00:00Z"):
        swaps.request("ana", schedule="primary", start=utc(4, 8), end=utc(4, 10))
    # A gap is nobody's to give.
    with pytest.raises(NotAllowed):
        swaps.request("ana", schedule="backup", start=utc(4, 8), end=utc(4, 10))
    with db.read() as session:
        assert session.exec(select(SwapRequest)).all() == []


def test_request_input_is_checked(db: Database, desk: FakeClock) -> None:
    swaps = SwapService(db, desk)
    cases = [
        ({"start": ANA_TO, "end": ANA_FROM}, "--to"),
        ({"start": START - timedelta(hours=1), "end": ANA_TO}, "--from"),
        ({"start": ANA_FROM, "end": ANA_TO, "with_handle": "ana"}, "--with"),
    ]
    for kwargs, field in cases:
        with pytest.raises(BadInput) as caught:
            swaps.request("ana", schedule="primary", **kwargs)  # type: ignore[arg-type]
        assert caught.value.field == field
    with pytest.raises(NotFound, match="no schedule named 'nope'"):
        swaps.request("ana", schedule="nope", start=ANA_FROM, end=ANA_TO)
    with pytest.raises(NotFound, match="no active responder 'zed'"):
        swaps.request("ana", schedule="primary", start=ANA_FROM, end=ANA_TO, with_handle="zed")
    swaps.request("ana", schedule="primary", start=ANA_FROM, end=ANA_TO)
    with pytest.raises(NothingToDo, match="swap #1 already offers"):
        swaps.request("ana", schedule="primary", start=utc(4, 5), end=utc(4, 7))


def test_who_may_take(db: Database, desk: FakeClock) -> None:
    swaps = SwapService(db, desk)
    asked = swaps.request("ana", schedule="primary", start=ANA_FROM, end=ANA_TO, with_handle="cat")
    assert asked.wanted == "cat"
    with pytest.raises(NotAllowed, match="your own offer"):
        swaps.take("ana", asked.id)
    with pytest.raises(NotAllowed, match="offered to cat only"):
        swaps.take("ben", asked.id)
    swaps.take("cat", asked.id)
    with pytest.raises(NothingToDo, match="swap #1 is taken"):
        swaps.take("cat", asked.id)
    with pytest.raises(NotFound, match="no swap #9"):
        swaps.take("cat", 9)


def test_without_required_approval_a_take_is_granted_at_once(db: Database, desk: FakeClock) -> None:
    swaps = SwapService(db, desk)
    with pytest.raises(NotAllowed):
        swaps.change_settings("ana", require_approval=False)
    settings = swaps.change_settings("sam", require_approval=False)
    assert settings.require_approval is False
    with pytest.raises(NothingToDo):
        swaps.change_settings("sam", require_approval=False)
    asked = swaps.request("ana", schedule="primary", start=ANA_FROM, end=ANA_TO)
    taken = swaps.take("ben", asked.id)
    assert (taken.status, taken.decided_by) == ("approved", None)
    assert who_at(db, "primary", utc(4, 3)) == "ben"
    with db.read() as session:
        record = session.exec(
            select(AuditRecord).where(AuditRecord.action == "settings.change")
        ).one()
    assert record.detail == {"swaps.require_approval": {"from": None, "to": "false"}}
    assert actions(db) == ["settings.change", "swap.request", "swap.take", "override.add"]


def test_decline_cancel_and_list(db: Database, desk: FakeClock) -> None:
    swaps = SwapService(db, desk)
    first = swaps.request("ana", schedule="primary", start=ANA_FROM, end=ANA_TO)
    second = swaps.request("ana", schedule="backup", start=ANA_FROM, end=ANA_TO)
    with pytest.raises(NotAllowed, match="only its requester or a supervisor"):
        swaps.cancel("ben", first.id)
    assert swaps.cancel("ana", first.id).status == "cancelled"
    declined = swaps.decline("sam", second.id, "short-staffed that night")
    assert (declined.status, declined.decision_note) == ("declined", "short-staffed that night")
    with pytest.raises(NothingToDo):
        swaps.approve("sam", second.id)
    third = swaps.request("ana", schedule="primary", start=ANA_FROM, end=ANA_TO)
    with pytest.raises(NothingToDo, match="nobody has taken swap #3 yet"):
        swaps.approve("sam", third.id)
    with db.read() as session:
        assert [v.id for v in list_swaps(session)] == [third.id]
        assert [v.id for v in list_swaps(session, include_closed=True)] == [1, 2, 3]
        assert [v.id for v in list_swaps(session, status="declined")] == [second.id]


def test_approval_rechecks_the_shift_is_still_the_requesters(db: Database, desk: FakeClock) -> None:
    swaps = SwapService(db, desk)
    asked = swaps.request("ana", schedule="primary", start=ANA_FROM, end=ANA_TO)
    swaps.take("ben", asked.id)
    OverrideService(db, desk).add("sam", schedule="primary", who="cat", start=ANA_FROM, end=ANA_TO)
    with pytest.raises(NotAllowed, match="ana is not on call on primary"):
        swaps.approve("sam", asked.id)
    with db.read() as session:
        assert session.get(SwapRequest, asked.id).status == "taken"  # type: ignore[union-attr]


def test_approving_late_covers_only_what_is_left(db: Database, desk: FakeClock) -> None:
    swaps = SwapService(db, desk)
    asked = swaps.request("ana", schedule="primary", start=ANA_FROM, end=ANA_TO)
    swaps.take("ben", asked.id)
    desk.set(utc(4, 2))
    approved = swaps.approve("sam", asked.id)
    with db.read() as session:
        override = session.get(Override, approved.override_id)
    assert override is not None
    assert (override.starts_at, override.ends_at) == (utc(4, 2), ANA_TO)
    assert who_at(db, "primary", utc(4, 1)) == "ana"  # the past stays as it was
    desk.set(ANA_TO)
    again = swaps.request("ana", schedule="backup", start=utc(4, 7), end=utc(4, 8))
    swaps.take("ben", again.id)
    desk.set(utc(4, 8))
    with pytest.raises(NothingToDo, match="already over"):
        swaps.approve("sam", again.id)


def test_removing_a_swaps_override_revokes_the_swap(db: Database, desk: FakeClock) -> None:
    swaps = SwapService(db, desk)
    asked = swaps.request("ana", schedule="primary", start=ANA_FROM, end=ANA_TO)
    swaps.take("ben", asked.id)
    approved = swaps.approve("sam", asked.id)
    assert approved.override_id is not None
    OverrideService(db, desk).remove("sam", approved.override_id)
    with db.read() as session:
        [view] = list_swaps(session, include_closed=True)
        removal = session.exec(
            select(AuditRecord).where(AuditRecord.action == "override.remove")
        ).one()
    assert (view.status, view.override_id) == ("revoked", None)
    assert removal.detail["swap"] == asked.id
    assert who_at(db, "primary", utc(4, 3)) == "ana"


def test_settings_defaults_and_lead(db: Database, desk: FakeClock) -> None:
    with db.read() as session:
        settings = read_settings(session)
    assert (settings.require_approval, settings.handoff_lead) == (True, DEFAULT_LEAD)
    SwapService(db, desk).change_settings("ada", handoff_lead=timedelta(hours=1))
    with db.read() as session:
        assert read_settings(session).handoff_lead == timedelta(hours=1)


# --- hand-off notices ------------------------------------------------------------------------


def open_cases(db: Database, clock: FakeClock) -> None:
    """ESC-0001 cat's (acknowledged), ESC-0002 nobody's, ESC-0003 ben's, ESC-0004 resolved."""
    cases = CaseService(db, clock)
    for n in range(1, 5):
        cases.open_case("sam", title=f"Case {n}", category="edr", severity=2)
    cases.acknowledge("cat", "ESC-0001")
    cases.acknowledge("ben", "ESC-0003")
    cases.resolve("sam", "ESC-0004")


def brief(notices: list[HandoffNotice]) -> list[tuple[str, str, str, datetime, tuple[str, ...]]]:
    return [(n.handle, n.kind, n.schedule, n.at, n.open_case_refs) for n in notices]


def test_notices_come_at_the_lead_time_never_early_and_once(db: Database, desk: FakeClock) -> None:
    open_cases(db, desk)
    # ana goes on at Sunday 08:00 AEDT (21:00Z Saturday) on both schedules: told at 07:30.
    desk.set(utc(3, 20, 29) + timedelta(seconds=59))
    assert claim_handoff_notices(db, desk) == []
    desk.set(utc(3, 20, 30))
    notices = claim_handoff_notices(db, desk)
    assert brief(notices) == [
        # backup was in a gap: ana inherits only the unassigned case
        ("ana", "on", "backup", utc(3, 21), ("ESC-0002",)),
        # primary was cat's: ana inherits cat's case and the unassigned one, ringing first
        ("ana", "on", "primary", utc(3, 21), ("ESC-0002", "ESC-0001")),
    ]
    assert notices[1].shift_end == utc(4, 9)
    assert notices[1].open_cases == 2
    assert claim_handoff_notices(db, desk) == []
    desk.set(utc(3, 20, 59))
    assert claim_handoff_notices(db, desk) == []
    # cat goes off when ana comes on, leaving her own case.
    desk.set(utc(3, 21))
    assert brief(claim_handoff_notices(db, desk)) == [
        ("cat", "off", "primary", utc(3, 21), ("ESC-0001",)),
    ]
    assert claim_handoff_notices(db, desk) == []
    with db.read() as session:
        assert len(session.exec(select(HandoffNoticeLog)).all()) == 3


def test_notice_text_is_on_the_persons_clock(db: Database, desk: FakeClock) -> None:
    open_cases(db, desk)
    desk.set(utc(3, 20, 45))
    notice = next(n for n in claim_handoff_notices(db, desk) if n.schedule == "primary")
    assert notice.text(viewer_zone("Australia/Sydney")) == (
        "You go on call for primary at Sun 04 Oct 2026 08:00 AEDT (Sat 03 Oct 21:00 UTC) "
        "until Sun 04 Oct 2026 20:00 AEDT (09:00 UTC). "
        "You inherit 2 open cases: ESC-0002, ESC-0001."
    )
    desk.set(utc(3, 21, 5))
    [off] = claim_handoff_notices(db, desk)
    assert off.text(viewer_zone("America/New_York")).startswith(
        "Your shift on primary ended at Sat 03 Oct 2026 17:00 EDT (21:00 UTC). "
        "Still assigned to you: ESC-0001;"
    )


def test_a_stale_notice_is_dropped(db: Database, desk: FakeClock) -> None:
    """After downtime, a notice more than an hour past its moment is not delivered late."""
    desk.set(utc(3, 22, 1))
    assert claim_handoff_notices(db, desk) == []
    with db.read() as session:
        assert due_handoff_notices(session, utc(3, 22, 1)) == []
        late = due_handoff_notices(session, utc(3, 21, 59))
    assert [(n.handle, n.kind, n.schedule) for n in late] == [
        ("ana", "on", "backup"),
        ("ana", "on", "primary"),
        ("cat", "off", "primary"),
    ]


def test_the_lead_comes_from_the_setting(db: Database, desk: FakeClock) -> None:
    SwapService(db, desk).change_settings("sam", handoff_lead=timedelta(hours=2))
    desk.set(utc(3, 18, 59))
    assert claim_handoff_notices(db, desk) == []
    desk.set(utc(3, 19))
    assert {(n.handle, n.kind) for n in claim_handoff_notices(db, desk)} == {("ana", "on")}


def test_claims_by_person_leave_the_others(db: Database, desk: FakeClock) -> None:
    desk.set(utc(4, 9))  # ana goes off both schedules; cat comes on primary (told at 08:30)
    mine = claim_handoff_notices(db, desk, handles={"ana"})
    assert {(n.handle, n.kind, n.schedule) for n in mine} == {
        ("ana", "off", "primary"),
        ("ana", "off", "backup"),
    }
    assert brief(claim_handoff_notices(db, desk)) == [("cat", "on", "primary", utc(4, 9), ())]
    assert claim_handoff_notices(db, desk) == []


def test_two_claimers_share_one_log(db: Database, desk: FakeClock, sqlite_url: str) -> None:
    """Two consoles on one database: each notice goes to exactly one of them."""
    other = Database.open(sqlite_url)
    try:
        desk.set(utc(3, 20, 40))
        first = claim_handoff_notices(db, desk)
        second = claim_handoff_notices(other, desk)
    finally:
        other.dispose()
    assert len(first) == 2
    assert second == []


def test_a_long_stretch_is_told_off_once_with_its_true_start(db: Database, desk: FakeClock) -> None:
    """An override of three days on backup: its end is more than a day from its start, and
    the notice keeps the stretch's own start whatever the window it is found in."""
    OverrideService(db, desk).add(
        "sam", schedule="backup", who="sam", start=utc(5, 10), end=utc(8, 12)
    )
    for minute in (0, 20, 59):
        desk.set(utc(8, 12, minute))
        found = [n for n in claim_handoff_notices(db, desk) if n.handle == "sam"]
        if minute == 0:
            assert [(n.kind, n.shift_start, n.shift_end) for n in found] == [
                ("off", utc(5, 10), utc(8, 12))
            ]
        else:
            assert found == []


def test_inactive_people_are_not_told(db: Database, desk: FakeClock) -> None:
    with db.write() as session:
        cat = session.exec(select(Responder).where(Responder.handle == "cat")).one()
        cat.active = False
        session.add(cat)
    with db.read() as session:
        notices = due_handoff_notices(session, utc(3, 21))
    assert {(n.handle, n.kind) for n in notices} == {("ana", "on")}


def test_claims_are_exactly_once_on_each_backend(any_db: Database) -> None:
    clock = FakeClock(START)
    build_desk(any_db, clock)
    clock.set(utc(3, 20, 30))
    first = claim_handoff_notices(any_db, clock)
    assert {(n.handle, n.kind, n.schedule) for n in first} == {
        ("ana", "on", "primary"),
        ("ana", "on", "backup"),
    }
    assert claim_handoff_notices(any_db, clock) == []
    with any_db.read() as session:
        logged = session.exec(select(HandoffNoticeLog).order_by(col(HandoffNoticeLog.id))).all()
    assert [(r.handle, r.schedule, r.shift_start, r.kind) for r in logged] == [
        ("ana", "backup", utc(3, 21), "on"),
        ("ana", "primary", utc(3, 21), "on"),
    ]


def test_notices_follow_the_wall_clock_when_the_clocks_go_back(
    db: Database, desk: FakeClock
) -> None:
    """Sunday 4 April 2027: ana starts at 08:00 AEST (22:00Z), so she is told at 21:30Z."""
    desk.set(datetime(2027, 4, 3, 21, 29, tzinfo=UTC))
    assert [n for n in claim_handoff_notices(db, desk) if n.handle == "ana"] == []
    desk.set(datetime(2027, 4, 3, 21, 30, tzinfo=UTC))
    notices = claim_handoff_notices(db, desk)
    assert {(n.handle, n.kind, n.at) for n in notices} == {
        ("ana", "on", datetime(2027, 4, 3, 22, tzinfo=UTC))
    }
    assert len(notices) == 2  # primary and backup

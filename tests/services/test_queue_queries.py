"""The queue's read path: positions, counts and "paged to me", and the acknowledge key's
immediate repaint. These are the pieces the console benchmark (bench/bench_console.py)
found on its critical paths; here they are checked for being right, not fast."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert
from sqlmodel import Session
from textual.message import Message

from app.console import build_app, desk
from app.console.messages import WindowLoaded
from app.console.screens.queue import ACKING, QueueScreen
from app.core.clock import FakeClock
from app.core.errors import NotAllowed
from app.delivery.local import UNAVAILABLE, DesktopOutcome
from app.services.cases import CaseService
from app.services.presenters import queue_rows
from data import queries
from data.db import Database
from data.models import Case, Page
from data.queries import QUEUE_RANKS, QueueFilter
from tests.console_harness import settle
from tests.factories import add_open_cases, add_policy, add_responder
from widgets.queue_table import QueueTable
from widgets.views import SeekAnchor

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
STATUSES = ("triggered", "acknowledged", "resolved")
CATEGORIES = ("edr", "csea", "doxxing")


def _fill_desk(db: Database, count: int, seed: int) -> list[int]:
    """Cases in every rank, severity and category, many sharing a created_at instant
    (so the id breaks ties), some assigned; returns the responder ids."""
    people = [add_responder(db, handle) for handle in ("ana", "ben")]
    chooser = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for number in range(1, count + 1):
        status = chooser.choice(STATUSES)
        created = NOW - timedelta(minutes=chooser.randrange(6))
        rows.append(
            {
                "ref": f"ESC-{number:04d}",
                "title": chooser.choice(("Court order", "Threat posted", "Doxxing thread")),
                "category": chooser.choice(CATEGORIES),
                "severity": chooser.randrange(1, 5),
                "status": status,
                "queue_rank": QUEUE_RANKS[status],
                "assignee_id": chooser.choice([None, *people]),
                "created_at": created,
                "updated_at": created,
                "policy_snapshot": {},
            }
        )
    with db.write() as session:
        session.execute(insert(Case), rows)
    return people


FILTERS = (
    QueueFilter(),
    QueueFilter(include_resolved=True),
    QueueFilter(severities=frozenset({1, 3})),
    QueueFilter(categories=frozenset({"csea"}), include_resolved=True),
    QueueFilter(unassigned=True),
    QueueFilter(search="court"),
    QueueFilter(sort="severity"),
    QueueFilter(sort="age", include_resolved=True),
    QueueFilter(sort="status", severities=frozenset({2, 4})),
)
FILTER_NAMES = (
    "open",
    "with-resolved",
    "sev1-and-3",
    "csea-with-resolved",
    "unassigned",
    "search",
    "by-severity",
    "by-age-with-resolved",
    "by-status-sev2-and-4",
)


@pytest.mark.parametrize("flt", FILTERS, ids=FILTER_NAMES)
def test_every_case_is_placed_where_the_window_shows_it(db: Database, flt: QueueFilter) -> None:
    """Position and count agree with the ordered window for every case, shown or hidden,
    whatever the filter: the position is counted in ranges, the window sorted whole."""
    _fill_desk(db, 120, seed=len(repr(flt)))
    with db.read() as session:
        window = queries.queue_window(session, flt, 0, 1000)
        assert queries.queue_count(session, flt) == len(window)
        where = {case.id: index for index, case in enumerate(window)}
        for case in queries.cases(session):
            assert queries.queue_position(session, flt, case) == where.get(case.id)


def test_paged_to_me_counts_only_my_unacknowledged_pages(db: Database) -> None:
    ana, ben = _fill_desk(db, 8, seed=1)
    with db.read() as session:
        cases = queries.queue_window(session, QueueFilter(include_resolved=True), 0, 8)
    ids = [case.id for case in cases if case.id is not None]
    pages = [  # (case, responder, acknowledged)
        (ids[0], ana, False),
        (ids[1], ana, True),
        (ids[2], ben, False),
        (ids[3], ana, False),
        (ids[3], ben, False),
    ]
    with db.write() as session:
        for case_id, responder, acknowledged in pages:
            session.add(
                Page(
                    case_id=case_id,
                    responder_id=responder,
                    step=1 + (responder == ben),
                    round=0,
                    due_at=NOW,
                    sent_at=NOW,
                    acknowledged_at=NOW if acknowledged else None,
                )
            )
    with db.read() as session:
        assert queries.paged_unacknowledged(session, ana, ids) == {ids[0], ids[3]}
        assert queries.paged_unacknowledged(session, ana, ids[1:3]) == set()
        assert queries.paged_unacknowledged(session, ana, []) == set()
        rows = {row.case_id: row for row in queue_rows(session, cases, ana)}
    for case in cases:
        assert case.id is not None
        mine = case.id in (ids[0], ids[3]) and case.status == "triggered"
        assert rows[case.id].paged_to_me is mine


def test_mine_is_what_is_assigned_to_me_or_was_ever_paged_to_me(any_db: Database) -> None:
    """`mine` holds my cases and every case that paged me (acknowledged or not), and its
    count and positions agree with its window, however the two overlap."""
    ana, ben = _fill_desk(any_db, 120, seed=7)
    with any_db.read() as session:
        every = queries.cases(session)
    chooser = random.Random(7)
    paged = {case.id for case in every if chooser.random() < 0.3}
    with any_db.write() as session:
        for number, case_id in enumerate(sorted(i for i in paged if i is not None)):
            for responder in (ana, ben) if number % 3 == 0 else (ana,):
                session.add(
                    Page(
                        case_id=case_id,
                        responder_id=responder,
                        step=1,
                        round=0,
                        due_at=NOW,
                        sent_at=NOW,
                        acknowledged_at=NOW if number % 2 else None,
                    )
                )
        # A page to someone else alone does not make a case mine.
        others = next(c.id for c in every if c.id not in paged and c.assignee_id != ana)
        session.add(
            Page(case_id=others, responder_id=ben, step=1, round=0, due_at=NOW, sent_at=NOW)
        )
    for include_resolved in (False, True):
        flt = QueueFilter(mine=True, me=ana, include_resolved=include_resolved)
        expected = {
            case.id
            for case in every
            if (case.assignee_id == ana or case.id in paged)
            and (include_resolved or case.status != "resolved")
        }
        with any_db.read() as session:
            window = queries.queue_window(session, flt, 0, 1000)
            assert {case.id for case in window} == expected
            assert queries.queue_count(session, flt) == len(expected)
            where = {case.id: index for index, case in enumerate(window)}
            for case in every:
                assert queries.queue_position(session, flt, case) == where.get(case.id)


@pytest.mark.parametrize("flt", FILTERS, ids=FILTER_NAMES)
def test_a_window_sought_from_any_place_is_the_window_counted_from_the_top(
    any_db: Database, flt: QueueFilter
) -> None:
    """Seeking after or before any row (or from either end), stepping over any number of
    rows, gives exactly the rows that counting from the top gives, ties on created_at
    included; and the console's window reads agree, from every kind of anchor."""
    _fill_desk(any_db, 90, seed=len(repr(flt)) + 1)
    profile = desk.Profile(0, "ana", "Ana", "specialist", "UTC")
    with any_db.read() as session:
        whole = queries.queue_window(session, flt, 0, 1000)
        keys = [queries.queue_key(case, flt.sort) for case in whole]
        ids = [case.id for case in whole]
        total = len(whole)
        chooser = random.Random(3)
        for _ in range(12):
            at, skip = chooser.randrange(total), chooser.randrange(6)
            limit = chooser.randrange(1, 9)
            after = queries.queue_after(session, flt, keys[at], limit, skip)
            assert [c.id for c in after] == ids[at + 1 + skip : at + 1 + skip + limit]
            before = queries.queue_before(session, flt, keys[at], limit, skip)
            assert [c.id for c in before] == ids[max(0, at - skip - limit) : max(0, at - skip)]
        assert [c.id for c in queries.queue_after(session, flt, None, 5, 7)] == ids[7:12]
        assert [c.id for c in queries.queue_before(session, flt, None, 5, 7)] == ids[
            max(0, total - 12) : max(0, total - 7)
        ]
    for offset in (0, 1, total // 2, max(0, total - 5)):
        wanted = ids[offset : offset + 5]
        anchors = [SeekAnchor(-1), SeekAnchor(total)]
        if offset > 0:
            anchors.append(SeekAnchor(offset - 1, keys[offset - 1]))
        if offset + 5 < total:
            anchors.append(SeekAnchor(offset + 5, keys[offset + 5]))
        for anchor in anchors:
            window = desk.read_window(any_db, profile, flt, offset, 5, anchor=anchor)
            assert (window.offset, [row.case_id for row in window.rows]) == (offset, wanted)
            assert window.total is None  # a window the table asked for is not counted
        counted = desk.read_window(any_db, profile, flt, offset, 5)
        assert (counted.total, counted.offset) == (total, offset)
        assert [row.case_id for row in counted.rows] == wanted
        if wanted:  # a followed case keeps its window, read around the case itself
            followed = desk.read_window(any_db, profile, flt, offset, 5, follow_case=wanted[-1])
            assert [row.case_id for row in followed.rows] == wanted


def _plans(
    db: Database, run: Callable[[Session], object], *, as_if_large: bool = False
) -> list[str]:
    """The database's plan of each statement `run` sends (SQLite's EXPLAIN QUERY PLAN,
    PostgreSQL's EXPLAIN), one text per statement. `as_if_large`: PostgreSQL weighs
    reading and sorting the whole table as on a table far larger than a test's (where it
    is cheaper than any index); a sort still shows when no index gives the order."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.read() as session:
            run(session)
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    explain = "EXPLAIN " if db.is_postgres else "EXPLAIN QUERY PLAN "
    plans = []
    with db.engine.connect() as connection:
        if as_if_large and db.is_postgres:
            for plan_kind in ("seqscan", "bitmapscan", "sort"):
                connection.exec_driver_sql(f"SET enable_{plan_kind} = off")
        for statement, parameters in sent:
            rows = connection.exec_driver_sql(explain + statement, parameters).all()
            plans.append("\n".join(str(row[-1]) for row in rows))
    return plans


@pytest.mark.parametrize(
    ("sort", "index", "pg_row", "sqlite_columns"),
    [
        ("queue", "ix_case_queue", "ROW(queue_rank, severity, created_at, id) ", "(queue_rank,"),
        (
            "severity",
            "ix_case_open_by_severity",
            "ROW(severity, queue_rank, created_at, id) ",
            "(severity",
        ),
        ("age", "ix_case_open_by_age", "ROW(created_at, id) ", "(created_at"),
        ("status", "ix_case_by_status", "ROW(queue_rank, created_at, id) ", "(queue_rank"),
    ],
)
def test_a_deep_window_is_a_seek_in_the_index_of_its_order(
    any_db: Database, sort: str, index: str, pg_row: str, sqlite_columns: str
) -> None:
    """A window after or before a row starts where the order's index says (a range of
    `ix_case_queue`, or of the chosen order's own index, bounded by the row's key), in the
    index's order: no sort, and no stepping over the rows before it, so a deep window
    costs what the first costs whatever the order."""
    _fill_desk(any_db, 300, seed=5)
    flt = QueueFilter(sort=sort)
    with any_db.read() as session:
        middle = queries.queue_window(session, flt, 150, 1)[0]
    key = queries.queue_key(middle, sort)
    with any_db.engine.connect() as connection:
        if any_db.is_postgres:  # a small table: make the planner judge as on a large one
            connection.exec_driver_sql('ANALYZE "case"')
            connection.commit()
    for forward in (True, False):
        seek = queries.queue_after if forward else queries.queue_before
        plans = _plans(
            any_db,
            lambda session, seek=seek: seek(session, flt, key, 20),
            as_if_large=sort != "queue",
        )
        assert len(plans) == 1
        plan = plans[0]
        assert index in plan, plan
        if any_db.is_postgres:
            assert re.search(rf"Index Cond: \(+{re.escape(pg_row)}", plan), plan
            assert "Sort" not in plan, plan
        else:
            assert sqlite_columns in plan, plan
            assert "TEMP B-TREE" not in plan, plan


@pytest.mark.parametrize("sort", ["age", "severity"])
def test_the_open_queue_by_age_or_severity_reads_no_resolved_case(
    any_db: Database, sort: str
) -> None:
    """Resolved cases are most of a desk's history and the oldest: the open queue ordered
    by age (or by severity) reads a partial index of the open cases alone, so its first
    window does not step over every resolved case before the first open one."""
    _fill_desk(any_db, 120, seed=11)
    with any_db.engine.connect() as connection:
        if any_db.is_postgres:
            connection.exec_driver_sql('ANALYZE "case"')
            connection.commit()
    flt = QueueFilter(sort=sort)
    [plan] = _plans(
        any_db, lambda session: queries.queue_window(session, flt, 0, 20), as_if_large=True
    )
    assert f"ix_case_open_by_{sort}" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
    assert "Sort" not in plan, plan


def test_the_command_lines_open_cases_and_their_count_read_no_resolved_case(
    db: Database,
) -> None:
    """`vigil cases` lists the first open cases and counts the rest: both seek the open
    ranks in the queue's index (snoozed ones too), never read past the resolved history."""
    _fill_desk(db, 120, seed=13)

    def first_page_and_count(session: Session) -> None:
        queries.cases(session, limit=50, open_only=True)
        queries.count_cases(session, open_only=True)

    plans = _plans(db, first_page_and_count)
    assert len(plans) == 2
    for plan in plans:
        assert "SEARCH" in plan, plan
        assert "SCAN" not in plan, plan
        assert "TEMP B-TREE" not in plan, plan


# --------------------------------------------------------------------------- the ack key


@dataclass
class QuietDesktop:
    def notify(self, title: str, message: str) -> DesktopOutcome:
        return DesktopOutcome(UNAVAILABLE, "no desktop in tests")


@pytest.fixture
def service(db: Database, clock: FakeClock) -> CaseService:
    add_responder(db, "ana")
    add_policy(db, "standard", [(600, ["user:ana"])], route=["default"])
    service = CaseService(db, clock)
    for title in ("First", "Second"):
        service.open_case("ana", title=title, category="edr", severity=1)
    return service


def _console(db: Database, clock: FakeClock, tmp_path: Path) -> Any:
    app = build_app(
        db,
        clock,
        "ana",
        engine=False,
        desktop=QuietDesktop(),
        settings_file=tmp_path / "none.toml",
        cursor_blink=False,
    )
    assert app is not None
    return app


async def test_the_ack_key_repaints_its_row_before_the_write_is_done(
    db: Database,
    clock: FakeClock,
    service: CaseService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    released = threading.Event()
    acknowledge = CaseService.acknowledge

    def slow_acknowledge(self: CaseService, actor: str, ref: str) -> Case:
        released.wait(10)
        return acknowledge(self, actor, ref)

    monkeypatch.setattr(CaseService, "acknowledge", slow_acknowledge)
    app = _console(db, clock, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, QueueScreen)
        top = screen.table.cursor_row
        assert top is not None
        assert top.status == "triggered"
        await pilot.press("a")
        shown = screen.table.cursor_row
        assert shown is not None
        assert (shown.case_id, shown.status) == (top.case_id, ACKING)
        released.set()
        await settle(app, pilot)
        stored = screen.table.row_at(1)  # acknowledged cases sort after triggered ones
        assert stored is not None
        assert (stored.case_id, stored.status) == (top.case_id, "acknowledged")
        assert screen.table.cursor_row == stored


async def test_the_poll_waits_for_an_action_under_way_then_reads(
    db: Database,
    clock: FakeClock,
    service: CaseService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While this console's acknowledgement is being stored, the feed's poll does not race
    it for the database (the news is most likely that action); it reads once the action's
    row is shown, and so still hears of everything."""
    released = threading.Event()
    acknowledge = CaseService.acknowledge

    def slow_acknowledge(self: CaseService, actor: str, ref: str) -> Case:
        released.wait(10)
        return acknowledge(self, actor, ref)

    monkeypatch.setattr(CaseService, "acknowledge", slow_acknowledge)
    feeds: list[int] = []
    read_feed = desk.read_feed

    def counted_feed(*args: Any, **kwargs: Any) -> Any:
        feeds.append(1)
        return read_feed(*args, **kwargs)

    monkeypatch.setattr(desk, "read_feed", counted_feed)
    app = _console(db, clock, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, QueueScreen)
        await pilot.press("a")
        await pilot.pause()
        feeds.clear()
        screen.check_feed()
        await pilot.pause()
        assert feeds == []
        released.set()
        for _ in range(50):  # a busy machine may need more than one round of workers
            await settle(app, pilot)
            with db.read() as session:
                latest = queries.latest_change_id(session)
            if feeds and screen.last_change_id == latest:
                break
        assert feeds  # read once the action was shown
        assert screen.last_change_id == latest


async def test_a_refused_ack_puts_the_row_back(
    db: Database,
    clock: FakeClock,
    service: CaseService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: CaseService, actor: str, ref: str) -> Case:
        raise NotAllowed(f"{ref} may not be acknowledged here")

    monkeypatch.setattr(CaseService, "acknowledge", refuse)
    app = _console(db, clock, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, QueueScreen)
        await pilot.press("a")
        await settle(app, pilot)
        row = screen.table.cursor_row
        assert row is not None
        assert row.status == "triggered"


async def test_an_acknowledged_case_is_followed_in_one_read(
    db: Database,
    clock: FakeClock,
    service: CaseService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The case moves far down the queue and the cursor follows it: the rows read in the
    action's own thread, right after the acknowledgement, cover the whole screen there,
    so no second read (no reload, no request from the table) and no count is needed."""
    add_open_cases(db, 100, policy="standard", at=clock.now() - timedelta(hours=1))
    with db.write() as session:
        session.execute(
            insert(Case),
            [
                {
                    "ref": f"ACK-{number:04d}",
                    "title": f"Already acknowledged {number}",
                    "category": "edr",
                    "severity": 2,  # after every acknowledged sev1, as the moved case is
                    "status": "acknowledged",
                    "queue_rank": QUEUE_RANKS["acknowledged"],
                    "created_at": clock.now(),
                    "updated_at": clock.now(),
                    "policy_snapshot": {},
                }
                for number in range(100)
            ],
        )
    asked: list[QueueTable.WindowNeeded] = []
    reloaded: list[WindowLoaded] = []

    def hook(message: Message) -> None:
        if isinstance(message, QueueTable.WindowNeeded):
            asked.append(message)
        if isinstance(message, WindowLoaded):
            reloaded.append(message)

    # The action's own read does not count the queue (the screen knows the case was in it).
    in_action = threading.local()
    counted_in_action: list[QueueFilter] = []
    real_count, real_after = queries.queue_count, desk.read_after_action

    def count(session: Session, flt: QueueFilter) -> int:
        if getattr(in_action, "on", False):
            counted_in_action.append(flt)
        return real_count(session, flt)

    def after_action(*args: Any, **kwargs: Any) -> desk.Window:
        in_action.on = True
        try:
            return real_after(*args, **kwargs)
        finally:
            in_action.on = False

    monkeypatch.setattr(queries, "queue_count", count)
    monkeypatch.setattr(desk, "read_after_action", after_action)

    app = _console(db, clock, tmp_path)
    async with app.run_test(size=(160, 48), message_hook=hook) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(QueueTable)
        top = table.cursor_row
        assert top is not None
        asked.clear()
        reloaded.clear()
        await pilot.press("a")
        await settle(app, pilot)
        row = table.cursor_row
        assert row is not None
        assert (row.case_id, row.status) == (top.case_id, "acknowledged")
        assert table.cursor_index == 101  # behind the other 101 triggered cases
        top_line = table.scroll_offset.y
        shown = range(top_line, top_line + table.scrollable_content_region.height - 1)
        assert all(table.row_at(index) is not None for index in shown)
        assert asked == []
        assert reloaded == []
        assert counted_in_action == []
        assert table.total == 202

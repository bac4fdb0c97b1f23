"""WAL checkpoints off the commit path (`data.wal`): while they run in the background, no
commit of this process copies the log into the database file; the thread does, and when
they stop, connections checkpoint as they commit again."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from app.core.clock import FakeClock
from data.db import Database, make_engine
from data.wal import AUTOMATIC_PAGES, BackgroundCheckpoints
from tests.factories import wait_until, wal_automatic_pages

FILLER_COMMITS = 60
FILLER_BYTES = 100_000
"""60 commits of 100 KB: some 1,500 pages of 4 KB, past SQLite's automatic 1,000."""


def database_file(db: Database) -> Path:
    assert db.engine.url.database is not None
    return Path(db.engine.url.database)


def fill(db: Database) -> None:
    """Many commits, as a storm of alerts makes, each writing more pages to the log."""
    with db.write() as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS filler (b BLOB)"))
    for _ in range(FILLER_COMMITS):
        with db.write() as session:
            session.execute(text("INSERT INTO filler VALUES (randomblob(:n))"), {"n": FILLER_BYTES})


def test_commits_leave_the_log_to_the_background_checkpoint(db: Database, clock: FakeClock) -> None:
    with BackgroundCheckpoints(db, clock, every=3600) as checkpoints:  # its thread stays idle here
        assert wal_automatic_pages(db) == 0
        before = database_file(db).stat().st_size  # (closing every connection checkpoints)
        fill(db)
        assert database_file(db).stat().st_size == before, "a commit checkpointed"
        result = checkpoints.checkpoint()
        assert result is not None
        pages, copied = result
        assert pages > AUTOMATIC_PAGES
        assert copied == pages
        assert database_file(db).stat().st_size >= before + FILLER_COMMITS * FILLER_BYTES
    assert wal_automatic_pages(db) == AUTOMATIC_PAGES


def test_without_them_a_commit_checkpoints(db: Database) -> None:
    """What the background checkpoints move: the commit that takes the log past 1,000
    pages copies it into the database file itself."""
    before = database_file(db).stat().st_size
    fill(db)
    assert database_file(db).stat().st_size > before


def test_the_thread_checkpoints_as_the_writes_go_on(db: Database, clock: FakeClock) -> None:
    with BackgroundCheckpoints(db, clock, every=0.01):
        before = database_file(db).stat().st_size
        fill(db)
        wait_until(
            lambda: database_file(db).stat().st_size >= before + FILLER_COMMITS * FILLER_BYTES,
            "the log copied into the database file",
            timedelta(seconds=10),
        )


@pytest.mark.parametrize(("every", "again"), [(1.0, "every second"), (30.0, "every 30 s")])
def test_a_failing_checkpoint_is_said_once_and_its_end_once(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture, every: float, again: str
) -> None:
    caplog.set_level(logging.INFO, logger="vigil.db")
    path = tmp_path / "gone.db"
    db = Database(make_engine(f"sqlite:///{path}"))
    checkpoints = BackgroundCheckpoints(db, clock, every=every)
    path.unlink()
    path.mkdir()  # where the file was, a folder: it cannot be opened
    assert checkpoints.checkpoint() is None
    clock.advance(timedelta(seconds=1))
    assert checkpoints.checkpoint() is None
    clock.advance(timedelta(seconds=1))
    path.rmdir()
    assert checkpoints.checkpoint() == (0, 0)
    db.dispose()
    said = [record.getMessage() for record in caplog.records]
    assert said == [
        "WAL checkpoints: the database did not answer (unable to open database file); "
        f"trying again {again}",
        "WAL checkpoints: working again after 2 s (2 failed attempts)",
    ]


def test_a_database_in_memory_is_left_alone(clock: FakeClock) -> None:
    """Remaking the pool would drop it: it has no log to checkpoint anyway."""
    db = Database.open("sqlite://")
    with BackgroundCheckpoints(db, clock) as checkpoints:
        assert checkpoints.checkpoint() is not None
        with db.read() as session:
            assert session.execute(text('SELECT count(*) FROM "case"')).scalar_one() == 0
    db.dispose()

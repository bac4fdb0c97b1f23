"""`vigil intake` in a real process, stopped by SIGTERM or killed with `kill -9` mid-batch:
what it printed is what it stored, every stored case has its step-1 page, and the same
input given again resumes without storing any event twice."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from data.db import Database
from data.escalation import StepRun
from data.intake import InputEvent
from data.models import Case
from tests.consistency import assert_consistent
from tests.factories import add_policy, add_responder, pages_by_case, spawn_python, wait_until

WAIT = timedelta(seconds=120)
"""Generous: the machine may be busy, and a run starts by importing the whole app."""
WHOLE_RUN = timedelta(minutes=30)
"""For a run to go through thousands of events on a busy machine (about 45 a second on
an idle 2-core one; a fifth of that while the cores are shared five ways)."""


@pytest.fixture
def desk(db: Database) -> Database:
    add_responder(db, "intake", "supervisor")
    add_responder(db, "ben")
    add_policy(db, "standard", [(300, ["user:ben"]), (600, ["role:supervisor"])], route=["default"])
    return db


def _events(path: Path, count: int) -> Path:
    """`count` events alike in every word: each is its own case all the same."""
    event = json.dumps({"title": "Report of a child at risk", "category": "other", "severity": 2})
    path.write_text((event + "\n") * count)
    return path


@dataclass
class IntakeRun:
    """`vigil intake FILE --json` in its own process, its lines read as they come."""

    process: subprocess.Popen[str]
    lines: list[dict[str, Any]] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def start(cls, url: str, path: Path) -> IntakeRun:
        process = spawn_python(
            "-m", "app.main", "intake", str(path), "--json", "--db", url, "--as", "intake"
        )
        run = cls(process)
        run.readers = [
            threading.Thread(target=run._read_out, daemon=True),
            threading.Thread(target=run._read_err, daemon=True),
        ]
        for reader in run.readers:
            reader.start()
        return run

    def _read_out(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.endswith("\n"):  # a line cut by kill -9 was never said
                self.lines.append(json.loads(line))

    def _read_err(self) -> None:
        assert self.process.stderr is not None
        self.err.extend(self.process.stderr)

    @property
    def stored_now(self) -> int:
        """Events this run stored and said."""
        return sum(1 for line in self.lines if "position" in line and not line["earlier"])

    def finish(self, within: timedelta = WAIT) -> int:
        """Its exit code, once every line it wrote has been read."""
        code = self.process.wait(timeout=within.total_seconds())
        for reader in self.readers:
            reader.join(WAIT.total_seconds())
        return code

    def events(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if "position" in line]


def _said_at_least(run: IntakeRun, count: int) -> Callable[[], bool]:
    return lambda: run.stored_now >= count


def _number(position: str) -> int:
    """`line 7` is event number 6."""
    word, number = position.split()
    assert word == "line"
    return int(number) - 1


def _stored(db: Database) -> dict[int, tuple[str | None, list[str]]]:
    """Every event stored so far, by number: its case and who was paged."""
    with db.read() as session:
        rows = session.exec(select(InputEvent).order_by(col(InputEvent.number))).all()
        return {row.number: (row.ref, list(row.paged)) for row in rows}


def _assert_every_case_paged_and_said(db: Database, said: dict[int, tuple[str, list[str]]]) -> None:
    """Each stored case has its step-1 page and claim; each said event is stored as said; at
    most one stored event was not said (the one whose commit beat the kill to the print)."""
    stored = _stored(db)
    pages = pages_by_case(db)
    with db.read() as session:
        refs = set(session.exec(select(Case.ref)).all())
        claimed = set(
            session.exec(
                select(Case.ref)
                .join(StepRun, col(StepRun.case_id) == col(Case.id))
                .where(StepRun.step == 1, StepRun.cycle == 0, StepRun.round == 0)
            ).all()
        )
    assert refs == {ref for ref, _ in stored.values()}, "a case without its event's progress"
    assert claimed == refs, "a stored case without its step-1 claim"
    for ref in refs:
        assert pages[ref] == [("ben", 0, 1, 0)], f"{ref} not paged exactly once at step 1"
    for number, result in said.items():
        assert stored.get(number) == result, f"event {number + 1} said {result}"
    unsaid = sorted(set(stored) - set(said))
    assert len(unsaid) <= 1, f"stored but never said: {unsaid}"
    assert sorted(stored) == list(range(len(stored))), "events stored out of order"


def test_sigterm_stops_after_the_event_under_way_and_the_same_input_resumes(
    desk: Database, sqlite_url: str, tmp_path: Path
) -> None:
    path = _events(tmp_path / "events.jsonl", 150)
    first = IntakeRun.start(sqlite_url, path)
    wait_until(lambda: first.stored_now >= 5, "five events said", WAIT)
    first.process.send_signal(signal.SIGTERM)
    assert first.finish() == 143
    said = {_number(line["position"]): (line["ref"], line["paged"]) for line in first.events()}
    summary = first.lines[-1]
    assert summary["batch"]["stopped"] is True
    count = summary["batch"]["handled"]
    assert count == len(said) < 150
    assert f"stopped by SIGTERM after {count} of 150 events" in "".join(first.err)
    assert _stored(desk) == said  # a clean stop says everything it stored

    second = IntakeRun.start(sqlite_url, path)
    assert second.finish(WHOLE_RUN) == 0
    assert "resuming an earlier run of this input" in "".join(second.err)
    events = second.events()
    assert [line["earlier"] for line in events] == [True] * count + [False] * (150 - count)
    assert {_number(e["position"]): (e["ref"], e["paged"]) for e in events[:count]} == said
    _assert_every_case_paged_and_said(
        desk, {_number(e["position"]): (e["ref"], e["paged"]) for e in events}
    )
    assert len({e["ref"] for e in events}) == 150
    assert_consistent(desk)


@pytest.mark.slow
def test_kill_9_of_an_intake_of_5000_events_at_random_moments(
    desk: Database, sqlite_url: str, tmp_path: Path
) -> None:
    """Five kills at random moments, then a run to the end: every stored case is paged,
    what each run printed is what it stored, and no event is stored twice."""
    total = 5000
    path = _events(tmp_path / "events.jsonl", total)
    pick = random.Random(13)
    said: dict[int, tuple[str, list[str]]] = {}
    for _ in range(5):
        run = IntakeRun.start(sqlite_url, path)
        before = len(_stored(desk))
        wait_until(_said_at_least(run, pick.randint(1, 400)), "events said", WAIT)
        threading.Event().wait(pick.uniform(0, 0.05))  # land anywhere within an event
        os.kill(run.process.pid, signal.SIGKILL)
        assert run.finish() == -signal.SIGKILL
        stored = _stored(desk)  # read once: nothing writes after the kill
        for line in run.events():
            result = (line["ref"], line["paged"])
            number = _number(line["position"])
            if line["earlier"]:
                # Said again as stored earlier: an event an earlier kill left unsaid is
                # said now, so the caller no longer lacks it.
                assert stored[number] == result
                said.setdefault(number, result)
            else:
                assert number not in said, f"event {number + 1} stored twice"
                said[number] = result
        _assert_every_case_paged_and_said(desk, said)
        assert len(_stored(desk)) > before

    stored_before = _stored(desk)
    last = IntakeRun.start(sqlite_url, path)
    assert last.finish(WHOLE_RUN) == 0
    events = last.events()
    assert len(events) == total
    earlier = {_number(e["position"]): (e["ref"], e["paged"]) for e in events if e["earlier"]}
    assert earlier == stored_before  # said again as stored, said or not before the kill
    _assert_every_case_paged_and_said(
        desk, {_number(e["position"]): (e["ref"], e["paged"]) for e in events}
    )
    assert len({line["ref"] for line in events}) == total  # 5,000 alike, 5,000 cases
    assert last.lines[-1]["batch"]["earlier"] == len(stored_before)
    assert_consistent(desk)

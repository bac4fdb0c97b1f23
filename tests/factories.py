"""Small builders for test desks, written straight to the tables."""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from app.core.clock import Clock
from app.services.cases import CaseService
from app.services.casework.service import CaseworkService
from app.services.shiftwork.handover import HandoverService
from app.services.shiftwork.postmortem import PostMortemService
from data.db import Database
from data.models import ContactMethod, Policy, PolicyStep, Responder, Routing

if TYPE_CHECKING:
    from sqlmodel import Session

REPO = Path(__file__).resolve().parent.parent


FOLLOW_THE_SUN_PEOPLE = """
[[responder]]
handle = "ana"
name = "Ana Ruiz"
role = "specialist"
timezone = "Australia/Sydney"
contacts = [{ kind = "console" }]

[[responder]]
handle = "ben"
name = "Ben Carter"
role = "specialist"
timezone = "Australia/Sydney"
contacts = [{ kind = "console" }]

[[responder]]
handle = "cat"
name = "Cat Moss"
role = "specialist"
timezone = "America/New_York"
contacts = [{ kind = "console" }]

[[responder]]
handle = "sam"
name = "Sam Okoye"
role = "supervisor"
timezone = "America/New_York"
contacts = [{ kind = "console" }]
"""
"""Two Sydney specialists, a New York specialist and a New York supervisor, as team-file
responders (a test desk adds its own rotations and schedules)."""


def add_responder(
    db: Database,
    handle: str,
    role: str = "specialist",
    *,
    timezone: str = "Australia/Sydney",
    contacts: Sequence[str] = ("console",),
    active: bool = True,
) -> int:
    with db.write() as session:
        responder = Responder(
            handle=handle, name=handle.title(), role=role, timezone=timezone, active=active
        )
        session.add(responder)
        session.flush()
        assert responder.id is not None
        for position, kind in enumerate(contacts):
            session.add(ContactMethod(responder_id=responder.id, position=position, kind=kind))
        return responder.id


def add_policy(
    db: Database,
    name: str,
    steps: Sequence[tuple[int, Sequence[str]]],
    *,
    repeat: int = 0,
    route: Sequence[str] = (),
    ack_timeout_seconds: int | None = None,
    require_all: Sequence[int] = (),
) -> int:
    """`steps` are (delay seconds, targets); `require_all` lists 1-based multi-ack steps."""
    with db.write() as session:
        policy = Policy(name=name, repeat=repeat, ack_timeout_seconds=ack_timeout_seconds)
        session.add(policy)
        session.flush()
        assert policy.id is not None
        for position, (delay, targets) in enumerate(steps, start=1):
            session.add(
                PolicyStep(
                    policy_id=policy.id,
                    position=position,
                    delay_seconds=delay,
                    targets=list(targets),
                    require_all=position in require_all,
                )
            )
        for category in route:
            session.add(Routing(category=category, policy_id=policy.id))
        return policy.id


def add_rotation(
    db: Database,
    name: str,
    members: Sequence[str],
    *,
    timezone: str = "UTC",
    shift: str = "1d",
    handoff: str = "08:00",
    start: date = date(2026, 11, 1),
    days: str | None = None,
    hours: str | None = None,
) -> int:
    """A rotation of existing responders, stored as the team file would store it."""
    from sqlmodel import select

    from data.oncall import Rotation, RotationMember

    with db.write() as session:
        rotation = Rotation(
            name=name,
            timezone=timezone,
            shift=shift,
            handoff=handoff,
            start=start,
            days=days,
            hours=hours,
        )
        session.add(rotation)
        session.flush()
        assert rotation.id is not None
        for position, handle in enumerate(members):
            member = session.exec(select(Responder).where(Responder.handle == handle)).one()
            assert member.id is not None
            session.add(
                RotationMember(rotation_id=rotation.id, position=position, responder_id=member.id)
            )
        return rotation.id


def add_schedule(
    db: Database,
    name: str,
    layers: Sequence[str],
    *,
    overrides: Sequence[tuple[str, datetime, datetime]] = (),
    holiday_region: str | None = None,
    holiday_cover: str | None = None,
    timezone: str | None = None,
) -> int:
    """A schedule over existing rotations; `overrides` are (handle, from, to)."""
    from sqlmodel import select

    from data.oncall import Override, Rotation, Schedule, ScheduleLayer

    with db.write() as session:

        def responder_id(handle: str) -> int:
            found = session.exec(select(Responder).where(Responder.handle == handle)).one()
            assert found.id is not None
            return found.id

        schedule = Schedule(
            name=name,
            timezone=timezone,
            holiday_region=holiday_region,
            holiday_cover_id=responder_id(holiday_cover) if holiday_cover else None,
        )
        session.add(schedule)
        session.flush()
        assert schedule.id is not None
        for position, layer in enumerate(layers):
            rotation = session.exec(select(Rotation).where(Rotation.name == layer)).one()
            assert rotation.id is not None
            session.add(
                ScheduleLayer(schedule_id=schedule.id, position=position, rotation_id=rotation.id)
            )
        for handle, starts_at, ends_at in overrides:
            session.add(
                Override(
                    schedule_id=schedule.id,
                    responder_id=responder_id(handle),
                    starts_at=starts_at,
                    ends_at=ends_at,
                )
            )
        return schedule.id


def snapshot_policy(session: Session, policy: Policy) -> dict[str, Any]:
    """What a case opened on `policy` freezes of it, read row by row: the policy, then its
    steps by position (the case service routes and reads it in one statement; this is the
    plain reading its tests hold it to)."""
    from sqlmodel import col, select

    from app.services.policies import frozen_policy

    steps = session.exec(
        select(PolicyStep)
        .where(PolicyStep.policy_id == policy.id)
        .order_by(col(PolicyStep.position))
    ).all()
    return frozen_policy(
        policy.name,
        policy.repeat,
        policy.ack_timeout_seconds,
        policy.high_urgency,
        [(step.delay_seconds, step.targets, step.require_all) for step in steps],
    )


def add_open_cases(
    db: Database, count: int, *, policy: str, at: datetime, category: str = "edr"
) -> None:
    """`count` triggered cases on `policy`, their first step due at `at`, in one statement.

    For load tests: the rows the case service would write, without its per-case work.
    """
    from sqlalchemy import insert
    from sqlmodel import func, select

    from data.models import Case

    with db.write() as session:
        chosen = session.exec(select(Policy).where(Policy.name == policy)).one()
        snapshot = snapshot_policy(session, chosen)
        first = (session.exec(select(func.max(Case.id))).one() or 0) + 1
        session.execute(
            insert(Case),
            [
                {
                    "ref": f"ESC-{number:04d}",
                    "title": f"Load case {number}",
                    "category": category,
                    "severity": 1,
                    "status": "triggered",
                    "policy_id": chosen.id,
                    "policy_snapshot": snapshot,
                    "created_at": at,
                    "updated_at": at,
                    "next_escalation_at": at,
                }
                for number in range(first, first + count)
            ],
        )


# --- several processes on one database ------------------------------------------------


class FileClock:
    """A clock shared by processes: the instant lives in a file that only the test writes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def now(self) -> datetime:
        return datetime.fromisoformat(self.path.read_text())

    def set(self, instant: datetime) -> None:
        scratch = self.path.with_suffix(".tmp")
        scratch.write_text(instant.isoformat())
        os.replace(scratch, self.path)  # readers never see half an instant

    def advance(self, delta: timedelta) -> datetime:
        moment = self.now() + delta
        self.set(moment)
        return moment


def spawn_python(*args: str) -> subprocess.Popen[str]:
    """`python ARGS` in the repository, with its pipes captured."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wal_automatic_pages(db: Database) -> int:
    """SQLite's `wal_autocheckpoint` on a new connection of `db` (0: commits never
    checkpoint; see `data.wal`)."""
    db.engine.dispose()  # a pooled connection may have been made before a change
    with db.engine.connect() as connection:
        pages: int = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
    return pages


def wait_until(condition: Callable[[], bool], what: str, timeout: timedelta) -> None:
    """Poll `condition` on the wall clock; fail the test naming `what` after `timeout`."""
    deadline = datetime.now(UTC) + timeout
    pause = threading.Event()
    while not condition():
        if datetime.now(UTC) > deadline:
            pytest.fail(f"timed out waiting for {what}")
        pause.wait(0.02)


PageKey = tuple[str, int, int, int]
"""(handle, cycle, step, round) of one page."""


def pages_by_case(db: Database) -> dict[str, list[PageKey]]:
    """Every page of every case, in the order they were recorded."""
    from sqlalchemy import select as sql_select
    from sqlmodel import col

    from data.models import Case, Page

    query = (
        sql_select(
            col(Case.ref), col(Responder.handle), col(Page.cycle), col(Page.step), col(Page.round)
        )
        .join(Case, col(Case.id) == col(Page.case_id))
        .join(Responder, col(Responder.id) == col(Page.responder_id))
        .order_by(col(Page.id))
    )
    found: dict[str, list[PageKey]] = defaultdict(list)
    with db.read() as session:
        for ref, handle, cycle, step, round_ in session.execute(query).all():
            found[ref].append((handle, cycle, step, round_))
    return found


def count_pages(db: Database) -> int:
    from sqlmodel import func, select

    from data.models import Page

    with db.read() as session:
        return int(session.exec(select(func.count()).select_from(Page)).one())


# --- a webhook receiver -----------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """A webhook target on 127.0.0.1 that answers `status` (200) to every POST and keeps
    what came.

    It can go `down` (nothing listens: connections are refused) and come back `up` on the
    same port, as a receiver does across its own restart."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.received.append(Received(self.path, dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def down(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        self._server = self._thread = None

    def bodies(self) -> list[bytes]:
        with self._lock:
            return [item.body for item in self.received]


def add_webhook(
    db: Database,
    handle: str,
    url: str,
    secret: str | None = None,
    *,
    allow_insecure: bool = False,
    allow_private: bool = False,
) -> int:
    """A webhook contact method for an existing responder, after their other contacts."""
    from sqlmodel import func, select

    with db.write() as session:
        responder = session.exec(select(Responder).where(Responder.handle == handle)).one()
        position = session.exec(
            select(func.count()).where(ContactMethod.responder_id == responder.id)
        ).one()
        assert responder.id is not None
        contact = ContactMethod(
            responder_id=responder.id,
            position=position,
            kind="webhook",
            url=url,
            secret=secret,
            allow_insecure=allow_insecure,
            allow_private=allow_private,
        )
        session.add(contact)
        session.flush()
        assert contact.id is not None
        return contact.id


# --- a whole desk, built through the command line -----------------------------------------


TEAM_FILE = REPO / "tests" / "fixtures" / "team" / "good.toml"
FORMER_SUPERVISOR = """
[[responder]]
handle = "olga"
name = "Olga Former"
role = "supervisor"
timezone = "Europe/Dublin"
contacts = [{ kind = "console" }]
"""
SENSITIVE_DETAILS = "DETAILS-MARKER-5f1c: the reporter's name and address"
VERIFICATION = [
    ["identity", "--contacted", "Metro PD dispatch", "--via", "+1 555 0100", "--directory", "x"],
    ["agency", "--agency", "Metro Police Department", "--officer", "Sgt. Lee", "--badge", "41"],
    ["emergency", "--danger", "death", "--statement", "A stated emergency"],
    ["good_faith", "--determination", "It cannot wait"],
]


@dataclass
class FullDesk:
    """A desk with something of every kind, made by the commands a desk would run.

    People (good.toml): ana, ben and dev are specialists, cara a supervisor, eli an admin;
    olga a supervisor who has left (inactive). Cases: `assigned` (ben's, acknowledged),
    `ringing` (triggered), `sensitive` (CSEA, ben's, details `SENSITIVE_DETAILS`),
    `resolved` (with a post-mortem and its action 1 owned by ben), `closed` (resolved, no
    post-mortem), `disclosure` (ben's request 1 awaits a supervisor), `held` (ben's
    preservation request, its hold running). The `assigned` case has action items 1 and 2
    owned by ben. Also: partner metro-pd, override `override_id`, swap 1 taken by ana and
    awaiting approval, swap 2 offered by ben, `ben_shift` (ISO from, to) of ben's not
    offered yet, handover 1 from ben to cara, `files` to apply again."""

    url: str
    clock: Clock
    refs: dict[str, str] = field(default_factory=dict)
    override_id: int = 0
    files: dict[str, Path] = field(default_factory=dict)
    ben_shift: tuple[str, str] = ("", "")

    def copy(self, folder: Path) -> FullDesk:
        """The same desk in a file of its own under `folder` (SQLite only)."""
        import dataclasses
        import shutil

        source = self.url.removeprefix("sqlite:///")
        folder.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{source}{suffix}").exists():
                shutil.copyfile(f"{source}{suffix}", folder / f"vigil.db{suffix}")
        return dataclasses.replace(self, url=f"sqlite:///{folder / 'vigil.db'}")

    def run(self, who: str, *argv: str) -> tuple[int, str, str]:
        from app.cli.main import main

        out, err = io.StringIO(), io.StringIO()
        code = main(["--db", self.url, "--as", who, *argv], clock=self.clock, out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    def ok(self, who: str, *argv: str) -> str:
        code, out, err = self.run(who, *argv)
        assert code == 0, f"vigil {' '.join(argv)} as {who}: {err}"
        return out


def _ben_on_primary(db: Database, after: datetime) -> tuple[datetime, datetime]:
    """Two hours of one of ben's own shifts on `primary`, after `after`."""
    from app.rules.rotations import on_call
    from app.services.oncall import load_schedule

    with db.read() as session:
        spec = load_schedule(session, "primary")
    assert spec is not None
    at = after.replace(minute=0, second=0, microsecond=0)
    for _ in range(24 * 42):
        at += timedelta(hours=1)
        shift = on_call(spec, at)
        if shift is not None and shift.who == "ben" and shift.end >= at + timedelta(hours=2):
            return at, at + timedelta(hours=2)
    raise AssertionError("ben has no shift on primary in six weeks")


def build_full_desk(url: str, clock: Clock, folder: Path) -> FullDesk:
    import json

    db = Database.open(url)
    try:
        desk = FullDesk(url, clock)
        team = TEAM_FILE.read_text()
        desk.files["team"] = folder / "team.toml"
        desk.files["team"].write_text(team)
        (folder / "team-olga.toml").write_text(team + FORMER_SUPERVISOR)
        desk.ok("cara", "team", "apply", str(folder / "team-olga.toml"))
        desk.ok("cara", "team", "apply", str(desk.files["team"]))  # olga has left
        desk.ok(
            "cara", "partner", "add", "metro-pd", "--kind", "law_enforcement",
            "--agency", "Metro Police Department", "--verified-channel", "dispatch (directory)",
        )  # fmt: skip

        def page(key: str, title: str, category: str, *extra: str) -> str:
            argv = ["page", "--title", title, "--category", category, "--severity", "1"]
            ref = json.loads(desk.ok("cara", *argv, *extra, "--json"))["ref"]
            desk.refs[key] = ref
            return str(ref)

        desk.ok("ben", "ack", page("assigned", "Assigned to ben", "edr"))
        page("ringing", "Still ringing", "edr")
        sensitive = page("sensitive", "Reported image", "csea", "--details", SENSITIVE_DETAILS)
        desk.ok("ben", "ack", sensitive)
        for key in ("resolved", "closed"):
            ref = page(key, f"Threat, {key}", "threat_to_life")
            desk.ok("ben", "ack", ref)
            desk.ok("ben", "resolve", ref, "--note", "handled")
        for title in ("Call the reporter", "Check the logs"):
            desk.ok("ben", "action", "add", desk.refs["assigned"], title, "--owner", "ben")
        desk.ok("ben", "ack", page("held", "Preserve the account", "preservation"))
        pending = page("disclosure", "Subscriber data, urgent", "edr")
        desk.ok("ben", "ack", pending)
        for step in VERIFICATION:
            desk.ok("ben", "verify", pending, *step)
        desk.ok(
            "ben", "disclosure", "request", pending, "--data", "subscriber", "--to", "metro-pd",
            "--basis", "us-emergency",
        )  # fmt: skip
        resolved = desk.refs["resolved"]
        desk.ok("cara", "postmortem", "open", resolved, "--summary", "What happened")
        desk.ok(
            "cara", "postmortem", "action", resolved, "--title", "Fix the runbook",
            "--owner", "ben", "--due", "2027-01-31",
        )  # fmt: skip
        now = clock.now()
        start, end = now + timedelta(days=30), now + timedelta(days=30, hours=2)
        override = desk.ok(
            "cara", "override", "--schedule", "primary", "--who", "dev",
            "--from", start.isoformat(), "--to", end.isoformat(), "--json",
        )  # fmt: skip
        desk.override_id = int(json.loads(override)["id"])
        end = now  # ben's own shifts: his Christmas cover
        for _ in range(2):
            start, end = _ben_on_primary(db, end)
            desk.ok(
                "ben", "swap", "request", "--schedule", "primary",
                "--from", start.isoformat(), "--to", end.isoformat(),
            )  # fmt: skip
        start, end = _ben_on_primary(db, end)
        desk.ben_shift = (start.isoformat(), end.isoformat())
        desk.ok("ana", "swap", "take", "1")
        since = (now - timedelta(hours=12)).isoformat()
        desk.ok("ben", "handover", "submit", "--notes", "Quiet night", "--since", since)
        desk.files["casework"] = folder / "casework.toml"
        desk.files["casework"].write_text(desk.ok("cara", "casework", "settings"))
        return desk
    finally:
        db.dispose()


def cli_commands() -> dict[str, argparse.ArgumentParser]:
    """Every command of `vigil` that does something, by its words (`swap approve`), with
    its parser; `console` is `vigil` alone. Read from the parser itself, so a new command
    is found by every test that walks them."""
    from app.cli.main import build_parser

    root = build_parser()
    found: dict[str, argparse.ArgumentParser] = {"console": root}

    def walk(parser: argparse.ArgumentParser, words: list[str]) -> None:
        groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        handler = parser.get_default("handler")
        if words and not (groups and getattr(handler, "__name__", "") == "missing"):
            found[" ".join(words)] = parser
        for group in groups:
            for name, child in group.choices.items():
                walk(child, [*words, name])

    walk(root, [])
    return found


# --- desks: an area's service with the case actions beside it ---------------------------


class CaseworkDesk(CaseworkService, CaseService):
    """Casework and case actions on one object, as these tests drive a desk."""


class PostMortemDesk(PostMortemService, CaseService):
    """Post-mortems and case actions on one object, as these tests drive a desk."""


class HandoverDesk(HandoverService, CaseService):
    """Handovers and case actions on one object, as these tests drive a desk."""

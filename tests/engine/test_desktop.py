"""The desktop channel, proven against a real notification daemon: a private D-Bus session
(`dbus-run-session`) with Debian's dunst on a virtual display (`xvfb-run`). A page claimed
by its person's console goes out through plyer exactly as the console sends it, and dunst's
own history shows it arrived with the right summary and no sensitive text."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from app.core.clock import FakeClock
from app.delivery.local import PlyerDesktop, claim_my_pages, record_desktop
from app.engine.cycle import EscalationEngine
from app.services.cases import CaseService
from app.services.team.apply import apply_team
from app.services.team.parse import parse_team
from data.db import Database
from data.models import Delivery, Responder

DUNST = "xvfb-run -a dunst"
TOOLS = ("dbus-run-session", "dbus-send", "xvfb-run", "dunst", "dunstctl", "notify-send")
SECRET_TITLE = "Caller names the school and a time"
SECRET_DETAILS = "Home address 12 Example Street"
TEAM = """
[[responder]]
handle = "ana"
name = "Ana Ruiz"
role = "supervisor"
contacts = [{ kind = "console" }, { kind = "desktop" }]

[[policy]]
name = "desk"
steps = [{ delay = "10m", targets = ["user:ana"] }]

[routing]
default = "desk"
"""


def _missing() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


@pytest.fixture
def session_bus() -> Iterator[str]:
    """A private session bus with dunst owning org.freedesktop.Notifications; its address."""
    missing = _missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs {', '.join(missing)} (.ci/run installs dunst, xvfb)")
        pytest.skip(f"no {', '.join(missing)} here (apt-get install dunst xvfb libnotify-bin)")
    daemon = subprocess.Popen(
        [
            "dbus-run-session",
            "--",
            "sh",
            "-c",
            'echo "$DBUS_SESSION_BUS_ADDRESS"; exec xvfb-run -a dunst',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert daemon.stdout is not None
        address = daemon.stdout.readline().strip()
        assert address.startswith("unix:"), address
        env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": address}
        deadline = time.monotonic() + 60
        while not _owned(env):
            assert time.monotonic() < deadline, "dunst never took the notifications name"
            assert daemon.poll() is None, "the bus or dunst exited"
            time.sleep(0.2)
        yield address
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)  # the group this fixture started, and only it
        daemon.wait(timeout=30)


def _owned(env: dict[str, str]) -> bool:
    answer = subprocess.run(
        [
            "dbus-send",
            "--session",
            "--dest=org.freedesktop.DBus",
            "--print-reply",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            "string:org.freedesktop.Notifications",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return "boolean true" in answer.stdout


def _history(env: dict[str, str]) -> list[dict[str, str]]:
    """What dunst received, from its own history (shown ones are closed into it first)."""
    subprocess.run(["dunstctl", "close-all"], env=env, check=True, timeout=30)
    raw = subprocess.run(
        ["dunstctl", "history"], env=env, capture_output=True, text=True, check=True, timeout=30
    ).stdout
    entries = json.loads(raw)["data"][0]
    return [{key: str(value["data"]) for key, value in entry.items()} for entry in entries]


def test_a_page_arrives_as_a_desktop_notification_without_sensitive_text(
    db: Database, session_bus: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", session_bus)
    clock = FakeClock(datetime(2026, 12, 6, 3, 0, tzinfo=UTC))
    apply_team(db, parse_team(TEAM), actor="ana", now=clock.now())
    engine = EscalationEngine(db, clock)
    case = CaseService(db, clock, escalation=engine.page_within).open_case(
        "ana",
        title=SECRET_TITLE,
        category="csea",
        severity="sev1",
        details=SECRET_DETAILS,
    )
    with db.read() as session:
        ana = session.exec(select(Responder)).one()
    assert ana.id is not None

    [alert] = claim_my_pages(db, clock, ana.id)
    desktop = PlyerDesktop()
    assert desktop.unavailable_reason() is None
    outcome = desktop.notify("Vigil: you are paged", alert.summary)  # as the console sends it
    record_desktop(db, clock, alert.desktop_delivery_ids, outcome)
    assert outcome.sent, outcome.detail

    env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": session_bus}
    deadline = time.monotonic() + 30
    while not (received := _history(env)):
        assert time.monotonic() < deadline, "dunst received nothing"
        time.sleep(0.2)
    [shown] = received
    assert shown["summary"] == "Vigil: you are paged"
    assert shown["body"] == f"{case.ref} sev1: sensitive case (open Vigil to view)"
    assert SECRET_TITLE not in json.dumps(shown)
    assert SECRET_DETAILS not in json.dumps(shown)
    with db.read() as session:
        delivery = session.exec(select(Delivery).where(Delivery.channel == "desktop")).one()
    assert delivery.status == "sent"

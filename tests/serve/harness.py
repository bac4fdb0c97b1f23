"""A `vigil serve` on loopback for tests: a desk from a team file with integrations, their
keys, and the server in a thread on a free port."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from app.core.clock import Clock
from app.serve import Server
from app.serve.connections import REQUEST_WITHIN
from app.services.integrations import new_key
from app.services.team.apply import apply_team
from app.services.team.parse import parse_team
from data.db import Database
from tests.factories import wait_until

TEAM = """
[[responder]]
handle = "intake"
name = "Intake relay"
role = "supervisor"
contacts = [{ kind = "console" }]

[[responder]]
handle = "ana"
name = "Ana Ruiz"
role = "specialist"
contacts = [{ kind = "console" }]

[[policy]]
name = "desk"
steps = [{ delay = "5m", targets = ["user:ana"] }]

[routing]
default = "desk"

[[integration]]
name = "pd"
format = "pagerduty"
policy = "desk"

[[integration]]
name = "prod"
format = "alertmanager"

[[integration]]
name = "graf"
format = "grafana"
severity = "sev3"

[[integration]]
name = "ours"
format = "vigil"

[[integration]]
name = "slow"
format = "pagerduty"
rate_limit = 2
"""
INTEGRATIONS = ("pd", "prod", "graf", "ours", "slow")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_serving(url: str, child: subprocess.Popen[Any]) -> None:
    """Wait until the `vigil serve` process `child` answers at `url`; fail if it exits."""

    def listening() -> bool:
        assert child.poll() is None, "vigil serve exited"
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(listening, "vigil serve listening", timedelta(seconds=30))


def self_signed(folder: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, made with openssl in `folder`: (cert, key)."""
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    request = [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
    ]
    names = ["-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        ["openssl", *request, *names, "-keyout", key, "-out", cert],
        check=True,
        capture_output=True,
    )
    return cert, key


def pd_trigger(key: str, **extra: object) -> dict[str, object]:
    """A PagerDuty Events API v2 trigger for integration key `key` (`extra` overrides)."""
    return {
        "routing_key": key,
        "event_action": "trigger",
        "payload": {"summary": "Disk full on db-1", "source": "db-1", "severity": "critical"},
        **extra,
    }


def build_desk(db: Database, clock: Clock, team: str = TEAM) -> dict[str, str]:
    """The team applied, and a key for each integration."""
    apply_team(db, parse_team(team), actor="intake", now=datetime.now(UTC))
    return {name: new_key(db, clock, "intake", name) for name in INTEGRATIONS}


@dataclass
class Served:
    server: Server
    keys: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}


@contextmanager
def serving(
    db: Database,
    clock: Clock,
    keys: dict[str, str],
    *,
    engine: bool = True,
    tls: tuple[str, str] | None = None,
    request_within: float = REQUEST_WITHIN,
) -> Iterator[Served]:
    server = Server(
        db,
        clock,
        "intake",
        port=free_port(),
        engine=engine,
        tls=tls,
        request_within=request_within,
    )
    server.start()
    try:
        yield Served(server, keys)
    finally:
        server.stop()

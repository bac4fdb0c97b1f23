"""Alert intake over HTTP: a real `vigil serve` process on loopback, driven by 50 concurrent
clients, beside `vigil intake` of the same events in the same run.

    uv run python -m bench.bench_serve [--events 3000] [--clients 50] [--pg URL]

Each event is a PagerDuty Events API v2 trigger with its own dedup key (so each opens a case
and pages step 1). Printed: events a second, p50 and p99 from sending an event to its 202,
and p99 from sending it to its first page committed (the page's `sent_at`, on the same
host's clock); on SQLite, how long another process writing to the same file every 50 ms
during the storm (as a console acknowledging would) waited for the write lock; then
`vigil intake` of the same number of events as one batch. Targets
(the design's): at least 1,000 events a second on SQLite with p99 to the 202 under 50 ms
and to the page under 250 ms. Exit status 1 when a target is missed on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlmodel import col, select

from app.core.clock import SystemClock
from app.services.integrations import new_key
from app.services.team.apply import apply_team
from app.services.team.parse import parse_team
from bench._figures import record
from bench._load import Answer, Connection
from bench._load import drive as drive_load
from bench.bench_engine import scratch_url
from data.db import Database
from data.models import Case, Page

TEAM = """
[[responder]]
handle = "intake"
name = "Intake relay"
role = "supervisor"
contacts = [{ kind = "console" }]

[[responder]]
handle = "ana"
name = "Ana Ruiz"
contacts = [{ kind = "console" }]

[[policy]]
name = "desk"
steps = [{ delay = "5m", targets = ["user:ana"] }]

[routing]
default = "desk"

[[integration]]
name = "pd"
format = "pagerduty"
rate_limit = 100000
"""
VIGIL = [sys.executable, "-m", "app.main"]


def say(text: str) -> None:
    print(text, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def event(key: str, number: int, run: str) -> dict[str, object]:
    return {
        "routing_key": key,
        "event_action": "trigger",
        "dedup_key": f"{run}-{number}",
        "payload": {"summary": f"Alert {number}", "source": "bench", "severity": "error"},
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def drive(url: str, events: list[dict[str, object]], clients: int) -> dict[str, float]:
    sent_at: dict[str, datetime] = {}

    async def send(connection: Connection, item: object) -> Answer:
        assert isinstance(item, dict)
        sent_at[str(item["dedup_key"])] = datetime.now(UTC)
        return await connection.post_json("/v2/enqueue", item)

    load = await drive_load(url, events, clients, send)
    return {
        "took": load.took,
        "failures": sum(status != 202 for status in load.statuses),
        "p50": percentile(load.latencies, 0.50),
        "p99": percentile(load.latencies, 0.99),
        "client_cpu": load.client_cpu,
        "sent_at": sent_at,  # type: ignore[dict-item]
    }


OTHER_WRITER = """
import json, sys, time
from pathlib import Path
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from data.db import make_engine
url, stop = sys.argv[1], Path(sys.argv[2])
writer = make_engine(url).execution_options(vigil_write=True)
with writer.begin() as connection:
    connection.execute(text("CREATE TABLE IF NOT EXISTS bench_side (n INTEGER)"))
stop.with_suffix(".ready").touch()
waits, failed = [], 0
while not stop.exists():
    started = time.monotonic()
    try:
        with writer.begin() as connection:
            waits.append(time.monotonic() - started)
            connection.execute(text("INSERT INTO bench_side VALUES (1)"))
    except OperationalError:
        failed += 1
    time.sleep(0.05)
waits.sort()
print(json.dumps({"writes": len(waits), "failed": failed,
                  "median": waits[len(waits) // 2] if waits else None,
                  "max": waits[-1] if waits else None}))
"""
"""Another process writing to the same SQLite file every 50 ms while the storm lasts, as a
console acknowledging does (a writer of `data.db`, with its busy timeout and its way of
waiting for the lock): how long it waited for the lock."""


def other_writer(url: str, folder: Path) -> tuple[subprocess.Popen[bytes], Path] | None:
    """Start `OTHER_WRITER` on a SQLite desk (None on PostgreSQL, where writers queue)."""
    if not url.startswith("sqlite:///"):
        return None
    stop = folder / "stop-other-writer"
    ready = stop.with_suffix(".ready")
    stop.unlink(missing_ok=True)
    ready.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-c", OTHER_WRITER, url, str(stop)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    deadline = time.monotonic() + 30  # writing before the storm starts, however short it is
    while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return process, stop


def other_writer_waits(label: str, started: tuple[subprocess.Popen[bytes], Path]) -> None:
    process, stop = started
    stop.touch()
    out, _ = process.communicate(timeout=60)
    found = json.loads(out)
    if not found["writes"]:
        say(f"{label}: another process's writer never got the lock ({found['failed']} failed)")
        return
    median, worst = found["median"] * 1000, found["max"] * 1000
    record("serve", f"{label}: another process's write waited, median", median, "ms")
    record("serve", f"{label}: another process's write waited, worst", worst, "ms")
    say(
        f"{label}: another process writing every 50 ms during the storm: {found['writes']} "
        f"writes, {found['failed']} failed, waited median {median:.0f} ms, worst {worst:.0f} ms"
    )


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("vigil serve exited before listening")
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit("vigil serve did not listen within 30 s")


def page_lag(db: Database, sent_at: dict[str, datetime]) -> float:
    with db.read() as session:
        rows = session.exec(
            select(Case.dedup_key, Page.sent_at)
            .join(Page, col(Page.case_id) == col(Case.id))
            .where(col(Page.step) == 1)
        ).all()
    lags = [
        (paged - sent_at[str(key)]).total_seconds() for key, paged in rows if str(key) in sent_at
    ]
    if len(lags) < len(sent_at):
        say(f"  only {len(lags)} of {len(sent_at)} cases paged")
    return percentile(lags, 0.99) if lags else float("inf")


def run_database(label: str, url: str, events: int, clients: int, folder: Path) -> bool:
    db = Database.open(url)
    apply_team(db, parse_team(TEAM), actor="intake", now=datetime.now(UTC))
    key = new_key(db, SystemClock(), "intake", "pd")
    run = uuid.uuid4().hex[:8]  # dedup keys of this run only: a used database keeps its cases
    port = free_port()
    env = {**os.environ, "VIGIL_USER": "intake"}
    process = subprocess.Popen(
        [*VIGIL, "--db", url, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(folder / f"serve-{label}.log").open("wb"),
    )
    try:
        wait_listening(port, process)
        asyncio.run(drive(f"http://127.0.0.1:{port}", [event(key, 0, f"warm-{run}")], 1))
        batch = [event(key, n, f"http-{run}") for n in range(events)]
        writer = other_writer(url, folder)
        try:
            result = asyncio.run(drive(f"http://127.0.0.1:{port}", batch, clients))
        finally:
            if writer is not None:
                other_writer_waits(label, writer)
        time.sleep(1.0)  # let the engine page the last cases
        lag = page_lag(db, result["sent_at"])  # type: ignore[arg-type]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    rate = events / result["took"]
    record(
        "serve",
        f"{label}: events/s over HTTP, {clients} clients",
        rate,
        "events/s",
        target=">= 1,000 events/s",
        met=rate >= 1000,
    )
    record(
        "serve",
        f"{label}: p99 to the 202",
        result["p99"] * 1000,
        "ms",
        target="< 50 ms",
        met=result["p99"] < 0.050,
    )
    record(
        "serve", f"{label}: p99 to the page", lag * 1000, "ms", target="< 250 ms", met=lag < 0.25
    )
    say(
        f"{label}: {events} events from {clients} clients in {result['took']:.2f} s = "
        f"{rate:,.0f} events/s; to the 202 p50 {result['p50'] * 1000:.1f} ms, "
        f"p99 {result['p99'] * 1000:.1f} ms; to the page p99 {lag * 1000:.0f} ms; "
        f"{result['failures']:.0f} not 202; the load generator's own CPU "
        f"{result['client_cpu'] / events * 1e6:.0f} µs an event"
    )
    lines = "\n".join(json.dumps(event(key, n, f"cli-{run}")) for n in range(events))
    started = time.perf_counter()
    subprocess.run(
        [*VIGIL, "--db", url, "--as", "intake", "intake", "-"],
        input=lines.encode(),
        check=True,
        capture_output=True,
    )
    took = time.perf_counter() - started
    record("serve", f"{label}: vigil intake of the same events", events / took, "events/s")
    say(f"{label}: vigil intake of the same {events} events: {took:.2f} s = {events / took:,.0f}/s")
    db.dispose()
    return rate >= 1000 and result["p99"] < 0.050 and lag < 0.250


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument(
        "--pg",
        help="also a PostgreSQL database URL (its cases are left as they are); "
        "default: a scratch schema of VIGIL_TEST_PG's database when that is set",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ok = run_database(
            "SQLite", f"sqlite:///{folder / 'vigil.db'}", args.events, args.clients, folder
        )
        if args.pg:
            run_database("PostgreSQL", args.pg, args.events, args.clients, folder)
        elif os.environ.get("VIGIL_TEST_PG"):
            with scratch_url("postgresql") as url:
                run_database("PostgreSQL", url, args.events, args.clients, folder)
    say("targets met" if ok else "target missed: 1,000 events/s, p99 50 ms to 202, 250 ms to page")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

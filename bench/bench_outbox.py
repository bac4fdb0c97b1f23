"""The webhook outbox against a local receiver: throughput, and what a dripping receiver
costs everyone else.

    uv run python -m bench.bench_outbox [--pages 1000] [--contacts 100] [--drip 5]

The real `WebhookOutbox` (as the engine runner drives it, default settings: 32 deliveries
in flight, a 10 s deadline per attempt) on the system clock, sending to a receiver in its
own process on 127.0.0.1 (asyncio, HTTP/1.1 keep-alive, answers 200 at once and notes when
each request arrived and its `webhook-id`).

1. Throughput: `--pages` pages spread over `--contacts` contacts, all due at once: the
   time until the last one is recorded delivered (target: 1,000 pages to 100 contacts
   within 5 s). Beside it, a baseline: the same requests from the same client at the same
   concurrency with no database and no order to keep.
2. A dripping receiver: pages due `--every` seconds apart for each of `--contacts` contacts
   (spread evenly: a steady `--contacts / --every` pages a second, well within what this
   machine sends, so that lateness is the outbox's and not a saturated processor's), once
   all healthy and once with one contact's receiver dripping its answer one byte every
   `--drip` seconds (so no read ever times out: only the attempt's deadline ends it). The
   figure is how late the healthy contacts' pages arrive after their due time, and how
   much later the latest is than in the healthy run: the drip's cost (target: under 1 s).

Every page is checked to arrive exactly once. SQLite always (a scratch file); PostgreSQL
too when VIGIL_TEST_PG is set (a scratch schema, dropped afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection

import httpx
from sqlmodel import col, func, select

from app.core.clock import SystemClock
from app.delivery.webhook import DEFAULT_SETTINGS, WebhookOutbox
from bench._figures import record
from bench.bench_engine import backends, scratch_database
from data.db import Database
from data.models import Case, ContactMethod, Delivery, Page, Responder

TARGET_THROUGHPUT_S = 5.0
TARGET_DELAY_S = 1.0

# --- the receiver, in a process of its own ---------------------------------------------


class _Receiver(asyncio.Protocol):
    """HTTP/1.1 POSTs with a Content-Length; answers 200 at once, or drips on /drip."""

    def __init__(self, log: list[tuple[str, str, float]], drip: float) -> None:
        self.log = log
        self.drip = drip
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            path = lines[0].split(" ")[1]
            self.log.append((path, headers.get("webhook-id", ""), time.time()))
            assert self.transport is not None
            if path.startswith("/drip"):
                asyncio.get_running_loop().create_task(self._drip(self.transport))
                return
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    async def _drip(self, transport: asyncio.Transport) -> None:
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        for byte in answer:
            if transport.is_closing():
                return
            transport.write(bytes([byte]))
            await asyncio.sleep(self.drip)


def _serve(pipe: Connection, drip: float) -> None:
    async def main() -> None:
        log: list[tuple[str, str, float]] = []
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Receiver(log, drip), "127.0.0.1", 0)
        pipe.send(server.sockets[0].getsockname()[1])
        while True:
            if await loop.run_in_executor(None, pipe.poll, 0.2):
                message = pipe.recv()
                if message == "log":
                    pipe.send(list(log))
                    log.clear()
                elif message == "stop":
                    server.close()
                    return

    asyncio.run(main())


class Receiver:
    def __init__(self, drip: float) -> None:
        self.pipe, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(child, drip), daemon=True
        )
        self.process.start()
        self.port: int = self.pipe.recv()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def take_log(self) -> list[tuple[str, str, float]]:
        """(path, webhook-id, arrival time) of every request since the last call."""
        self.pipe.send("log")
        log: list[tuple[str, str, float]] = self.pipe.recv()
        return log

    def stop(self) -> None:
        self.pipe.send("stop")
        self.process.join(5)


# --- the desk ------------------------------------------------------------------------------


def add_contacts(db: Database, receiver: Receiver, paths: list[str]) -> list[int]:
    ids = []
    with db.write() as session:
        for n, path in enumerate(paths):
            responder = Responder(handle=f"r{n:03d}", name=f"Receiver {n}")
            session.add(responder)
            session.flush()
            assert responder.id is not None
            contact = ContactMethod(
                responder_id=responder.id,
                kind="webhook",
                url=receiver.url(path),
                secret="bench-secret-0123456789",
                allow_insecure=True,  # plain http to this machine: allowed, as a team file would
                allow_private=True,
            )
            session.add(contact)
            session.flush()
            assert contact.id is not None
            ids.append(contact.id)
    return ids


def add_pages(
    db: Database,
    contact_ids: list[int],
    per_contact: int,
    due: Callable[[int, int], datetime],
) -> dict[str, datetime]:
    """`per_contact` pages for each contact, the k-th of the n-th contact due at
    `due(k, n)`; webhook-id -> due."""
    keys: dict[str, datetime] = {}
    now = datetime.now(UTC)
    with db.write() as session:
        responders = dict(
            session.exec(
                select(ContactMethod.id, ContactMethod.responder_id).where(
                    col(ContactMethod.id).in_(contact_ids)
                )
            ).all()
        )
        first = session.exec(select(func.count()).select_from(Case)).one()
        for k in range(per_contact):
            for n, contact_id in enumerate(contact_ids):
                at = due(k, n)
                ref = f"ESC-{first + k * len(contact_ids) + n + 1:06d}"
                case = Case(
                    ref=ref,
                    title="Bench page",
                    category="edr",
                    severity=1 + (n % 4),
                    created_at=now,
                    updated_at=now,
                    next_escalation_at=now + timedelta(days=1),
                )
                session.add(case)
                session.flush()
                assert case.id is not None
                page = Page(
                    case_id=case.id,
                    responder_id=responders[contact_id],
                    step=1,
                    round=0,
                    reason="manual",
                    due_at=at,
                    sent_at=at,
                )
                session.add(page)
                session.flush()
                assert page.id is not None
                key = f"{ref}:0:1:0:{contact_id}"
                session.add(
                    Delivery(
                        page_id=page.id,
                        channel="webhook",
                        contact_id=contact_id,
                        next_attempt_at=at,
                        idempotency_key=key,
                    )
                )
                keys[key] = at
    return keys


def bring_forward(db: Database, keys: dict[str, datetime], later: datetime) -> dict[str, datetime]:
    """Move every page so that what was due at `later` is due in 1 s (once the outbox is up
    and idle, so its start is not measured)."""
    shift = datetime.now(UTC) + timedelta(seconds=1) - later
    with db.write() as session:
        for delivery in session.exec(select(Delivery)):
            assert delivery.next_attempt_at is not None
            delivery.next_attempt_at += shift
            session.add(delivery)
        for page in session.exec(select(Page)):
            page.due_at += shift
            page.sent_at += shift
            session.add(page)
    return {key: due + shift for key, due in keys.items()}


def delivered(db: Database) -> int:
    with db.read() as session:
        return int(
            session.exec(
                select(func.count()).select_from(Delivery).where(Delivery.status == "delivered")
            ).one()
        )


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def check_once(log: list[tuple[str, str, float]], keys: dict[str, datetime]) -> None:
    counts = Counter(key for _, key, _ in log)
    twice = [key for key, n in counts.items() if n > 1]
    missing = [key for key in keys if key not in counts]
    if twice or missing:
        raise SystemExit(f"not exactly once: {len(twice)} twice, {len(missing)} missing")


# --- 1. throughput -------------------------------------------------------------------------


def measure_throughput(db: Database, receiver: Receiver, pages: int, contacts: int) -> float:
    ids = add_contacts(db, receiver, [f"c/{n}" for n in range(contacts)])
    start_at = datetime.now(UTC)
    keys = add_pages(db, ids, pages // contacts, lambda k, n: start_at)
    receiver.take_log()
    outbox = WebhookOutbox(db, SystemClock())
    began = time.perf_counter()
    outbox.start()
    try:
        if not wait_until(lambda: outbox.counts["delivered"] >= len(keys), 120):
            raise SystemExit(f"only {outbox.counts['delivered']} of {len(keys)} delivered")
        took = time.perf_counter() - began
    finally:
        outbox.stop()
    if delivered(db) != len(keys):
        raise SystemExit("the database disagrees with the outbox's count")
    check_once(receiver.take_log(), keys)
    return took


def measure_bare_client(receiver: Receiver, pages: int) -> float:
    """The same number of POSTs, same client settings and concurrency, no database."""

    async def run() -> float:
        slots = asyncio.Semaphore(DEFAULT_SETTINGS.concurrency)
        async with httpx.AsyncClient(trust_env=False) as client:

            async def one(n: int) -> None:
                async with slots:
                    response = await client.post(
                        receiver.url(f"c/{n % 100}"), content=b"{}", headers={"webhook-id": "x"}
                    )
                    response.raise_for_status()

            began = time.perf_counter()
            await asyncio.gather(*(one(n) for n in range(pages)))
            return time.perf_counter() - began

    took = asyncio.run(run())
    receiver.take_log()
    return took


# --- 2. a dripping receiver ------------------------------------------------------------------


@dataclass(frozen=True)
class Lateness:
    p50: float
    p99: float
    worst: float
    early: int


def measure_lateness(
    db: Database, receiver: Receiver, contacts: int, rounds: int, every: float, dripping: bool
) -> tuple[Lateness, list[float]]:
    """Lateness of the healthy contacts' pages (seconds), and the dripping attempts' lengths."""
    paths = [f"h/{n}" for n in range(contacts)]
    if dripping:
        paths[0] = "drip/0"
    ids = add_contacts(db, receiver, paths)
    later = datetime.now(UTC) + timedelta(days=1)
    keys = add_pages(
        db, ids, rounds, lambda k, n: later + timedelta(seconds=(k + n / contacts) * every)
    )
    receiver.take_log()
    outbox = WebhookOutbox(db, SystemClock())
    outbox.start()
    try:
        keys = bring_forward(db, keys, later)
        outbox.wake()
    except BaseException:
        outbox.stop()
        raise
    dripping_keys = {key for key in keys if key.endswith(f":{ids[0]}")} if dripping else set()
    healthy_keys = set(keys) - dripping_keys
    try:
        wait_until(lambda: outbox.counts["delivered"] >= len(healthy_keys), 30 + rounds * every)
    finally:
        outbox.stop(timeout=1)
    log = receiver.take_log()
    healthy_log = [entry for entry in log if not entry[0].startswith("/drip")]
    check_once(healthy_log, {key: keys[key] for key in healthy_keys})
    late = sorted(arrived - keys[key].timestamp() for _, key, arrived in healthy_log)
    dripped = sorted(arrived for path, _, arrived in log if path.startswith("/drip"))
    if dripping and not dripped:
        raise SystemExit("the dripping receiver was never asked")
    gaps = [b - a for a, b in itertools.pairwise(dripped)]
    return (
        Lateness(
            p50=statistics.median(late),
            p99=late[min(len(late) - 1, int(len(late) * 0.99))],
            worst=late[-1],
            early=sum(1 for x in late if x < 0),
        ),
        gaps,
    )


# --- the report ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_outbox", description=__doc__)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--contacts", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=8, help="pages per contact (part 2)")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between them")
    parser.add_argument("--drip", type=float, default=5.0, help="seconds between bytes")
    args = parser.parse_args(argv)

    receiver = Receiver(args.drip)
    ok = True
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    try:
        bare = measure_bare_client(receiver, args.pages)
        print(
            f"baseline: {args.pages} POSTs from one client, "
            f"{DEFAULT_SETTINGS.concurrency} at a time, no database: {bare:.2f} s"
        )
        for backend in backends():
            with scratch_database(backend) as db:
                took = measure_throughput(db, receiver, args.pages, args.contacts)
            verdict = "ok" if took <= TARGET_THROUGHPUT_S else "MISSED"
            record(
                "outbox",
                f"{backend}: {args.pages:,} pages to {args.contacts} contacts, all delivered",
                took * 1000,
                "ms",
                baseline=bare * 1000,
                baseline_name="the same POSTs, no database",
                target=f"< {TARGET_THROUGHPUT_S:g} s",
                met=took <= TARGET_THROUGHPUT_S,
            )
            ok = ok and took <= TARGET_THROUGHPUT_S
            print(
                f"{backend}: {args.pages} pages to {args.contacts} contacts delivered in "
                f"{took:.2f} s ({args.pages / took:.0f}/s, {took / bare:.1f} x the baseline; "
                f"target {TARGET_THROUGHPUT_S:g} s: {verdict}), each exactly once"
            )
            with scratch_database(backend) as db:
                calm, _ = measure_lateness(
                    db, receiver, args.contacts, args.rounds, args.every, False
                )
            with scratch_database(backend) as db:
                stormy, gaps = measure_lateness(
                    db, receiver, args.contacts, args.rounds, args.every, True
                )
            delay = stormy.worst - calm.worst
            verdict = "ok" if delay < TARGET_DELAY_S else "MISSED"
            record(
                "outbox",
                f"{backend}: worst lateness of healthy contacts beside a dripping receiver",
                stormy.worst * 1000,
                "ms",
                baseline=calm.worst * 1000,
                baseline_name="the same, no dripping receiver",
                target=f"< {TARGET_DELAY_S * 1000:.0f} ms more than the baseline",
                met=delay < TARGET_DELAY_S,
            )
            ok = ok and delay < TARGET_DELAY_S
            print(
                f"{backend}: {args.contacts} contacts x {args.rounds} pages due "
                f"{args.every:g} s apart ({args.contacts / args.every:g}/s); "
                f"lateness of the healthy ones: all healthy p50 {calm.p50 * 1000:.0f} ms, "
                f"p99 {calm.p99 * 1000:.0f} ms, worst {calm.worst * 1000:.0f} ms; "
                f"one receiver dripping a byte every {args.drip:g} s: p50 "
                f"{stormy.p50 * 1000:.0f} ms, p99 {stormy.p99 * 1000:.0f} ms, worst "
                f"{stormy.worst * 1000:.0f} ms; the drip's cost {delay * 1000:+.0f} ms "
                f"(target under {TARGET_DELAY_S:g} s: {verdict}); "
                f"early: {calm.early + stormy.early}; the dripping receiver was asked "
                f"{len(gaps) + 1} time(s)"
            )
    finally:
        receiver.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Pages through Apprise to a local receiver: pages delivered per second, and how long a
page takes from its due time to its delivery.

    uv run python -m bench.bench_channels [--pages 1000] [--contacts 100] [--rate 50]

The real `WebhookOutbox` (as the engine runner drives it: default settings, Apprise's
blocking sends on their own thread pool) on the system clock, sending `json://` pages
through Apprise to the receiver of `bench.bench_outbox`, in its own process on 127.0.0.1.
Each page is composed as a person receives it (reference, severity, step, who else was
paged, waited, signed acknowledge and open links).

1. Throughput: `--pages` pages over `--contacts` contacts, all due at once: pages a second
   until the last one is recorded delivered.
2. Due to delivery: pages due at a steady `--rate` a second for 10 s, spread over the
   contacts: from each page's due time to its delivery recorded, p50, p99 and worst.

Every page is checked to arrive exactly once (one request per page at the receiver).
SQLite always (a scratch file); PostgreSQL too when VIGIL_TEST_PG is set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select

from app.core.clock import SystemClock
from app.delivery.webhook import DEFAULT_SETTINGS, OutboxSettings, WebhookOutbox
from app.services.links import LinkSettings
from bench.bench_engine import backends, scratch_database
from bench.bench_outbox import Receiver, add_pages, bring_forward, delivered, wait_until
from data.db import Database
from data.models import ContactMethod, Delivery, Page, Responder

SETTINGS = OutboxSettings(links=LinkSettings("https://vigil.example"))


def add_apprise_contacts(db: Database, receiver: Receiver, count: int) -> list[int]:
    ids = []
    with db.write() as session:
        for n in range(count):
            responder = Responder(handle=f"r{n:03d}", name=f"Receiver {n}")
            session.add(responder)
            session.flush()
            assert responder.id is not None
            contact = ContactMethod(
                responder_id=responder.id,
                kind="apprise",
                url=f"json://127.0.0.1:{receiver.port}/p{n:03d}",
                allow_private=True,  # this machine's receiver, allowed as a team file would
            )
            session.add(contact)
            session.flush()
            assert contact.id is not None
            ids.append(contact.id)
    return ids


def as_apprise(db: Database) -> None:
    with db.write() as session:
        session.execute(update(Delivery).values(channel="apprise"))


def due_to_delivery(db: Database, due: dict[int, datetime]) -> list[float]:
    """Seconds from each page's due time to its delivery recorded, sorted."""
    with db.read() as session:
        rows = session.exec(
            select(Delivery.id, Delivery.delivered_at).where(col(Delivery.status) == "delivered")
        ).all()
    return sorted((at - due[delivery_id]).total_seconds() for delivery_id, at in rows if at)


def send_all(
    db: Database, receiver: Receiver, contacts: int, per_contact: int, spread: float
) -> list[float]:
    """Pages due over `spread` seconds (0: at one instant), sent by the running outbox;
    returns each page's due-to-delivery time. Checks each arrived exactly once."""
    ids = add_apprise_contacts(db, receiver, contacts)
    later = datetime.now(UTC) + timedelta(days=1)
    total = per_contact * contacts
    keys = add_pages(
        db,
        ids,
        per_contact,
        lambda k, n: later + timedelta(seconds=spread * (k * contacts + n) / max(total, 1)),
    )
    as_apprise(db)
    receiver.take_log()
    outbox = WebhookOutbox(db, SystemClock(), SETTINGS)
    outbox.start()
    try:
        bring_forward(db, keys, later)
        outbox.wake()
        finished = wait_until(lambda: delivered(db) >= total, 120 + spread)
    finally:
        outbox.stop()
    if not finished:
        raise SystemExit(f"only {delivered(db)} of {total} pages delivered")
    arrived = receiver.take_log()
    if len(arrived) != total:
        raise SystemExit(f"{len(arrived)} requests arrived for {total} pages")
    return due_to_delivery(db, due_times_before(db))


def due_times_before(db: Database) -> dict[int, datetime]:
    """Each delivery's due time, kept on its page (a delivered row's own time is cleared)."""
    with db.read() as session:
        rows = session.exec(
            select(Delivery.id, Page.due_at).join(Page, col(Page.id) == col(Delivery.page_id))
        ).all()
    return {delivery_id: at for delivery_id, at in rows if delivery_id}


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(len(values) * share))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_channels", description=__doc__)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--contacts", type=int, default=100)
    parser.add_argument("--rate", type=float, default=50.0, help="pages a second (part 2)")
    args = parser.parse_args(argv)
    receiver = Receiver(drip=5.0)
    print(
        f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
        f"{DEFAULT_SETTINGS.concurrency} sends in flight"
    )
    try:
        for backend in backends():
            per_contact = max(1, args.pages // args.contacts)
            total = per_contact * args.contacts
            with scratch_database(backend) as db:
                started = time.monotonic()
                late = send_all(db, receiver, args.contacts, per_contact, 0.0)
                took = late[-1]
            print(
                f"{backend}: {total} pages due at once to {args.contacts} contacts through "
                f"Apprise: the last delivered {took:.2f} s after due, {total / took:.0f} pages/s "
                f"(wall {time.monotonic() - started:.1f} s with set-up), each exactly once"
            )
            steady = int(args.rate * 10)
            per_contact = max(1, steady // args.contacts)
            with scratch_database(backend) as db:
                late = send_all(db, receiver, args.contacts, per_contact, 10.0)
            print(
                f"{backend}: {per_contact * args.contacts} pages due over 10 s "
                f"({per_contact * args.contacts / 10:.0f}/s): due to delivery p50 "
                f"{statistics.median(late) * 1000:.0f} ms, "
                f"p99 {percentile(late, 0.99) * 1000:.0f} ms, worst {late[-1] * 1000:.0f} ms, "
                f"early {sum(1 for x in late if x < 0)}"
            )
    finally:
        receiver.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

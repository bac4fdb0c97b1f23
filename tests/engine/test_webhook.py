"""The webhook notifier: payload, signature, and the outbox against a real local server."""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from sqlmodel import col, select

from app.core.clock import FakeClock
from app.delivery.webhook import (
    REQUEST_BUDGET,
    RetryPolicy,
    build_payload,
    claim_webhook_deliveries,
    encode_payload,
    process_webhook_outbox,
    sign,
    verify_signature,
)
from data.db import Database
from data.models import Case, ContactMethod, Delivery, DeliveryAttempt, Page, Responder

START = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
SECRET = "whsec-not-for-logs"
MARKER = "MARKER-7f3a"


class FixedRandom(random.Random):
    """`uniform(0, c)` returns `fraction * c`: the jittered waits become predictable."""

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self.fraction = fraction

    def random(self) -> float:
        return self.fraction


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class ScriptedServer:
    """A real HTTP server on 127.0.0.1 answering from a script, then 200."""

    script: list[tuple[int, dict[str, str]]]
    received: list[Received] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?token={MARKER}"


Serve = Callable[..., ScriptedServer]


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(*script: tuple[int, dict[str, str]]) -> ScriptedServer:
        state = ScriptedServer(list(script))
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    status, headers = state.script.pop(0) if state.script else (200, {})
                    state.received.append(Received(dict(self.headers.items()), body, status))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        state.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        servers.append((server, thread))
        return state

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False) as http:
        yield http


def add_contact(
    db: Database, url: str | None, secret: str | None = SECRET, handle: str = "ana"
) -> int:
    with db.write() as session:
        responder = session.exec(select(Responder).where(Responder.handle == handle)).first()
        if responder is None:
            responder = Responder(handle=handle, name=handle.title())
            session.add(responder)
            session.flush()
        assert responder.id is not None
        contact = ContactMethod(responder_id=responder.id, kind="webhook", url=url, secret=secret)
        session.add(contact)
        session.flush()
        assert contact.id is not None
        return contact.id


def add_delivery(
    db: Database,
    clock: FakeClock,
    contact_id: int,
    *,
    ref: str = "ESC-0042",
    sensitive: bool = False,
    channel: str = "webhook",
) -> int:
    """A case paged at step 1 to the contact's owner, with one delivery due now."""
    now = clock.now()
    with db.write() as session:
        contact = session.get(ContactMethod, contact_id)
        assert contact is not None
        case = session.exec(select(Case).where(Case.ref == ref)).first()
        if case is None:
            case = Case(
                ref=ref,
                title=f"Title {MARKER}",
                category="edr",
                severity=1,
                sensitive=sensitive,
                details=f"Details {MARKER}",
                created_at=now,
                updated_at=now,
            )
            session.add(case)
            session.flush()
        assert case.id is not None
        page = Page(
            case_id=case.id,
            responder_id=contact.responder_id,
            step=1,
            round=contact_id,
            due_at=now,
            sent_at=now,
        )
        session.add(page)
        session.flush()
        assert page.id is not None
        delivery = Delivery(
            page_id=page.id,
            channel=channel,
            contact_id=contact_id,
            next_attempt_at=now,
            idempotency_key=f"{ref}:1:{contact_id}:ana:{contact_id}",
        )
        session.add(delivery)
        session.flush()
        assert delivery.id is not None
        return delivery.id


def delivery(db: Database, delivery_id: int) -> Delivery:
    with db.read() as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        return row


def attempt_details(db: Database, delivery_id: int) -> list[tuple[bool, str]]:
    with db.read() as session:
        rows = session.exec(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == delivery_id)
            .order_by(col(DeliveryAttempt.id))
        ).all()
        return [(row.ok, row.detail) for row in rows]


# --- payload and signature -----------------------------------------------------


def _case(**overrides: object) -> Case:
    fields: dict[str, object] = {
        "ref": "ESC-0042",
        "title": f"Title {MARKER}",
        "category": "edr",
        "severity": 1,
        "details": f"Details {MARKER}",
        "created_at": START,
        "updated_at": START,
    }
    fields.update(overrides)
    return Case.model_validate(fields)


def _page() -> Page:
    return Page(case_id=1, responder_id=1, step=2, round=1, due_at=START, sent_at=START)


@pytest.mark.parametrize(
    ("overrides", "summary"),
    [
        (
            {"sensitive": True},
            "Sensitive case ESC-0042 (Emergency data request, sev1): open Vigil to view",
        ),
        ({"category": "csea"}, "Sensitive case ESC-0042 (CSEA report, sev1): open Vigil to view"),
    ],
)
def test_sensitive_payload_carries_no_title_or_details(
    overrides: dict[str, object], summary: str
) -> None:
    payload = build_payload(_case(**overrides), _page(), "ana")
    assert MARKER not in encode_payload(payload).decode()
    assert payload["summary"] == summary


def test_payload_fields_of_an_ordinary_case() -> None:
    payload = build_payload(_case(), _page(), "ana")
    assert payload == {
        "ref": "ESC-0042",
        "category": "edr",
        "severity": "sev1",
        "status": "triggered",
        "step": 2,
        "round": 1,
        "reason": "escalation",
        "responder": "ana",
        "sent_at": "2026-11-03T08:00:00Z",
        "summary": f"Title {MARKER}",
    }
    assert "Details" not in encode_payload(payload).decode()


def test_signature_verifies_and_rejects_tampering() -> None:
    body = b'{"ref":"ESC-0042"}'
    ts = int(START.timestamp())
    header = f"t={ts},v1={sign(SECRET, ts, body)}"
    assert verify_signature(SECRET, header, body, START)
    assert verify_signature(SECRET, f"t={ts},v1=00ff,v1={sign(SECRET, ts, body)}", body, START)
    assert not verify_signature(SECRET, header, body + b" ", START)
    assert not verify_signature("other", header, body, START)
    assert not verify_signature(SECRET, header, body, START + timedelta(seconds=301))
    assert verify_signature(SECRET, header, body, START - timedelta(seconds=300))
    assert not verify_signature(SECRET, f"v1={sign(SECRET, ts, body)}", body, START)
    assert not verify_signature(SECRET, "garbage", body, START)


# --- the outbox against a real server --------------------------------------------


def test_retries_with_backoff_and_retry_after_then_delivers_once(
    db: Database,
    clock: FakeClock,
    client: httpx.Client,
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = serve((503, {}), (503, {}), (429, {"Retry-After": "7"}), (200, {}))
    did = add_delivery(db, clock, add_contact(db, server.url), sensitive=True)
    start = clock.now()
    rng = FixedRandom(0.5)

    def run() -> tuple[int, int, int]:
        result = process_webhook_outbox(db, clock, client, rng=rng)
        return result.sent, result.retried, result.failed

    assert run() == (0, 1, 0)
    # Full jitter at one half of the first ceiling (60 s): the next try is 30 s away.
    row = delivery(db, did)
    assert (row.status, row.attempts, row.next_attempt_at) == (
        "pending",
        1,
        start + timedelta(seconds=30),
    )
    assert row.last_error == f"HTTP 503 from 127.0.0.1:{server.port}"

    clock.advance(seconds=29)
    assert run() == (0, 0, 0)
    clock.advance(seconds=1)
    assert run() == (0, 1, 0)
    assert delivery(db, did).next_attempt_at == clock.now() + timedelta(seconds=60)

    clock.advance(seconds=60)
    assert run() == (0, 1, 0)  # 429 with Retry-After: 7
    assert delivery(db, did).next_attempt_at == clock.now() + timedelta(seconds=7)
    clock.advance(seconds=6)
    assert run() == (0, 0, 0)
    clock.advance(seconds=1)
    assert run() == (1, 0, 0)

    row = delivery(db, did)
    assert (row.status, row.attempts, row.delivered_at, row.next_attempt_at) == (
        "delivered",
        4,
        clock.now(),
        None,
    )
    assert attempt_details(db, did) == [
        (False, "HTTP 503"),
        (False, "HTTP 503"),
        (False, "HTTP 429"),
        (True, "HTTP 200"),
    ]
    clock.advance(hours=2)
    assert run() == (0, 0, 0)

    assert [r.status for r in server.received] == [503, 503, 429, 200]
    assert {r.headers["Idempotency-Key"] for r in server.received} == {row.idempotency_key}
    assert len({r.body for r in server.received}) == 1
    delivered = server.received[-1]
    assert delivered.headers["Content-Type"] == "application/json"
    assert delivered.headers["User-Agent"].startswith("vigil/")
    assert row.delivered_at is not None
    assert delivered.headers["X-Vigil-Timestamp"] == str(int(row.delivered_at.timestamp()))
    assert verify_signature(
        SECRET, delivered.headers["X-Vigil-Signature"], delivered.body, row.delivered_at
    )
    # Two hours on, the same request is a replay.
    assert not verify_signature(
        SECRET, delivered.headers["X-Vigil-Signature"], delivered.body, clock.now()
    )
    body = json.loads(delivered.body)
    assert (body["ref"], body["responder"], body["severity"]) == ("ESC-0042", "ana", "sev1")
    assert MARKER not in delivered.body.decode()
    # Logs name the handle and host, never the secret or the URL's token.
    assert "ana" in caplog.text
    assert SECRET not in caplog.text
    assert MARKER not in caplog.text


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        pytest.param(lambda now: "7", timedelta(seconds=7), id="seconds"),
        pytest.param(
            lambda now: format_datetime(now + timedelta(seconds=90), usegmt=True),
            timedelta(seconds=90),
            id="http-date",
        ),
        pytest.param(lambda now: "86400", timedelta(hours=1), id="capped"),
        pytest.param(lambda now: "soon", timedelta(seconds=30), id="unreadable-so-backoff"),
    ],
)
def test_retry_after_seconds_or_date_capped(
    db: Database,
    clock: FakeClock,
    client: httpx.Client,
    serve: Serve,
    retry_after: Callable[[datetime], str],
    wait: timedelta,
) -> None:
    start = clock.now()
    server = serve((503, {"Retry-After": retry_after(start)}))
    did = add_delivery(db, clock, add_contact(db, server.url))
    process_webhook_outbox(db, clock, client, rng=FixedRandom(0.5))
    assert delivery(db, did).next_attempt_at == start + wait


def test_client_error_is_a_permanent_failure(
    db: Database, clock: FakeClock, client: httpx.Client, serve: Serve
) -> None:
    server = serve((400, {}))
    did = add_delivery(db, clock, add_contact(db, server.url))
    result = process_webhook_outbox(db, clock, client)
    assert (result.sent, result.retried, result.failed) == (0, 0, 1)
    row = delivery(db, did)
    assert (row.status, row.next_attempt_at, row.attempts) == ("failed", None, 1)
    assert row.last_error == f"HTTP 400 Bad Request from 127.0.0.1:{server.port}"
    clock.advance(days=1)
    process_webhook_outbox(db, clock, client)
    assert len(server.received) == 1


def test_connection_refused_is_retried(
    db: Database, clock: FakeClock, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    did = add_delivery(db, clock, add_contact(db, f"http://127.0.0.1:{port}/h?token={MARKER}"))
    result = process_webhook_outbox(db, clock, client, rng=FixedRandom(1.0))
    assert (result.sent, result.retried, result.failed) == (0, 1, 0)
    row = delivery(db, did)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == clock.now() + timedelta(seconds=60)
    assert row.last_error == f"ConnectError from 127.0.0.1:{port}"
    assert attempt_details(db, did) == [(False, "ConnectError")]
    assert MARKER not in caplog.text


def test_pages_to_one_contact_stay_in_order(
    any_db: Database, clock: FakeClock, client: httpx.Client, serve: Serve
) -> None:
    db = any_db
    flaky = serve((503, {}))
    steady = serve()
    flaky_contact = add_contact(db, flaky.url)
    first = add_delivery(db, clock, flaky_contact, ref="ESC-0001")
    second = add_delivery(db, clock, flaky_contact, ref="ESC-0002")
    other = add_delivery(db, clock, add_contact(db, steady.url, handle="ben"), ref="ESC-0003")
    desktop = add_delivery(db, clock, flaky_contact, ref="ESC-0004", channel="desktop")
    rng = FixedRandom(0.5)

    result = process_webhook_outbox(db, clock, client, rng=rng)
    # The flaky contact's first page failed; its second waits even though it is due.
    assert (result.sent, result.retried) == (1, 1)
    assert delivery(db, other).status == "delivered"
    assert delivery(db, second).attempts == 0
    clock.advance(seconds=10)
    assert process_webhook_outbox(db, clock, client, rng=rng).sent == 0

    clock.advance(seconds=20)
    assert process_webhook_outbox(db, clock, client, rng=rng).sent == 1
    assert delivery(db, first).status == "delivered"
    assert process_webhook_outbox(db, clock, client, rng=rng).sent == 1
    assert delivery(db, second).status == "delivered"

    keys = [r.headers["Idempotency-Key"] for r in flaky.received]
    first_key, second_key = (
        delivery(db, first).idempotency_key,
        delivery(db, second).idempotency_key,
    )
    assert keys == [first_key, first_key, second_key]
    # Other channels are not the webhook outbox's business.
    assert (delivery(db, desktop).status, delivery(db, desktop).attempts) == ("pending", 0)


def test_crash_after_claim_is_retried_after_the_lease(
    any_db: Database, clock: FakeClock, client: httpx.Client, serve: Serve
) -> None:
    db = any_db
    server = serve()
    did = add_delivery(db, clock, add_contact(db, server.url))
    jobs = claim_webhook_deliveries(db, clock, lease=timedelta(seconds=60))
    assert [job.delivery_id for job in jobs] == [did]
    assert SECRET not in repr(jobs)
    assert MARKER not in repr(jobs)
    # ...and the claimer dies without sending.
    assert process_webhook_outbox(db, clock, client).sent == 0
    clock.advance(seconds=59)
    assert process_webhook_outbox(db, clock, client).sent == 0
    assert server.received == []
    clock.advance(seconds=1)
    assert process_webhook_outbox(db, clock, client).sent == 1
    assert len(server.received) == 1
    assert delivery(db, did).status == "delivered"


@pytest.mark.pg
def test_postgres_claim_skips_rows_another_engine_holds(pg_db: Database, clock: FakeClock) -> None:
    held = add_delivery(pg_db, clock, add_contact(pg_db, "https://a.example/h"), ref="ESC-0001")
    free = add_delivery(
        pg_db, clock, add_contact(pg_db, "https://b.example/h", handle="ben"), ref="ESC-0002"
    )
    with pg_db.write() as other_engine:
        other_engine.exec(select(Delivery).where(Delivery.id == held).with_for_update()).one()
        # Claimed without waiting for the other engine's lock, and without its row.
        jobs = claim_webhook_deliveries(pg_db, clock)
    assert [job.delivery_id for job in jobs] == [free]
    assert [job.delivery_id for job in claim_webhook_deliveries(pg_db, clock)] == [held]


def test_gives_up_after_max_attempts(
    db: Database, clock: FakeClock, client: httpx.Client, serve: Serve
) -> None:
    server = serve(*[(503, {})] * 10)
    did = add_delivery(db, clock, add_contact(db, server.url))
    policy = RetryPolicy(max_attempts=3)
    outcomes = []
    for _ in range(5):
        result = process_webhook_outbox(db, clock, client, policy=policy, rng=random.Random(7))
        outcomes.append((result.retried, result.failed))
        clock.advance(hours=1)
    assert outcomes == [(1, 0), (1, 0), (0, 1), (0, 0), (0, 0)]
    assert len(server.received) == 3
    row = delivery(db, did)
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 3, None)
    assert row.last_error == f"gave up after 3 attempts: HTTP 503 from 127.0.0.1:{server.port}"


# --- in-process transports ----------------------------------------------------------


def test_timeout_is_retried_and_timeouts_are_explicit(db: Database, clock: FakeClock) -> None:
    seen: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        raise httpx.ReadTimeout("timed out", request=request)

    did = add_delivery(db, clock, add_contact(db, "https://hooks.example/x"))
    with httpx.Client(transport=httpx.MockTransport(handler)) as mock:
        result = process_webhook_outbox(db, clock, mock, rng=FixedRandom(0.5))
    assert (result.sent, result.retried, result.failed) == (0, 1, 0)
    assert seen == [{"connect": 5.0, "read": 10.0, "write": 10.0, "pool": 10.0}]
    row = delivery(db, did)
    assert (row.status, row.last_error) == ("pending", "ReadTimeout from hooks.example")
    assert row.next_attempt_at == clock.now() + timedelta(seconds=30)


def test_contact_without_secret_is_sent_unsigned(db: Database, clock: FakeClock) -> None:
    headers: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        headers.append(request.headers)
        return httpx.Response(204)

    add_delivery(db, clock, add_contact(db, "https://chat.example/hook", secret=None))
    with httpx.Client(transport=httpx.MockTransport(handler)) as mock:
        assert process_webhook_outbox(db, clock, mock).sent == 1
    assert "X-Vigil-Signature" not in headers[0]
    assert headers[0]["Idempotency-Key"].startswith("ESC-0042:")


@pytest.mark.parametrize(
    ("url", "error"),
    [
        (None, "no webhook URL"),
        (
            "ftp://files.example/drop",
            "webhook URL must start with http:// or https://",
        ),
    ],
)
def test_unusable_url_fails_without_sending(
    db: Database, clock: FakeClock, url: str | None, error: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing should be sent")

    did = add_delivery(db, clock, add_contact(db, url))
    with httpx.Client(transport=httpx.MockTransport(handler)) as mock:
        assert process_webhook_outbox(db, clock, mock).failed == 1
    assert (delivery(db, did).status, delivery(db, did).last_error) == ("failed", error)


def test_rows_whose_lease_runs_short_are_released(db: Database, clock: FakeClock) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        clock.advance(seconds=40)  # a slow receiver eats most of the 60 s lease
        return httpx.Response(200)

    first = add_delivery(db, clock, add_contact(db, "https://a.example/h"), ref="ESC-0001")
    second = add_delivery(
        db, clock, add_contact(db, "https://b.example/h", handle="ben"), ref="ESC-0002"
    )
    with httpx.Client(transport=httpx.MockTransport(slow)) as mock:
        result = process_webhook_outbox(db, clock, mock, max_workers=1)
        assert (result.sent, result.deferred) == (1, 1)
        assert delivery(db, first).status == "delivered"
        row = delivery(db, second)
        # Released at once rather than left until its lease is over.
        assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 0, clock.now())
        assert process_webhook_outbox(db, clock, mock).sent == 1
    assert delivery(db, second).status == "delivered"


# --- policy -------------------------------------------------------------------------


def test_backoff_doubles_to_the_cap_and_spans_about_a_day() -> None:
    policy = RetryPolicy()
    ceilings = [policy.backoff(n, FixedRandom(1.0)) for n in range(1, policy.max_attempts)]
    assert ceilings[:3] == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    assert ceilings[-1] == policy.cap
    assert timedelta(hours=20) < sum(ceilings, timedelta()) < timedelta(hours=26)
    jittered = [policy.backoff(5, random.Random(seed)) for seed in range(50)]
    assert all(timedelta(0) <= wait <= timedelta(minutes=16) for wait in jittered)
    assert len(set(jittered)) == 50


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts: expected at least 1"),
        ({"base": timedelta(0)}, "base: expected a positive duration"),
        ({"cap": timedelta(seconds=1)}, "cap: expected at least base"),
    ],
)
def test_retry_policy_refuses_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_lease_must_outlast_one_request(
    db: Database, clock: FakeClock, client: httpx.Client
) -> None:
    with pytest.raises(ValueError, match="lease: expected more than"):
        process_webhook_outbox(db, clock, client, lease=REQUEST_BUDGET)

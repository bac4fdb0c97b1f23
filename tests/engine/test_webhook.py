"""The webhook notifier: payload, Standard Webhooks signature, refused destinations, and
the outbox against real local servers (slow, dripping, failing, gone)."""

from __future__ import annotations

import json
import logging
import random
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from sqlmodel import col, select

from app.core.clock import FakeClock, SystemClock
from app.delivery.webhook import (
    DEFAULT_SETTINGS,
    OutboxSettings,
    RetryPolicy,
    WebhookOutbox,
    build_payload,
    claim_due,
    claim_webhook_deliveries,
    encode_payload,
    process_webhook_outbox,
    request_headers,
    sign,
)
from app.rules.destinations import address_kind, contact_problems, signing_key
from data import audit
from data.db import Database
from data.escalation import DeliveryAttempt
from data.models import AuditRecord, Case, ContactMethod, Delivery, Page, Responder, TimelineEvent
from tests import standard_webhooks
from tests.consistency import assert_consistent

START = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
SECRET = "whsec-not-for-logs"
MARKER = "MARKER-7f3a"
PUBLIC = "93.184.215.14"


class FixedRandom(random.Random):
    """`uniform(0, c)` returns `fraction * c`: the jittered waits become predictable."""

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self.fraction = fraction

    def random(self) -> float:
        return self.fraction


async def resolve_public(host: str, port: int) -> list[str]:
    """Every name resolves to one public address (for in-process transports)."""
    return [PUBLIC]


@dataclass
class Received:
    headers: dict[str, str]  # names in lower case
    body: bytes
    status: int
    at: datetime

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class ScriptedServer:
    """A real HTTP server on 127.0.0.1 answering from a script, then 200; `delay` seconds
    before each answer, or with `drip` seconds between the bytes of its status line and
    headers."""

    script: list[tuple[int, dict[str, str]]]
    delay: float = 0.0
    drip: float | None = None
    received: list[Received] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?token={MARKER}"

    def ok_ids(self) -> list[str]:
        return [r.webhook_id for r in self.received if 200 <= r.status < 300]


Serve = Callable[..., ScriptedServer]


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []
    closing = threading.Event()

    def start(
        *script: tuple[int, dict[str, str]], delay: float = 0.0, drip: float | None = None
    ) -> ScriptedServer:
        state = ScriptedServer(list(script), delay, drip)
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                at = datetime.now(UTC)
                with lock:
                    status, headers = state.script.pop(0) if state.script else (200, {})
                    headers_seen = {k.lower(): v for k, v in self.headers.items()}
                    state.received.append(Received(headers_seen, body, status, at))
                if state.drip is not None:
                    self._drip(state.drip)
                    return
                if state.delay:
                    closing.wait(state.delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _drip(self, every: float) -> None:
                answer = b"HTTP/1.1 200 OK\r\nX-Padding: " + b"." * 200 + b"\r\n\r\n"
                try:
                    for byte in answer:
                        if closing.wait(every):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                except OSError:  # the client hung up
                    return

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
    closing.set()
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join()


def add_contact(
    db: Database,
    url: str | None,
    secret: str | None = SECRET,
    handle: str = "ana",
    *,
    local: bool = True,
) -> int:
    """A webhook contact; `local` allows plain http and loopback, as a receiver on this
    machine needs (explicitly, as a team file would)."""
    with db.write() as session:
        responder = session.exec(select(Responder).where(Responder.handle == handle)).first()
        if responder is None:
            responder = Responder(handle=handle, name=handle.title())
            session.add(responder)
            session.flush()
        assert responder.id is not None
        contact = ContactMethod(
            responder_id=responder.id,
            kind="webhook",
            url=url,
            secret=secret,
            allow_insecure=local,
            allow_private=local,
        )
        session.add(contact)
        session.flush()
        assert contact.id is not None
        return contact.id


def add_delivery(
    db: Database,
    clock: FakeClock | SystemClock,
    contact_id: int,
    *,
    ref: str = "ESC-0042",
    sensitive: bool = False,
    channel: str = "webhook",
    severity: int = 1,
    due: datetime | None = None,
) -> int:
    """A case paged at step 1 to the contact's owner, with one delivery due at `due`
    (now by default)."""
    now = clock.now()
    due = due or now
    with db.write() as session:
        contact = session.get(ContactMethod, contact_id)
        assert contact is not None
        case = session.exec(select(Case).where(Case.ref == ref)).first()
        if case is None:
            case = Case(
                ref=ref,
                title=f"Title {MARKER}",
                category="edr",
                severity=severity,
                sensitive=sensitive,
                details=f"Details {MARKER}",
                created_at=now,
                updated_at=now,
                next_escalation_at=now + timedelta(days=1),
            )
            session.add(case)
            session.flush()
            audit.append(session, at=now, actor="test", action="case.open", case_ref=ref)
        assert case.id is not None
        page = Page(
            case_id=case.id,
            responder_id=contact.responder_id,
            step=1,
            round=contact_id,
            reason="manual",  # sent by hand: no escalation claim behind it
            due_at=due,
            sent_at=due,
        )
        session.add(page)
        session.flush()
        assert page.id is not None
        delivery = Delivery(
            page_id=page.id,
            channel=channel,
            contact_id=contact_id,
            next_attempt_at=due,
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


def run(db: Database, clock: FakeClock, **kwargs: object) -> tuple[int, int, int, int]:
    result = process_webhook_outbox(db, clock, **kwargs)  # type: ignore[arg-type]
    return result.sent, result.retried, result.failed, result.gone


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


def test_signature_matches_the_standard_webhooks_reference_vector() -> None:
    """The example of the Standard Webhooks reference libraries, signed by us."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize("secret", [SECRET, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
def test_the_spec_verifier_accepts_our_headers_and_refuses_tampering(secret: str) -> None:
    body = b'{"ref":"ESC-0042"}'
    ts = int(START.timestamp())
    headers = request_headers("ESC-0042:0:1:1:ana:3", body, ts, secret)
    verify = standard_webhooks.verify
    assert verify(secret, headers, body, START)
    assert verify(secret, headers, body, START - timedelta(seconds=300))
    assert not verify(secret, headers, body, START + timedelta(seconds=301))  # a replay
    assert not verify(secret, headers, body + b" ", START)
    assert not verify("whsec_" + "A" * 24, headers, body, START)
    assert not verify(secret, {**headers, "webhook-id": "ESC-0043:0:1:1:ana:3"}, body, START)
    assert not verify(secret, {**headers, "webhook-timestamp": str(ts + 1)}, body, START)
    # Several signatures, space-delimited (a rotation): any valid v1 will do.
    several = f"v1,bm9wZQ== v2,x {headers['webhook-signature']}"
    assert verify(secret, {**headers, "webhook-signature": several}, body, START)
    assert not verify(secret, {**headers, "webhook-signature": "v1,bm9wZQ=="}, body, START)


def test_a_broken_whsec_secret_is_named_without_its_value() -> None:
    with pytest.raises(ValueError, match="expected standard base64 after 'whsec_'") as info:
        signing_key("whsec_not*base64")
    assert "not*base64" not in str(info.value)
    assert signing_key("whsec_" + "QUJD") == b"ABC"
    assert signing_key("plain secret") == b"plain secret"


# --- which destinations are refused ------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        (PUBLIC, None),
        ("2606:4700::1111", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert address_kind(address) == kind


@pytest.mark.parametrize(
    ("url", "secret", "flags", "problems"),
    [
        ("https://hooks.example/x", "s" * 16, {}, []),
        ("https://hooks.example/x", None, {}, []),
        (
            "http://hooks.example/x",
            None,
            {},
            [("url", "plain http:// is refused")],
        ),
        ("http://hooks.example/x", "short", {"allow_insecure": True}, []),
        (
            "https://hooks.example/x",
            "s" * 15,
            {},
            [("secret", "expected a secret of at least 16 bytes, got 15")],
        ),
        (
            "https://hooks.example/x",
            "whsec_" + "QUJD" * 4,  # 12 bytes once decoded
            {},
            [("secret", "expected a secret of at least 16 bytes, got 12")],
        ),
        (
            "https://127.0.0.1:8443/x",
            None,
            {},
            [("url", "127.0.0.1 is a loopback address: refused unless allow_private = true")],
        ),
        (
            "https://localhost/x",
            None,
            {},
            [("url", "localhost is a loopback address")],
        ),
        (
            "https://[fe80::1]/x",
            None,
            {},
            [("url", "fe80::1 is a link-local address")],
        ),
        ("https://10.0.0.8/x", None, {"allow_private": True}, []),
    ],
)
def test_contact_problems(
    url: str, secret: str | None, flags: dict[str, bool], problems: list[tuple[str, str]]
) -> None:
    found = contact_problems(
        url,
        secret,
        allow_insecure=flags.get("allow_insecure", False),
        allow_private=flags.get("allow_private", False),
    )
    assert [key for key, _ in found] == [key for key, _ in problems]
    for (_, message), (_, start) in zip(found, problems, strict=True):
        assert message.startswith(start)
        if secret:
            assert secret not in message


@pytest.mark.parametrize(
    ("url", "secret", "resolved", "error"),
    [
        (None, SECRET, [PUBLIC], "no webhook URL"),
        (
            "ftp://files.example/drop",
            SECRET,
            [PUBLIC],
            "webhook URL must start with http:// or https://",
        ),
        (
            "http://hooks.example/x",
            SECRET,
            [PUBLIC],
            "refused (url): plain http:// is refused",
        ),
        ("https://hooks.example/x", "too-short", [PUBLIC], "refused (secret): expected a secret"),
        (
            "https://127.0.0.1/x",
            SECRET,
            [PUBLIC],
            "refused (url): 127.0.0.1 is a loopback address",
        ),
        (
            "https://hooks.example/x",
            SECRET,
            [PUBLIC, "10.0.0.5"],
            "refused (url): hooks.example resolves to a private address (10.0.0.5): "
            "refused unless allow_private = true on this contact",
        ),
        (
            "https://rebind.example/x",
            SECRET,
            ["169.254.169.254"],
            "refused (url): rebind.example resolves to a link-local address",
        ),
    ],
)
def test_refused_destinations_fail_without_sending(
    db: Database,
    clock: FakeClock,
    url: str | None,
    secret: str,
    resolved: list[str],
    error: str,
) -> None:
    """Settings the team file did not allow, and names that resolve (now) to a private
    address, fail at once: nothing is sent, and the error says what would allow it."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing should be sent")

    async def resolve(host: str, port: int) -> list[str]:
        return resolved

    did = add_delivery(db, clock, add_contact(db, url, secret, local=False))
    assert run(db, clock, transport=httpx.MockTransport(handler), resolve=resolve) == (0, 0, 1, 0)
    row = delivery(db, did)
    assert row.status == "failed"
    assert row.last_error is not None
    assert row.last_error.startswith(error)
    assert secret not in row.last_error


def test_the_connection_goes_to_the_address_checked(db: Database, clock: FakeClock) -> None:
    """The host is resolved once per attempt, checked, and that very address is
    connected to; the receiver is still named in Host and in TLS (SNI)."""
    seen: list[httpx.Request] = []
    lookups: list[tuple[str, int]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async def resolve(host: str, port: int) -> list[str]:
        lookups.append((host, port))
        return [PUBLIC]

    add_delivery(db, clock, add_contact(db, "https://hooks.example:8443/x?t=1", local=False))
    assert run(db, clock, transport=httpx.MockTransport(handler), resolve=resolve)[0] == 1
    assert lookups == [("hooks.example", 8443)]
    (request,) = seen
    assert (request.url.host, request.url.port, request.url.raw_path) == (PUBLIC, 8443, b"/x?t=1")
    assert request.headers["Host"] == "hooks.example:8443"
    assert request.extensions["sni_hostname"] == "hooks.example"


# --- the outbox against a real server --------------------------------------------


def test_retries_with_backoff_and_retry_after_then_delivers_once(
    db: Database, clock: FakeClock, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = serve((503, {}), (503, {}), (429, {"Retry-After": "7"}), (200, {}))
    did = add_delivery(db, clock, add_contact(db, server.url), sensitive=True)
    start = clock.now()
    rng = FixedRandom(0.5)

    assert run(db, clock, rng=rng) == (0, 1, 0, 0)
    # Full jitter at one half of the first ceiling (60 s): the next try is 30 s away.
    row = delivery(db, did)
    assert (row.status, row.attempts, row.next_attempt_at) == (
        "pending",
        1,
        start + timedelta(seconds=30),
    )
    assert row.last_error == f"HTTP 503 from 127.0.0.1:{server.port}"

    clock.advance(seconds=29)
    assert run(db, clock, rng=rng) == (0, 0, 0, 0)
    clock.advance(seconds=1)
    assert run(db, clock, rng=rng) == (0, 1, 0, 0)
    assert delivery(db, did).next_attempt_at == clock.now() + timedelta(seconds=60)

    clock.advance(seconds=60)
    assert run(db, clock, rng=rng) == (0, 1, 0, 0)  # 429 with Retry-After: 7
    assert delivery(db, did).next_attempt_at == clock.now() + timedelta(seconds=7)
    clock.advance(seconds=6)
    assert run(db, clock, rng=rng) == (0, 0, 0, 0)
    clock.advance(seconds=1)
    assert run(db, clock, rng=rng) == (1, 0, 0, 0)

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
    assert run(db, clock, rng=rng) == (0, 0, 0, 0)

    assert [r.status for r in server.received] == [503, 503, 429, 200]
    assert {r.webhook_id for r in server.received} == {row.idempotency_key}
    assert len({r.body for r in server.received}) == 1
    delivered = server.received[-1]
    assert delivered.headers["content-type"] == "application/json"
    assert delivered.headers["user-agent"].startswith("vigil/")
    assert row.delivered_at is not None
    assert delivered.headers["webhook-timestamp"] == str(int(row.delivered_at.timestamp()))
    assert standard_webhooks.verify(SECRET, delivered.headers, delivered.body, row.delivered_at)
    # Two hours on, the same request is a replay.
    assert not standard_webhooks.verify(SECRET, delivered.headers, delivered.body, clock.now())
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
    serve: Serve,
    retry_after: Callable[[datetime], str],
    wait: timedelta,
) -> None:
    start = clock.now()
    server = serve((503, {"Retry-After": retry_after(start)}))
    did = add_delivery(db, clock, add_contact(db, server.url))
    process_webhook_outbox(db, clock, rng=FixedRandom(0.5))
    assert delivery(db, did).next_attempt_at == start + wait


@pytest.mark.parametrize(
    "answer", [(404, {}), (400, {}), (301, {"Location": "https://elsewhere.example/"}), (500, {})]
)
def test_every_other_answer_is_retried_with_backoff(
    db: Database, clock: FakeClock, serve: Serve, answer: tuple[int, dict[str, str]]
) -> None:
    """Only 2xx delivers and only 410 gives up at once: a 404 or a redirect (never
    followed) may be a receiver mid-deploy, so it is retried like a 500."""
    server = serve(answer)
    did = add_delivery(db, clock, add_contact(db, server.url))
    assert run(db, clock, rng=FixedRandom(0.5)) == (0, 1, 0, 0)
    row = delivery(db, did)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == clock.now() + timedelta(seconds=30)
    assert row.last_error == f"HTTP {answer[0]} from 127.0.0.1:{server.port}"
    clock.advance(seconds=30)
    assert run(db, clock) == (1, 0, 0, 0)
    assert len(server.received) == 2
    assert "elsewhere" not in str(server.received)  # the redirect was not followed


def test_410_gone_marks_the_contact_gone_and_tells_the_cases(
    any_db: Database, clock: FakeClock, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    db = any_db
    server = serve((410, {}))
    gone = add_contact(db, server.url)
    first = add_delivery(db, clock, gone, ref="ESC-0001")
    queued = add_delivery(db, clock, gone, ref="ESC-0002")
    other_channel = add_delivery(db, clock, gone, ref="ESC-0005", channel="desktop")
    steady = serve()
    ben = add_delivery(db, clock, add_contact(db, steady.url, handle="ben"), ref="ESC-0003")

    assert run(db, clock) == (1, 0, 0, 1)
    for did in (first, queued):
        row = delivery(db, did)
        assert row.status == "failed"
        assert row.last_error is not None
        assert "410 Gone" in row.last_error
        assert "this contact is gone" in row.last_error
    assert delivery(db, ben).status == "delivered"
    assert delivery(db, other_channel).status == "pending"  # not the outbox's business
    with db.read() as session:
        contact = session.get(ContactMethod, gone)
        assert contact is not None
        assert contact.gone_at == clock.now()
        told = session.exec(
            select(Case.ref, TimelineEvent.text)
            .join(Case, col(Case.id) == col(TimelineEvent.case_id))
            .where(TimelineEvent.kind == "webhook_gone")
            .order_by(col(Case.ref))
        ).all()
        audited = session.exec(
            select(AuditRecord.case_ref).where(AuditRecord.action == "contact.gone")
        ).all()
    assert [ref for ref, _ in told] == ["ESC-0001", "ESC-0002"]
    assert told[0][1].startswith(f"ana's webhook at 127.0.0.1:{server.port} answered 410 Gone")
    assert "supervisor" in told[0][1]
    assert sorted(audited) == ["ESC-0001", "ESC-0002"]
    assert "answered 410 Gone" in caplog.text
    assert MARKER not in caplog.text

    # It stays gone: a later page fails without being sent.
    went = clock.now()
    later = add_delivery(db, clock, gone, ref="ESC-0004")
    clock.advance(hours=1)
    assert run(db, clock) == (0, 0, 1, 0)
    assert delivery(db, later).last_error == (
        f"the receiver answered 410 Gone at {went.isoformat()}: this contact is gone"
    )
    assert len(server.received) == 1
    assert_consistent(db)


def test_connection_refused_is_retried(
    db: Database, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    did = add_delivery(db, clock, add_contact(db, f"http://127.0.0.1:{port}/h?token={MARKER}"))
    assert run(db, clock, rng=FixedRandom(1.0)) == (0, 1, 0, 0)
    row = delivery(db, did)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == clock.now() + timedelta(seconds=60)
    assert row.last_error == f"ConnectError from 127.0.0.1:{port}"
    assert attempt_details(db, did) == [(False, "ConnectError")]
    assert MARKER not in caplog.text


def test_a_dripping_receiver_is_cut_off_at_the_deadline(
    db: Database, clock: FakeClock, serve: Serve
) -> None:
    """One byte every 50 ms never trips a per-read timeout; the attempt's own deadline
    ends it all the same."""
    server = serve(drip=0.05)
    did = add_delivery(db, clock, add_contact(db, server.url))
    settings = OutboxSettings(deadline=timedelta(seconds=0.4), lease=timedelta(seconds=10))
    began = time.monotonic()
    assert run(db, clock, settings=settings, rng=FixedRandom(0.5)) == (0, 1, 0, 0)
    took = time.monotonic() - began
    assert 0.4 <= took < 1.5
    assert delivery(db, did).last_error == f"no answer within 0.4 s from 127.0.0.1:{server.port}"
    assert len(server.received) == 1


def test_sev1_goes_first_when_slots_are_few(db: Database, clock: FakeClock, serve: Serve) -> None:
    server = serve()
    routine = add_delivery(db, clock, add_contact(db, server.url), ref="ESC-0001", severity=4)
    urgent = add_delivery(
        db, clock, add_contact(db, server.url, handle="ben"), ref="ESC-0002", severity=1
    )
    assert run(db, clock, limit=1) == (1, 0, 0, 0)
    assert (delivery(db, urgent).status, delivery(db, routine).status) == ("delivered", "pending")
    assert run(db, clock, limit=1) == (1, 0, 0, 0)
    assert [r.webhook_id for r in server.received] == [
        delivery(db, urgent).idempotency_key,
        delivery(db, routine).idempotency_key,
    ]


def test_pages_to_one_contact_stay_in_order(
    any_db: Database, clock: FakeClock, serve: Serve
) -> None:
    db = any_db
    flaky = serve((503, {}))
    steady = serve()
    flaky_contact = add_contact(db, flaky.url)
    first = add_delivery(db, clock, flaky_contact, ref="ESC-0001", severity=3)
    second = add_delivery(db, clock, flaky_contact, ref="ESC-0002", severity=1)
    other = add_delivery(db, clock, add_contact(db, steady.url, handle="ben"), ref="ESC-0003")
    desktop = add_delivery(db, clock, flaky_contact, ref="ESC-0004", channel="desktop")
    rng = FixedRandom(0.5)

    # The flaky contact's first page failed; its second waits even though it is due (and
    # a sev1: severity orders contacts, never one contact's pages).
    assert run(db, clock, rng=rng)[:2] == (1, 1)
    assert delivery(db, other).status == "delivered"
    assert delivery(db, second).attempts == 0
    clock.advance(seconds=10)
    assert run(db, clock, rng=rng)[0] == 0

    clock.advance(seconds=20)
    assert run(db, clock, rng=rng)[0] == 1
    assert delivery(db, first).status == "delivered"
    assert run(db, clock, rng=rng)[0] == 1
    assert delivery(db, second).status == "delivered"

    keys = [r.webhook_id for r in flaky.received]
    first_key, second_key = (
        delivery(db, first).idempotency_key,
        delivery(db, second).idempotency_key,
    )
    assert keys == [first_key, first_key, second_key]
    assert (delivery(db, desktop).status, delivery(db, desktop).attempts) == ("pending", 0)


def test_crash_after_claim_is_retried_after_the_lease(
    any_db: Database, clock: FakeClock, serve: Serve
) -> None:
    db = any_db
    server = serve()
    did = add_delivery(db, clock, add_contact(db, server.url))
    jobs = claim_webhook_deliveries(db, clock, lease=timedelta(seconds=60))
    assert [job.delivery_id for job in jobs] == [did]
    assert SECRET not in repr(jobs)
    assert MARKER not in repr(jobs)
    # ...and the claimer dies without sending.
    assert run(db, clock)[0] == 0
    clock.advance(seconds=59)
    assert run(db, clock)[0] == 0
    assert server.received == []
    clock.advance(seconds=1)
    assert run(db, clock)[0] == 1
    assert len(server.received) == 1
    assert delivery(db, did).status == "delivered"


def test_on_sqlite_an_outbox_with_nothing_due_leaves_the_write_lock_alone(
    db: Database, clock: FakeClock, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's one write lock is held by another writer (a storm of alerts): an outbox
    woken with nothing due (its page leased, the next one due later) answers at once from
    a read, instead of queueing for the lock behind everyone who writes."""
    monkeypatch.setattr("data.db.SQLITE_BUSY_TIMEOUT_MS", 2000)
    contact = add_contact(db, serve().url)
    leased = add_delivery(db, clock, contact, ref="ESC-0001")
    later = add_delivery(db, clock, contact, ref="ESC-0002", due=clock.now() + timedelta(minutes=5))
    assert [job.delivery_id for job in claim_webhook_deliveries(db, clock)] == [leased]
    storm = sqlite3.connect(str(db.engine.url.database), isolation_level=None)
    storm.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        claim = claim_due(db, clock)
        waited = time.monotonic() - started
    finally:
        storm.execute("ROLLBACK")
        storm.close()
    assert claim.jobs == []
    assert claim.next_due == clock.now() + DEFAULT_SETTINGS.lease
    assert waited < 1.0  # not the 2 s of the busy timeout
    assert delivery(db, later).status == "pending"


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


def test_gives_up_after_max_attempts(db: Database, clock: FakeClock, serve: Serve) -> None:
    server = serve(*[(503, {})] * 10)
    did = add_delivery(db, clock, add_contact(db, server.url))
    settings = OutboxSettings(policy=RetryPolicy(max_attempts=3))
    outcomes = []
    for _ in range(5):
        _sent, retried, failed, _ = run(db, clock, settings=settings, rng=random.Random(7))
        outcomes.append((retried, failed))
        clock.advance(hours=1)
    assert outcomes == [(1, 0), (1, 0), (0, 1), (0, 0), (0, 0)]
    assert len(server.received) == 3
    row = delivery(db, did)
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 3, None)
    assert row.last_error == f"gave up after 3 attempts: HTTP 503 from 127.0.0.1:{server.port}"


# --- in-process transports ----------------------------------------------------------


def test_timeouts_are_the_deadline_and_a_timeout_is_retried(db: Database, clock: FakeClock) -> None:
    seen: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        raise httpx.ReadTimeout("timed out", request=request)

    did = add_delivery(db, clock, add_contact(db, "https://hooks.example/x", local=False))
    transport = httpx.MockTransport(handler)
    result = run(db, clock, transport=transport, resolve=resolve_public, rng=FixedRandom(0.5))
    assert result == (0, 1, 0, 0)
    assert seen == [{"connect": 10.0, "read": 10.0, "write": 10.0, "pool": 10.0}]
    row = delivery(db, did)
    assert (row.status, row.last_error) == ("pending", "ReadTimeout from hooks.example")
    assert row.next_attempt_at == clock.now() + timedelta(seconds=30)


def test_contact_without_secret_is_sent_unsigned(db: Database, clock: FakeClock) -> None:
    headers: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        headers.append(request.headers)
        return httpx.Response(204)

    add_delivery(db, clock, add_contact(db, "https://chat.example/hook", secret=None, local=False))
    transport = httpx.MockTransport(handler)
    assert run(db, clock, transport=transport, resolve=resolve_public)[0] == 1
    assert "webhook-signature" not in headers[0]
    assert headers[0]["webhook-id"].startswith("ESC-0042:")


# --- settings -------------------------------------------------------------------------


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


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "concurrency: expected at least 1"),
        ({"deadline": timedelta(0)}, "deadline: expected a positive duration"),
        ({"lease": timedelta(seconds=15)}, r"lease: expected more than 0:00:15 \(the deadline"),
        ({"poll": timedelta(0)}, "poll: expected a positive duration"),
    ],
)
def test_outbox_settings_refuse_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OutboxSettings(**kwargs)  # type: ignore[arg-type]


# --- five receivers, one outbox ------------------------------------------------------------

PAGES_EACH = 6
PAGE_GAP = 0.25  # seconds between the due times of one contact's pages
DEADLINE = 0.8  # well above SLOW: a loaded machine must not make the slow one look dead
SLOW = 0.2


def test_five_receivers_healthy_slow_dripping_recovering_and_gone(
    db: Database, serve: Serve, request: pytest.FixtureRequest
) -> None:
    """The long-running outbox (as the engine runs it, on real time and real sockets)
    against five receivers on 127.0.0.1: none of the broken ones holds the healthy one
    back, every recoverable page arrives exactly once and in order, and every request's
    signature verifies with a verifier written from the Standard Webhooks spec."""
    receivers = {
        "healthy": serve(),
        "slow": serve(delay=SLOW),
        "dripping": serve(drip=0.05),  # a byte every 50 ms: never a read timeout
        "recovering": serve((500, {}), (500, {}), (503, {})),
        "gone": serve((410, {})),
    }
    clock = SystemClock()
    contacts = {
        name: add_contact(db, server.url, handle=f"r-{name}") for name, server in receivers.items()
    }
    # The first pages fall due once all 30 are stored and the outbox runs, even on a loaded
    # machine: the lateness measured below is the outbox's, not this set-up's.
    t0 = clock.now() + timedelta(seconds=3)
    due: dict[str, datetime] = {}  # webhook-id -> due time
    ids: dict[str, list[str]] = {name: [] for name in receivers}
    for k in range(PAGES_EACH):
        for n, (name, contact) in enumerate(contacts.items()):
            at = t0 + timedelta(seconds=k * PAGE_GAP)
            did = add_delivery(db, clock, contact, ref=f"ESC-{k * 10 + n + 1:04d}", due=at)
            key = delivery(db, did).idempotency_key
            due[key] = at
            ids[name].append(key)

    settings = OutboxSettings(
        concurrency=4,  # fewer slots than receivers: bounded, yet nobody waits long
        deadline=timedelta(seconds=DEADLINE),
        lease=timedelta(seconds=6),
        poll=timedelta(seconds=1),
        policy=RetryPolicy(
            base=timedelta(seconds=0.1), cap=timedelta(seconds=0.2), max_attempts=100
        ),
    )
    outbox = WebhookOutbox(db, clock, settings, rng=random.Random(3))
    assert clock.now() < t0, "the set-up ran past the first page's due time"
    outbox.start()
    try:
        recoverable = ("healthy", "slow", "recovering")
        limit = time.monotonic() + 20
        while time.monotonic() < limit:
            if all(len(receivers[name].ok_ids()) >= PAGES_EACH for name in recoverable):
                break
            time.sleep(0.05)
        time.sleep(DEADLINE)  # a duplicate, were one coming, would have arrived by now
    finally:
        outbox.stop(timeout=2)

    # The healthy receiver got every page within 1 s of its due time, never before it.
    healthy = receivers["healthy"].received
    assert [r.webhook_id for r in healthy] == ids["healthy"]
    lags = [(r.at - due[r.webhook_id]).total_seconds() for r in healthy]
    assert all(0 <= lag < 1.0 for lag in lags), lags
    figure = request.node.user_properties.append  # in `--junitxml` reports
    figure(("healthy_worst_lag_ms", round(max(lags) * 1000)))
    figure(("dripping_attempts_cut", len(receivers["dripping"].received)))

    # Every recoverable page arrived exactly once, in order for each contact.
    for name in recoverable:
        assert receivers[name].ok_ids() == ids[name], name
    assert [r.status for r in receivers["recovering"].received] == [500, 500, 503] + [
        200
    ] * PAGES_EACH

    # The gone receiver was asked once; its contact is gone and its pages failed.
    assert len(receivers["gone"].received) == 1
    with db.read() as session:
        gone = session.get(ContactMethod, contacts["gone"])
        assert gone is not None
        assert gone.gone_at is not None
        statuses = session.exec(
            select(Delivery.status).where(Delivery.contact_id == contacts["gone"])
        ).all()
    assert set(statuses) == {"failed"}

    # The dripping receiver was cut off at the deadline each time, and only its own first
    # page was ever tried: its later ones wait their turn.
    dripped = receivers["dripping"].received
    assert dripped
    assert {r.webhook_id for r in dripped} == {ids["dripping"][0]}
    first = delivery_by_key(db, ids["dripping"][0])
    assert first.last_error is not None
    assert first.last_error.startswith(f"no answer within {DEADLINE:g} s")

    # Every request carried a valid Standard Webhooks signature.
    for server in receivers.values():
        for request in server.received:
            assert standard_webhooks.verify(SECRET, request.headers, request.body, request.at)
    assert_consistent(db)


def delivery_by_key(db: Database, key: str) -> Delivery:
    with db.read() as session:
        return session.exec(select(Delivery).where(Delivery.idempotency_key == key)).one()

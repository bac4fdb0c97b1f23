"""The webhook channel: signed JSON pages sent from a persistent outbox.

The escalation engine writes one `Delivery` row (channel ``webhook``) per page and
contact; `process_webhook_outbox` sends the due rows. A row is leased before it is
sent, so a crash mid-send means it is sent again after the lease, never lost: delivery
is at least once, and receivers drop repeats by the ``Idempotency-Key`` header (stable
across every attempt of one delivery, as is the body).

For receivers, each request carries:

- ``Content-Type: application/json`` and ``User-Agent: vigil/<version>``;
- ``Idempotency-Key``: the same on every attempt of one page to one contact;
- ``X-Vigil-Timestamp``: Unix seconds when the attempt was made;
- ``X-Vigil-Signature: t=<timestamp>,v1=<hex>`` where ``<hex>`` is
  HMAC-SHA256(secret, ``f"{timestamp}."`` + raw body). Verify it against the raw body
  before parsing, and refuse timestamps more than five minutes away from your clock
  (see `verify_signature`). A contact without a secret is sent unsigned, with no
  signature header: that suits chat hooks whose secret is the URL itself.

The body never carries a case's details, and for a sensitive case (every CSEA case is)
not even its title: only a generic summary that sends the reader to Vigil.

Outcomes: 2xx is delivered. 408, 425, 429, 5xx, timeouts and connection errors are
retried with exponential backoff and full jitter, honouring ``Retry-After``; after
`RetryPolicy.max_attempts` the row is failed. Any other status (other 4xx, an
unfollowed redirect) fails at once. Failed rows stay visible on the page in the console.
Messages and logs name a contact by responder handle and host only: never its secret,
path or query string, which often carry a token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from importlib.metadata import version
from typing import Any, Literal

import httpx
from sqlalchemy import exists
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from app.core.clock import Clock
from data.db import Database
from data.domain import CATEGORY_LABELS, Category, ContactKind, severity_name
from data.models import Case, ContactMethod, Delivery, DeliveryAttempt, Page, Responder

log = logging.getLogger(__name__)

CHANNEL = ContactKind.WEBHOOK.value
USER_AGENT = f"vigil/{version('vigil')}"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
# Read, write and waiting for a pooled connection all get the read timeout.
TIMEOUT = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
# About the longest one request may hold its lease: wait for a pooled connection,
# connect, send the body, wait for the response headers.
REQUEST_BUDGET = timedelta(seconds=CONNECT_TIMEOUT + 3 * READ_TIMEOUT)
SIGNATURE_TOLERANCE_SECONDS = 300
RETRYABLE_STATUSES = frozenset({408, 425, 429})

Kind = Literal["delivered", "retried", "failed", "deferred"]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter.

    With the defaults the waits between the 12 attempts add up to at most about a day
    (half that on average), long enough to ride out a receiver's bad night.
    """

    base: timedelta = timedelta(seconds=60)
    """Ceiling of the wait after the first failed attempt; it doubles after each one."""
    cap: timedelta = timedelta(hours=8)
    """The ceiling never grows past this."""
    max_attempts: int = 12
    """After this many attempts a still-failing delivery is marked failed."""
    retry_after_cap: timedelta = timedelta(hours=1)
    """A receiver's ``Retry-After`` is honoured up to this long."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts: expected at least 1, got {self.max_attempts}")
        if self.base <= timedelta(0):
            raise ValueError(f"base: expected a positive duration, got {self.base}")
        if self.cap < self.base:
            raise ValueError(f"cap: expected at least base ({self.base}), got {self.cap}")

    def backoff(self, attempts: int, rng: random.Random) -> timedelta:
        """The wait after `attempts` failed attempts: uniform in [0, min(cap, base * 2**(n-1))]."""
        ceiling = min(
            self.cap.total_seconds(),
            self.base.total_seconds() * 2 ** min(attempts - 1, 32),
        )
        return timedelta(seconds=rng.uniform(0, ceiling))


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class OutboxResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0
    """Claimed but released unsent because the lease ran short; picked up next time."""


@dataclass(frozen=True)
class WebhookJob:
    """One claimed delivery, with everything needed to send it outside any transaction."""

    delivery_id: int
    lease_until: datetime
    handle: str
    host: str
    url: str = field(repr=False)  # its path or query often holds a token
    idempotency_key: str
    body: bytes = field(repr=False)
    refusal: str | None
    """Why this delivery cannot be sent at all (no usable URL); None when it can."""
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class _Outcome:
    job: WebhookJob
    at: datetime
    kind: Kind
    detail: str
    retry_after: timedelta | None = None


# --- payload and signature -------------------------------------------------


def is_sensitive(case: Case) -> bool:
    return case.sensitive or case.category == Category.CSEA


def _category_label(category: str) -> str:
    try:
        return CATEGORY_LABELS[Category(category)]
    except ValueError:
        return category


def build_payload(case: Case, page: Page, handle: str) -> dict[str, Any]:
    """The JSON of one page. Never the details; for a sensitive case not even the title."""
    severity = severity_name(case.severity)
    if is_sensitive(case):
        label = _category_label(case.category)
        summary = f"Sensitive case {case.ref} ({label}, {severity}): open Vigil to view"
    else:
        summary = case.title
    late: dict[str, Any] = {}
    if page.reason in ("catch-up", "delayed"):  # sent late, after escalation was held up
        late["late_by_seconds"] = max(0, int((page.sent_at - page.due_at).total_seconds()))
    return {
        **late,
        "ref": case.ref,
        "category": case.category,
        "severity": severity,
        "status": case.status,
        "step": page.step,
        "round": page.round,
        "reason": page.reason,
        "responder": handle,
        "sent_at": page.sent_at.astimezone(UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
        "summary": summary,
    }


def encode_payload(payload: dict[str, Any]) -> bytes:
    """Canonical JSON, so every attempt of a delivery sends the very same bytes."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 over ``f"{timestamp}."`` + body, as lowercase hex."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    now: datetime,
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """Check an ``X-Vigil-Signature`` header (``t=<ts>,v1=<hex>[,v1=<hex>...]``).

    False when the header is malformed, its timestamp is more than `tolerance` seconds
    from `now` (a replay), or no ``v1`` matches the body.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs(now.timestamp() - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def request_headers(
    idempotency_key: str, body: bytes, timestamp: int, secret: str | None
) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Idempotency-Key": idempotency_key,
        "X-Vigil-Timestamp": str(timestamp),
    }
    if secret:
        headers["X-Vigil-Signature"] = f"t={timestamp},v1={sign(secret, timestamp, body)}"
    return headers


def make_client(transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """The client the engine uses: our timeouts, no redirects, one retry of a failed connect."""
    return httpx.Client(
        timeout=TIMEOUT,
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        transport=transport or httpx.HTTPTransport(retries=1),
    )


# --- the outbox --------------------------------------------------------------


def _host_label(url: httpx.URL) -> str:
    return f"{url.host}:{url.port}" if url.port else url.host


def _target(contact: ContactMethod | None) -> tuple[str, str | None]:
    """The host to name in messages, and why the contact cannot be sent to (None if it can)."""
    if contact is None or not contact.url:
        return "-", "no webhook URL"
    try:
        url = httpx.URL(contact.url)
    except httpx.InvalidURL:
        return "-", "webhook URL is not a valid URL"
    host = _host_label(url)
    if url.scheme not in ("http", "https") or not url.host:
        return host or "-", "webhook URL must start with http:// or https://"
    return host, None


class _HideUrlSecrets(logging.Filter):
    """httpx logs every request's full URL at INFO; webhook URLs often carry a token in
    their path or query (chat hooks do), so its records keep the scheme and host only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                f"{arg.scheme}://{_host_label(arg)}/..." if isinstance(arg, httpx.URL) else arg
                for arg in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_HideUrlSecrets())


_Due = tuple[Delivery, Page, Case, Responder]


def _due_webhooks(session: Session, db: Database, now: datetime, limit: int) -> list[_Due]:
    """Due webhook rows with what their payload needs, oldest first.

    A row waits while an earlier row to the same contact is still pending, so each
    contact gets its pages in order and at most one per claim.
    """
    earlier = aliased(Delivery)
    blocked = exists().where(
        col(earlier.contact_id) == col(Delivery.contact_id),
        col(earlier.channel) == CHANNEL,
        col(earlier.status) == "pending",
        col(earlier.id) < col(Delivery.id),
    )
    query = (
        select(Delivery, Page, Case, Responder)
        .join(Page, col(Page.id) == col(Delivery.page_id))
        .join(Case, col(Case.id) == col(Page.case_id))
        .join(Responder, col(Responder.id) == col(Page.responder_id))
        .where(
            col(Delivery.channel) == CHANNEL,
            col(Delivery.status) == "pending",
            col(Delivery.next_attempt_at) <= now,
            ~blocked,
        )
        .order_by(col(Delivery.next_attempt_at), col(Delivery.id))
        .limit(limit)
    )
    if db.is_postgres:
        # Several engines may share the database: each takes rows the others have not.
        query = query.with_for_update(skip_locked=True, of=Delivery)
    return list(session.exec(query).all())


def claim_webhook_deliveries(
    db: Database, clock: Clock, *, limit: int = 100, lease: timedelta = timedelta(seconds=60)
) -> list[WebhookJob]:
    """Lease the due webhook rows: their next attempt moves `lease` ahead before commit.

    Whoever claims a row and then dies leaves it to be retried once the lease is over.
    """
    now = clock.now()
    lease_until = now + lease
    jobs: list[WebhookJob] = []
    with db.write() as session:
        for delivery, page, case, responder in _due_webhooks(session, db, now, limit):
            assert delivery.id is not None
            contact = (
                session.get(ContactMethod, delivery.contact_id) if delivery.contact_id else None
            )
            host, refusal = _target(contact)
            delivery.next_attempt_at = lease_until
            session.add(delivery)
            jobs.append(
                WebhookJob(
                    delivery_id=delivery.id,
                    lease_until=lease_until,
                    handle=responder.handle,
                    host=host,
                    url=contact.url if contact and contact.url else "",
                    idempotency_key=delivery.idempotency_key,
                    body=encode_payload(build_payload(case, page, responder.handle)),
                    refusal=refusal,
                    secret=contact.secret if contact else None,
                )
            )
    return jobs


def _retry_after(response: httpx.Response, now: datetime) -> timedelta | None:
    """``Retry-After`` as seconds or an HTTP date; None when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when - now, timedelta(0))


def _attempt(job: WebhookJob, clock: Clock, client: httpx.Client) -> _Outcome:
    """Send one job (no database here); classify what happened."""
    started = clock.now()
    if job.refusal:
        return _Outcome(job, started, "failed", job.refusal)
    if started + REQUEST_BUDGET > job.lease_until:
        return _Outcome(job, started, "deferred", "lease ran short")
    timestamp = int(started.timestamp())
    headers = request_headers(job.idempotency_key, job.body, timestamp, job.secret)
    try:
        # Streamed so that only the status line and headers are read, never the body.
        with client.stream(
            "POST", job.url, content=job.body, headers=headers, timeout=TIMEOUT
        ) as response:
            now = clock.now()
            status = response.status_code
            detail = f"HTTP {status}"
            if 200 <= status < 300:
                return _Outcome(job, now, "delivered", detail)
            if status in RETRYABLE_STATUSES or status >= 500:
                return _Outcome(job, now, "retried", detail, _retry_after(response, now))
            return _Outcome(job, now, "failed", f"{detail} {response.reason_phrase}".strip())
    except httpx.RequestError as exc:
        # The class name only: some transport messages quote the URL.
        return _Outcome(job, clock.now(), "retried", type(exc).__name__)


def _record(db: Database, policy: RetryPolicy, rng: random.Random, outcome: _Outcome) -> Kind:
    """Write one attempt and move its delivery on; returns what it counted as.

    A row whose lease was taken over (its `next_attempt_at` no longer ours) keeps the
    state its new owner gives it, except that a success is a fact and always recorded.
    """
    job = outcome.job
    kind = outcome.kind
    with db.write() as session:
        delivery = session.get(Delivery, job.delivery_id)
        if delivery is None:  # the case was deleted meanwhile
            return kind
        owned = delivery.status == "pending" and delivery.next_attempt_at == job.lease_until
        if kind == "deferred":
            if owned:
                delivery.next_attempt_at = outcome.at
                session.add(delivery)
            return kind
        delivery.attempts += 1
        delivery.last_attempt_at = outcome.at
        session.add(
            DeliveryAttempt(
                delivery_id=job.delivery_id,
                at=outcome.at,
                ok=kind == "delivered",
                detail=outcome.detail,
            )
        )
        error = job.refusal or f"{outcome.detail} from {job.host}"
        if kind == "retried" and delivery.attempts >= policy.max_attempts:
            kind = "failed"
            error = f"gave up after {delivery.attempts} attempts: {error}"
        if kind == "delivered":
            if delivery.status != "delivered":
                delivery.status = "delivered"
                delivery.delivered_at = outcome.at
                delivery.next_attempt_at = None
                delivery.last_error = None
        elif owned and kind == "failed":
            delivery.status = "failed"
            delivery.next_attempt_at = None
            delivery.last_error = error
        elif owned:
            wait = (
                min(outcome.retry_after, policy.retry_after_cap)
                if outcome.retry_after is not None
                else policy.backoff(delivery.attempts, rng)
            )
            delivery.next_attempt_at = outcome.at + wait
            delivery.last_error = error
        session.add(delivery)
    if kind == "delivered":
        log.info("webhook to %s at %s delivered", job.handle, job.host)
    else:
        log.warning("webhook to %s at %s %s: %s", job.handle, job.host, kind, error)
    return kind


def process_webhook_outbox(
    db: Database,
    clock: Clock,
    client: httpx.Client,
    *,
    limit: int = 100,
    rng: random.Random | None = None,
    lease: timedelta = timedelta(seconds=60),
    policy: RetryPolicy = DEFAULT_POLICY,
    max_workers: int = 8,
) -> OutboxResult:
    """Send the due webhook deliveries once; the engine calls this every cycle.

    Sends run in parallel on `max_workers` threads (a slow receiver never holds up the
    others); the database is written from this thread only, one transaction per attempt.
    One cycle sends at most one delivery per contact, the oldest, to keep pages in order.
    """
    if lease <= REQUEST_BUDGET:
        raise ValueError(f"lease: expected more than {REQUEST_BUDGET} (one request), got {lease}")
    rng = rng or random.Random()
    jobs = claim_webhook_deliveries(db, clock, limit=limit, lease=lease)
    counts: Counter[Kind] = Counter()
    if jobs:
        workers = max(1, min(max_workers, len(jobs)))
        with ThreadPoolExecutor(workers, thread_name_prefix="vigil-webhook") as pool:
            futures = [pool.submit(_attempt, job, clock, client) for job in jobs]
            for future in as_completed(futures):
                counts[_record(db, policy, rng, future.result())] += 1
    return OutboxResult(
        sent=counts["delivered"],
        retried=counts["retried"],
        failed=counts["failed"],
        deferred=counts["deferred"],
    )

"""The outbox: signed JSON webhooks and Apprise pages (chat, push, mail) sent from one
persistent outbox.

The escalation engine writes one `Delivery` row (channel ``webhook`` or ``apprise``) per
page and contact; the outbox sends them (Apprise's blocking sends each on a thread of its
own, `app.delivery.apprise.in_own_thread`, never on the outbox's event loop): `WebhookOutbox` on its
own thread inside the engine runner, `process_webhook_outbox` for one pass (`vigil engine
--once`, the demo, tests).

**Nobody waits for a slow receiver.** Deliveries run concurrently across contacts, at
most `OutboxSettings.concurrency` at once, and strictly in order for each contact: a row
waits while an earlier row to the same contact is pending (in flight, or waiting for its
retry). When more rows are due than there are free slots, sev1 pages go first. Every
attempt has one wall deadline (`OutboxSettings.deadline`, 10 s) for all of it: resolving
the host, connecting, sending, and reading the status line and headers. httpx's own
timeouts count per read, so a receiver that drips its answer a byte at a time would hold
them forever; the deadline cuts it off like one that says nothing. A slow or broken
receiver thus holds one slot for at most the deadline, and only its own contact's later
pages wait for it.

**At least once.** A row is leased (its next attempt moved `lease` ahead) before it is
sent, so a crash mid-send means it is sent again after the lease, never lost; receivers
drop repeats by ``webhook-id``, which is the same on every attempt of one delivery, as is
the body.

**Signed as Standard Webhooks** (https://www.standardwebhooks.com/). Each request carries
``Content-Type: application/json``, ``User-Agent: vigil/<version>`` and:

- ``webhook-id``: the delivery's idempotency key;
- ``webhook-timestamp``: Unix seconds when the attempt was made;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>." + raw body>``.
  The key is the base64 after ``whsec_`` for a secret of that form, else the secret's
  UTF-8 bytes. A contact without a secret is sent unsigned (no signature header): that
  suits chat hooks whose secret is the URL itself.

**Refused destinations.** A plain ``http://`` URL and a secret under 16 bytes are refused
unless the team file sets ``allow_insecure = true`` on the contact; a private, loopback,
link-local (or any other non-public) address unless it sets ``allow_private = true``. The
address check runs on every attempt, against what the host resolves to then, and the
connection goes to the very address checked (the URL's host still names the receiver in
``Host`` and TLS), so DNS cannot swap another in between. Environment proxies are not
used. A refused delivery fails at once; its error says which key would allow it.

**Held rows.** A row that a notification rule delays, or quiet hours hold, is ``held``
until it is due; the claim then makes it pending, or ``cancelled`` when its case was
acknowledged or resolved meanwhile: a person's later channels stop once someone answers.

**Apprise pages** say what `app.delivery.message` composes, with the page's acknowledge
and open links (`app.services.links`). Apprise answers only yes or no: a no is retried
like a 5xx; a URL Apprise does not know, or a refused private destination, fails at once.

**Outcomes.** 2xx is delivered. 410 Gone is a receiver's explicit "never again": the
contact is marked gone (stored), its pending pages fail, and it receives no more pages;
each case concerned gets a timeline entry, which every open console shows at once, and an
audit record, and a warning is logged. Every other answer (any 3xx, which is never
followed, any other 4xx, 5xx), a missed deadline and a connection error are retried with
exponential backoff and full jitter, honouring ``Retry-After``; after
`RetryPolicy.max_attempts` the row is failed. Failed rows stay visible on the page in the
console.

The body never carries a case's details, and for a sensitive case (every CSEA case is)
not even its title: only a generic summary that sends the reader to Vigil. Messages and
logs name a contact by responder handle and host only: never its secret, path or query
string, which often carry a token.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
import importlib.util
import json
import logging
import random
import socket
import sys
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from importlib.metadata import version
from typing import Any, Literal

import httpx
from sqlalchemy import func, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased, undefer
from sqlmodel import Session, col, select

from app.core.clock import Clock
from app.delivery import apprise as apprise_channel
from app.delivery.message import compose, is_sensitive
from app.rules.destinations import (
    apprise_url_problem,
    contact_problems,
    first_refused,
    ip_literal,
    scheme_of,
    signing_key,
)
from app.services.links import LinkSettings, links_for
from app.services.paging import HELD
from data import audit
from data.access import reads_secrets
from data.db import Database
from data.domain import (
    OUTBOX_CHANNELS,
    ContactKind,
    EngineAction,
    Status,
    TimelineKind,
    category_label,
    severity_name,
)
from data.escalation import DeliveryAttempt
from data.journal import add_timeline, record_change
from data.models import Case, ContactMethod, Delivery, Page, Responder
from data.outage import OutageLog

log = logging.getLogger(__name__)

CHANNEL = ContactKind.WEBHOOK.value
APPRISE = ContactKind.APPRISE.value
USER_AGENT = f"vigil/{version('vigil')}"
ACTOR = "engine"
MIN_WAIT = 0.02
"""Seconds `WebhookOutbox` waits at least between two looks when nothing woke it."""
LEASE_MARGIN = timedelta(seconds=5)
"""A lease outlasts one attempt's deadline by this much, time enough to record it."""

Kind = Literal["delivered", "retried", "failed", "gone"]
Resolve = Callable[[str, int], Awaitable[list[str]]]
"""Host and port to the addresses to try, first first (`system_resolve` by default)."""


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
class OutboxSettings:
    concurrency: int = 32
    """Deliveries in flight at once, each to a different contact."""
    deadline: timedelta = timedelta(seconds=10)
    """One attempt, all of it: resolve, connect, send, read the status line and headers."""
    lease: timedelta = timedelta(seconds=60)
    """How long a claimed row is ours; another engine retries it after that."""
    poll: timedelta = timedelta(seconds=1)
    """`WebhookOutbox` looks for due rows at least this often without being woken."""
    policy: RetryPolicy = DEFAULT_POLICY
    links: LinkSettings | None = None
    """Where pages' action links point, and how long they work; None: from the
    environment (`LinkSettings.from_env`)."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency: expected at least 1, got {self.concurrency}")
        if self.deadline <= timedelta(0):
            raise ValueError(f"deadline: expected a positive duration, got {self.deadline}")
        if self.lease <= self.deadline + LEASE_MARGIN:
            raise ValueError(
                f"lease: expected more than {self.deadline + LEASE_MARGIN} "
                f"(the deadline and time to record), got {self.lease}"
            )
        if self.poll <= timedelta(0):
            raise ValueError(f"poll: expected a positive duration, got {self.poll}")


DEFAULT_SETTINGS = OutboxSettings()


@dataclass(frozen=True)
class OutboxResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    gone: int = 0
    """Answered 410 Gone: their contact is now marked gone."""


@dataclass(frozen=True)
class WebhookJob:
    """One claimed delivery, with everything needed to send it outside any transaction."""

    delivery_id: int
    contact_id: int | None
    lease_until: datetime
    handle: str
    host: str
    url: str = field(repr=False)  # its path or query often holds a token
    webhook_id: str
    body: bytes = field(repr=False)
    refusal: str | None
    """Why this delivery cannot be sent at all; None when it can."""
    secret: str | None = field(default=None, repr=False)
    allow_private: bool = False
    channel: str = CHANNEL
    title: str = ""
    text: str = field(default="", repr=False)
    """An Apprise page as plain text; `markdown` for the services that render it."""
    markdown: str = field(default="", repr=False)


@dataclass(frozen=True)
class _Outcome:
    job: WebhookJob
    at: datetime
    kind: Kind
    detail: str
    retry_after: timedelta | None = None


# --- payload and signature -------------------------------------------------


def build_payload(case: Case, page: Page, handle: str) -> dict[str, Any]:
    """The JSON of one page. Never the details; for a sensitive case not even the title."""
    severity = severity_name(case.severity)
    if is_sensitive(case):
        label = category_label(case.category)
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


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` and the base64 HMAC-SHA256 of
    ``f"{webhook_id}.{timestamp}."`` + body."""
    message = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def request_headers(
    webhook_id: str, body: bytes, timestamp: int, secret: str | None
) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
    }
    if secret:
        headers["webhook-signature"] = sign(secret, webhook_id, timestamp, body)
    return headers


async def system_resolve(host: str, port: int) -> list[str]:
    """The host's addresses as the system resolves them, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _Refused(Exception):
    """A destination the contact's settings do not allow; the message names the key."""


def make_client(
    settings: OutboxSettings = DEFAULT_SETTINGS,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The outbox's client: no redirects, no environment proxies, enough connections for
    every slot, and httpx's per-read timeouts no longer than the attempt's deadline."""
    seconds = settings.deadline.total_seconds()
    return httpx.AsyncClient(
        timeout=httpx.Timeout(seconds),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(
            max_connections=settings.concurrency * 2,
            max_keepalive_connections=settings.concurrency,
        ),
        transport=transport,
    )


# --- claiming ----------------------------------------------------------------


def _host_label(url: httpx.URL) -> str:
    return f"{url.host}:{url.port}" if url.port else url.host


def _apprise_target(contact: ContactMethod | None) -> tuple[str, str | None]:
    """An Apprise contact is named by its service alone (the rest of its URL is secret)."""
    if contact is None or not contact.url:
        return "-", "no Apprise URL"
    label = f"{scheme_of(contact.url)}://"
    problem = apprise_url_problem(contact.url, allow_private=contact.allow_private)
    return label, None if problem is None else f"refused (url): {problem}"


def _target(contact: ContactMethod | None) -> tuple[str, str | None]:
    """The host to name in messages, and why the contact cannot be sent to (None if it can)."""
    if contact is not None and contact.kind == APPRISE:
        return _apprise_target(contact)
    if contact is None or not contact.url:
        return "-", "no webhook URL"
    try:
        url = httpx.URL(contact.url)
    except httpx.InvalidURL:
        return "-", "webhook URL is not a valid URL"
    host = _host_label(url)
    if url.scheme not in ("http", "https") or not url.host:
        return host or "-", "webhook URL must start with http:// or https://"
    if contact.gone_at is not None:
        when = contact.gone_at.astimezone(UTC).isoformat(timespec="seconds")
        return host, f"the receiver answered 410 Gone at {when}: this contact is gone"
    problems = contact_problems(
        contact.url,
        contact.secret,
        allow_insecure=contact.allow_insecure,
        allow_private=contact.allow_private,
    )
    if problems:
        key, message = problems[0]
        return host, f"refused ({key}): {message}"
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

# httpcore asks `import sniffio` on every request to learn which async library runs it;
# without sniffio installed, each ask is a failed import that searches the whole path
# (about a third of a request's time here). A None in sys.modules makes it fail at once.
if importlib.util.find_spec("sniffio") is None:
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]


_Due = tuple[Delivery, Page, Case, Responder, ContactMethod | None]


def _next_of_its_contact() -> Any:
    """A row is its contact's next when no earlier webhook row to that contact is pending:
    the first pending row of each contact (one grouped pass over the pending rows, whose
    plan does not hang on the planner's row estimates, as a per-row anti-join's does)."""
    pending = aliased(Delivery)
    heads = (
        select(func.min(pending.id))
        .where(
            col(pending.channel).in_(OUTBOX_CHANNELS),
            col(pending.status) == "pending",
            col(pending.contact_id).is_not(None),
        )
        .group_by(col(pending.contact_id))
    )
    return or_(col(Delivery.contact_id).is_(None), col(Delivery.id).in_(heads))


def _due_webhooks(
    session: Session, db: Database, now: datetime, limit: int, skip: Iterable[int]
) -> list[_Due]:
    """Due webhook rows with what their payload needs: sev1 first, then oldest first.

    A row waits while an earlier row to the same contact is still pending, so each
    contact gets its pages in order and at most one per claim.
    """
    query = (
        sa_select(Delivery, Page, Case, Responder, ContactMethod)
        .join(Page, col(Page.id) == col(Delivery.page_id))
        .join(Case, col(Case.id) == col(Page.case_id))
        .join(Responder, col(Responder.id) == col(Page.responder_id))
        .outerjoin(ContactMethod, col(ContactMethod.id) == col(Delivery.contact_id))
        .options(undefer(ContactMethod.url), undefer(ContactMethod.secret))  # type: ignore[arg-type]
        .where(
            col(Delivery.channel).in_(OUTBOX_CHANNELS),
            col(Delivery.status) == "pending",
            col(Delivery.next_attempt_at) <= now,
            _next_of_its_contact(),
        )
        .order_by(col(Case.severity), col(Delivery.next_attempt_at), col(Delivery.id))
        .limit(limit)
    )
    skipped = sorted(set(skip))
    if skipped:
        query = query.where(col(Delivery.contact_id).not_in(skipped))
    if db.is_postgres:
        # Several engines may share the database: each takes rows the others have not.
        query = query.with_for_update(skip_locked=True, of=Delivery)
    return [tuple(row) for row in session.execute(query).all()]


def _next_due(session: Session) -> datetime | None:
    """When the earliest pending webhook row that waits for no earlier one comes due
    (rows in flight included: their lease's end)."""
    query = select(func.min(Delivery.next_attempt_at)).where(
        col(Delivery.channel).in_(OUTBOX_CHANNELS),
        col(Delivery.status) == "pending",
        _next_of_its_contact(),
    )
    held = select(func.min(Delivery.next_attempt_at)).where(
        col(Delivery.channel).in_(OUTBOX_CHANNELS), col(Delivery.status) == HELD
    )
    moments = [session.exec(query).one(), session.exec(held).one()]
    return min((m for m in moments if m is not None), default=None)


def _release_held(session: Session, db: Database, now: datetime) -> None:
    """Held rows now due turn pending, or cancelled when their case was answered meanwhile."""
    query = (
        sa_select(col(Delivery.id), col(Case.status), col(Case.ref))
        .join(Page, col(Page.id) == col(Delivery.page_id))
        .join(Case, col(Case.id) == col(Page.case_id))
        .where(
            col(Delivery.channel).in_(OUTBOX_CHANNELS),
            col(Delivery.status) == HELD,
            col(Delivery.next_attempt_at) <= now,
        )
    )
    if db.is_postgres:
        query = query.with_for_update(skip_locked=True, of=Delivery)
    live: list[int] = []
    answered: dict[str, list[int]] = {}
    for delivery_id, status, ref in session.execute(query).all():
        if status == Status.TRIGGERED.value:
            live.append(delivery_id)
        else:
            answered.setdefault(f"not sent: {ref} was {status} before it was due", []).append(
                delivery_id
            )
    if live:
        session.execute(
            update(Delivery)
            .where(col(Delivery.id).in_(live))
            .values(status="pending")
            .execution_options(synchronize_session=False)
        )
    for reason, ids in answered.items():
        session.execute(
            update(Delivery)
            .where(col(Delivery.id).in_(ids))
            .values(status="cancelled", next_attempt_at=None, last_error=reason)
            .execution_options(synchronize_session=False)
        )


def _others_paged(session: Session, pages: Iterable[Page]) -> dict[int, list[str]]:
    """For each page, the handles paged with it (same case, cycle, step and round)."""
    wanted = {(p.case_id, p.cycle, p.step, p.round) for p in pages}
    if not wanted:
        return {}
    rows = session.execute(
        sa_select(
            col(Page.id),
            col(Page.case_id),
            col(Page.cycle),
            col(Page.step),
            col(Page.round),
            col(Responder.handle),
        )
        .join(Responder, col(Responder.id) == col(Page.responder_id))
        .where(col(Page.case_id).in_(sorted({case_id for case_id, *_ in wanted})))
        .order_by(col(Page.id))
    ).all()
    together: dict[tuple[int, int, int, int], list[tuple[int, str]]] = {}
    for page_id, case_id, cycle, step, round_, handle in rows:
        if (case_id, cycle, step, round_) in wanted:
            together.setdefault((case_id, cycle, step, round_), []).append((page_id, handle))
    return {
        page.id or 0: [
            handle
            for page_id, handle in together.get(
                (page.case_id, page.cycle, page.step, page.round), []
            )
            if page_id != page.id
        ]
        for page in pages
    }


@dataclass(frozen=True)
class Claim:
    jobs: list[WebhookJob]
    next_due: datetime | None
    """When the earliest pending row comes due (as of the claim), to wake up for it."""


def claim_due(
    db: Database,
    clock: Clock,
    *,
    limit: int = 100,
    lease: timedelta = DEFAULT_SETTINGS.lease,
    skip_contacts: Iterable[int] = (),
    links: LinkSettings | None = None,
) -> Claim:
    """Lease the due webhook rows (not those of `skip_contacts`): their next attempt moves
    `lease` ahead before commit.

    Whoever claims a row and then dies leaves it to be retried once the lease is over.
    """
    now = clock.now()
    lease_until = now + lease
    jobs: list[WebhookJob] = []
    if not db.is_postgres:
        # SQLite has one write lock for everyone: an outbox with nothing due (woken after
        # every alert of a storm, say) reads that and leaves the lock to those who write.
        with db.read() as session:
            if not _sends(db, session):
                return Claim([], None)
            next_due = _next_due(session)
        if next_due is None or next_due > now:
            return Claim([], next_due)
    with db.write() as session:
        if not _sends(db, session):
            return Claim([], None)
        _release_held(session, db, now)
        due = _due_webhooks(session, db, now, limit, skip_contacts)
        chat = [page for delivery, page, *_ in due if delivery.channel == APPRISE]
        others = _others_paged(session, chat)
        link_settings = (links or LinkSettings.from_env()) if chat else None
        for delivery, page, case, responder, contact in due:
            assert delivery.id is not None
            host, refusal = _target(contact)
            job = WebhookJob(
                delivery_id=delivery.id,
                contact_id=delivery.contact_id,
                lease_until=lease_until,
                handle=responder.handle,
                host=host,
                url=contact.url if contact and contact.url else "",
                webhook_id=delivery.idempotency_key,
                body=b"",
                refusal=refusal,
                allow_private=contact.allow_private if contact else False,
            )
            if delivery.channel == APPRISE:
                assert link_settings is not None
                page_links = links_for(session, link_settings, delivery.id, now)
                message = compose(case, page, others.get(page.id or 0, []), now, page_links)
                job = replace(
                    job,
                    channel=APPRISE,
                    title=message.title,
                    text=message.text,
                    markdown=message.markdown,
                )
            else:
                job = replace(
                    job,
                    body=encode_payload(build_payload(case, page, responder.handle)),
                    secret=contact.secret if contact else None,
                )
            jobs.append(job)
        if jobs:
            session.execute(
                update(Delivery)
                .where(col(Delivery.id).in_([job.delivery_id for job in jobs]))
                .values(next_attempt_at=lease_until)
                .execution_options(synchronize_session=False)
            )
        next_due = _next_due(session)
    return Claim(jobs, next_due)


_SENDERS: dict[str, bool] = {}
"""Whether each database's login may read the contacts' URLs and secrets, asked once: a
claim runs at every free slot, and a login's grants do not change under it."""


def _sends(db: Database, session: Session) -> bool:
    """Whether this outbox sends at all. A person's login on a desk with roles may not read
    what a send needs: said once, and its pages wait for a service login's engine."""
    where = db.engine.url.render_as_string(hide_password=True)
    if where not in _SENDERS:
        _SENDERS[where] = reads_secrets(session)
        if not _SENDERS[where]:
            log.warning(
                "this login may not read contacts' URLs and secrets: chat, push and webhook "
                "pages are sent by an engine that runs as the engine's login (vigil engine)"
            )
    return _SENDERS[where]


def claim_webhook_deliveries(
    db: Database,
    clock: Clock,
    *,
    limit: int = 100,
    lease: timedelta = DEFAULT_SETTINGS.lease,
) -> list[WebhookJob]:
    """`claim_due`'s jobs alone."""
    return claim_due(db, clock, limit=limit, lease=lease).jobs


# --- sending -----------------------------------------------------------------


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


@dataclass
class _Sender:
    """Sends jobs (no database here) and classifies what happened."""

    clock: Clock
    client: httpx.AsyncClient
    resolve: Resolve
    deadline: timedelta
    desk: str
    """The database's name: whose contacts these are (`apprise.still_sending`)."""

    async def attempt(self, job: WebhookJob) -> _Outcome:
        if job.refusal:
            return _Outcome(job, self.clock.now(), "failed", job.refusal)
        seconds = self.deadline.total_seconds()
        if job.channel == APPRISE and not apprise_channel.plugins_loaded():
            # Once a process, outside the deadline (most of a second).
            await apprise_channel.in_own_thread(apprise_channel.load_plugins)
        try:
            async with asyncio.timeout(seconds):
                if job.channel == APPRISE:
                    return await self._send_apprise(job)
                return await self._send(job)
        except TimeoutError:
            return _Outcome(job, self.clock.now(), "retried", f"no answer within {seconds:g} s")
        except _Refused as exc:
            return _Outcome(job, self.clock.now(), "failed", f"refused (url): {exc}")
        except httpx.RequestError as exc:
            # The class name only: some transport messages quote the URL.
            return _Outcome(job, self.clock.now(), "retried", type(exc).__name__)
        except OSError:  # the name did not resolve
            return _Outcome(job, self.clock.now(), "retried", "name resolution failed")

    async def _send_apprise(self, job: WebhookJob) -> _Outcome:
        """Apprise blocks: the attempt runs on a thread of its own."""
        send = functools.partial(
            apprise_channel.send,
            job.url,
            job.title,
            job.text,
            job.markdown,
            allow_private=job.allow_private,
        )
        try:
            contact = None if job.contact_id is None else (self.desk, job.contact_id)
            outcome = await apprise_channel.in_own_thread(send, contact)
        except RuntimeError as exc:  # no thread could be started
            return _Outcome(job, self.clock.now(), "retried", f"not sent: {exc}")
        now = self.clock.now()
        if outcome.ok:
            return _Outcome(job, now, "delivered", outcome.detail)
        return _Outcome(job, now, "failed" if outcome.permanent else "retried", outcome.detail)

    async def _send(self, job: WebhookJob) -> _Outcome:
        url = httpx.URL(job.url)
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = [host] if ip_literal(host) else await self.resolve(host, port)
        if not addresses:
            raise OSError(f"{host} has no address")
        refused = None if job.allow_private else first_refused(addresses)
        if refused is not None:
            kind, address = refused
            raise _Refused(
                f"{host} resolves to a {kind} address ({address}): refused unless "
                "allow_private = true on this contact"
            )
        timestamp = int(self.clock.now().timestamp())
        headers = request_headers(job.webhook_id, job.body, timestamp, job.secret)
        extensions: dict[str, Any] = {}
        if not ip_literal(host):
            # Connect to the address just checked; the URL's host still names the receiver.
            headers["Host"] = url.netloc.decode("ascii")
            if url.scheme == "https":
                extensions["sni_hostname"] = host
            url = url.copy_with(host=addresses[0])
        # Streamed so that only the status line and headers are read, never the body.
        async with self.client.stream(
            "POST", url, content=job.body, headers=headers, extensions=extensions
        ) as response:
            now = self.clock.now()
            status = response.status_code
            detail = f"HTTP {status}"
            if 200 <= status < 300:
                return _Outcome(job, now, "delivered", detail)
            if status == 410:
                return _Outcome(job, now, "gone", f"{detail} {response.reason_phrase}".strip())
            return _Outcome(job, now, "retried", detail, _retry_after(response, now))


# --- recording -----------------------------------------------------------------


def _gone(session: Session, outcome: _Outcome) -> None:
    """Mark the contact gone, fail its pending pages, and tell each case concerned."""
    job = outcome.job
    contact = session.get(ContactMethod, job.contact_id) if job.contact_id else None
    if contact is None or contact.gone_at is not None:
        return
    contact.gone_at = outcome.at
    session.add(contact)
    when = outcome.at.astimezone(UTC).isoformat(timespec="seconds")
    error = f"the receiver answered 410 Gone at {when}: this contact is gone"
    rows = session.exec(
        select(Delivery, Case)
        .join(Page, col(Page.id) == col(Delivery.page_id))
        .join(Case, col(Case.id) == col(Page.case_id))
        .where(
            col(Delivery.contact_id) == contact.id,
            col(Delivery.channel) == CHANNEL,
            col(Delivery.status) == "pending",
            col(Delivery.id) != job.delivery_id,
        )
    ).all()
    cases = {case.id: case for _, case in rows}
    for delivery, _ in rows:
        delivery.status, delivery.next_attempt_at, delivery.last_error = "failed", None, error
        session.add(delivery)
    this_case = session.exec(
        select(Case)
        .join(Page, col(Page.case_id) == col(Case.id))
        .join(Delivery, col(Delivery.page_id) == col(Page.id))
        .where(col(Delivery.id) == job.delivery_id)
    ).first()
    if this_case is not None:
        cases[this_case.id] = this_case
    text = (
        f"{job.handle}'s webhook at {job.host} answered 410 Gone: it receives no more pages "
        f"({len(rows) + 1} failed). A supervisor should give {job.handle} a working contact "
        "in the team file."
    )
    for case in sorted(cases.values(), key=lambda c: c.ref):
        add_timeline(
            session,
            case,
            outcome.at,
            TimelineKind.WEBHOOK_GONE,
            text,
            ACTOR,
            {"handle": job.handle},
        )
        record_change(session, case, outcome.at)
        audit.append(
            session,
            at=outcome.at,
            actor=ACTOR,
            action=EngineAction.CONTACT_GONE,
            case_ref=case.ref,
            detail={"handle": job.handle, "host": job.host},
        )
    log.warning(
        "webhook to %s at %s answered 410 Gone: the contact is marked gone; %d pending "
        "page(s) failed",
        job.handle,
        job.host,
        len(rows) + 1,
    )


def record_outcomes(
    db: Database, policy: RetryPolicy, rng: random.Random, outcomes: list[_Outcome]
) -> list[Kind]:
    """Write attempts and move their deliveries on, in one transaction; returns what each
    counted as.

    A row whose lease was taken over (its `next_attempt_at` no longer ours) keeps the
    state its new owner gives it, except that a success is a fact and always recorded.
    """
    kinds: list[Kind] = []
    logged: list[tuple[WebhookJob, Kind, str]] = []
    with db.write() as session:
        if any(outcome.kind == "gone" for outcome in outcomes):
            audit.lock_head(session)  # the case service's lock order: the chain first
        ids = [outcome.job.delivery_id for outcome in outcomes]
        rows = session.exec(select(Delivery).where(col(Delivery.id).in_(ids))).all()
        deliveries = {row.id: row for row in rows}
        for outcome in outcomes:
            delivery = deliveries.get(outcome.job.delivery_id)
            kind, error = _record_one(session, policy, rng, outcome, delivery)
            kinds.append(kind)
            logged.append((outcome.job, kind, error))
    for job, kind, error in logged:
        if kind == "delivered":
            log.info("%s to %s at %s delivered", job.channel, job.handle, job.host)
        elif kind != "gone":
            log.warning("%s to %s at %s %s: %s", job.channel, job.handle, job.host, kind, error)
    return kinds


def _record_one(
    session: Session,
    policy: RetryPolicy,
    rng: random.Random,
    outcome: _Outcome,
    delivery: Delivery | None,
) -> tuple[Kind, str]:
    job = outcome.job
    kind = outcome.kind
    error = job.refusal or f"{outcome.detail} from {job.host}"
    if delivery is None:  # the case was deleted meanwhile
        return kind, error
    owned = delivery.status == "pending" and delivery.next_attempt_at == job.lease_until
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
    if kind == "retried" and delivery.attempts >= policy.max_attempts:
        kind = "failed"
        error = f"gave up after {delivery.attempts} attempts: {error}"
    if kind == "delivered":
        if delivery.status != "delivered":
            delivery.status = "delivered"
            delivery.delivered_at = outcome.at
            delivery.next_attempt_at = None
            delivery.last_error = None
    elif kind == "gone":
        error = f"{error}: this contact is gone and receives no more pages"
        if delivery.status == "pending":
            delivery.status = "failed"
            delivery.next_attempt_at = None
            delivery.last_error = error
        session.add(delivery)
        _gone(session, outcome)
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
    return kind, error


def _result(kinds: Iterable[Kind]) -> OutboxResult:
    counts: Counter[Kind] = Counter(kinds)
    return OutboxResult(
        sent=counts["delivered"],
        retried=counts["retried"],
        failed=counts["failed"],
        gone=counts["gone"],
    )


# --- one pass -------------------------------------------------------------------


def process_webhook_outbox(
    db: Database,
    clock: Clock,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    resolve: Resolve = system_resolve,
    settings: OutboxSettings = DEFAULT_SETTINGS,
    rng: random.Random | None = None,
    limit: int = 100,
) -> OutboxResult:
    """Send the webhook deliveries due now, once each (at most one per contact, the
    oldest, to keep pages in order), `settings.concurrency` at a time, and record them."""
    one_pass = _one_pass(db, clock, transport, resolve, settings, rng or random.Random(), limit)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(one_pass)
    with ThreadPoolExecutor(1, thread_name_prefix="vigil-outbox-pass") as pool:
        return pool.submit(asyncio.run, one_pass).result()  # not on a loop already running


async def _one_pass(
    db: Database,
    clock: Clock,
    transport: httpx.AsyncBaseTransport | None,
    resolve: Resolve,
    settings: OutboxSettings,
    rng: random.Random,
    limit: int,
) -> OutboxResult:
    jobs = claim_due(
        db,
        clock,
        limit=limit,
        lease=settings.lease,
        skip_contacts=apprise_channel.still_sending(db.display_name),
        links=settings.links,
    ).jobs
    if not jobs:
        return OutboxResult()
    slots = asyncio.Semaphore(settings.concurrency)
    async with make_client(settings, transport) as client:
        sender = _Sender(clock, client, resolve, settings.deadline, db.display_name)

        async def one(job: WebhookJob) -> _Outcome:
            async with slots:
                return await sender.attempt(job)

        outcomes = await asyncio.gather(*(one(job) for job in jobs))
    return _result(record_outcomes(db, settings.policy, rng, list(outcomes)))


# --- the long-running outbox ------------------------------------------------------


class WebhookOutbox:
    """The outbox as the engine runner drives it: a thread of its own with an event loop
    that keeps up to `settings.concurrency` deliveries in flight. A slot freed (a delivery
    recorded) is filled at once, so a contact's next page follows its previous one without
    waiting for anyone else; `wake` (after a cycle that paged) and the earliest pending
    row's due time (retries) make it look for due rows, and `settings.poll` is the safety
    net. Database work runs on one helper thread, finished attempts recorded in batches.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: OutboxSettings = DEFAULT_SETTINGS,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        resolve: Resolve = system_resolve,
        rng: random.Random | None = None,
        name: str = "vigil-outbox",
        outage: OutageLog | None = None,
    ) -> None:
        self.db = db
        self.outage = outage or OutageLog(f"the webhook outbox {name}", clock)
        """Says a database that stops answering the claims once, not at every poll."""
        self.clock = clock
        # Read once, so a wrong VIGIL_PUBLIC_URL or VIGIL_LINK_TTL stops the start, loudly.
        self.settings = (
            settings if settings.links else replace(settings, links=LinkSettings.from_env())
        )
        self.name = name
        self._transport = transport
        self._resolve = resolve
        self._rng = rng or random.Random()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._ready = threading.Event()
        self._stopping = False
        self._stop_timeout = 10.0
        self._records: list[tuple[_Outcome, asyncio.Future[Kind]]] = []
        self._recorder: asyncio.Task[None] | None = None
        self.counts: Counter[Kind] = Counter()
        """What every recorded attempt counted as, since start."""

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def wake(self) -> None:
        """Look for due rows now (thread-safe)."""
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(wakeup.set)

    def stop(self, timeout: float = 10.0) -> None:
        """Let deliveries in flight finish (up to `timeout`), then end the thread."""
        self._stop_timeout = timeout
        self._stopping = True
        self.wake()
        if self._thread.is_alive():
            self._thread.join(timeout + 5)

    # -- the loop ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception:
            log.exception("the webhook outbox stopped")
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop, self._wakeup = loop, asyncio.Event()
        self._ready.set()
        in_flight: dict[int, asyncio.Task[None]] = {}  # by delivery id
        contacts: dict[int, int] = {}  # contact id by delivery id, of those in flight
        # Claims and records each on a thread of their own on PostgreSQL, where they run side
        # by side; on SQLite, whose writers take turns anyway, one thread does both.
        with (
            ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-claims") as claims,
            ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-records") as own_records,
        ):
            records = own_records if self.db.is_postgres else claims
            async with make_client(self.settings, self._transport) as client:
                sender = _Sender(
                    self.clock, client, self._resolve, self.settings.deadline, self.db.display_name
                )
                while not self._stopping:
                    self._wakeup.clear()
                    wait = self.settings.poll.total_seconds()
                    free = self.settings.concurrency - len(in_flight)
                    if free > 0:
                        hanging = apprise_channel.still_sending(self.db.display_name)
                        busy = set(contacts.values()) | hanging
                        claim = await self._claim(loop, claims, free, busy)
                        for job in claim.jobs:
                            task = loop.create_task(self._deliver(sender, records, job))
                            in_flight[job.delivery_id] = task
                            if job.contact_id is not None:
                                contacts[job.delivery_id] = job.contact_id
                            task.add_done_callback(
                                self._finished(in_flight, contacts, job.delivery_id)
                            )
                        if claim.next_due is not None:
                            until = (claim.next_due - self.clock.now()).total_seconds()
                            # Not quite 0: a due row another engine holds is not ours.
                            wait = min(wait, max(until, MIN_WAIT))
                        if len(claim.jobs) == free:
                            wait = self.settings.poll.total_seconds()  # woken as slots free
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), wait)
                if in_flight:
                    await asyncio.wait(list(in_flight.values()), timeout=self._stop_timeout)
                for task in list(in_flight.values()):
                    task.cancel()  # its lease runs out and another run sends it again
                if in_flight:
                    await asyncio.wait(list(in_flight.values()), timeout=1.0)
                if self._recorder is not None:
                    await asyncio.wait([self._recorder], timeout=self._stop_timeout)

    def _finished(
        self, in_flight: dict[int, asyncio.Task[None]], contacts: dict[int, int], delivery_id: int
    ) -> Callable[[asyncio.Task[None]], None]:
        def done(_: asyncio.Task[None]) -> None:
            in_flight.pop(delivery_id, None)
            contacts.pop(delivery_id, None)
            if self._wakeup is not None:
                self._wakeup.set()

        return done

    async def _claim(
        self,
        loop: asyncio.AbstractEventLoop,
        database: ThreadPoolExecutor,
        free: int,
        busy: set[int],
    ) -> Claim:
        return await loop.run_in_executor(database, self.claim_now, free, busy)

    def claim_now(self, free: int, busy: set[int]) -> Claim:
        """Lease up to `free` due rows of contacts not `busy` (in flight here: their rows
        are leased, but a clock that jumps past a lease must not send one twice). A database
        that does not answer is said through the outage log and claims nothing."""
        try:
            claim = claim_due(
                self.db,
                self.clock,
                limit=free,
                lease=self.settings.lease,
                skip_contacts=busy,
                links=self.settings.links,
            )
        except Exception as exc:
            self.outage.failed(exc)
            return Claim([], None)
        self.outage.recovered()
        return claim

    async def _deliver(
        self, sender: _Sender, database: ThreadPoolExecutor, job: WebhookJob
    ) -> None:
        outcome = await sender.attempt(job)
        future: asyncio.Future[Kind] = asyncio.get_running_loop().create_future()
        self._records.append((outcome, future))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.get_running_loop().create_task(self._record(database))
        await future

    async def _record(self, database: ThreadPoolExecutor) -> None:
        """Write every finished attempt waiting, in one transaction, until none waits."""
        loop = asyncio.get_running_loop()
        while self._records:
            batch, self._records = self._records, []
            outcomes = [outcome for outcome, _ in batch]
            try:
                kinds = await loop.run_in_executor(
                    database, record_outcomes, self.db, self.settings.policy, self._rng, outcomes
                )
            except Exception:
                # Their leases run out and they are sent again: at least once.
                log.exception("webhook outbox could not record %d attempt(s)", len(batch))
                kinds = [outcome.kind for outcome in outcomes]
            else:
                self.counts.update(kinds)
            for (_, future), kind in zip(batch, kinds, strict=True):
                if not future.done():
                    future.set_result(kind)

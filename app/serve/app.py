"""The HTTP service's routes: intake as senders send it, health and metrics.

* `POST /v2/enqueue`: PagerDuty Events API v2 (`routing_key` is the integration key):
  202 `{"status": "success", "message": "Event processed", "dedup_key": ...}`, 400
  `{"status": "invalid event", "message": ..., "errors": [...]}`, 429 with `Retry-After`.
* `POST /v2/change/enqueue`: a PagerDuty change event, kept as a change note, never a page.
* `POST /integrations/{format}/{name}` with `Authorization: Bearer KEY`: Alertmanager's
  webhook, Grafana's webhook contact point, or our own events; 202 with what each alert did.
* `GET /ack/{token}` (a page's acknowledge link: a confirmation page, acting on nothing),
  `POST /ack/{token}` (acknowledges as the paged person), `GET /open/{token}`.
* `GET /healthz` (the process lives), `GET /readyz` (the database answers, the engine's
  heartbeat is fresh, the outbox is not stuck), `GET /metrics`.

A wrong key, a wrong name and an integration that does not exist are refused alike (401).
The database doing the work runs in a worker thread, never on the event loop; a database
that does not answer is a 503 with `Retry-After`, which every sender retries.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, func, select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.core.clock import Clock
from app.intake.events import IntakeDefaults, IntakeError, IntakeEvent
from app.intake.registry import formats, parse_value
from app.intake.store import IntakeOutcome
from app.serve import links
from app.serve.connections import REQUEST_WITHIN
from app.serve.grouping import Events, GroupCommit
from app.serve.limits import HttpProblem, RateLimiter, read_json, retry_after
from app.serve.metrics import Metrics
from app.services.cases import CaseService
from app.services.heartbeats import Beat, record_beat
from app.services.integrations import IntegrationView, hash_key, load_integrations, matching
from app.services.unit_of_work import EscalationStarter
from data.db import Database
from data.domain import OUTBOX_CHANNELS
from data.errors import is_disk_full
from data.escalation import EngineHeartbeat
from data.intake import HEARTBEAT
from data.models import Delivery
from data.outage import OutageLog, is_database_trouble

log = logging.getLogger("vigil.serve")
access_log = logging.getLogger("vigil.serve.access")

INTEGRATIONS_TTL = 5.0  # seconds a process trusts its copy of the integrations
STUCK_OUTBOX = timedelta(minutes=15)
STALE_ENGINE = timedelta(seconds=60)
CLIENT_GONE = 499
"""The status logged for a request whose sender hung up before it was answered (nginx's)."""
OUTCOMES = ("opened", "deduplicated", "acknowledged", "resolved", "unchanged", "dropped")


@dataclass
class Desk:
    """What every request shares: the database, the clock, who intake acts as, and how
    cases opened here page their first step (in the transaction that opens them)."""

    db: Database
    clock: Clock
    actor: str
    escalation: EscalationStarter
    after_paging: Callable[[], None] | None = None
    """Told after a request opened (and paged) cases: the in-process engine's runner."""
    engine_name: str | None = None  # the in-process engine, for /readyz
    request_within: float = REQUEST_WITHIN
    """Seconds a request's body has to arrive (`app.serve.connections`)."""
    limiter: RateLimiter = field(default_factory=RateLimiter)
    metrics: Metrics | None = None
    _integrations: dict[str, IntegrationView] = field(default_factory=dict)
    _by_hash: dict[str, IntegrationView] = field(default_factory=dict)
    _loaded_at: float = float("-inf")

    def __post_init__(self) -> None:
        self.outage = OutageLog(
            "intake", self.clock, log, meanwhile="senders are answered 503 until it is back"
        )
        """Requests failing because of the database, said as an outage, not a line each."""
        # SQLite has one writer at a time and its busy handler waits by sleeping (up to
        # 100 ms a try), so this process's writers queue here instead, in order.
        self.writing = threading.Lock() if not self.db.is_postgres else contextlib.nullcontext()
        if self.metrics is None:
            self.metrics = Metrics(self.db, self.clock)
        self.cases = CaseService(self.db, self.clock, escalation=self.escalation)
        self.intake = GroupCommit(
            self.cases,
            self.actor,
            self.writing,
            self.after_paging,
        )

    @property
    def meter(self) -> Metrics:
        assert self.metrics is not None
        return self.metrics

    def _fresh(self) -> bool:
        return time.monotonic() - self._loaded_at < INTEGRATIONS_TTL

    def integrations(self) -> None:
        """Reload the integrations when the copy is older than `INTEGRATIONS_TTL`."""
        if self._fresh():
            return
        views = load_integrations(self.db)
        self._integrations = {view.name: view for view in views}
        self._by_hash = {view.key_hash: view for view in views if view.key_hash}
        self._loaded_at = time.monotonic()

    async def find(
        self, lookup: Callable[..., IntegrationView | None], *args: str
    ) -> IntegrationView | None:
        """`lookup` (`by_key` or `by_name`, which read this process's copy) from the event
        loop, once a copy older than `INTEGRATIONS_TTL` is reloaded from the database in a
        worker thread. A thread for every request cost about a tenth of each one's time."""
        if not self._fresh():
            await run_in_threadpool(self.integrations)
        return lookup(*args)

    async def store(self, events: Events, outcome: IntakeOutcome, integration: str) -> None:
        """Intake's events written with the group they join; one written ends an outage
        (a request that wrote nothing proves nothing about the database)."""
        await self.intake.apply(events, outcome, integration)
        if events:
            self.outage.recovered()

    def by_key(self, key: str, fmt: str) -> IntegrationView | None:
        found = self._by_hash.get(hash_key(key))
        return found if matching(found, key) and found and found.format == fmt else None

    def by_name(self, name: str, key: str, fmt: str) -> IntegrationView | None:
        found = self._integrations.get(name)
        return found if matching(found, key) and found and found.format == fmt else None


def _defaults(integration: IntegrationView) -> IntakeDefaults:
    return IntakeDefaults(
        integration=integration.name,
        category=integration.category,
        severity=integration.severity,
        policy=integration.policy,
    )


def _problem(exc: HttpProblem, pagerduty: bool) -> JSONResponse:
    if pagerduty and exc.status == 400:
        body = {"status": "invalid event", "message": exc.message, "errors": exc.errors}
    elif pagerduty and exc.status == 429:
        body = {"status": "throttle event", "message": exc.message, "errors": exc.errors}
    else:
        body = {"status": "error", "message": exc.message, "errors": exc.errors}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def _guarded(
    route: str, pagerduty: bool = False
) -> Callable[[Callable[[Request], Awaitable[Response]]], Callable[[Request], Awaitable[Response]]]:
    """Every refusal a 4xx with the field at fault; a database that does not answer a 503;
    anything else a 500 without a trace; each request one line in the access log."""

    def wrap(handler: Callable[[Request], Awaitable[Response]]) -> Any:
        async def endpoint(request: Request) -> Response:
            desk: Desk = request.app.state.desk
            started = time.perf_counter()
            request.state.note = ""
            try:
                response = await handler(request)
            except HttpProblem as exc:
                response = _problem(exc, pagerduty)
            except ClientDisconnect:  # gone before its body was in: nobody to answer
                request.state.note = "the sender hung up before its body was in"
                response = Response(status_code=CLIENT_GONE)
            except Exception as exc:
                if is_database_trouble(exc):
                    desk.outage.failed(exc)  # said once, once a minute, and when it is over
                    said = "'s disk is full" if is_disk_full(exc) else " did not answer"
                    problem = HttpProblem(
                        503, f"the database{said}; try again", headers={"Retry-After": "5"}
                    )
                else:
                    log.exception("%s: unexpected error", route)
                    problem = HttpProblem(500, "internal error; it was logged")
                response = _problem(problem, pagerduty)
            took = (time.perf_counter() - started) * 1000
            desk.meter.requests.labels(route, str(response.status_code)).inc()
            access_log.info(
                "%s %s %d %.1fms %s",
                request.method,
                route,
                response.status_code,
                took,
                request.state.note,
            )
            return response

        return endpoint

    return wrap


def _count(desk: Desk, name: str, outcome: IntakeOutcome) -> None:
    for kind in OUTCOMES:
        amount = len(getattr(outcome, kind))
        if amount:
            desk.meter.events.labels(name, kind).inc(amount)
    if outcome.changes:
        desk.meter.events.labels(name, "change").inc(outcome.changes)
    if outcome.errors:
        desk.meter.events.labels(name, "rejected").inc(len(outcome.errors))


def _throttle(desk: Desk, integration: IntegrationView, count: int) -> None:
    wait = desk.limiter.take(integration.name, integration.rate_limit, count)
    if wait:
        desk.meter.events.labels(integration.name, "rate_limited").inc(count)
        raise HttpProblem(
            429,
            f"over the integration's rate limit of {integration.rate_limit} events a minute",
            headers={"Retry-After": retry_after(wait)},
        )


# --- PagerDuty Events API v2 ---------------------------------------------------------------


async def _pagerduty(request: Request, *, change: bool) -> Response:
    desk: Desk = request.app.state.desk
    body = await read_json(request, desk.request_within)
    if not isinstance(body, dict):
        raise HttpProblem(400, "Event object is invalid", ["body: expected a JSON object"])
    key = body.get("routing_key")
    if not isinstance(key, str) or not key.strip():
        raise HttpProblem(400, "Event object is invalid", ["routing_key: required"])
    integration = await desk.find(desk.by_key, key.strip(), "pagerduty")
    if integration is None:
        desk.meter.events.labels("", "unauthorized").inc()
        raise HttpProblem(401, "routing_key: not a key of this desk")
    request.state.note = f"integration={integration.name}"
    if change and "event_action" in body:
        raise HttpProblem(400, "Event object is invalid", ["event_action: not for change events"])
    if not change and "event_action" not in body:
        raise HttpProblem(400, "Event object is invalid", ["event_action: required"])
    _throttle(desk, integration, 1)
    outcomes = parse_value(body, "pagerduty", _defaults(integration), "event")
    errors = [o.reason for o in outcomes if isinstance(o, IntakeError)]
    if errors:
        desk.meter.events.labels(integration.name, "rejected").inc()
        raise HttpProblem(400, "Event object is invalid", errors)
    events = [o for o in outcomes if not isinstance(o, IntakeError)]
    outcome = IntakeOutcome()
    await desk.store(events, outcome, integration.name)
    _count(desk, integration.name, outcome)
    if outcome.errors:
        raise HttpProblem(400, "Event object is invalid", [e.reason for e in outcome.errors])
    if change:
        return JSONResponse(
            {"status": "success", "message": "Change event processed"}, status_code=202
        )
    event = events[0]
    assert isinstance(event, IntakeEvent)
    request.state.note += " " + _summary(outcome)
    return JSONResponse(
        {"status": "success", "message": "Event processed", "dedup_key": event.dedup_key},
        status_code=202,
    )


def _summary(outcome: IntakeOutcome) -> str:
    done = [f"{kind}={len(getattr(outcome, kind))}" for kind in OUTCOMES if getattr(outcome, kind)]
    if outcome.errors:
        done.append(f"rejected={len(outcome.errors)}")
    return " ".join(done)


@_guarded("/v2/enqueue", pagerduty=True)
async def enqueue(request: Request) -> Response:
    return await _pagerduty(request, change=False)


@_guarded("/v2/change/enqueue", pagerduty=True)
async def change_enqueue(request: Request) -> Response:
    return await _pagerduty(request, change=True)


# --- Alertmanager, Grafana and our own events ------------------------------------------------


INTAKE_FORMATS = frozenset(fmt.name for fmt in formats())
"""The formats `/integrations/{format}/{name}` takes: a heartbeat monitor is looked up as
an integration is, but it sends no events."""
HEARTBEATS = frozenset({HEARTBEAT})


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise HttpProblem(
            401,
            "authorization: expected Authorization: Bearer KEY",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return credentials.strip()


async def _named_sender(
    request: Request, fmt: str, what: str, taken: frozenset[str]
) -> IntegrationView:
    """The integration (or heartbeat monitor) the path names, if the bearer key is its
    and its format one of `taken`; a wrong key, an unknown name and a format this route
    does not take alike a 401, so nobody learns which exist."""
    desk: Desk = request.app.state.desk
    key = _bearer(request)
    name = request.path_params["name"]
    found = await desk.find(desk.by_name, name, key, fmt) if fmt in taken else None
    if found is None:
        desk.meter.events.labels("", "unauthorized").inc()
        raise HttpProblem(
            401, f"authorization: not a key of this {what}", headers={"WWW-Authenticate": "Bearer"}
        )
    return found


@_guarded("/integrations/{format}/{name}")
async def integration_events(request: Request) -> Response:
    desk: Desk = request.app.state.desk
    fmt = request.path_params["format"]
    integration = await _named_sender(request, fmt, "integration", INTAKE_FORMATS)
    request.state.note = f"integration={integration.name}"
    body = await read_json(request, desk.request_within)
    items = body if isinstance(body, list) and fmt == "vigil" else [body]
    outcomes = []
    for index, item in enumerate(items, 1):
        where = f"event {index}" if len(items) > 1 else "event"
        outcomes += parse_value(item, fmt, _defaults(integration), where)
    events = [o for o in outcomes if not isinstance(o, IntakeError)]
    outcome = IntakeOutcome(errors=[o for o in outcomes if isinstance(o, IntakeError)])
    _throttle(desk, integration, max(1, len(events)))
    await desk.store(events, outcome, integration.name)
    _count(desk, integration.name, outcome)
    request.state.note += " " + _summary(outcome)
    body_out = {"status": "success" if not outcome.errors else "partly refused"}
    body_out |= outcome.as_json()
    return JSONResponse(body_out, status_code=400 if outcome.errors else 202)


# --- heartbeat monitors ------------------------------------------------------------------------


@_guarded("/heartbeat/{name}")
async def heartbeat(request: Request) -> Response:
    """A monitor's beat: 200 with when the next is due."""
    desk: Desk = request.app.state.desk
    monitor = await _named_sender(request, HEARTBEAT, "heartbeat monitor", HEARTBEATS)
    request.state.note = f"heartbeat={monitor.name}"
    _throttle(desk, monitor, 1)
    beat = await run_in_threadpool(_beat, desk, monitor.name)
    desk.outage.recovered()
    desk.meter.events.labels(monitor.name, "heartbeat").inc()
    if beat.resolved:
        request.state.note += f" resolved {beat.resolved}"
    return JSONResponse(beat.as_json())


def _beat(desk: Desk, name: str) -> Beat:
    with desk.writing:
        return record_beat(desk.cases, desk.actor, name)


# --- health and metrics ----------------------------------------------------------------------


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _readiness(desk: Desk) -> tuple[bool, dict[str, str]]:
    checks: dict[str, str] = {}
    ready = True
    try:
        with desk.db.read() as session:
            session.exec(text("SELECT 1"))  # type: ignore[call-overload]
            now = desk.clock.now()
            checks["database"] = "ok"
            if desk.engine_name is not None:
                beat = session.get(EngineHeartbeat, desk.engine_name)
                if beat is None or now - beat.last_cycle_at > STALE_ENGINE:
                    ready = False
                    checks["engine"] = "no full cycle in the last minute"
                else:
                    checks["engine"] = "ok"
            else:
                checks["engine"] = "not run here (--no-engine)"
            oldest = session.exec(
                select(func.min(Delivery.next_attempt_at)).where(
                    col(Delivery.channel).in_(OUTBOX_CHANNELS), col(Delivery.status) == "pending"
                )
            ).one()
            if oldest is not None and now - oldest > STUCK_OUTBOX:
                ready = False
                checks["outbox"] = "an outbox delivery has waited more than 15 minutes"
            else:
                checks["outbox"] = "ok"
    except SQLAlchemyError as exc:
        return False, {"database": f"did not answer ({type(exc).__name__})"}
    return ready, checks


async def readyz(request: Request) -> Response:
    desk: Desk = request.app.state.desk
    ready, checks = await run_in_threadpool(_readiness, desk)
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


async def metrics(request: Request) -> Response:
    desk: Desk = request.app.state.desk
    payload = await run_in_threadpool(desk.meter.exposition)
    return Response(payload, media_type=CONTENT_TYPE_LATEST)


def make_app(desk: Desk) -> Starlette:
    app = Starlette(
        routes=[
            Route("/v2/enqueue", enqueue, methods=["POST"]),
            Route("/v2/change/enqueue", change_enqueue, methods=["POST"]),
            Route("/integrations/{format}/{name}", integration_events, methods=["POST"]),
            Route("/heartbeat/{name}", heartbeat, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/ack/{token}", _guarded("/ack")(links.ack_page), methods=["GET"]),
            Route("/ack/{token}", _guarded("/ack")(links.ack_action), methods=["POST"]),
            Route("/open/{token}", _guarded("/open")(links.open_page), methods=["GET"]),
        ]
    )
    app.state.desk = desk
    return app

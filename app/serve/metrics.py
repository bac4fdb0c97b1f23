"""`/metrics` in Prometheus' exposition format (`prometheus_client`), one registry per app.

Counted in this process: intake events by integration and outcome, HTTP requests by route
and status, pages by reason (from the pages the desk wrote since this process started,
read by id, so a restart never counts one twice in a process) and the escalation lag of
each (from its step's due time to its page). Pages are read after each engine cycle and at
each scrape, not after each request: a storm of alerts would pay a read per request for a
figure nobody looks at between scrapes. Read from the database at each scrape: open
cases by severity, the outbox's backlog (webhook and Apprise) and its oldest due delivery,
the age of the freshest engine heartbeat, and each heartbeat monitor's state.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, func, select

from app.core.clock import Clock
from app.services.heartbeats import HeartbeatView, load_heartbeats
from data.db import Database
from data.domain import OUTBOX_CHANNELS, Status, severity_name
from data.escalation import EngineHeartbeat
from data.models import Case, Delivery, Page

LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class DeskCollector(Collector):
    """What the database says at each scrape; a database that does not answer is a gauge
    `vigil_database_up 0`, not a failed scrape."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("vigil_database_up", "1 when the database answered this scrape")
        try:
            families = list(self._read())
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> Iterator[Metric]:
        now = self.clock.now()
        with self.db.read() as session:
            open_cases = GaugeMetricFamily(
                "vigil_open_cases", "Cases not yet resolved, by severity", labels=["severity"]
            )
            counts = dict.fromkeys(range(1, 5), 0)
            rows = session.exec(
                select(Case.severity, func.count())
                .where(Case.status != Status.RESOLVED.value)
                .group_by(col(Case.severity))
            ).all()
            for severity, count in rows:
                counts[int(severity)] = int(count)
            for severity, count in counts.items():
                open_cases.add_metric([severity_name(severity)], count)
            yield open_cases

            backlog, oldest = session.exec(
                select(func.count(), func.min(Delivery.next_attempt_at)).where(
                    col(Delivery.channel).in_(OUTBOX_CHANNELS), col(Delivery.status) == "pending"
                )
            ).one()
            yield GaugeMetricFamily(
                "vigil_outbox_backlog",
                "Outbox deliveries (webhook, Apprise) waiting to be sent",
                value=backlog,
            )
            age = 0.0
            if isinstance(oldest, datetime):
                age = max(0.0, (now - oldest).total_seconds())
            yield GaugeMetricFamily(
                "vigil_outbox_oldest_due_seconds",
                "How long the oldest waiting outbox delivery has been due",
                value=age,
            )
            beat = session.exec(select(func.max(EngineHeartbeat.last_cycle_at))).one()
            heartbeat = GaugeMetricFamily(
                "vigil_engine_heartbeat_age_seconds",
                "Seconds since any escalation engine last finished a full cycle",
            )
            if isinstance(beat, datetime):
                heartbeat.add_metric([], max(0.0, (now - beat).total_seconds()))
            yield heartbeat
            yield from _monitor_families(load_heartbeats(session), now)


def _monitor_families(monitors: list[HeartbeatView], now: datetime) -> Iterator[Metric]:
    """Each heartbeat monitor: whether it is down (its case open), and how long since its
    last beat (absent before the first)."""
    down = GaugeMetricFamily(
        "vigil_heartbeat_down",
        "1 while a heartbeat monitor is silent past its deadline and its case is open",
        labels=["heartbeat"],
    )
    age = GaugeMetricFamily(
        "vigil_heartbeat_last_beat_age_seconds",
        "Seconds since a heartbeat monitor's last beat",
        labels=["heartbeat"],
    )
    for monitor in monitors:
        down.add_metric([monitor.name], 1 if monitor.state() == "down" else 0)
        if monitor.last_beat_at is not None:
            age.add_metric([monitor.name], max(0.0, (now - monitor.last_beat_at).total_seconds()))
    yield down
    yield age


class Metrics:
    """The registry of one app, and the counters its handlers and engine update."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter(
            "vigil_intake_events",
            "Intake events by integration and outcome (opened, deduplicated, acknowledged, "
            "resolved, unchanged, dropped, change, rejected, rate_limited, unauthorized)",
            ["integration", "outcome"],
            registry=self.registry,
        )
        self.requests = Counter(
            "vigil_http_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.connections_cut = Counter(
            "vigil_http_connections_cut",
            "Connections closed unanswered, by why: late (no request head within the request "
            "timeout), unread (answers left unread as long) or too_many (beyond what the "
            "open-file limit leaves room for)",
            ["reason"],
            registry=self.registry,
        )
        self.pages = Counter(
            "vigil_pages",
            "Pages the desk sent, seen by this process, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.lag = Histogram(
            "vigil_escalation_lag_seconds",
            "From an escalation step's due time to its page",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(DeskCollector(db, clock))
        self._db = db
        self._last_page_id: int | None = None
        self._lock = threading.Lock()

    def count_pages(self) -> None:
        """Count the pages written since the last call (the first call only remembers
        where the desk stands)."""
        with self._lock, self._db.read() as session:
            if self._last_page_id is None:
                self._last_page_id = session.exec(select(func.max(Page.id))).one() or 0
                return
            rows = session.exec(
                select(Page.id, Page.reason, Page.due_at, Page.sent_at)
                .where(col(Page.id) > self._last_page_id)
                .order_by(col(Page.id))
                .limit(50_000)
            ).all()
            for page_id, reason, due_at, sent_at in rows:
                self.pages.labels(reason).inc()
                if reason in ("escalation", "catch-up"):
                    self.lag.observe(max(0.0, (sent_at - due_at).total_seconds()))
                self._last_page_id = page_id

    def exposition(self) -> bytes:
        """The scrape's text: the pages written since the last count, then every metric (a
        database that does not answer leaves the page counts as they were and says so in
        `vigil_database_up`)."""
        with contextlib.suppress(SQLAlchemyError):
            self.count_pages()
        return generate_latest(self.registry)

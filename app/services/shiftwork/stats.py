"""The desk's figures: how fast cases are acknowledged and resolved, how often SLAs hold, and
how the paging load falls on people.

Facts are read from the database once (`load_facts`); every figure is then a pure function of
them (`compute_stats`), so the console's Stats screen and `vigil stats` draw the same numbers
and tests check them by hand. The fact helpers here (`first_acknowledged_at`,
`answered_at`, `SlaCheck`) are shared with handovers and post-mortems, so "acknowledged",
"breached" and "unanswered" mean the same thing everywhere.

Rules:

* A case is acknowledged at its first acknowledgement (a later reassign or escalate-now
  resets the case's own `acknowledged_at`, not this); a case resolved without one counts as
  acknowledged when it was resolved.
* An SLA deadline is met when the acknowledgement (first response) comes at or before it,
  missed when it comes later or has not come by the time of asking, pending before that.
* Percentiles are nearest-rank: the 90th percentile of n values is the ceil(0.9 n)-th smallest,
  always a value that happened.
* Night is 22:00 to 07:00 on the wall clock of the paged person's own zone.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, func, select

from app.core.times import iso
from app.services.policies import DEFAULT_SLA, sla_table
from data.domain import SEVERITIES, TimelineKind, severity_name
from data.models import Case, Page, Responder, TimelineEvent

NIGHT_STARTS = time(22, 0)
NIGHT_ENDS = time(7, 0)
PERCENTILE = 0.9
ANSWER_KINDS = (TimelineKind.ACKNOWLEDGED.value, TimelineKind.RESOLVED.value)
"""Timeline events that answer a page: the case was acknowledged or resolved."""

Sla = Mapping[int, tuple[int, int]]


# --- facts --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseFact:
    ref: str
    category: str
    severity: int
    created_at: datetime
    acknowledged_at: datetime | None  # the first acknowledgement (see the module's rules)
    first_response_at: datetime | None
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class PageFact:
    handle: str
    sent_at: datetime


@dataclass(frozen=True)
class DeskFacts:
    """What the figures are computed from; `responders` maps every handle to its zone."""

    cases: tuple[CaseFact, ...] = ()
    pages: tuple[PageFact, ...] = ()
    responders: Mapping[str, str] = field(default_factory=dict)
    sla: Sla = field(default_factory=lambda: dict(DEFAULT_SLA))


def earliest(*instants: datetime | None) -> datetime | None:
    return min((t for t in instants if t is not None), default=None)


def first_acknowledged_at(case: Case, first_events: Mapping[int, datetime]) -> datetime | None:
    """The first acknowledgement of `case`: its earliest "acknowledged" timeline event, else
    its own stamp (which resolve sets when nobody acknowledged)."""
    return earliest(first_events.get(case.id or 0), case.acknowledged_at)


def load_facts(session: Session, since: datetime, until: datetime) -> DeskFacts:
    """Cases opened and pages sent in [since, until), every responder's zone, the SLA table.

    Only the columns the figures need are read, in one query per kind of fact."""
    opened = (col(Case.created_at) >= since, col(Case.created_at) < until)
    first_acks = (
        sa_select(col(TimelineEvent.case_id), func.min(TimelineEvent.at).label("first_at"))
        .join(Case, col(Case.id) == col(TimelineEvent.case_id))
        .where(col(TimelineEvent.kind) == TimelineKind.ACKNOWLEDGED.value, *opened)
        .group_by(col(TimelineEvent.case_id))
        .subquery()
    )
    rows = session.execute(
        sa_select(
            col(Case.ref),
            col(Case.category),
            col(Case.severity),
            col(Case.created_at),
            col(Case.acknowledged_at),
            col(Case.first_response_at),
            col(Case.resolved_at),
            first_acks.c.first_at,
        )
        .outerjoin(first_acks, first_acks.c.case_id == col(Case.id))
        .where(*opened)
    ).all()
    pages = session.exec(
        select(Responder.handle, Page.sent_at)
        .join(Responder, col(Responder.id) == col(Page.responder_id))
        .where(col(Page.sent_at) >= since, col(Page.sent_at) < until)
    ).all()
    people = session.exec(select(Responder.handle, Responder.timezone, Responder.active)).all()
    paged = {handle for handle, _ in pages}
    return DeskFacts(
        cases=tuple(
            CaseFact(ref, category, severity, created, earliest(first_at, acked), responded, done)
            for ref, category, severity, created, acked, responded, done, first_at in rows
        ),
        pages=tuple(PageFact(handle, sent_at) for handle, sent_at in pages),
        responders={h: tz for h, tz, active in people if active or h in paged},
        sla=sla_table(session),
    )


# --- SLA checks and answered pages --------------------------------------------


@dataclass(frozen=True, slots=True)
class SlaCheck:
    """One deadline of one case: to acknowledge, or to respond."""

    kind: str  # "acknowledge" or "respond"
    due_at: datetime
    met_at: datetime | None

    def state(self, at: datetime) -> str:
        """`met`, `missed` or `pending`, as known at the instant `at`."""
        if self.met_at is not None and self.met_at <= at:
            return "met" if self.met_at <= self.due_at else "missed"
        return "missed" if self.due_at < at else "pending"

    def late_by(self, at: datetime) -> timedelta:
        """How late it was met, or how late it stands at `at` when it was not."""
        met = self.met_at if self.met_at is not None and self.met_at <= at else at
        return max(met - self.due_at, timedelta())


def sla_checks(
    severity: int,
    created_at: datetime,
    acknowledged_at: datetime | None,
    first_response_at: datetime | None,
    sla: Sla,
) -> tuple[SlaCheck, SlaCheck]:
    ack_seconds, respond_seconds = sla.get(severity, DEFAULT_SLA[4])
    return (
        SlaCheck("acknowledge", created_at + timedelta(seconds=ack_seconds), acknowledged_at),
        SlaCheck("respond", created_at + timedelta(seconds=respond_seconds), first_response_at),
    )


def answered_at(
    pages: Sequence[tuple[datetime, datetime | None]], answers: Iterable[datetime]
) -> list[datetime | None]:
    """For one case's pages (sent_at, the page's own acknowledgement), sorted by sent_at:
    when each was answered, or None when it went unanswered.

    A page is answered by its own acknowledgement, or by the case being acknowledged or
    resolved (`answers`) after it went out and before the next page of the case did. A page
    the chain moved on from without an answer, or still waiting, is unanswered.
    """
    instants = sorted(answers)
    result: list[datetime | None] = []
    for index, (sent_at, own) in enumerate(pages):
        later = [s for s, _ in pages[index + 1 :] if s > sent_at]
        next_sent = later[0] if later else None
        case_answer = next(
            (a for a in instants if a >= sent_at and (next_sent is None or a < next_sent)), None
        )
        result.append(earliest(own, case_answer))
    return result


# --- figures --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timing:
    """Mean and nearest-rank 90th percentile, in seconds, of `count` durations."""

    count: int
    mean_seconds: float | None
    p90_seconds: float | None


@dataclass(frozen=True, slots=True)
class SlaTally:
    met: int = 0
    missed: int = 0
    pending: int = 0

    @property
    def attainment(self) -> float | None:
        """Met out of decided (met or missed); None before anything was decided."""
        decided = self.met + self.missed
        return self.met / decided if decided else None

    def add(self, state: str) -> SlaTally:
        return SlaTally(
            self.met + (state == "met"),
            self.missed + (state == "missed"),
            self.pending + (state == "pending"),
        )


@dataclass(frozen=True, slots=True)
class SlaRow:
    """Attainment of one severity (`sev1`) or one category (`edr`)."""

    key: str
    cases: int
    acknowledge: SlaTally
    respond: SlaTally


@dataclass(frozen=True, slots=True)
class ResponderLoad:
    handle: str
    timezone: str
    pages: int
    night_pages: int
    share: float | None  # of all pages in the window; None when there were none


@dataclass(frozen=True, slots=True)
class DayCount:
    day: date
    cases: int


@dataclass(frozen=True)
class DeskStats:
    """The Stats screen's view: bars per severity, category and responder, a sparkline of
    cases per day (every day of the window, quiet ones as 0)."""

    since: datetime
    until: datetime
    zone: str
    cases_opened: int
    time_to_acknowledge: Timing
    time_to_resolve: Timing
    sla_by_severity: tuple[SlaRow, ...]
    sla_by_category: tuple[SlaRow, ...]
    responders: tuple[ResponderLoad, ...]
    pages: int
    night_pages: int
    page_fairness: float | None
    night_fairness: float | None
    cases_per_day: tuple[DayCount, ...]

    @property
    def daily_counts(self) -> list[int]:
        """The sparkline's values."""
        return [d.cases for d in self.cases_per_day]


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def is_night(at: datetime, zone: str) -> bool:
    local = at.astimezone(_zone(zone)).time()
    return local >= NIGHT_STARTS or local < NIGHT_ENDS


def timing(seconds: Sequence[float]) -> Timing:
    if not seconds:
        return Timing(0, None, None)
    ordered = sorted(seconds)
    rank = math.ceil(PERCENTILE * len(ordered))
    return Timing(len(ordered), sum(ordered) / len(ordered), ordered[rank - 1])


def jain_fairness(loads: Sequence[int]) -> float | None:
    """Jain's index: 1.0 when everyone carries the same load, 1/n when one person carries it
    all. None when there is no load to share."""
    total = sum(loads)
    if not loads or total == 0:
        return None
    return total * total / (len(loads) * sum(x * x for x in loads))


def _sla_rows(rows: Mapping[str, list[tuple[str, str]]], keys: Iterable[str]) -> tuple[SlaRow, ...]:
    out = []
    for key in keys:
        ack, respond = SlaTally(), SlaTally()
        for ack_state, respond_state in rows.get(key, []):
            ack, respond = ack.add(ack_state), respond.add(respond_state)
        out.append(SlaRow(key, len(rows.get(key, [])), ack, respond))
    return tuple(out)


def _local_days(since: datetime, until: datetime, zone: ZoneInfo) -> list[date]:
    first = since.astimezone(zone).date()
    last = (until - timedelta(microseconds=1)).astimezone(zone).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def compute_stats(
    facts: DeskFacts, since: datetime, until: datetime, *, zone: str = "UTC"
) -> DeskStats:
    """The desk's figures for cases opened and pages sent in [since, until), as known at
    `until`; days are counted on the wall clock of `zone`."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("compute_stats needs aware `since` and `until`")
    if until <= since:
        raise ValueError(f"until {until.isoformat()} must be after since {since.isoformat()}")
    cases = [c for c in facts.cases if since <= c.created_at < until]
    to_ack = [
        (c.acknowledged_at - c.created_at).total_seconds()
        for c in cases
        if c.acknowledged_at is not None and c.acknowledged_at <= until
    ]
    to_resolve = [
        (c.resolved_at - c.created_at).total_seconds()
        for c in cases
        if c.resolved_at is not None and c.resolved_at <= until
    ]

    by_severity: dict[str, list[tuple[str, str]]] = defaultdict(list)
    by_category: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for c in cases:
        ack, respond = sla_checks(
            c.severity, c.created_at, c.acknowledged_at, c.first_response_at, facts.sla
        )
        states = (ack.state(until), respond.state(until))
        by_severity[severity_name(c.severity)].append(states)
        by_category[c.category].append(states)

    pages = [p for p in facts.pages if since <= p.sent_at < until]
    zones = dict(facts.responders)
    for page in pages:
        zones.setdefault(page.handle, "UTC")
    counts = Counter(p.handle for p in pages)
    nights = Counter(p.handle for p in pages if is_night(p.sent_at, zones[p.handle]))
    responders = tuple(
        ResponderLoad(
            handle,
            zones[handle],
            counts[handle],
            nights[handle],
            counts[handle] / len(pages) if pages else None,
        )
        for handle in sorted(zones, key=lambda h: (-counts[h], -nights[h], h))
    )

    tz = _zone(zone)
    per_day = Counter(c.created_at.astimezone(tz).date() for c in cases)
    return DeskStats(
        since=since,
        until=until,
        zone=zone,
        cases_opened=len(cases),
        time_to_acknowledge=timing(to_ack),
        time_to_resolve=timing(to_resolve),
        sla_by_severity=_sla_rows(by_severity, [severity_name(s) for s in SEVERITIES]),
        sla_by_category=_sla_rows(by_category, sorted(by_category)),
        responders=responders,
        pages=len(pages),
        night_pages=sum(nights.values()),
        page_fairness=jain_fairness([r.pages for r in responders]),
        night_fairness=jain_fairness([r.night_pages for r in responders]),
        cases_per_day=tuple(DayCount(d, per_day[d]) for d in _local_days(since, until, tz)),
    )


# --- output ---------------------------------------------------------------------


def _ratio(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _tally_json(tally: SlaTally) -> dict[str, Any]:
    return {
        "met": tally.met,
        "missed": tally.missed,
        "pending": tally.pending,
        "attainment": _ratio(tally.attainment),
    }


def _timing_json(value: Timing) -> dict[str, Any]:
    return {
        "count": value.count,
        "mean_seconds": value.mean_seconds,
        "p90_seconds": value.p90_seconds,
    }


def stats_json(stats: DeskStats) -> dict[str, Any]:
    def rows(items: Sequence[SlaRow]) -> list[dict[str, Any]]:
        return [
            {
                "key": r.key,
                "cases": r.cases,
                "acknowledge": _tally_json(r.acknowledge),
                "respond": _tally_json(r.respond),
            }
            for r in items
        ]

    return {
        "since": iso(stats.since),
        "until": iso(stats.until),
        "zone": stats.zone,
        "cases_opened": stats.cases_opened,
        "time_to_acknowledge": _timing_json(stats.time_to_acknowledge),
        "time_to_resolve": _timing_json(stats.time_to_resolve),
        "sla_by_severity": rows(stats.sla_by_severity),
        "sla_by_category": rows(stats.sla_by_category),
        "pages": stats.pages,
        "night_pages": stats.night_pages,
        "page_fairness": _ratio(stats.page_fairness),
        "night_fairness": _ratio(stats.night_fairness),
        "responders": [
            {
                "handle": r.handle,
                "timezone": r.timezone,
                "pages": r.pages,
                "night_pages": r.night_pages,
                "share": _ratio(r.share),
            }
            for r in stats.responders
        ],
        "cases_per_day": [
            {"day": d.day.isoformat(), "cases": d.cases} for d in stats.cases_per_day
        ],
    }


def format_seconds(seconds: float | None) -> str:
    """`4m 30s`, `2h 05m`, `1d 03h`; `-` for no value."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"


def fairness_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"

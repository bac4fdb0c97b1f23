"""The desk's figures, computed by hand: timings, SLA attainment, paging load at night across
daylight-saving changes, cases per day; then the same figures from a desk's history."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from app.cli.render import stats_text
from app.core.clock import FakeClock
from app.services.cases import CaseService
from app.services.shiftwork.stats import (
    CaseFact,
    DeskFacts,
    PageFact,
    SlaTally,
    Timing,
    answered_at,
    compute_stats,
    is_night,
    jain_fairness,
    load_facts,
    stats_json,
    timing,
)
from data.db import Database
from tests.cli_harness import Run
from tests.services.test_handover import MARKER, play_dst_shift

SLA = {1: (300, 1800), 2: (900, 7200), 3: (3600, 28800), 4: (14400, 86400)}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fact(
    ref: str,
    created: str,
    *,
    severity: int = 1,
    category: str = "edr",
    ack: int | None = None,
    respond: int | None = None,
    resolve: int | None = None,
) -> CaseFact:
    """A case opened at `created`; the others are seconds after it."""
    at = utc(created)

    def after(seconds: int | None) -> datetime | None:
        return None if seconds is None else at + timedelta(seconds=seconds)

    return CaseFact(ref, category, severity, at, after(ack), after(respond), after(resolve))


def test_timing_is_the_mean_and_the_nearest_rank_90th_percentile() -> None:
    assert timing([]) == Timing(0, None, None)
    assert timing([900, 60, 240, 180, 120]) == timing([60, 120, 180, 240, 900])
    five = timing([60, 120, 180, 240, 900])
    assert (five.count, five.mean_seconds, five.p90_seconds) == (5, 300.0, 900)  # ceil(4.5) = 5th
    ten = timing(list(range(10, 110, 10)))  # 10..100
    assert (ten.mean_seconds, ten.p90_seconds) == (55.0, 90)  # ceil(9.0) = 9th
    eleven = timing(list(range(1, 12)))
    assert eleven.p90_seconds == 10  # ceil(9.9) = 10th


def test_time_to_acknowledge_and_resolve() -> None:
    since, until = utc("2026-11-02T00:00:00"), utc("2026-11-03T00:00:00")
    facts = DeskFacts(
        cases=(
            fact("A", "2026-11-02T01:00:00", ack=120, resolve=3600),
            fact("B", "2026-11-02T02:00:00", ack=240, resolve=7200),
            fact("C", "2026-11-02T03:00:00", ack=600),
            fact("D", "2026-11-02T04:00:00"),
            # Resolved after `until`: not counted as resolved yet.
            fact("E", "2026-11-02T23:00:00", ack=60, resolve=7200),
            # Opened before the window: not counted at all.
            fact("F", "2026-11-01T23:00:00", ack=5, resolve=10),
        ),
        sla=SLA,
    )
    stats = compute_stats(facts, since, until)
    assert stats.cases_opened == 5
    tta = stats.time_to_acknowledge
    assert (tta.count, tta.mean_seconds, tta.p90_seconds) == (4, 255.0, 600)
    ttr = stats.time_to_resolve
    assert (ttr.count, ttr.mean_seconds, ttr.p90_seconds) == (2, 5400.0, 7200)


def test_sla_attainment_by_severity_and_category() -> None:
    since, until = utc("2026-11-02T00:00:00"), utc("2026-11-02T12:00:00")
    facts = DeskFacts(
        cases=(
            # sev1: ack within 5m, respond within 30m.
            fact("A", "2026-11-02T01:00:00", ack=300, respond=2000),  # ack met (on the dot)
            fact("B", "2026-11-02T02:00:00", ack=301),  # both missed
            fact("C", "2026-11-02T11:58:00"),  # 2 minutes old: pending
            # sev3 doxxing: 1h / 8h.
            fact("D", "2026-11-02T03:00:00", severity=3, category="doxxing", ack=3000),
        ),
        sla=SLA,
    )
    stats = compute_stats(facts, since, until)
    rows = {r.key: r for r in stats.sla_by_severity}
    assert list(rows) == ["sev1", "sev2", "sev3", "sev4"]
    assert rows["sev1"].cases == 3
    assert rows["sev1"].acknowledge == SlaTally(met=1, missed=1, pending=1)
    assert rows["sev1"].respond == SlaTally(met=0, missed=2, pending=1)
    assert rows["sev1"].acknowledge.attainment == 0.5
    assert rows["sev1"].respond.attainment == 0.0
    assert rows["sev2"].acknowledge.attainment is None  # nothing decided
    # D's respond deadline (11:00) passed by noon without a response.
    assert (rows["sev3"].acknowledge, rows["sev3"].respond) == (
        SlaTally(1, 0, 0),
        SlaTally(0, 1, 0),
    )
    by_category = {r.key: (r.cases, r.acknowledge, r.respond) for r in stats.sla_by_category}
    assert by_category == {
        "doxxing": (1, SlaTally(1, 0, 0), SlaTally(0, 1, 0)),
        "edr": (3, SlaTally(1, 1, 1), SlaTally(0, 2, 1)),
    }


def test_night_follows_each_responders_own_clock_across_dst() -> None:
    new_york, sydney = "America/New_York", "Australia/Sydney"
    # New York falls back at 02:00 EDT on 1 November 2026.
    assert is_night(utc("2026-11-01T05:30:00"), new_york)  # 01:30 EDT
    assert is_night(utc("2026-11-01T06:30:00"), new_york)  # 01:30 EST, the second time round
    assert is_night(utc("2026-11-01T11:30:00"), new_york)  # 06:30 EST
    assert not is_night(utc("2026-10-31T11:30:00"), new_york)  # 07:30 EDT
    assert not is_night(utc("2026-11-01T12:00:00"), new_york)  # 07:00 EST: day starts
    assert is_night(utc("2026-11-01T03:00:00"), new_york)  # 23:00 EDT
    # Sydney springs forward at 02:00 AEST on 4 October 2026.
    assert is_night(utc("2026-10-03T12:00:00"), sydney)  # 22:00 AEST
    assert not is_night(utc("2026-10-03T11:59:00"), sydney)  # 21:59 AEST
    assert not is_night(utc("2026-10-03T20:30:00"), sydney)  # 07:30 AEDT (06:30 if still AEST)
    assert is_night(utc("2026-10-03T19:30:00"), sydney)  # 06:30 AEDT


def test_pages_per_responder_night_pages_and_fairness() -> None:
    since, until = utc("2026-10-31T00:00:00"), utc("2026-11-02T00:00:00")
    facts = DeskFacts(
        pages=(
            PageFact("dev", utc("2026-11-01T05:30:00")),  # 01:30 EDT: night
            PageFact("dev", utc("2026-11-01T06:30:00")),  # 01:30 EST: night
            PageFact("dev", utc("2026-11-01T11:30:00")),  # 06:30 EST: night
            PageFact("dev", utc("2026-10-31T11:30:00")),  # 07:30 EDT: day
            PageFact("ana", utc("2026-10-31T02:00:00")),  # 13:00 AEDT: day
            PageFact("ghost", utc("2026-10-31T03:00:00")),  # unknown zone: UTC, night
            PageFact("dev", utc("2026-11-02T05:30:00")),  # after the window
        ),
        responders={"dev": "America/New_York", "ana": "Australia/Sydney", "eli": "UTC"},
        sla=SLA,
    )
    stats = compute_stats(facts, since, until)
    assert (stats.pages, stats.night_pages) == (6, 4)
    assert [(r.handle, r.timezone, r.pages, r.night_pages, r.share) for r in stats.responders] == [
        ("dev", "America/New_York", 4, 3, 4 / 6),
        ("ghost", "UTC", 1, 1, 1 / 6),
        ("ana", "Australia/Sydney", 1, 0, 1 / 6),
        ("eli", "UTC", 0, 0, 0.0),
    ]
    # Jain's index: (4+1+1+0)^2 / (4 * (16+1+1+0)) = 36/72; nights (3+1)^2 / (4 * (9+1)).
    assert stats.page_fairness == pytest.approx(0.5)
    assert stats.night_fairness == pytest.approx(0.4)


def test_jain_fairness_bounds() -> None:
    assert jain_fairness([]) is None
    assert jain_fairness([0, 0]) is None
    assert jain_fairness([5, 5, 5]) == 1.0
    assert jain_fairness([9, 0, 0]) == pytest.approx(1 / 3)


def test_cases_per_day_on_the_viewers_clock_every_day_counted() -> None:
    since, until = utc("2026-10-02T14:00:00"), utc("2026-10-05T14:00:00")
    facts = DeskFacts(
        cases=(
            fact("A", "2026-10-02T14:30:00"),  # 3 Oct 00:30 AEST
            fact("B", "2026-10-03T13:30:00"),  # 3 Oct 23:30 AEST
            fact("C", "2026-10-03T14:30:00"),  # 4 Oct 01:30 AEST (before the change)
            fact("D", "2026-10-04T13:30:00"),  # 5 Oct 00:30 AEDT (23:30 4 Oct if still AEST)
        ),
        sla=SLA,
    )
    sydney = compute_stats(facts, since, until, zone="Australia/Sydney")
    assert [(d.day, d.cases) for d in sydney.cases_per_day] == [
        (date(2026, 10, 3), 2),
        (date(2026, 10, 4), 1),
        (date(2026, 10, 5), 1),
        (date(2026, 10, 6), 0),  # the window ends 6 Oct 01:00 AEDT
    ]
    assert sydney.daily_counts == [2, 1, 1, 0]
    in_utc = compute_stats(facts, since, until)
    assert [(d.day.day, d.cases) for d in in_utc.cases_per_day] == [(2, 1), (3, 2), (4, 1), (5, 0)]


def test_compute_stats_refuses_a_bad_window() -> None:
    now = utc("2026-11-02T00:00:00")
    with pytest.raises(ValueError, match="after"):
        compute_stats(DeskFacts(), now, now)
    with pytest.raises(ValueError, match="aware"):
        compute_stats(DeskFacts(), now.replace(tzinfo=None), now)


def test_answered_at_is_an_answer_before_the_chain_moved_on() -> None:
    t = utc("2026-11-02T00:00:00")

    def m(minutes: int) -> datetime:
        return t + timedelta(minutes=minutes)

    # Step 1 at 0 (two people), step 2 at 5, acknowledged at 7.
    pages = [(m(0), None), (m(0), None), (m(5), None)]
    assert answered_at(pages, [m(7)]) == [None, None, m(7)]
    # Acknowledged at 3, before step 2 would go out: both step-1 pages answered.
    assert answered_at(pages[:2], [m(3)]) == [m(3), m(3)]
    # A page's own acknowledgement (a multi-ack step) counts even without the case's.
    assert answered_at([(m(0), m(2)), (m(0), None)], []) == [m(2), None]
    # Still waiting, no answer: unanswered.
    assert answered_at([(m(0), None)], []) == [None]


# --- from a desk's history --------------------------------------------------------


def test_figures_of_a_known_desk_across_the_dst_change(db: Database, clock: FakeClock) -> None:
    play_dst_shift(db, clock)
    since, until = utc("2026-10-02T21:00:00"), clock.now()  # 3 Oct 21:30Z
    with db.read() as session:
        facts = load_facts(session, since, until)
    assert sorted(facts.responders) == ["ana", "ben", "sam"]
    stats = compute_stats(facts, since, until, zone="Australia/Sydney")
    assert stats.cases_opened == 5
    # Acknowledged after 10m (ESC-0001), 7m (ESC-0002), 10m (ESC-0003).
    tta = stats.time_to_acknowledge
    assert (tta.count, tta.mean_seconds, tta.p90_seconds) == (3, 540.0, 600)
    ttr = stats.time_to_resolve
    assert (ttr.count, ttr.mean_seconds, ttr.p90_seconds) == (1, 7200.0, 7200)
    rows = {r.key: (r.acknowledge, r.respond) for r in stats.sla_by_severity}
    assert rows == {
        "sev1": (SlaTally(0, 1, 0), SlaTally(1, 0, 0)),  # acked 2m late; noted in 20m
        "sev2": (SlaTally(1, 0, 0), SlaTally(0, 1, 0)),
        "sev3": (SlaTally(1, 0, 1), SlaTally(0, 1, 1)),  # ESC-0005 is 10 minutes old
        "sev4": (SlaTally(0, 0, 1), SlaTally(0, 0, 1)),
    }
    # Pages in Sydney time: ben 07:00 AEST (day starts) and 08:20 AEDT; ana 09:00, 03:30 AEDT
    # (night) and 07:50 AEDT; sam 09:05, 07:55 AEDT and 08:05 AEDT. Without the change to
    # daylight time, ana's 07:50 and sam's 07:55 would have been night.
    assert [(r.handle, r.pages, r.night_pages) for r in stats.responders] == [
        ("ana", 3, 1),
        ("sam", 3, 0),
        ("ben", 2, 0),
    ]
    assert stats.page_fairness == pytest.approx(64 / 66)
    assert stats.night_fairness == pytest.approx(1 / 3)
    assert [(d.day, d.cases) for d in stats.cases_per_day] == [
        (date(2026, 10, 3), 2),
        (date(2026, 10, 4), 3),
    ]


def test_first_acknowledgement_survives_a_reassign(db: Database, clock: FakeClock) -> None:
    play_dst_shift(db, clock)
    cases = CaseService(db, clock)
    clock.advance(minutes=5)  # 21:35Z
    cases.reassign("sam", "ESC-0003", "ben")  # clears the case's own acknowledgement
    clock.advance(minutes=5)
    cases.acknowledge("ben", "ESC-0003")
    since = utc("2026-10-03T16:00:00")
    with db.read() as session:
        facts = load_facts(session, since, clock.now())
    (esc3,) = [c for c in facts.cases if c.ref == "ESC-0003"]
    assert esc3.acknowledged_at == utc("2026-10-03T16:40:00")


# --- the command line ---------------------------------------------------------------


@pytest.fixture
def run(db: Database, sqlite_url: str, clock: FakeClock) -> Run:
    play_dst_shift(db, clock)
    return Run(sqlite_url, clock)


def test_cli_stats_json_and_text(run: Run) -> None:
    body = run.json("stats", "--since", "2026-10-03T08:00:00+11:00")
    assert isinstance(body, dict)
    assert (body["since"], body["until"]) == ("2026-10-02T21:00:00Z", "2026-10-03T21:30:00Z")
    assert body["zone"] == "Australia/Sydney"  # ana's
    assert body["cases_opened"] == 5
    assert body["time_to_acknowledge"] == {"count": 3, "mean_seconds": 540.0, "p90_seconds": 600}
    assert body["sla_by_severity"][0] == {
        "key": "sev1",
        "cases": 1,
        "acknowledge": {"met": 0, "missed": 1, "pending": 0, "attainment": 0.0},
        "respond": {"met": 1, "missed": 0, "pending": 0, "attainment": 1.0},
    }
    assert body["responders"][0] == {
        "handle": "ana",
        "timezone": "Australia/Sydney",
        "pages": 3,
        "night_pages": 1,
        "share": 0.375,
    }
    assert body["cases_per_day"] == [
        {"day": "2026-10-03", "cases": 2},
        {"day": "2026-10-04", "cases": 3},
    ]
    code, out, _ = run("stats", "--since", "2026-10-02T21:00:00Z")
    assert code == 0
    assert "Time to acknowledge: mean 9m 00s, p90 10m 00s (3 cases)" in out
    assert "ana              3     1    38%  Australia/Sydney" in out
    assert MARKER not in out


def test_cli_stats_defaults_to_a_week(run: Run) -> None:
    body = run.json("stats", who="ben")
    assert isinstance(body, dict)
    assert (body["since"], body["zone"]) == ("2026-09-26T21:30:00Z", "Australia/Sydney")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--since", "last week"], "--since"),
        (["--since", "2026-10-05T00:00:00Z"], "--since"),
        (["--until", "2026-10-03"], "--until"),
    ],
)
def test_cli_stats_bad_window_exits_2(run: Run, argv: list[str], needle: str) -> None:
    code, _, err = run("stats", *argv)
    assert code == 2
    assert needle in err


def test_stats_text_renders_empty_figures() -> None:
    since = utc("2026-11-02T00:00:00")
    text = stats_text(compute_stats(DeskFacts(), since, since + timedelta(days=1)))
    assert "Time to acknowledge: mean -, p90 - (0 cases)" in text
    assert "fairness -, at night -" in text
    body = stats_json(compute_stats(DeskFacts(), since, since + timedelta(days=1)))
    assert json.loads(json.dumps(body))["time_to_resolve"]["mean_seconds"] is None

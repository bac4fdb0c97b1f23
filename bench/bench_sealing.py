"""What sealing costs: opening 1,000 cases with details, against the same without details
(nothing to seal), and revealing them, each on a fresh database in the same run.

Opening a case with details seals them once its id is known (one more UPDATE in the same
transaction) and reveal opens them; listing cases opens nothing (details are deferred).
Run: `uv run python bench/bench_sealing.py [--cases N] [--runs N] [--db URL]` (default: a
fresh SQLite file per run; a PostgreSQL URL is used as given, so give an empty schema).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter

from sqlalchemy import text

from app.core.clock import FakeClock
from app.services.cases import CaseService
from data.db import Database
from data.models import ContactMethod, Responder

DETAILS = (
    "Reporter says the account holder shared an address and school name in a live stream; "
    "screenshots attached to the ticket; minor believed to be 14; platform user id 88213; "
    "requesting preservation of the stream and chat logs before they expire in 24 hours."
)
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _fresh(url: str | None, folder: Path, name: str) -> Database:
    db = Database.open(url or f"sqlite:///{folder / name}.db")
    if url:  # one schema reused: start from no cases
        with db.engine.begin() as connection:
            connection.execute(text('TRUNCATE "case", audit_record RESTART IDENTITY CASCADE'))
            connection.execute(text("UPDATE audit_head SET seq = 0, hash = ''"))
    with db.write() as session:
        if session.get(Responder, 1) is None:
            session.add(Responder(handle="ana", name="Ana", role="supervisor"))
            session.flush()
            session.add(ContactMethod(responder_id=1, kind="console"))
    return db


def _open(db: Database, cases: int, details: str) -> tuple[float, list[str]]:
    service = CaseService(db, FakeClock(NOW))
    started = perf_counter()
    refs = [
        service.open_case(
            "ana", title=f"Report {n}", category="csea", severity=2, details=details
        ).ref
        for n in range(cases)
    ]
    return perf_counter() - started, refs


def _reveal(db: Database, refs: list[str]) -> float:
    service = CaseService(db, FakeClock(NOW))
    started = perf_counter()
    for ref in refs:
        service.reveal("ana", ref, reason="bench")
    return perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--db", help="a PostgreSQL URL (default: a SQLite file per run)")
    args = parser.parse_args()
    timings: dict[str, list[float]] = {"bare": [], "sealed": [], "reveal": []}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        os.environ.setdefault("XDG_CONFIG_HOME", str(folder / "config"))
        for run in range(args.runs):
            # Alternate the order, so neither variant always runs on a warmer machine.
            for variant in ("bare", "sealed") if run % 2 == 0 else ("sealed", "bare"):
                db = _fresh(args.db, folder, f"{variant}-{run}")
                seconds, refs = _open(db, args.cases, "" if variant == "bare" else DETAILS)
                timings[variant].append(seconds)
                if variant == "sealed":
                    timings["reveal"].append(_reveal(db, refs))
                db.dispose()
    bare, sealed = statistics.median(timings["bare"]), statistics.median(timings["sealed"])
    reveal = statistics.median(timings["reveal"])
    n = args.cases
    print(f"opening {n:,} cases, median of {args.runs} runs on {args.db or 'SQLite'}:")
    print(f"  without details (nothing to seal): {bare:.2f} s ({bare / n * 1e3:.2f} ms a case)")
    print(f"  with {len(DETAILS)}-character details: {sealed:.2f} s ({sealed / n * 1e3:.2f} ms)")
    print(f"  ratio {sealed / bare:.2f}; revealing all {n:,}: {reveal:.2f} s")


if __name__ == "__main__":
    main()

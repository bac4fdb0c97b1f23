"""The yearly report of emergency disclosures, as CSV (as Markdown: `app.cli.render`)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from data.casework import Disclosure
from data.domain import DisclosureStatus

# --- the yearly disclosure report --------------------------------------------


@dataclass(frozen=True, slots=True)
class DisclosureCount:
    basis: str
    basis_label: str
    agency: str
    disclosures: int
    accounts: int


@dataclass(frozen=True)
class DisclosureReport:
    """Counts of emergency disclosures made in one calendar year (UTC), by legal basis and
    agency. It holds counts only: no case, person, title or detail ever enters it."""

    year: int
    rows: tuple[DisclosureCount, ...]

    @property
    def total_disclosures(self) -> int:
        return sum(r.disclosures for r in self.rows)

    @property
    def total_accounts(self) -> int:
        return sum(r.accounts for r in self.rows)


def disclosure_report(session: Session, year: int) -> DisclosureReport:
    start = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    statement = select(
        Disclosure.basis, Disclosure.basis_label, Disclosure.agency, Disclosure.accounts
    ).where(
        Disclosure.status == DisclosureStatus.DISCLOSED.value,
        col(Disclosure.emergency).is_(True),
        col(Disclosure.decided_at) >= start,
        col(Disclosure.decided_at) < end,
    )
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    labels: dict[str, str] = {}
    for basis, label, agency, accounts in session.exec(statement):
        tally = counts[(basis, agency)]
        tally[0] += 1
        tally[1] += accounts
        labels[basis] = label
    rows = tuple(
        DisclosureCount(basis, labels[basis], agency, n, accounts)
        for (basis, agency), (n, accounts) in sorted(counts.items())
    )
    return DisclosureReport(year, rows)


def _csv_cell(text: str) -> str:
    """Keep a spreadsheet from reading an agency's name as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def report_csv(report: DisclosureReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["year", "basis", "basis_label", "agency", "disclosures", "accounts"])
    for row in report.rows:
        writer.writerow(
            [
                report.year,
                row.basis,
                _csv_cell(row.basis_label),
                _csv_cell(row.agency),
                row.disclosures,
                row.accounts,
            ]
        )
    return buffer.getvalue()

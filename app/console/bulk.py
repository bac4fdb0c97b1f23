"""Bulk actions on the marked cases: each case is its own change through the case service
(its own unit of work, role check and audit record), so one refusal never holds up the
rest and every case's outcome is reported by itself.

Blocking: the queue screen runs `run_bulk` in a thread worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.console.desk import read_owed_reports
from app.console.failures import describe_failure
from app.services.cases import CaseService
from data.domain import Status

BULK_VERBS = ("ack", "resolve", "reassign")
PAST = {"ack": "acknowledged", "resolve": "resolved", "reassign": "reassigned"}


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    """What happened to one marked case: done, or why not (`problem`)."""

    case_id: int
    ref: str
    problem: str = ""

    @property
    def done(self) -> bool:
        return not self.problem


def run_bulk(
    service: CaseService,
    actor: str,
    verb: str,
    cases: Sequence[tuple[int, str]],
    text: str,
) -> tuple[BulkOutcome, ...]:
    """Apply `verb` to each of `cases` ((id, ref) pairs) in turn.

    `text` is the closing note (resolve) or the handle (reassign). A case that still owes
    a report is not resolved in bulk: resolving it asks first, one case at a time. When the
    database itself fails, the cases not yet tried are reported as not tried.
    """
    if verb not in BULK_VERBS:
        raise ValueError(f"verb: expected one of {', '.join(BULK_VERBS)}, got {verb!r}")
    outcomes: list[BulkOutcome] = []
    for index, (case_id, ref) in enumerate(cases):
        try:
            if verb == "ack":
                case = service.acknowledge(actor, ref)
                if case.status != Status.ACKNOWLEDGED.value:
                    outcomes.append(
                        BulkOutcome(case_id, ref, "acknowledgement recorded; waiting for others")
                    )
                    continue
            elif verb == "resolve":
                if owed := read_owed_reports(service.db, case_id, service.clock.now()):
                    outcomes.append(
                        BulkOutcome(
                            case_id,
                            ref,
                            f"still owes {'; '.join(owed)}: resolve it on its own to confirm",
                        )
                    )
                    continue
                service.resolve(actor, ref, note=text or None)
            else:
                service.reassign(actor, ref, text)
        except Exception as exc:
            failure = describe_failure(exc)
            outcomes.append(BulkOutcome(case_id, ref, failure.message))
            if failure.database_down:
                outcomes.extend(
                    BulkOutcome(i, r, "not tried: the database did not answer")
                    for i, r in cases[index + 1 :]
                )
                break
            continue
        outcomes.append(BulkOutcome(case_id, ref))
    return tuple(outcomes)


def bulk_summary(verb: str, outcomes: Sequence[BulkOutcome]) -> tuple[str, str]:
    """The toast's title and text: how many were done, then each case that was not."""
    done = [o for o in outcomes if o.done]
    left = [o for o in outcomes if not o.done]
    noun = "case" if len(done) == 1 else "cases"
    title = f"{len(done)} {noun} {PAST[verb]}"
    if not left:
        return title, ", ".join(o.ref for o in done)
    lines = [f"{o.ref}: {o.problem}" for o in left]
    return f"{title}, {len(left)} not", "\n".join(lines)

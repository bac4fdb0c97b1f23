"""The case service: the one door through which every change of a case passes.

Each action runs in one write transaction that locks the audit chain, loads the actor,
checks the actor's role, changes the case, adds a timeline event, feeds the change log
that consoles follow, and appends the audit record. Either all of it lands or none does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from app.core.errors import BadInput, NotAllowed, NotFound, NothingToDo
from app.core.text import clean_text, one_line
from app.core.times import bounded_instant
from app.services.policies import policy_of, routed_snapshot
from app.services.unit_of_work import Along, Service, ServiceActor, Tx, read_again
from data import audit, queries
from data.domain import (
    ACK_TIMEOUT,
    Category,
    Stage,
    Status,
    TimelineKind,
    parse_category,
    parse_severity,
)
from data.journal import add_timeline, changed, timeline_row
from data.models import ActionItem, Case, CaseChange, CaseNote, Page, Responder, TimelineEvent
from data.sealing import keyring_of, seal
from data.types import table_of

MAX_TITLE = 200
MAX_DETAILS = 20_000
MAX_NOTE = 20_000
MAX_DEDUP_KEY = 255
MAX_LINKS = 40
MAX_LINK = 2_000

_LONGEST_ACK_TIMEOUT = int(ACK_TIMEOUT.high.total_seconds())
MAX_REASON = 200
LONGEST_SNOOZE = timedelta(days=7)
"""A snooze longer than this is refused: a case put away for longer should be resolved."""
REOPEN_WINDOW = timedelta(hours=24)
"""A resolved case can be reopened this long after it was resolved; later, page anew."""


@dataclass(frozen=True)
class OpenResult:
    ref: str
    case_id: int
    created: bool
    paged: tuple[str, ...] = ()
    """Who its first step paged, in the transaction that opened it."""


def check_title(title: str) -> str:
    return one_line("title", title, MAX_TITLE, required=True)


def _check_links(links: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    kept = []
    for index, (href, text) in enumerate(links[:MAX_LINKS]):
        address = one_line(f"links[{index}].href", href, MAX_LINK, required=True)
        if not address.lower().startswith(("http://", "https://")):
            raise BadInput(f"links[{index}].href", f"expected an http(s) address, got {href!r}")
        kept.append((address, one_line(f"links[{index}].text", text, MAX_TITLE, required=False)))
    return tuple(kept)


def _close(tx: Tx, case: Case) -> None:
    """Resolve `case` as of `tx` (the timeline and audit are the caller's)."""
    case.status = Status.RESOLVED.value
    case.stage = Stage.CLOSED.value
    case.resolved_at = tx.now
    case.resolved_by_id = tx.actor.id
    case.next_escalation_at = None
    if case.acknowledged_at is None:
        case.acknowledged_at = tx.now
        case.acknowledged_by_id = tx.actor.id
    if case.first_response_at is None:
        case.first_response_at = tx.now
    if case.assignee_id is None:
        case.assignee_id = tx.actor.id


def _resolved_text(by: str, sender: str | None, note: str) -> str:
    return (
        f"Resolved by {by}"
        + (f" (resolved by its sender, {sender})" if sender else "")
        + (f": {note}" if note else "")
    )


def _ack_timeout_at(case: Case, now: datetime) -> datetime | None:
    """When an acknowledged case escalates again if not resolved (its policy's ack timeout)."""
    timeout = policy_of(case).ack_timeout_seconds
    if not timeout:
        return None
    # capped: a policy stored before timeouts were bounded cannot overflow
    return now + timedelta(seconds=min(timeout, _LONGEST_ACK_TIMEOUT))


@dataclass(frozen=True)
class NewCase:
    """A case a sender asks to open (`open_case`'s fields, for `open_cases`)."""

    title: str
    category: str
    severity: str | int
    details: str = ""
    policy: str | None = None
    dedup_key: str | None = None
    sensitive: bool = False
    source: str = "vigil"
    links: Sequence[tuple[str, str]] = ()


def _checked(wanted: NewCase) -> _Opening:
    """The fields of `wanted`, checked; `BadInput` names the first one that is wrong."""
    title = check_title(wanted.title)
    kept_links = _check_links(wanted.links)
    try:
        cat = parse_category(wanted.category)
    except ValueError as exc:
        raise BadInput("category", str(exc)) from None
    try:
        sev = parse_severity(wanted.severity)
    except ValueError as exc:
        raise BadInput("severity", str(exc)) from None
    return _Opening(
        title=title,
        category=cat,
        severity=sev,
        details=clean_text("details", wanted.details, MAX_DETAILS, required=False),
        policy_name=wanted.policy,
        dedup_key=one_line("dedup_key", wanted.dedup_key, MAX_DEDUP_KEY, required=False) or None,
        sensitive=wanted.sensitive or cat == Category.CSEA,
        source=wanted.source,
        links=kept_links,
    )


@dataclass(frozen=True)
class _Opening:
    """A new case's fields, checked: what `open_case` hands to its transaction (twice, when
    another console takes the same dedup key in between)."""

    title: str
    category: Category
    severity: int
    details: str
    policy_name: str | None
    dedup_key: str | None
    sensitive: bool
    source: str
    links: tuple[tuple[str, str], ...]


def _routed(tx: Tx, opening: _Opening) -> tuple[int | None, dict[str, Any]]:
    """The policy id and snapshot of a new case (`routed_snapshot`), or `BadInput`."""
    routed = routed_snapshot(tx.session, opening.category.value, opening.policy_name)
    if routed is None:
        raise BadInput("policy", f"no escalation policy named {opening.policy_name!r}")
    return routed


def _insert_openings(
    tx: Tx, openings: Sequence[tuple[_Opening, tuple[int | None, dict[str, Any]]]]
) -> list[OpenResult]:
    """Write new cases whole (each with its policy's id and snapshot), a statement a table:
    the case rows (their ids taken first, so details are sealed in the INSERT), their
    links, timelines, change feed and audit records; then page them in this change."""
    if not openings:
        return []
    session, now, by = tx.session, tx.now, tx.actor.handle
    keyring = keyring_of(session)
    cases: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    timeline: list[dict[str, Any]] = []
    records: list[tuple[str, str | None, dict[str, Any]]] = []
    results: list[OpenResult] = []
    numbers = queries.next_case_numbers(session, len(openings))
    for (opening, (policy_id, snapshot)), (number, case_id) in zip(openings, numbers, strict=True):
        ref = f"ESC-{number:04d}"
        details = opening.details
        if details:
            details = seal(keyring, details, table="case", column="details", row_id=case_id)
        cases.append(
            {
                "id": case_id,
                "ref": ref,
                "title": opening.title,
                "category": opening.category.value,
                "severity": opening.severity,
                "status": Status.TRIGGERED.value,
                "queue_rank": queries.QUEUE_RANKS[Status.TRIGGERED.value],
                "stage": Stage.TRIAGE.value,
                "sensitive": opening.sensitive,
                "details": details,
                "dedup_key": opening.dedup_key,
                "source": opening.source,
                "policy_id": policy_id,
                "policy_snapshot": snapshot,
                "created_at": now,
                "updated_at": now,
                "next_escalation_at": now,
                "version": 1,  # and fed to the consoles, below
            }
        )
        links += [
            {"case_id": case_id, "position": position, "href": href, "text": text}
            for position, (href, text) in enumerate(opening.links)
        ]
        opened = f"Opened by {by} from {opening.source}; policy {snapshot['name']}"
        timeline.append(timeline_row(case_id, now, TimelineKind.OPENED, opened, by))
        detail = {
            "category": opening.category.value,
            "severity": opening.severity,
            "sensitive": opening.sensitive,
            "policy": snapshot["name"],
            "source": opening.source,
        }
        records.append(("case.open", ref, detail))
        tx.did("case.open", case_id, ref)
        tx.to_escalate.append(case_id)  # its opener is told its reference, not its row
        results.append(OpenResult(ref, case_id, created=True))
    # Core statements on the session's connection: the ORM's bulk INSERT would look at
    # every value of every row again (a sixth of the time of a storm's alert). What the
    # change wrote through the ORM goes first (a heartbeat's claim and its audit record).
    session.flush()
    connection = session.connection()
    connection.execute(insert(table_of(Case)), cases)
    if links:
        from data.intake import CaseLink  # intake's tables: only for an alert's links

        connection.execute(insert(table_of(CaseLink)), links)
    _journal_in_bulk(tx, timeline, [row["id"] for row in cases], records)
    return results


def _journal_in_bulk(
    tx: Tx,
    timeline: list[dict[str, Any]],
    case_ids: Sequence[int],
    records: list[tuple[str, str | None, dict[str, Any]]],
) -> None:
    """What `Tx.finish` and `add_timeline` write for one case, for a change of many, a
    statement a table: their timeline lines, one change-feed row a case, their audit
    records (action, case ref, detail), chained in order."""
    connection = tx.session.connection()
    connection.execute(insert(table_of(TimelineEvent)), timeline)
    feed = [{"case_id": case_id, "at": tx.now} for case_id in case_ids]
    connection.execute(insert(table_of(CaseChange)), feed)
    audit.append_many(tx.session, at=tx.now, actor=tx.actor.handle, entries=records)


def _duplicate_text(dedup_key: str, source: str, events: int) -> str:
    said = "Duplicate event" if events == 1 else f"{events} duplicate events"
    return f"{said} for dedup key {dedup_key!r} from {source}"


def _join_open_cases(tx: Tx, joining: Sequence[_Opening]) -> dict[str, OpenResult]:
    """Events whose dedup key an open case holds, absorbed by it in bulk, by key: a group
    re-sent by Alertmanager repeats every alert still firing. Each case gets one timeline
    line for each source (how many events, when more than one), one audit record, and one
    change. A key no open case holds any more is left out, for the caller to open anew."""
    sources: dict[str, dict[str, int]] = {}
    for opening in joining:
        assert opening.dedup_key is not None
        by_source = sources.setdefault(opening.dedup_key, {})
        by_source[opening.source] = by_source.get(opening.source, 0) + 1
    session, now, by = tx.session, tx.now, tx.actor.handle
    session.flush()  # the openings of this change first: a key they took is joined too
    found = session.execute(
        select(col(Case.id), col(Case.ref), col(Case.dedup_key)).where(
            queries.holding_open_key(*sources)
        )
    ).all()
    if not found:
        return {}
    joined: dict[str, OpenResult] = {}
    timeline: list[dict[str, Any]] = []
    records: list[tuple[str, str | None, dict[str, Any]]] = []
    for case_id, ref, key in found:
        events = sum(sources[key].values())
        for source, count in sources[key].items():
            text = _duplicate_text(key, source, count)
            timeline.append(timeline_row(case_id, now, TimelineKind.DUPLICATE, text, by))
        detail: dict[str, Any] = {"dedup_key": key}
        if events > 1:
            detail["events"] = events
        records.append(("case.duplicate", ref, detail))
        tx.did("case.duplicate", case_id, ref)
        joined[key] = OpenResult(ref, case_id, created=False)
    ids = [case_id for case_id, _, _ in found]
    cases = table_of(Case)
    session.connection().execute(
        cases.update()
        .where(cases.c.id.in_(ids))
        .values(version=cases.c.version + 1, updated_at=now)
    )
    _journal_in_bulk(tx, timeline, ids, records)
    read_again(session, ids)
    return joined


class CaseService(Service):
    """Case actions on behalf of one person (`actor`), subject to that person's role."""

    # -- actions --------------------------------------------------------------

    def open_case(
        self,
        actor: str | ServiceActor,
        *,
        title: str,
        category: str,
        severity: str | int,
        details: str = "",
        policy: str | None = None,
        dedup_key: str | None = None,
        sensitive: bool = False,
        source: str = "vigil",
        links: Sequence[tuple[str, str]] = (),
        claim: Callable[[Tx], None] | None = None,
        along: Along | None = None,
    ) -> OpenResult:
        """Open a case, or absorb the event into the open case of the same dedup key.

        `links` are (address, text) pairs a sender attached, kept on the case in order. A
        new case pages its first step in the transaction that opens it (when the service
        has an escalation starter). `claim` runs first in that transaction: it may record
        what the opening stands for (a silent heartbeat marked down) or refuse with
        `NothingToDo`, and then nothing is written, so the case and its cause land together
        or not at all; `along` writes more in it, last. Inside a group of changes
        (`UnitOfWork.together`) the case is paged with the group's other openings, later in
        the same transaction, so the result's `paged` is empty (the group's change says who).
        """
        opening = _checked(
            NewCase(title, category, severity, details, policy, dedup_key, sensitive, source, links)
        )
        try:
            return self._open(actor, opening, claim, along)
        except IntegrityError:
            # Another console opened the same dedup key between our check and insert.
            if opening.dedup_key is None:
                raise
            return self._open(actor, opening, claim, along)

    def _open(
        self,
        actor: str | ServiceActor,
        opening: _Opening,
        claim: Callable[[Tx], None] | None,
        along: Along | None,
    ) -> OpenResult:
        with self.work(actor, along, opening=True) as tx:
            if claim is not None:
                claim(tx)
            key = opening.dedup_key
            existing = self._open_duplicate(tx, key, opening.source) if key else None
            result = existing if existing is not None else self._create(tx, opening)
        return replace(result, paged=tuple(tx.paged.get(result.case_id, ())))

    def _open_duplicate(self, tx: Tx, dedup_key: str, source: str) -> OpenResult | None:
        """An open case with the same dedup key absorbs the event instead of a new case."""
        existing = tx.session.exec(select(Case).where(queries.holding_open_key(dedup_key))).first()
        if existing is None:
            return None
        assert existing.id is not None
        add_timeline(
            tx.session,
            existing,
            tx.now,
            TimelineKind.DUPLICATE,
            _duplicate_text(dedup_key, source, 1),
            tx.actor.handle,
        )
        tx.finish(existing, "case.duplicate", {"dedup_key": dedup_key})
        return OpenResult(existing.ref, existing.id, created=False)

    def _create(self, tx: Tx, opening: _Opening) -> OpenResult:
        [result] = _insert_openings(tx, [(opening, _routed(tx, opening))])
        return result

    def open_cases(
        self, actor: str | ServiceActor, wanted: Sequence[NewCase]
    ) -> list[OpenResult | BadInput]:
        """Open many cases in one change, as `open_case` opens each (an event whose dedup key
        has an open case joins it), their rows written a table at a time: a group's storm of
        new alerts (`UnitOfWork.together`), where a case's ORM objects cost more than its
        rows. One result for each, in order: a `BadInput` refuses only its own."""
        results: list[OpenResult | BadInput | None] = [None] * len(wanted)
        checked: list[tuple[int, _Opening]] = []
        for index, one in enumerate(wanted):
            try:
                checked.append((index, _checked(one)))
            except BadInput as exc:
                results[index] = exc
        joining: list[tuple[int, _Opening]] = []
        with self.work(actor, opening=True) as tx:
            keys = [opening.dedup_key for _, opening in checked if opening.dedup_key]
            taken = set(queries.open_dedup_keys(tx.session, keys))
            new: list[tuple[int, _Opening, tuple[int | None, dict[str, Any]]]] = []
            for index, opening in checked:
                key = opening.dedup_key
                if key is not None and key in taken:  # an open case, or one opened above
                    joining.append((index, opening))
                    continue
                try:
                    new.append((index, opening, _routed(tx, opening)))
                except BadInput as exc:
                    results[index] = exc
                    continue
                if key is not None:
                    taken.add(key)
            opened = _insert_openings(tx, [(opening, routed) for _, opening, routed in new])
            joined = _join_open_cases(tx, [opening for _, opening in joining])
        for (index, _, _), result in zip(new, opened, strict=True):  # paged, unless grouped
            results[index] = replace(result, paged=tuple(tx.paged.get(result.case_id, ())))
        for index, opening in joining:
            assert opening.dedup_key is not None
            found = joined.get(opening.dedup_key)
            if found is not None:
                results[index] = found
                continue
            try:  # its case was resolved meanwhile (another process): a case of its own
                results[index] = self.open_case(actor, **vars(wanted[index]))
            except BadInput as exc:
                results[index] = exc
        answered = [result for result in results if result is not None]
        assert len(answered) == len(wanted)
        return answered

    def acknowledge(
        self,
        actor: str,
        ref: str,
        along: Along | None = None,
        *,
        via: str | None = None,
        check: Callable[[Tx, Case], None] | None = None,
    ) -> Case:
        """`via` says how, when not at a console or the command line ("link": an action
        link); `check` runs first on the locked case and may refuse; `along` writes more in
        the same transaction."""
        how = {"how": f"by {via}"} if via else {}
        by = f" by {via}" if via else ""
        with self.work(actor, along) as tx:
            case = tx.case(ref)
            if check is not None:
                check(tx, case)
            if case.status == Status.RESOLVED.value:
                raise NothingToDo(f"{case.ref} is already resolved")
            if case.status == Status.ACKNOWLEDGED.value:
                raise NothingToDo(f"{case.ref} is already acknowledged")
            pages = tx.session.exec(
                select(Page).where(
                    Page.case_id == case.id,
                    Page.cycle == case.escalation_cycle,
                    Page.step == case.escalation_step,
                    Page.round == case.escalation_round,
                )
            ).all()
            for page in pages:
                if page.responder_id == tx.actor.id and page.acknowledged_at is None:
                    page.acknowledged_at = tx.now
                    tx.session.add(page)
            if self._waiting_for_others(case, pages, tx):
                pending = len([p for p in pages if p.acknowledged_at is None])
                add_timeline(
                    tx.session,
                    case,
                    tx.now,
                    TimelineKind.ACK_PARTIAL,
                    f"Acknowledged by {tx.actor.handle}{by}; waiting for {pending} more "
                    "(this step needs every target)",
                    tx.actor.handle,
                )
                tx.finish(case, "case.ack_partial", {"waiting_for": pending, **how})
            else:
                case.status = Status.ACKNOWLEDGED.value
                case.acknowledged_at = tx.now
                case.acknowledged_by_id = tx.actor.id
                if case.assignee_id is None or case.assignee_id != tx.actor.id:
                    case.assignee_id = tx.actor.id
                case.next_escalation_at = _ack_timeout_at(case, tx.now)
                add_timeline(
                    tx.session,
                    case,
                    tx.now,
                    TimelineKind.ACKNOWLEDGED,
                    f"Acknowledged by {tx.actor.handle}{by}",
                    tx.actor.handle,
                )
                tx.finish(case, "case.ack", how)
            case_id = case.id
        assert case_id is not None
        return case

    def snooze(self, actor: str, ref: str, until: datetime, reason: str) -> Case:
        """Put a case away until `until`: it is acknowledged and out of the open queue till
        then, when the engine re-triggers it from step 1 and pages."""
        why = one_line("reason", reason, MAX_REASON, required=True)
        if until.tzinfo is None:
            raise BadInput("until", f"expected a time with an offset, got {until.isoformat()}")
        until = bounded_instant("until", until)
        with self.work(actor) as tx:
            if until <= tx.now:
                raise BadInput("until", f"expected a time after now, got {until.isoformat()}")
            if until - tx.now > LONGEST_SNOOZE:
                raise BadInput(
                    "until", f"a snooze lasts at most {LONGEST_SNOOZE.days} days; resolve instead"
                )
            case = tx.case(ref)
            if case.status == Status.RESOLVED.value:
                raise NothingToDo(f"{case.ref} is resolved")
            tx.refuse_unless_may_work_on(case, "snooze")
            if case.status == Status.TRIGGERED.value:
                case.status = Status.ACKNOWLEDGED.value
                case.acknowledged_at = tx.now
                case.acknowledged_by_id = tx.actor.id
            if case.assignee_id is None:
                case.assignee_id = tx.actor.id
            case.snoozed_until = until
            case.snooze_reason = why
            case.next_escalation_at = until
            add_timeline(
                tx.session,
                case,
                tx.now,
                TimelineKind.SNOOZED,
                f"Snoozed by {tx.actor.handle} until {until.strftime('%Y-%m-%d %H:%M UTC')}: "
                f"{why}; it pages again then",
                tx.actor.handle,
                {"until": until.isoformat()},
            )
            tx.finish(case, "case.snooze", {"until": until.isoformat(), "reason": why})
        return case

    def merge(self, actor: str, ref: str, into: str) -> Case:
        """Close `ref` as a duplicate of `into`: it is resolved, and both timelines say so.
        Its pages, notes and timeline stay on it, readable as before. Returns `into`."""
        with self.work(actor) as tx:
            if ref.strip().upper() == into.strip().upper():
                raise BadInput("into", f"a case cannot be merged into itself ({ref})")
            # Locked in one order whichever way round they are named: two consoles merging
            # the same pair opposite ways wait for each other instead of deadlocking.
            first, second = sorted((ref, into), key=lambda r: r.strip().upper())
            locked = {c.ref: c for c in (tx.case(first), tx.case(second))}
            duplicate, target = locked[ref.strip().upper()], locked[into.strip().upper()]
            if duplicate.status == Status.RESOLVED.value:
                raise NothingToDo(f"{duplicate.ref} is already resolved")
            if target.status == Status.RESOLVED.value:
                raise NotAllowed(f"{target.ref} is resolved; reopen it first, then merge into it")
            tx.refuse_unless_may_work_on(duplicate, "merge")
            _close(tx, duplicate)
            by = tx.actor.handle
            add_timeline(
                tx.session,
                duplicate,
                tx.now,
                TimelineKind.MERGED,
                f"Merged into {target.ref} by {by} as a duplicate; its pages, notes and "
                "timeline stay here",
                by,
                {"into": target.ref},
            )
            add_timeline(
                tx.session,
                target,
                tx.now,
                TimelineKind.MERGED_IN,
                f"{duplicate.ref} ({duplicate.title}) merged into this case by {by}",
                by,
                {"from": duplicate.ref},
            )
            tx.finish(duplicate, "case.merge", {"into": target.ref})
            tx.finish(target, "case.merge_in", {"from": duplicate.ref})
        return target

    def reopen(self, actor: str, ref: str, reason: str) -> Case:
        """Take back a case resolved within `REOPEN_WINDOW`: acknowledged by the person who
        reopens it, the resolution kept in its timeline and the audit chain."""
        why = one_line("reason", reason, MAX_REASON, required=True)
        with self.work(actor) as tx:
            case = tx.case(ref)
            if case.status != Status.RESOLVED.value or case.resolved_at is None:
                raise NothingToDo(f"{case.ref} is not resolved")
            resolved_for = tx.now - case.resolved_at
            if resolved_for > REOPEN_WINDOW:
                hours = int(REOPEN_WINDOW.total_seconds() // 3600)
                raise NotAllowed(
                    f"{case.ref} was resolved more than {hours} h ago; "
                    "open a new case instead (vigil page)"
                )
            tx.refuse_unless_may_work_on(case, "reopen")
            if case.dedup_key is not None:
                twin = tx.session.exec(
                    select(Case).where(queries.holding_open_key(case.dedup_key))
                ).first()
                if twin is not None:
                    raise NotAllowed(
                        f"{twin.ref} is open with the same dedup key; work on it instead"
                    )
            resolved_by = tx.session.get(Responder, case.resolved_by_id)
            case.status = Status.ACKNOWLEDGED.value
            case.stage = Stage.INVESTIGATING.value
            case.resolved_at = None
            case.resolved_by_id = None
            case.acknowledged_at = tx.now
            case.acknowledged_by_id = tx.actor.id
            case.exhausted = False
            if case.assignee_id is None:
                case.assignee_id = tx.actor.id
            case.next_escalation_at = _ack_timeout_at(case, tx.now)
            add_timeline(
                tx.session,
                case,
                tx.now,
                TimelineKind.REOPENED,
                f"Reopened by {tx.actor.handle} (resolved by "
                f"{resolved_by.handle if resolved_by else 'someone'} "
                f"{int(resolved_for.total_seconds() // 60)} min before): {why}",
                tx.actor.handle,
            )
            tx.finish(case, "case.reopen", {"reason": why})
        return case

    @staticmethod
    def _waiting_for_others(case: Case, pages: Any, tx: Tx) -> bool:
        """A multi-ack step stays triggered until every paged target acknowledges."""
        steps = policy_of(case).steps
        index = case.escalation_step - 1
        if not (0 <= index < len(steps)) or not steps[index].require_all:
            return False
        if tx.supervising:
            return False
        return any(p.acknowledged_at is None for p in pages)

    def resolve(
        self,
        actor: str | ServiceActor,
        ref: str,
        note: str | None = None,
        *,
        sender: str | None = None,
        along: Along | None = None,
    ) -> Case:
        """Resolve a case. With `sender` (an intake source such as `alertmanager`), the alert's
        own sender says it is over: that closes the case whoever it is assigned to, and the
        timeline names the sender."""
        note_text = clean_text("note", note or "", MAX_NOTE, required=False)
        with self.work(actor, along) as tx:
            case = tx.case(ref)
            if case.status == Status.RESOLVED.value:
                raise NothingToDo(f"{case.ref} is already resolved")
            if sender is None:
                tx.refuse_unless_may_work_on(case, "resolve")
            _close(tx, case)
            if note_text:
                self._add_note_row(tx, case, note_text)
            add_timeline(
                tx.session,
                case,
                tx.now,
                TimelineKind.RESOLVED,
                _resolved_text(tx.actor.handle, sender, note_text),
                tx.actor.handle,
            )
            detail: dict[str, Any] = {"with_note": bool(note_text)}
            if sender:
                detail["sender"] = sender
            tx.finish(case, "case.resolve", detail)
            case_id = case.id
        assert case_id is not None
        return case

    def resolve_from_senders(
        self, actor: str | ServiceActor, closing: Sequence[tuple[str, str]]
    ) -> list[str | None]:
        """Resolve, as their senders say, the open cases of these (dedup key, sender) in one
        change, a table at a time: an Alertmanager group's resolved alerts as an outage
        ends, which one change each held the intake's writer for seconds. Each is resolved
        as `resolve` with `sender` resolves it. The reference resolved for each, in order;
        None where no open case holds the key (already resolved, or by one before it)."""
        from app.services.casework.views import owed_reports

        refs: list[str | None] = []
        with self.work(actor) as tx:
            keys = list(dict.fromkeys(key for key, _ in closing))
            query = select(Case).where(queries.holding_open_key(*keys)).with_for_update()
            holding = {case.dedup_key: case for case in tx.session.exec(query).all()}
            resolved: list[Case] = []
            timeline: list[dict[str, Any]] = []
            records: list[tuple[str, str | None, dict[str, Any]]] = []
            by = tx.actor.handle
            for key, sender in closing:
                case = holding.pop(key, None)
                refs.append(None if case is None else case.ref)
                if case is None:
                    continue
                assert case.id is not None
                _close(tx, case)
                text = _resolved_text(by, sender, "")
                timeline.append(timeline_row(case.id, tx.now, TimelineKind.RESOLVED, text, by))
                records.append(("case.resolve", case.ref, {"with_note": False, "sender": sender}))
                resolved.append(case)
            if not resolved:
                return refs
            tx.session.flush()  # the legal clocks are read as resolving leaves them
            owing = owed_reports(tx.session, resolved, tx.now)
            for case in resolved:
                assert case.id is not None
                changed(case, tx.now, owes_report=case.id in owing)
                tx.did("case.resolve", case.id, case.ref)
            tx.session.flush()
            _journal_in_bulk(tx, timeline, [row["case_id"] for row in timeline], records)
        return refs

    def reassign(self, actor: str, ref: str, to_handle: str) -> Case:
        """Hand the case to someone else: page them now; the chain restarts if they don't ack."""
        with self.work(actor) as tx:
            case = tx.case(ref)
            if case.status == Status.RESOLVED.value:
                raise NothingToDo(f"{case.ref} is resolved; reopen it by paging again")
            target = tx.session.exec(
                select(Responder).where(Responder.handle == to_handle.strip())
            ).first()
            if target is None or not target.active:
                raise NotFound(f"no active responder {to_handle!r}")
            if not tx.supervising and case.assignee_id not in (None, tx.actor.id):
                raise NotAllowed(
                    "only supervisors and admins may reassign a case assigned to someone else"
                )
            if case.assignee_id == target.id and case.status == Status.ACKNOWLEDGED.value:
                raise NothingToDo(f"{case.ref} is already with {target.handle}")
            previous = tx.session.get(Responder, case.assignee_id) if case.assignee_id else None
            case.assignee_id = target.id
            case.status = Status.TRIGGERED.value
            case.acknowledged_at = None
            case.acknowledged_by_id = None
            case.exhausted = False
            case.escalation_cycle += 1
            case.escalation_step = 0
            case.escalation_round = 0
            steps = policy_of(case).steps
            wait = steps[0].delay_seconds if steps else 300
            case.next_escalation_at = tx.now + timedelta(seconds=wait)
            add_timeline(
                tx.session,
                case,
                tx.now,
                TimelineKind.REASSIGNED,
                f"Reassigned by {tx.actor.handle} from "
                f"{previous.handle if previous else 'nobody'} to {target.handle}; "
                f"the chain restarts in {wait // 60 or wait}"
                f"{'m' if wait >= 60 else 's'} unless acknowledged",
                tx.actor.handle,
            )
            tx.session.flush()
            from app.services.paging import page_responders  # the engine's own paging step

            page_responders(
                tx.session,
                case,
                [target],
                step=0,
                round_=0,
                due_at=tx.now,
                now=tx.now,
                reason="reassign",
            )
            tx.finish(
                case,
                "case.reassign",
                {"from": previous.handle if previous else None, "to": target.handle},
            )
            case_id = case.id
        assert case_id is not None
        return case

    def _add_note_row(self, tx: Tx, case: Case, body: str) -> None:
        assert case.id is not None
        assert tx.actor.id is not None
        tx.session.add(
            CaseNote(case_id=case.id, author_id=tx.actor.id, body=body, created_at=tx.now)
        )
        if case.first_response_at is None and case.status != Status.TRIGGERED.value:
            case.first_response_at = tx.now

    def add_note(self, actor: str, ref: str, text: str) -> Case:
        body = clean_text("text", text, MAX_NOTE, required=True)
        with self.work(actor) as tx:
            case = tx.case(ref)
            self._add_note_row(tx, case, body)
            add_timeline(
                tx.session,
                case,
                tx.now,
                TimelineKind.NOTE,
                f"Note by {tx.actor.handle}",
                tx.actor.handle,
            )
            tx.finish(case, "case.note", {"length": len(body)})
            case_id = case.id
        assert case_id is not None
        return case

    def set_stage(self, actor: str, ref: str, stage: str) -> Case:
        try:
            new_stage = Stage(stage.strip().lower())
        except ValueError:
            allowed = ", ".join(s.value for s in Stage)
            raise BadInput("stage", f"expected one of {allowed}, got {stage!r}") from None
        with self.work(actor) as tx:
            case = tx.case(ref)
            tx.refuse_unless_may_work_on(case, "change the stage of")
            if case.stage == new_stage.value:
                raise NothingToDo(f"{case.ref} is already at stage {new_stage.value}")
            old = case.stage
            case.stage = new_stage.value
            if case.first_response_at is None and case.status != Status.TRIGGERED.value:
                case.first_response_at = tx.now
            add_timeline(
                tx.session,
                case,
                tx.now,
                TimelineKind.STAGE,
                f"Stage {old} → {new_stage.value} by {tx.actor.handle}",
                tx.actor.handle,
            )
            tx.finish(case, "case.stage", {"from": old, "to": new_stage.value})
            case_id = case.id
        assert case_id is not None
        return case

    def reveal(self, actor: str, ref: str, reason: str = "") -> str:
        """Return the case's details; for a sensitive case the reveal is audited and
        committed first, then the details are read (so no rollback can take back the
        record of a read that happened)."""
        with self.work(actor) as tx:
            case = tx.case(ref)
            case_id = case.id
            if case.sensitive:
                add_timeline(
                    tx.session,
                    case,
                    tx.now,
                    TimelineKind.REVEAL,
                    f"Sensitive details revealed to {tx.actor.handle}",
                    tx.actor.handle,
                )
                audit.append(
                    tx.session,
                    at=tx.now,
                    actor=tx.actor.handle,
                    action="case.reveal",
                    case_ref=case.ref,
                    detail={"reason": reason} if reason else {},
                )
        with self.db.read() as session:
            revealed = session.get(Case, case_id)
            assert revealed is not None
            return queries.case_details(session, revealed)

    def escalate_now(self, actor: str, ref: str) -> Case:
        """Skip the wait: the next step is due now (an acknowledged case re-triggers)."""
        with self.work(actor) as tx:
            case = tx.case(ref)
            if case.status == Status.RESOLVED.value:
                raise NothingToDo(f"{case.ref} is resolved")
            was = case.status
            case.status = Status.TRIGGERED.value
            case.acknowledged_at = None
            case.acknowledged_by_id = None
            case.next_escalation_at = tx.now
            add_timeline(
                tx.session,
                case,
                tx.now,
                TimelineKind.ESCALATE,
                f"Escalated now by {tx.actor.handle}"
                + (" (was acknowledged)" if was != Status.TRIGGERED.value else ""),
                tx.actor.handle,
            )
            tx.finish(case, "case.escalate", {"was": was})
            tx.escalate(case)
        return case

    def add_action_item(
        self, actor: str, ref: str, title: str, owner: str = "", due_at: datetime | None = None
    ) -> Case:
        text = check_title(title)
        with self.work(actor) as tx:
            case = tx.case(ref)
            assert case.id is not None
            tx.session.add(
                ActionItem(
                    case_id=case.id, title=text, owner=owner, due_at=due_at, created_at=tx.now
                )
            )
            add_timeline(
                tx.session,
                case,
                tx.now,
                TimelineKind.ACTION_ITEM,
                f"Action item: {text}",
                tx.actor.handle,
            )
            tx.finish(case, "case.action_item", {"owner": owner})
        return case

    # -- by dedup key (intake) -----------------------------------------------

    def open_ref_for_key(self, dedup_key: str) -> str | None:
        with self.work.reading() as session:
            case = session.exec(
                select(Case)
                .where(queries.holding_open_key(dedup_key))
                .order_by(col(Case.id).desc())
            ).first()
            return case.ref if case else None

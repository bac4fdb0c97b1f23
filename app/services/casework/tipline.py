"""Filing a CSEA case's CyberTipline report through NCMEC's Reporting API, exactly once.

The filing row (`data.tipline.TiplineFiling`, unique per case) is the claim: whoever holds
its lease files, nobody else. Each thing NCMEC answers that must survive a crash is stored
in its own transaction the moment it arrives: the report id after submit, the finish after
finish. A filer that finds a report id left unfinished (a crash, a lost connection) retracts
that report first and files once more; NCMEC answering "already finished" counts as filed.

`fileViewedByEsp` is not a checkbox: it is true exactly for the files whose audited reveal
(`evidence.reveal`) is in the audit chain, and the chain is verified before it is believed.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.core.errors import BadInput, NotAllowed, NotFound, NothingToDo, Refused
from app.core.text import one_line
from app.rules.tipline import (
    Outcome,
    ReportDraft,
    Reporter,
    ReportFile,
    check_draft,
    file_details_xml,
    report_xml,
)
from app.services.casework.ncmec import (
    TEST_URL,
    ReportingClient,
    ReportRejected,
    Unreachable,
    is_production,
)
from app.services.casework.service import CaseworkService
from app.services.unit_of_work import Service, ServiceActor, Tx
from data import audit
from data.access import reads_secrets
from data.domain import INDUSTRY_CLASSIFICATIONS, Category, FilingStatus, TimelineKind
from data.models import AuditRecord, Case, Responder
from data.tipline import EvidenceFile, TiplineAccount, TiplineFiling

LEASE = timedelta(minutes=2)
RETRY_DELAYS = (5.0, 15.0, 30.0, 60.0, 60.0)  # seconds between tries while NCMEC is down
RUN_PAUSE_CAP = timedelta(minutes=15)
HANDED_OVER = "waiting for the engine's login to send it (people's logins never read the password)"

Filer = str | ServiceActor
"""Who files: a person's handle, or the engine retrying a filing that waits for NCMEC."""
REVEAL_ACTION = "evidence.reveal"
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class EvidenceView:
    id: int
    original_name: str
    sha256: str
    size: int
    industry_classification: str
    viewed_by_esp: bool


@dataclass(frozen=True, slots=True)
class FilingView:
    ref: str
    status: str
    report_id: str | None
    attempts: int
    retractions: int
    last_code: int | None
    last_error: str
    next_attempt_at: datetime | None
    finished_at: datetime | None
    holder: str


@dataclass(frozen=True, slots=True)
class AccountView:
    url: str
    username: str
    production: bool
    reporter: str


class NotReached(Refused):
    """NCMEC stayed unreachable for every try of this run; the filing waits, its clock runs."""


def hashes_of(path: Path) -> tuple[str, str, int]:
    """SHA-256, MD5 and size of a file, read in chunks."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), md5.hexdigest(), size


def revealed_hashes(session: Session, ref: str) -> set[str]:
    """The SHA-256 of each file of case `ref` whose reveal is in the audit chain."""
    details = session.exec(
        select(AuditRecord.detail).where(
            AuditRecord.case_ref == ref, AuditRecord.action == REVEAL_ACTION
        )
    ).all()
    return {d["sha256"] for d in details if "sha256" in d}


def evidence_of(session: Session, case: Case) -> list[tuple[EvidenceFile, bool]]:
    """The case's files in the order they were added, each with whether a person viewed
    it (its reveal is in the audit chain)."""
    viewed = revealed_hashes(session, case.ref)
    rows = session.exec(
        select(EvidenceFile).where(EvidenceFile.case_id == case.id).order_by(col(EvidenceFile.id))
    ).all()
    return [(row, row.sha256 in viewed) for row in rows]


def evidence_views(session: Session, case: Case) -> list[EvidenceView]:
    return [
        EvidenceView(
            id=r.id or 0,
            original_name=r.original_name,
            sha256=r.sha256,
            size=r.size,
            industry_classification=r.industry_classification,
            viewed_by_esp=viewed,
        )
        for r, viewed in evidence_of(session, case)
    ]


def filing_view(ref: str, row: TiplineFiling) -> FilingView:
    return FilingView(
        ref=ref,
        status=row.status,
        report_id=row.report_id,
        attempts=row.attempts,
        retractions=row.retractions,
        last_code=row.last_code,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        finished_at=row.finished_at,
        holder=row.holder.split("/", 1)[0],
    )


@dataclass(frozen=True)
class _Job:
    """What one run of the filer sends: read once after the claim, sent as read."""

    ref: str
    holder: str
    report: bytes
    files: tuple[tuple[EvidenceFile, ReportFile], ...]
    open_report: str | None


class TiplineService(Service):
    """The desk's NCMEC account, a case's evidence files and the filing of its report."""

    sleep: Callable[[float], None] = staticmethod(time.sleep)
    retry_delays: tuple[float, ...] = RETRY_DELAYS

    # -- the account -----------------------------------------------------------

    def setup_account(
        self,
        actor: str,
        *,
        username: str,
        password: str,
        reporter_first_name: str,
        reporter_last_name: str,
        reporter_email: str,
        url: str = TEST_URL,
        production: bool = False,
    ) -> AccountView:
        """Store the NCMEC-issued account (supervisors). The password is never audited."""
        fields = {
            "username": one_line("username", username, 200, required=True),
            "reporter_first_name": one_line(
                "reporter_first_name", reporter_first_name, 200, required=True
            ),
            "reporter_last_name": one_line(
                "reporter_last_name", reporter_last_name, 200, required=True
            ),
            "reporter_email": one_line("reporter_email", reporter_email, 320, required=True),
        }
        if not password:
            raise BadInput("password", "expected the password NCMEC issued, got nothing")
        address = one_line("url", url, 500, required=True).rstrip("/")
        if not address.startswith(("https://", "http://")):
            raise BadInput("url", f"expected an https:// address, got {url!r}")
        if is_production(address) and not production:
            raise BadInput(
                "url", "that is NCMEC's production service: add --production to allow it"
            )
        with self.work(actor) as tx:
            if not tx.supervising:
                raise NotAllowed("only a supervisor or admin may set the desk's NCMEC account")
            row = tx.session.get(TiplineAccount, 1) or TiplineAccount(
                id=1,
                url=address,
                username="",
                password="",
                reporter_first_name="",
                reporter_last_name="",
                reporter_email="",
                updated_at=tx.now,
                updated_by=tx.actor.handle,
            )
            for key, value in fields.items():
                setattr(row, key, value)
            row.url, row.password, row.production = (
                address,
                bound_password(address, password),
                production,
            )
            row.updated_at, row.updated_by = tx.now, tx.actor.handle
            tx.session.add(row)
            audit.append(
                tx.session,
                at=tx.now,
                actor=tx.actor.handle,
                action="tipline.account",
                detail={"url": address, "username": fields["username"], "production": production},
            )
            return _account_view(row)

    def account(self) -> AccountView:
        with self.db.read() as session:
            return _account_view(self._account(session))

    @staticmethod
    def _account(session: Session) -> TiplineAccount:
        row = session.get(TiplineAccount, 1)
        if row is None:
            raise NotFound(
                "the desk has no NCMEC account yet; a supervisor adds it with vigil tipline setup"
            )
        return row

    def client(self) -> ReportingClient:
        with self.db.read() as session:
            row = self._account(session)
            password = password_for(row.url, row.password)
            return ReportingClient(
                row.url, row.username, password, production_allowed=row.production
            )

    # -- evidence ---------------------------------------------------------------

    def add_evidence(
        self, actor: str, ref: str, path: str, *, classification: str, name: str = ""
    ) -> EvidenceView:
        """Register a file of the desk's evidence store with a CSEA case; its hashes are
        taken now and checked again before it is uploaded."""
        grade = (classification or "").strip().upper()
        if grade not in INDUSTRY_CLASSIFICATIONS:
            raise BadInput(
                "classification",
                f"expected one of {', '.join(INDUSTRY_CLASSIFICATIONS)}, got {classification!r}",
            )
        source = Path(path).expanduser()
        if not source.is_file():
            raise BadInput("path", f"no readable file at {path!r}")
        original = one_line("name", name or source.name, 255, required=True)
        sha256, md5, size = hashes_of(source)
        with self.work(actor) as tx:
            case = self._csea_case(tx, ref, "add evidence to")
            assert case.id is not None
            assert tx.actor.id is not None
            known = tx.session.exec(
                select(EvidenceFile).where(
                    EvidenceFile.case_id == case.id, EvidenceFile.sha256 == sha256
                )
            ).first()
            if known is not None:
                raise NothingToDo(f"{case.ref} already has this file (evidence {known.id})")
            row = EvidenceFile(
                case_id=case.id,
                path=str(source.resolve()),
                original_name=original,
                sha256=sha256,
                md5=md5,
                size=size,
                industry_classification=grade,
                added_at=tx.now,
                added_by_id=tx.actor.id,
            )
            tx.session.add(row)
            tx.session.flush()
            tx.journal(
                case,
                TimelineKind.EVIDENCE,
                f"Evidence file {row.id} added by {tx.actor.handle} ({grade})",
            )
            tx.finish(
                case, "evidence.add", {"file": row.id, "sha256": sha256, "classification": grade}
            )
            viewed = sha256 in revealed_hashes(tx.session, case.ref)
            return EvidenceView(row.id or 0, original, sha256, size, grade, viewed)

    def reveal_evidence(self, actor: str, ref: str, file_id: int) -> Path:
        """Where to view an evidence file; the view is audited first. That record is what
        makes the report say `fileViewedByEsp` for this file."""
        with self.work(actor) as tx:
            case = self._csea_case(tx, ref, "view evidence of")
            row = tx.session.get(EvidenceFile, file_id)
            if row is None or row.case_id != case.id:
                raise NotFound(f"{case.ref} has no evidence file {file_id}")
            tx.journal(
                case, TimelineKind.REVEAL, f"Evidence file {row.id} viewed by {tx.actor.handle}"
            )
            tx.finish(case, REVEAL_ACTION, {"file": row.id, "sha256": row.sha256})
            return Path(row.path)

    def evidence(self, actor: str, ref: str) -> list[EvidenceView]:
        self.require_actor(actor)
        with self.db.read() as session:
            return evidence_views(session, self._read_case(session, ref))

    # -- the report ---------------------------------------------------------------

    def draft(
        self,
        ref: str,
        *,
        incident_type: str,
        incident_at: datetime | None = None,
        screen_name: str = "",
        esp_identifier: str = "",
        reported_email: str = "",
        url: str = "",
    ) -> ReportDraft:
        """The incident's facts as the Reporting API takes them (BadInput names the first
        that is not); the incident's time is when the case opened unless given."""
        if incident_at is None:
            with self.db.read() as session:
                incident_at = self._read_case(session, ref).created_at
        return check_draft(
            incident_type=incident_type,
            incident_at=incident_at,
            screen_name=screen_name,
            esp_identifier=esp_identifier,
            reported_email=reported_email,
            url=url,
        )

    def review(self, actor: str, ref: str, draft: ReportDraft | None = None) -> str:
        """The report as it would be filed: the report document, then each file's details."""
        self.require_actor(actor)
        with self.db.read() as session:
            case = self._read_case(session, ref)
            if draft is None:
                filing = self._filing(session, case)
                if filing is None or not filing.draft:
                    raise BadInput("incident_type", "expected the incident's facts to review")
                draft = ReportDraft.from_json(filing.draft)
            report = self._report(session, case, draft)
            files = self._files(session, case)
        parts = [report.decode()]
        for number, (_row, file) in enumerate(files, 1):
            parts.append(file_details_xml("(report id)", f"(file {number})", file).decode())
        return "\n".join(parts)

    def retry_due(self, actor: Filer, *, patient: bool = True) -> list[FilingView | Refused]:
        """File again every filing that waits for NCMEC and whose next try is due: what the
        escalation engine runs (as itself, one try each: `patient=False`) and `vigil
        tipline retry` runs by hand while NCMEC is down. Each case's outcome is returned:
        its filing, or why it was refused."""
        if not isinstance(actor, ServiceActor):
            self.require_actor(actor)
        now = self.clock.now()
        with self.db.read() as session:
            refs = session.exec(
                select(Case.ref)
                .join(TiplineFiling, col(TiplineFiling.case_id) == col(Case.id))
                .where(
                    TiplineFiling.status == FilingStatus.WAITING.value,
                    col(TiplineFiling.next_attempt_at) <= now,
                )
                .order_by(col(TiplineFiling.next_attempt_at))
            ).all()
        outcomes: list[FilingView | Refused] = []
        for ref in refs:
            try:
                outcomes.append(self.file_report(actor, ref, patient=patient))
            except Refused as exc:
                outcomes.append(exc)
        return outcomes

    def filing(self, actor: str, ref: str) -> FilingView:
        self.require_actor(actor)
        with self.db.read() as session:
            case = self._read_case(session, ref)
            row = self._filing(session, case)
            if row is None:
                raise NotFound(f"{case.ref} has no CyberTipline filing")
            return filing_view(case.ref, row)

    def file_report(
        self, actor: Filer, ref: str, draft: ReportDraft | None = None, *, patient: bool = True
    ) -> FilingView:
        """File the case's report exactly once. `draft` is needed the first time; a retry
        files what the first run stored. A patient run tries again after each of
        `retry_delays` while NCMEC is down; an impatient one (the engine's) tries once and
        leaves the next try to a later run. A login that may not read the NCMEC password
        (a person's, on PostgreSQL) leaves the sending to the engine's login at once."""
        name = actor.name if isinstance(actor, ServiceActor) else actor
        holder = f"{name}/{uuid.uuid4().hex[:12]}"
        with self.db.read() as session:
            self._check_chain(session)  # read first: the walk must not hold the chain's lock
            sends = reads_secrets(session, "tipline_account")
        job = self._claim(actor, ref, holder, draft)
        if not sends:
            return self._hand_over(actor, job)
        delays = self.retry_delays if patient else ()
        for attempt, delay in enumerate((*delays, None), 1):
            try:
                with self.client() as client:
                    return self._run(actor, job, client)
            except Unreachable as exc:
                job = self._waiting(actor, job, str(exc), attempt, delay)
                if delay is None:
                    again = (
                        "run vigil tipline file again"
                        if patient
                        else "every running escalation engine tries again when its next try is due"
                    )
                    raise NotReached(
                        f"NCMEC could not be reached ({exc}); {job.ref} is not filed and its "
                        f"CyberTipline clock keeps running: {again}"
                    ) from None
                self.sleep(delay)
            except ReportRejected as exc:
                self._rejected(actor, job, exc)
                raise
            except BaseException:
                self._release(job)
                raise
        raise AssertionError("unreachable")  # the loop returns or raises

    # -- the filer's steps --------------------------------------------------------------

    def _claim(self, actor: Filer, ref: str, holder: str, draft: ReportDraft | None) -> _Job:
        try:
            with self.work(actor) as tx:
                case = self._csea_case(tx, ref, "file a report for")
                assert case.id is not None
                row = self._filing(tx.session, case, lock=True)
                if row is None:
                    if draft is None:
                        raise BadInput("incident_type", "expected the incident's facts")
                    row = TiplineFiling(
                        case_id=case.id,
                        status=FilingStatus.CLAIMED.value,
                        started_at=tx.now,
                        started_by=tx.actor.handle,
                    )
                elif row.status == FilingStatus.FINISHED:
                    raise NothingToDo(
                        f"{case.ref} was filed as CyberTipline report {row.report_id}"
                    )
                elif row.holder and row.lease_until is not None and row.lease_until > tx.now:
                    raise NotAllowed(
                        f"{case.ref}'s report is being filed by {row.holder.split('/')[0]} "
                        f"(claimed until {row.lease_until.isoformat()})"
                    )
                if draft is not None:
                    row.draft = draft.as_json()
                row.holder, row.lease_until = holder, tx.now + LEASE
                tx.session.add(row)
                tx.session.flush()
                report = self._report(tx.session, case, ReportDraft.from_json(row.draft))
                files = self._files(tx.session, case)
                tx.finish(case, "tipline.claim", {"holder": holder, "open_report": row.report_id})
                return _Job(case.ref, holder, report, tuple(files), row.report_id)
        except IntegrityError:
            raise NotAllowed(
                f"{ref.strip().upper()}'s report is being filed by someone else"
            ) from None

    def _run(self, actor: Filer, job: _Job, client: ReportingClient) -> FilingView:
        if job.open_report is not None:
            if client.retract(job.open_report) == Outcome.ALREADY_FINISHED:
                return self._finished(actor, job, job.open_report)
            job = self._step(actor, job, "retract", report_id=None)
        report_id = client.submit(job.report)
        job = self._step(actor, job, "submit", report_id=report_id)
        for row, file in job.files:
            try:
                content = Path(row.path).read_bytes()
            except OSError as exc:
                raise NotAllowed(
                    f"evidence file {row.id} of {job.ref} cannot be read at {row.path} "
                    f"({exc.strerror or exc}); nothing more was sent, the open report is "
                    "retracted on the next try"
                ) from None
            if hashlib.sha256(content).hexdigest() != row.sha256:
                raise NotAllowed(
                    f"evidence file {row.id} of {job.ref} changed since it was added "
                    "(its SHA-256 differs); add the original again"
                )
            file_id = client.upload(report_id, row.original_name, content)
            client.file_info(file_details_xml(report_id, file_id, file))
        client.finish(report_id)  # SUCCESS or ALREADY_FINISHED: filed either way
        return self._finished(actor, job, report_id)

    def _holding(self, tx: Tx, job: _Job) -> tuple[Case, TiplineFiling]:
        case = tx.case(job.ref)
        row = self._filing(tx.session, case, lock=True)
        if row is None or row.holder != job.holder:
            raise NotAllowed(f"{job.ref}'s filing was taken over by another filer")
        return case, row

    def _step(self, actor: Filer, job: _Job, what: str, *, report_id: str | None) -> _Job:
        """Store the report id NCMEC gave (or the one it retracted) at once, in its own
        transaction, so a crash after it never loses track of an open report."""
        with self.work(actor) as tx:
            case, row = self._holding(tx, job)
            before = row.report_id
            row.report_id = report_id
            row.status = FilingStatus.SUBMITTED.value if report_id else FilingStatus.CLAIMED.value
            if what == "retract":
                row.retractions += 1
            row.lease_until = tx.now + LEASE
            tx.session.add(row)
            tx.journal(
                case,
                TimelineKind.TIPLINE,
                f"CyberTipline report {report_id} opened by {tx.actor.handle}"
                if report_id
                else f"Unfinished CyberTipline report {before} retracted by {tx.actor.handle}",
            )
            tx.finish(case, f"tipline.{what}", {"report_id": report_id or before})
        return _Job(job.ref, job.holder, job.report, job.files, report_id)

    def _finished(self, actor: Filer, job: _Job, report_id: str) -> FilingView:
        """Filed: the report id in the audit chain, the CyberTipline clock stopped, and the
        REPORT Act's one-year hold started (it starts at the filed report)."""
        casework = CaseworkService(self.db, self.clock)
        with self.work(actor) as tx:
            case, row = self._holding(tx, job)
            row.status, row.report_id = FilingStatus.FINISHED.value, report_id
            row.finished_at, row.holder, row.lease_until = tx.now, "", None
            row.next_attempt_at, row.last_error, row.last_code = None, "", None
            tx.session.add(row)
            try:
                clock = casework.record_filed(
                    tx, case, None, tx.now, report_id, by_id=self._filer_id(tx, row)
                ).name
            except (NothingToDo, BadInput):
                clock = None  # the desk's settings have no open CyberTipline deadline
            tx.journal(
                case,
                TimelineKind.TIPLINE,
                f"CyberTipline report {report_id} filed with NCMEC by {tx.actor.handle}",
            )
            tx.finish(
                case,
                "tipline.finish",
                {
                    "report_id": report_id,
                    "clock": clock,
                    "files": [
                        {"sha256": file.sha256, "viewed_by_esp": file.viewed_by_esp}
                        for _row, file in job.files
                    ],
                    "retractions": row.retractions,
                },
            )
            return filing_view(case.ref, row)

    def _hand_over(self, actor: Filer, job: _Job) -> FilingView:
        """The report is reviewed and claimed, but this login may not read the password it
        is sent with: the engine's login sends it at its next look (within a minute)."""
        with self.work(actor) as tx:
            case, row = self._holding(tx, job)
            row.status = FilingStatus.WAITING.value
            row.holder, row.lease_until, row.next_attempt_at = "", None, tx.now
            row.last_code, row.last_error = None, HANDED_OVER
            tx.session.add(row)
            tx.journal(
                case,
                TimelineKind.TIPLINE,
                f"CyberTipline report handed to the engine to send, by {tx.actor.handle}",
            )
            tx.finish(case, "tipline.hand_over", {"holder": job.holder})
            return filing_view(case.ref, row)

    def _waiting(
        self, actor: Filer, job: _Job, error: str, attempt: int, delay: float | None
    ) -> _Job:
        with self.work(actor) as tx:
            case, row = self._holding(tx, job)
            row.status = FilingStatus.WAITING.value
            row.attempts += 1
            row.last_code, row.last_error = None, f"NCMEC unreachable: {error}"
            pause = timedelta(seconds=delay) if delay is not None else self._rest(row.attempts)
            row.next_attempt_at = tx.now + pause
            if delay is None:
                row.holder, row.lease_until = "", None
            else:
                row.lease_until = tx.now + LEASE + pause
            tx.session.add(row)
            tx.finish(case, "tipline.waiting", {"attempt": attempt, "error": error})
            return _Job(job.ref, job.holder, job.report, job.files, row.report_id)

    @staticmethod
    def _filer_id(tx: Tx, row: TiplineFiling) -> int | None:
        """Whose filing it is: the actor's, or, when the engine finishes a retry, the
        person's who started it."""
        if tx.actor.id is not None:
            return tx.actor.id
        return tx.session.exec(
            select(Responder.id).where(Responder.handle == row.started_by)
        ).first()

    def _rest(self, attempts: int) -> timedelta:
        """After the last try of a run, the next run is due after the longest pause; once
        the tries outnumber a patient run's, the pause doubles with each, up to
        `RUN_PAUSE_CAP` (NCMEC down for a day is tried about every quarter hour)."""
        longest = timedelta(seconds=max(self.retry_delays, default=0))
        beyond = max(0, attempts - len(self.retry_delays) - 1)
        return min(longest * 2 ** min(beyond, 16), max(longest, RUN_PAUSE_CAP))

    def _rejected(self, actor: Filer, job: _Job, exc: ReportRejected) -> None:
        """A validation failure is terminal: stored with NCMEC's own words for the specialist."""
        with self.work(actor) as tx:
            case, row = self._holding(tx, job)
            row.status = FilingStatus.REJECTED.value
            row.last_code, row.last_error = exc.response.code, exc.response.description
            row.holder, row.lease_until, row.next_attempt_at = "", None, None
            tx.session.add(row)
            tx.journal(
                case,
                TimelineKind.TIPLINE,
                f"NCMEC refused the CyberTipline report ({exc.response.code})",
            )
            tx.finish(
                case,
                "tipline.rejected",
                {"code": exc.response.code, "description": exc.response.description},
            )

    def _release(self, job: _Job) -> None:
        """Let go of the claim after an unexpected failure, so a retry need not wait."""
        with self.db.write() as session:
            row = session.exec(
                select(TiplineFiling).where(TiplineFiling.holder == job.holder).with_for_update()
            ).first()
            if row is not None:
                row.holder, row.lease_until = "", None
                session.add(row)

    # -- reading ---------------------------------------------------------------------

    @staticmethod
    def _csea_case(tx: Tx, ref: str, verb: str) -> Case:
        case = tx.case(ref)
        if case.category != Category.CSEA:
            raise NotAllowed(f"{case.ref} is a {case.category} case; only CSEA cases are reported")
        tx.refuse_unless_may_work_on(case, verb)
        return case

    @staticmethod
    def _read_case(session: Session, ref: str) -> Case:
        case = session.exec(select(Case).where(Case.ref == ref.strip().upper())).first()
        if case is None:
            raise NotFound(f"no case {ref!r}")
        if case.category != Category.CSEA:
            raise NotAllowed(f"{case.ref} is a {case.category} case; only CSEA cases are reported")
        return case

    @staticmethod
    def _filing(session: Session, case: Case, *, lock: bool = False) -> TiplineFiling | None:
        statement = select(TiplineFiling).where(TiplineFiling.case_id == case.id)
        return session.exec(statement.with_for_update() if lock else statement).first()

    @staticmethod
    def _check_chain(session: Session) -> None:
        report = audit.verify(session)
        if not report.ok:
            raise NotAllowed(
                f"the audit chain is broken ({report.reason}): which files were viewed cannot "
                "be shown, so the report is not filed; see vigil audit verify"
            )

    def _report(self, session: Session, case: Case, draft: ReportDraft) -> bytes:
        account = self._account(session)
        reporter = Reporter(
            account.reporter_first_name, account.reporter_last_name, account.reporter_email
        )
        return report_xml(draft, reporter, escalate=case.severity == 1)

    @staticmethod
    def _files(session: Session, case: Case) -> list[tuple[EvidenceFile, ReportFile]]:
        return [
            (
                row,
                ReportFile(
                    original_name=row.original_name,
                    md5=row.md5,
                    sha256=row.sha256,
                    industry_classification=row.industry_classification,
                    viewed_by_esp=viewed,
                ),
            )
            for row, viewed in evidence_of(session, case)
        ]


BOUND = "vigil-bound-v1:"
"""The stored password names the address it was given for (sealed with it), so an address
changed in the database by hand never receives it: the password cannot be selected, but
it would go wherever `url` points."""


def bound_password(url: str, password: str) -> str:
    return BOUND + json.dumps({"url": url, "password": password}, separators=(",", ":"))


def password_for(url: str, stored: str) -> str:
    """The password, only for the address it was stored for (one stored before the binding
    is given as it is, until a supervisor sets the account again)."""
    if not stored.startswith(BOUND):
        return stored
    bound = json.loads(stored.removeprefix(BOUND))
    if bound.get("url") != url:
        raise NotAllowed(
            f"the NCMEC account's address was changed outside vigil tipline setup (it is now "
            f"{url}); its password goes only where it was set up for: a supervisor sets the "
            "account again"
        )
    return str(bound["password"])


def _account_view(row: TiplineAccount) -> AccountView:
    reporter = f"{row.reporter_first_name} {row.reporter_last_name} <{row.reporter_email}>"
    return AccountView(row.url, row.username, row.production, reporter)

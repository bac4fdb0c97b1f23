"""Trust & Safety casework actions: request verification, disclosure decisions, legal
clocks, containment checklists, partners and action items.

Every change goes through the unit of work (`app.services.unit_of_work`): lock the audit
chain, load the actor, check the role, change, add a timeline event, feed the change log,
append the audit record, all or nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlmodel import col, select

from app.core.errors import BadInput, NotAllowed, NotFound, NothingToDo
from app.core.text import clean_text, one_line
from app.rules.casework import (
    BASIS_KEY,
    BASIS_KEY_RULE,
    VERIFICATION_STEPS,
    BasisSpec,
    CaseworkConfig,
    ClockSpec,
    check_verification_fields,
    effective_config,
    legal_clocks,
    parse_data_categories,
    settings_document,
    suggest,
    verification_missing,
    verification_required,
)
from app.services.cases import CaseService, check_title
from app.services.casework.directory import refuse_request_number
from app.services.casework.settings import digest, load_config, store_settings, stored_settings
from app.services.casework.views import casework_view, clock_facts, partner_view
from app.services.unit_of_work import Service, Tx
from data import audit
from data.casework import (
    CasePartner,
    ClockEvent,
    ContainmentRecord,
    Disclosure,
    Partner,
    VerificationRecord,
)
from data.domain import (
    INTERNAL_PARTNER_KINDS,
    ActionStatus,
    ClockEventKind,
    ClockKind,
    ClockState,
    DisclosureStatus,
    OwnerKind,
    PartnerKind,
    TimelineKind,
    VerificationStepName,
)
from data.journal import add_timeline
from data.models import ActionItem, Case, Responder
from widgets.views import (
    ActionView,
    CaseworkView,
    ClockView,
    ContainmentView,
    DisclosureView,
    PartnerView,
    VerificationView,
)

MAX_REASON = 2_000
MAX_REFERENCE = 200
MAX_ACCOUNTS = 1_000_000


# --- the service ------------------------------------------------------------


class CaseworkService(Service):
    """Casework actions on behalf of one person, subject to that person's role."""

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def _require_supervisor(tx: Tx, what: str) -> None:
        if not tx.supervising:
            raise NotAllowed(f"only a supervisor or admin may {what}")

    @staticmethod
    def _partner(tx: Tx, name: str, field_name: str) -> Partner:
        wanted = (name or "").strip().lower()
        partner = tx.session.exec(select(Partner).where(Partner.name == wanted)).first()
        if partner is None or not partner.active:
            known = tx.session.exec(select(Partner.name).where(col(Partner.active).is_(True)))
            raise BadInput(
                field_name,
                f"no partner {name!r} in the directory{suggest(wanted, known)} "
                "(see vigil partner list)",
            )
        return partner

    @staticmethod
    def _link(tx: Tx, case: Case, partner: Partner) -> bool:
        assert case.id is not None
        assert partner.id is not None
        exists = tx.session.exec(
            select(CasePartner).where(
                CasePartner.case_id == case.id, CasePartner.partner_id == partner.id
            )
        ).first()
        if exists is not None:
            return False
        tx.session.add(
            CasePartner(
                case_id=case.id, partner_id=partner.id, linked_at=tx.now, linked_by_id=tx.actor.id
            )
        )
        return True

    def _done(
        self, tx: Tx, case: Case, kind: TimelineKind, text: str, action: str, detail: dict[str, Any]
    ) -> int:
        """Timeline, change feed and audit record of one casework decision."""
        add_timeline(tx.session, case, tx.now, kind, text, tx.actor.handle)
        tx.finish(case, action, detail)
        assert case.id is not None
        return case.id

    def _view(self, case_id: int) -> CaseworkView:
        """After a change: tell the consoles, then read the case's casework back."""
        with self.db.read() as session:
            return casework_view(session, case_id, self.clock.now())

    # -- verification ------------------------------------------------------------

    def record_verification(
        self,
        actor: str,
        ref: str,
        step: str,
        facts: Mapping[str, str | None],
        *,
        directory_entry: int | None = None,
    ) -> VerificationView:
        """Record one checklist step; recording a step again replaces it (both are audited).
        The good-faith determination comes last: it rests on the other three. An identity
        check never rests on the number the request gave, unless the directory lists it;
        `directory_entry` names the agency directory entry a call-back used."""
        cleaned = check_verification_fields(step, facts)
        name = VerificationStepName(step.strip().lower())
        with self.work(actor) as tx:
            case = tx.case(ref)
            tx.refuse_unless_may_work_on(case, "verify a request on")
            assert case.id is not None
            assert tx.actor.id is not None
            if name == VerificationStepName.IDENTITY:
                cleaned.setdefault("caller", tx.actor.handle)
                refuse_request_number(tx.session, case.id, cleaned["via"])
            existing = {
                r.step: r
                for r in tx.session.exec(
                    select(VerificationRecord).where(VerificationRecord.case_id == case.id)
                ).all()
            }
            if name == VerificationStepName.GOOD_FAITH:
                before = [s for s in verification_missing(existing) if s != name.value]
                if before:
                    raise NotAllowed(
                        f"record {', '.join(before)} first: the good-faith determination "
                        "rests on them"
                    )
            record = existing.get(name.value)
            replaced = record is not None
            if record is None:
                record = VerificationRecord(
                    case_id=case.id,
                    step=name.value,
                    recorded_at=tx.now,
                    recorded_by_id=tx.actor.id,
                )
            record.facts = cleaned
            record.recorded_at, record.recorded_by_id = tx.now, tx.actor.id
            tx.session.add(record)
            label = VERIFICATION_STEPS[name].label
            case_id = self._done(
                tx,
                case,
                TimelineKind.VERIFICATION,
                f"Verification: {label} ({'corrected' if replaced else 'recorded'} "
                f"by {tx.actor.handle})",
                "verification.record",
                {"step": name.value, "replaced": replaced, "facts": digest(cleaned)}
                | ({"directory_entry": directory_entry} if directory_entry else {}),
            )
        return self._view(case_id).verification

    # -- disclosures -------------------------------------------------------------

    def request_disclosure(
        self,
        actor: str,
        ref: str,
        *,
        data: str | Sequence[str],
        to: str,
        basis: str,
        accounts: int = 1,
        override_reason: str = "",
    ) -> DisclosureView:
        """A specialist's request waits for a supervisor; a supervisor's is recorded as made.
        Verification must be complete first, unless a supervisor records why not."""
        categories = parse_data_categories(data)
        reason = clean_text("override_reason", override_reason, MAX_REASON, required=False)
        if not 1 <= accounts <= MAX_ACCOUNTS:
            raise BadInput("accounts", f"expected 1 to {MAX_ACCOUNTS}, got {accounts}")
        with self.work(actor) as tx:
            config = load_config(tx.session)
            key = (basis or "").strip().lower()
            spec = config.bases.get(key)
            if spec is None:
                raise BadInput(
                    "basis",
                    f"expected one of {', '.join(config.bases)}, got {basis!r}"
                    f"{suggest(key, config.bases)}",
                )
            case = tx.case(ref)
            tx.refuse_unless_may_work_on(case, "record a disclosure on")
            partner = self._partner(tx, to, "to")
            if PartnerKind(partner.kind) in INTERNAL_PARTNER_KINDS:
                raise BadInput(
                    "to", f"{partner.name} is a {partner.kind} team of our own, not a recipient"
                )
            assert case.id is not None
            assert tx.actor.id is not None
            assert partner.id is not None
            self._check_verified(tx, case, spec, reason)
            number = 1 + len(
                tx.session.exec(select(Disclosure.id).where(Disclosure.case_id == case.id)).all()
            )
            row = Disclosure(
                case_id=case.id,
                number=number,
                data=categories,
                accounts=accounts,
                partner_id=partner.id,
                agency=partner.agency,
                basis=spec.key,
                basis_label=spec.label,
                emergency=spec.emergency,
                requested_at=tx.now,
                requested_by_id=tx.actor.id,
                override_reason=reason or None,
            )
            two_people = needs_two_people(case, spec.emergency)
            if tx.supervising and not two_people:
                row.status = DisclosureStatus.DISCLOSED.value
                row.decided_at, row.decided_by_id = tx.now, tx.actor.id
            tx.session.add(row)
            self._link(tx, case, partner)
            made = row.status == DisclosureStatus.DISCLOSED
            case_id = self._done(
                tx,
                case,
                TimelineKind.DISCLOSURE,
                f"Disclosure {number} {'made' if made else 'requested'} by {tx.actor.handle}: "
                f"{', '.join(categories)} to {partner.name} under {spec.key}"
                + (" (verification overridden)" if reason else "")
                + (
                    " (sev1 emergency: a second person, a supervisor, approves)"
                    if two_people
                    else ""
                ),
                "disclosure.request",
                {
                    "number": number,
                    "status": row.status,
                    "data": categories,
                    "accounts": accounts,
                    "to": partner.name,
                    "basis": spec.key,
                    "override_reason": reason or None,
                },
            )
        return self._disclosure(case_id, number)

    @staticmethod
    def _check_verified(tx: Tx, case: Case, basis: BasisSpec, reason: str) -> None:
        if not verification_required(case.category, basis):
            if reason:
                raise BadInput("override_reason", "nothing to override: no verification needed")
            return
        recorded = tx.session.exec(
            select(VerificationRecord.step).where(VerificationRecord.case_id == case.id)
        ).all()
        missing = verification_missing(recorded)
        if not missing:
            if reason:
                raise BadInput("override_reason", "nothing to override: verification is complete")
            return
        if not tx.supervising:
            raise NotAllowed(
                f"verification of {case.ref} is incomplete (missing {', '.join(missing)}); "
                "only a supervisor may record a disclosure before it is complete"
            )
        if not reason:
            raise BadInput(
                "override_reason",
                f"verification is incomplete (missing {', '.join(missing)}): "
                "state why the disclosure cannot wait",
            )

    def _disclosure(self, case_id: int, number: int) -> DisclosureView:
        view = self._view(case_id)
        return next(d for d in view.disclosures if d.number == number)

    def _pending_disclosure(self, tx: Tx, case: Case, number: int) -> Disclosure:
        row = tx.session.exec(
            select(Disclosure)
            .where(Disclosure.case_id == case.id, Disclosure.number == number)
            .with_for_update()
        ).first()
        if row is None:
            raise NotFound(f"{case.ref} has no disclosure {number}")
        if row.status != DisclosureStatus.REQUESTED:
            raise NothingToDo(f"disclosure {number} of {case.ref} is already {row.status}")
        return row

    def approve_disclosure(self, actor: str, ref: str, number: int) -> DisclosureView:
        with self.work(actor) as tx:
            self._require_supervisor(tx, "approve a disclosure")
            case = tx.case(ref)
            row = self._pending_disclosure(tx, case, number)
            if needs_two_people(case, row.emergency) and row.requested_by_id == tx.actor.id:
                raise NotAllowed(
                    f"disclosure {number} of {case.ref} is a sev1 emergency disclosure: it needs "
                    "two people, and the same login cannot approve its own request; another "
                    "supervisor must"
                )
            row.status = DisclosureStatus.DISCLOSED.value
            row.decided_at, row.decided_by_id = tx.now, tx.actor.id
            tx.session.add(row)
            case_id = self._done(
                tx,
                case,
                TimelineKind.DISCLOSURE,
                f"Disclosure {number} approved and made by {tx.actor.handle}",
                "disclosure.approve",
                {"number": number},
            )
        return self._disclosure(case_id, number)

    def decline_disclosure(self, actor: str, ref: str, number: int, reason: str) -> DisclosureView:
        text = clean_text("reason", reason, MAX_REASON, required=True)
        with self.work(actor) as tx:
            self._require_supervisor(tx, "decline a disclosure")
            case = tx.case(ref)
            row = self._pending_disclosure(tx, case, number)
            row.status = DisclosureStatus.DECLINED.value
            row.decided_at, row.decided_by_id = tx.now, tx.actor.id
            row.decline_reason = text
            tx.session.add(row)
            case_id = self._done(
                tx,
                case,
                TimelineKind.DISCLOSURE,
                f"Disclosure {number} declined by {tx.actor.handle}",
                "disclosure.decline",
                {"number": number, "reason": text},
            )
        return self._disclosure(case_id, number)

    # -- legal clocks --------------------------------------------------------------

    @staticmethod
    def _clock_spec(config: CaseworkConfig, case: Case, name: str | None, fits: str) -> ClockSpec:
        specs = config.clocks_for(case.category)
        candidates = [s for s in specs if _fits(s, fits)]
        if name:
            wanted = name.strip().lower()
            for spec in specs:
                if spec.name == wanted:
                    if spec not in candidates:
                        raise BadInput("clock", f"{spec.name} is not {FITS_TEXT[fits]}")
                    return spec
            raise BadInput(
                "clock",
                f"expected one of {', '.join(s.name for s in candidates) or '(none)'} "
                f"for a {case.category} case, got {name!r}",
            )
        if not candidates:
            raise NothingToDo(
                f"{case.ref} ({case.category}) has no clock that is {FITS_TEXT[fits]}"
            )
        if len(candidates) > 1:
            raise BadInput(
                "clock", f"expected one of {', '.join(s.name for s in candidates)} (--clock)"
            )
        return candidates[0]

    def _clock_now(self, tx: Tx, case: Case, config: CaseworkConfig, name: str) -> ClockView:
        facts = clock_facts(tx.session, [case])
        assert case.id is not None
        return next(c for c in legal_clocks(facts[case.id], config, tx.now) if c.name == name)

    def _clock_event(
        self,
        tx: Tx,
        case: Case,
        clock: str,
        kind: ClockEventKind,
        at: datetime,
        reference: str | None = None,
        note: str = "",
        *,
        by_id: int | None = None,
    ) -> None:
        """`by_id`: whose fact it is, when not the actor's (the engine records the filing
        of a report a person started)."""
        assert case.id is not None
        recorded_by = by_id if by_id is not None else tx.actor.id
        assert recorded_by is not None
        tx.session.add(
            ClockEvent(
                case_id=case.id,
                clock=clock,
                kind=kind.value,
                at=at,
                recorded_at=tx.now,
                by_id=recorded_by,
                reference=reference,
                note=note,
            )
        )

    def _clock_result(self, case_id: int, name: str) -> ClockView:
        view = self._view(case_id)
        return next(c for c in view.clocks if c.name == name)

    def record_filed(
        self,
        tx: Tx,
        case: Case,
        clock: str | None,
        when: datetime,
        reference: str,
        *,
        by_id: int | None = None,
    ) -> ClockSpec:
        """Stop the deadline clock `clock` (the only one, if None) with the report `reference`
        filed at `when` (by `by_id`, else the actor); a hold that starts at its report
        starts then. The caller audits."""
        config = load_config(tx.session)
        spec = self._clock_spec(config, case, clock, "file")
        current = self._clock_now(tx, case, config, spec.name)
        if current.state == ClockState.DONE:
            raise NothingToDo(f"{spec.name} of {case.ref} is already {current.outcome}")
        self._clock_event(tx, case, spec.name, ClockEventKind.FILED, when, reference, by_id=by_id)
        return spec

    def file_report(
        self,
        actor: str,
        ref: str,
        *,
        report_id: str,
        clock: str | None = None,
        filed_at: datetime | None = None,
    ) -> ClockView:
        """Record the report a deadline clock asks for (a CyberTipline report): its id, when
        it was filed and by whom. A hold that starts at the report starts then."""
        reference = one_line("report_id", report_id, MAX_REFERENCE, required=True)
        with self.work(actor) as tx:
            case = tx.case(ref)
            tx.refuse_unless_may_work_on(case, "file a report for")
            when = (filed_at or tx.now).astimezone(UTC)
            if when > tx.now:
                raise BadInput("filed_at", "expected a time that has passed, not a future one")
            if when < case.created_at:
                raise BadInput(
                    "filed_at", f"expected a time after the case was opened ({case.created_at})"
                )
            spec = self.record_filed(tx, case, clock, when, reference)
            case_id = self._done(
                tx,
                case,
                TimelineKind.CLOCK,
                f"{spec.label}: filed as {reference} by {tx.actor.handle}",
                "clock.file",
                {"clock": spec.name, "report_id": reference, "filed_at": when.isoformat()},
            )
        return self._clock_result(case_id, spec.name)

    def extend_hold(
        self, actor: str, ref: str, *, clock: str | None = None, note: str = ""
    ) -> ClockView:
        """Extend a hold on a renewed request (2703(f): once, by 90 days), before it ends."""
        text = clean_text("note", note, MAX_REASON, required=False)
        with self.work(actor) as tx:
            case = tx.case(ref)
            tx.refuse_unless_may_work_on(case, "extend a hold on")
            config = load_config(tx.session)
            spec = self._clock_spec(config, case, clock, "extend")
            current = self._clock_now(tx, case, config, spec.name)
            if current.state == ClockState.PENDING:
                raise NothingToDo(f"{spec.name} of {case.ref} has not started yet")
            if current.state == ClockState.DONE:
                raise NotAllowed(
                    f"{spec.name} of {case.ref} already {current.outcome}; a renewed request "
                    "after that is a new preservation request"
                )
            if current.extensions_left <= 0:
                times = "once" if spec.max_extensions == 1 else f"{spec.max_extensions} times"
                raise NotAllowed(f"{spec.name} may be extended {times}, and already was")
            self._clock_event(tx, case, spec.name, ClockEventKind.EXTENDED, tx.now, note=text)
            case_id = self._done(
                tx,
                case,
                TimelineKind.CLOCK,
                f"{spec.label}: extended by {spec.extension} by {tx.actor.handle}",
                "clock.extend",
                {"clock": spec.name, "extension": str(spec.extension), "note": bool(text)},
            )
        return self._clock_result(case_id, spec.name)

    def waive_clock(self, actor: str, ref: str, *, clock: str, reason: str) -> ClockView:
        """A supervisor ends a clock early and says why (not reportable; hold released)."""
        text = clean_text("reason", reason, MAX_REASON, required=True)
        with self.work(actor) as tx:
            self._require_supervisor(tx, "waive a legal clock")
            case = tx.case(ref)
            config = load_config(tx.session)
            spec = self._clock_spec(config, case, clock, "any")
            current = self._clock_now(tx, case, config, spec.name)
            if current.state == ClockState.DONE:
                raise NothingToDo(f"{spec.name} of {case.ref} is already {current.outcome}")
            self._clock_event(tx, case, spec.name, ClockEventKind.WAIVED, tx.now, note=text)
            case_id = self._done(
                tx,
                case,
                TimelineKind.CLOCK,
                f"{spec.label}: waived by {tx.actor.handle}",
                "clock.waive",
                # The reason is sealed in its clock event; the chain proves it unchanged.
                {"clock": spec.name, "reason": digest(text)},
            )
        return self._clock_result(case_id, spec.name)

    # -- containment ---------------------------------------------------------------

    def mark_contained(
        self, actor: str, ref: str, step: str, *, reference: str = "", note: str = ""
    ) -> ContainmentView:
        ref_text = one_line("reference", reference, MAX_REFERENCE, required=False)
        note_text = clean_text("note", note, MAX_REASON, required=False)
        with self.work(actor) as tx:
            case = tx.case(ref)
            tx.refuse_unless_may_work_on(case, "record containment on")
            assert case.id is not None
            assert tx.actor.id is not None
            checklist = load_config(tx.session).containment_for(case.category)
            wanted = (step or "").strip().lower()
            spec = next((s for s in checklist if s.name == wanted), None)
            if spec is None:
                names = [s.name for s in checklist]
                raise BadInput(
                    "step",
                    f"expected one of {', '.join(names) or '(none)'} for a {case.category} "
                    f"case, got {step!r}{suggest(wanted, names)}",
                )
            if spec.needs_reference and not ref_text:
                raise BadInput(
                    "reference", f"{spec.name} needs a hash reference, such as sha256:..."
                )
            done = tx.session.exec(
                select(ContainmentRecord).where(
                    ContainmentRecord.case_id == case.id, ContainmentRecord.step == spec.name
                )
            ).first()
            if done is not None:
                raise NothingToDo(f"{spec.name} of {case.ref} is already done")
            tx.session.add(
                ContainmentRecord(
                    case_id=case.id,
                    step=spec.name,
                    done_at=tx.now,
                    done_by_id=tx.actor.id,
                    reference=ref_text or None,
                    note=note_text,
                )
            )
            case_id = self._done(
                tx,
                case,
                TimelineKind.CONTAINMENT,
                f"Containment: {spec.label} (by {tx.actor.handle})",
                "containment.done",
                {"step": spec.name, "reference": ref_text or None, "note": bool(note_text)},
            )
        view = self._view(case_id)
        return next(c for c in view.containment if c.step == spec.name)

    # -- partners ------------------------------------------------------------------

    def add_partner(
        self,
        actor: str,
        *,
        name: str,
        kind: str,
        agency: str,
        contact: str = "",
        verified_channel: str = "",
    ) -> PartnerView:
        """Directory entries are trusted by every identity check: supervisors keep them."""
        key = (name or "").strip().lower()
        if not BASIS_KEY.match(key):
            raise BadInput("name", f"expected {BASIS_KEY_RULE}, got {name!r}")
        try:
            partner_kind = PartnerKind((kind or "").strip().lower())
        except ValueError:
            allowed = ", ".join(k.value for k in PartnerKind)
            raise BadInput("kind", f"expected one of {allowed}, got {kind!r}") from None
        agency_text = one_line("agency", agency, 200, required=True)
        contact_text = one_line("contact", contact, 500, required=False)
        channel = one_line(
            "verified_channel",
            verified_channel,
            500,
            required=partner_kind == PartnerKind.LAW_ENFORCEMENT,
        )
        with self.work(actor) as tx:
            self._require_supervisor(tx, "add to the partner directory")
            if tx.session.exec(select(Partner).where(Partner.name == key)).first():
                raise NothingToDo(f"partner {key!r} is already in the directory")
            partner = Partner(
                name=key,
                kind=partner_kind.value,
                agency=agency_text,
                contact=contact_text,
                verified_channel=channel,
                created_at=tx.now,
                created_by_id=tx.actor.id,
            )
            tx.session.add(partner)
            audit.append(
                tx.session,
                at=tx.now,
                actor=tx.actor.handle,
                action="partner.add",
                detail={"name": key, "kind": partner_kind.value, "agency": agency_text},
            )
        return partner_view(partner)

    def link_partner(self, actor: str, ref: str, partner_name: str) -> PartnerView:
        with self.work(actor) as tx:
            case = tx.case(ref)
            tx.refuse_unless_may_work_on(case, "link a partner to")
            partner = self._partner(tx, partner_name, "partner")
            if not self._link(tx, case, partner):
                raise NothingToDo(f"{partner.name} is already linked to {case.ref}")
            self._done(
                tx,
                case,
                TimelineKind.PARTNER,
                f"Partner {partner.name} ({partner.agency}) linked by {tx.actor.handle}",
                "partner.link",
                {"partner": partner.name},
            )
        return partner_view(partner)

    # -- action items ----------------------------------------------------------------

    def add_action(
        self,
        actor: str,
        ref: str,
        title: str,
        *,
        owner: str | None = None,
        partner: str | None = None,
        due_at: datetime | None = None,
    ) -> ActionView:
        """An action item owned by a responder (`owner`) or a partner team (`partner`)."""
        text = check_title(title)
        if bool(owner) == bool(partner):
            raise BadInput(
                "owner", "expected one owner: a responder (owner) or a partner team (partner)"
            )
        with self.work(actor) as tx:
            case = tx.case(ref)
            tx.refuse_unless_may_work_on(case, "add action items to")
            assert case.id is not None
            if due_at is not None and due_at <= tx.now:
                raise BadInput("due", f"expected a time after now, got {due_at.isoformat()}")
            if owner:
                person = tx.session.exec(
                    select(Responder).where(Responder.handle == owner.strip())
                ).first()
                if person is None or not person.active:
                    raise BadInput("owner", f"no active responder {owner!r}")
                owner_name, kind = person.handle, OwnerKind.PERSON
            else:
                team = self._partner(tx, partner or "", "partner")
                self._link(tx, case, team)
                owner_name, kind = team.name, OwnerKind.PARTNER
            item = ActionItem(
                case_id=case.id,
                title=text,
                owner=owner_name,
                owner_kind=kind.value,
                due_at=due_at,
                created_at=tx.now,
            )
            tx.session.add(item)
            tx.session.flush()
            assert item.id is not None
            case_id = self._done(
                tx,
                case,
                TimelineKind.ACTION_ITEM,
                f"Action item {item.id} for {owner_name}: {text}",
                "action.add",
                {
                    "item": item.id,
                    "owner": owner_name,
                    "owner_kind": kind.value,
                    "due_at": due_at.isoformat() if due_at else None,
                },
            )
            item_id = item.id
        return self._action(case_id, item_id)

    def _action(self, case_id: int, item_id: int) -> ActionView:
        view = self._view(case_id)
        return next(a for a in view.actions if a.id == item_id)

    def close_action(
        self, actor: str, ref: str, item_id: int, *, status: str = ActionStatus.DONE
    ) -> ActionView:
        """Mark an item done (or cancelled): its owner, the case's assignee or a supervisor."""
        outcome = ActionStatus(status)
        if outcome == ActionStatus.OPEN:
            raise BadInput("status", "expected done or cancelled")
        with self.work(actor) as tx:
            case = tx.case(ref)
            item = tx.session.get(ActionItem, item_id)
            if item is None or item.case_id != case.id:
                raise NotFound(f"{case.ref} has no action item {item_id}")
            owns = item.owner_kind == OwnerKind.PERSON and item.owner == tx.actor.handle
            if not owns:
                tx.refuse_unless_may_work_on(case, "close action items of")
            if item.status != ActionStatus.OPEN:
                raise NothingToDo(f"action item {item_id} is already {item.status}")
            item.status = outcome.value
            item.completed_at, item.completed_by_id = tx.now, tx.actor.id
            tx.session.add(item)
            case_id = self._done(
                tx,
                case,
                TimelineKind.ACTION_ITEM,
                f"Action item {item_id} {outcome.value} by {tx.actor.handle}",
                f"action.{'done' if outcome == ActionStatus.DONE else 'cancel'}",
                {"item": item_id},
            )
        return self._action(case_id, item_id)

    # -- settings --------------------------------------------------------------------

    def apply_settings(self, actor: str, document: Mapping[str, Any]) -> CaseworkConfig:
        """Store the desk's casework tables from a team file (supervisors and admins)."""
        settings = settings_document(document)
        config = effective_config(settings)
        with self.work(actor) as tx:
            self._require_supervisor(tx, "change the casework settings")
            if stored_settings(tx.session) == settings:
                raise NothingToDo("the casework settings are already these")
            fingerprint = store_settings(tx.session, settings, tx.actor.handle, tx.now)
            audit.append(
                tx.session,
                at=tx.now,
                actor=tx.actor.handle,
                action="casework.settings",
                detail={"settings": fingerprint, "tables": sorted(settings)},
            )
        return config

    def casework(self, actor: str, ref: str, *, reveal: bool = False) -> CaseworkView:
        """The casework of a case for `actor`; revealing a sensitive case is audited."""
        self.require_actor(actor)
        with self.db.read() as session:
            case = session.exec(select(Case).where(Case.ref == ref.strip().upper())).first()
            if case is None:
                raise NotFound(f"no case {ref!r}")
            case_id, sensitive = case.id, case.sensitive
        assert case_id is not None
        if reveal and sensitive:
            CaseService(self.db, self.clock).reveal(actor, ref, reason="casework")
        with self.db.read() as session:
            return casework_view(session, case_id, self.clock.now(), revealed=reveal)


def needs_two_people(case: Case, emergency: bool) -> bool:
    """A sev1 emergency disclosure is made by two people: whoever requests it and a
    supervisor who is not the same login."""
    return emergency and case.severity == 1


FITS_TEXT = {
    "file": "a deadline that takes a filed report",
    "extend": "a hold that can be extended",
    "any": "a clock",
}


def _fits(spec: ClockSpec, use: str) -> bool:
    if use == "file":
        return spec.kind == ClockKind.DEADLINE
    if use == "extend":
        return spec.kind == ClockKind.HOLD and spec.max_extensions > 0
    return True

"""Emergency-request fraud defence as a workflow: the agency directory's verified channels
(supervisors keep them), each request's origin checked against them and flagged on the case,
and the identity check that calls back on a directory number, recording which entry it used.

Every change goes through the unit of work and lands in the audit chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select

from app.core.errors import BadInput, NotAllowed, NotFound, NothingToDo
from app.core.text import one_line
from app.rules.fraud import (
    EXPECTED_LAW,
    domain_of,
    normalise_domain,
    normalise_phone,
    origin_flags,
)
from app.services.casework.directory import listed
from app.services.casework.service import CaseworkService
from app.services.unit_of_work import Service, Tx
from data import audit
from data.agency import AgencyChannel, RequestOrigin
from data.casework import Partner
from data.domain import ChannelKind, PartnerKind, TimelineKind
from data.journal import add_timeline
from widgets.views import VerificationView


@dataclass(frozen=True, slots=True)
class ChannelView:
    id: int
    partner: str
    agency: str
    kind: str
    value: str
    source: str
    added_at: datetime


@dataclass(frozen=True, slots=True)
class OriginView:
    ref: str
    sender_email: str
    sender_phone: str
    cited_law: str
    flags: tuple[str, ...]


def channel_key(phone: str | None, domain: str | None) -> tuple[ChannelKind, str]:
    """Exactly one of a number or a domain, normalised as the directory stores it."""
    if bool(phone) == bool(domain):
        raise BadInput("phone", "expected one channel: a number (phone) or an e-mail domain")
    if phone:
        return ChannelKind.PHONE, normalise_phone("phone", phone)
    return ChannelKind.DOMAIN, normalise_domain("domain", domain or "")


class AgencyService(Service):
    """The agency directory's channels and the checks of a request's origin."""

    def _channel_view(self, row: AgencyChannel, partner: Partner) -> ChannelView:
        return ChannelView(
            row.id or 0, partner.name, partner.agency, row.kind, row.value, row.source, row.added_at
        )

    def add_channel(
        self,
        actor: str,
        partner_name: str,
        *,
        phone: str | None = None,
        domain: str | None = None,
        source: str,
    ) -> ChannelView:
        """A call-back number or e-mail domain of a law-enforcement partner, confirmed
        independently of any request (supervisors): every origin check trusts it."""
        kind, value = channel_key(phone, domain)
        where = one_line("source", source, 300, required=True)
        with self.work(actor) as tx:
            if not tx.supervising:
                raise NotAllowed("only a supervisor or admin may change the agency directory")
            assert tx.actor.id is not None
            partner = tx.session.exec(
                select(Partner).where(Partner.name == partner_name.strip().lower())
            ).first()
            if partner is None or not partner.active:
                raise BadInput("partner", f"no partner {partner_name!r} in the directory")
            if partner.kind != PartnerKind.LAW_ENFORCEMENT:
                raise BadInput("partner", f"{partner.name} is not a law-enforcement agency")
            row = tx.session.exec(
                select(AgencyChannel).where(
                    AgencyChannel.kind == kind.value, AgencyChannel.value == value
                )
            ).first()
            if row is not None and row.active:
                raise NothingToDo(f"{value} is already listed (entry {row.id})")
            if row is None:
                row = AgencyChannel(
                    partner_id=partner.id or 0,
                    kind=kind.value,
                    value=value,
                    source=where,
                    added_at=tx.now,
                    added_by_id=tx.actor.id,
                )
            row.partner_id, row.source, row.active = partner.id or 0, where, True
            row.added_at, row.added_by_id = tx.now, tx.actor.id
            tx.session.add(row)
            tx.session.flush()
            _record_channel(tx, "agency.channel.add", row, partner)
            return self._channel_view(row, partner)

    def remove_channel(
        self, actor: str, *, phone: str | None = None, domain: str | None = None
    ) -> ChannelView:
        kind, value = channel_key(phone, domain)
        with self.work(actor) as tx:
            if not tx.supervising:
                raise NotAllowed("only a supervisor or admin may change the agency directory")
            row = tx.session.exec(
                select(AgencyChannel).where(
                    AgencyChannel.kind == kind.value,
                    AgencyChannel.value == value,
                    col(AgencyChannel.active).is_(True),
                )
            ).first()
            if row is None:
                raise NotFound(f"{value} is not listed in the agency directory")
            row.active = False
            tx.session.add(row)
            partner = tx.session.get(Partner, row.partner_id)
            assert partner is not None
            _record_channel(tx, "agency.channel.remove", row, partner)
            return self._channel_view(row, partner)

    def channels(self) -> list[ChannelView]:
        with self.db.read() as session:
            rows = session.exec(
                select(AgencyChannel, Partner)
                .join(Partner, col(Partner.id) == col(AgencyChannel.partner_id))
                .where(col(AgencyChannel.active).is_(True))
                .order_by(col(Partner.name), col(AgencyChannel.kind), col(AgencyChannel.value))
            ).all()
            return [self._channel_view(row, partner) for row, partner in rows]

    # -- a request's origin ---------------------------------------------------------

    def record_origin(
        self,
        actor: str,
        ref: str,
        *,
        sender_email: str = "",
        sender_phone: str = "",
        cited_law: str = "",
    ) -> OriginView:
        """Record where a request came from; what does not match the directory, or a cited law
        that does not fit the request type, is flagged on the case."""
        domain = domain_of("sender_email", sender_email) if sender_email else ""
        phone = normalise_phone("sender_phone", sender_phone) if sender_phone else ""
        law = one_line("cited_law", cited_law, 300, required=False)
        if not (domain or phone):
            raise BadInput("sender_email", "expected the sender's e-mail address or number")
        with self.work(actor) as tx:
            case = tx.case(ref)
            if case.category not in EXPECTED_LAW:
                raise NotAllowed(
                    f"{case.ref} is a {case.category} case; request origins are checked on "
                    f"{', '.join(EXPECTED_LAW)} cases"
                )
            tx.refuse_unless_may_work_on(case, "record the origin of")
            assert case.id is not None
            assert tx.actor.id is not None
            flags = origin_flags(
                case.category,
                sender_domain=domain,
                sender_phone=phone,
                cited_law=law,
                listed_domains=listed(tx.session, ChannelKind.DOMAIN),
                listed_phones=listed(tx.session, ChannelKind.PHONE),
            )
            row = tx.session.exec(
                select(RequestOrigin).where(RequestOrigin.case_id == case.id)
            ).first() or RequestOrigin(
                case_id=case.id, recorded_at=tx.now, recorded_by_id=tx.actor.id
            )
            row.sender_email, row.sender_phone, row.cited_law = sender_email.strip(), phone, law
            row.flags = [str(f) for f in flags]
            row.recorded_at, row.recorded_by_id = tx.now, tx.actor.id
            tx.session.add(row)
            summary = ", ".join(f.code for f in flags) or "none"
            add_timeline(
                tx.session,
                case,
                tx.now,
                TimelineKind.FRAUD,
                f"Request origin recorded by {tx.actor.handle}; flags: {summary}",
                tx.actor.handle,
            )
            tx.finish(
                case,
                "request.origin",
                {"domain": domain, "phone": phone, "law": law, "flags": [f.code for f in flags]},
            )
            return OriginView(case.ref, row.sender_email, phone, law, tuple(row.flags))

    # -- the call-back -----------------------------------------------------------------

    def call_back(self, actor: str, ref: str, *, number: str, contacted: str) -> VerificationView:
        """The identity step, done by calling back a number of the agency directory (never
        one the request gave): the verification record names the directory entry used."""
        value = normalise_phone("number", number)
        with self.db.read() as session:
            found = session.exec(
                select(AgencyChannel, Partner)
                .join(Partner, col(Partner.id) == col(AgencyChannel.partner_id))
                .where(
                    AgencyChannel.kind == ChannelKind.PHONE.value,
                    AgencyChannel.value == value,
                    col(AgencyChannel.active).is_(True),
                )
            ).first()
        if found is None:
            raise NotAllowed(
                f"{value} is not a number of the agency directory; call back on a number "
                "from the directory, not one from the request (see vigil agency list)"
            )
        entry, partner = found
        facts = {
            "contacted": contacted,
            "via": value,
            "directory": f"agency directory entry {entry.id}: {partner.name} ({partner.agency}), "
            f"confirmed from {entry.source}",
        }
        return CaseworkService(self.db, self.clock).record_verification(
            actor, ref, "identity", facts, directory_entry=entry.id
        )


def _record_channel(tx: Tx, action: str, row: AgencyChannel, partner: Partner) -> None:
    """The audit record of a change to the agency directory: which entry, whose, what."""
    audit.append(
        tx.session,
        at=tx.now,
        actor=tx.actor.handle,
        action=action,
        detail={"entry": row.id, "partner": partner.name, "kind": row.kind, "value": row.value},
    )

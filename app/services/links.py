"""Action links: a page's signed, expiring, single-use "acknowledge" link, and its "open"
link, both served by `vigil serve`.

A link names one delivery (so one page, one person, one case) and when it expires, signed
with HMAC-SHA256 under a link key derived from the desk's sealing key (`data.keys`), so the
database holds no key to forge links with: a copied file or a dump cannot make one. While a
key rotation keeps the old key too, links signed under it still open until it is retired.
Following it acts as the paged person, through the unit of work, audited "by link":

- ``GET`` shows what the link would do and acts on nothing, so a chat app's preview of the
  link is harmless; only ``POST`` acknowledges;
- a link acts once (`UsedLink`), before it expires (`LinkSettings.ttl`, one hour by
  default), and only while the case is where the page left it: triggered, in the same
  cycle of escalation, not assigned to someone else.

The public address the links start with is `VIGIL_PUBLIC_URL` (for example
``https://vigil.example``); without it pages carry no links and say to open Vigil.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.core.errors import BadInput, NotAllowed, NothingToDo, Refused
from app.services.cases import CaseService
from app.services.unit_of_work import Tx
from data.db import Database
from data.domain import Category, Status, category_label, parse_duration, severity_name
from data.escalation import UsedLink
from data.keys import decode_key
from data.models import Case, Delivery, Page, Responder
from data.sealing import keyring_of

Purpose = Literal["ack", "open"]
LINK_TTL_RANGE = (timedelta(minutes=1), timedelta(days=7))


@dataclass(frozen=True)
class LinkSettings:
    base_url: str | None = None
    """Where `vigil serve` is reached from outside; None: pages carry no links."""
    ttl: timedelta = timedelta(hours=1)
    """How long a link works after its page is sent."""

    @classmethod
    def from_env(cls) -> LinkSettings:
        """`VIGIL_PUBLIC_URL` and `VIGIL_LINK_TTL` (a duration such as ``30m``)."""
        base = os.environ.get("VIGIL_PUBLIC_URL", "").strip().rstrip("/") or None
        if base is not None and not base.startswith(("https://", "http://")):
            raise BadInput(
                "VIGIL_PUBLIC_URL",
                f"expected where vigil serve is reached, such as https://vigil.example, "
                f"got {base!r}",
            )
        ttl_text = os.environ.get("VIGIL_LINK_TTL", "").strip()
        if not ttl_text:
            return cls(base)
        try:
            ttl = parse_duration(ttl_text)
        except ValueError as exc:
            raise BadInput("VIGIL_LINK_TTL", str(exc)) from None
        low, high = LINK_TTL_RANGE
        if not low <= ttl <= high:
            raise BadInput("VIGIL_LINK_TTL", f"expected between 1m and 7d, got {ttl_text!r}")
        return cls(base, ttl)


LINK_KEY_CONTEXT = b"vigil action links v1"
LINK_KEY_ENV = "VIGIL_LINK_KEY"
"""A link key of its own (made as `VIGIL_SECRET_KEY` is), given only to the engine and
`vigil serve`: on a PostgreSQL desk with roles people hold the sealing key (their consoles
seal), and a link key derived from it would let one of them sign another's acknowledgement."""


def _link_key(sealing_key: bytes) -> bytes:
    return hmac.new(sealing_key, LINK_KEY_CONTEXT, hashlib.sha256).digest()


def _own_link_key() -> bytes | None:
    given = os.environ.get(LINK_KEY_ENV, "")
    return decode_key(given, LINK_KEY_ENV) if given.strip() else None


def signing_link_key(session: Session) -> bytes:
    """The key new links are signed with: `VIGIL_LINK_KEY`, else one derived from the key
    that seals (made on first use)."""
    own = _own_link_key()
    return own if own is not None else _link_key(keyring_of(session).sealing_key()[1])


def link_keys(session: Session) -> list[bytes]:
    """Every key a link may be signed with: `VIGIL_LINK_KEY` alone when it is set, else one
    per key of the session's keyring."""
    own = _own_link_key()
    if own is not None:
        return [own]
    known = keyring_of(session).keys()
    return [_link_key(key) for key in known]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _signature(key: bytes, purpose: Purpose, delivery_id: int, expires: int) -> str:
    message = f"{purpose}.{delivery_id}.{expires}".encode()
    return _b64(hmac.new(key, message, hashlib.sha256).digest())


def mint(key: bytes, purpose: Purpose, delivery_id: int, expires_at: datetime) -> str:
    """The token of a link: ``<delivery>.<expiry, Unix seconds>.<signature>``."""
    expires = int(expires_at.timestamp())
    return f"{delivery_id}.{expires}.{_signature(key, purpose, delivery_id, expires)}"


@dataclass(frozen=True)
class PageLinks:
    acknowledge: str
    open: str


def links_for(
    session: Session, settings: LinkSettings, delivery_id: int, sent_at: datetime
) -> PageLinks | None:
    if settings.base_url is None:
        return None
    key = signing_link_key(session)
    expires = sent_at + settings.ttl
    return PageLinks(
        f"{settings.base_url}/ack/{mint(key, 'ack', delivery_id, expires)}",
        f"{settings.base_url}/open/{mint(key, 'open', delivery_id, expires)}",
    )


# --- following a link ------------------------------------------------------------

LinkState = Literal["ready", "done", "invalid", "expired", "used", "moved_on"]


@dataclass(frozen=True)
class LinkView:
    """What a link page shows: never a case's details, nor a sensitive case's title."""

    state: LinkState
    message: str
    ref: str = ""
    severity: str = ""
    category: str = ""
    title: str | None = None
    status: str = ""
    handle: str = ""

    @property
    def can_act(self) -> bool:
        return self.state == "ready"


def _parse(token: str) -> tuple[int, int, str] | None:
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1]), parts[2]


@dataclass(frozen=True)
class _Found:
    delivery_id: int
    signature: str
    case: Case
    page: Page
    responder: Responder


class LinkRefused(Refused):
    def __init__(self, view: LinkView) -> None:
        super().__init__(view.message)
        self.view = view


class LinkService:
    """Looks at and follows action links."""

    def __init__(self, cases: CaseService) -> None:
        self.cases = cases
        self.db: Database = cases.db

    def _find(self, session: Session, purpose: Purpose, token: str) -> _Found | LinkView:
        parsed = _parse(token)
        bad = LinkView("invalid", "This link is not valid: it may have been cut short.")
        if parsed is None:
            return bad
        delivery_id, expires, signature = parsed
        signed = (
            hmac.compare_digest(_signature(key, purpose, delivery_id, expires), signature)
            for key in link_keys(session)
        )
        if not any(signed):
            return bad
        row = session.exec(
            select(Delivery, Page, Case, Responder)
            .join(Page, col(Page.id) == col(Delivery.page_id))
            .join(Case, col(Case.id) == col(Page.case_id))
            .join(Responder, col(Responder.id) == col(Page.responder_id))
            .where(col(Delivery.id) == delivery_id)
        ).first()
        if row is None:
            return LinkView("invalid", "This link's page no longer exists.")
        _, page, case, responder = row
        found = _Found(delivery_id, signature, case, page, responder)
        view = self._view(found, "ready", "")
        now = self.cases.clock.now()
        if now >= datetime.fromtimestamp(expires, UTC):
            return _with(view, "expired", "This link has expired: acknowledge in Vigil.")
        return found

    def _view(self, found: _Found, state: LinkState, message: str) -> LinkView:
        case = found.case
        sensitive = case.sensitive or case.category == Category.CSEA
        return LinkView(
            state,
            message,
            ref=case.ref,
            severity=severity_name(case.severity),
            category=category_label(case.category),
            title=None if sensitive else case.title,
            status=case.status,
            handle=found.responder.handle,
        )

    def _moved_on(self, session: Session, found: _Found) -> str | None:
        case, page = found.case, found.page
        if case.status == Status.RESOLVED.value:
            return f"{case.ref} is already resolved: nothing to acknowledge."
        if case.status == Status.ACKNOWLEDGED.value:
            who = (
                session.get(Responder, case.acknowledged_by_id) if case.acknowledged_by_id else None
            )
            by = f" by {who.handle}" if who else ""
            return f"{case.ref} was already acknowledged{by}: nothing to do."
        if page.cycle != case.escalation_cycle or case.assignee_id not in (
            None,
            found.responder.id,
        ):
            return f"{case.ref} has been reassigned since this page: this link no longer acts."
        return None

    def look(self, token: str) -> LinkView:
        """What the acknowledge link would do now (GET): acts on nothing."""
        with self.db.read() as session:
            found = self._find(session, "ack", token)
            if isinstance(found, LinkView):
                return found
            used = session.get(UsedLink, found.signature)
            if used is not None:
                return self._view(found, "used", "This link was already used.")
            moved = self._moved_on(session, found)
            if moved:
                return self._view(found, "moved_on", moved)
            return self._view(
                found, "ready", f"Acknowledge {found.case.ref} as {found.responder.handle}?"
            )

    def open(self, token: str) -> LinkView:
        """The case as the page's reader may see it (the open link): never its details."""
        with self.db.read() as session:
            found = self._find(session, "open", token)
            if isinstance(found, LinkView):
                return found
            return self._view(found, "done", f"{found.case.ref} is {found.case.status}.")

    def acknowledge(self, token: str) -> LinkView:
        """Follow the acknowledge link (POST): the paged person acknowledges the case, once."""
        with self.db.read() as session:
            found = self._find(session, "ack", token)
        if isinstance(found, LinkView):
            raise LinkRefused(found)
        refusal: list[LinkView] = []

        def check(tx: Tx, case: Case) -> None:
            fresh = _Found(found.delivery_id, found.signature, case, found.page, tx.actor)
            if tx.session.get(UsedLink, found.signature) is not None:
                refusal.append(self._view(fresh, "used", "This link was already used."))
            elif (moved := self._moved_on(tx.session, fresh)) is not None:
                refusal.append(self._view(fresh, "moved_on", moved))
            if refusal:
                raise LinkRefused(refusal[0])
            tx.session.add(
                UsedLink(signature=found.signature, delivery_id=found.delivery_id, used_at=tx.now)
            )

        try:
            case = self.cases.acknowledge(
                found.responder.handle, found.case.ref, via="link", check=check
            )
        except IntegrityError:  # the same link, followed twice at once
            raise LinkRefused(self._view(found, "used", "This link was already used.")) from None
        except NothingToDo as exc:
            raise LinkRefused(self._view(found, "moved_on", str(exc))) from None
        except NotAllowed:  # the paged person is no longer on the team
            who = found.responder.handle
            message = f"{who} is no longer an active responder: this link no longer acts."
            raise LinkRefused(self._view(found, "moved_on", message)) from None
        done = _Found(found.delivery_id, found.signature, case, found.page, found.responder)
        return self._view(
            done, "done", f"{case.ref} acknowledged by {found.responder.handle}. Thank you."
        )


def _with(view: LinkView, state: LinkState, message: str) -> LinkView:
    return LinkView(
        state,
        message,
        view.ref,
        view.severity,
        view.category,
        view.title,
        view.status,
        view.handle,
    )

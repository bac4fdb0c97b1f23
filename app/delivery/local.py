"""The channels a person's own console carries out: `console` (shown on screen) and
`desktop` (a desktop notification through plyer).

The engine records one `Delivery` row per channel of a page; the console of the paged
person claims its rows, shows the page, and records what happened:

- console rows become ``delivered`` (detail ``shown``) once the page is on screen;
- desktop rows become ``sent`` when plyer accepted the notification, never
  ``delivered``: plyer ignores notify-send's exit status, so nothing confirms it was
  seen; ``unavailable`` when the machine has no notification backend (no session bus,
  no backend plyer knows), and ``failed`` when the backend raised.

A desktop row is leased while its notification is attempted (as the webhook outbox
does), so a second console of the same person never shows it twice, and a console that
dies mid-attempt leaves it to be tried again once the lease is over.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from sqlmodel import col, select

from app.core.clock import Clock
from data.db import Database
from data.domain import ContactKind, Status
from data.escalation import DeliveryAttempt
from data.models import Case, Delivery, Page

CONSOLE = ContactKind.CONSOLE.value
DESKTOP = ContactKind.DESKTOP.value
SHOWN = "shown"
SENT = "sent"
UNAVAILABLE = "unavailable"
FAILED = "failed"
DESKTOP_LEASE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class PageAlert:
    """A page for the person at this console, just claimed for showing."""

    page_id: int
    case_id: int
    ref: str
    title: str
    severity: int
    sensitive: bool
    desktop_delivery_ids: tuple[int, ...] = ()
    reason: str = "escalation"

    @property
    def summary(self) -> str:
        """One line for a toast or a desktop notification; never a sensitive title."""
        if self.reason == "delayed":
            return f"Escalation was delayed: caught up now ({self.ref}'s timeline says which)"
        what = "sensitive case (open Vigil to view)" if self.sensitive else self.title
        late = " (late: escalation was delayed)" if self.reason == "catch-up" else ""
        return f"{self.ref} sev{self.severity}: {what}{late}"


@dataclass(frozen=True, slots=True)
class DesktopOutcome:
    """What the desktop notifier did: `status` is ``sent``, ``unavailable`` or ``failed``."""

    status: str
    detail: str

    @property
    def sent(self) -> bool:
        return self.status == SENT


def claim_my_pages(
    db: Database,
    clock: Clock,
    responder_id: int,
    case_ids: Collection[int] | None = None,
) -> list[PageAlert]:
    """Claim the pending console and desktop rows of `responder_id`'s open pages.

    Only pages still unacknowledged on a triggered case ring; `case_ids` narrows the
    search to the cases the change feed just reported (None: every case, at start-up).
    Console rows are marked shown here; desktop rows are leased for `record_desktop`.
    """
    if case_ids is not None and not case_ids:
        return []
    now = clock.now()
    conditions = [
        col(Page.responder_id) == responder_id,
        col(Page.acknowledged_at).is_(None),
        col(Case.status) == Status.TRIGGERED.value,
        col(Delivery.channel).in_([CONSOLE, DESKTOP]),
        col(Delivery.status) == "pending",
        (col(Delivery.next_attempt_at).is_(None)) | (col(Delivery.next_attempt_at) <= now),
    ]
    if case_ids is not None:
        conditions.append(col(Page.case_id).in_(sorted(case_ids)))
    with db.read() as session:
        # Most polls find nothing: look first, and take the writer lock only to claim.
        waiting = session.exec(
            select(Delivery.id)
            .join(Page, col(Page.id) == col(Delivery.page_id))
            .join(Case, col(Case.id) == col(Page.case_id))
            .where(*conditions)
            .limit(1)
        ).first()
    if waiting is None:
        return []
    statement = (
        select(Delivery, Page, Case)
        .join(Page, col(Page.id) == col(Delivery.page_id))
        .join(Case, col(Case.id) == col(Page.case_id))
        .where(*conditions)
        .order_by(col(Page.sent_at), col(Page.id), col(Delivery.id))
    )
    alerts: dict[int, PageAlert] = {}
    desktop: dict[int, list[int]] = {}
    with db.write() as session:
        if db.is_postgres:
            statement = statement.with_for_update(skip_locked=True, of=Delivery)
        for delivery, page, case in session.exec(statement).all():
            assert delivery.id is not None
            assert page.id is not None
            assert case.id is not None
            if page.id not in alerts:
                alerts[page.id] = PageAlert(
                    page_id=page.id,
                    case_id=case.id,
                    ref=case.ref,
                    title=case.title,
                    severity=case.severity,
                    sensitive=case.sensitive,
                    reason=page.reason,
                )
            if delivery.channel == CONSOLE:
                delivery.status = "delivered"
                delivery.delivered_at = now
                delivery.last_attempt_at = now
                delivery.next_attempt_at = None
                delivery.attempts += 1
                session.add(DeliveryAttempt(delivery_id=delivery.id, at=now, ok=True, detail=SHOWN))
            else:
                delivery.next_attempt_at = now + DESKTOP_LEASE
                desktop.setdefault(page.id, []).append(delivery.id)
            session.add(delivery)
    return [
        replace(alert, desktop_delivery_ids=tuple(desktop.get(page_id, ())))
        for page_id, alert in alerts.items()
    ]


def record_desktop(
    db: Database, clock: Clock, delivery_ids: Sequence[int], outcome: DesktopOutcome
) -> None:
    """Write what the desktop notifier did for these rows (its status, and an attempt)."""
    if not delivery_ids:
        return
    now = clock.now()
    with db.write() as session:
        rows = session.exec(select(Delivery).where(col(Delivery.id).in_(list(delivery_ids)))).all()
        for delivery in rows:
            if delivery.status != "pending":
                continue
            assert delivery.id is not None
            delivery.status = outcome.status
            delivery.attempts += 1
            delivery.last_attempt_at = now
            delivery.next_attempt_at = None
            delivery.last_error = None if outcome.sent else outcome.detail
            session.add(delivery)
            session.add(
                DeliveryAttempt(
                    delivery_id=delivery.id, at=now, ok=outcome.sent, detail=outcome.detail
                )
            )


class DesktopNotifier(Protocol):
    def notify(self, title: str, message: str) -> DesktopOutcome:
        """Show a desktop notification; blocking, so call it from a thread."""
        ...


def _session_bus_reason() -> str | None:
    """Why a Linux desktop cannot show notifications, or None if it may."""
    if os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return None
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and (Path(runtime) / "bus").exists():
        return None
    return "no desktop session bus (DBUS_SESSION_BUS_ADDRESS is not set)"


class PlyerDesktop:
    """Desktop notifications through plyer; finds out once whether a backend exists."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checked = False
        self._missing: str | None = None

    def unavailable_reason(self) -> str | None:
        """Why no notification can be shown here, or None when a backend exists."""
        with self._lock:
            if not self._checked:
                self._missing = self._find_backend()
                self._checked = True
            return self._missing

    @staticmethod
    def _find_backend() -> str | None:
        if sys.platform.startswith("linux") and (reason := _session_bus_reason()):
            return reason
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from plyer import notification
            from plyer.facades import Notification

            backend = type(notification.notify.__self__)
        if backend is Notification:
            said = "; ".join(str(w.message).splitlines()[0] for w in caught)
            return f"plyer found no notification backend ({said or 'unsupported platform'})"
        return None

    def notify(self, title: str, message: str) -> DesktopOutcome:
        reason = self.unavailable_reason()
        if reason is not None:
            return DesktopOutcome(UNAVAILABLE, reason)
        from plyer import notification

        try:
            notification.notify(title=title, message=message, app_name="Vigil", timeout=30)
        except Exception as exc:  # plyer backends raise whatever their platform raises
            return DesktopOutcome(FAILED, f"desktop notification failed: {exc}")
        backend = type(notification.notify.__self__).__name__
        return DesktopOutcome(SENT, f"handed to {backend}; delivery not confirmed")

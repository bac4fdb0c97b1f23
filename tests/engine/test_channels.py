"""Pages through Apprise to real receivers on 127.0.0.1 (an SMTP server, ntfy/json/form
HTTP servers), acknowledged with a real HTTP client through the action links of a running
`vigil serve`, with personal notification rules, urgency and quiet hours (injected clock)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlmodel import col, select

from app.core.clock import FakeClock
from app.delivery import apprise as apprise_channel
from app.delivery.local import DesktopOutcome, claim_my_pages, record_desktop
from app.delivery.webhook import OutboxSettings, process_webhook_outbox
from app.engine.cycle import EscalationEngine
from app.rules.destinations import address_kind, host_kind
from app.serve import Server
from app.services.cases import CaseService
from app.services.links import LINK_KEY_CONTEXT, LinkSettings, mint, signing_link_key
from app.services.team.apply import apply_team
from app.services.team.parse import parse_team
from data.db import Database
from data.keys import encode_key, new_key
from data.models import (
    AuditRecord,
    Case,
    ContactMethod,
    Delivery,
    Page,
    Responder,
    TimelineEvent,
)
from data.sealing import keyring_of
from tests.channels_harness import ACK_LINK, OPEN_LINK, DrippingSmtp, SmtpReceiver
from tests.consistency import assert_consistent
from tests.factories import WebhookReceiver, wait_until
from tests.serve.harness import free_port

SECRET_TITLE = "Caller names the school and a time"
SECRET_DETAILS = "Home address 12 Example Street, phone 555-0100"


@pytest.fixture
def db(any_db: Database) -> Database:
    return any_db


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    server = SmtpReceiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def ntfy() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.up()
    yield receiver
    receiver.down()


@pytest.fixture
def chat() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.up()
    yield receiver
    receiver.down()


def team(ntfy: WebhookReceiver, smtp: SmtpReceiver, chat: WebhookReceiver) -> str:
    push = f"ntfy://127.0.0.1:{ntfy.port}/vigil-ana"
    chat_url = f"json://127.0.0.1:{chat.port}/chat"
    return f"""
[[responder]]
handle = "cara"
name = "Cara Byrne"
role = "supervisor"
contacts = [{{ kind = "console" }}]

[[responder]]
handle = "ana"
name = "Ana Ruiz"
role = "specialist"
timezone = "Australia/Sydney"
contacts = [
  {{ kind = "console" }},
  {{ kind = "apprise", name = "push", url = "{push}", allow_private = true }},
  {{ kind = "apprise", name = "mail", url = "{smtp.url()}", allow_private = true }},
  {{ kind = "apprise", name = "chat", url = "{chat_url}", allow_private = true }},
]
notify.high = [
  {{ contact = "push" }},
  {{ after = "2m", contact = "mail" }},
  {{ after = "5m", contact = "chat" }},
]

[[responder]]
handle = "ben"
name = "Ben Okafor"
role = "specialist"
contacts = [{{ kind = "console" }}]

[[policy]]
name = "desk"
steps = [
  {{ delay = "10m", targets = ["user:ana", "user:ben"] }},
  {{ delay = "10m", targets = ["user:cara"] }},
]

[routing]
default = "desk"
"""


@contextmanager
def serving(db: Database, clock: FakeClock) -> Iterator[Server]:
    """`vigil serve` on a free loopback port, acting as cara (a supervisor)."""
    server = Server(db, clock, "cara", port=free_port(), engine=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Desk:
    """A desk, its engine and outbox on an injected clock, and `vigil serve` for the links."""

    def __init__(self, db: Database, clock: FakeClock, base_url: str | None) -> None:
        self.db, self.clock = db, clock
        self.engine = EscalationEngine(db, clock)
        self.cases = CaseService(db, clock, escalation=self.engine.page_within)
        self.settings = OutboxSettings(links=LinkSettings(base_url))

    def outbox(self) -> None:
        """Outbox passes until nothing more is due now (each pass sends a contact one page)."""
        for _ in range(20):
            result = process_webhook_outbox(self.db, self.clock, settings=self.settings)
            if not (result.sent or result.retried or result.failed):
                return

    def case(self, ref: str) -> Case:
        with self.db.read() as session:
            return session.exec(select(Case).where(Case.ref == ref)).one()

    def deliveries(self, ref: str) -> dict[str, str]:
        """Each Apprise contact's delivery status for the case, by contact name."""
        with self.db.read() as session:
            rows = session.exec(
                select(ContactMethod.name, Delivery.status)
                .join(ContactMethod, col(ContactMethod.id) == col(Delivery.contact_id))
                .join(Page, col(Page.id) == col(Delivery.page_id))
                .join(Case, col(Case.id) == col(Page.case_id))
                .where(Case.ref == ref, Delivery.channel == "apprise")
            ).all()
            return {str(name): status for name, status in rows}


def sensitive_texts(text: str) -> list[str]:
    return [secret for secret in (SECRET_TITLE, SECRET_DETAILS, "555-0100") if secret in text]


def test_a_sev1_page_reaches_ntfy_then_mail_and_is_acknowledged_by_its_link(
    db: Database, smtp: SmtpReceiver, ntfy: WebhookReceiver, chat: WebhookReceiver
) -> None:
    """The issue's "Done means": ntfy at once, e-mail after 2 minutes, the e-mail's link
    followed (GET acknowledges nothing) and POSTed: acknowledged by ana, audited "by link",
    and no further channel fires."""
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    apply_team(db, parse_team(team(ntfy, smtp, chat)), actor="root", now=clock.now())
    with serving(db, clock) as served:
        desk = Desk(db, clock, served.url)
        case = desk.cases.open_case(
            "cara",
            title=SECRET_TITLE,
            category="threat_to_life",
            severity="sev1",
            details=SECRET_DETAILS,
            sensitive=True,
        )
        desk.outbox()
        assert len(ntfy.received) == 1
        assert smtp.received() == []
        push = json.loads(ntfy.received[0].body)
        assert push["topic"] == "vigil-ana"
        assert case.ref in push["title"]
        assert "sev1" in push["title"]
        assert "also paged: ben" in push["message"]
        assert "step 1, round 1" in push["message"]
        assert ACK_LINK.search(push["message"])
        assert OPEN_LINK.search(push["message"])
        assert sensitive_texts(ntfy.received[0].body.decode()) == []
        assert desk.deliveries(case.ref) == {"push": "delivered", "mail": "held", "chat": "held"}

        clock.advance(minutes=1, seconds=59)
        desk.outbox()
        assert smtp.received() == []  # not before its 2 minutes

        clock.advance(seconds=1)
        desk.outbox()
        [mail] = smtp.received()
        assert mail.recipients == ("ana@example.org",)
        assert mail.message["To"]
        assert "ana@example.org" in mail.message["To"]
        assert "vigil@example.org" in mail.message["From"]
        assert case.ref in mail.message["Subject"]
        assert "sensitive case" in mail.message["Subject"]
        assert "waiting 2 min" in mail.text
        assert sensitive_texts(mail.message.as_string()) == []
        link = ACK_LINK.search(mail.text)
        assert link is not None
        assert link.group(0).startswith(served.url)

        with httpx.Client(timeout=30) as client:
            preview = client.get(link.group(0))
            assert preview.status_code == 200
            assert "Acknowledge this page?" in preview.text
            assert sensitive_texts(preview.text) == []
            assert desk.case(case.ref).status == "triggered"  # a preview acts on nothing

            done = client.post(link.group(0))
            assert done.status_code == 200
            assert f"{case.ref} acknowledged by ana" in done.text

            replay = client.post(link.group(0))
            assert replay.status_code == 410
            assert "already used" in replay.text

        acknowledged = desk.case(case.ref)
        assert acknowledged.status == "acknowledged"
        with db.read() as session:
            ana = session.exec(select(Responder).where(Responder.handle == "ana")).one()
            record = session.exec(
                select(AuditRecord).where(
                    AuditRecord.case_ref == case.ref, AuditRecord.action == "case.ack"
                )
            ).one()
            timeline = session.exec(
                select(TimelineEvent.text).where(TimelineEvent.kind == "acknowledged")
            ).all()
        assert acknowledged.acknowledged_by_id == ana.id
        assert (record.actor, record.detail) == ("ana", {"how": "by link"})
        assert timeline == ["Acknowledged by ana by link"]

        clock.advance(minutes=30)
        desk.engine.run_due()
        desk.outbox()
        assert len(ntfy.received) == 1
        assert len(smtp.received()) == 1
        assert chat.received == []  # its 5 minutes came after the acknowledgement
        assert desk.deliveries(case.ref) == {
            "push": "delivered",
            "mail": "delivered",
            "chat": "cancelled",
        }
    assert_consistent(db)


def test_a_preview_never_acts_and_expired_or_moved_on_links_say_so(
    db: Database, smtp: SmtpReceiver, ntfy: WebhookReceiver, chat: WebhookReceiver
) -> None:
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    apply_team(db, parse_team(team(ntfy, smtp, chat)), actor="root", now=clock.now())
    with serving(db, clock) as served, httpx.Client(timeout=30) as client:
        desk = Desk(db, clock, served.url)
        first = desk.cases.open_case(
            "cara", title="Report queue stuck", category="other", severity=1
        )
        second = desk.cases.open_case("cara", title="Second case", category="other", severity=1)
        desk.outbox()
        links = {}
        for received in ntfy.received:
            message = json.loads(received.body)["message"]
            ref = first.ref if first.ref in message else second.ref
            link = ACK_LINK.search(message)
            assert link is not None
            links[ref] = link.group(0)
        assert set(links) == {first.ref, second.ref}

        for _ in range(3):  # a chat app's previews, however many
            assert client.get(links[first.ref]).status_code == 200
        assert desk.case(first.ref).status == "triggered"

        open_link = OPEN_LINK.search(json.loads(ntfy.received[0].body)["message"])
        assert open_link is not None
        opened = client.get(open_link.group(0))
        assert opened.status_code == 200
        assert "triggered" in opened.text

        # Resolved meanwhile: the link refuses and says why.
        desk.cases.resolve("cara", second.ref)
        moved = client.post(links[second.ref])
        assert moved.status_code == 410
        assert "already resolved" in moved.text

        # Expired: a link of the same page whose hour is over.
        with db.read() as session:
            key = signing_link_key(session)
            delivery_id = int(links[first.ref].rsplit("/", 1)[1].split(".")[0])
        stale = mint(key, "ack", delivery_id, clock.now() - timedelta(seconds=1))
        expired = client.post(f"{served.url}/ack/{stale}")
        assert expired.status_code == 410
        assert "expired" in expired.text
        forged = client.post(links[first.ref][:-2] + "xx")
        assert forged.status_code == 404
        assert desk.case(first.ref).status == "triggered"

        # Acknowledged at the console first: the link no longer acts.
        desk.cases.acknowledge("ben", first.ref)
        late = client.post(links[first.ref])
        assert late.status_code == 410
        assert "already acknowledged by ben" in late.text


def test_a_reassigned_case_refuses_the_old_pages_link(
    db: Database, smtp: SmtpReceiver, ntfy: WebhookReceiver, chat: WebhookReceiver
) -> None:
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    apply_team(db, parse_team(team(ntfy, smtp, chat)), actor="root", now=clock.now())
    with serving(db, clock) as served, httpx.Client(timeout=30) as client:
        desk = Desk(db, clock, served.url)
        case = desk.cases.open_case("cara", title="Reassign me", category="other", severity=1)
        desk.outbox()
        link = ACK_LINK.search(json.loads(ntfy.received[0].body)["message"])
        assert link is not None
        desk.cases.reassign("cara", case.ref, "ben")
        refused = client.post(link.group(0))
        assert refused.status_code == 410
        assert "reassigned" in refused.text
        assert desk.case(case.ref).status == "triggered"


def test_with_a_link_key_of_its_own_the_sealing_key_signs_no_link(
    db: Database,
    smtp: SmtpReceiver,
    ntfy: WebhookReceiver,
    chat: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """People hold the sealing key; with VIGIL_LINK_KEY given to the engine and serve alone,
    a link signed under the sealing key (someone acknowledging in another's name) opens
    nothing, and the page's own link still acts."""
    monkeypatch.setenv("VIGIL_LINK_KEY", encode_key(new_key()))
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    apply_team(db, parse_team(team(ntfy, smtp, chat)), actor="root", now=clock.now())
    with serving(db, clock) as served, httpx.Client(timeout=30) as client:
        desk = Desk(db, clock, served.url)
        case = desk.cases.open_case("cara", title="Linked", category="other", severity=1)
        desk.outbox()
        link = ACK_LINK.search(json.loads(ntfy.received[0].body)["message"])
        assert link is not None
        delivery_id = int(link.group(0).rsplit("/", 1)[1].split(".")[0])
        with db.read() as session:
            sealing = hmac.new(
                keyring_of(session).sealing_key()[1], LINK_KEY_CONTEXT, hashlib.sha256
            ).digest()
        forged = mint(sealing, "ack", delivery_id, clock.now() + timedelta(minutes=30))
        assert client.post(f"{served.url}/ack/{forged}").status_code == 404
        assert desk.case(case.ref).status == "triggered"
        assert client.post(link.group(0)).status_code == 200
        assert desk.case(case.ref).status == "acknowledged"


def test_a_form_receiver_gets_the_page_as_a_form_without_sensitive_text(
    db: Database, ntfy: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """And the logs name the contact by its service alone, never its URL."""
    caplog.set_level(logging.INFO)
    clock = FakeClock(datetime(2026, 12, 6, 3, 0, tzinfo=UTC))
    text = f"""
[[responder]]
handle = "ana"
name = "Ana Ruiz"
contacts = [{{ kind = "apprise", url = "form://127.0.0.1:{ntfy.port}/form", allow_private = true }}]

[[policy]]
name = "desk"
steps = [{{ delay = "10m", targets = ["user:ana"] }}]

[routing]
default = "desk"
"""
    apply_team(db, parse_team(text), actor="root", now=clock.now())
    desk = Desk(db, clock, "https://vigil.example")
    case = desk.cases.open_case(
        "ana", title=SECRET_TITLE, category="csea", severity=2, details=SECRET_DETAILS
    )
    desk.outbox()
    [received] = ntfy.received
    form = parse_qs(received.body.decode())
    assert case.ref in form["title"][0]
    assert "sev2" in form["title"][0]
    assert "https://vigil.example/ack/" in form["message"][0]
    assert sensitive_texts(received.body.decode()) == []
    assert "apprise to ana at form:// delivered" in caplog.text
    assert f"{ntfy.port}/form" not in caplog.text


def loopback_name() -> str | None:
    """This machine's own name, when it resolves to a loopback or private address only."""
    name = socket.gethostname()
    try:
        answers = {info[4][0] for info in socket.getaddrinfo(name, 80)}
    except OSError:
        return None
    kinds = {address_kind(str(address)) for address in answers}
    return name if answers and None not in kinds and host_kind(name) is None else None


def test_a_private_destination_is_refused_unless_allowed(
    db: Database, ntfy: WebhookReceiver
) -> None:
    """Refused by the team file when the address is literal; at delivery, when a name
    resolves to one (the check sits where Apprise's connection asks for addresses)."""
    base = """
[[responder]]
handle = "ana"
name = "Ana Ruiz"
contacts = [{{ kind = "apprise", url = "{url}" }}]

[[policy]]
name = "desk"
steps = [{{ delay = "10m", targets = ["user:ana"] }}]

[routing]
default = "desk"
"""
    with pytest.raises(ValueError, match=r"contacts\[0\]\.url: 127\.0\.0\.1 is a loopback"):
        parse_team(base.format(url=f"json://127.0.0.1:{ntfy.port}/x"))
    with pytest.raises(ValueError, match=r"contacts\[0\]\.url: 10\.1\.2\.3 is a private"):
        parse_team(base.format(url="mailto://ana@example.org?smtp=10.1.2.3"))

    name = loopback_name()
    if name is None:
        pytest.skip("this machine's name does not resolve to a loopback or private address")
    clock = FakeClock(datetime(2026, 12, 6, 3, 0, tzinfo=UTC))
    url = f"json://{name}:{ntfy.port}/x"
    apply_team(db, parse_team(base.format(url=url)), actor="root", now=clock.now())
    desk = Desk(db, clock, None)
    desk.cases.open_case("ana", title="t", category="other", severity=1)
    desk.outbox()
    assert ntfy.received == []
    with db.read() as session:
        delivery = session.exec(select(Delivery).where(Delivery.channel == "apprise")).one()
    assert delivery.status == "failed"
    assert "resolves to a" in (delivery.last_error or "")
    assert "allow_private" in (delivery.last_error or "")
    assert name not in (delivery.last_error or "")


def test_quiet_hours_hold_a_low_urgency_page_and_let_a_high_one_through(
    db: Database, chat: WebhookReceiver
) -> None:
    """02:00 in the person's zone: a sev3 page waits until quiet hours end at 07:00, a sev1
    goes at once, and the console shows both at once."""
    zone = ZoneInfo("America/New_York")
    clock = FakeClock(datetime(2026, 12, 7, 2, 0, tzinfo=zone))
    text = f"""
[[responder]]
handle = "dev"
name = "Dev Patel"
timezone = "America/New_York"
quiet_hours = "22:00-07:00"
contacts = [
  {{ kind = "console" }},
  {{ kind = "apprise", url = "json://127.0.0.1:{chat.port}/dev", allow_private = true }},
]

[[policy]]
name = "desk"
steps = [{{ delay = "1h", targets = ["user:dev"] }}]

[routing]
default = "desk"
"""
    apply_team(db, parse_team(text), actor="root", now=clock.now())
    desk = Desk(db, clock, "https://vigil.example")
    low = desk.cases.open_case("dev", title="Routine request", category="le_request", severity=3)
    high = desk.cases.open_case(
        "dev", title="Threat to life", category="threat_to_life", severity=1
    )
    desk.outbox()
    assert [json.loads(r.body)["title"].split()[0] for r in chat.received] == [high.ref]
    with db.read() as session:
        dev = session.exec(select(Responder).where(Responder.handle == "dev")).one()
    assert dev.id is not None
    assert {alert.ref for alert in claim_my_pages(db, clock, dev.id)} == {low.ref, high.ref}

    clock.set(datetime(2026, 12, 7, 6, 59, tzinfo=zone))
    desk.outbox()
    assert len(chat.received) == 1
    clock.set(datetime(2026, 12, 7, 7, 0, tzinfo=zone))
    desk.outbox()
    assert [json.loads(r.body)["title"].split()[0] for r in chat.received] == [high.ref, low.ref]
    assert_consistent(db)


def test_support_hours_hold_a_low_urgency_page_across_the_clocks_going_forward(
    db: Database, chat: WebhookReceiver
) -> None:
    """A schedule with support hours 08:00-18:00 Monday to Friday in Sydney: a sev3 paged
    through it on Saturday evening, the night before the clocks go forward (4 October
    2026), waits until Monday 08:00 local (now +11:00), a sev1 goes at once, and the
    console shows both at once. A person named directly (`user:`) is not held."""
    sydney = ZoneInfo("Australia/Sydney")
    clock = FakeClock(datetime(2026, 10, 3, 20, 0, tzinfo=sydney))
    phone = f"json://127.0.0.1:{chat.port}/ana"
    text = f"""
[[responder]]
handle = "ana"
name = "Ana Ruiz"
timezone = "Australia/Sydney"
contacts = [
  {{ kind = "console" }},
  {{ kind = "apprise", name = "phone", url = "{phone}", allow_private = true }},
]

[[rotation]]
name = "syd"
timezone = "Australia/Sydney"
shift = "7d"
handoff = "08:00"
start = "2026-09-28"
members = ["ana"]

[[schedule]]
name = "business"
layers = ["syd"]
support_hours = "08:00-18:00"
support_days = ["mon", "tue", "wed", "thu", "fri"]

[[policy]]
name = "desk"
steps = [{{ delay = "1d", targets = ["schedule:business"] }}]

[[policy]]
name = "direct"
steps = [{{ delay = "1d", targets = ["user:ana"] }}]

[routing]
default = "desk"
"""
    apply_team(db, parse_team(text), actor="root", now=clock.now())
    desk = Desk(db, clock, "https://vigil.example")
    low = desk.cases.open_case("ana", title="Routine request", category="le_request", severity=3)
    high = desk.cases.open_case(
        "ana", title="Threat to life", category="threat_to_life", severity=1
    )
    direct = desk.cases.open_case(
        "ana", title="Named directly", category="other", severity=4, policy="direct"
    )
    desk.outbox()
    sent = [json.loads(r.body)["title"].split()[0] for r in chat.received]
    assert sent == [high.ref, direct.ref]
    assert desk.deliveries(low.ref) == {"phone": "held"}
    with db.read() as session:
        ana = session.exec(select(Responder).where(Responder.handle == "ana")).one()
    assert ana.id is not None
    alerts = {alert.ref for alert in claim_my_pages(db, clock, ana.id)}
    assert alerts == {low.ref, high.ref, direct.ref}

    # Saturday 20:00 to Monday 08:00 is 36 hours on the wall clock, 35 in fact: a minute
    # before, still held.
    clock.set(datetime(2026, 10, 5, 7, 59, tzinfo=sydney))
    desk.outbox()
    assert len(chat.received) == 2
    monday = datetime(2026, 10, 5, 8, 0, tzinfo=sydney)
    assert monday.utcoffset() == timedelta(hours=11)
    clock.set(monday)
    desk.outbox()
    sent = [json.loads(r.body)["title"].split()[0] for r in chat.received]
    assert sent == [high.ref, direct.ref, low.ref]
    assert_consistent(db)


def test_apprise_sends_run_off_the_outbox_event_loop(
    db: Database,
    ntfy: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The blocking Apprise send never runs on an event loop's thread."""
    seen: list[str] = []
    original = apprise_channel.send

    def spy(*args: Any, **kwargs: Any) -> apprise_channel.AppriseOutcome:
        try:
            asyncio.get_running_loop()
            seen.append("an event loop")
        except RuntimeError:
            seen.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(apprise_channel, "send", spy)
    test_a_form_receiver_gets_the_page_as_a_form_without_sensitive_text(db, ntfy, caplog)
    assert seen
    assert all(name.startswith("vigil-apprise") for name in seen)


@pytest.mark.parametrize(
    ("url", "how"),
    [
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#on-call", "slack"),
        ("workflows://prod.example.logic.azure.com/WORKFLOW1/SIGNATURE1", "teams"),
    ],
)
def test_the_payload_apprise_would_send_to_slack_and_teams(
    url: str, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack's and Teams' hosts are fixed, so no receiver of ours can stand in for them:
    this test catches the request Apprise would send (requests' call, replaced for the
    test) and checks its formatted payload: Markdown links for Slack, and for both the
    reference, the acknowledge link and no sensitive text."""
    import requests

    from app.delivery.message import compose
    from app.services.links import PageLinks
    from data.models import Page

    sent: list[dict[str, Any]] = []

    def capture(*args: Any, **kwargs: Any) -> requests.Response:
        sent.append({"args": args, **kwargs})
        response = requests.Response()
        response.status_code = 200 if how == "slack" else 202
        response._content = b"ok"
        return response

    monkeypatch.setattr(requests, "request", capture)
    monkeypatch.setattr(requests, "post", capture)
    now = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
    case = Case(
        ref="ESC-0042",
        title=SECRET_TITLE,
        details=SECRET_DETAILS,
        category="csea",
        severity=1,
        sensitive=True,
        created_at=now - timedelta(minutes=3),
        updated_at=now,
    )
    page = Page(case_id=1, responder_id=1, step=1, round=0, due_at=now, sent_at=now)
    links = PageLinks("https://vigil.example/ack/1.2.sig", "https://vigil.example/open/1.2.sig")
    message = compose(case, page, ["ben"], now, links)
    outcome = apprise_channel.send(
        url, message.title, message.text, message.markdown, allow_private=False
    )
    assert outcome.ok, outcome.detail
    [request] = sent
    payload = json.dumps(request.get("json") or json.loads(request.get("data") or "{}"))
    assert "ESC-0042" in payload
    assert "https://vigil.example/ack/1.2.sig" in payload
    assert sensitive_texts(payload) == []
    if how == "slack":
        assert "<https://vigil.example/ack/1.2.sig|Acknowledge>" in payload


def test_a_desktop_notification_waits_for_its_rule_and_never_comes_after_an_ack(
    db: Database,
) -> None:
    """The console claims a delayed desktop row once it is due (its screen looks every
    15 s), and never once the case is acknowledged."""
    clock = FakeClock(datetime(2026, 12, 6, 3, 0, tzinfo=UTC))
    text = """
[[responder]]
handle = "ana"
name = "Ana Ruiz"
role = "supervisor"
contacts = [{ kind = "console" }, { kind = "desktop" }]
notify.high = [{ contact = "console" }, { after = "2m", contact = "desktop" }]

[[policy]]
name = "desk"
steps = [{ delay = "30m", targets = ["user:ana"] }]

[routing]
default = "desk"
"""
    apply_team(db, parse_team(text), actor="ana", now=clock.now())
    desk = Desk(db, clock, None)
    first = desk.cases.open_case("ana", title="First", category="other", severity=1)
    with db.read() as session:
        ana = session.exec(select(Responder)).one()
    assert ana.id is not None
    [shown] = claim_my_pages(db, clock, ana.id)
    assert (shown.ref, shown.desktop_delivery_ids) == (first.ref, ())
    clock.advance(minutes=1)
    assert claim_my_pages(db, clock, ana.id) == []
    clock.advance(minutes=1)
    [due] = claim_my_pages(db, clock, ana.id)
    assert due.ref == first.ref
    assert len(due.desktop_delivery_ids) == 1
    record_desktop(db, clock, due.desktop_delivery_ids, DesktopOutcome("sent", "shown"))

    second = desk.cases.open_case("ana", title="Second", category="other", severity=1)
    assert [a.ref for a in claim_my_pages(db, clock, ana.id)] == [second.ref]
    desk.cases.acknowledge("ana", second.ref)
    clock.advance(minutes=5)
    assert claim_my_pages(db, clock, ana.id) == []


def test_a_link_of_someone_no_longer_on_the_team_says_so(
    db: Database, smtp: SmtpReceiver, ntfy: WebhookReceiver, chat: WebhookReceiver
) -> None:
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    apply_team(db, parse_team(team(ntfy, smtp, chat)), actor="root", now=clock.now())
    with serving(db, clock) as served, httpx.Client(timeout=30) as client:
        desk = Desk(db, clock, served.url)
        case = desk.cases.open_case("cara", title="Left the team", category="other", severity=1)
        desk.outbox()
        link = ACK_LINK.search(json.loads(ntfy.received[0].body)["message"])
        assert link is not None
        with db.write() as session:  # as applying a file without ana does
            ana = session.exec(select(Responder).where(Responder.handle == "ana")).one()
            ana.active = False
            session.add(ana)
        refused = client.post(link.group(0))
        assert refused.status_code == 410
        assert "ana is no longer an active responder" in refused.text
        assert desk.case(case.ref).status == "triggered"


def ana_reached_by(*contacts: str) -> str:
    """A team file: ana, reached by `contacts` (TOML inline tables), paged by the desk's one
    step an hour."""
    return f"""
[[responder]]
handle = "ana"
name = "Ana Ruiz"
contacts = [{", ".join(contacts)}]

[[policy]]
name = "desk"
steps = [{{ delay = "1h", targets = ["user:ana"] }}]

[routing]
default = "desk"
"""


def test_a_failing_service_is_retried_and_its_pages_keep_their_order(
    db: Database, ntfy: WebhookReceiver
) -> None:
    """Apprise's "no" (here an ntfy server answering 500) is retried with the outbox's
    backoff, and the contact's later page waits its turn."""
    clock = FakeClock(datetime(2026, 12, 6, 3, 0, tzinfo=UTC))
    url = f"ntfy://127.0.0.1:{ntfy.port}/vigil-ana"
    text = ana_reached_by(f'{{ kind = "apprise", url = "{url}", allow_private = true }}')
    apply_team(db, parse_team(text), actor="root", now=clock.now())
    desk = Desk(db, clock, None)
    first = desk.cases.open_case("ana", title="First", category="other", severity=2)
    second = desk.cases.open_case("ana", title="Second", category="other", severity=2)
    ntfy.status = 500
    desk.outbox()
    assert len(ntfy.received) == 1  # the first, refused; the second waits behind it
    with db.read() as session:
        retried = session.exec(select(Delivery).order_by(col(Delivery.id))).all()
    assert [(d.status, d.attempts) for d in retried] == [("pending", 1), ("pending", 0)]
    assert "did not accept" in (retried[0].last_error or "")

    ntfy.status = 200
    clock.advance(hours=2)  # past any backoff of a first failure
    desk.outbox()
    titles = [json.loads(r.body)["title"].split()[0] for r in ntfy.received]
    assert titles == [first.ref, first.ref, second.ref]


def test_receivers_that_never_answer_hold_up_no_other_apprise_contact(
    db: Database, ntfy: WebhookReceiver
) -> None:
    """Forty mail servers that drip their greeting a byte at a time (no read ever times out,
    so a blocking send never returns), then a healthy ntfy contact: each attempt is cut at
    the outbox's deadline, and the sends still hanging hold no thread another needs. The
    ntfy page is delivered in the first pass, and again in the next, where the mail
    contacts are left alone while their sends still hang: one connection each, never a
    thread and a connection more at every retry. (With a pool of 32 threads, the phone's
    page waited behind the hanging sends and missed its deadline, pass after pass.)"""
    clock = FakeClock(datetime(2026, 12, 6, 3, 0, tzinfo=UTC))
    dripping = DrippingSmtp()
    dripping.start()
    try:
        mails = [
            f'{{ kind = "apprise", name = "mail-{n}", url = "{dripping.url(f"a{n}@example.org")}",'
            " allow_private = true }"
            for n in range(40)
        ]
        phone = (
            f'{{ kind = "apprise", name = "phone", url = "ntfy://127.0.0.1:{ntfy.port}/a",'
            " allow_private = true }"
        )
        text = ana_reached_by(*mails, phone)
        apply_team(db, parse_team(text), actor="root", now=clock.now())
        desk = Desk(db, clock, None)
        desk.settings = OutboxSettings(concurrency=64, deadline=timedelta(seconds=3))
        first = desk.cases.open_case("ana", title="First", category="other", severity=1)
        process_webhook_outbox(db, clock, settings=desk.settings)
        sent = desk.deliveries(first.ref)
        assert sent.pop("phone") == "delivered"
        assert set(sent.values()) == {"pending"}  # every mail page cut at the deadline
        wait_until(lambda: dripping.connections == 40, "every mail send", timedelta(seconds=10))
        second = desk.cases.open_case("ana", title="Second", category="other", severity=1)
        clock.advance(hours=1)  # past the backoff: the mail pages would be tried again
        process_webhook_outbox(db, clock, settings=desk.settings)
        assert desk.deliveries(second.ref)["phone"] == "delivered"
        assert dripping.connections == 40
        with db.read() as session:
            tried = session.exec(select(Delivery.last_error, Delivery.attempts)).all()
        mail = [(error, attempts) for error, attempts in tried if error is not None]
        assert set(mail) == {("no answer within 3 s from mailto://", 1)}
        assert len(mail) == 40
    finally:
        dripping.stop()
        wait_until(
            lambda: not apprise_channel.still_sending(db.display_name),
            "the hanging sends to end once their server closes",
            timedelta(seconds=10),
        )

"""Real receivers of pages for the channel tests: an SMTP server on 127.0.0.1 (aiosmtpd)
and a team whose person is reached through Apprise."""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

ACK_LINK = re.compile(r"https?://[^\s\)\]\"'<>]+/ack/[0-9]+\.[0-9]+\.[A-Za-z0-9_-]+")
OPEN_LINK = re.compile(r"https?://[^\s\)\]\"'<>]+/open/[0-9]+\.[0-9]+\.[A-Za-z0-9_-]+")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Mail:
    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage

    @property
    def text(self) -> str:
        """Every text part, decoded."""
        parts = []
        for part in self.message.walk():
            if part.get_content_maintype() == "text":
                parts.append(str(part.get_content()))
        return "\n".join(parts)


class SmtpReceiver:
    """An SMTP server on 127.0.0.1 that accepts every message and keeps it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mails: list[Mail] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.mails.append(Mail(envelope.mail_from, tuple(envelope.rcpt_tos), message))
        return "250 OK"

    def url(self, to: str = "ana@example.org") -> str:
        """The Apprise URL of this server, sending as vigil@example.org."""
        return f"mailto://127.0.0.1:{self.port}?from=vigil@example.org&to={to}"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def received(self) -> list[Mail]:
        with self._lock:
            return list(self.mails)


class DrippingSmtp:
    """A mail server on 127.0.0.1 that never finishes its greeting: one byte of it every
    fifth of a second to each connection, until stopped (no read ever times out)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def url(self, to: str) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=vigil@example.org&to={to}"

    def start(self) -> None:
        self._threads.append(threading.Thread(target=self._accept, daemon=True))
        self._threads[0].start()

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            thread = threading.Thread(target=self._drip, args=(connection,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _drip(self, connection: socket.socket) -> None:
        with connection:
            for byte in iter(lambda: b"2", None):
                if self._stop.wait(0.2):
                    return
                try:
                    connection.sendall(byte)
                except OSError:
                    return

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

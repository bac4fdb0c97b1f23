"""Connections that must bring a request in time, so that idle or dripping ones cannot
pile up until no sender gets in.

uvicorn gives a connection all the time it wants until its first request is in, and times
out only the quiet between requests (any byte at all restarts that wait). Each connection
holds a file descriptor: a few hundred half-open connections from senders that crashed, or
someone trickling headers a byte at a time, and the process can no longer accept a
connection, nor open its database. Here a request's head (its line and headers) must be in
within `REQUEST_WITHIN` seconds of the connection being made or of the last response; the
body then has as long again (`app.serve.limits.read_json`, which can still answer 408),
and answers that pile up unread (a sender pipelining requests that never reads what comes
back) must be taken within as long again, else the connection is cut: such a sender is no
longer read from, and would otherwise hold its connection for good.
And connections beyond what the open-file limit leaves after `RESERVED_FILES` are closed as
soon as they are accepted, so the database, the log and the outbox always have files to
open: a sender turned away tries again, an alert that cannot be stored is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from app.core.errors import BadInput

REQUEST_WITHIN = 10.0
"""Seconds a sender has for a request's head, and again for its body: ample for a server
posting an alert (an alert is a few KB; the largest body taken, 1 MB, needs more than
100 KB/s), short for a connection that brings nothing."""


RESERVED_FILES = 64
"""Open files kept back from connections: the database's, the log's, the outbox's."""
BACKLOG = 128
"""Connections the kernel holds for accepting, and so the most asyncio accepts at one go
before any is seen here: kept back from the cap too."""
LATE = "late"
"""Why a connection was cut: no request head within the deadline."""
TOO_MANY = "too_many"
"""Why a connection was cut: more open than the open-file limit leaves room for."""
UNREAD = "unread"
"""Why a connection was cut: its answers went unread past the deadline."""


def most_connections(open_files: int | None) -> int | None:
    """Connections to keep open at once under a limit of `open_files` (None: no cap)."""
    if open_files is None:
        return None
    return max(16, open_files - RESERVED_FILES - BACKLOG)


def deadline_protocol(
    within: float, most: int | None, on_cut: Callable[[str], None]
) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol with the head deadline, the deadline for answers
    piling up unread, and at most `most` connections (`on_cut` is told why of each
    connection closed for any of them)."""

    class DeadlineProtocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _unread: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if most is not None and len(self.connections) > most:
                on_cut(TOO_MANY)
                transport.abort()  # at once: over TLS, close() would wait on a goodbye
                return
            self._arm()

        def handle_events(self) -> None:
            before = self.cycle
            super().handle_events()
            if self.cycle is not before:  # a request's head is in
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # A pipelined request may have started inside (its head already in).
            idle = self.cycle is None or self.cycle.response_complete
            if idle and not self.transport.is_closing():
                self._arm()

        def pause_writing(self) -> None:
            """The answers fill the sender's socket and more wait to be sent."""
            super().pause_writing()
            if self._unread is None:
                self._unread = self.loop.call_later(within, self._cut_unread)

        def resume_writing(self) -> None:
            super().resume_writing()
            self._forget_unread()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            self._forget_unread()
            super().connection_lost(exc)

        def _forget_unread(self) -> None:
            if self._unread is not None:
                self._unread.cancel()
                self._unread = None

        def _cut_unread(self) -> None:
            self._unread = None
            if not self.transport.is_closing():
                on_cut(UNREAD)
                self.transport.abort()

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(within, self._cut)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _cut(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                on_cut(LATE)
                self.transport.abort()

    return DeadlineProtocol


def listening_socket(host: str, port: int) -> socket.socket:
    """The service's socket, bound here: uvicorn logs a wrong --host or a --port already
    taken and exits 3, where the command line's contract says 2 and names the option."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else "not a host name"
        raise BadInput("--host", f"{host!r} is no address to listen on ({reason})") from None
    family, kind, protocol, _name, address = found[0]
    sock = socket.socket(family, kind, protocol)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BadInput("--port", f"{port} is already in use on {host}") from None
        if exc.errno == errno.EACCES:
            raise BadInput("--port", f"{port} may not be opened by this user") from None
        raise BadInput("--host", f"cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.set_inheritable(True)
    return sock


def open_file_limit() -> int | None:
    """This process's soft limit on open files (None where there is none)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def raise_open_file_limit() -> int | None:
    """Raise this process's soft limit on open files to its hard limit (systemd's soft
    default, 1,024, is a few hundred idle connections away); the limit now in force (None
    where there is no such limit, as `open_file_limit` reads it)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if resource.RLIM_INFINITY not in (soft, hard) and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return open_file_limit()


class OutOfFiles:
    """The event loop's exception handler: asyncio reports each accept refused for want of
    open files with a traceback (several a second while it lasts); here it is one line a
    minute. Anything else goes to the default handler."""

    EVERY = 60.0

    def __init__(
        self, log: logging.Logger, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.log = log
        self.monotonic = monotonic
        self._said_at = float("-inf")

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if not (isinstance(error, OSError) and error.errno in (errno.EMFILE, errno.ENFILE)):
            loop.default_exception_handler(context)
            return
        now = self.monotonic()
        if now - self._said_at >= self.EVERY:
            self._said_at = now
            self.log.warning(
                "out of open files: new connections wait until some close (%s)", error.strerror
            )

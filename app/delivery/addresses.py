"""Public addresses only, checked on the very resolution a blocking connection uses.

Libraries that open their own connections (Apprise through requests and smtplib, httpx's
blocking client) ask `socket.getaddrinfo` for a host's addresses and connect to what it
answers. While `public_only(True)` is in force on a thread, that thread's answers are
checked first: one private, loopback or link-local address and the lookup fails, so the
connection never starts. Checking in a lookup of our own beforehand would leave a gap: a
name can resolve to a public address for the check and a private one for the connection
(DNS rebinding). Other threads, and this one outside the block, resolve as usual.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from app.rules.destinations import first_refused

_guard = threading.local()
_system_getaddrinfo: Callable[..., Any] = socket.getaddrinfo


class Refused(OSError):
    """An address this connection may not reach (raised from inside the lookup)."""


def _checked_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    answers = _system_getaddrinfo(host, *args, **kwargs)
    if getattr(_guard, "active", False):
        refused = first_refused(str(answer[4][0]) for answer in answers)
        if refused is not None:
            kind, address = refused
            _guard.refused = f"the destination resolves to a {kind} address ({address})"
            raise Refused(_guard.refused)
    return answers


socket.getaddrinfo = _checked_getaddrinfo


@contextmanager
def public_only(active: bool) -> Iterator[Callable[[], str | None]]:
    """While inside, this thread's lookups answer only public addresses (when `active`);
    yields a function that says why one was refused (None while none was)."""
    _guard.active, _guard.refused = active, None
    try:
        yield lambda: getattr(_guard, "refused", None)
    finally:
        _guard.active = False

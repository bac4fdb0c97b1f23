"""The Apprise channel: chat, push and mail (ntfy, Slack, Teams, Discord, Telegram, Matrix,
Pushover, e-mail...) through the Apprise library, one blocking send at a time.

The outbox (`app.delivery.webhook`) claims Apprise rows as it claims webhook rows, in
order per contact, with the same lease, deadline and retries; it hands each attempt to
`send` on a thread of its own (`in_own_thread`), never on an event loop's thread, since
Apprise blocks. A thread of its own, not one of a fixed pool: a blocking send cannot be
stopped, and one to a server that drips its answer a byte at a time goes on past the
attempt's deadline for as long as the server keeps dripping. In a pool, a few such
destinations would hold every thread and starve everyone's chat and mail; here each holds
only its own thread until the server gives up. And a contact whose send still runs is
not sent to again until it ends (`still_sending`): its retries would hang beside it, a
thread and a connection more each time.

The plugins load on first use (`load_plugins`), outside any attempt's deadline: loading
them took most of a second, inside the first page's deadline, while every other send of
the pass waited for the import lock.

**Apprise URLs are secrets** (their tokens and passwords are part of them): nothing here
logs or returns one. Apprise masks the URLs it logs itself.

**Private destinations** are refused unless the contact sets ``allow_private = true``, as
for webhooks. Apprise opens its own connections (HTTP through requests, mail through
smtplib), so the check sits where every one of them asks for addresses
(`app.delivery.addresses`): while `send` runs, this thread's lookups answer only public
addresses, and the connection uses those very answers.

Apprise takes most of a second to load its plugins, so it is imported on first use, in
the outbox's thread, never by a command that only reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from app.delivery.addresses import public_only
from app.rules.destinations import scheme_of

T = TypeVar("T")
_numbers = itertools.count(1)
_sending: Counter[tuple[str, int]] = Counter()
"""Sends still running (cut at their deadline or not), by desk and contact id."""
_sending_lock = threading.Lock()
_loaded = threading.Event()
TIMEOUT = 4.0
"""Seconds Apprise waits to connect, and then for each read: within the outbox's deadline."""


def still_sending(desk: str) -> set[int]:
    """The contacts of `desk` (its database's name) with a send still running: none of
    their pages is sent meanwhile."""
    with _sending_lock:
        return {contact for owner, contact in _sending if owner == desk}


def load_plugins() -> None:
    """Load Apprise and its plugins once (blocking: call it from a thread)."""
    if _loaded.is_set():
        return
    import apprise

    apprise.Apprise.instantiate("json://localhost")  # the first instantiation loads them all
    _loaded.set()


def plugins_loaded() -> bool:
    return _loaded.is_set()


def in_own_thread(
    call: Callable[[], T], contact: tuple[str, int] | None = None
) -> asyncio.Future[T]:
    """`call()` on a new daemon thread; its result (or exception) as a future of the running
    loop. Cancelling the future (a missed deadline) leaves the thread to end on its own;
    until it does, `contact` (desk, contact id) is among those `still_sending`."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():  # cancelled at its deadline: nobody waits for it any more
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = call(), None
        except BaseException as exc:  # handed to the awaiting coroutine
            result, error = None, exc
        finally:
            _done_sending(contact)
        with contextlib.suppress(RuntimeError):  # a closed loop: its outbox has stopped
            loop.call_soon_threadsafe(settle, result, error)

    thread = threading.Thread(target=run, name=f"vigil-apprise-{next(_numbers)}", daemon=True)
    if contact is not None:
        with _sending_lock:
            _sending[contact] += 1
    try:
        thread.start()
    except RuntimeError:  # no thread to be had (a process or container limit)
        _done_sending(contact)
        raise
    return future


def _done_sending(contact: tuple[str, int] | None) -> None:
    if contact is None:
        return
    with _sending_lock:
        _sending[contact] -= 1
        if _sending[contact] <= 0:
            del _sending[contact]


@dataclass(frozen=True)
class AppriseOutcome:
    ok: bool
    detail: str
    permanent: bool = False
    """No retry can help: the URL is not one Apprise knows, or its destination is refused."""


def send(url: str, title: str, text: str, markdown: str, *, allow_private: bool) -> AppriseOutcome:
    """Send one page (blocking): Markdown where the service renders it, else plain text."""
    import apprise

    asset = apprise.AppriseAsset(storage_mode=apprise.PersistentStoreMode.MEMORY)
    plugin = apprise.Apprise.instantiate(url, asset=asset)
    if plugin is None:
        return AppriseOutcome(False, f"not a URL Apprise knows ({scheme_of(url)}://)", True)
    formats = plugin.notify_format  # one format, or those the service takes, preferred first
    renders_markdown = apprise.NotifyFormat.MARKDOWN in (
        formats if isinstance(formats, tuple) else (formats,)
    )
    body, body_format = (
        (markdown, apprise.NotifyFormat.MARKDOWN)
        if renders_markdown
        else (text, apprise.NotifyFormat.TEXT)
    )
    plugin.socket_connect_timeout = plugin.socket_read_timeout = TIMEOUT
    # The plugin's own notify sends on this thread (Apprise's would hand it to a pool of
    # its own, out of the address check's sight).
    with public_only(not allow_private) as refusal:
        result = plugin.notify(body=body, title=title, body_format=body_format)
        refused = refusal()
    if refused:
        return AppriseOutcome(
            False, f"refused (url): {refused}; allow_private = true allows it", True
        )
    if result:
        return AppriseOutcome(True, f"accepted by {scheme_of(url)}")
    return AppriseOutcome(False, f"{scheme_of(url)} did not accept the notification")

"""The Apprise channel: chat, push and mail (ntfy, Slack, Teams, Discord, Telegram, Matrix,
Pushover, e-mail...) through the Apprise library, one blocking send at a time.

The outbox (`app.delivery.webhook`) claims Apprise rows as it claims webhook rows, in
order per contact, with the same lease, deadline and retries; it hands each attempt to
`send` on a thread of `POOL`, never on an event loop's thread, since Apprise blocks.

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

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from app.delivery.addresses import public_only
from app.rules.destinations import scheme_of

POOL = ThreadPoolExecutor(32, thread_name_prefix="vigil-apprise")
"""Threads that run Apprise's blocking sends, apart from every event loop."""
TIMEOUT = 4.0
"""Seconds Apprise waits to connect, and then for each read: within the outbox's deadline."""


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

"""What may be known of a contact's secrets without reading them: the URL as Vigil shows
it (`shown_url`) and digests of the URL and the webhook secret. They are stored in clear
beside the sealed values (`data.models.ContactMethod`), so the team file can be planned,
applied and exported by people whose database logins may not select the secrets
(`data.access`): only the services that deliver pages read those."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

from data.domain import ContactKind

KEPT_URL = re.compile(
    r"^(https?://[^/?#@]+/|[a-z][a-z0-9+.-]*://)\.\.\.#kept:[0-9a-f]{8}$", re.IGNORECASE
)
"""A contact URL as `shown_url` prints it; applying it keeps the stored URL it stands for."""


def digest(text: str | None) -> str | None:
    """A stored value's digest: equal values, equal digests; the value cannot be read back."""
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def shown_url(url: str, kind: str = ContactKind.WEBHOOK) -> str:
    """A contact URL as Vigil prints it (export, plans, the audit log). A webhook: its
    scheme and host, and in place of the rest, where chat services put their tokens, a
    fingerprint that `vigil team apply` matches against the stored URL (a bare host is shown
    whole). An Apprise URL holds its tokens anywhere, even in the host: only its scheme."""
    parts = urlsplit(url)
    fingerprint = (digest(url) or "")[:8]
    if kind == ContactKind.APPRISE:
        return f"{parts.scheme}://...#kept:{fingerprint}"
    host = parts.netloc.rpartition("@")[2]
    if parts.path in ("", "/") and not (parts.query or parts.fragment) and host == parts.netloc:
        return url
    return f"{parts.scheme}://{host}/...#kept:{fingerprint}"

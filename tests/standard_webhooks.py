"""A Standard Webhooks verifier written from the specification (standardwebhooks.com),
independent of Vigil's signing code, as a receiver would write it.

The spec: the signed content is ``{webhook-id}.{webhook-timestamp}.{body}``; the signature
is HMAC-SHA256 of it under the secret's key, base64-encoded; ``webhook-signature`` is a
space-delimited list of ``{version},{signature}`` and ``v1`` is this scheme; a secret is
shown as ``whsec_`` + base64 of its key; the timestamp is integer Unix seconds and a
receiver refuses one too far from its own clock (five minutes is the usual tolerance).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime

TOLERANCE_SECONDS = 300


def key_of(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    tolerance: float = TOLERANCE_SECONDS,
) -> bool:
    """True when the request's ``webhook-signature`` holds a valid ``v1`` signature of the
    body and its timestamp is within `tolerance` of `now`; header names in any case."""
    lower = {name.lower(): value for name, value in headers.items()}
    webhook_id = lower.get("webhook-id")
    timestamp = lower.get("webhook-timestamp", "")
    signatures = lower.get("webhook-signature")
    if not webhook_id or not timestamp.isdigit() or not signatures:
        return False
    if abs(now.timestamp() - int(timestamp)) > tolerance:
        return False
    content = f"{webhook_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key_of(secret), content, hashlib.sha256).digest())
    for signature in signatures.split(" "):
        version, _, value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return True
    return False

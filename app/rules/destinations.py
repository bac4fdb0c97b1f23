"""Which webhook and Apprise destinations and secrets a contact may have: the rules the
team file checks when it is applied and the outbox checks again on every attempt (stdlib
only, so reading a team file loads neither the HTTP client nor Apprise).

- A plain ``http://`` URL, and a secret whose key is under `MIN_SECRET_BYTES`, are refused
  unless the contact sets ``allow_insecure = true``.
- A private, loopback, link-local (or any other non-public) address is refused unless the
  contact sets ``allow_private = true``. A name is checked when it resolves, at delivery.
- A secret ``whsec_<base64>`` (Standard Webhooks) signs with the decoded bytes; any other
  secret with its UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Iterable
from urllib.parse import parse_qs, urlsplit

MIN_SECRET_BYTES = 16
SECRET_PREFIX = "whsec_"


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: the base64 after ``whsec_`` decoded (a Standard Webhooks
    secret), else the secret's UTF-8 bytes. ValueError (without the secret) if the base64
    is broken."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                f"expected standard base64 after {SECRET_PREFIX!r} (a Standard Webhooks secret)"
            ) from None
    return secret.encode()


def address_kind(address: str) -> str | None:
    """Why an IP address is refused unless allowed (``loopback``, ``link-local``,
    ``private``...), or None for a public one."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
        address.partition("%")[0]
    )
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if not ip.is_global:
        return "private"
    return None


def ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return True


def first_refused(addresses: Iterable[str]) -> tuple[str, str] | None:
    """(kind, address) of the first address a contact may not reach unless allowed
    (`address_kind`), or None when every one is public."""
    for address in addresses:
        kind = address_kind(address)
        if kind is not None:
            return kind, address
    return None


def host_kind(host: str) -> str | None:
    """What a URL's host is known to be before any lookup: ``loopback`` for localhost, an IP
    literal's kind (`address_kind`); None for a name, which is checked when it resolves."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return "loopback"
    return address_kind(host) if ip_literal(host) else None


def contact_problems(
    url: str, secret: str | None, *, allow_insecure: bool, allow_private: bool
) -> list[tuple[str, str]]:
    """What a webhook contact's settings refuse, as (team file key, message) pairs; none if
    it may be sent to. Messages never quote the secret or the URL's path."""
    problems: list[tuple[str, str]] = []
    parts = urlsplit(url)
    if parts.scheme == "http" and not allow_insecure:
        problems.append(
            (
                "url",
                "plain http:// is refused (the page and its signature would travel in clear): "
                "use https://, or set allow_insecure = true on this contact",
            )
        )
    host = parts.hostname or ""
    kind = host_kind(host)
    if kind is not None and not allow_private:
        problems.append(
            (
                "url",
                f"{host} is a {kind} address: refused unless allow_private = true on this contact",
            )
        )
    if secret is not None:
        try:
            key = signing_key(secret)
        except ValueError as exc:
            problems.append(("secret", str(exc)))
        else:
            if len(key) < MIN_SECRET_BYTES and not allow_insecure:
                problems.append(
                    (
                        "secret",
                        f"expected a secret of at least {MIN_SECRET_BYTES} bytes, got "
                        f"{len(key)}: use a longer one, or set allow_insecure = true "
                        "on this contact",
                    )
                )
    return problems


def scheme_of(url: str) -> str:
    """An Apprise URL's service, the only part of it ever shown (the rest holds tokens)."""
    return urlsplit(url).scheme.lower() or "-"


def apprise_url_problem(url: str, *, allow_private: bool) -> str | None:
    """What is refused in an Apprise URL before any lookup: no scheme, or (unless
    `allow_private`) a literal loopback or private host, of the service or of its ``smtp``
    server. Names are checked when they resolve, at delivery. Never quotes the URL."""
    parts = urlsplit(url)
    if not parts.scheme or "://" not in url:
        return 'expected an Apprise URL such as "ntfy://ntfy.example/topic"'
    if allow_private:
        return None
    hosts = [parts.hostname or "", *parse_qs(parts.query).get("smtp", [])]
    for host in hosts:
        kind = host_kind(host) if host else None
        if kind is not None:
            return f"{host} is a {kind} address: refused unless allow_private = true"
    return None

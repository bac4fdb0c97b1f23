"""Signs of a forged emergency or legal request, pure: a sender outside the agency directory,
and a cited law that does not fit the kind of request.

Forged emergency data requests come from compromised police mailboxes and look-alike
domains, cite the wrong legal codes, and press the desk to skip the call-back (FBI notice of
2024-11-04). These rules say what does not match; the desk decides what it means.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from app.core.errors import BadInput
from data.domain import Category

_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_CITATION = re.compile(r"(\d{4})((?:\([0-9a-z]{1,4}\))*)")

# 18 U.S.C. sections by what they authorise.
EMERGENCY_SECTIONS = ("2702(b)(8)", "2702(c)(4)")
PRESERVATION_SECTIONS = ("2703(f)",)
LEGAL_PROCESS_SECTIONS = ("2703(a)", "2703(b)", "2703(c)", "2703(d)")

EXPECTED_LAW: dict[str, tuple[str, ...]] = {
    Category.EDR.value: EMERGENCY_SECTIONS,
    Category.PRESERVATION.value: PRESERVATION_SECTIONS,
    Category.LE_REQUEST.value: LEGAL_PROCESS_SECTIONS,
}
"""The request types whose origin is checked, and the sections each may rest on."""


@dataclass(frozen=True, slots=True)
class Flag:
    code: str  # unlisted_domain, unlisted_phone, law_mismatch, no_law
    text: str

    def __str__(self) -> str:
        return f"{self.code}: {self.text}"


def normalise_phone(field: str, text: str) -> str:
    """A number as digits with its leading '+', so '+1 (555) 010-0100' matches '+15550100100'."""
    raw = (text or "").strip()
    digits = re.sub(r"[^0-9]", "", raw)
    if not raw.startswith("+") or not 7 <= len(digits) <= 15 or re.search(r"[^0-9+ ().-]", raw):
        raise BadInput(
            field, f"expected a number with its country code, like +1 555 0100, got {text!r}"
        )
    return "+" + digits


def normalise_domain(field: str, text: str) -> str:
    domain = (text or "").strip().lower().removeprefix("@").rstrip(".")
    if not _DOMAIN.match(domain):
        raise BadInput(field, f"expected a domain such as police.example.gov, got {text!r}")
    return domain


def domain_of(field: str, email: str) -> str:
    address = (email or "").strip()
    if address.count("@") != 1 or not address.split("@")[0]:
        raise BadInput(field, f"expected an e-mail address, got {email!r}")
    return normalise_domain(field, address.split("@")[1])


def cited_sections(text: str) -> list[str]:
    """The sections a citation names, e.g. '18 USC § 2702 (b) (8)' gives ['2702(b)(8)']."""
    compact = re.sub(r"\s+", "", (text or "").lower())
    return [number + parts for number, parts in _CITATION.findall(compact)]


def _covers(cited: str, allowed: str) -> bool:
    return cited == allowed or cited.startswith(allowed)


def law_flag(category: str, cited_law: str) -> Flag | None:
    """A flag when the cited law is missing or is not one the request type rests on."""
    expected = EXPECTED_LAW.get(category)
    if expected is None:
        return None
    cited = cited_sections(cited_law)
    if not cited:
        return Flag("no_law", f"the request cites no section of 18 U.S.C. ({cited_law or 'none'})")
    wrong = [c for c in cited if not any(_covers(c, a) for a in expected)]
    if wrong:
        return Flag(
            "law_mismatch",
            f"a {category} request rests on {' or '.join(expected)}, but cites {', '.join(wrong)}",
        )
    return None


def origin_flags(
    category: str,
    *,
    sender_domain: str,
    sender_phone: str,
    cited_law: str,
    listed_domains: Collection[str],
    listed_phones: Collection[str],
) -> list[Flag]:
    """Everything about a request's origin that does not match the agency directory."""
    flags: list[Flag] = []
    if sender_domain and sender_domain not in listed_domains:
        flags.append(
            Flag("unlisted_domain", f"{sender_domain} is not an agency domain in the directory")
        )
    if sender_phone and sender_phone not in listed_phones:
        flags.append(
            Flag("unlisted_phone", f"{sender_phone} is not an agency number in the directory")
        )
    law = law_flag(category, cited_law)
    if law is not None:
        flags.append(law)
    return flags

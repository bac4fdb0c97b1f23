"""CyberTipline reports as NCMEC's Reporting API (ISPWS) takes them: the report and file
details documents, built from plain values, and the `reportResponse` every call answers with.

Pure: no network, no database. The documents follow the element order of NCMEC's published
schema (report: incidentSummary, internetDetails, reporter, personOrUserReported; fileDetails:
reportId, fileId, originalFileName, fileViewedByEsp, industryClassification, originalFileHash).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from app.core.errors import BadInput
from app.core.text import one_line
from data.domain import INDUSTRY_CLASSIFICATIONS

# The schema's incident types, by the short key the command line takes.
INCIDENT_TYPES: dict[str, str] = {
    "csam": "Child Pornography (possession, manufacture, and distribution)",
    "trafficking": "Child Sex Trafficking",
    "tourism": "Child Sex Tourism",
    "molestation": "Child Sexual Molestation",
    "misleading-domain": "Misleading Domain Name",
    "misleading-content": "Misleading Words or Digital Images on the Internet",
    "enticement": "Online Enticement of Children for Sexual Acts",
    "unsolicited": "Unsolicited Obscene Material Sent to a Child",
}
SEV1_ESCALATION = "Imminent risk to a child (severity 1 at the reporting desk)"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_FIELD = 500


# --- the report -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reporter:
    first_name: str
    last_name: str
    email: str


@dataclass(frozen=True, slots=True)
class ReportDraft:
    """What the specialist states about the incident; stored with the filing's claim so a
    retry files the same report."""

    incident_type: str  # a key of INCIDENT_TYPES
    incident_at: datetime
    screen_name: str = ""
    esp_identifier: str = ""
    reported_email: str = ""
    url: str = ""

    def as_json(self) -> dict[str, str]:
        return {
            "incident_type": self.incident_type,
            "incident_at": self.incident_at.astimezone(UTC).isoformat(),
            "screen_name": self.screen_name,
            "esp_identifier": self.esp_identifier,
            "reported_email": self.reported_email,
            "url": self.url,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ReportDraft:
        return cls(
            incident_type=value["incident_type"],
            incident_at=datetime.fromisoformat(value["incident_at"]),
            screen_name=value.get("screen_name", ""),
            esp_identifier=value.get("esp_identifier", ""),
            reported_email=value.get("reported_email", ""),
            url=value.get("url", ""),
        )


def check_draft(
    *,
    incident_type: str,
    incident_at: datetime,
    screen_name: str = "",
    esp_identifier: str = "",
    reported_email: str = "",
    url: str = "",
) -> ReportDraft:
    """A draft whose every field is what the Reporting API accepts; BadInput names the first
    field that is not."""
    key = (incident_type or "").strip().lower()
    if key not in INCIDENT_TYPES:
        raise BadInput(
            "incident_type", f"expected one of {', '.join(INCIDENT_TYPES)}, got {incident_type!r}"
        )
    names = {
        "screen_name": one_line("screen_name", screen_name, MAX_FIELD, required=False),
        "esp_identifier": one_line("esp_identifier", esp_identifier, MAX_FIELD, required=False),
        "reported_email": one_line("reported_email", reported_email, MAX_FIELD, required=False),
        "url": one_line("url", url, 2_000, required=False),
    }
    if not (names["screen_name"] or names["esp_identifier"] or names["reported_email"]):
        raise BadInput(
            "reported_user",
            "expected the reported user's screen name, account id or e-mail address",
        )
    if names["reported_email"] and not _EMAIL.match(names["reported_email"]):
        raise BadInput("reported_email", f"expected an e-mail address, got {reported_email!r}")
    if names["url"] and not names["url"].startswith(("http://", "https://")):
        raise BadInput("url", f"expected an http:// or https:// address, got {url!r}")
    return ReportDraft(key, incident_at.astimezone(UTC), **names)


@dataclass(frozen=True, slots=True)
class ReportFile:
    """One file of the report as its fileDetails document states it."""

    original_name: str
    md5: str
    sha256: str
    industry_classification: str
    viewed_by_esp: bool


def _child(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _document(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def report_xml(draft: ReportDraft, reporter: Reporter, *, escalate: bool) -> bytes:
    """The `report` document of a submit call."""
    report = ET.Element("report")
    summary = _child(report, "incidentSummary")
    _child(summary, "incidentType", INCIDENT_TYPES[draft.incident_type])
    if escalate:
        _child(summary, "escalateToHighPriority", SEV1_ESCALATION)
    _child(
        summary,
        "incidentDateTime",
        draft.incident_at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    )
    if draft.url:
        internet = _child(report, "internetDetails")
        _child(_child(internet, "webPageIncident"), "url", draft.url)
    person = _child(_child(report, "reporter"), "reportingPerson")
    _child(person, "firstName", reporter.first_name)
    _child(person, "lastName", reporter.last_name)
    _child(person, "email", reporter.email)
    reported = _child(report, "personOrUserReported")
    if draft.reported_email:
        _child(_child(reported, "personOrUserReportedPerson"), "email", draft.reported_email)
    if draft.esp_identifier:
        _child(reported, "espIdentifier", draft.esp_identifier)
    if draft.screen_name:
        _child(reported, "screenName", draft.screen_name)
    return _document(report)


def file_details_xml(report_id: str, file_id: str, file: ReportFile) -> bytes:
    """The `fileDetails` document that describes one uploaded file."""
    details = ET.Element("fileDetails")
    _child(details, "reportId", report_id)
    _child(details, "fileId", file_id)
    _child(details, "originalFileName", file.original_name)
    _child(details, "fileViewedByEsp", "true" if file.viewed_by_esp else "false")
    if file.industry_classification not in INDUSTRY_CLASSIFICATIONS:
        raise BadInput(
            "industry_classification",
            f"expected one of {', '.join(INDUSTRY_CLASSIFICATIONS)}, "
            f"got {file.industry_classification!r}",
        )
    _child(details, "industryClassification", file.industry_classification)
    _child(details, "originalFileHash", file.md5, hashType="MD5")
    _child(details, "originalFileHash", file.sha256, hashType="SHA256")
    return _document(details)


# --- the answer -------------------------------------------------------------


class Outcome(Enum):
    """What a response code means for the filer."""

    SUCCESS = "success"
    ALREADY_FINISHED = "already finished"  # finish or retract of a finished report: filed
    GONE = "gone"  # retract of a report that was retracted or never was: nothing open
    REJECTED = "rejected"  # the document failed validation: terminal until it is fixed
    ACCOUNT = "account"  # authentication or authorisation: the desk's account, not the report
    UNAVAILABLE = "unavailable"  # NCMEC's side failed: try again later


def outcome_of(code: int) -> Outcome:
    """The documented codes: 0 success; 1xxx server side; 2xxx authentication; 3xxx
    authorisation; 4xxx invalid or malformed submittals; 5001/5002 no such report or file;
    5101 already retracted; 5102 already finished."""
    if code == 0:
        return Outcome.SUCCESS
    if code == 5102:
        return Outcome.ALREADY_FINISHED
    if code in (5001, 5101):
        return Outcome.GONE
    if 4000 <= code < 5000 or code == 5002:
        return Outcome.REJECTED
    if 2000 <= code < 4000:
        return Outcome.ACCOUNT
    return Outcome.UNAVAILABLE


@dataclass(frozen=True, slots=True)
class ReportResponse:
    code: int
    description: str
    report_id: str = ""
    file_id: str = ""

    @property
    def outcome(self) -> Outcome:
        return outcome_of(self.code)


class MalformedResponse(ValueError):
    """An answer that is not a `reportResponse` document."""


def parse_response(body: bytes) -> ReportResponse:
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise MalformedResponse(f"not XML ({exc})") from None
    if root.tag != "reportResponse":
        raise MalformedResponse(f"expected a reportResponse document, got <{root.tag}>")
    code_text = (root.findtext("responseCode") or "").strip()
    if not code_text.lstrip("-").isdigit():
        raise MalformedResponse(f"responseCode is not a number: {code_text!r}")
    return ReportResponse(
        code=int(code_text),
        description=(root.findtext("responseDescription") or "").strip(),
        report_id=(root.findtext("reportId") or "").strip(),
        file_id=(root.findtext("fileId") or "").strip(),
    )

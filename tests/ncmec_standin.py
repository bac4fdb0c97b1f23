"""A stand-in for NCMEC's Reporting API test environment: a real HTTP server on 127.0.0.1
that speaks the documented protocol (status, submit, upload, fileinfo, finish, retract, each
answered with a `reportResponse`) and checks every document's structure the way the schema
orders it. Its switches stage the faults the filer must survive."""

from __future__ import annotations

import base64
import hashlib
import itertools
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs

from app.rules.tipline import INCIDENT_TYPES

REPORT_ORDER = (
    "incidentSummary",
    "internetDetails",
    "lawEnforcement",
    "reporter",
    "personOrUserReported",
    "intendedRecipient",
    "victim",
    "additionalInfo",
)
SUMMARY_ORDER = ("incidentType", "escalateToHighPriority", "reportAnnotations", "incidentDateTime")
FILE_DETAILS_ORDER = (
    "reportId",
    "fileId",
    "fileName",
    "originalFileName",
    "locationOfFile",
    "fileViewedByEsp",
    "exifViewedByEsp",
    "publiclyAvailable",
    "fileRelevance",
    "fileAnnotations",
    "industryClassification",
    "originalFileHash",
    "ipCaptureEvent",
    "deviceId",
    "details",
    "additionalInfo",
)


class Invalid(Exception):
    """A document that the schema would refuse (answered 4100)."""


@dataclass
class StoredFile:
    name: str
    md5: str
    details: dict[str, str] = field(default_factory=dict)


@dataclass
class StoredReport:
    id: str
    document: ET.Element
    state: str = "open"  # open, finished, retracted
    files: dict[str, StoredFile] = field(default_factory=dict)


def _in_order(element: ET.Element, order: tuple[str, ...], where: str) -> None:
    position = -1
    for child in element:
        if child.tag not in order:
            raise Invalid(f"{where}: unexpected element <{child.tag}>")
        index = order.index(child.tag)
        if index < position:
            raise Invalid(f"{where}: <{child.tag}> is out of order")
        position = index


def check_report(root: ET.Element) -> None:
    if root.tag != "report":
        raise Invalid(f"expected <report>, got <{root.tag}>")
    _in_order(root, REPORT_ORDER, "report")
    summary = root.find("incidentSummary")
    if summary is None:
        raise Invalid("report: incidentSummary is required")
    _in_order(summary, SUMMARY_ORDER, "incidentSummary")
    if summary.findtext("incidentType") not in INCIDENT_TYPES.values():
        raise Invalid(f"incidentType: {summary.findtext('incidentType')!r} is not a valid value")
    when = summary.findtext("incidentDateTime") or ""
    try:
        datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"incidentDateTime: {when!r} is not an ISO 8601 date and time") from None
    person = root.find("reporter/reportingPerson")
    if person is None or not (person.findtext("email") or "").strip():
        raise Invalid("reporter: reportingPerson with an email is required")


class StandIn(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, username: str = "desk", password: str = "s3cret-issued") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.username, self.password = username, password
        self.lock = threading.Lock()
        self.reports: dict[str, StoredReport] = {}
        self.calls: list[str] = []
        self._ids = itertools.count(9_000_001)
        # Fault switches.
        self.down_requests = 0  # answer this many requests with HTTP 503
        self.reject_submit = ""  # answer the next submit 4100 with this description
        self.drop: str | None = None  # do this call's work, then close without an answer
        self.stall: str | None = None  # block this call until `release` is set
        self.stalled = threading.Event()  # set when the stalled call arrives
        self.release = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/ispws"

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()

    def next_id(self) -> str:
        return str(next(self._ids))

    def submitted(self) -> list[StoredReport]:
        with self.lock:
            return list(self.reports.values())


def response(code: int, description: str, **extra: str) -> bytes:
    root = ET.Element("reportResponse")
    ET.SubElement(root, "responseCode").text = str(code)
    ET.SubElement(root, "responseDescription").text = description
    for tag, text in extra.items():
        ET.SubElement(root, tag).text = text
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


class _Handler(BaseHTTPRequestHandler):
    server: StandIn

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests read what arrived from the server's state."""

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self) -> bool:
        expected = f"{self.server.username}:{self.server.password}".encode()
        header = self.headers.get("Authorization", "")
        return header == "Basic " + base64.b64encode(expected).decode()

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        body = self._body() if self.command == "POST" else b""
        server = self.server
        with server.lock:
            server.calls.append(name)
            if server.down_requests > 0:
                server.down_requests -= 1
                self._send(503, b"Service Unavailable")
                return
        if not self._authorised():
            self._send(401, response(2000, "Authentication required"))
            return
        handler = getattr(self, f"_call_{name}", None)
        if handler is None or (name == "status") != (self.command == "GET"):
            self._send(404, response(1210, "Resource not found"))
            return
        try:
            status, answer = handler(body)
        except Invalid as exc:
            status, answer = 400, response(4100, f"Validation failed: {exc}")
        except ET.ParseError as exc:
            status, answer = 400, response(4110, f"Malformed XML submittal: {exc}")
        if server.stall == name:
            server.stalled.set()
            server.release.wait(60)
        if server.drop == name:
            server.drop = None
            self.close_connection = True  # NCMEC did the work; the answer is lost
            return
        self._send(status, answer)

    def _form(self, body: bytes) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(body.decode()).items()}

    def _report(self, report_id: str) -> StoredReport | None:
        return self.server.reports.get(report_id)

    # -- the calls ---------------------------------------------------------------

    def _call_status(self, _body: bytes) -> tuple[int, bytes]:
        who = f"Remote User : {self.server.username}, Remote Ip Address : {self.client_address[0]}"
        return 200, response(0, who)

    def _call_submit(self, body: bytes) -> tuple[int, bytes]:
        if not self.headers.get("Content-Type", "").startswith("text/xml"):
            raise Invalid("submit: expected Content-Type text/xml")
        root = ET.fromstring(body)
        server = self.server
        if server.reject_submit:
            reason, server.reject_submit = server.reject_submit, ""
            raise Invalid(reason)
        check_report(root)
        with server.lock:
            report = StoredReport(server.next_id(), root)
            server.reports[report.id] = report
        return 200, response(0, "Success", reportId=report.id)

    def _call_upload(self, body: bytes) -> tuple[int, bytes]:
        header = f"Content-Type: {self.headers.get('Content-Type', '')}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(header + body)
        if not message.is_multipart():
            raise Invalid("upload: expected multipart/form-data")
        parts = {
            part.get_param("name", header="content-disposition"): part
            for part in message.iter_parts()  # type: ignore[attr-defined]
        }
        if "id" not in parts or "file" not in parts:
            raise Invalid("upload: expected the fields id and file")
        report_id = parts["id"].get_content().strip()
        content = parts["file"].get_payload(decode=True)
        with self.server.lock:
            report = self._report(report_id)
            if report is None:
                return 404, response(5001, "Report does not exist")
            if report.state != "open":
                return 409, response(5102 if report.state == "finished" else 5101, report.state)
            file_id = hashlib.sha1(content + report_id.encode()).hexdigest()
            md5 = hashlib.md5(content).hexdigest()
            report.files[file_id] = StoredFile(parts["file"].get_filename() or "", md5)
        return 200, response(0, "Success", reportId=report_id, fileId=file_id, hash=md5)

    def _call_fileinfo(self, body: bytes) -> tuple[int, bytes]:
        root = ET.fromstring(body)
        if root.tag != "fileDetails":
            raise Invalid(f"expected <fileDetails>, got <{root.tag}>")
        _in_order(root, FILE_DETAILS_ORDER, "fileDetails")
        report_id, file_id = root.findtext("reportId") or "", root.findtext("fileId") or ""
        with self.server.lock:
            report = self._report(report_id)
            if report is None:
                return 404, response(5001, "Report does not exist")
            stored = report.files.get(file_id)
            if stored is None:
                return 404, response(5002, "File does not exist")
            viewed = root.findtext("fileViewedByEsp")
            if viewed not in ("true", "false"):
                raise Invalid(f"fileViewedByEsp: expected true or false, got {viewed!r}")
            grade = root.findtext("industryClassification")
            if grade not in ("A1", "A2", "B1", "B2"):
                raise Invalid(f"industryClassification: {grade!r} is not a valid value")
            hashes = {h.get("hashType"): (h.text or "") for h in root.findall("originalFileHash")}
            if hashes.get("MD5") != stored.md5:
                raise Invalid("originalFileHash MD5 does not match the uploaded file")
            stored.details = {
                "fileViewedByEsp": viewed,
                "industryClassification": grade,
                "originalFileName": root.findtext("originalFileName") or "",
                "SHA256": hashes.get("SHA256", ""),
            }
        return 200, response(0, "Success", reportId=report_id)

    def _call_finish(self, body: bytes) -> tuple[int, bytes]:
        report_id = self._form(body).get("id", "")
        with self.server.lock:
            report = self._report(report_id)
            if report is None:
                return 404, response(5001, "Report does not exist")
            if report.state == "finished":
                return 409, response(5102, "Report already finished")
            if report.state == "retracted":
                return 409, response(5101, "Report already retracted")
            report.state = "finished"
        return 200, response(0, "Success", reportId=report_id)

    def _call_retract(self, body: bytes) -> tuple[int, bytes]:
        report_id = self._form(body).get("id", "")
        with self.server.lock:
            report = self._report(report_id)
            if report is None:
                return 404, response(5001, "Report does not exist")
            if report.state == "finished":
                return 409, response(5102, "Report already finished")
            if report.state == "retracted":
                return 409, response(5101, "Report already retracted")
            report.state = "retracted"
        return 200, response(0, "Success", reportId=report_id)

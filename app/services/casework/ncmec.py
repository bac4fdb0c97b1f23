"""The Reporting API client: status, submit, upload, fileinfo, finish and retract over
HTTPS with the desk's NCMEC-issued account (basic authentication).

It defaults to NCMEC's documented test environment and refuses the production service
unless the desk's settings allow it. It never logs or repeats the password.
"""

from __future__ import annotations

from types import TracebackType
from urllib.parse import urlsplit

import httpx

from app.core.errors import NotAllowed, Refused
from app.rules.tipline import MalformedResponse, Outcome, ReportResponse, parse_response

TEST_URL = "https://exttest.cybertip.org/ispws"
PRODUCTION_URL = "https://report.cybertip.org/ispws"
PRODUCTION_HOST = urlsplit(PRODUCTION_URL).hostname
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
XML = {"Content-Type": "text/xml; charset=utf-8"}


class Unreachable(Exception):
    """NCMEC could not be reached or failed on its side: try again later."""


class ReportRejected(Refused):
    """NCMEC refused a document (a validation failure): terminal until it is fixed."""

    def __init__(self, response: ReportResponse) -> None:
        super().__init__(
            f"NCMEC refused the report ({response.code}): "
            f"{response.description or 'no description given'}"
        )
        self.response = response


class AccountRefused(Refused):
    """NCMEC did not accept the desk's account for this call."""

    def __init__(self, response: ReportResponse) -> None:
        super().__init__(
            f"NCMEC refused the desk's account ({response.code}): {response.description}; "
            "check the credentials with vigil tipline setup"
        )
        self.response = response


def is_production(url: str) -> bool:
    return urlsplit(url).hostname == PRODUCTION_HOST


class ReportingClient:
    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        production_allowed: bool = False,
        timeout: httpx.Timeout = TIMEOUT,
    ) -> None:
        if is_production(url) and not production_allowed:
            raise NotAllowed(
                "the desk's settings do not allow NCMEC's production service; a supervisor "
                "turns it on with vigil tipline setup --production once the desk has passed "
                "NCMEC's test environment"
            )
        self.base = url.rstrip("/")
        self._http = httpx.Client(auth=(username, password), timeout=timeout)

    def __enter__(self) -> ReportingClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._http.close()

    def _call(self, name: str, **request: object) -> ReportResponse:
        method = "GET" if name == "status" else "POST"
        try:
            answer = self._http.request(method, f"{self.base}/{name}", **request)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            raise Unreachable(f"{name}: {type(exc).__name__}: {exc}") from None
        if answer.status_code >= 500:
            raise Unreachable(f"{name}: HTTP {answer.status_code}")
        try:
            response = parse_response(answer.content)
        except MalformedResponse as exc:
            if answer.status_code in (401, 403):
                raise AccountRefused(ReportResponse(2000, f"HTTP {answer.status_code}")) from None
            raise Unreachable(f"{name}: HTTP {answer.status_code}, {exc}") from None
        if response.outcome == Outcome.UNAVAILABLE:
            raise Unreachable(f"{name}: {response.code} {response.description}")
        if response.outcome == Outcome.ACCOUNT:
            raise AccountRefused(response)
        return response

    @staticmethod
    def _expect(response: ReportResponse, *allowed: Outcome) -> ReportResponse:
        """The response if its outcome is success or one of `allowed`; otherwise NCMEC
        refused the document (a validation failure, or no such report or file)."""
        if response.outcome not in (Outcome.SUCCESS, *allowed):
            raise ReportRejected(response)
        return response

    def status(self) -> ReportResponse:
        return self._expect(self._call("status"))

    def submit(self, report: bytes) -> str:
        """Opens a report; returns NCMEC's report id."""
        response = self._expect(self._call("submit", content=report, headers=XML))
        if not response.report_id:
            raise Unreachable("submit: success without a report id")
        return response.report_id

    def upload(self, report_id: str, name: str, content: bytes) -> str:
        """Uploads one file to an open report; returns NCMEC's file id."""
        response = self._expect(
            self._call(
                "upload",
                data={"id": report_id},
                files={"file": (name, content, "application/octet-stream")},
            ),
        )
        if not response.file_id:
            raise Unreachable("upload: success without a file id")
        return response.file_id

    def file_info(self, details: bytes) -> None:
        self._expect(self._call("fileinfo", content=details, headers=XML))

    def finish(self, report_id: str) -> Outcome:
        """Finishes a report: SUCCESS, or ALREADY_FINISHED (filed all the same)."""
        response = self._call("finish", data={"id": report_id})
        return self._expect(response, Outcome.ALREADY_FINISHED).outcome

    def retract(self, report_id: str) -> Outcome:
        """Retracts an unfinished report: SUCCESS or GONE; ALREADY_FINISHED if it was filed."""
        response = self._call("retract", data={"id": report_id})
        return self._expect(response, Outcome.ALREADY_FINISHED, Outcome.GONE).outcome

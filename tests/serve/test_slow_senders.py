"""Senders that bring nothing, or bring it a byte at a time, cannot pile up connections
until no real sender gets in: a request's head and then its body each have a deadline
(`vigil serve --request-timeout`, 10 s by default; half a second here)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import json
import logging
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from app.cli.main import main
from app.core.clock import FakeClock
from app.serve.connections import (
    LATE,
    TOO_MANY,
    UNREAD,
    OutOfFiles,
    raise_open_file_limit,
)
from data.db import Database
from tests.factories import count_pages, wait_until
from tests.serve.harness import (
    Served,
    build_desk,
    free_port,
    pd_trigger,
    self_signed,
    serving,
    wait_serving,
)

DEADLINE = 0.5
GUARD = 10.0
"""Seconds a socket read waits before the test calls the connection held open for good."""
REPO = Path(__file__).parents[2]
HEAD = b"POST /v2/enqueue HTTP/1.1\r\nHost: vigil\r\nContent-Type: application/json\r\n"


@pytest.fixture
def quick(db: Database, clock: FakeClock) -> Iterator[Served]:
    keys = build_desk(db, clock)
    with serving(db, clock, keys, engine=False, request_within=DEADLINE) as running:
        yield running


@pytest.fixture
def quick_tls(db: Database, clock: FakeClock, tmp_path: Path) -> Iterator[Served]:
    keys = build_desk(db, clock)
    tls = self_signed(tmp_path)
    with serving(db, clock, keys, engine=False, request_within=DEADLINE, tls=tls) as running:
        yield running


def connect(served: Served) -> socket.socket:
    sock = socket.create_connection((served.server.host, served.server.port))
    sock.settimeout(GUARD)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; fails the test if it never does."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the connection was still open after {GUARD} s")
    except (ConnectionResetError, ssl.SSLError):  # cut without TLS's goodbye: as closed
        pass
    return received


def drip(sock: socket.socket, byte: bytes, stop: threading.Event) -> threading.Thread:
    """Send `byte` every fifth of the deadline until the connection breaks or `stop`."""

    def run() -> None:
        while not stop.wait(DEADLINE / 5):
            try:
                sock.sendall(byte)
            except OSError:
                return

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def cut_connections(served: Served, reason: str = LATE) -> float:
    value: float = served.server.desk.meter.connections_cut.labels(reason)._value.get()
    return value


def test_a_connection_that_sends_nothing_is_closed_at_the_deadline(quick: Served) -> None:
    with connect(quick) as sock:
        started = time.monotonic()
        assert read_until_closed(sock) == b""
        took = time.monotonic() - started
    assert DEADLINE * 0.9 <= took < DEADLINE + 3
    assert cut_connections(quick) == 1


def test_a_head_dripped_a_byte_at_a_time_is_cut_at_the_deadline(quick: Served) -> None:
    """Each byte would restart uvicorn's own wait; the deadline counts from the connection."""
    stop = threading.Event()
    with connect(quick) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /v2/enqueue HTTP/1.1\r\nX-Drip: ")
        dripping = drip(sock, b"a", stop)
        try:
            assert read_until_closed(sock) == b""
        finally:
            stop.set()
            dripping.join()
        took = time.monotonic() - started
    assert took < DEADLINE + 3
    assert cut_connections(quick) == 1


def test_a_body_dripped_a_byte_at_a_time_gets_408_naming_the_body(
    quick: Served, db: Database
) -> None:
    stop = threading.Event()
    with connect(quick) as sock:
        sock.sendall(HEAD + b"Content-Length: 500\r\n\r\n{")
        dripping = drip(sock, b" ", stop)
        try:
            answer = read_until_closed(sock)
        finally:
            stop.set()
            dripping.join()
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in status.lower()
    assert b"body: not all received within 0.5 s" in body
    assert count_pages(db) == 0
    assert cut_connections(quick) == 0  # its head was in time: answered, not cut


def test_after_an_answer_the_connection_has_the_deadline_again(quick: Served) -> None:
    """Kept alive for the next request, an idle connection is closed at the deadline
    (before uvicorn's own keep-alive limit of 5 s)."""
    request = httpx.Request("GET", f"{quick.url}/healthz")
    with connect(quick) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: vigil\r\n\r\n")
        answer = b""
        while not answer.endswith(b'{"status":"ok"}'):
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 "), request
        started = time.monotonic()
        assert read_until_closed(sock) == b""
        took = time.monotonic() - started
    assert took < DEADLINE + 3 < 5
    assert cut_connections(quick) == 1


def statuses(answer: bytes) -> list[bytes]:
    return re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)


def test_a_head_over_16_kb_is_refused(quick: Served, db: Database) -> None:
    """h11's own limit on a head still coming: headers streamed for the whole deadline
    would otherwise pile up in memory."""
    with connect(quick) as sock:
        sock.sendall(HEAD)
        with contextlib.suppress(OSError):  # the server may close while this still sends
            for _ in range(100):
                sock.sendall(b"X-Filler: " + b"a" * 1000 + b"\r\n")
        answer = read_until_closed(sock)
    assert statuses(answer) == [b"400"]
    assert count_pages(db) == 0
    assert cut_connections(quick) == 0


def test_a_body_far_larger_than_a_head_sent_with_its_head_is_taken(quick: Served) -> None:
    """The head's limit is the head's: a body in the same read as its head is taken."""
    body = json.dumps(pd_trigger(quick.keys["pd"])).encode() + b" " * 900_000  # still JSON
    with connect(quick) as sock:
        sock.sendall(
            HEAD + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
        )
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 202 "), answer[:300]


def test_nothing_more_is_read_while_a_request_is_being_answered(quick: Served) -> None:
    """A sender that pipelines requests and never reads their answers, then streams one
    more head: once the answers fill its socket, nothing more is read, so memory is not at
    the sender's mercy (uvicorn's httptools protocol, tried instead of h11, read on: 2.5 GB
    in 5 s)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # it reads nothing
        sock.connect((quick.server.host, quick.server.port))
        sock.settimeout(2.0)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: vigil\r\n\r\n" * 2000 + HEAD)
        line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        sent = 0
        with contextlib.suppress(TimeoutError, ConnectionResetError, BrokenPipeError):
            while sent < 256_000_000:
                sock.sendall(line * 100)
                sent += len(line) * 100
    assert sent < 32_000_000, f"{sent:,} bytes of one head were read"


def test_a_sender_that_never_reads_its_answers_is_cut_at_the_deadline(quick: Served) -> None:
    """Pipelined requests whose answers are never read: once the answers back up, the
    connection has the deadline to take them, then it is cut (it is no longer read from,
    and would hold its file and its request for good). The answers back up after some
    thousands of them have filled the sockets' buffers: on a busy machine that takes a
    while, so the wait is long, but without the deadline the connection is never cut."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # it reads nothing
        sock.connect((quick.server.host, quick.server.port))
        sock.settimeout(DEADLINE)
        with contextlib.suppress(TimeoutError):  # once it is no longer read from
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: vigil\r\n\r\n" * 6000)
        wait_until(
            lambda: cut_connections(quick, UNREAD) == 1,
            "the connection whose answers go unread to be cut",
            timedelta(seconds=90),
        )
        sock.settimeout(GUARD)
        answers = read_until_closed(sock)
    assert answers.startswith(b"HTTP/1.1 200 ")  # the first answers were sent
    assert cut_connections(quick, LATE) == 0


def test_the_rest_of_a_body_answered_early_is_not_taken_for_the_next_head(
    quick: Served,
) -> None:
    """A wrong key is answered before the body is in; the body then still comes, and the
    next request on the connection is answered as usual."""
    size = 300_000
    with connect(quick) as sock:
        sock.sendall(
            b"POST /integrations/alertmanager/prod HTTP/1.1\r\nHost: vigil\r\n"
            b"Authorization: Bearer wrong\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {size}\r\n\r\n".encode()
        )
        body = b"[" + b" " * (size - 2) + b"]"
        sock.sendall(body[:10_000])
        early = b""
        while b"}" not in early:  # the 401's JSON, before the rest of the body is sent
            early += sock.recv(65536)
        for start in range(10_000, size, 10_000):  # an ordinary upload, 10 KB a write
            sock.sendall(body[start : start + 10_000])
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: vigil\r\nConnection: close\r\n\r\n")
        answer = early + read_until_closed(sock)
    assert statuses(answer) == [b"401", b"200"]


def test_a_malformed_request_after_a_good_one_is_refused_after_its_answer(
    quick: Served, db: Database
) -> None:
    """Both in one write: the alert is stored and its 202 sent, then the 400 (the 400 alone
    would have the sender send again an alert that was stored)."""
    body = json.dumps(pd_trigger(quick.keys["pd"])).encode()
    with connect(quick) as sock:
        sock.sendall(
            HEAD + f"Content-Length: {len(body)}\r\n\r\n".encode() + body + b"NOT HTTP\r\n\r\n"
        )
        answer = read_until_closed(sock)
    assert statuses(answer) == [b"202", b"400"]
    assert count_pages(db) == 1


def test_an_alert_offering_an_upgrade_to_http2_is_taken(quick: Served, db: Database) -> None:
    """`curl --http2` to an http:// address offers `Upgrade: h2c` on its POST: the offer is
    ignored and the alert taken (uvicorn's httptools protocol skipped such a body: a 400,
    and the alert lost)."""
    body = json.dumps(pd_trigger(quick.keys["pd"])).encode()
    with connect(quick) as sock:
        sock.sendall(
            HEAD
            + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            + b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        answer = read_until_closed(sock)
    assert statuses(answer) == [b"202"]
    assert count_pages(db) == 1


def test_a_malformed_chunked_body_is_refused_at_once(quick: Served, db: Database) -> None:
    """A 400 now, not a 408 once the body's deadline has passed (as under uvicorn's
    httptools protocol, which held the 400 back while the request waited for its body)."""
    with connect(quick) as sock:
        started = time.monotonic()
        sock.sendall(HEAD + b"Transfer-Encoding: chunked\r\n\r\nZZZ\r\n")
        answer = read_until_closed(sock)
        took = time.monotonic() - started
    assert statuses(answer) == [b"400"]
    assert took < DEADLINE
    assert count_pages(db) == 0


def test_a_sender_hanging_up_mid_body_is_logged_as_gone_without_a_traceback(
    quick: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with connect(quick) as sock:
        sock.sendall(HEAD + b"Content-Length: 500\r\n\r\n{")
    wait_until(
        lambda: any(" 499 " in record.getMessage() for record in caplog.records),
        "the access line of the request whose sender hung up",
        timedelta(seconds=GUARD),
    )
    line = next(r.getMessage() for r in caplog.records if " 499 " in r.getMessage())
    assert line.startswith("POST /v2/enqueue 499 ")
    assert "hung up before its body was in" in line
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_over_tls_a_connection_that_never_says_hello_is_closed_at_the_deadline(
    quick_tls: Served,
) -> None:
    """asyncio gives a TLS handshake 60 s of its own, during which a connection is neither
    counted nor on the deadline: here the handshake has the head's deadline."""
    with connect(quick_tls) as sock:
        started = time.monotonic()
        assert read_until_closed(sock) == b""
        took = time.monotonic() - started
    assert took < DEADLINE + 3


def test_over_tls_a_connection_cut_lets_go_of_its_file_at_once(quick_tls: Served) -> None:
    """Cut without TLS's goodbye: closing politely would hold the connection, and its file,
    for up to 30 s more, waiting for a goodbye from a sender that says nothing."""
    context = ssl.create_default_context(
        cafile=quick_tls.server.tls[0] if quick_tls.server.tls else None
    )
    server = quick_tls.server._server
    assert server is not None
    # The sender says nothing after its hello, and does not read the goodbye either.
    with context.wrap_socket(connect(quick_tls), server_hostname="127.0.0.1"):
        wait_until(lambda: cut_connections(quick_tls) == 1, "the cut", timedelta(seconds=GUARD))
        wait_until(
            lambda: not server.server_state.connections,
            "the cut connection to be let go of",
            timedelta(seconds=3),
        )


def test_request_timeout_is_a_bounded_duration(sqlite_url: str, clock: FakeClock) -> None:
    db = Database.open(sqlite_url)
    build_desk(db, clock)
    db.dispose()
    given: dict[str, object] = {}

    def server(*_args: object, **options: object) -> int:
        given.update(options)
        return 0

    def serve(*argv: str) -> tuple[int, str]:
        err = io.StringIO()
        argv = ("--db", sqlite_url, "--as", "intake", "serve", *argv)
        code = main(list(argv), clock=clock, out=io.StringIO(), err=err, server=server)
        return code, err.getvalue()

    assert serve("--request-timeout", "30s") == (0, "")
    assert given["request_within"] == 30.0
    assert serve() == (0, "")
    assert given["request_within"] == 10.0
    for wrong in ("0s", "6m", "soon"):
        code, said = serve("--request-timeout", wrong)
        assert code == 2
        assert said.startswith("vigil serve: --request-timeout: expected a ")


def sending_until_answered(url: str, event: dict[str, object]) -> httpx.Response:
    """POST `event` as a sender does: a connection turned away is tried again shortly."""
    deadline = time.monotonic() + GUARD
    pause = threading.Event()
    while True:
        try:
            return httpx.post(f"{url}/v2/enqueue", json=event, timeout=GUARD)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            pause.wait(0.1)


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
def test_idle_connections_do_not_keep_a_sender_out_under_a_low_open_file_limit(
    sqlite_url: str, clock: FakeClock
) -> None:
    """300 connections that bring nothing, against a process that may open 256 files: those
    beyond 64 are closed at once, the rest at the deadline, the database always has files
    to open, and a real alert gets its 202 (it waited for good before, or failed with 500
    when the database could not open a file)."""
    db = Database.open(sqlite_url)
    keys = build_desk(db, clock)
    port = free_port()
    child = subprocess.Popen(
        [
            "prlimit",
            "--nofile=256:256",
            sys.executable,
            "-m",
            "app.main",
            "--db",
            sqlite_url,
            "serve",
            "--port",
            str(port),
            "--no-engine",
            "--request-timeout",
            "1s",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "VIGIL_USER": "intake"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    idle: list[socket.socket] = []
    url = f"http://127.0.0.1:{port}"
    try:
        wait_serving(url, child)
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
        started = time.monotonic()
        answer = sending_until_answered(url, pd_trigger(keys["pd"]))
        took = time.monotonic() - started
        assert answer.status_code == 202, answer.text
        assert count_pages(db) == 1
        scraped = httpx.get(f"{url}/metrics", timeout=GUARD).text
        cut = {
            reason: float(line.rsplit(" ", 1)[1])
            for line in scraped.splitlines()
            for reason in (LATE, TOO_MANY)
            if line.startswith(f'vigil_http_connections_cut_total{{reason="{reason}"}}')
        }
        # Cut at once beyond 64 open, and at the deadline (which made room for more).
        assert cut[TOO_MANY] >= 100
        assert cut[LATE] >= 1
    finally:
        for sock in idle:
            sock.close()
        child.send_signal(signal.SIGTERM)
        _, log = child.communicate(timeout=30)
        db.dispose()
    assert took < GUARD  # the idle ones had a deadline of 1 s
    assert "up to 64 connections at once" in log
    assert "Traceback" not in log, log


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    script = "from app.serve.connections import raise_open_file_limit as r; print(r())"
    done = subprocess.run(
        ["prlimit", "--nofile=256:4096", sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "4096"
    assert raise_open_file_limit() is not None


def test_running_out_of_open_files_is_one_line_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    handler = OutOfFiles(logging.getLogger("vigil.serve"), monotonic=lambda: now[0])
    loop = asyncio.new_event_loop()
    refused = {
        "message": "socket.accept() out of system resource",
        "exception": OSError(errno.EMFILE, "Too many open files"),
    }
    try:
        with caplog.at_level(logging.INFO):
            for moment in (0.0, 1.0, 59.0, 60.0, 61.0):
                now[0] = moment
                handler(loop, refused)
            handler(loop, {"message": "something else", "exception": ValueError("other")})
    finally:
        loop.close()
    said = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    line = "out of open files: new connections wait until some close (Too many open files)"
    assert said[:2] == [("vigil.serve", "WARNING", line)] * 2  # at 0 s and at 60 s
    assert said[2][:2] == ("asyncio", "ERROR")  # anything else: asyncio's own report
    assert len(said) == 3

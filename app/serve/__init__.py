"""`vigil serve`: the HTTP service. Alerts arrive the way senders send them (PagerDuty
Events API v2, Alertmanager, Grafana, our own events), and the desk can be watched like
any service (`/healthz`, `/readyz`, `/metrics`). Starlette on uvicorn; the escalation
engine runs in-process unless told not to.

The command line reaches this wing only through `app.main`, which hands it a server runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import threading
from asyncio import constants as asyncio_constants
from collections.abc import Iterator
from datetime import UTC

import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler
from uvicorn.server import HANDLED_SIGNALS

from app.core.clock import Clock
from app.core.logs import stderr_log
from app.engine.runner import CycleResult, EngineRunner, EscalationEngine
from app.serve.app import Desk, make_app
from app.serve.connections import (
    BACKLOG,
    REQUEST_WITHIN,
    OutOfFiles,
    deadline_protocol,
    listening_socket,
    most_connections,
    open_file_limit,
    raise_open_file_limit,
)
from app.services.unit_of_work import UnitOfWork
from data.db import Database
from data.wal import BackgroundCheckpoints

log = logging.getLogger("vigil.serve")


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, its event loop telling of a shortage of open files in a line, and
    a TLS handshake given no longer than a request's head (asyncio's own allows 60 s, in
    which a connection is neither counted nor cut: `app.serve.connections`)."""

    def __init__(self, config: uvicorn.Config, handshake_within: float) -> None:
        super().__init__(config)
        self.handshake_within = handshake_within

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(OutOfFiles(log))
        if self.config.is_ssl:  # read by each TLS connection as it is accepted
            asyncio_constants.SSL_HANDSHAKE_TIMEOUT = self.handshake_within
        await super().serve(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """As uvicorn's, but the signal is not raised again once the server has stopped:
        that killed the process before `Server.run` stopped the engine and wrote the last
        log lines. `vigil serve` then exits 0, as `vigil engine` does."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        before = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)


class Server:
    """One `vigil serve`: its app, its engine (unless `engine=False`) and uvicorn.

    `run()` blocks until SIGINT or SIGTERM (uvicorn finishes the requests under way, then the
    engine stops); `start()` runs it in a thread and returns once it listens (tests, bench).
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        actor: str,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        engine: bool = True,
        name: str | None = None,
        tls: tuple[str, str] | None = None,
        request_within: float = REQUEST_WITHIN,
    ) -> None:
        """`tls` is (certificate file, key file) in PEM: serve HTTPS, as PagerDuty's own
        client insists on; without it, put a TLS-terminating proxy in front.
        `request_within`: seconds a sender has for a request's head, and again for its body
        (`app.serve.connections`)."""
        UnitOfWork(db, clock).require_actor(actor)  # refused now, not at the first alert
        self.db = db
        self.host = host
        self.port = port
        self.tls = tls
        self.name = name or f"serve@{socket.gethostname()}:{port}"
        self.engine = EscalationEngine(db, clock, name=self.name)
        self.runner: EngineRunner | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.checkpoints = BackgroundCheckpoints(db, clock)
        if engine:
            self.scheduler = BackgroundScheduler(timezone=UTC)
            self.runner = EngineRunner(self.engine, self.scheduler, on_cycle=self._cycled)
        self.desk = Desk(
            db,
            clock,
            actor,
            escalation=self.engine.page_within,
            after_paging=self.runner.paged_elsewhere if self.runner else None,
            engine_name=self.name if engine else None,
            request_within=request_within,
        )
        self.app = make_app(self.desk)
        self._server: _Uvicorn | None = None
        self._thread: threading.Thread | None = None

    def _cycled(self, _result: CycleResult) -> None:
        self.desk.meter.count_pages()

    def _cut(self, reason: str) -> None:
        self.desk.meter.connections_cut.labels(reason).inc()

    def _config(self) -> uvicorn.Config:
        most = most_connections(open_file_limit())
        return uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            access_log=False,  # ours says what happened, without bodies or keys
            log_config=None,
            lifespan="off",
            backlog=BACKLOG,
            http=deadline_protocol(self.desk.request_within, most, self._cut),
            timeout_graceful_shutdown=10,
            server_header=False,
            ssl_certfile=self.tls[0] if self.tls else None,
            ssl_keyfile=self.tls[1] if self.tls else None,
        )

    def _start_engine(self) -> None:
        """The engine, and the WAL's checkpoints on a thread of their own (`data.wal`)."""
        self.checkpoints.start()
        self.desk.meter.count_pages()
        if self.runner is not None and self.scheduler is not None:
            self.scheduler.start()
            self.runner.start()

    def _stop_engine(self) -> None:
        """After the last request: intake's writer, then the engine."""
        self.desk.intake.close()
        if self.runner is not None and self.scheduler is not None:
            self.runner.stop()
            self.scheduler.shutdown(wait=True)
        self.checkpoints.stop()

    def run(self) -> int:
        # Bound first: a wrong --host or a taken --port is said before anything starts.
        with listening_socket(self.host, self.port) as sock:
            open_files = raise_open_file_limit()
            self._start_engine()
            log.info(
                "vigil serve on %s against %s (%s; %s; a request's head and its body have "
                "%g s each)",
                self.url,
                self.db.display_name,
                "engine in-process" if self.runner else "no engine",
                "no limit on connections"
                if open_files is None
                else f"up to {most_connections(open_files):,} connections at once",
                self.desk.request_within,
            )
            # What start-up made lives as long as the process: out of the cyclic collector's
            # way, whose full collections walked it all (53-71 ms each, twice in a storm of
            # 3,000 alerts, every request in flight held up meanwhile).
            gc.collect()
            gc.freeze()
            try:
                server = _Uvicorn(self._config(), self.desk.request_within)
                server.run(sockets=[sock])
            finally:
                self._stop_engine()
        return 0 if server.started else 1

    def start(self, timeout: float = 10.0) -> None:
        """Serve from a thread; returns once listening."""
        self._start_engine()
        self._server = _Uvicorn(self._config(), self.desk.request_within)
        self._thread = threading.Thread(target=self._server.run, name=f"vigil-serve:{self.port}")
        self._thread.start()
        waited = threading.Event()
        for _ in range(int(timeout / 0.01)):
            if self._server.started or not self._thread.is_alive():
                break
            waited.wait(0.01)
        if not self._server.started:
            self.stop()
            raise RuntimeError(f"vigil serve did not start on {self.host}:{self.port}")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(15)
        self._stop_engine()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"


def run_server(
    db: Database,
    clock: Clock,
    actor: str,
    *,
    host: str,
    port: int,
    engine: bool,
    tls: tuple[str, str] | None = None,
    request_within: float = REQUEST_WITHIN,
) -> int:
    """`vigil serve`: serve until SIGINT or SIGTERM."""
    with stderr_log():
        server = Server(
            db,
            clock,
            actor,
            host=host,
            port=port,
            engine=engine,
            tls=tls,
            request_within=request_within,
        )
        return server.run()

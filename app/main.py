"""The `vigil` entry point: the command line, with the console it opens and the HTTP
service it runs handed in.

The faces never import each other; this module, above them, joins them.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

from app.core.clock import Clock

if TYPE_CHECKING:
    from data.db import Database


def open_console(db: Database, clock: Clock, handle: str, *, engine: bool) -> int:
    from app.console import run_console

    return run_console(db, clock, handle, engine=engine)


def run_server(
    db: Database,
    clock: Clock,
    handle: str,
    *,
    host: str,
    port: int,
    engine: bool,
    tls: tuple[str, str] | None = None,
    request_within: float,
) -> int:
    from app.serve import run_server as serve

    return serve(
        db,
        clock,
        handle,
        host=host,
        port=port,
        engine=engine,
        tls=tls,
        request_within=request_within,
    )


def main() -> int:
    """`vigil`. Before the process ends, every object still alive is frozen out of the
    cyclic collector: Python's last collection at exit would otherwise walk each one (the
    ORM's modules, the desk's tables, about 40 ms of a short command) to free nothing that
    ending the process does not free anyway."""
    from app.cli.main import main as run_command

    try:
        return run_command(console=open_console, server=run_server)
    finally:
        gc.freeze()


if __name__ == "__main__":
    raise SystemExit(main())

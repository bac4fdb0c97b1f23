"""The `vigil` entry point: the command line, with the console it opens handed in.

The two faces never import each other; this module, above both, joins them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.core.clock import Clock

if TYPE_CHECKING:
    from data.db import Database


def open_console(db: Database, clock: Clock, handle: str, *, engine: bool) -> int:
    from app.console import run_console

    return run_console(db, clock, handle, engine=engine)


def main() -> int:
    from app.cli.main import main as run_command

    return run_command(console=open_console)


if __name__ == "__main__":
    raise SystemExit(main())

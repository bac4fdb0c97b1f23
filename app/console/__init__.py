"""The console: the full-screen desk a specialist keeps open all shift."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from sqlalchemy.exc import SQLAlchemyError

from app.console.app import VigilApp, binding_ids
from app.console.desk import load_profile, load_theme_choice, read_first_window
from app.console.settings import load_settings
from app.core.clock import Clock
from app.delivery.local import DesktopNotifier, PlyerDesktop
from data.db import Database

EXIT_OK, EXIT_REFUSED = 0, 1

__all__ = ["VigilApp", "build_app", "run_console"]


def build_app(
    db: Database,
    clock: Clock,
    handle: str,
    *,
    engine: bool = True,
    desktop: DesktopNotifier | None = None,
    settings_file: Path | None = None,
    cursor_blink: bool = True,
) -> VigilApp | None:
    """The console of `handle`, with their saved theme and keymap; None if `handle` is
    not an active responder. Reads the database, so call it before the event loop runs."""
    profile = load_profile(db, handle)
    if profile is None:
        return None
    return VigilApp(
        db,
        clock,
        profile,
        first_read=read_first_window(db, profile, clock.now()),
        desktop=desktop or PlyerDesktop(),
        engine=engine,
        settings=load_settings(binding_ids(), settings_file),
        theme=load_theme_choice(db, profile.handle),
        cursor_blink=cursor_blink,
    )


def run_console(
    db: Database, clock: Clock, handle: str, engine: bool = True, *, err: TextIO | None = None
) -> int:
    """Open the console as `handle` until they quit; the exit code for the command line.

    Refuses (exit 1, a message on stderr) when `handle` is not an active responder or the
    database cannot be read.
    """
    err = err or sys.stderr
    try:
        app = build_app(db, clock, handle, engine=engine)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        err.write(f"vigil: cannot read the database {db.display_name}: {reason}\n")
        return EXIT_REFUSED
    if app is None:
        err.write(
            f"vigil: {handle!r} is not an active responder of this desk; "
            "open the console as one with --as HANDLE or VIGIL_USER\n"
        )
        return EXIT_REFUSED
    app.run()
    return app.return_code if app.return_code is not None else EXIT_OK

"""The desk itself: `vigil` (the console), `vigil demo` and `vigil engine`."""

from __future__ import annotations

import argparse
import os

from app.cli.framework import EXIT_OK, Commands, Context, UsageError
from app.core.logs import stderr_log


def cmd_engine(ctx: Context) -> int:
    from app.engine.runner import run_headless

    with stderr_log():
        return run_headless(ctx.db, ctx.clock, once=ctx.args.once)


def cmd_demo(ctx: Context) -> int:
    from app.demo.build import build_demo

    summary = build_demo(ctx.db, now=ctx.clock.now(), reset=ctx.args.reset)
    ctx.err.write(summary + "\n")
    if ctx.args.no_console:
        return EXIT_OK
    return open_console(ctx, as_handle=ctx.args.actor or os.environ.get("VIGIL_USER") or "ana")


def cmd_console(ctx: Context) -> int:
    return open_console(ctx, as_handle=ctx.actor)


def open_console(ctx: Context, *, as_handle: str) -> int:
    """The console comes from the entry point (`app.main`): this face does not import it."""
    if ctx.open_console is None:
        raise UsageError("vigil: the console is not available here; use `vigil cases`")
    return ctx.open_console(
        ctx.db, ctx.clock, as_handle, engine=not getattr(ctx.args, "no_engine", False)
    )


def register(commands: Commands) -> None:
    p = commands.add("demo", cmd_demo, checks_its_own_actor=True)
    p.add_argument("--reset", action="store_true", help="wipe the database first")
    p.add_argument("--no-console", action="store_true", help="do not open the console afterwards")
    p.add_argument("--no-engine", action="store_true", help=argparse.SUPPRESS)

    p = commands.add("engine", cmd_engine, checks_its_own_actor=True)
    p.add_argument("--once", action="store_true", help="process what is due, then exit")

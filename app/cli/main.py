"""The `vigil` command line. Exit codes (contract): 0 done, 1 refused, 2 bad input or usage.

Only the command asked for is built and imported: the table below names each top-level
command, its one-line help and the module that adds it, so `vigil --help` lists them all
with argparse alone, and `vigil ack` never imports the calendar, the console or Alembic.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import TextIO, cast

from app.cli.framework import (
    EXIT_REFUSED,
    EXIT_USAGE,
    CliParser,
    Commands,
    ConsoleOpener,
    Context,
    Handler,
    ServerRunner,
    UsageError,
)
from app.core.clock import Clock, SystemClock
from app.core.errors import BadInput, Refused
from app.core.text import VisibleWriter
from data.errors import BadSetting, DatabaseError, SchemaOutOfDate

# name: (module that adds it, one-line help); in the order `vigil --help` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("desk", "fill the database with a realistic demo desk, then open the console"),
    "team": ("admin", "declare or export the team"),
    "page": ("cases", "open a case and start escalation; prints its reference"),
    "intake": (
        "intake",
        "take events as a JSON array or JSON lines, printing each result as it commits",
    ),
    "ack": ("cases", "acknowledge a case"),
    "resolve": ("cases", "resolve a case"),
    "reassign": ("cases", "reassign a case (supervisors, or your own case)"),
    "note": ("cases", "add a note to a case"),
    "stage": ("cases", "set a case's work stage"),
    "escalate": ("cases", "page the next step now"),
    "snooze": ("cases", "put a case away until a time; it pages again then"),
    "reopen": ("cases", "reopen a case resolved in the last 24 hours"),
    "merge": ("cases", "close a case as a duplicate of another"),
    "show": ("cases", "show one case"),
    "cases": ("cases", "list cases (open ones by default)"),
    "engine": ("desk", "run the escalation loop without a screen"),
    "audit": ("admin", "the audit chain"),
    "db": ("admin", "database maintenance"),
    "verify": ("casework", "record a verification step of an emergency data request"),
    "disclosure": ("casework", "disclosure decisions"),
    "clock": ("casework", "legal clocks"),
    "contain": ("casework", "mark a containment step of a case done"),
    "partner": ("casework", "the partner directory"),
    "action": ("casework", "action items"),
    "casework": ("casework", "a case's casework and the desk's casework settings"),
    "report": ("casework", "reports"),
    "agency": ("agency", "the agency directory's verified channels; request origins; call-backs"),
    "tipline": ("tipline", "CyberTipline reports filed with NCMEC's Reporting API"),
    "evidence": ("tipline", "evidence files of CSEA cases (views are audited)"),
    "handover": ("shift", "the shift handover report (your last shift, or --since ISO to now)"),
    "postmortem": ("shift", "post-mortems of cases"),
    "template": ("shift", "response templates"),
    "stats": ("shift", "MTTA, MTTR, SLA attainment, pages per responder"),
    "oncall": ("calendar", "who is on call (now by default), per schedule"),
    "override": (
        "calendar",
        "place a supervisor's override (or: override list | override remove ID)",
    ),
    "calendar": ("calendar", "on-call calendar: iCalendar export, gaps, settings"),
    "swap": ("calendar", "shift swaps: offer part of your shift, take, approve"),
    "serve": ("serve", "the HTTP service: alerts from senders, health and metrics"),
    "integration": ("serve", "integrations that send alerts: make a key"),
    "changes": ("serve", "change notes senders recorded (deploys, configuration changes)"),
}

# Options of the top level that take a value: the word after them is not a command.
_VALUED_OPTIONS = ("--db", "--as")


def _check_decodable(argv: Sequence[str]) -> None:
    """Bytes that are not UTF-8 reach Python as lone surrogates, which nothing can store."""
    for position, arg in enumerate(argv, 1):
        if any("\ud800" <= ch <= "\udfff" for ch in arg):
            raise UsageError(f"vigil: argument {position} is not valid UTF-8 text")


def command_named(argv: Sequence[str]) -> str | None:
    """The command word of `argv`, if it names one; None for the console or `--help`."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in _VALUED_OPTIONS:
            skip = True
        elif word == "--":
            return None
        elif not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def _common_options() -> argparse.ArgumentParser:
    common = CliParser(add_help=False)
    common.add_argument(
        "--db",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="database URL (else VIGIL_DB, else the SQLite file under XDG_DATA_HOME)",
    )
    common.add_argument(
        "--as",
        dest="actor",
        metavar="HANDLE",
        default=argparse.SUPPRESS,
        help="act as this responder (else VIGIL_USER, else the login name)",
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="machine-readable JSON on stdout",
    )
    return common


def build_parser(only: str | None = None, *, every: bool = True) -> argparse.ArgumentParser:
    """The parser; with `every=False` only the module of command `only` is imported and
    every other command is a name with its help (enough for `vigil --help`)."""
    from app.cli.desk import cmd_console

    common = _common_options()
    parser = CliParser(
        prog="vigil",
        parents=[common],
        description="Vigil: the on-call console of an escalation-response desk.",
    )
    parser.add_argument(
        "--no-engine",
        action="store_true",
        help="open the console without the in-process escalation loop",
    )
    parser.set_defaults(handler=cmd_console, checks_its_own_actor=True)
    commands = Commands(
        parser.add_subparsers(dest="command", parser_class=CliParser, metavar="COMMAND"),
        common,
        help_of={name: text for name, (_module, text) in COMMANDS.items()},
    )
    wanted = {module for module, _text in COMMANDS.values()} if every else set()
    if only is not None:
        wanted.add(COMMANDS[only][0])
    built: set[str] = set()
    for name, (module, text) in COMMANDS.items():
        if name in built:
            continue
        if module in wanted:
            before = set(commands.subparsers.choices)
            importlib.import_module(f"app.cli.{module}").register(commands)
            built |= set(commands.subparsers.choices) - before
            wanted.discard(module)
        else:
            commands.subparsers.add_parser(name, help=text, add_help=False)
            built.add(name)
    return parser


def _database_trouble(exc: BaseException) -> str | None:
    """A sentence for a database that is locked, unreachable or gone mid-command."""
    from data.errors import describe_trouble, is_disk_full

    sa_exc = sys.modules.get("sqlalchemy.exc")
    known = sa_exc is not None and isinstance(
        exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError
    )
    if not known and not (isinstance(exc, OSError) and is_disk_full(exc)):
        return None
    if is_disk_full(exc):
        return f"vigil: {describe_trouble(exc)}; nothing was changed: free some space, then retry"
    return f"vigil: {describe_trouble(exc)}; try again in a moment"


def main(
    argv: Sequence[str] | None = None,
    *,
    clock: Clock | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    console: ConsoleOpener | None = None,
    server: ServerRunner | None = None,
) -> int:
    """Run one command; `console` opens the full-screen console and `server` runs
    `vigil serve` (see `app.main`)."""
    # Everything printed passes one check: stored text cannot reach the terminal raw.
    out = cast(TextIO, VisibleWriter(out or sys.stdout))
    err = cast(TextIO, VisibleWriter(err or sys.stderr))
    try:
        words = sys.argv[1:] if argv is None else argv
        _check_decodable(words)
        args = build_parser(command_named(words), every=False).parse_args(words)
        for name, default in (("db", None), ("actor", None), ("json", False)):
            if not hasattr(args, name):
                setattr(args, name, default)
        ctx = Context(
            args=args,
            clock=clock or SystemClock(),
            out=out,
            err=err,
            open_console=console,
            run_server=server,
        )
        try:
            handler: Handler = args.handler
            if not args.checks_its_own_actor:
                ctx.require_responder()
            return handler(ctx)
        finally:
            if ctx._db is not None:
                ctx._db.dispose()
    except UsageError as exc:
        err.write(f"{exc}\n(see `vigil --help`)\n")
        return EXIT_USAGE
    except BadInput as exc:
        err.write(f"vigil: {exc}\n")
        return EXIT_USAGE
    except Refused as exc:
        err.write(f"vigil: {exc}\n")
        return EXIT_REFUSED
    except SchemaOutOfDate as exc:
        err.write(f"vigil: {exc}\n")
        return EXIT_REFUSED
    except DatabaseError as exc:
        err.write(f"vigil: {exc}\n")
        bad_input = isinstance(exc, BadSetting) or str(exc).startswith("--db")
        return EXIT_USAGE if bad_input else EXIT_REFUSED
    except KeyboardInterrupt:
        err.write("vigil: interrupted\n")
        return 130
    except Exception as exc:
        # Locked, unreachable or gone mid-command: the transaction was rolled back.
        trouble = _database_trouble(exc)
        if trouble is None:
            raise
        err.write(trouble + "\n")
        return EXIT_REFUSED


if __name__ == "__main__":
    raise SystemExit(main())

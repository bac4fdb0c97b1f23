"""The command line's small framework: the parser, the context a command runs in, and how
commands are added. Imports nothing heavy: `vigil --help` must start at once, and each
command imports only what it uses (`app.cli.main` builds only the command asked for).
"""

from __future__ import annotations

import argparse
import getpass
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TextIO

from app.cli.render import json_output, text_output
from app.core.clock import Clock
from app.core.errors import NotAllowed, VigilError

if TYPE_CHECKING:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from sqlmodel import Session

    from app.engine.cycle import EscalationEngine
    from app.services.cases import CaseService
    from data.db import Database

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


class UsageError(VigilError):
    exit_code = EXIT_USAGE


class CliParser(argparse.ArgumentParser):
    """argparse, but a usage error raises instead of exiting, so every exit goes one way."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


class ConsoleOpener(Protocol):
    """Opens the full-screen console; handed in by the entry point, which knows both faces."""

    def __call__(self, db: Database, clock: Clock, handle: str, *, engine: bool) -> int: ...


class ServerRunner(Protocol):
    """Runs `vigil serve` until stopped; handed in by the entry point like the console."""

    def __call__(
        self,
        db: Database,
        clock: Clock,
        handle: str,
        *,
        host: str,
        port: int,
        engine: bool,
        tls: tuple[str, str] | None = None,
        request_within: float,
    ) -> int: ...


@dataclass
class Context:
    args: argparse.Namespace
    clock: Clock
    out: TextIO
    err: TextIO
    open_console: ConsoleOpener | None = None
    run_server: ServerRunner | None = None
    _db: Database | None = field(default=None, repr=False)
    _engine: EscalationEngine | None = field(default=None, repr=False)
    _actor: str | None = field(default=None, repr=False)

    @property
    def actor(self) -> str:
        """The responder this command acts as (`app.services.identity`: on PostgreSQL, the
        database login's own, and `--as` naming anyone else is refused)."""
        if self._actor is None:
            from app.services.identity import acting_handle

            named: str | None = self.args.actor or os.environ.get("VIGIL_USER")
            self._actor = acting_handle(self.db, named, getpass.getuser())
        return self._actor

    def require_responder(self) -> None:
        """Refuse a command whose actor is not an active responder of this desk, before it
        reads or changes anything: a name typed after `--as` is not a pass to the desk."""
        from sqlmodel import select

        from data.models import Responder

        handle = self.actor
        with self.db.read() as session:
            named = select(Responder.active).where(Responder.handle == handle)
            active = session.exec(named).first()
            empty = active is None and session.exec(select(Responder.id).limit(1)).first() is None
        if active:
            return
        if empty:
            raise NotAllowed(
                f"{handle!r} is not a responder of this desk: the desk has no responders yet; "
                "make the team with `vigil team apply FILE.toml` (or `vigil demo`), "
                "then name one with --as HANDLE or VIGIL_USER"
            )
        why = "is not a responder" if active is None else "is no longer an active responder"
        raise NotAllowed(
            f"{handle!r} {why} of this desk, so it may not read or change it; "
            "name an active responder with --as HANDLE or VIGIL_USER"
        )

    @property
    def db(self) -> Database:
        if self._db is None:
            from data.db import Database, refuse_memory

            refuse_memory(self.args.db)
            self._db = Database.open(self.args.db)
            if self._db.is_postgres and (self.args.actor or os.environ.get("VIGIL_USER")):
                _ = self.actor  # a name that is not the login's is refused, for reads too
        return self._db

    def viewer_zone(self) -> ZoneInfo:
        """The zone the actor reads times in: their responder's, else UTC."""
        from app.services.presenters import viewer_zone_of

        with self.db.read() as session:
            return viewer_zone_of(session, self.actor)

    @property
    def cases(self) -> CaseService:
        """The case service; what a command opens or escalates pages in the same
        transaction, so a case opened from the command line never waits for an engine
        (made when a change first pages: `vigil ack` and `vigil note` never import it)."""
        from app.services.cases import CaseService

        return CaseService(self.db, self.clock, escalation=self._page_within)

    def _page_within(
        self, session: Session, now: datetime, case_ids: Sequence[int]
    ) -> Mapping[int, Sequence[str]]:
        return self.escalation.page_within(session, now, case_ids)

    @property
    def escalation(self) -> EscalationEngine:
        """One engine for the command's whole run (its name is in every claim it makes)."""
        if self._engine is None:
            from app.engine.cycle import EscalationEngine, engine_name

            self._engine = EscalationEngine(
                self.db, self.clock, name=engine_name(f"cli:{self.actor}")
            )
        return self._engine

    @property
    def as_json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def emit(self, payload: Any, text: str) -> None:
        """The command's answer: `payload` as JSON with `--json`, else `text`."""
        self.out.write(json_output(payload) if self.as_json else text_output(text))


Handler = Callable[[Context], int]


@dataclass
class Commands:
    """Where commands are added: the top level, or a group such as `team` or `audit`.

    At the top level the one-line help of each command comes from the command table in
    `app.cli.main`, so `vigil --help` can list every command without importing any.
    """

    subparsers: Any
    common: argparse.ArgumentParser
    prefix: str = "vigil"
    help_of: Mapping[str, str] = field(default_factory=dict)

    def add(
        self,
        name: str,
        handler: Handler,
        help_text: str | None = None,
        *,
        checks_its_own_actor: bool = False,
    ) -> argparse.ArgumentParser:
        """Add a command. Every command runs for an active responder of the desk, checked
        before it starts, except those that check their actor themselves
        (`checks_its_own_actor`: the console, `team apply`'s first file) or act as no one
        (the demo, the engine, `db upgrade`)."""
        text = help_text if help_text is not None else self.help_of[name]
        parser: argparse.ArgumentParser = self.subparsers.add_parser(
            name, parents=[self.common], help=text, description=text
        )
        parser.set_defaults(handler=handler, checks_its_own_actor=checks_its_own_actor)
        return parser

    def group(self, name: str, help_text: str | None = None) -> Commands:
        """A command that only holds actions (`vigil team apply`, `vigil team export`)."""
        prog = f"{self.prefix} {name}"

        def missing(_ctx: Context) -> int:
            actions = " | ".join(sorted(nested.subparsers.choices))
            raise UsageError(f"{prog}: expected an action: {actions}")

        parser = self.add(name, missing, help_text, checks_its_own_actor=True)
        nested = Commands(
            parser.add_subparsers(dest=f"{name}_action", parser_class=CliParser, metavar="ACTION"),
            self.common,
            prog,
        )
        return nested

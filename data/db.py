"""The one engine factory: SQLite by default (WAL, foreign keys, busy timeout, mode 0600),
PostgreSQL by URL. Nothing here is fixed at import time, so every test gets its own database."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool
from sqlmodel import Session, SQLModel

from data.errors import DatabaseError, SchemaOutOfDate
from data.keys import Keyring
from data.schema import ensure_schema, every_table, table_names
from data.sealing import bind_keyring, guard_key_creation

SQLITE_BUSY_TIMEOUT_MS = 15_000


def default_url() -> str:
    """`VIGIL_DB`, else a SQLite file `vigil/vigil.db` under `$XDG_DATA_HOME` (~/.local/share)."""
    env = os.environ.get("VIGIL_DB")
    if env:
        return env
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite:///{Path(base) / 'vigil' / 'vigil.db'}"


def normalise_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def held_in_memory(url: URL) -> bool:
    """Whether a SQLite URL names a database held in memory: gone with its last
    connection, and on a pool of threads one database for each thread."""
    if url.get_backend_name() != "sqlite":
        return False
    name = url.database or ""
    return (
        name in ("", ":memory:")
        or name.startswith("file::memory:")
        or (url.query.get("mode") == "memory")
    )


def refuse_memory(url: str | None) -> None:
    """A command's --db may not be held in memory: what it stored would be gone when it
    ends (and the console's threads would each see a database of their own)."""
    url = url or default_url()
    try:
        parsed = make_url(normalise_url(url))
    except (ArgumentError, ValueError):
        return  # make_engine says what is wrong with it
    if held_in_memory(parsed):
        raise DatabaseError(
            f"--db: {_without_password(url)!r} is a SQLite database held in memory, gone "
            "when the command ends; give a file, such as sqlite:///path/vigil.db"
        )


def _without_password(url: str) -> str:
    """A URL as it may be shown: `user:***@host` instead of the password."""
    return re.sub(r"([^/:@]+):[^/@]*@", r"\1:***@", url)


def held_for_transaction(session: Session, name: str) -> dict[Any, Any]:
    """A dict kept in `session.info` under `name` for as long as the session's current
    transaction lasts (a new transaction, or none begun yet, starts an empty one): what a
    transaction reads once and then trusts, such as the audit chain's locked head or the
    policies it routed to."""
    transaction = session.get_transaction()
    held = session.info.get(name)
    if held is not None and transaction is not None and held[0] is transaction:
        kept: dict[Any, Any] = held[1]
        return kept
    kept = {}
    if transaction is not None:
        session.info[name] = (transaction, kept)
    return kept


def _prepare_sqlite_file(database: str) -> None:
    """Create the file and its folder up front so it is born readable by the owner only."""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    path = Path(database)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        elif stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o600)
    except OSError as exc:
        raise DatabaseError(
            f"--db: cannot create the SQLite file {database}: {exc.strerror or exc}"
        ) from exc


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" hook below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the lock at BEGIN, so a wait for it happens here instead of an
        # immediate "database is locked" when a read transaction tries to upgrade.
        if connection.get_execution_options().get("vigil_write", False):
            _begin_writing(connection)
        else:
            connection.exec_driver_sql("BEGIN")


WRITE_LOCK_POLL_S = 0.001
"""How often a writer waiting for SQLite's one write lock tries again.

SQLite's own busy handler sleeps longer and longer between tries, up to 100 ms. A process
that takes the lock back within microseconds of each commit (`vigil serve` in a storm of
alerts) then wins nearly every time, and another process's write (a console's
acknowledgement) waited seconds; trying every millisecond, it gets in within tens of them
(`bench/bench_serve.py` measures it)."""


def _begin_writing(connection: Any) -> None:
    """BEGIN IMMEDIATE, tried every `WRITE_LOCK_POLL_S` until the busy timeout has passed.

    The tries go straight to the driver; the last one, once the time is up, goes through
    SQLAlchemy, so its "database is locked" is wrapped as every other database error."""
    import sqlite3  # the driver has imported it by now; a PostgreSQL desk never needs it

    raw = connection.connection.dbapi_connection
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    raw.execute("PRAGMA busy_timeout = 0")
    try:
        while time.monotonic() < deadline:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                    break  # not the lock: said by the last try
            time.sleep(WRITE_LOCK_POLL_S)
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        with contextlib.suppress(sqlite3.Error):  # a connection gone says so by itself
            raw.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")


def make_engine(url: str | None = None, *, pool: bool = True) -> Engine:
    raw = normalise_url(url or default_url())
    try:
        parsed = make_url(raw)
    except (ArgumentError, ValueError) as exc:
        raise DatabaseError(
            f"--db: expected a database URL such as sqlite:///path/vigil.db or "
            f"postgresql://user@host/db, got {_without_password(raw)!r}"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        _prepare_sqlite_file(parsed.database or "")
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            poolclass=None if pool else NullPool,
        )
        _install_sqlite_hooks(engine)
        return engine
    if backend == "postgresql":
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if not pool:
            kwargs["poolclass"] = NullPool
        return create_engine(parsed, **kwargs)
    raise DatabaseError(f"--db: expected a sqlite:// or postgresql:// URL, got {backend!r}")


class Database:
    """Owns the engine and the sealing keys; hands out read and write sessions.

    A write session takes the database's writer lock at once (SQLite `BEGIN IMMEDIATE`),
    commits on success and rolls back on any error, so nothing is ever half-written.
    Every session carries the keyring that seals and opens sealed columns (`data.sealing`):
    the application's, else the one of `VIGIL_SECRET_KEY` or the key file (`data.keys`),
    whose key file is made only while the database holds nothing sealed.
    """

    def __init__(self, engine: Engine, keyring: Keyring | None = None) -> None:
        self.engine = engine
        self.keyring = guard_key_creation(
            keyring or Keyring.from_environment(), engine.connect, every_table
        )
        self._writer = engine.execution_options(vigil_write=True)

    @classmethod
    def open(
        cls, url: str | None = None, *, migrate: bool = True, keyring: Keyring | None = None
    ) -> Database:
        db = cls(make_engine(url), keyring)
        ensure_schema(db.engine, create=migrate)
        return db

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @property
    def display_name(self) -> str:
        url = self.engine.url
        if url.get_backend_name() == "sqlite":
            return f"sqlite:{url.database}"
        return url.render_as_string(hide_password=True)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            bind_keyring(session, self.keyring)
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        with Session(self._writer, expire_on_commit=False) as session:
            bind_keyring(session, self.keyring)
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()


__all__ = [
    "Database",
    "DatabaseError",
    "SQLModel",
    "SchemaOutOfDate",
    "default_url",
    "make_engine",
    "table_names",
]

"""Schema management: a new database is created at the newest revision; an older one is
refused with a message pointing at `vigil db upgrade`."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, MetaData, inspect, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlmodel import SQLModel

from data.errors import DatabaseError, SchemaOutOfDate

if TYPE_CHECKING:
    from alembic.config import Config

    from data.keys import Keyring

MIGRATIONS = Path(__file__).parent / "migrations"
TABLE_MODULES = (
    "data.models",
    "data.oncall",
    "data.escalation",
    "data.agency",
    "data.casework",
    "data.intake",
    "data.shiftwork",
    "data.swaps",
    "data.tipline",
)
"""The modules that declare Vigil's tables."""
_REVISION = re.compile(r"^(down_)?revision\s*=\s*['\"]?([^'\"\s]*)['\"]?\s*$", re.MULTILINE)


def every_table() -> MetaData:
    """`SQLModel.metadata` with every table of Vigil on it. Each module that declares tables
    registers them when it is imported, and a command imports only the ones it uses, so
    whatever walks the whole schema (creating a database, migrating, looking for sealed
    values, granting, wiping) asks for it here. The partial indexes, whose
    dialect options import each dialect they name, join the metadata here too."""
    for module in TABLE_MODULES:
        import_module(module)
    from data.models import declare_partial_indexes

    declare_partial_indexes()
    return SQLModel.metadata


def table_names(engine: Engine) -> set[str]:
    try:
        return set(inspect(engine).get_table_names())
    except OperationalError as exc:
        raise DatabaseError(f"cannot open the database: {exc.orig}") from exc


def alembic_config(engine: Engine, keyring: Keyring | None = None) -> Config:
    """Alembic's configuration; migrations that seal use `keyring` (else the environment's,
    which makes a key file only while the database holds nothing sealed)."""
    from alembic import op
    from alembic.config import Config

    from data.keys import Keyring
    from data.sealing import guard_key_creation

    def migrating() -> AbstractContextManager[Connection]:
        return nullcontext(op.get_bind())

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    config.attributes["keyring"] = (
        keyring
        if keyring is not None
        else guard_key_creation(Keyring.from_environment(), migrating, every_table)
    )
    return config


@cache
def head_revision() -> str:
    """The newest migration, read from the migration files' `revision` lines (Alembic is
    imported only to migrate: every command checks the revision, few migrate)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        for down, value in _REVISION.findall(script.read_text(encoding="utf-8")):
            if value and value != "None":
                (parents if down else revisions).add(value)
    heads = revisions - parents
    assert len(heads) == 1, f"expected one head migration, found {sorted(heads)}"
    return heads.pop()


def current_revision(engine: Engine) -> str | None:
    """The database's revision (None before any), read as Alembic keeps it."""
    if "alembic_version" not in table_names(engine):
        return None
    return _stamp(engine)


def _stamp(engine: Engine) -> str | None:
    """The revision stamped in `alembic_version`, in one query; None when it cannot be read
    that way (no such table, no database yet), which `ensure_schema` then looks into."""
    try:
        with engine.connect() as connection:
            row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
    except (OperationalError, ProgrammingError):
        return None
    return str(row[0]) if row is not None else None


def ensure_schema(engine: Engine, *, create: bool = True) -> None:
    """Create a new database at head; refuse one that is behind (or ahead of) this Vigil."""
    if _stamp(engine) == head_revision():
        return  # every command on a desk at head: one query, no catalogue read
    existing = table_names(engine) - {"alembic_version"}
    if not existing:
        if not create:
            raise DatabaseError("the database is empty: run any vigil command to create it")
        try:
            every_table().create_all(engine)
        except ProgrammingError as exc:
            if engine.dialect.name != "postgresql":
                raise
            # PostgreSQL hides the tables of a schema a login may not use: say what it means.
            raise DatabaseError(
                f"login {engine.url.username!r} sees no Vigil tables here and may not create "
                "them: it is in none of the desk's groups (a team file's `db_login` and "
                "`vigil team apply` put a responder's login in theirs)"
            ) from exc
        from alembic import command

        command.stamp(alembic_config(engine), "head")
        return
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise DatabaseError(
            "this database has tables but no Vigil schema version; it was not made by Vigil"
        )
    if not _known_revision(current):
        raise SchemaOutOfDate(
            f"the database schema ({current}) is newer than this Vigil knows; upgrade Vigil"
        )
    raise SchemaOutOfDate(
        f"the database schema is at revision {current}, this Vigil needs {head}: "
        "run `vigil db upgrade` (back the database up first)"
    )


def _known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    try:
        return ScriptDirectory(str(MIGRATIONS)).get_revision(revision) is not None
    except CommandError:
        return False


def upgrade(engine: Engine, keyring: Keyring | None = None) -> tuple[str | None, str]:
    """Apply pending migrations; returns (from, to)."""
    before = current_revision(engine) if table_names(engine) else None
    if not (table_names(engine) - {"alembic_version"}):
        ensure_schema(engine)
    else:
        from alembic import command

        command.upgrade(alembic_config(engine, keyring), "head")
    return before, head_revision()

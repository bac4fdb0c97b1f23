"""Schema management: a new database is created at the newest revision; an older one is
refused with a message pointing at `vigil db upgrade`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine
from sqlmodel import SQLModel

from data.db import DatabaseError, SchemaOutOfDate, table_names

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None, "no migrations found"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def ensure_schema(engine: Engine, *, create: bool = True) -> None:
    """Create a new database at head; refuse one that is behind (or ahead of) this Vigil."""
    existing = table_names(engine) - {"alembic_version"}
    if not existing:
        if not create:
            raise DatabaseError("the database is empty: run any vigil command to create it")
        SQLModel.metadata.create_all(engine)
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
    try:
        return ScriptDirectory(str(MIGRATIONS)).get_revision(revision) is not None
    except CommandError:
        return False


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Apply pending migrations; returns (from, to)."""
    before = current_revision(engine) if table_names(engine) else None
    if not (table_names(engine) - {"alembic_version"}):
        ensure_schema(engine)
    else:
        command.upgrade(alembic_config(engine), "head")
    return before, head_revision()

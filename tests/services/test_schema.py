"""Schema management: new databases at head, old ones refused, migrations match the models."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from data.db import Database, DatabaseError, SchemaOutOfDate, make_engine
from data.schema import alembic_config, current_revision, ensure_schema, every_table, head_revision


def test_new_sqlite_database_is_created_private_and_at_head(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "vigil.db"
    db = Database.open(f"sqlite:///{path}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert current_revision(db.engine) == head_revision()
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    db.dispose()


def test_default_location_follows_xdg_data_home(tmp_path: Path) -> None:
    db = Database.open()
    expected = Path(os.environ["XDG_DATA_HOME"]) / "vigil" / "vigil.db"
    assert expected.exists()
    db.dispose()


def test_migrations_build_exactly_the_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    command.upgrade(alembic_config(engine), "head")
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), every_table())
    assert diff == [], f"models and migrations differ: {diff}"
    engine.dispose()


def test_migrations_build_exactly_the_models_on_postgresql(pg_url: str) -> None:
    engine = make_engine(pg_url)
    command.upgrade(alembic_config(engine), "head")
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), every_table())
    assert diff == [], f"models and migrations differ: {diff}"
    engine.dispose()


def test_an_older_schema_points_at_db_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    Database.open(url).dispose()
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(SchemaOutOfDate, match="newer than this Vigil"):
        ensure_schema(engine)
    engine.dispose()


def test_a_foreign_database_is_refused(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE something (x INTEGER)"))
    with pytest.raises(DatabaseError, match="not made by Vigil"):
        ensure_schema(engine)
    engine.dispose()


def test_bad_database_url_names_the_option() -> None:
    with pytest.raises(DatabaseError, match="--db"):
        make_engine("mysql://nobody@nowhere/db")


def test_the_head_read_from_the_migration_files_is_alembics() -> None:
    from alembic.script import ScriptDirectory

    from data.schema import MIGRATIONS

    assert head_revision() == ScriptDirectory(str(MIGRATIONS)).get_current_head()


def test_the_revision_is_read_as_alembic_keeps_it(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'v.db'}")
    assert current_revision(engine) is None  # no table yet
    command.upgrade(alembic_config(engine), "0001")
    assert current_revision(engine) == "0001"
    with engine.connect() as connection:
        assert (
            current_revision(engine)
            == MigrationContext.configure(connection).get_current_revision()
        )
    engine.dispose()

"""The one place that picks a dialect's own INSERT (for ON CONFLICT), imported only when used.

Importing `sqlalchemy.dialects.postgresql` loads the whole dialect package, every driver's
module with it: tens of milliseconds that a command on SQLite should never pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite


def upsert_insert(dialect: str, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `table` that can take `on_conflict_do_nothing` / `_do_update`, written
    for `dialect` ("postgresql" or "sqlite", as `Dialect.name` says)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)

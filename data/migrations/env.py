"""Alembic environment: runs against the engine Vigil hands it, never a URL of its own."""

from __future__ import annotations

from alembic import context

from data.schema import every_table

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=every_table(),
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()

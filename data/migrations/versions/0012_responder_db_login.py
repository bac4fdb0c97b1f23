"""responders map to database logins: responder.db_login

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "responder", sa.Column("db_login", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
    )
    op.create_index("ix_responder_db_login", "responder", ["db_login"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_responder_db_login", table_name="responder")
    # Not in batch mode: SQLite would copy the table, and other tables' keys point at it.
    op.drop_column("responder", "db_login")

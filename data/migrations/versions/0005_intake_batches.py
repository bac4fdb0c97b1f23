"""intake batches: each input of `vigil intake` and what each of its events stored

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import data.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString
_UTC = data.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "input_batch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", _TEXT(), nullable=False),
        sa.Column("format", _TEXT(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("started_at", _UTC(timezone=True), nullable=False),
        sa.Column("finished_at", _UTC(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_input_batch_digest", "input_batch", ["digest"], unique=False)
    op.create_table(
        "input_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("outcome", _TEXT(), nullable=False),
        sa.Column("ref", _TEXT(), nullable=True),
        sa.Column("paged", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["input_batch.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("batch_id", "number"),
    )


def downgrade() -> None:
    op.drop_table("input_event")
    op.drop_index("ix_input_batch_digest", table_name="input_batch")
    op.drop_table("input_batch")

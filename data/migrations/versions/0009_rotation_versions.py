"""rotation versions: a change deals from the next hand-off, the past stays as dealt

Revision ID: 0009
Revises: 0008

Every existing rotation becomes its own first version (`since` null, `turn_offset` 0),
which deals exactly as before.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from data.types import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("rotation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("since", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("turn_offset", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_table(
        "rotation_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rotation_id", sa.Integer(), nullable=False),
        sa.Column("since", UTCDateTime(timezone=True), nullable=True),
        sa.Column("turn_offset", sa.Integer(), nullable=False),
        sa.Column("timezone", _TEXT(), nullable=False),
        sa.Column("shift", _TEXT(), nullable=False),
        sa.Column("handoff", _TEXT(), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("days", _TEXT(), nullable=True),
        sa.Column("hours", _TEXT(), nullable=True),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["rotation_id"], ["rotation.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rotation_version_rotation_id", "rotation_version", ["rotation_id"])


def downgrade() -> None:
    op.drop_index("ix_rotation_version_rotation_id", table_name="rotation_version")
    op.drop_table("rotation_version")
    with op.batch_alter_table("rotation", schema=None) as batch_op:
        batch_op.drop_column("turn_offset")
        batch_op.drop_column("since")

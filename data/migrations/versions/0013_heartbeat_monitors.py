"""heartbeat monitors: an integration's interval, grace and last beat

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import data.types

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_UTC = data.types.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("integration") as table:
        table.add_column(sa.Column("interval_seconds", sa.Integer(), nullable=True))
        table.add_column(sa.Column("grace_seconds", sa.Integer(), nullable=True))
        table.add_column(sa.Column("watched_since", _UTC(timezone=True), nullable=True))
        table.add_column(sa.Column("last_beat_at", _UTC(timezone=True), nullable=True))
        table.add_column(sa.Column("down_since", _UTC(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("integration") as table:
        for name in ("down_since", "last_beat_at", "watched_since", "grace_seconds", "interval_seconds"):
            table.drop_column(name)

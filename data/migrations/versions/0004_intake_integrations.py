"""intake over HTTP: integrations, case links, change notes

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import data.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString
_UTC = data.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "integration",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", _TEXT(), nullable=False),
        sa.Column("format", _TEXT(), nullable=False),
        sa.Column("category", _TEXT(), nullable=True),
        sa.Column("severity", sa.Integer(), nullable=True),
        sa.Column("policy", _TEXT(), nullable=True),
        sa.Column("rate_limit", sa.Integer(), nullable=False),
        sa.Column("key_hash", _TEXT(), nullable=True),
        sa.Column("key_set_at", _UTC(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_index("ix_integration_name", "integration", ["name"], unique=True)
    op.create_table(
        "case_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("href", _TEXT(), nullable=False),
        sa.Column("text", _TEXT(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["case.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "position"),
    )
    op.create_table(
        "change_note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_at", _UTC(timezone=True), nullable=False),
        sa.Column("happened_at", _UTC(timezone=True), nullable=True),
        sa.Column("integration", _TEXT(), nullable=False),
        sa.Column("summary", _TEXT(), nullable=False),
        sa.Column("source", _TEXT(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("links", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_change_note_received_at", "change_note", ["received_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_change_note_received_at", table_name="change_note")
    op.drop_table("change_note")
    op.drop_table("case_link")
    op.drop_index("ix_integration_name", table_name="integration")
    op.drop_table("integration")

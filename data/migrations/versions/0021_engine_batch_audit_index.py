"""engine batch audit index: a case's audit log finds the engine's batch records that list it

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

NAME = "ix_audit_record_engine_batch"
BATCH = "case_ref IS NULL AND action = 'engine.escalate'"


def upgrade() -> None:
    op.create_index(
        NAME,
        "audit_record",
        ["seq"],
        sqlite_where=sa.text(BATCH),
        postgresql_where=sa.text(BATCH),
    )


def downgrade() -> None:
    op.drop_index(NAME, table_name="audit_record")

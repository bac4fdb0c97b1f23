"""open queue indexes: the open queue by age or by severity seeks past no resolved case

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

OPEN = "queue_rank < 2"
INDEXES = {
    "ix_case_open_by_age": ["created_at", "id"],
    "ix_case_open_by_severity": ["severity", "queue_rank", "created_at", "id"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(
            name,
            "case",
            columns,
            sqlite_where=sa.text(OPEN),
            postgresql_where=sa.text(OPEN),
        )


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="case")

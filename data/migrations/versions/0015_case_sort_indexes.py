"""case sort indexes: the queue ordered by severity, by age or by status seeks an index

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_case_by_severity": ["severity", "queue_rank", "created_at", "id"],
    "ix_case_by_age": ["created_at", "id", "queue_rank"],
    "ix_case_by_status": ["queue_rank", "created_at", "id"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "case", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="case")

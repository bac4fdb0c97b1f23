"""schedule support hours: low-urgency pages through a schedule wait for them

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("schedule") as table:
        table.add_column(sa.Column("support_hours", sa.String(), nullable=True))
        table.add_column(sa.Column("support_days", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("schedule") as table:
        table.drop_column("support_days")
        table.drop_column("support_hours")

"""case snooze: until when an acknowledged case is out of the queue, and why

Revision ID: 0008
Revises: 0007

A snoozed case is acknowledged with `next_escalation_at` at the snooze's end, so the engine
re-triggers it then; `snoozed_until` keeps it out of the open queue until that moment
(its queue rank is `SNOOZED_RANK`) and `snooze_reason` says why. Both are cleared when the
snooze ends or the case moves on (resolved, reassigned, escalated).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from data.types import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("snoozed_until", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column(
                "snooze_reason",
                sqlmodel.sql.sqltypes.AutoString(),
                nullable=False,
                server_default="",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("case", schema=None) as batch_op:
        batch_op.drop_column("snooze_reason")
        batch_op.drop_column("snoozed_until")

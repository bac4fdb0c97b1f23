"""webhook contacts: what the team file allows them, and whether their receiver is gone

Revision ID: 0003
Revises: 0002

`allow_insecure` (a plain http:// URL or a short secret) and `allow_private` (a private,
loopback or link-local destination) are off for every existing contact: a contact that
needs them is refused until the team file allows it. `gone_at` records a receiver's
410 Gone, after which the contact receives no more pages.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from data.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contact_method", schema=None) as batch_op:
        for name in ("allow_insecure", "allow_private"):
            batch_op.add_column(
                sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false())
            )
        batch_op.add_column(sa.Column("gone_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contact_method", schema=None) as batch_op:
        for name in ("gone_at", "allow_private", "allow_insecure"):
            batch_op.drop_column(name)

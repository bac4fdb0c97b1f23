"""channels: Apprise contacts, notification rules, urgency and quiet hours, action links

Revision ID: 0006
Revises: 0005

A contact may have a `name` (what notification rules call it); a responder `quiet_hours`
and `notify` rules; a policy the severities it pages at high urgency. The outbox's
partial indexes cover Apprise rows beside webhook ones, and held rows (a rule's delay,
quiet hours) get their own. `used_link` keeps each followed action link, so none acts twice.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import data.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString
OLD_PENDING = "channel = 'webhook' AND status = 'pending'"
OUTBOX_PENDING = "channel IN ('webhook', 'apprise') AND status = 'pending'"
OUTBOX_HELD = "channel IN ('webhook', 'apprise') AND status = 'held'"
PENDING_INDEXES = (
    ("ix_delivery_webhook_due", ["next_attempt_at", "id"]),
    ("ix_delivery_webhook_contact", ["contact_id", "id"]),
)


def _pending_indexes(where: str) -> None:
    for name, columns in PENDING_INDEXES:
        op.drop_index(name, table_name="delivery")
        op.create_index(
            name,
            "delivery",
            columns,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def upgrade() -> None:
    with op.batch_alter_table("contact_method", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", _TEXT(), nullable=True))
    with op.batch_alter_table("responder", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quiet_hours", _TEXT(), nullable=True))
        batch_op.add_column(
            sa.Column("notify", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
    with op.batch_alter_table("policy", schema=None) as batch_op:
        batch_op.add_column(sa.Column("high_urgency", _TEXT(), nullable=True))
    _pending_indexes(OUTBOX_PENDING)
    op.create_index(
        "ix_delivery_outbox_held",
        "delivery",
        ["next_attempt_at"],
        sqlite_where=sa.text(OUTBOX_HELD),
        postgresql_where=sa.text(OUTBOX_HELD),
    )
    op.create_table(
        "used_link",
        sa.Column("signature", _TEXT(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("used_at", data.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["delivery.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("signature"),
    )


def downgrade() -> None:
    op.drop_table("used_link")
    op.drop_index("ix_delivery_outbox_held", table_name="delivery")
    _pending_indexes(OLD_PENDING)
    with op.batch_alter_table("policy", schema=None) as batch_op:
        batch_op.drop_column("high_urgency")
    with op.batch_alter_table("responder", schema=None) as batch_op:
        batch_op.drop_column("notify")
        batch_op.drop_column("quiet_hours")
    with op.batch_alter_table("contact_method", schema=None) as batch_op:
        batch_op.drop_column("name")

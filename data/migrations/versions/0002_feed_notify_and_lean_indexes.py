"""case changes notify consoles; webhook outbox indexes; no redundant case_id indexes

Revision ID: 0002
Revises: 0001

PostgreSQL: a statement trigger on case_change notifies `vigil_case_change` (payload:
the schema), so consoles hear of changes at once instead of at their next poll.
Both: the webhook outbox gets partial indexes of its own pending rows; the case_id
indexes of step_run, page and case_change go (the unique constraints of step_run and
page lead with case_id; nothing reads case_change by case), which makes every page
written cheaper.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

WEBHOOK_PENDING = "channel = 'webhook' AND status = 'pending'"

ANNOUNCE_FUNCTION = """
CREATE OR REPLACE FUNCTION vigil_announce_case_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vigil_case_change', current_schema());
    RETURN NULL;
END
$$
"""
ANNOUNCE_TRIGGER = """
CREATE TRIGGER case_change_announce AFTER INSERT ON case_change
FOR EACH STATEMENT EXECUTE FUNCTION vigil_announce_case_change()
"""


def upgrade() -> None:
    for table in ("step_run", "page", "case_change"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_case_id")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        for name, columns in (
            ("ix_delivery_webhook_due", ["next_attempt_at", "id"]),
            ("ix_delivery_webhook_contact", ["contact_id", "id"]),
        ):
            batch_op.create_index(
                name,
                columns,
                unique=False,
                sqlite_where=sa.text(WEBHOOK_PENDING),
                postgresql_where=sa.text(WEBHOOK_PENDING),
            )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(ANNOUNCE_FUNCTION)
        op.execute(ANNOUNCE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS case_change_announce ON case_change")
        op.execute("DROP FUNCTION IF EXISTS vigil_announce_case_change()")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_webhook_contact")
        batch_op.drop_index("ix_delivery_webhook_due")
    for table in ("case_change", "page", "step_run"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f"ix_{table}_case_id", ["case_id"], unique=False)

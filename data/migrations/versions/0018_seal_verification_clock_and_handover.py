"""sealed at rest: verification facts, clock event notes, handover notes and reports

Revision ID: 0018
Revises: 0017

The clear values of these columns are sealed (`data.sealing`), as 0011 did for case details.
A handover's report carries its notes, so it is sealed with them. Verification facts and
handover reports are JSON: they become TEXT holding their sealed JSON text.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from data.keys import Keyring
from data.sealing import reseal, unseal_stored

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

SEALED = (
    ("verification_record", "facts"),
    ("clock_event", "note"),
    ("handover", "notes"),
    ("handover", "report"),
)
WERE_JSON = (("verification_record", "facts"), ("handover", "report"))


def _keyring() -> Keyring:
    given = context.config.attributes.get("keyring")
    return given if given is not None else Keyring.from_environment()


def _json_columns(kind: sa.types.TypeEngine, was: sa.types.TypeEngine, cast_to: str) -> None:
    for table_name, column_name in WERE_JSON:
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.alter_column(
                column_name,
                type_=kind,
                existing_type=was,
                existing_nullable=False,
                postgresql_using=f"{column_name}::{cast_to}",
            )


def upgrade() -> None:
    _json_columns(sa.Text(), sa.JSON(), "text")
    reseal(op.get_bind(), _keyring(), SEALED)


def downgrade() -> None:
    unseal_stored(op.get_bind(), _keyring(), SEALED)
    _json_columns(sa.JSON(), sa.Text(), "json")

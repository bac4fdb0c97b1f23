"""the NCMEC account's password sealed at rest, as every other secret

Revision ID: 0017
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from data.keys import Keyring
from data.sealing import reseal, unseal_stored

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None

SEALED = (("tipline_account", "password"),)


def _keyring() -> Keyring:
    given = context.config.attributes.get("keyring")
    return given if given is not None else Keyring.from_environment()


def _column_type(kind: sa.types.TypeEngine, was: sa.types.TypeEngine) -> None:
    with op.batch_alter_table("tipline_account", schema=None) as batch_op:
        batch_op.alter_column("password", type_=kind, existing_type=was, existing_nullable=False)


def upgrade() -> None:
    _column_type(sa.Text(), sa.String())
    reseal(op.get_bind(), _keyring(), SEALED)


def downgrade() -> None:
    unseal_stored(op.get_bind(), _keyring(), SEALED)
    _column_type(sa.String(), sa.Text())

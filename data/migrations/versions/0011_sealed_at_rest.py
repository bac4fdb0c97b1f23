"""sealed at rest: case details, notes, containment notes, webhook URLs and secrets

Revision ID: 0011
Revises: 0009

Every value of these columns that is stored in clear is sealed (`data.sealing`) with the
desk's key (`VIGIL_SECRET_KEY`, else the key file, created now if there is none). Values
already sealed with that key are left alone, so running it again changes nothing; it runs
in the migration's one transaction, so it seals all of them or none. The contact's URL and
secret become TEXT: a sealed value is longer than what it seals.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import context, op

from data.keys import Keyring
from data.sealing import reseal, unseal_stored

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None

SEALED = (
    ("case", "details"),
    ("case_note", "body"),
    ("containment_record", "note"),
    ("contact_method", "url"),
    ("contact_method", "secret"),
)


def _keyring() -> Keyring:
    given = context.config.attributes.get("keyring")
    return given if given is not None else Keyring.from_environment()


def _contact_columns(kind: sa.types.TypeEngine, was: sa.types.TypeEngine) -> None:
    with op.batch_alter_table("contact_method", schema=None) as batch_op:
        for name in ("url", "secret"):
            batch_op.alter_column(name, type_=kind, existing_type=was, existing_nullable=True)


def upgrade() -> None:
    _contact_columns(sa.Text(), sqlmodel.sql.sqltypes.AutoString())
    reseal(op.get_bind(), _keyring(), SEALED)


def downgrade() -> None:
    unseal_stored(op.get_bind(), _keyring(), SEALED)
    _contact_columns(sqlmodel.sql.sqltypes.AutoString(), sa.Text())

"""contact secrets known by digest: the URL as shown and digests of the URL and the secret
sit beside the sealed values, so people's logins need never read these

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import context, op

from data.contacts import digest, shown_url
from data.keys import Keyring
from data.sealing import is_sealed, unseal

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

COLUMNS = ("url_shown", "url_digest", "secret_digest")


def _keyring() -> Keyring:
    given = context.config.attributes.get("keyring")
    return given if given is not None else Keyring.from_environment()


def _plain(keyring: Keyring, stored: str | None, column: str, row_id: int) -> str | None:
    if not stored:
        return None
    if not is_sealed(stored):
        return stored
    return unseal(keyring, stored, table="contact_method", column=column, row_id=row_id)


def upgrade() -> None:
    with op.batch_alter_table("contact_method", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    connection = op.get_bind()
    target = sa.table(
        "contact_method",
        *(sa.column(name) for name in ("id", "kind", "url", "secret", *COLUMNS)),
    )
    rows = connection.execute(
        sa.select(target.c.id, target.c.kind, target.c.url, target.c.secret).where(
            sa.or_(target.c.url.is_not(None), target.c.secret.is_not(None))
        )
    ).all()
    if not rows:
        return
    keyring = _keyring()
    for row_id, kind, url, secret in rows:
        plain_url = _plain(keyring, url, "url", row_id)
        plain_secret = _plain(keyring, secret, "secret", row_id)
        connection.execute(
            target.update()
            .where(target.c.id == row_id)
            .values(
                url_shown=shown_url(plain_url, kind) if plain_url else None,
                url_digest=digest(plain_url),
                secret_digest=digest(plain_secret),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("contact_method", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.drop_column(name)

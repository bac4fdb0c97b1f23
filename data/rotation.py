"""`vigil db rotate-key`: every sealed value sealed again with a new key, all or nothing.

With a key file, the steps are ordered so that a crash at any point leaves every value
openable by the key file as it is then:

1. the new key is written first in the key file, the old ones kept after it;
2. one write transaction seals every value again with the new key (on PostgreSQL the sealed
   tables are locked against writers meanwhile; SQLite's writer lock does the same);
3. the old keys leave the key file.

The audit record of the rotation (`db.rotate_key`: the new key's id, the retired keys' ids,
how many values were sealed again; never a key) is appended in step 2's transaction, so it
is there exactly when the values moved to the new key.

A crash before 2 commits leaves the database as it was; running the command again finishes
the work with yet another new key. With `VIGIL_SECRET_KEY` the person writes the keys: the
new key first, the old ones after commas; the command seals everything with the first, and
then the old keys can be dropped from the variable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text

from data import audit
from data.db import Database
from data.keys import KEY_ENV, SealingKeyError, key_id, new_key
from data.schema import every_table
from data.sealing import holds_sealed_values, primary_keys, reseal, sealed_columns


@dataclass(frozen=True)
class Rotation:
    key_id: str  # the key that seals everything now
    retired: tuple[str, ...]  # ids of the keys no longer needed
    resealed: int  # values written
    key_file: bool  # the keys came from the key file (else from VIGIL_SECRET_KEY)


def rotate_key(
    db: Database,
    *,
    actor: str,
    at: datetime,
    after_batch: Callable[[int], None] | None = None,
) -> Rotation:
    """Seal everything again with a new key, audited as `actor` at `at`."""
    keyring = db.keyring
    columns = sealed_columns(every_table())
    if keyring.writable:
        if not keyring.keys():
            with db.engine.connect() as connection:
                lost = holds_sealed_values(connection, columns)
            raise SealingKeyError(
                f"{keyring.source} does not exist, but the database holds sealed values: "
                f"restore it or set {KEY_ENV} to their key, then rotate"
                if lost
                else f"nothing to rotate: {keyring.source} does not exist yet, so nothing is sealed"
            )
        keyring.put_first(new_key())
    elif len(keyring.keys()) < 2:
        raise SealingKeyError(
            f"{KEY_ENV} holds one key: to rotate, set it to a new key, a comma and the old "
            f"key, run this again, then keep only the new key in {KEY_ENV}"
        )
    held = keyring.keys()
    current, *retired = [key_id(k) for k in held]
    with db.write() as session:
        audit.lock_head(session)  # first, as every writer does: no deadlock with one
        connection = session.connection()
        if db.is_postgres:
            tables = ", ".join(sorted({f'"{name}"' for name, _ in columns}))
            connection.execute(text(f"LOCK TABLE {tables} IN EXCLUSIVE MODE"))
        keys = primary_keys(every_table())
        written = reseal(connection, keyring, columns, keys=keys, after_batch=after_batch)
        audit.append(
            session,
            at=at,
            actor=actor,
            action="db.rotate_key",
            detail={"key_id": current, "retired": retired, "resealed": written},
        )
    if keyring.writable:
        keyring.keep_only_first()
    return Rotation(current, tuple(retired), written, keyring.writable)

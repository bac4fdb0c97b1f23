"""Sealed columns: text that the database only ever holds encrypted.

A sealed value is stored as `sealed:v1:<key id>:<base64 of nonce and ciphertext>`, made
with AES-256-GCM (the `cryptography` package) under a random 96-bit nonce. Its associated
data names the table, the column and the row's id, so a value copied to another row or
column does not open; the key id says which key of the `Keyring` (`data.keys`) opens it.

How to seal a column (what a new secret adopts):

    from data.sealing import sealed_column

    class Thing(SQLModel, table=True):
        id: int | None = Field(default=None, primary_key=True)
        token: str | None = Field(default=None, sa_column=sealed_column("token", nullable=True))

then list ("thing", "token") in the migration that adds it and call `reseal` there, so clear
values already stored are sealed (and `unseal_stored` in its downgrade). A JSON value (a dict
or a list) is sealed as its JSON text with `sealed_column("facts", as_json=True)`. Through
the ORM nothing else changes: `thing.token` reads and writes plain text (or the JSON value);
rows are sealed on flush and opened on load. A long text read only when shown can be
deferred too (`Case.details` is), so listing rows never opens it. Core
statements and bulk `update(Thing).values(...)` bypass this and see the stored form: write
through objects, or use `seal()`/`unseal()` there. The table needs a primary key of one
column (a generated one costs one more UPDATE per new row: the value is bound to the key,
which is known only after the INSERT).

The key comes from the application: `data.db.Database` takes a `Keyring` (by default the
one of `VIGIL_SECRET_KEY` or the key file) and every session it opens carries it. A missing
or wrong key, or a value altered or moved, raises `SealError`/`SealingKeyError`, whose message
names the key's source and the row: never a wrong text.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from functools import cache
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    Table,
    Text,
    bindparam,
    cast,
    column,
    event,
    literal,
    select,
    table,
    text,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapper, Session, object_session
from sqlalchemy.orm.attributes import get_history, set_committed_value
from sqlalchemy.orm.base import PASSIVE_NO_INITIALIZE
from sqlalchemy.sql.elements import ColumnElement

from data.errors import DatabaseError
from data.keys import KEY_ENV, Keyring, SealingKeyError

SEALED = "vigil_sealed"
"""The `Column.info` flag of a sealed column."""
SEALED_JSON = "vigil_sealed_json"
"""The `Column.info` flag of a sealed column whose attribute holds JSON, sealed as its text."""

PREFIX = "sealed:v1:"
NONCE_BYTES = 12
_KEYRING = "vigil_keyring"
_PENDING = "vigil_sealed_pending"

__all__ = [
    "Keyring",
    "SealError",
    "SealingKeyError",
    "guard_key_creation",
    "holds_sealed_values",
    "is_sealed",
    "may_select",
    "primary_keys",
    "reseal",
    "seal",
    "sealed_column",
    "sealed_columns",
    "unseal",
    "unseal_stored",
]


class SealError(DatabaseError):
    """A stored value that does not open: altered, moved from another row, or never sealed."""


def sealed_column(name: str, *, nullable: bool = False, as_json: bool = False) -> Any:
    """A text column kept sealed at rest (see the module's docstring); `as_json`: its
    attribute holds a JSON value, sealed as its JSON text."""
    return Column(
        name,
        Text,
        nullable=nullable,
        default=None if nullable else "",
        info={SEALED: True, SEALED_JSON: as_json},
    )


def _plain_of(col: ColumnElement[Any], value: Any) -> str | None:
    """The text a sealed column's attribute value is sealed as."""
    if col.info.get(SEALED_JSON) and value is not None:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return value


def _value_of(col: ColumnElement[Any], plain: str) -> Any:
    """The attribute value of a sealed column's opened text."""
    return json.loads(plain) if col.info.get(SEALED_JSON) else plain


def sealed_columns(metadata: MetaData) -> list[tuple[str, str]]:
    """(table, column) of every sealed column, in a stable order."""
    return sorted(
        (t.name, c.name) for t in metadata.tables.values() for c in t.columns if c.info.get(SEALED)
    )


def primary_keys(metadata: MetaData) -> dict[str, str]:
    """The primary key column of every table with a sealed column (one column each)."""
    keys = {}
    for table_name, _ in sealed_columns(metadata):
        (key,) = metadata.tables[table_name].primary_key.columns
        keys[table_name] = key.name
    return keys


def is_sealed(stored: str | None) -> bool:
    return bool(stored) and stored.startswith(PREFIX)  # type: ignore[union-attr]


def _associated_data(table_name: str, column_name: str, row_id: int | str) -> bytes:
    return f"vigil:{table_name}.{column_name}:{row_id}".encode()


@cache
def _cipher(key: bytes) -> Any:
    # Imported on first use: commands that open nothing sealed never pay for it.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def seal(keyring: Keyring, plain: str, *, table: str, column: str, row_id: int | str) -> str:
    """`plain` sealed with the keyring's sealing key, bound to this table, column and row."""
    kid, key = keyring.sealing_key()
    nonce = os.urandom(NONCE_BYTES)
    body = _cipher(key).encrypt(
        nonce, plain.encode("utf-8"), _associated_data(table, column, row_id)
    )
    return f"{PREFIX}{kid}:{base64.urlsafe_b64encode(nonce + body).decode('ascii')}"


def sealing_key_id(stored: str) -> str:
    return stored[len(PREFIX) :].partition(":")[0]


def unseal(keyring: Keyring, stored: str, *, table: str, column: str, row_id: int | str) -> str:
    """The text of a sealed value of this table, column and row, or a `SealError`."""
    where = f"{table}.{column} of row {row_id}"
    if not is_sealed(stored):
        raise SealError(
            f"{where} holds text that Vigil did not seal (written by hand or by an older "
            "Vigil): `vigil db rotate-key` seals it"
        )
    kid, _, encoded = stored[len(PREFIX) :].partition(":")
    key = keyring.opening_key(kid)
    try:
        raw = base64.urlsafe_b64decode(encoded.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raw = b""
    from cryptography.exceptions import InvalidTag

    try:
        if len(raw) <= NONCE_BYTES:
            raise InvalidTag
        plain = _cipher(key).decrypt(
            raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(table, column, row_id)
        )
    except InvalidTag:
        raise SealError(
            f"{where} does not open with key {kid} of {keyring.source}: the stored value "
            "was altered or copied from another row"
        ) from None
    return str(plain.decode("utf-8"))


# --- a new key only for a database with nothing sealed ---------------------------------


def may_select(connection: Connection, table_name: str, column_name: str) -> bool:
    """Whether this login may read the column: always on SQLite; on PostgreSQL as its
    grants say (people may not read every column, `data.access`)."""
    if connection.dialect.name != "postgresql":
        return True
    allowed = connection.execute(
        text("SELECT has_column_privilege(:table, :column, 'SELECT')"),
        {"table": f'"{table_name}"', "column": column_name},
    ).scalar_one()
    return bool(allowed)


def holds_sealed_values(connection: Connection, columns: Sequence[tuple[str, str]]) -> bool:
    """Whether any of these columns that exist in the database holds a sealed value."""
    inspector = sa_inspect(connection)
    tables = set(inspector.get_table_names())
    present: dict[str, set[str]] = {}
    for table_name, column_name in columns:
        if table_name not in tables:
            continue
        if table_name not in present:
            present[table_name] = {c["name"] for c in inspector.get_columns(table_name)}
        if column_name not in present[table_name]:
            continue
        if not may_select(connection, table_name, column_name):
            return True  # a person's login cannot look (`data.access`): never guess "none"
        stored = cast(column(column_name), Text)
        found = connection.execute(
            select(literal(1))
            .select_from(table(table_name))
            .where(stored.like(f"{PREFIX}%"))
            .limit(1)
        ).first()
        if found is not None:
            return True
    return False


def guard_key_creation(
    keyring: Keyring,
    reading: Callable[[], AbstractContextManager[Connection]],
    tables: Callable[[], MetaData],
) -> Keyring:
    """Let `keyring` make a new key file only while the database holds no sealed value: a
    key file lost from a desk with sealed values must be put back, not silently replaced
    by a key that opens none of them. `reading()` gives a connection to look with (a
    migration's own: the tables it altered are locked against any other); `tables()` gives
    every table of the schema, asked for only then. Returns `keyring`."""

    def refuse_if_sealed() -> None:
        with reading() as connection:
            sealed = holds_sealed_values(connection, sealed_columns(tables()))
        if sealed:
            raise SealingKeyError(
                f"no key file at {keyring.path}, but the database already holds values "
                f"sealed with a key: restore the key file {keyring.path} (from where the "
                f"desk's key is kept) or set {KEY_ENV} to the key; a new key would open "
                "none of them, so none was made"
            )

    keyring.before_creating = refuse_if_sealed
    return keyring


# --- the session's keyring ------------------------------------------------------------


def bind_keyring(session: Session, keyring: Keyring) -> None:
    session.info[_KEYRING] = keyring


def keyring_of(session: Session | None) -> Keyring:
    keyring = session.info.get(_KEYRING) if session is not None else None
    if keyring is None:
        raise SealingKeyError(
            "a session without a sealing key touched a sealed column: open sessions "
            "through data.db.Database"
        )
    return keyring


# --- ORM: sealed on flush, opened on load ---------------------------------------------


def _install(mapper: Mapper[Any], class_: type) -> None:
    """Give every mapped class with a sealed column the listeners that seal and open it."""
    sealed = [
        (prop.key, prop.columns[0])
        for prop in mapper.column_attrs
        if prop.columns[0].info.get(SEALED) and prop.columns[0].table is mapper.local_table
    ]
    if not sealed:
        return
    mapped_table: Table = mapper.local_table  # type: ignore[assignment]
    table_name = mapped_table.name
    (key_column,) = mapped_table.primary_key.columns
    key_attr = mapper.get_property_by_column(key_column).key

    def opened(keyring: Keyring, target: Any, attrs: Any) -> None:
        for attr, col in sealed:
            if (attrs is None or attr in attrs) and attr in target.__dict__:
                stored = target.__dict__[attr]
                if stored:
                    plain = unseal(
                        keyring,
                        stored,
                        table=table_name,
                        column=col.name,
                        row_id=getattr(target, key_attr),
                    )
                    set_committed_value(target, attr, _value_of(col, plain))

    def on_load(target: Any, context: Any) -> None:
        opened(keyring_of(context.session), target, None)

    def on_refresh(target: Any, context: Any, attrs: Any) -> None:
        opened(keyring_of(context.session), target, attrs)

    def before_insert(_mapper: Any, _connection: Connection, target: Any) -> None:
        # A generated key is not known before the INSERT: the value goes in blank and is
        # sealed just after, in the same transaction. A key given up front seals at once.
        row_key = getattr(target, key_attr)
        pending = {}
        for attr, col in sealed:
            value = target.__dict__.get(attr)
            plain = _plain_of(col, value)
            if not plain:
                continue
            pending[attr] = (value, plain)
            if row_key is None:
                setattr(target, attr, None if col.nullable else "")
            else:
                keyring = keyring_of(object_session(target))
                setattr(
                    target,
                    attr,
                    seal(keyring, plain, table=table_name, column=col.name, row_id=row_key),
                )
        if pending:
            sa_inspect(target).info[_PENDING] = (row_key is None, pending)

    def after_insert(_mapper: Any, connection: Connection, target: Any) -> None:
        blank, pending = sa_inspect(target).info.pop(_PENDING, (False, {}))
        if not blank:
            for attr, (value, _plain) in pending.items():
                set_committed_value(target, attr, value)
            return
        keyring = keyring_of(object_session(target))
        values = {
            col.name: seal(
                keyring,
                pending[attr][1],
                table=table_name,
                column=col.name,
                row_id=getattr(target, key_attr),
            )
            for attr, col in sealed
            if attr in pending
        }
        connection.execute(
            mapped_table.update().where(key_column == getattr(target, key_attr)).values(values)
        )
        for attr, (value, _plain) in pending.items():
            set_committed_value(target, attr, value)

    def before_update(_mapper: Any, _connection: Connection, target: Any) -> None:
        pending = {}
        for attr, col in sealed:
            # A deferred value never loaded has not changed: never load it to find out.
            added = get_history(target, attr, passive=PASSIVE_NO_INITIALIZE).added
            if not added:
                continue
            plain = _plain_of(col, added[0])
            if plain:
                pending[attr] = added[0]
                keyring = keyring_of(object_session(target))
                sealed_value = seal(
                    keyring,
                    plain,
                    table=table_name,
                    column=col.name,
                    row_id=getattr(target, key_attr),
                )
                setattr(target, attr, sealed_value)
        if pending:
            sa_inspect(target).info[_PENDING] = pending

    def after_update(_mapper: Any, _connection: Connection, target: Any) -> None:
        for attr, plain in sa_inspect(target).info.pop(_PENDING, {}).items():
            set_committed_value(target, attr, plain)

    event.listen(class_, "load", on_load)
    event.listen(class_, "refresh", on_refresh)
    event.listen(class_, "before_insert", before_insert)
    event.listen(class_, "after_insert", after_insert)
    event.listen(class_, "before_update", before_update)
    event.listen(class_, "after_update", after_update)


event.listen(Mapper, "mapper_configured", _install)


# --- sealing what is stored: migrations and key rotation -------------------------------

BATCH_ROWS = 500


def reseal(
    connection: Connection,
    keyring: Keyring,
    columns: Sequence[tuple[str, str]],
    *,
    keys: Mapping[str, str] | None = None,
    after_batch: Callable[[int], None] | None = None,
) -> int:
    """Seal every value of these columns with the keyring's sealing key: clear text is
    sealed, values under another key are opened and sealed again, values already under it
    are left alone (so running it twice changes nothing). Returns how many it wrote.

    It runs inside the caller's transaction: the caller commits all of it or none.
    `keys` names a table's primary key where it is not `id`; `after_batch(written_so_far)`
    is called after each batch of updates."""
    kid, _ = keyring.sealing_key()
    written = 0
    for table_name, column_name in columns:
        key_name = (keys or {}).get(table_name, "id")
        target = table(table_name, column(key_name), column(column_name))
        key_column, stored_column = target.c[key_name], target.c[column_name]
        rows = connection.execute(
            target.select()
            .with_only_columns(key_column, stored_column)
            .where(stored_column.is_not(None), stored_column != "")
            .order_by(key_column)
        ).all()
        changes = []
        for row_id, stored in rows:
            if is_sealed(stored):
                if sealing_key_id(stored) == kid:
                    continue
                plain = unseal(keyring, stored, table=table_name, column=column_name, row_id=row_id)
            else:
                plain = stored
            sealed_value = seal(keyring, plain, table=table_name, column=column_name, row_id=row_id)
            changes.append({"row_id": row_id, "sealed": sealed_value})
        statement = (
            target.update()
            .where(key_column == bindparam("row_id"))
            .values({column_name: bindparam("sealed")})
        )
        for start in range(0, len(changes), BATCH_ROWS):
            batch = changes[start : start + BATCH_ROWS]
            connection.execute(statement, batch)
            written += len(batch)
            if after_batch is not None:
                after_batch(written)
    return written


def unseal_stored(
    connection: Connection,
    keyring: Keyring,
    columns: Sequence[tuple[str, str]],
) -> None:
    """Store every sealed value of these columns in clear again: what a migration that
    seals them does when it is undone. Values already in clear are left alone."""
    for table_name, column_name in columns:
        target = table(table_name, column("id"), column(column_name))
        stored_column = target.c[column_name]
        for row_id, stored in connection.execute(
            target.select()
            .with_only_columns(target.c.id, stored_column)
            .where(stored_column.is_not(None))
        ).all():
            if is_sealed(stored):
                plain = unseal(keyring, stored, table=table_name, column=column_name, row_id=row_id)
                connection.execute(
                    target.update().where(target.c.id == row_id).values({column_name: plain})
                )

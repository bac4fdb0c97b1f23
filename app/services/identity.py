"""Who is acting. On SQLite, one OS account's desk, the responder is the one named by `--as`
or `VIGIL_USER` (else the OS login name). On PostgreSQL the database login is the person: the
actor is the responder whose login it is, and naming anyone else is refused.

The schema's owner and superusers are the desk's master key, not a person: they keep the
SQLite rule, so the one who runs `vigil db upgrade` and `vigil db roles` can also bootstrap
the first team file. People never use that login for their work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.core.errors import NotAllowed

if TYPE_CHECKING:
    from data.db import Database


def acting_handle(db: Database, named: str | None, fallback: str) -> str:
    """The handle this command acts as: `named` (from `--as`/`VIGIL_USER`) or `fallback` on
    SQLite and for the owner; the login's own responder on PostgreSQL."""
    if not db.is_postgres:
        return named or fallback
    from data import access  # PostgreSQL's roles and grants: not needed on SQLite

    with db.read() as reading:
        who = access.login_identity(reading)
    if who.owner:
        return named or fallback
    if who.handle is None:
        raise NotAllowed(
            f"database login '{who.login}' is not the login of an active responder of this "
            "desk: a team file maps a responder to it with `db_login`"
        )
    if named is not None and named != who.handle:
        raise NotAllowed(
            f"you are connected as database login '{who.login}', which is {who.handle}; "
            f"on PostgreSQL the login is the person, so you cannot act as '{named}' "
            f"(to act as {named}, connect with {named}'s own login)"
        )
    return who.handle

"""Database problems a person can act on: each message says what to do."""


class DatabaseError(Exception):
    """A database problem a person can act on; the message says what to do."""


class SchemaOutOfDate(DatabaseError):
    """The database was made by an older Vigil: `vigil db upgrade` brings it to this one."""

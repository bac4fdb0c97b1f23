"""Database problems a person can act on: each message says what to do."""


class DatabaseError(Exception):
    """A database problem a person can act on; the message says what to do."""


class BadSetting(DatabaseError):
    """A setting given in a form Vigil cannot use (a key that is not a key): bad input."""


class SchemaOutOfDate(DatabaseError):
    """The database was made by an older Vigil: `vigil db upgrade` brings it to this one."""


# --- what a failed database call was --------------------------------------------------------

_DISK_FULL = (
    "database or disk is full",  # SQLite (SQLITE_FULL)
    "no space left on device",  # PostgreSQL, and the OS (ENOSPC)
    "could not extend file",  # PostgreSQL, when a table cannot grow
)
_DISK_FULL_SQLSTATE = "53100"  # PostgreSQL's disk_full


def disk_full_cause(error: BaseException) -> BaseException | None:
    """The link of `error`'s chain that says the disk under the database is full (SQLite's
    "database or disk is full", PostgreSQL's "No space left on device" or SQLSTATE 53100,
    an OSError with errno ENOSPC), or None.

    Often not `error` itself: SQLite rolls a whole transaction back when its disk is full,
    and the savepoint's own rollback then fails with "no such savepoint" over it."""
    import errno

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return current
        if getattr(current, "sqlstate", None) == _DISK_FULL_SQLSTATE:
            return current
        if any(words in str(current).lower() for words in _DISK_FULL):
            return current
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return None


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` (or what it wraps) says the disk under the database is full."""
    return disk_full_cause(error) is not None


def first_line(error: BaseException) -> str:
    """The first line of what the driver said (without SQLAlchemy's statement dump)."""
    original = getattr(error, "orig", None) or error
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__


def describe_trouble(error: BaseException) -> str:
    """One line for a database call that failed: a full disk is called a full disk."""
    full = disk_full_cause(error)
    if full is not None:
        return f"the database's disk is full ({first_line(full)})"
    return f"the database did not answer ({first_line(error)})"

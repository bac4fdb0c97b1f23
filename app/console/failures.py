"""Turning a failed worker into words a person can act on.

Workers let their exceptions escape (`exit_on_error=False`), so there is one place that
says what went wrong: a refusal by the case service (not allowed, nothing to do, no such
case, bad input) reads as the service phrased it; sealed text that does not open (a
missing or wrong key) names where the key was looked for; an unreachable database says so
plainly and that nothing was changed; anything else names the error without a traceback.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.core.errors import BadInput, NotAllowed, NotFound, NothingToDo, VigilError
from data.db import DatabaseError
from data.errors import disk_full_cause, first_line
from data.keys import SealingKeyError
from data.sealing import SealError

Severity = Literal["information", "warning", "error"]


@dataclass(frozen=True, slots=True)
class Failure:
    title: str
    message: str
    severity: Severity
    database_down: bool = False


def describe_failure(error: BaseException) -> Failure:
    """What to tell the person about `error`."""
    if isinstance(error, NotAllowed):
        return Failure("Not allowed", str(error), "error")
    if isinstance(error, NothingToDo):
        return Failure("Nothing to do", str(error), "warning")
    if isinstance(error, NotFound):
        return Failure("Not found", str(error), "warning")
    if isinstance(error, BadInput):
        return Failure("Check the input", str(error), "error")
    if isinstance(error, VigilError):
        return Failure("Refused", str(error), "error")
    if isinstance(error, SealingKeyError | SealError):
        return Failure("Sealed text not opened", str(error), "error")
    full = disk_full_cause(error)
    if full is not None:
        return Failure(
            "Disk full",
            f"The database's disk is full: {first_line(full)}. Nothing was changed; "
            "what you typed is kept",
            "error",
            database_down=True,
        )
    if isinstance(
        error, OperationalError | DBAPIError | PoolTimeout | DatabaseError | sqlite3.Error
    ):
        return Failure(
            "Database unreachable",
            f"The database did not answer: {first_line(error)}",
            "error",
            database_down=True,
        )
    return Failure("Unexpected error", f"{type(error).__name__}: {first_line(error)}", "error")

"""Errors a person can act on. The command line maps them to the contract's exit codes:
`Refused` -> 1 (no such case, not allowed, nothing to do); `BadInput` -> 2."""

from __future__ import annotations


class VigilError(Exception):
    exit_code = 1


class Refused(VigilError):
    """The request was understood but cannot be carried out."""

    exit_code = 1


class NotFound(Refused):
    pass


class NotAllowed(Refused):
    pass


class NothingToDo(Refused):
    pass


class BadInput(VigilError):
    """A field has a value that is not what was expected."""

    exit_code = 2

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

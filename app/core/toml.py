"""TOML documents as every file of the desk is read: a document nested deeper than the
parser can follow is a syntax problem like any other, not a crash."""

from __future__ import annotations

import tomllib
from typing import Any

TOMLDecodeError = tomllib.TOMLDecodeError


def loads(text: str) -> dict[str, Any]:
    """`tomllib.loads`, with `TOMLDecodeError` for a document nested too deeply (the
    parser recurses, and thousands of `[` ran it out of stack)."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise TOMLDecodeError("nested too deeply") from None

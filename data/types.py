"""Column types: every timestamp is stored as UTC and comes back timezone-aware."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Refuses naive datetimes on the way in; returns aware UTC on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_column() -> Any:
    """A JSON object column, never NULL, `{}` by default."""
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def json_list_column() -> Any:
    """A JSON list column, never NULL, `[]` by default."""
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


def utc_column(nullable: bool = False, index: bool = False) -> Any:
    """A UTC timestamp column (`UTCDateTime`)."""
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def table_of(model: type[SQLModel]) -> Table:
    """The table a SQLModel class is mapped to (typed: SQLModel declares `__table__` loosely)."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table

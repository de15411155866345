"""What the table models are built from: their column types, column defaults and constraint names.

The models import this module, not `core.db`, so the engine and session helpers and the tables stay apart: `core.db`
imports no model, and no model imports `core.db`. Importing this module also sets the constraint-naming convention,
which SQLAlchemy applies as each table is defined: every models module imports it before defining its tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import SQLModel

# Deterministic constraint names, so migrations are the same on SQLite and PostgreSQL.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


EnumT = TypeVar("EnumT", bound=StrEnum)


def empty_json_list() -> list[Any]:
    """The default of a table model's JSON list column.

    Not the `list` builtin: pydantic reads a default factory's signature on every construction of a table
    model, and parsing the builtin's text signature took about 0.1 ms each time (a Python function: ~7 us).
    """
    return []


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive values otherwise)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _ComparedText(sa.TypeDecorator[str]):
    """A value compared with an enum column: bound as its plain string, whatever it is."""

    impl = sa.String
    cache_ok = True

    def process_bind_param(self, value: object, dialect: Dialect) -> str | None:
        return None if value is None else str(value)  # a StrEnum member's str() is its value


class StrEnumColumn(sa.TypeDecorator[EnumT]):
    """A StrEnum stored as its plain string value (VARCHAR, no database enum type), read back as the enum.

    A value the enum does not define fails loudly on read: a release adds a new value to its code before any
    release writes it (expand, then use).
    """

    impl = sa.String
    cache_ok = True

    def __init__(self, enum_type: type[EnumT], length: int) -> None:
        super().__init__(length)
        self.enum_type = enum_type
        self.length = length

    def process_bind_param(self, value: EnumT | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return self.enum_type(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> EnumT | None:
        return None if value is None else self.enum_type(value)

    def coerce_compared_value(self, op: Any, value: Any) -> sa.types.TypeEngine[Any]:
        # A filter (e.g. a status typed into a search form) compares as text: a value the enum does not define
        # matches no row instead of failing the query. Writes still go through process_bind_param above.
        return _ComparedText(self.length)

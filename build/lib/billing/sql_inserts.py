"""INSERT ... ON CONFLICT DO NOTHING for SQLite and PostgreSQL: how replays become no-ops in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlmodel import Session, SQLModel

from core.db import insert_ignoring_conflicts


def table_of(model: type[SQLModel]) -> sa.Table:
    """The Core table behind a SQLModel table class."""
    table: sa.Table = model.__table__  # type: ignore[attr-defined]
    return table


def insert_rows_ignoring_conflicts(session: Session, table: sa.Table, rows: Sequence[dict[str, Any]]) -> int:
    """Insert `rows`, skipping duplicates; returns how many were new.

    Counted from RETURNING: a multi-row insert's rowcount is not reliable across drivers.
    """
    if not rows:
        return 0
    statement = insert_ignoring_conflicts(session, table).returning(table.c.id)
    return len(session.execute(statement, list(rows)).all())


def execute_insert_counting(session: Session, statement: Any, table: sa.Table) -> int:
    """Run an INSERT ... SELECT and return how many rows it added.

    psycopg reports no rowcount for INSERT ... SELECT ... ON CONFLICT, so on PostgreSQL the insert runs
    inside a data-modifying CTE that counts its RETURNING rows in the database (no ids cross the wire).
    """
    if session.get_bind().dialect.name == "postgresql":
        inserted = statement.returning(table.c.id).cte("inserted")
        return int(session.execute(sa.select(sa.func.count()).select_from(inserted)).scalar_one())
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    return max(int(result.rowcount or 0), 0)

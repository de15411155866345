"""lock_rows: SELECT ... FOR UPDATE on PostgreSQL as the caller asks, nothing on SQLite (BEGIN IMMEDIATE locks)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import select

from core.db import lock_rows
from core.subscriptions.models import MarketplaceSubscription
from core.usage.models import UsageLedgerEntry


def sql(statement: sa.ClauseElement, dialect: sa.Dialect) -> str:
    return str(statement.compile(dialect=dialect))


def test_postgresql_locks_the_rows_read() -> None:
    assert sql(lock_rows(select(UsageLedgerEntry)), postgresql.dialect()).endswith("FOR UPDATE")


def test_postgresql_keeps_skip_locked_nowait_and_of() -> None:
    joined = select(UsageLedgerEntry, MarketplaceSubscription.status).join(MarketplaceSubscription, sa.true())
    assert sql(lock_rows(joined, skip_locked=True, of=UsageLedgerEntry), postgresql.dialect()).endswith(
        "FOR UPDATE OF usage_ledger_entries SKIP LOCKED"
    )
    assert sql(lock_rows(select(UsageLedgerEntry), nowait=True), postgresql.dialect()).endswith("FOR UPDATE NOWAIT")


def test_sqlite_adds_nothing() -> None:
    statement = select(UsageLedgerEntry)
    assert sql(lock_rows(statement, skip_locked=True), sqlite.dialect()) == sql(statement, sqlite.dialect())

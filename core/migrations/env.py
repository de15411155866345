"""Alembic environment: the database URL comes from the caller's config (CLI or tests), else from settings."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from core.db import make_engine
from core.models import metadata

config = context.config


def _database_url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from core.settings import get_settings

    return get_settings().resolved_database_url


def _run(connection: Connection) -> None:
    # SQLite alters a table by copying it into a new one and dropping the old: with foreign keys enforced, the
    # drop fails as soon as other rows reference it (any database holding a purchase). So they are off while
    # migrating and checked afterwards. The pragma is a no-op inside a transaction: only a fresh connection gets it.
    relax_foreign_keys = connection.dialect.name == "sqlite" and not connection.in_transaction()
    if relax_foreign_keys:
        _sqlite_pragma(connection, "PRAGMA foreign_keys=OFF")
    try:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            compare_type=True,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        if relax_foreign_keys:
            violations = _sqlite_pragma(connection, "PRAGMA foreign_key_check")
            if violations:
                raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {violations[:5]}")
    finally:
        if relax_foreign_keys:
            _sqlite_pragma(connection, "PRAGMA foreign_keys=ON")


def _sqlite_pragma(connection: Connection, statement: str) -> list[Any]:
    """Run a pragma on the driver's connection, outside the BEGIN IMMEDIATE our engine starts for every statement."""
    driver_connection = connection.connection.driver_connection
    assert driver_connection is not None
    rows: list[Any] = driver_connection.execute(statement).fetchall()
    return rows


def run_migrations_offline() -> None:
    context.configure(url=_database_url(), target_metadata=metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_database_url())
    try:
        with engine.connect() as new_connection:
            _run(new_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

"""Migrations go from empty to head and back on the database under test, and match the models."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from core import migrator
from core.db import make_engine
from core.models import metadata
from tests.conftest import POSTGRES_URL, TEST_DATABASE


@pytest.fixture
def empty_database_url(tmp_path: Path) -> str:
    if TEST_DATABASE == "postgresql":
        schema = f"cp_migrations_{tmp_path.name[-8:].lower().replace('-', '_')}"
        engine = make_engine(POSTGRES_URL)
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
        return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    return f"sqlite:///{tmp_path / 'migrations.db'}"


def _table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_to_head_then_downgrade_to_base(empty_database_url: str) -> None:
    migrator.upgrade(empty_database_url)
    assert set(metadata.tables) <= _table_names(empty_database_url)

    migrator.downgrade(empty_database_url, "base")
    assert _table_names(empty_database_url) <= {"alembic_version"}

    migrator.upgrade(empty_database_url)
    assert set(metadata.tables) <= _table_names(empty_database_url)


def test_models_match_migrations(empty_database_url: str) -> None:
    migrator.upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), metadata)
    engine.dispose()
    assert differences == []


def test_check_constraints_hold_in_the_schema(empty_database_url: str) -> None:
    migrator.upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO outbox_messages (task_name, arguments, created_at, available_at, dispatch_count) "
                "VALUES ('x', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, -1)"
            )
        )
    engine.dispose()

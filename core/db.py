"""Engine, sessions and row-locking helpers shared by the API, the workers and the CLI.

SQLite (the embedded default) and PostgreSQL (scale-out) behave alike: on SQLite every transaction
starts with BEGIN IMMEDIATE, so a read-then-write cannot lose a race against another process, which
is what `SELECT ... FOR UPDATE` gives us on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache, cached_property
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.selectable import GenerativeSelect
from sqlmodel import Session, SQLModel, create_engine
from tenacity import Retrying, retry_if_exception, stop_after_attempt

T = TypeVar("T")
SelectT = TypeVar("SelectT", bound=GenerativeSelect)


def normalize_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever spelling the operator gave."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def lock_rows(
    statement: SelectT, *, skip_locked: bool = False, nowait: bool = False, of: type[SQLModel] | None = None
) -> SelectT:
    """The statement, locking the rows it reads until the transaction ends: the one way any module locks a row.

    PostgreSQL: `SELECT ... FOR UPDATE` (SKIP LOCKED passes over rows another transaction holds, NOWAIT refuses
    them, `of` locks one entity's rows of a join). SQLite: nothing is added (its compiler renders no FOR UPDATE),
    because every transaction there starts with BEGIN IMMEDIATE and so already holds the database's write lock.
    """
    return statement.with_for_update(skip_locked=skip_locked, nowait=nowait, of=of)


def insert_ignoring_conflicts(
    session: Session, target: sa.Table | type[SQLModel], conflict_columns: tuple[str, ...] | None = None
) -> Any:
    """INSERT ... ON CONFLICT [(conflict_columns)] DO NOTHING for the session's backend (SQLite or PostgreSQL)."""
    statement = _dialect_insert(session.get_bind().dialect.name)(target)
    return statement.on_conflict_do_nothing(index_elements=list(conflict_columns) if conflict_columns else None)


def insert_unless_conflicting(
    session: Session, entity: type[SQLModel], conflict_columns: tuple[str, ...], *, returning_rows: bool = False
) -> sa.Insert:
    """INSERT ... ON CONFLICT (conflict_columns) DO NOTHING [RETURNING the row] for the session's backend.

    The unique key decides in one statement, so a concurrent twin inserts nothing. Execute it with the row
    as parameters: columns left out get their column defaults. Built once per backend and shape.
    """
    return _insert_unless_conflicting(session.get_bind().dialect.name, entity, conflict_columns, returning_rows)


@cache
def _insert_unless_conflicting(
    dialect_name: str, entity: type[SQLModel], conflict_columns: tuple[str, ...], returning_rows: bool
) -> sa.Insert:
    statement: sa.Insert = _dialect_insert(dialect_name)(entity).on_conflict_do_nothing(
        index_elements=list(conflict_columns)
    )
    return statement.returning(entity) if returning_rows else statement


def _dialect_insert(dialect_name: str) -> Any:
    """The dialect's own insert construct, which knows ON CONFLICT; only our two backends have one here."""
    if dialect_name == "postgresql":
        return postgresql.insert
    if dialect_name == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"no conflict-ignoring insert for {dialect_name}")


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> Engine:
    """An engine configured for the backend: WAL and immediate transactions on SQLite, a pool on PostgreSQL."""
    url = normalize_database_url(url)
    if is_sqlite(url):
        engine = create_engine(
            url, echo=echo, poolclass=NullPool, connect_args={"check_same_thread": False, "timeout": 30}
        )
        sa.event.listen(engine, "connect", _configure_sqlite_connection)
        sa.event.listen(engine, "begin", _begin_immediate)
        return engine
    return create_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800
    )


def _configure_sqlite_connection(dbapi_connection: Any, connection_record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_immediate(connection: sa.Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """Owns the engine; hands out sessions whose boundary (request or task) commits."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = normalize_database_url(url)
        self.pool_size = pool_size
        self.engine = make_engine(self.url, pool_size=pool_size)

    def run_idempotent_write(self, work: Callable[[sa.Connection], T]) -> T:
        """Run `work` on a connection where each statement commits by itself, for writes safe to repeat.

        For one-statement writes on a hot path (the webhook): on PostgreSQL the connection comes from a pool
        of its own in autocommit, without the pre-ping round trip; a connection the server dropped fails its
        statement, and `work` runs once more on a fresh one. On SQLite it is one ordinary transaction.
        """
        if is_sqlite(self.url):
            with self.engine.begin() as connection:
                return work(connection)
        retrying = Retrying(retry=retry_if_exception(_connection_was_dropped), stop=stop_after_attempt(2), reraise=True)
        result: T = retrying(self._run_in_autocommit, work)
        return result

    def _run_in_autocommit(self, work: Callable[[sa.Connection], T]) -> T:
        with self._autocommit_engine.connect() as connection:
            return work(connection)

    @cached_property
    def _autocommit_engine(self) -> Engine:
        return create_engine(
            self.url,
            isolation_level="AUTOCOMMIT",
            pool_size=self.pool_size,
            max_overflow=self.pool_size,
            pool_recycle=1800,
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits when the block ends cleanly, rolls back on any exception."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def ping(self) -> None:
        """Raise when the database cannot answer a trivial query."""
        with self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    def dispose(self, *, close: bool = True) -> None:
        """Release the pools; `close=False` forgets connections inherited from a parent process without closing them."""
        self.engine.dispose(close=close)
        if "_autocommit_engine" in self.__dict__:  # only when it was ever used
            self._autocommit_engine.dispose(close=close)


def _connection_was_dropped(error: BaseException) -> bool:
    return isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated


_databases: dict[str, Database] = {}


def get_database() -> Database:
    """The process-wide Database for the configured URL (one engine and pool per process).

    The tables are not registered here (this module imports no model): each process's entry point imports
    `core.models` at start, so that every table a foreign key names is known before the first flush.
    """
    from core.settings import get_settings

    settings = get_settings()
    url = settings.resolved_database_url
    if url not in _databases:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        _databases[url] = Database(url, pool_size=settings.database_pool_size)
    return _databases[url]


def reset_databases() -> None:
    """Forget engines inherited from a parent process (prefork workers must open their own connections)."""
    for database in _databases.values():
        database.dispose(close=False)
    _databases.clear()

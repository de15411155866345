"""Fixtures shared by every test: the database and broker under test, settings, and worker processes.

The backend is chosen by environment, so the same tests run on the embedded default and scaled out:
CP_TEST_DATABASE = sqlite (default) | postgresql; CP_TEST_BROKER = embedded (default) | redis | rabbitmq.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

import core.models  # noqa: F401  # registers every table
from core import migrator
from core.catalog.loader import load_catalog, sync_catalog
from core.db import Database, make_engine
from core.models import metadata
from core.settings import DEFAULT_CATALOG_PATH, Settings
from emulators.suite import EmulatorSuite, EmulatorSuiteConfig, build_default_suite
from harness.emulator_environment import settings_for_emulators
from harness.processes import ProcessGroup, free_port, wait_until_listening

TEST_DATABASE = os.environ.get("CP_TEST_DATABASE", "sqlite")
TEST_BROKER = os.environ.get("CP_TEST_BROKER", "embedded")
POSTGRES_URL = os.environ.get("CP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# Under pytest-xdist each worker gets a Redis database of its own (13, 12, ...): queues and buckets stay apart.
XDIST_WORKER_NUMBER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
REDIS_URL = os.environ.get("CP_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{13 - XDIST_WORKER_NUMBER}")
RABBITMQ_URL = os.environ.get("CP_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
# Catalog tables are loaded once per session; everything else is emptied after each test that commits.
CATALOG_TABLES = {"offers", "plans", "metered_dimensions", "plan_included_quantities"}
# Browser sessions outlive a test like a person's sign-in does: module-scoped visitors stay signed in.
KEPT_BETWEEN_TESTS = CATALOG_TABLES | {"browser_sessions"}


def pytest_report_header() -> str:
    return f"control plane backends: database={TEST_DATABASE} broker={TEST_BROKER}"


@contextlib.contextmanager
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database migrated to head with the catalog loaded: a SQLite file, or a PostgreSQL schema dropped after."""
    if TEST_DATABASE == "postgresql":
        schema = f"cp_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin = make_engine(POSTGRES_URL)
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    else:
        admin = None
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'controlplane.db'}"
    migrator.upgrade(url)
    database = Database(url)
    with database.session() as session:
        sync_catalog(session, load_catalog(DEFAULT_CATALOG_PATH))
    database.dispose()
    try:
        yield url
    finally:
        if admin is not None:
            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's database (see `migrated_database`)."""
    with migrated_database(tmp_path_factory) as url:
        yield url


@pytest.fixture(scope="session")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The broker under test, emptied of anything an earlier run left behind."""
    if TEST_BROKER == "redis":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        client.flushdb()
        client.close()
        return REDIS_URL
    if TEST_BROKER == "rabbitmq":
        from kombu import Connection

        with Connection(RABBITMQ_URL) as connection:
            channel = connection.default_channel
            channel.queue_declare(queue="celery", durable=True, auto_delete=False)
            channel.queue_purge("celery")
        return RABBITMQ_URL
    return f"sqla+sqlite:///{tmp_path_factory.mktemp('broker') / 'broker.db'}"


@pytest.fixture(scope="session")
def session_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def base_settings(database_url: str, broker_url: str, session_data_dir: Path) -> Settings:
    """Settings for the processes under test (no external service is called with these credentials)."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=session_data_dir,
        database_url=database_url,
        broker_url=broker_url,
        publisher_tenant_id="00000000-0000-0000-0000-00000000aaaa",
        publisher_client_id="00000000-0000-0000-0000-00000000bbbb",
        publisher_client_secret="not-used-by-these-tests",
        log_format="json",
        outbox_poll_interval_seconds=0.2,
    )


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A Database whose committed rows are removed after the test (for work that crosses processes)."""
    database = Database(database_url)
    yield database
    with database.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            if table.name not in KEPT_BETWEEN_TESTS:
                connection.execute(table.delete())
    database.dispose()


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test: nothing it writes survives."""
    engine = make_engine(database_url)
    with engine.connect() as connection:
        transaction = connection.begin()
        with Session(bind=connection, join_transaction_mode="create_savepoint") as test_session:
            yield test_session
        transaction.rollback()
    engine.dispose()


@pytest.fixture(scope="module")
def worker_processes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, base_settings: Settings
) -> Iterator[ProcessGroup]:
    """One `controlplane worker` process for the module, on the database and broker under test."""
    environment = {**os.environ, **base_settings.as_environment()}
    group = ProcessGroup(tmp_path_factory.mktemp("logs"), environment)
    group.add("worker", "worker", "--concurrency=2")
    group.start_all()
    yield group
    group.stop_all()


def start_api(log_dir: Path, settings: Settings, **overrides: str) -> tuple[ProcessGroup, str]:
    """Start `controlplane api` on a free port and wait for it to listen; returns the group and base URL."""
    port = free_port()
    environment = {**os.environ, **settings.as_environment(), "CP_API_PORT": str(port), **overrides}
    group = ProcessGroup(log_dir, environment)
    group.add("api", "api")
    group.start_all()
    base_url = f"http://127.0.0.1:{port}"
    wait_until_listening(base_url, timeout_seconds=120, group=group)
    return group, base_url


@pytest.fixture(scope="module")
def api_base_url(tmp_path_factory: pytest.TempPathFactory, base_settings: Settings) -> Iterator[str]:
    """A real API process for the module, on the database and broker under test."""
    group, base_url = start_api(tmp_path_factory.mktemp("api-logs"), base_settings)
    yield base_url
    group.stop_all()


@pytest.fixture(scope="session")
def emulator_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorSuite]:
    """Entra ID, Marketplace and ARM emulators for the whole session, on loopback HTTPS ports."""
    suite = build_default_suite(
        EmulatorSuiteConfig(
            state_dir=tmp_path_factory.mktemp("emulators"), seed=20261126, catalog_path=DEFAULT_CATALOG_PATH
        )
    )
    suite.start()
    yield suite
    suite.stop()


@pytest.fixture(scope="session")
def app_settings(emulator_suite: EmulatorSuite, base_settings: Settings) -> Settings:
    """Settings for the processes under test, pointed at the emulators (database and broker as base_settings)."""
    return settings_for_emulators(
        emulator_suite.state(),
        data_dir=base_settings.data_dir,
        database_url=base_settings.database_url,
        broker_url=base_settings.broker_url,
        log_format="json",
        outbox_poll_interval_seconds=0.2,
        session_secret="test-session-secret-" + uuid.uuid4().hex,
        # A loaded 2-core test machine can take longer than the production 5 s for one Marketplace round trip;
        # the budget's own tests (landing/test_marketplace_outage.py) still bound it well below their limit.
        marketplace_request_budget_seconds=10.0,
    )

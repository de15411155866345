"""A release never serves a schema older than its migrations, and a database outage is a 503, never a 500."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from core import migrator
from core.db import make_engine
from core.settings import Settings
from emulators.suite import EmulatorSuite
from tests.conftest import TEST_DATABASE, start_api
from tests.integration.lifecycle.marketplace_driver import Emulators
from tests.support.factories import webhook_payload

pytestmark = pytest.mark.skipif(TEST_DATABASE != "sqlite", reason="each test makes a SQLite file of its own")
PREVIOUS_REVISION = "0006"


def _database_at(tmp_path: Path, revision: str) -> str:
    url = f"sqlite:///{tmp_path / 'schema.db'}"
    migrator.upgrade(url, revision)
    return url


def _run_command(command: str, settings: Settings, database_url: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **settings.as_environment(), "CP_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", command],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("command", ["api", "worker"])
def test_the_api_and_the_worker_refuse_to_start_on_an_older_schema(
    tmp_path: Path, base_settings: Settings, command: str
) -> None:
    database_url = _database_at(tmp_path, PREVIOUS_REVISION)

    finished = _run_command(command, base_settings, database_url)

    assert finished.returncode == 2, finished.stderr[-2000:]
    assert "refusing to start: the database schema is at " in finished.stderr
    assert PREVIOUS_REVISION in finished.stderr
    assert "run `controlplane migrate` first" in finished.stderr


def test_an_unmigrated_database_is_refused_too(tmp_path: Path, base_settings: Settings) -> None:
    finished = _run_command("api", base_settings, f"sqlite:///{tmp_path / 'empty.db'}")

    assert finished.returncode == 2
    assert "no revision (an unmigrated database)" in finished.stderr


def test_readyz_is_not_ready_while_the_schema_is_behind(tmp_path: Path, base_settings: Settings) -> None:
    database_url = _database_at(tmp_path, "heads")
    group, base_url = start_api(tmp_path / "logs", base_settings, CP_DATABASE_URL=database_url)
    try:
        assert httpx.get(f"{base_url}/readyz", timeout=30).json()["checks"]["schema"] == "ok"
        migrator.downgrade(database_url, PREVIOUS_REVISION)  # restored from an old backup, say
        behind = httpx.get(f"{base_url}/readyz", timeout=30)
        migrator.upgrade(database_url)
        again = httpx.get(f"{base_url}/readyz", timeout=30)
    finally:
        group.stop_all()

    assert behind.status_code == 503
    assert behind.json()["checks"]["schema"].startswith("behind: the database schema is at ")
    assert PREVIOUS_REVISION in behind.json()["checks"]["schema"]
    assert behind.json()["checks"]["database"] == "ok"
    assert (again.status_code, again.json()["checks"]["schema"]) == (200, "ok")


def test_a_schema_newer_than_this_release_does_not_make_it_unready(tmp_path: Path) -> None:
    """During a rolling upgrade the new release migrates first; the old processes keep serving."""
    engine = make_engine(_database_at(tmp_path, "heads"))
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0099_from_a_later_release'")
        state = migrator.schema_state(engine)
        migrator.require_schema_at_head(engine)
    finally:
        engine.dispose()
    assert (state.at_head, state.behind) == (False, False)


def test_the_webhook_answers_503_with_retry_after_while_the_database_is_unavailable(
    tmp_path: Path, app_settings: Settings, emulator_suite: EmulatorSuite
) -> None:
    # A folder that does not exist: SQLite cannot open the file, as a stopped PostgreSQL cannot be reached.
    unavailable = f"sqlite:///{tmp_path / 'gone' / 'controlplane.db'}"
    group, base_url = start_api(tmp_path / "logs", app_settings, CP_DATABASE_URL=unavailable)
    emulators = Emulators(emulator_suite)
    try:
        response = httpx.post(
            f"{base_url}/marketplace/webhook",
            json=webhook_payload(),
            headers={"Authorization": f"Bearer {emulators.webhook_token()}"},
            timeout=30,
        )
        ready = httpx.get(f"{base_url}/readyz", timeout=30)
    finally:
        emulators.close()
        group.stop_all()

    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "10"
    assert response.json()["error"]["code"] == "DatabaseUnavailable"
    assert ready.status_code == 503

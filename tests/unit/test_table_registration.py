"""Each process registers every table at its start: `core.db` imports no model, so the entry points do.

A flush resolves foreign keys through the metadata, so a process that had not imported a referenced table would
fail on its first write. Each entry point is imported in a fresh interpreter, which then creates every table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.models import metadata

REPOSITORY = Path(__file__).resolve().parents[2]
# The modules a process starts from: the API's app factory, and the Celery app that workers, beat and relay load.
ENTRY_POINTS = ["server.app", "workers.celery_app"]
CREATE_EVERY_TABLE = """
import json, sys
import sqlalchemy as sa
from sqlmodel import SQLModel
import {entry_point}
SQLModel.metadata.create_all(sa.create_engine("sqlite://"))  # raises when a foreign key names an unknown table
json.dump(sorted(SQLModel.metadata.tables), sys.stdout)
"""
# The settings the Celery app reads when it is built; nothing here reaches Azure, a database or a broker.
REQUIRED_SETTINGS = {
    "CP_PUBLISHER_TENANT_ID": "00000000-0000-0000-0000-000000000001",
    "CP_PUBLISHER_CLIENT_ID": "00000000-0000-0000-0000-000000000002",
    "CP_PUBLISHER_CLIENT_SECRET": "a-secret",
}


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_entry_point_registers_every_table(entry_point: str, tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", CREATE_EVERY_TABLE.format(entry_point=entry_point)],
        cwd=REPOSITORY,
        env={**os.environ, **REQUIRED_SETTINGS, "CP_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == sorted(metadata.tables)


def test_the_database_module_registers_no_table() -> None:
    script = "import core.db; from sqlmodel import SQLModel; print(len(SQLModel.metadata.tables))"
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=REPOSITORY, capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "0"

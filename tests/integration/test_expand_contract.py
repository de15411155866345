"""Expand, then contract: the previous release keeps working on the schema the latest migration made.

An upgrade runs the migration job first and only then starts the new revisions; until the old revisions are gone
they serve on the new schema. So the test takes the previous release's code from git (the commit before the one
that added the latest migration, found from the migrations, not by name), lets it migrate and record a purchase,
migrates to head with this code, and runs the previous release against the result: its model-level read and write
of the tables the latest migration touched (and of a purchase), after passing its own start-up schema gate.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from core import migrator
from core.db import make_engine
from tests.conftest import POSTGRES_URL, TEST_DATABASE

pytestmark = pytest.mark.timeout(120)

REPOSITORY = Path(__file__).resolve().parents[2]
# What the previous release needs to run: its packages, its data and its test factories.
RELEASE_PATHS = ("core", "api", "portal", "workers", "billing", "cli", "armexpr", "catalog", "arm_templates", "tests")
SLICE = REPOSITORY / "tests" / "support" / "previous_release_slice.py"


def git(*arguments: str) -> str:
    done = subprocess.run(["git", "-C", str(REPOSITORY), *arguments], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LookupError(done.stderr.strip() or f"git {' '.join(arguments)} failed")
    return done.stdout.strip()


def latest_migration() -> tuple[str, Path]:
    """The head revision of this code's migrations and its file."""
    script = ScriptDirectory.from_config(migrator.alembic_config("sqlite://"))
    heads = script.get_heads()
    assert len(heads) == 1, f"the migrations have several heads, merge them first: {heads}"
    revision = script.get_revision(heads[0])
    assert revision is not None
    return revision.revision, Path(revision.path)


def previous_release() -> str:
    """The commit before the one that added the latest migration (HEAD itself while that file is uncommitted)."""
    try:
        git("rev-parse", "--verify", "HEAD")
    except (LookupError, FileNotFoundError) as error:
        pytest.skip(f"no git history to take the previous release from ({error})")
    _, path = latest_migration()
    relative = path.relative_to(REPOSITORY).as_posix()
    try:
        git("cat-file", "-e", f"HEAD:{relative}")
    except LookupError:
        return git("rev-parse", "HEAD")
    added = git("log", "--diff-filter=A", "--format=%H", "-n", "1", "--", relative)
    if not added:
        pytest.skip(f"git history does not show when {relative} was added (a shallow clone?)")
    try:
        return git("rev-parse", f"{added}^")
    except LookupError:
        pytest.skip(f"the commit that added {relative} has no parent in this clone (a shallow clone?)")


@pytest.fixture(scope="module")
def previous_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's tree, exported with `git archive` (no worktree is registered)."""
    commit = previous_release()
    folder = tmp_path_factory.mktemp("previous-release")
    present = [path for path in RELEASE_PATHS if git("ls-tree", "--name-only", commit, path)]
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", "--format=tar", commit, *present], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    shutil.copy(SLICE, folder / "previous_release_slice.py")
    (folder / "COMMIT").write_text(commit)
    return folder


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    if TEST_DATABASE != "postgresql":
        yield f"sqlite:///{tmp_path / 'controlplane.db'}"
        return
    schema = f"cp_expand_{os.getpid()}_{tmp_path.name[-6:].lower().replace('-', '_')}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def release_environment(code: Path, database_url: str, data_dir: Path) -> dict[str, str]:
    """The previous release's process environment: its code first on the path, settings only from here."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("CP_")}
    environment.update(
        PYTHONPATH=str(code),
        CP_DATABASE_URL=database_url,
        CP_DATA_DIR=str(data_dir),
        CP_PUBLISHER_TENANT_ID="00000000-0000-4000-8000-000000000001",
        CP_PUBLISHER_CLIENT_ID="00000000-0000-4000-8000-000000000002",
        CP_PUBLISHER_CLIENT_SECRET="previous-release-test",
        CP_LOG_FORMAT="console",
    )
    return environment


def run_previous(code: Path, environment: dict[str, str], *arguments: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, *arguments], cwd=code, env=environment, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"the previous release failed: {arguments}\n{done.stdout}\n{done.stderr}"
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def schema_shape(url: str) -> dict[str, set[str]]:
    engine = make_engine(url)
    try:
        inspector = sa.inspect(engine)
        return {
            table: {column["name"] for column in inspector.get_columns(table)} for table in inspector.get_table_names()
        }
    finally:
        engine.dispose()


def test_the_previous_release_works_on_the_schema_of_the_latest_migration(
    previous_code: Path, empty_database_url: str, tmp_path: Path
) -> None:
    head, _ = latest_migration()
    environment = release_environment(previous_code, empty_database_url, tmp_path)

    # The previous release as it ran before the upgrade: its own migrations and catalog, a purchase recorded.
    earlier = run_previous(previous_code, environment, "previous_release_slice.py", "write", empty_database_url)
    assert earlier["code"].startswith(str(previous_code)), "the previous release must run its own code"
    before = schema_shape(empty_database_url)

    # The migration job of this release.
    migrator.upgrade(empty_database_url)
    after = schema_shape(empty_database_url)
    engine = make_engine(empty_database_url)
    assert migrator.schema_state(engine).current == frozenset({head})
    engine.dispose()
    touched = sorted(name for name in after if before.get(name) != after[name])
    assert touched, f"the latest migration {head} changed no table the schema shows"

    # The old revisions, still serving: model-level read and write on the new schema.
    result = run_previous(
        previous_code,
        environment,
        "previous_release_slice.py",
        "read-write",
        empty_database_url,
        json.dumps(touched),
        json.dumps(earlier["wrote"]),
    )
    assert set(result["wrote"]) == {"tenant", "subscription", "operation", "cluster"}
    # Every touched table the previous release already had was read through its columns and models.
    assert set(result["read"]) == {name for name in touched if name in before}
    assert not result["read"] or result["models"]

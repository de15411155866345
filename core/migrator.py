"""Run Alembic migrations programmatically (CLI `controlplane migrate`, tests, sandbox)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from core.db import normalize_database_url
from core.errors import ConfigurationError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str, connection: Connection | None = None) -> Config:
    """An Alembic config pointing at our migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on '%' in passwords.
    config.set_main_option("sqlalchemy.url", normalize_database_url(database_url).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(database_url: str, revision: str = "heads") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


class SchemaBehind(ConfigurationError):
    """The database's schema is not at the migrations' head: this code would fail on it, so it must not serve."""

    code = "SchemaBehind"


@dataclass(frozen=True)
class SchemaState:
    """The database's applied revisions against the revisions of the migrations this code ships with."""

    current: frozenset[str]
    heads: frozenset[str]
    known: frozenset[str]

    @property
    def at_head(self) -> bool:
        return self.current == self.heads

    @property
    def behind(self) -> bool:
        """Older than this code: empty, or every applied revision is one of ours but not our head.

        A revision we do not know is a newer release's (its migration ran before its processes started, while
        ours still serve): that is ahead, not behind, and does not stop us.
        """
        return not self.at_head and self.current <= self.known

    def describe(self) -> str:
        current = ", ".join(sorted(self.current)) or "no revision (an unmigrated database)"
        return f"the database schema is at {current}; this release needs {', '.join(sorted(self.heads))}"


@cache
def _script() -> tuple[frozenset[str], frozenset[str]]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return frozenset(script.get_heads()), frozenset(revision.revision for revision in script.walk_revisions())


def migration_heads() -> frozenset[str]:
    """The head revisions of the migrations this code ships with."""
    return _script()[0]


def schema_state(engine: Engine) -> SchemaState:
    """What the database holds against what this code needs (one small query)."""
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    heads, known = _script()
    return SchemaState(frozenset(current), heads, known)


def require_schema_at_head(engine: Engine) -> None:
    """SchemaBehind (naming both revisions and the fix) when the schema is older than this code."""
    state = schema_state(engine)
    if state.behind:
        raise SchemaBehind(f"{state.describe()}: run `controlplane migrate` first")

"""Settings for a CLI command: read once, JSON logging configured, a clear exit when they are invalid."""

from __future__ import annotations

import logging

import typer

from core.errors import ConfigurationError
from core.settings import Settings


def require_schema_or_exit(settings: Settings) -> None:
    """Exit with code 2 and a message naming both revisions when the database schema is older than this code.

    An unreachable database does not stop the start: the process answers 503 and /readyz says why until it is back.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from core.db import make_engine
    from core.migrator import SchemaBehind, require_schema_at_head

    engine = make_engine(settings.resolved_database_url)
    try:
        require_schema_at_head(engine)
    except SchemaBehind as error:
        typer.secho(f"refusing to start: {error.message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    except SQLAlchemyError as error:
        logging.getLogger(__name__).warning(
            "database unreachable at start; the schema is checked by /readyz", extra={"error": type(error).__name__}
        )
    finally:
        engine.dispose()


def settings_or_exit() -> Settings:
    """The process settings; on invalid settings print the message naming them and exit with code 2."""
    from core.logging import configure_logging
    from core.settings import get_settings

    try:
        settings = get_settings()
    except ConfigurationError as error:
        typer.secho(str(error), fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    configure_logging(settings.log_level, settings.log_format)
    return settings

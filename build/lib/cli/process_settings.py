"""Settings for a CLI command: read once, JSON logging configured, a clear exit when they are invalid."""

from __future__ import annotations

import typer

from core.errors import ConfigurationError
from core.settings import Settings


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

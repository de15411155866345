"""Every command of both command lines explains itself (`--help` text for it and each of its options) and has
its line in the README's command table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer

from cli.main import app as operator_app
from harness.checkout import REPOSITORY_ROOT
from harness.cli import app as tooling_app


def commands(command: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every leaf command under `command` with its full invocation."""
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield path, command
        return
    for name, subcommand in subcommands.items():
        yield from commands(subcommand, f"{path} {name}")


ALL_COMMANDS = [
    *commands(typer.main.get_command(operator_app), "controlplane"),
    *commands(typer.main.get_command(tooling_app), "python -m harness"),
]


@pytest.mark.parametrize(("invocation", "command"), ALL_COMMANDS, ids=[path for path, _ in ALL_COMMANDS])
def test_every_command_and_option_has_help_text(invocation: str, command: Any) -> None:
    assert (command.help or "").strip(), f"{invocation} has no help text"
    silent = [parameter.name for parameter in command.params if not (getattr(parameter, "help", None) or "").strip()]
    assert silent == [], f"{invocation}: options without help text"


def test_every_command_has_a_line_in_the_readme() -> None:
    readme = (REPOSITORY_ROOT / "README.md").read_text()
    table = readme.split("\n## The command line\n", 1)[1].split("\n## ", 1)[0]
    missing = [invocation for invocation, _ in ALL_COMMANDS if f"| `{invocation}` |" not in table]
    assert missing == []


def test_the_operator_command_offers_no_tooling() -> None:
    operator = {invocation.split(" ", 1)[1] for invocation, _ in ALL_COMMANDS if invocation.startswith("controlplane")}
    assert not operator & {"sandbox", "emulators"}

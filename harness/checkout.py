"""The source checkout the harness runs from (the tests build the wheel from it; Azurite is installed under it)."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


def shipped_packages() -> set[str]:
    """The top-level packages the wheel is built from (pyproject's package list): the runtime."""
    pyproject = tomllib.loads((REPOSITORY_ROOT / "pyproject.toml").read_text())
    return {pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}

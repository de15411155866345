"""The image holds what the wheel ships and nothing else: no emulators, harness, benchmarks or tests."""

from __future__ import annotations

import tomllib

from harness.checkout import REPOSITORY_ROOT

TOOLING = {"emulators", "harness", "bench", "tests", "tools"}


def shipped_packages() -> set[str]:
    """The top-level packages the wheel is built from (pyproject's package list)."""
    pyproject = tomllib.loads((REPOSITORY_ROOT / "pyproject.toml").read_text())
    return {pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}


def test_the_wheel_ships_no_tooling() -> None:
    assert shipped_packages().isdisjoint(TOOLING)


def test_the_image_copies_the_shipped_packages_and_nothing_else() -> None:
    copied = {
        source
        for line in (REPOSITORY_ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
        for source in line.split()[1:-1]
    }
    assert copied == shipped_packages() | {"pyproject.toml", "README.md"}

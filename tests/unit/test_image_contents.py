"""The image holds what the wheel ships and nothing else: no emulators, harness, benchmarks or tests."""

from __future__ import annotations

from harness.checkout import REPOSITORY_ROOT, shipped_packages

TOOLING = {"emulators", "harness", "bench", "tests", "tools"}


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

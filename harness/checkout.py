"""The source checkout the harness runs from (the tests build the wheel from it; Azurite is installed under it)."""

from __future__ import annotations

from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent

"""Every file the README names is in the repository (so the README cites nothing a reader cannot open)."""

from __future__ import annotations

import re

from harness.checkout import REPOSITORY_ROOT

# A path in backticks: folders and a file name with an extension, optionally a test inside it (`file.py::test`).
NAMED_FILE = re.compile(r"`([\w.-]+(?:/[\w.-]+)+\.(?:py|toml|json|md|yml|yaml|html|css|js|ini|mako))(?:::\w+)?`")
# The Guarantees table names tests relative to the test folders.
BASES = (REPOSITORY_ROOT, REPOSITORY_ROOT / "tests", REPOSITORY_ROOT / "tests" / "integration")


def test_every_file_the_readme_names_exists() -> None:
    named = set(NAMED_FILE.findall((REPOSITORY_ROOT / "README.md").read_text()))
    assert len(named) > 20, "the pattern finds the README's file names"
    missing = sorted(path for path in named if not any((base / path).is_file() for base in BASES))
    assert missing == []

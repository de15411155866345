"""What the template checker reports: one finding per broken rule, located by file and JSON path."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, order=True)
class Finding:
    """One rule violation: `file` relative to the checked root, `path` a JSON path like `$.resources[2].apiVersion`."""

    file: str
    path: str
    rule: str
    message: str


def child_path(parent: str, key: str | int) -> str:
    """The JSON path of `key` below `parent`: `.name` for identifiers, `[3]` for indexes, `['$schema']` otherwise."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if _IDENTIFIER.match(key):
        return f"{parent}.{key}"
    escaped = key.replace("'", "\\'")
    return f"{parent}['{escaped}']"


def format_findings(findings: Iterable[Finding]) -> str:
    """Render findings one per line as `file: path: [rule] message`, plus a closing count line."""
    ordered = sorted(findings)
    lines = [f"{finding.file}: {finding.path}: [{finding.rule}] {finding.message}" for finding in ordered]
    lines.append(f"{len(ordered)} finding(s)" if ordered else "no findings")
    return "\n".join(lines)

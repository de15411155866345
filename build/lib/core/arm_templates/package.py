"""Builds the managed application package Partner Center takes: a zip with the three files at its root.

The bytes are deterministic (fixed timestamps, permissions and order), so the same sources always give
the same package, and nothing is built while the checker reports findings.
"""

from __future__ import annotations

import io
import zipfile
from datetime import date
from pathlib import Path

from core.arm_templates.checker import check_repository_templates
from core.arm_templates.composer import MAIN_TEMPLATE_PATH, MANAGED_APP_FOLDER, compose_main_template, render_json
from core.arm_templates.findings import Finding, format_findings

PACKAGE_FILES = ("mainTemplate.json", "createUiDefinition.json", "viewDefinition.json")
# Partner Center refuses managed application packages above 120 MB.
MAXIMUM_PACKAGE_BYTES = 120 * 1024 * 1024
# The earliest timestamp a zip entry can hold; any fixed value makes the bytes reproducible.
FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)


class PackageError(Exception):
    """The package cannot be built: the sources have findings, are stale or the result is too large."""

    def __init__(self, message: str, findings: list[Finding] | None = None) -> None:
        super().__init__(message)
        self.findings = findings or []


def validate_sources(root: Path, today: date | None = None) -> None:
    """Raise PackageError when the checker finds anything or mainTemplate.json is not what the composer makes."""
    findings = check_repository_templates(root, today)
    if findings:
        raise PackageError(f"templates have findings:\n{format_findings(findings)}", findings)
    checked_in = (root / MAIN_TEMPLATE_PATH).read_text(encoding="utf-8")
    if checked_in != render_json(compose_main_template(root)):
        raise PackageError("mainTemplate.json is stale: regenerate it with `python -m core.arm_templates.composer`")


def package_bytes(root: Path, today: date | None = None) -> bytes:
    """The zip of the managed application package built from the repository at `root`, after validation."""
    validate_sources(root, today)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in PACKAGE_FILES:
            entry = zipfile.ZipInfo(name, date_time=FIXED_TIMESTAMP)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.create_system = 3  # Unix, so the permission bits below are honoured everywhere.
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, (root / MANAGED_APP_FOLDER / name).read_bytes())
    content = buffer.getvalue()
    if len(content) > MAXIMUM_PACKAGE_BYTES:
        raise PackageError(f"package is {len(content)} bytes, above the {MAXIMUM_PACKAGE_BYTES}-byte limit")
    return content


def write_package(root: Path, destination: Path, today: date | None = None) -> Path:
    """Build the package and write it to `destination` (a .zip path); returns that path."""
    content = package_bytes(root, today)
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_bytes(content)
    return destination

"""The managed application package: validated first, deterministic bytes, the three files at the zip root."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from datetime import date
from pathlib import Path

import pytest

from core.arm_templates.composer import MANAGED_APP_FOLDER
from core.arm_templates.package import (
    FIXED_TIMESTAMP,
    MAXIMUM_PACKAGE_BYTES,
    PACKAGE_FILES,
    PackageError,
    package_bytes,
    write_package,
)
from core.arm_templates.steps import FACADE_CLUSTER_FOLDER

pytestmark = pytest.mark.timeout(30)

REPOSITORY = Path(__file__).resolve().parents[2]
REVIEWED_ON = date(2026, 11, 26)


@pytest.fixture
def repository_copy(tmp_path: Path) -> Path:
    """A scratch copy of the templates, so a test can break them without touching the working tree."""
    shutil.copytree(REPOSITORY / "arm_templates", tmp_path / "arm_templates")
    return tmp_path


def test_package_holds_the_three_files_at_its_root() -> None:
    content = package_bytes(REPOSITORY, REVIEWED_ON)
    assert len(content) < MAXIMUM_PACKAGE_BYTES
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == list(PACKAGE_FILES)
        for entry in archive.infolist():
            assert entry.date_time == FIXED_TIMESTAMP
            assert archive.read(entry) == (REPOSITORY / MANAGED_APP_FOLDER / entry.filename).read_bytes()


def test_package_bytes_are_deterministic(tmp_path: Path) -> None:
    first = write_package(REPOSITORY, tmp_path / "first" / "package.zip", REVIEWED_ON)
    second = write_package(REPOSITORY, tmp_path / "second" / "package.zip", REVIEWED_ON)
    assert first.read_bytes() == second.read_bytes()


def test_package_refuses_sources_with_findings(repository_copy: Path) -> None:
    ui_path = repository_copy / MANAGED_APP_FOLDER / "createUiDefinition.json"
    ui = json.loads(ui_path.read_text(encoding="utf-8"))
    del ui["parameters"]["outputs"]["keySize"]
    ui_path.write_text(json.dumps(ui), encoding="utf-8")
    with pytest.raises(PackageError) as refused:
        package_bytes(repository_copy, REVIEWED_ON)
    assert [(finding.rule, finding.file) for finding in refused.value.findings] == [
        ("ui-parameter-missing", "arm_templates/managed-app/createUiDefinition.json")
    ]


def test_package_refuses_a_stale_main_template(repository_copy: Path) -> None:
    dns_path = repository_copy / FACADE_CLUSTER_FOLDER / "dns.json"
    dns = json.loads(dns_path.read_text(encoding="utf-8"))
    dns["parameters"]["recordTimeToLiveSeconds"]["defaultValue"] = 600
    dns_path.write_text(json.dumps(dns), encoding="utf-8")
    with pytest.raises(PackageError, match="stale"):
        package_bytes(repository_copy, REVIEWED_ON)

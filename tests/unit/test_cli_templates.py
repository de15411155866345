"""`controlplane templates check|package` as the publisher runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from harness.checkout import REPOSITORY_ROOT


def _controlplane(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "templates", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_passes_on_the_repository() -> None:
    result = _controlplane("check")
    assert result.returncode == 0, result.stdout
    assert "no findings" in result.stdout


def test_check_names_file_path_and_rule_of_a_broken_template(tmp_path: Path) -> None:
    shutil.copytree(REPOSITORY_ROOT / "arm_templates", tmp_path / "arm_templates")
    template_path = tmp_path / "arm_templates" / "facade-cluster" / "private-link.json"
    template = json.loads(template_path.read_text())
    template["resources"][0]["apiVersion"] = "2019-04-01"
    template_path.write_text(json.dumps(template, indent=2))

    result = _controlplane("check", "--root", str(tmp_path))

    assert result.returncode == 1
    assert "arm_templates/facade-cluster/private-link.json: $.resources[0].apiVersion: [api-version-outdated]" in (
        result.stdout
    )


def test_package_holds_the_three_files_at_the_root(tmp_path: Path) -> None:
    destination = tmp_path / "managed-app.zip"
    result = _controlplane("package", str(destination))
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(destination) as archive:
        assert sorted(archive.namelist()) == ["createUiDefinition.json", "mainTemplate.json", "viewDefinition.json"]

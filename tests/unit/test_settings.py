"""Settings refuse to start without what they need, and say which setting is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ConfigurationError
from core.settings import Settings, load_settings

REQUIRED = {
    "CP_PUBLISHER_TENANT_ID": "00000000-0000-0000-0000-000000000001",
    "CP_PUBLISHER_CLIENT_ID": "00000000-0000-0000-0000-000000000002",
    "CP_PUBLISHER_CLIENT_SECRET": "a-secret",
}


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("CP_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env is read


@pytest.mark.usefixtures("clean_environment")
def test_missing_required_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CP_PUBLISHER_CLIENT_ID", REQUIRED["CP_PUBLISHER_CLIENT_ID"])
    monkeypatch.setenv("CP_PUBLISHER_CLIENT_SECRET", REQUIRED["CP_PUBLISHER_CLIENT_SECRET"])
    with pytest.raises(ConfigurationError, match="CP_PUBLISHER_TENANT_ID: Field required"):
        load_settings()


@pytest.mark.usefixtures("clean_environment")
def test_invalid_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CP_HTTP_TIMEOUT_SECONDS", "-3")
    with pytest.raises(ConfigurationError, match="CP_HTTP_TIMEOUT_SECONDS"):
        load_settings()


@pytest.mark.usefixtures("clean_environment")
def test_a_publisher_credential_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CP_PUBLISHER_TENANT_ID", REQUIRED["CP_PUBLISHER_TENANT_ID"])
    monkeypatch.setenv("CP_PUBLISHER_CLIENT_ID", REQUIRED["CP_PUBLISHER_CLIENT_ID"])
    with pytest.raises(ConfigurationError, match="CP_PUBLISHER_CLIENT_SECRET"):
        load_settings()


@pytest.mark.usefixtures("clean_environment")
def test_unknown_key_in_env_file_is_refused(tmp_path: Path) -> None:
    lines = [f"{name}={value}" for name, value in REQUIRED.items()] + ["CP_DATABSE_URL=sqlite://"]
    (tmp_path / ".env").write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigurationError, match="CP_DATABSE_URL"):
        load_settings()


@pytest.mark.usefixtures("clean_environment")
def test_secrets_do_not_print(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert "a-secret" not in repr(settings)
    assert settings.as_environment()["CP_PUBLISHER_CLIENT_SECRET"] == "a-secret"


def test_defaults_point_at_azure_public_cloud() -> None:
    settings = Settings(_env_file=None, **{name[3:].lower(): value for name, value in REQUIRED.items()})  # type: ignore[arg-type]
    assert settings.marketplace_fulfillment_base_url == "https://marketplaceapi.microsoft.com/api/saas"
    assert settings.arm_endpoint == "https://management.azure.com"
    assert settings.entra_authority_host == "https://login.microsoftonline.com"


def test_process_start_fails_with_a_clear_message(tmp_path: Path) -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("CP_")}
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "migrate"],
        cwd=tmp_path,
        env={**environment, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "CP_PUBLISHER_TENANT_ID: Field required" in result.stderr


def test_cli_lists_its_subcommands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    for command in ("api", "worker", "beat", "migrate", "relay", "probe", "catalog", "templates", "billing"):
        assert f" {command} " in result.stdout
    tooling = subprocess.run(
        [sys.executable, "-m", "harness", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    for command in ("emulators", "sandbox"):
        assert f" {command} " in tooling.stdout
        assert f" {command} " not in result.stdout

"""The deployment's settings as operators may read them: endpoints and tuning shown, secrets never."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from core.redaction import redact_url
from core.settings import Settings

# Endpoint settings first: they say whether this deployment talks to Azure or to local emulators.
ENDPOINT_SETTINGS = (
    "entra_authority_host",
    "marketplace_fulfillment_base_url",
    "marketplace_metering_base_url",
    "marketplace_api_version",
    "arm_endpoint",
    "ca_bundle",
    "public_base_url",
    "publisher_tenant_id",
    "publisher_client_id",
    "control_plane_client_id",
)


@dataclass(frozen=True)
class SettingLine:
    """One setting as shown: its environment variable, its value (or whether a secret is set)."""

    variable: str
    value: str
    secret: bool


def setting_lines(settings: Settings) -> tuple[list[SettingLine], list[SettingLine]]:
    """(endpoint settings, every other setting), each as CP_* variables with secrets replaced by set/not set."""
    lines: dict[str, SettingLine] = {}
    for name in sorted(type(settings).model_fields):
        value = getattr(settings, name)
        variable = f"CP_{name.upper()}"
        if isinstance(value, SecretStr):
            lines[name] = SettingLine(variable, "set" if value.get_secret_value() else "not set", True)
        elif value is None:
            lines[name] = SettingLine(variable, "not set", False)
        else:
            text = str(value)
            lines[name] = SettingLine(variable, redact_url(text) if "://" in text else text, False)
    endpoints = [lines[name] for name in ENDPOINT_SETTINGS if name in lines]
    others = [line for name, line in lines.items() if name not in ENDPOINT_SETTINGS]
    return endpoints, others

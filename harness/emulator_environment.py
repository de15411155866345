"""Point the control plane's settings at a running emulator suite (its emulators.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.settings import Settings


def settings_for_emulators(state: dict[str, Any], **overrides: Any) -> Settings:
    """Settings whose endpoints, app registrations and CA bundle are the emulators'; `overrides` win."""
    entra = state["entra"]
    apps = entra["apps"]
    publisher_app = apps["publisher-fulfillment"]
    control_plane_app = apps["control-plane"]
    values: dict[str, Any] = {
        "entra_authority_host": entra["authority_url"],
        "entra_disable_instance_discovery": True,
        "entra_v1_issuer_host": entra["sts_url"],
        "publisher_tenant_id": entra["publisher_tenant_id"],
        "publisher_client_id": publisher_app["client_id"],
        "publisher_client_secret": publisher_app["client_secret"],
        "control_plane_client_id": control_plane_app["client_id"],
        "control_plane_client_secret": control_plane_app["client_secret"],
        "marketplace_fulfillment_base_url": state["marketplace"]["fulfillment_base_url"],
        "marketplace_metering_base_url": state["marketplace"]["metering_base_url"],
        "ca_bundle": Path(state["ca_bundle"]),
    }
    if "arm" in state:
        values["arm_endpoint"] = state["arm"]["base_url"]
    if "facade" in state:
        values["cluster_metrics_url_template"] = state["facade"]["metrics_url_template"]
    if "loganalytics" in state:
        log_analytics = state["loganalytics"]
        values["monitor_ingestion_endpoint"] = log_analytics["endpoint"]
        values["monitor_dcr_immutable_id"] = log_analytics["dcr_immutable_id"]
    values.update(overrides)
    return Settings(_env_file=None, **values)

"""The Entra ID emulator alone, and the environment of an API process that trusts it: what the webhook benches need."""

from __future__ import annotations

import os
from pathlib import Path

from emulators.common.faults import FaultInjector
from emulators.entra import EntraEmulator
from emulators.entra.directory import DEFAULT_DIRECTORY_PATH, Directory
from emulators.suite import EmulatorSuite


def start_entra(suite: EmulatorSuite) -> tuple[EntraEmulator, dict[str, str]]:
    """Add the Entra emulator to `suite`, start it and return it with the API environment that trusts it."""
    entra = EntraEmulator(Directory.load(DEFAULT_DIRECTORY_PATH), FaultInjector())
    suite.add(entra)
    state = suite.start()["entra"]
    publisher_app = state["apps"]["publisher-fulfillment"]
    environment = {
        "CP_ENTRA_AUTHORITY_HOST": state["authority_url"],
        "CP_ENTRA_V1_ISSUER_HOST": state["sts_url"],
        "CP_PUBLISHER_TENANT_ID": state["publisher_tenant_id"],
        "CP_PUBLISHER_CLIENT_ID": publisher_app["client_id"],
        "CP_PUBLISHER_CLIENT_SECRET": publisher_app["client_secret"],
        "CP_CA_BUNDLE": str(suite.tls.ca_path),
        "CP_LOG_LEVEL": "WARNING",
    }
    return entra, environment


def api_environment(entra_environment: dict[str, str], state_dir: Path, port: int) -> dict[str, str]:
    """The process environment of an API on `port` keeping its state under `state_dir`."""
    return {**os.environ, **entra_environment, "CP_DATA_DIR": str(state_dir), "CP_API_PORT": str(port)}

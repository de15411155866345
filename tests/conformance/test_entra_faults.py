"""Fault injection on the Entra emulator: initial rules from options, and transient token-endpoint failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.identity import ClientSecretCredential

from emulators.entra import MARKETPLACE_APP_ID, EntraEmulator
from emulators.suite import EmulatorSuiteConfig

pytestmark = pytest.mark.timeout(30)


def test_initial_fault_rules_come_from_the_suite_options(tmp_path: Path) -> None:
    config = EmulatorSuiteConfig(
        state_dir=tmp_path,
        options={"entra_faults": [{"kind": "latency", "latency_ms": 5, "path_pattern": "/token$"}]},
    )
    rules = EntraEmulator.from_suite_config(config).faults.rules()
    assert [(rule.kind, rule.path_pattern) for rule in rules] == [("latency", "/token$")]


@pytest.fixture
def entra_faults(emulator_state: dict[str, Any], ca_bundle: Path) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator_state["entra"]["control_url"], verify=str(ca_bundle)) as client:
        yield client
        client.delete("/faults").raise_for_status()


def test_azure_identity_retries_a_throttled_token_request(
    entra_faults: httpx.Client, entra: EntraEmulator, emulator_state: dict[str, Any], ca_bundle: Path
) -> None:
    rule = {
        "kind": "status",
        "status": 429,
        "retry_after_seconds": 0,
        "path_pattern": "/oauth2/v2.0/token$",
        "count": 1,
    }
    assert entra_faults.post("/faults", json=rule).status_code == 201
    entra_state = emulator_state["entra"]
    app = entra_state["apps"]["publisher-fulfillment"]
    with ClientSecretCredential(
        entra_state["publisher_tenant_id"],
        app["client_id"],
        app["client_secret"],
        authority=entra_state["authority_url"],
        disable_instance_discovery=True,
        connection_verify=str(ca_bundle),
    ) as credential:
        token = credential.get_token(f"{MARKETPLACE_APP_ID}/.default").token
    assert entra.verify_access_token(token, audience=MARKETPLACE_APP_ID)["appid"] == app["client_id"]
    assert [item["hits"] for item in entra_faults.get("/faults").json()] == [1]

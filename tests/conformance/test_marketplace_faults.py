"""Fault injection on the Marketplace emulator, and the facts it publishes in emulators.json."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def marketplace_faults(emulator_state: dict[str, Any], ca_bundle: Path) -> Iterator[httpx.Client]:
    control_url = emulator_state["marketplace"]["control_url"]
    with httpx.Client(base_url=control_url, verify=str(ca_bundle)) as client:
        yield client
        client.delete("/faults").raise_for_status()


def test_throttling_fault_answers_429_with_retry_after_then_clears(
    marketplace_faults: httpx.Client, marketplace_api: httpx.Client
) -> None:
    rule = {"kind": "status", "status": 429, "retry_after_seconds": 3, "path_pattern": "^/api/usageEvents$", "count": 1}
    assert marketplace_faults.post("/faults", json=rule).status_code == 201
    throttled = marketplace_api.get("usageEvents", params={**marketplace_api.params, "usageStartDate": "2026-01-01"})
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "3"
    retried = marketplace_api.get("usageEvents", params={**marketplace_api.params, "usageStartDate": "2026-01-01"})
    assert retried.status_code == 200


def test_control_api_is_never_faulted(marketplace_faults: httpx.Client, marketplace_control: httpx.Client) -> None:
    marketplace_faults.post("/faults", json={"kind": "status", "status": 500}).raise_for_status()
    assert marketplace_control.get("/state").status_code == 200


def test_emulators_json_describes_the_marketplace(emulator_state: dict[str, Any]) -> None:
    marketplace = emulator_state["marketplace"]
    base = marketplace["base_url"]
    assert marketplace["fulfillment_base_url"] == f"{base}/api/saas"
    assert marketplace["metering_base_url"] == f"{base}/api"
    assert marketplace["control_url"] == f"{base}/_emulator"
    assert marketplace["token_scope"] == "20e940b3-4c77-4b0b-9a53-9e16a1b010a7/.default"
    entra = emulator_state["entra"]
    assert marketplace["publisher_app_ids"] == [entra["publisher_fulfillment_app_id"]]
    assert entra["apps"]["publisher-fulfillment"]["client_secret"]
    assert entra["apps"]["control-plane"]["client_secret"]

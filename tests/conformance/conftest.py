"""Emulator suite shared by the conformance tests: started once per session on a temporary state dir."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulators.entra import EntraEmulator
from emulators.marketplace import MarketplaceEmulator
from emulators.suite import EmulatorSuite, EmulatorSuiteConfig

# Short retry backoff and page size so webhook retries and paging are exercised quickly.
SUITE_OPTIONS: dict[str, Any] = {
    "marketplace_webhook_initial_backoff_seconds": 0.05,
    "marketplace_webhook_max_attempts": 4,
    "marketplace_page_size": 5,
}


@pytest.fixture(scope="session")
def emulator_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorSuite]:
    """Entra ID and Marketplace emulators on loopback ports (ARM joins here later)."""
    config = EmulatorSuiteConfig(state_dir=tmp_path_factory.mktemp("emulators"), options=dict(SUITE_OPTIONS))
    suite = EmulatorSuite(config)
    entra = EntraEmulator.from_suite_config(config)
    suite.add(entra)
    marketplace = MarketplaceEmulator.from_suite_config(config, entra)
    suite.add(marketplace)
    suite.start()
    yield suite
    suite.stop()


@pytest.fixture(scope="session")
def emulator_state(emulator_suite: EmulatorSuite) -> dict[str, Any]:
    """The emulators.json document."""
    return emulator_suite.state()


@pytest.fixture(scope="session")
def ca_bundle(emulator_suite: EmulatorSuite) -> Path:
    """The CA clients must trust."""
    return emulator_suite.tls.ca_path


@pytest.fixture(scope="session")
def entra(emulator_suite: EmulatorSuite) -> EntraEmulator:
    """The running Entra emulator."""
    component = emulator_suite.components["entra"]
    assert isinstance(component, EntraEmulator)
    return component


@pytest.fixture(scope="session")
def marketplace(emulator_suite: EmulatorSuite) -> MarketplaceEmulator:
    """The running Marketplace emulator."""
    component = emulator_suite.components["marketplace"]
    assert isinstance(component, MarketplaceEmulator)
    return component


@pytest.fixture
def marketplace_control(emulator_state: dict[str, Any], ca_bundle: Path) -> Iterator[httpx.Client]:
    """httpx client on the Marketplace control API; resets the clock and webhook URL afterwards."""
    with httpx.Client(base_url=emulator_state["marketplace"]["control_url"], verify=str(ca_bundle)) as client:
        yield client
        client.put("/clock", json={"offset_seconds": 0}).raise_for_status()
        client.put("/webhook", json={"url": None}).raise_for_status()


@pytest.fixture(scope="session")
def publisher_token(emulator_state: dict[str, Any], ca_bundle: Path) -> str:
    """A Marketplace API token of the publisher fulfilment app, from the token endpoint via azure-identity."""
    from azure.identity import ClientSecretCredential

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
        return credential.get_token(emulator_state["marketplace"]["token_scope"]).token


@pytest.fixture
def marketplace_api(emulator_state: dict[str, Any], ca_bundle: Path, publisher_token: str) -> Iterator[httpx.Client]:
    """httpx client on the Marketplace APIs (base `/api`) with the publisher token and api-version."""
    with httpx.Client(
        base_url=emulator_state["marketplace"]["metering_base_url"],
        verify=str(ca_bundle),
        headers={"Authorization": f"Bearer {publisher_token}"},
        params={"api-version": emulator_state["marketplace"]["api_version"]},
    ) as client:
        yield client


@pytest.fixture
def purchase(marketplace_control: httpx.Client, emulator_state: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """Buy a plan as a Contoso admin through the control API; returns the purchase answer."""
    contoso = emulator_state["entra"]["users"]["contoso-admin"]

    def buy(plan_id: str = "standard", **options: Any) -> dict[str, Any]:
        beneficiary = {
            "tenant_id": contoso["tenant_id"],
            "email": contoso["username"],
            "object_id": contoso["object_id"],
        }
        response = marketplace_control.post(
            "/purchases", json={"plan_id": plan_id, "beneficiary": beneficiary, **options}
        )
        assert response.status_code == 201, response.text
        answer: dict[str, Any] = response.json()
        return answer

    return buy


# --- ARM and Key Vault emulator (owned by the ARM emulator engineer) ---------------------------------------------
# The ARM component is served beside the session suite with the suite's CA and Entra emulator; once the suite
# fixture adds `build_arm_components`, `arm_emulator` can simply return `emulator_suite.components["arm"]`.

ARM_DEPLOYMENT_SECONDS = 0.2


@pytest.fixture(scope="session")
def arm_emulator(emulator_suite: EmulatorSuite, entra: EntraEmulator) -> Iterator[Any]:
    """The running ARM emulator (with its Key Vault data planes), sharing the suite's CA and Entra ID."""
    import dataclasses

    from emulators.arm import ArmEmulator
    from emulators.common.server import EmulatorServer

    config = dataclasses.replace(emulator_suite.config, arm_deployment_seconds=ARM_DEPLOYMENT_SECONDS)
    component = ArmEmulator(config, entra)
    component.use_certificate_authority(emulator_suite.tls)
    server = EmulatorServer("arm", component.asgi_app(), emulator_suite.tls, host=config.host)
    component.on_started(server.start())
    yield component
    component.stop()
    server.stop()


@pytest.fixture(scope="session")
def arm_state(arm_emulator: Any) -> dict[str, Any]:
    """The ARM emulator's describe() document (what emulators.json holds under "arm")."""
    state: dict[str, Any] = arm_emulator.describe()
    return state


@pytest.fixture(scope="session")
def arm_subscriptions(arm_state: dict[str, Any], emulator_state: dict[str, Any]) -> dict[str, str]:
    """Default subscription id per tenant key ("publisher", "contoso", "fabrikam")."""
    tenant_keys = {tenant["id"]: key for key, tenant in emulator_state["entra"]["tenants"].items()}
    return {tenant_keys[item["tenant_id"]]: item["id"] for item in arm_state["subscriptions"]}


@pytest.fixture(scope="session")
def arm_credential_for(emulator_state: dict[str, Any], ca_bundle: Path) -> Callable[[str], Any]:
    """azure-identity ClientSecretCredential of the control-plane app in a tenant (by tenant key)."""
    from azure.identity import ClientSecretCredential

    entra_state = emulator_state["entra"]
    app = entra_state["apps"]["control-plane"]

    def credential(tenant_key: str) -> ClientSecretCredential:
        return ClientSecretCredential(
            entra_state["tenants"][tenant_key]["id"],
            app["client_id"],
            app["client_secret"],
            authority=entra_state["authority_url"],
            disable_instance_discovery=True,
            connection_verify=str(ca_bundle),
        )

    return credential


@pytest.fixture(scope="session")
def arm_client_options(arm_state: dict[str, Any], ca_bundle: Path) -> dict[str, Any]:
    """Keyword arguments every azure-mgmt-* client needs to talk to the emulator."""
    return {
        "base_url": arm_state["base_url"],
        "credential_scopes": arm_state["credential_scopes"],
        "connection_verify": str(ca_bundle),
    }


@pytest.fixture(scope="session")
def arm_mgmt_client(
    arm_credential_for: Callable[[str], Any], arm_subscriptions: dict[str, str], arm_client_options: dict[str, Any]
) -> Callable[..., Any]:
    """Build any azure-mgmt-* client for the control-plane app in a tenant's default subscription."""

    def build(client_class: Any, tenant_key: str = "contoso", subscription_id: str | None = None, **extra: Any) -> Any:
        return client_class(
            arm_credential_for(tenant_key),
            subscription_id or arm_subscriptions[tenant_key],
            **{**arm_client_options, **extra},
        )

    return build


@pytest.fixture
def arm_control(arm_state: dict[str, Any], ca_bundle: Path) -> Iterator[httpx.Client]:
    """httpx client on the ARM control API; fault rules are cleared afterwards."""
    with httpx.Client(base_url=arm_state["control_url"], verify=str(ca_bundle)) as client:
        yield client
        client.delete("/faults").raise_for_status()
        client.delete("/deployment-durations").raise_for_status()


@pytest.fixture
def resource_group(arm_mgmt_client: Callable[..., Any], request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh resource group in Contoso's subscription, deleted (with its resources) afterwards."""
    import uuid

    from azure.mgmt.resource.resources import ResourceManagementClient

    client = arm_mgmt_client(ResourceManagementClient)
    name = f"rg-{request.node.name[:40]}-{uuid.uuid4().hex[:6]}".replace("[", "-").replace("]", "")
    client.resource_groups.create_or_update(name, {"location": "westeurope"})
    yield name
    client.resource_groups.begin_delete(name).result()

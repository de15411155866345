"""ARM authentication, subscription access and resource groups through azure-mgmt-resource."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient

from emulators.entra import EntraEmulator

pytestmark = pytest.mark.timeout(30)

ARM_AUDIENCE = "https://management.azure.com"


def raw_arm(arm_state: dict[str, Any], ca_bundle: Path, token: str | None) -> httpx.Client:
    """Plain httpx on ARM, to look at status codes and headers the SDK hides."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=arm_state["base_url"], verify=str(ca_bundle), headers=headers)


def test_subscriptions_are_listed_per_tenant_and_access(
    arm_credential_for: Callable[[str], Any],
    arm_state: dict[str, Any],
    arm_subscriptions: dict[str, str],
    ca_bundle: Path,
) -> None:
    token = arm_credential_for("contoso").get_token(*arm_state["credential_scopes"]).token
    with raw_arm(arm_state, ca_bundle, token) as http:
        listed = http.get("/subscriptions", params={"api-version": "2022-12-01"}).json()["value"]
        single = http.get(f"/subscriptions/{arm_subscriptions['contoso']}", params={"api-version": "2022-12-01"})
        foreign = http.get(f"/subscriptions/{arm_subscriptions['fabrikam']}", params={"api-version": "2022-12-01"})
        unknown = http.get(f"/subscriptions/{uuid.uuid4()}", params={"api-version": "2022-12-01"})
    listed_ids = {item["subscriptionId"] for item in listed}
    assert arm_subscriptions["contoso"] in listed_ids
    assert not listed_ids & {arm_subscriptions["fabrikam"], arm_subscriptions["publisher"]}
    assert {item["tenantId"] for item in listed} == {single.json()["tenantId"]}
    assert single.json()["state"] == "Enabled"
    assert foreign.status_code == 403
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "SubscriptionNotFound"


def test_resource_group_lifecycle_and_case_insensitive_paths(
    arm_mgmt_client: Callable[..., Any],
    arm_state: dict[str, Any],
    arm_subscriptions: dict[str, str],
    entra: EntraEmulator,
    ca_bundle: Path,
) -> None:
    client: ResourceManagementClient = arm_mgmt_client(ResourceManagementClient)
    name = f"Lifecycle-{uuid.uuid4().hex[:6]}"
    created = client.resource_groups.create_or_update(name, {"location": "westeurope", "tags": {"owner": "tests"}})
    assert created.id == f"/subscriptions/{arm_subscriptions['contoso']}/resourceGroups/{name}"
    assert created.properties.provisioning_state == "Succeeded"
    assert client.resource_groups.check_existence(name.lower())
    assert client.resource_groups.get(name.upper()).tags == {"owner": "tests"}
    assert name in [group.name for group in client.resource_groups.list()]
    with pytest.raises(HttpResponseError) as raised:
        client.resource_groups.create_or_update(name, {"location": "eastus"})
    assert raised.value.error.code == "InvalidResourceGroupLocation"

    identities: ManagedServiceIdentityClient = arm_mgmt_client(ManagedServiceIdentityClient)
    identity = identities.user_assigned_identities.create_or_update(name, "orphan", {"location": "westeurope"})
    assert identity.principal_id
    assert identity.client_id
    token = entra.mint_access_token(
        tenant_id=entra.directory.tenant_by_key("contoso").id,
        audience=ARM_AUDIENCE,
        client_id=entra.control_plane_app.app_id,
    )
    with raw_arm(arm_state, ca_bundle, token) as http:
        # Mixed-case provider paths reach the same resource.
        response = http.get(
            f"/SUBSCRIPTIONS/{arm_subscriptions['contoso']}/resourcegroups/{name.lower()}/PROVIDERS/microsoft.managedidentity"
            "/USERASSIGNEDIDENTITIES/Orphan",
            params={"api-version": "2023-01-31"},
        )
        assert response.status_code == 200
        assert response.json()["properties"]["principalId"] == identity.principal_id
        assert int(response.headers["x-ms-ratelimit-remaining-subscription-reads"]) > 0
        assert response.headers["x-ms-request-id"]
    assert [item.name for item in client.resources.list_by_resource_group(name)] == ["orphan"]

    client.resource_groups.begin_delete(name).result()
    assert not client.resource_groups.check_existence(name)
    with pytest.raises(ResourceNotFoundError) as missing:
        client.resource_groups.get(name)
    assert missing.value.error.code == "ResourceGroupNotFound"
    with pytest.raises(ResourceNotFoundError):
        identities.user_assigned_identities.get(name, "orphan")


def test_missing_api_version_is_refused(
    arm_state: dict[str, Any], arm_subscriptions: dict[str, str], entra: EntraEmulator, ca_bundle: Path
) -> None:
    token = entra.mint_access_token(
        tenant_id=entra.directory.tenant_by_key("contoso").id,
        audience=ARM_AUDIENCE,
        client_id=entra.control_plane_app.app_id,
    )
    with raw_arm(arm_state, ca_bundle, token) as http:
        response = http.get(f"/subscriptions/{arm_subscriptions['contoso']}/resourcegroups")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MissingApiVersionParameter"


@pytest.mark.parametrize(
    ("token_kind", "code"),
    [
        ("none", "AuthenticationFailed"),
        ("garbage", "InvalidAuthenticationToken"),
        ("expired", "ExpiredAuthenticationToken"),
        ("wrong_audience", "InvalidAuthenticationToken"),
    ],
)
def test_bad_tokens_get_401_with_challenge(
    token_kind: str,
    code: str,
    arm_state: dict[str, Any],
    arm_subscriptions: dict[str, str],
    entra: EntraEmulator,
    ca_bundle: Path,
) -> None:
    tenant_id = entra.directory.tenant_by_key("contoso").id
    app_id = entra.control_plane_app.app_id
    tokens = {
        "none": None,
        "garbage": "not-a-jwt",
        "expired": entra.mint_access_token(
            tenant_id=tenant_id,
            audience=ARM_AUDIENCE,
            client_id=app_id,
            extra_claims={"exp": 1_000_000, "nbf": 999_000, "iat": 999_000},
        ),
        "wrong_audience": entra.mint_access_token(
            tenant_id=tenant_id, audience="https://vault.azure.net", client_id=app_id
        ),
    }
    with raw_arm(arm_state, ca_bundle, tokens[token_kind]) as http:
        response = http.get(
            f"/subscriptions/{arm_subscriptions['contoso']}/resourcegroups", params={"api-version": "2025-04-01"}
        )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert response.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")


def test_sdk_raises_client_authentication_error_on_bad_token(
    arm_state: dict[str, Any], arm_subscriptions: dict[str, str], ca_bundle: Path
) -> None:
    from azure.core.credentials import AccessToken

    class ForgedCredential:
        """Hands out a token no authority signed."""

        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken("eyJhbGciOiJub25lIn0.e30.", 4_102_444_800)

    client = ResourceManagementClient(
        ForgedCredential(),  # type: ignore[arg-type]
        arm_subscriptions["contoso"],
        base_url=arm_state["base_url"],
        credential_scopes=arm_state["credential_scopes"],
        connection_verify=str(ca_bundle),
    )
    with pytest.raises(ClientAuthenticationError) as raised:
        list(client.resource_groups.list())
    assert raised.value.error.code == "InvalidAuthenticationToken"


def test_subscription_without_role_or_of_another_tenant_is_403(
    arm_mgmt_client: Callable[..., Any],
    arm_subscriptions: dict[str, str],
    arm_control: httpx.Client,
    emulator_state: dict[str, Any],
) -> None:
    # Fabrikam's subscription: the control-plane app has no role there.
    fabrikam_without_role = arm_mgmt_client(
        ResourceManagementClient, tenant_key="publisher", subscription_id=arm_subscriptions["fabrikam"]
    )
    with pytest.raises(HttpResponseError) as raised:
        fabrikam_without_role.resource_groups.create_or_update("anything", {"location": "westeurope"})
    assert raised.value.status_code == 403
    assert raised.value.error.code == "AuthorizationFailed"

    # A token of the publisher tenant cannot act on Contoso's subscription even though the app has a role there.
    wrong_tenant = arm_mgmt_client(
        ResourceManagementClient, tenant_key="publisher", subscription_id=arm_subscriptions["contoso"]
    )
    with pytest.raises(HttpResponseError) as raised:
        list(wrong_tenant.resource_groups.list())
    assert raised.value.error.code == "AuthorizationFailed"

    # Revoking, then granting again, the app's role on a new Contoso subscription.
    app_id = emulator_state["entra"]["apps"]["control-plane"]["client_id"]
    contoso_tenant = emulator_state["entra"]["tenants"]["contoso"]["id"]
    created = arm_control.post(
        "/subscriptions",
        json={"tenant_id": contoso_tenant, "display_name": "Contoso prod", "access": {app_id: "Owner"}},
    ).json()
    client: ResourceManagementClient = arm_mgmt_client(ResourceManagementClient, subscription_id=created["id"])
    client.resource_groups.create_or_update("allowed", {"location": "westeurope"})
    arm_control.delete(f"/subscriptions/{created['id']}/access/{app_id}").raise_for_status()
    with pytest.raises(HttpResponseError) as raised:
        client.resource_groups.get("allowed")
    assert raised.value.error.code == "AuthorizationFailed"
    arm_control.put(f"/subscriptions/{created['id']}/access/{app_id}", json={"role": "Reader"}).raise_for_status()
    assert client.resource_groups.get("allowed").name == "allowed"
    with pytest.raises(HttpResponseError) as raised:
        client.resource_groups.create_or_update("written", {"location": "westeurope"})
    assert raised.value.error.code == "AuthorizationFailed"


def test_cross_tenant_grant_is_honoured_for_the_apps_home_tenant_only(
    arm_mgmt_client: Callable[..., Any],
    arm_state: dict[str, Any],
    arm_control: httpx.Client,
    emulator_state: dict[str, Any],
    entra: EntraEmulator,
    ca_bundle: Path,
) -> None:
    app_id = emulator_state["entra"]["apps"]["control-plane"]["client_id"]
    tenants = emulator_state["entra"]["tenants"]
    created = arm_control.post(
        "/subscriptions",
        json={"tenant_id": tenants["contoso"]["id"], "display_name": "Contoso apps", "access": {app_id: "Owner"}},
    ).json()
    subscription_id = created["id"]
    arm_mgmt_client(ResourceManagementClient, subscription_id=subscription_id).resource_groups.create_or_update(
        "customer-apps", {"location": "westeurope"}
    )
    from_publisher: ResourceManagementClient = arm_mgmt_client(
        ResourceManagementClient, tenant_key="publisher", subscription_id=subscription_id
    )
    # A role in the customer's own tenant does not reach tokens of the publisher tenant.
    with pytest.raises(HttpResponseError) as raised:
        from_publisher.resource_groups.get("customer-apps")
    assert raised.value.error.code == "AuthorizationFailed"

    granted = arm_control.put(
        f"/subscriptions/{subscription_id}/access/{app_id}", json={"role": "Reader", "cross_tenant": True}
    )
    assert granted.status_code == 200, granted.text
    assert granted.json()["cross_tenant_access"][app_id.lower()] == {
        "role": "Reader",
        "home_tenant_id": tenants["publisher"]["id"],
    }
    assert from_publisher.resource_groups.get("customer-apps").name == "customer-apps"
    with pytest.raises(HttpResponseError) as raised:
        from_publisher.resource_groups.create_or_update("publisher-write", {"location": "westeurope"})
    assert raised.value.error.code == "AuthorizationFailed"
    publisher_token = entra.mint_access_token(
        tenant_id=tenants["publisher"]["id"], audience=ARM_AUDIENCE, client_id=app_id
    )
    fabrikam_token = entra.mint_access_token(
        tenant_id=tenants["fabrikam"]["id"], audience=ARM_AUDIENCE, client_id=app_id
    )
    version = {"api-version": "2022-12-01"}
    with raw_arm(arm_state, ca_bundle, publisher_token) as http:
        subscription = http.get(f"/subscriptions/{subscription_id}", params=version)
        listed = {item["subscriptionId"] for item in http.get("/subscriptions", params=version).json()["value"]}
    assert subscription.status_code == 200
    # The customer's tenant, which a publisher reads to learn whose application it is.
    assert subscription.json()["tenantId"] == tenants["contoso"]["id"]
    assert subscription_id in listed
    # A token of any other tenant than the app's home tenant gets nothing from the cross-tenant grant.
    with raw_arm(arm_state, ca_bundle, fabrikam_token) as http:
        assert http.get(f"/subscriptions/{subscription_id}", params=version).status_code == 403

    assert (
        arm_control.put(
            f"/subscriptions/{subscription_id}/access/{uuid.uuid4()}", json={"role": "Reader", "cross_tenant": True}
        ).status_code
        == 404
    )
    arm_control.delete(f"/subscriptions/{subscription_id}/access/{app_id}").raise_for_status()
    with pytest.raises(HttpResponseError) as raised:
        from_publisher.resource_groups.get("customer-apps")
    assert raised.value.error.code == "AuthorizationFailed"

"""Delegated ARM access: a person signs in with ARM's user_impersonation scope, the app redeems their refresh token
for an ARM token (as MSAL's acquire_token_by_refresh_token does), and ARM answers with what that person sees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.conformance.test_arm_access import raw_arm
from tests.conformance.test_entra_auth_code import _authorize_url, _pkce_pair, _redeem, _redirect_parameters, _sign_in

pytestmark = pytest.mark.timeout(30)

ARM_USER_IMPERSONATION = "https://management.azure.com/user_impersonation"
API_VERSION = {"api-version": "2022-12-01"}


@pytest.fixture
def browser(ca_bundle: Path) -> Iterator[httpx.Client]:
    with httpx.Client(verify=str(ca_bundle), follow_redirects=False) as client:
        yield client


def _refresh_token(browser: httpx.Client, entra_state: dict[str, Any], user_key: str) -> str:
    """Sign `user_key` in asking for ARM's delegated scope; the refresh token of that sign-in."""
    verifier, challenge = _pkce_pair()
    scope = f"openid profile offline_access {ARM_USER_IMPERSONATION}"
    url = _authorize_url(entra_state, "organizations", challenge, scope=scope)
    parameters = _redirect_parameters(_sign_in(browser, url, entra_state["users"][user_key]["username"]))
    tokens = _redeem(browser, entra_state, "organizations", parameters["code"], verifier)
    assert tokens.status_code == 200, tokens.text
    return str(tokens.json()["refresh_token"])


def _arm_token(browser: httpx.Client, entra_state: dict[str, Any], refresh_token: str) -> httpx.Response:
    app = entra_state["apps"]["control-plane"]
    return browser.post(
        f"{entra_state['authority_url']}/organizations/oauth2/v2.0/token",
        data={
            "grant_type": "refresh_token",
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
            "refresh_token": refresh_token,
            "scope": f"{ARM_USER_IMPERSONATION} openid profile offline_access",
        },
    )


def test_a_delegated_arm_token_lists_the_subscriptions_and_locations_of_the_persons_tenant(
    browser: httpx.Client,
    emulator_state: dict[str, Any],
    arm_state: dict[str, Any],
    arm_subscriptions: dict[str, str],
    arm_control: httpx.Client,
    ca_bundle: Path,
) -> None:
    entra_state = emulator_state["entra"]
    contoso = entra_state["tenants"]["contoso"]["id"]
    # A subscription of Contoso's that the control-plane app has no role on: the person still sees it.
    unconsented = arm_control.post("/subscriptions", json={"tenant_id": contoso, "display_name": "Contoso lab"})
    assert unconsented.status_code == 201, unconsented.text
    response = _arm_token(browser, entra_state, _refresh_token(browser, entra_state, "contoso-admin"))
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    admin = entra_state["users"]["contoso-admin"]
    assert (claims["aud"].rstrip("/"), claims["scp"], claims["tid"], claims["oid"]) == (
        "https://management.azure.com",
        "user_impersonation",
        contoso,
        admin["object_id"],
    )
    assert claims["appid"] == entra_state["control_plane_app_id"]

    with raw_arm(arm_state, ca_bundle, token) as http:
        listed = http.get("/subscriptions", params=API_VERSION).json()["value"]
        locations = http.get(f"/subscriptions/{arm_subscriptions['contoso']}/locations", params=API_VERSION)
        foreign = http.get(f"/subscriptions/{arm_subscriptions['fabrikam']}/locations", params=API_VERSION)
        write = http.put(
            f"/subscriptions/{arm_subscriptions['contoso']}/resourcegroups/rg-delegated",
            params={"api-version": "2021-04-01"},
            json={"location": "westeurope"},
        )
    listed_ids = {item["subscriptionId"] for item in listed}
    assert {arm_subscriptions["contoso"], unconsented.json()["id"]} <= listed_ids
    assert not listed_ids & {arm_subscriptions["fabrikam"], arm_subscriptions["publisher"]}
    assert {item["tenantId"] for item in listed} == {contoso}
    assert all(item["state"] == "Enabled" and item["displayName"] for item in listed)
    assert locations.status_code == 200
    westeurope = next(item for item in locations.json()["value"] if item["name"] == "westeurope")
    assert westeurope["displayName"] == "West Europe"
    assert westeurope["regionalDisplayName"] == "(Europe) West Europe"
    assert westeurope["metadata"]["regionType"] == "Physical"
    assert foreign.status_code == 403
    assert foreign.json()["error"]["code"] == "AuthorizationFailed"
    # The emulator holds no role assignments for people: they read their tenant's subscriptions, nothing more.
    assert write.status_code == 403


def test_a_refresh_token_reaches_arm_only_while_the_delegated_consent_stands(
    browser: httpx.Client, emulator_state: dict[str, Any], ca_bundle: Path
) -> None:
    entra_state = emulator_state["entra"]
    contoso = entra_state["tenants"]["contoso"]["id"]
    app_id = entra_state["control_plane_app_id"]
    refresh_token = _refresh_token(browser, entra_state, "contoso-reader")
    assert _arm_token(browser, entra_state, refresh_token).status_code == 200

    revoked = browser.delete(f"{entra_state['control_url']}/tenants/{contoso}/consents/{app_id}/delegated")
    assert revoked.status_code == 204
    refused = _arm_token(browser, entra_state, refresh_token)
    assert refused.status_code == 400
    assert (refused.json()["error"], refused.json()["suberror"], refused.json()["error_codes"]) == (
        "invalid_grant",
        "consent_required",
        [65001],
    )
    # Signing in still works (the app's own consent stands), and signing in with the scope consents again.
    app = entra_state["apps"]["control-plane"]
    sign_in_only = browser.post(
        f"{entra_state['authority_url']}/organizations/oauth2/v2.0/token",
        data={
            "grant_type": "refresh_token",
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
            "refresh_token": refresh_token,
            "scope": "openid profile offline_access",
        },
    )
    assert sign_in_only.status_code == 200, sign_in_only.text
    again = _refresh_token(browser, entra_state, "contoso-reader")
    assert _arm_token(browser, entra_state, again).status_code == 200

"""Authorization code + PKCE sign-in against the Entra emulator, driven with httpx and with msal."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import msal
import pytest
import requests

pytestmark = pytest.mark.timeout(30)

REDIRECT_URI = "http://127.0.0.1:8765/auth/callback"


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _sign_in(client: httpx.Client, authorize_url: str, username: str, *, typed: bool = False) -> httpx.Response:
    """Open the sign-in page, check it is an accessible form, and submit it for `username`."""
    page = client.get(authorize_url)
    assert page.status_code == 200, page.text
    assert '<label for="typed_username">' in page.text
    assert "<legend>Pick an account</legend>" in page.text
    request_id = re.search(r'name="request_id" value="([^"]+)"', page.text)
    assert request_id is not None
    form = {"request_id": request_id.group(1), "action": "sign-in"}
    form["typed_username" if typed else "username"] = username
    return client.post(str(page.url.copy_with(query=None)), data=form)


def _redirect_parameters(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    return {name: values[0] for name, values in parse_qs(location.query).items()}


def _authorize_url(entra_state: dict[str, Any], tenant: str, challenge: str, **extra: str) -> str:
    parameters = {
        "client_id": entra_state["control_plane_app_id"],
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile email offline_access",
        "state": "state-123",
        "nonce": "nonce-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return f"{entra_state['authority_url']}/{tenant}/oauth2/v2.0/authorize?{urlencode(parameters)}"


def _redeem(client: httpx.Client, entra_state: dict[str, Any], tenant: str, code: str, verifier: str) -> httpx.Response:
    app = entra_state["apps"]["control-plane"]
    return client.post(
        f"{entra_state['authority_url']}/{tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
    )


def _verified_id_token(entra_state: dict[str, Any], ca_bundle: Path, id_token: str) -> dict[str, Any]:
    """Verify an id_token as the portal would: JWKS over TLS, audience = client id, issuer of its tenant."""
    unverified = jwt.decode(id_token, options={"verify_signature": False})
    jwks = jwt.PyJWKClient(
        f"{entra_state['authority_url']}/{unverified['tid']}/discovery/v2.0/keys",
        cache_jwk_set=False,
        ssl_context=ssl.create_default_context(cafile=str(ca_bundle)),
    )
    return jwt.decode(
        id_token,
        jwks.get_signing_key_from_jwt(id_token).key,
        algorithms=["RS256"],
        audience=entra_state["control_plane_app_id"],
        issuer=f"{entra_state['authority_url']}/{unverified['tid']}/v2.0",
    )


@pytest.fixture
def browser(ca_bundle: Path) -> Any:
    with httpx.Client(verify=str(ca_bundle), follow_redirects=False) as client:
        yield client


def test_pkce_flow_for_a_customer_admin(browser: httpx.Client, emulator_state: dict[str, Any], ca_bundle: Path) -> None:
    entra_state = emulator_state["entra"]
    verifier, challenge = _pkce_pair()
    user = entra_state["users"]["contoso-admin"]
    parameters = _redirect_parameters(
        _sign_in(browser, _authorize_url(entra_state, "organizations", challenge), user["username"])
    )
    assert parameters["state"] == "state-123"

    response = _redeem(browser, entra_state, "organizations", parameters["code"], verifier)
    assert response.status_code == 200, response.text
    tokens = response.json()
    claims = _verified_id_token(entra_state, ca_bundle, tokens["id_token"])
    assert claims["tid"] == entra_state["tenants"]["contoso"]["id"]
    assert claims["oid"] == user["object_id"]
    assert claims["preferred_username"] == user["username"]
    assert claims["email"] == user["username"]
    assert claims["name"] == user["display_name"]
    assert claims["nonce"] == "nonce-456"
    assert "roles" not in claims
    assert tokens["token_type"] == "Bearer"
    assert tokens["refresh_token"]

    # The code is single-use.
    replay = _redeem(browser, entra_state, "organizations", parameters["code"], verifier)
    assert replay.status_code == 400
    assert replay.json()["error_codes"] == [54005]

    app = entra_state["apps"]["control-plane"]
    refreshed = browser.post(
        f"{entra_state['authority_url']}/organizations/oauth2/v2.0/token",
        data={
            "grant_type": "refresh_token",
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
            "refresh_token": tokens["refresh_token"],
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    assert _verified_id_token(entra_state, ca_bundle, refreshed.json()["id_token"])["oid"] == user["object_id"]


def test_operator_gets_the_operator_role(
    browser: httpx.Client, emulator_state: dict[str, Any], ca_bundle: Path
) -> None:
    entra_state = emulator_state["entra"]
    verifier, challenge = _pkce_pair()
    operator = entra_state["users"]["publisher-operator"]
    tenant_id = entra_state["publisher_tenant_id"]
    parameters = _redirect_parameters(
        _sign_in(browser, _authorize_url(entra_state, tenant_id, challenge), operator["username"], typed=True)
    )
    tokens = _redeem(browser, entra_state, tenant_id, parameters["code"], verifier).json()
    claims = _verified_id_token(entra_state, ca_bundle, tokens["id_token"])
    assert claims["roles"] == ["Operator"]
    assert claims["tid"] == tenant_id


def test_wrong_code_verifier_is_refused(browser: httpx.Client, emulator_state: dict[str, Any]) -> None:
    entra_state = emulator_state["entra"]
    _, challenge = _pkce_pair()
    user = entra_state["users"]["contoso-admin"]
    parameters = _redirect_parameters(
        _sign_in(browser, _authorize_url(entra_state, "organizations", challenge), user["username"])
    )
    other_verifier, _ = _pkce_pair()
    response = _redeem(browser, entra_state, "organizations", parameters["code"], other_verifier)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert response.json()["error_codes"] == [50148]


def test_user_of_an_unconsented_tenant_is_refused(browser: httpx.Client, emulator_state: dict[str, Any]) -> None:
    entra_state = emulator_state["entra"]
    _, challenge = _pkce_pair()
    user = entra_state["users"]["fabrikam-user"]
    parameters = _redirect_parameters(
        _sign_in(browser, _authorize_url(entra_state, "organizations", challenge), user["username"])
    )
    assert parameters["error"] == "consent_required"
    assert parameters["error_description"].startswith("AADSTS65001")
    assert parameters["state"] == "state-123"
    assert "code" not in parameters


def test_user_of_another_tenant_is_refused_on_a_tenant_endpoint(
    browser: httpx.Client, emulator_state: dict[str, Any]
) -> None:
    entra_state = emulator_state["entra"]
    _, challenge = _pkce_pair()
    contoso = entra_state["tenants"]["contoso"]["id"]
    parameters = _redirect_parameters(
        _sign_in(
            browser,
            _authorize_url(entra_state, contoso, challenge),
            entra_state["users"]["fabrikam-admin"]["username"],
            typed=True,
        )
    )
    assert parameters["error_description"].startswith("AADSTS50020")


def test_unknown_username_shows_the_page_again(browser: httpx.Client, emulator_state: dict[str, Any]) -> None:
    entra_state = emulator_state["entra"]
    _, challenge = _pkce_pair()
    response = _sign_in(
        browser, _authorize_url(entra_state, "organizations", challenge), "nobody@contoso.example", typed=True
    )
    assert response.status_code == 200
    assert 'role="alert"' in response.text


def test_unregistered_redirect_uri_gets_an_error_page(browser: httpx.Client, emulator_state: dict[str, Any]) -> None:
    entra_state = emulator_state["entra"]
    _, challenge = _pkce_pair()
    response = browser.get(
        _authorize_url(entra_state, "organizations", challenge, redirect_uri="https://evil.example.com/callback")
    )
    assert response.status_code == 400
    assert "AADSTS50011" in response.text


def test_logout_redirects_to_the_app(browser: httpx.Client, emulator_state: dict[str, Any]) -> None:
    base = emulator_state["entra"]["authority_url"]
    query = urlencode({"post_logout_redirect_uri": "http://127.0.0.1:8765/", "state": "bye"})
    response = browser.get(f"{base}/organizations/oauth2/v2.0/logout?{query}")
    assert response.status_code == 302
    assert response.headers["location"] == "http://127.0.0.1:8765/?state=bye"
    assert browser.get(f"{base}/organizations/oauth2/v2.0/logout").status_code == 200


def test_msal_auth_code_flow(browser: httpx.Client, emulator_state: dict[str, Any], ca_bundle: Path) -> None:
    entra_state = emulator_state["entra"]
    app = entra_state["apps"]["control-plane"]
    session = requests.Session()
    session.verify = str(ca_bundle)
    session.trust_env = False  # requests would let REQUESTS_CA_BUNDLE override session.verify
    application = msal.ConfidentialClientApplication(
        app["client_id"],
        client_credential=app["client_secret"],
        authority=f"{entra_state['authority_url']}/organizations",
        instance_discovery=False,
        http_client=session,
    )
    flow = application.initiate_auth_code_flow(
        scopes=[f"api://{app['client_id']}/access_as_user"], redirect_uri=REDIRECT_URI
    )
    assert parse_qs(urlsplit(flow["auth_uri"]).query)["code_challenge_method"] == ["S256"]
    user = entra_state["users"]["contoso-admin"]
    parameters = _redirect_parameters(_sign_in(browser, flow["auth_uri"], user["username"]))
    result = application.acquire_token_by_auth_code_flow(flow, parameters)
    session.close()
    assert "access_token" in result, result
    assert result["id_token_claims"]["tid"] == entra_state["tenants"]["contoso"]["id"]
    access_claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert access_claims["aud"] == app["client_id"]
    assert access_claims["scp"] == "access_as_user"
    assert access_claims["oid"] == user["object_id"]

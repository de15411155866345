"""OpenID discovery, JWKS and signing-key rotation of the Entra emulator."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from emulators.entra import EntraEmulator, InvalidTokenError
from emulators.entra.tokens import CLOCK_SKEW_SECONDS
from emulators.suite import EmulatorSuite, EmulatorSuiteConfig

pytestmark = pytest.mark.timeout(30)


def test_v2_discovery_names_tenant_endpoints_and_issuer(emulator_state: dict[str, Any], ca_bundle: Path) -> None:
    entra_state = emulator_state["entra"]
    base, tenant_id = entra_state["authority_url"], entra_state["tenants"]["contoso"]["id"]
    for segment in (tenant_id, entra_state["tenants"]["contoso"]["domain"]):
        response = httpx.get(f"{base}/{segment}/v2.0/.well-known/openid-configuration", verify=str(ca_bundle))
        assert response.status_code == 200
        document = response.json()
        assert document["issuer"] == f"{base}/{tenant_id}/v2.0"
        assert document["token_endpoint"] == f"{base}/{tenant_id}/oauth2/v2.0/token"
        assert document["authorization_endpoint"] == f"{base}/{tenant_id}/oauth2/v2.0/authorize"
        assert document["end_session_endpoint"] == f"{base}/{tenant_id}/oauth2/v2.0/logout"
        assert document["jwks_uri"] == f"{base}/{tenant_id}/discovery/v2.0/keys"
        assert "S256" in document["code_challenge_methods_supported"]


def test_v1_discovery_uses_the_sts_issuer(emulator_state: dict[str, Any], ca_bundle: Path) -> None:
    entra_state = emulator_state["entra"]
    base, tenant_id = entra_state["authority_url"], entra_state["publisher_tenant_id"]
    document = httpx.get(f"{base}/{tenant_id}/.well-known/openid-configuration", verify=str(ca_bundle)).json()
    assert document["issuer"] == f"https://sts.windows.net/{tenant_id}/"
    assert document["issuer"] == entra_state["issuer_v1_template"].format(tenant_id=tenant_id)


@pytest.mark.parametrize("alias", ["common", "organizations"])
def test_multi_tenant_aliases_publish_a_template_issuer(
    alias: str, emulator_state: dict[str, Any], ca_bundle: Path
) -> None:
    base = emulator_state["entra"]["authority_url"]
    document = httpx.get(f"{base}/{alias}/v2.0/.well-known/openid-configuration", verify=str(ca_bundle)).json()
    assert document["issuer"] == f"{base}/{{tenantid}}/v2.0"
    assert document["authorization_endpoint"] == f"{base}/{alias}/oauth2/v2.0/authorize"


def test_unknown_tenant_is_refused(emulator_state: dict[str, Any], ca_bundle: Path) -> None:
    base = emulator_state["entra"]["authority_url"]
    response = httpx.get(f"{base}/nobody.onmicrosoft.com/v2.0/.well-known/openid-configuration", verify=str(ca_bundle))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_tenant"
    assert response.json()["error_codes"] == [90002]


def _jwks_client(url: str, ca_bundle: Path) -> jwt.PyJWKClient:
    # Same validation path as production: PyJWKClient fetching the published keys over TLS.
    return jwt.PyJWKClient(
        url, cache_keys=False, cache_jwk_set=False, ssl_context=ssl.create_default_context(cafile=str(ca_bundle))
    )


@pytest.fixture
def private_entra(tmp_path: Path) -> Iterator[EmulatorSuite]:
    """An Entra emulator of this test's own: retiring the shared one's key would void tokens other tests hold."""
    config = EmulatorSuiteConfig(state_dir=tmp_path / "entra", seed=20261207)
    suite = EmulatorSuite(config)
    suite.add(EntraEmulator.from_suite_config(config))
    suite.start()
    yield suite
    suite.stop()


def test_key_rotation_publishes_both_keys_then_retires_the_old_one(private_entra: EmulatorSuite) -> None:
    entra = private_entra.components["entra"]
    assert isinstance(entra, EntraEmulator)
    entra_state = private_entra.state()["entra"]
    ca_bundle = private_entra.tls.ca_path
    base, tenant_id = entra_state["authority_url"], entra_state["publisher_tenant_id"]
    control = httpx.Client(base_url=entra_state["control_url"], verify=str(ca_bundle))
    audience = entra_state["publisher_fulfillment_app_id"]
    old_token = entra.mint_marketplace_webhook_token()
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    rotated = control.post("/keys/rotate").json()
    assert rotated["active_kid"] != old_kid
    assert set(rotated["published_kids"]) >= {old_kid, rotated["active_kid"]}
    for path in (f"{tenant_id}/discovery/v2.0/keys", "common/discovery/v2.0/keys"):
        kids = {key["kid"] for key in httpx.get(f"{base}/{path}", verify=str(ca_bundle)).json()["keys"]}
        assert {old_kid, rotated["active_kid"]} <= kids

    new_token = entra.mint_marketplace_webhook_token()
    assert jwt.get_unverified_header(new_token)["kid"] == rotated["active_kid"]
    jwks = _jwks_client(f"{base}/{tenant_id}/discovery/v2.0/keys", ca_bundle)
    for token in (old_token, new_token):
        key = jwks.get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=audience)
        assert claims["azp"] == entra_state["marketplace_app_id"]
        entra.verify_access_token(token, audience=audience)

    retired = control.post("/keys/retire").json()
    assert old_kid in retired["retired_kids"]
    assert retired["published_kids"] == [rotated["active_kid"]]
    with pytest.raises(InvalidTokenError, match="unknown signing key"):
        entra.verify_access_token(old_token, audience=audience)
    with pytest.raises(jwt.PyJWKClientError):
        jwks.get_signing_key_from_jwt(old_token)
    entra.verify_access_token(new_token, audience=audience)
    control.close()


def test_a_token_verified_before_is_refused_once_it_expires(
    entra: EntraEmulator, emulator_state: dict[str, Any]
) -> None:
    audience = emulator_state["entra"]["publisher_fulfillment_app_id"]
    expires_at = int(time.time()) + 2 - CLOCK_SKEW_SECONDS  # inside the clock-skew allowance for 2 more seconds
    token = entra.mint_access_token(
        tenant_id=emulator_state["entra"]["publisher_tenant_id"],
        audience=audience,
        client_id=emulator_state["entra"]["marketplace_app_id"],
        extra_claims={"exp": expires_at},
    )
    assert entra.verify_access_token(token, audience=audience)["exp"] == expires_at
    # The signature is remembered from the first call; the lifetime is not.
    while time.time() <= expires_at + CLOCK_SKEW_SECONDS:
        time.sleep(0.05)
    with pytest.raises(InvalidTokenError, match="token expired"):
        entra.verify_access_token(token, audience=audience)

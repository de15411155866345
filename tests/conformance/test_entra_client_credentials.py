"""Client credentials against the Entra emulator through azure-identity and msal, and token validation failures."""

from __future__ import annotations

import datetime
import secrets
from pathlib import Path
from typing import Any

import httpx
import jwt
import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential, ClientSecretCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from emulators.entra import MARKETPLACE_APP_ID, EntraEmulator, InvalidTokenError

pytestmark = pytest.mark.timeout(30)


def _self_signed_certificate(common_name: str) -> tuple[str, str]:
    """A fresh RSA key and self-signed certificate, as PEM strings (key, certificate)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM).decode()


def _credential_options(entra_state: dict[str, Any], ca_bundle: Path) -> dict[str, Any]:
    # The only differences from production: where the authority is, and which CA to trust.
    return {
        "authority": entra_state["authority_url"],
        "disable_instance_discovery": True,
        "connection_verify": str(ca_bundle),
    }


def _session_trusting(ca_bundle: Path) -> requests.Session:
    """A requests session for msal that trusts the emulator CA.

    requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override `session.verify`, so the session must not
    read the environment (trust_env=False) for its own CA setting to count.
    """
    session = requests.Session()
    session.verify = str(ca_bundle)
    session.trust_env = False
    return session


def _token_request(entra_state: dict[str, Any], ca_bundle: Path, tenant: str, form: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{entra_state['authority_url']}/{tenant}/oauth2/v2.0/token",
        data=form,
        headers={"client-request-id": "5b0a3c1e-0000-4000-8000-000000000001"},
        verify=str(ca_bundle),
    )


def test_client_secret_credential_gets_a_v1_marketplace_token(
    entra: EntraEmulator, emulator_state: dict[str, Any], ca_bundle: Path
) -> None:
    entra_state = emulator_state["entra"]
    app = entra_state["apps"]["publisher-fulfillment"]
    credential = ClientSecretCredential(
        entra_state["publisher_tenant_id"],
        app["client_id"],
        app["client_secret"],
        **_credential_options(entra_state, ca_bundle),
    )
    with credential:
        access_token = credential.get_token(f"{MARKETPLACE_APP_ID}/.default")
    claims = entra.verify_access_token(access_token.token, audience=MARKETPLACE_APP_ID)
    tenant_id = entra_state["publisher_tenant_id"]
    assert claims["aud"] == MARKETPLACE_APP_ID
    assert claims["iss"] == f"https://sts.windows.net/{tenant_id}/"
    assert claims["ver"] == "1.0"
    assert claims["appid"] == app["client_id"]
    assert claims["appidacr"] == "1"
    assert claims["tid"] == tenant_id
    assert claims["idtyp"] == "app"
    assert claims["oid"] == claims["sub"]
    assert claims["nbf"] <= claims["iat"] < claims["exp"]
    assert jwt.get_unverified_header(access_token.token)["kid"]


def test_token_for_an_app_registration_is_v2(
    entra: EntraEmulator, emulator_state: dict[str, Any], ca_bundle: Path
) -> None:
    entra_state = emulator_state["entra"]
    app = entra_state["apps"]["control-plane"]
    resource_id = entra_state["publisher_fulfillment_app_id"]
    credential = ClientSecretCredential(
        entra_state["publisher_tenant_id"],
        app["client_id"],
        app["client_secret"],
        **_credential_options(entra_state, ca_bundle),
    )
    with credential:
        token = credential.get_token(f"api://{resource_id}/.default").token
    claims = entra.verify_access_token(token, audience=resource_id)
    assert claims["ver"] == "2.0"
    assert claims["iss"] == f"{entra_state['authority_url']}/{entra_state['publisher_tenant_id']}/v2.0"
    assert claims["azp"] == app["client_id"]
    assert claims["azpacr"] == "1"


def test_certificate_credential_after_registering_the_certificate(
    entra: EntraEmulator, emulator_state: dict[str, Any], ca_bundle: Path, tmp_path: Path
) -> None:
    entra_state = emulator_state["entra"]
    app = entra_state["apps"]["control-plane"]
    key_pem, certificate_pem = _self_signed_certificate("control-plane")
    certificate_path = tmp_path / "control-plane.pem"
    certificate_path.write_text(key_pem + certificate_pem)
    contoso = entra_state["tenants"]["contoso"]["id"]
    credential = CertificateCredential(
        contoso, app["client_id"], str(certificate_path), **_credential_options(entra_state, ca_bundle)
    )
    with credential, pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
        credential.get_token("https://management.azure.com/.default")

    registration = httpx.post(
        f"{entra_state['control_url']}/apps/{app['client_id']}/certificates",
        json={"certificate_pem": certificate_pem},
        verify=str(ca_bundle),
    )
    assert registration.status_code == 201
    credential = CertificateCredential(
        contoso, app["client_id"], str(certificate_path), **_credential_options(entra_state, ca_bundle)
    )
    with credential:
        token = credential.get_token("https://management.azure.com/.default").token
    claims = entra.verify_access_token(token, audience="https://management.azure.com")
    assert claims["tid"] == contoso
    assert claims["appidacr"] == "2"
    # A customer tenant's service principal has its own object id.
    assert claims["oid"] == entra.directory.service_principal_object_id(contoso, app["client_id"])

    # msal signs the assertion with PS256 and an x5t#S256 thumbprint: accepted as well.
    session = _session_trusting(ca_bundle)
    application = msal.ConfidentialClientApplication(
        app["client_id"],
        client_credential={"private_key": key_pem, "public_certificate": certificate_pem},
        authority=f"{entra_state['authority_url']}/{contoso}",
        instance_discovery=False,
        http_client=session,
    )
    result = application.acquire_token_for_client(scopes=["https://vault.azure.net/.default"])
    session.close()
    assert "access_token" in result, result
    assert entra.verify_access_token(result["access_token"], audience="https://vault.azure.net")["appidacr"] == "2"


def test_msal_confidential_client_with_secret(
    entra: EntraEmulator, emulator_state: dict[str, Any], ca_bundle: Path
) -> None:
    entra_state = emulator_state["entra"]
    app = entra_state["apps"]["publisher-fulfillment"]
    session = _session_trusting(ca_bundle)
    application = msal.ConfidentialClientApplication(
        app["client_id"],
        client_credential=app["client_secret"],
        authority=f"{entra_state['authority_url']}/{entra_state['publisher_tenant_id']}",
        instance_discovery=False,
        http_client=session,
    )
    result = application.acquire_token_for_client(scopes=[f"{MARKETPLACE_APP_ID}/.default"])
    session.close()
    assert result["token_type"] == "Bearer"
    assert entra.verify_access_token(result["access_token"], audience=MARKETPLACE_APP_ID)["appid"] == app["client_id"]


def _assert_entra_error(response: httpx.Response, status: int, error: str, code: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}:")
    assert body["correlation_id"] == "5b0a3c1e-0000-4000-8000-000000000001"
    assert body["trace_id"]


def test_wrong_secret_is_invalid_client(emulator_state: dict[str, Any], ca_bundle: Path) -> None:
    entra_state = emulator_state["entra"]
    response = _token_request(
        entra_state,
        ca_bundle,
        entra_state["publisher_tenant_id"],
        {
            "grant_type": "client_credentials",
            "client_id": entra_state["publisher_fulfillment_app_id"],
            "client_secret": "not-the-secret",
            "scope": f"{MARKETPLACE_APP_ID}/.default",
        },
    )
    _assert_entra_error(response, 401, "invalid_client", 7000215)


def test_multi_tenant_app_needs_consent_in_the_customer_tenant(emulator_state: dict[str, Any], ca_bundle: Path) -> None:
    entra_state = emulator_state["entra"]
    app = entra_state["apps"]["control-plane"]
    fabrikam = entra_state["tenants"]["fabrikam"]["id"]
    form = {
        "grant_type": "client_credentials",
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
        "scope": "https://management.azure.com/.default",
    }
    _assert_entra_error(_token_request(entra_state, ca_bundle, fabrikam, form), 400, "unauthorized_client", 700016)

    consent_url = f"{entra_state['control_url']}/tenants/{fabrikam}/consents/{app['client_id']}"
    assert httpx.put(consent_url, verify=str(ca_bundle)).status_code == 204
    try:
        assert _token_request(entra_state, ca_bundle, fabrikam, form).status_code == 200
    finally:
        assert httpx.delete(consent_url, verify=str(ca_bundle)).status_code == 204
    assert _token_request(entra_state, ca_bundle, fabrikam, form).status_code == 400


def test_single_tenant_app_is_unknown_in_other_tenants(emulator_state: dict[str, Any], ca_bundle: Path) -> None:
    entra_state = emulator_state["entra"]
    app = entra_state["apps"]["publisher-fulfillment"]
    response = _token_request(
        entra_state,
        ca_bundle,
        entra_state["tenants"]["contoso"]["id"],
        {
            "grant_type": "client_credentials",
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
            "scope": f"{MARKETPLACE_APP_ID}/.default",
        },
    )
    _assert_entra_error(response, 400, "unauthorized_client", 700016)


@pytest.mark.parametrize(
    ("scope", "error", "code"),
    [
        ("https://management.azure.com/user_impersonation", "invalid_scope", 1002012),
        ("https://management.azure.com/.default https://vault.azure.net/.default", "invalid_scope", 1002012),
        ("https://unknown.example.com/.default", "invalid_resource", 500011),
    ],
)
def test_bad_scopes_are_refused(
    scope: str, error: str, code: int, emulator_state: dict[str, Any], ca_bundle: Path
) -> None:
    entra_state = emulator_state["entra"]
    app = entra_state["apps"]["publisher-fulfillment"]
    response = _token_request(
        entra_state,
        ca_bundle,
        entra_state["publisher_tenant_id"],
        {
            "grant_type": "client_credentials",
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
            "scope": scope,
        },
    )
    _assert_entra_error(response, 400, error, code)


def test_unsupported_grant_and_unknown_tenant(emulator_state: dict[str, Any], ca_bundle: Path) -> None:
    entra_state = emulator_state["entra"]
    response = _token_request(entra_state, ca_bundle, entra_state["publisher_tenant_id"], {"grant_type": "password"})
    _assert_entra_error(response, 400, "unsupported_grant_type", 70003)
    response = _token_request(entra_state, ca_bundle, "nobody.onmicrosoft.com", {"grant_type": "client_credentials"})
    _assert_entra_error(response, 400, "invalid_tenant", 90002)


# Token validation --------------------------------------------------------------------------------


def test_expired_token_is_rejected(entra: EntraEmulator) -> None:
    token = entra.mint_marketplace_api_token(lifetime_seconds=-600)
    with pytest.raises(InvalidTokenError, match="expired"):
        entra.verify_access_token(token, audience=MARKETPLACE_APP_ID)


def test_not_yet_valid_token_is_rejected(entra: EntraEmulator) -> None:
    token = entra.mint_access_token(
        tenant_id=entra.publisher_tenant.id,
        audience=MARKETPLACE_APP_ID,
        client_id=entra.publisher_fulfillment_app.app_id,
        extra_claims={"nbf": int(datetime.datetime.now(datetime.UTC).timestamp()) + 600},
    )
    with pytest.raises(InvalidTokenError, match="nbf"):
        entra.verify_access_token(token, audience=MARKETPLACE_APP_ID)


def test_wrong_audience_is_rejected(entra: EntraEmulator) -> None:
    token = entra.mint_marketplace_webhook_token()
    with pytest.raises(InvalidTokenError, match="wrong audience"):
        entra.verify_access_token(token, audience={MARKETPLACE_APP_ID, "https://management.azure.com"})


def test_unknown_kid_and_forged_signature_are_rejected(entra: EntraEmulator) -> None:
    claims = jwt.decode(entra.mint_marketplace_api_token(), options={"verify_signature": False})
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged_unknown_kid = jwt.encode(claims, forger, algorithm="RS256", headers={"kid": secrets.token_urlsafe(8)})
    with pytest.raises(InvalidTokenError, match="unknown signing key"):
        entra.verify_access_token(forged_unknown_kid, audience=MARKETPLACE_APP_ID)
    forged_known_kid = jwt.encode(claims, forger, algorithm="RS256", headers={"kid": entra.keys.active.kid})
    with pytest.raises(InvalidTokenError, match="signature"):
        entra.verify_access_token(forged_known_kid, audience=MARKETPLACE_APP_ID)


def test_wrong_issuer_and_unknown_tenant_are_rejected(entra: EntraEmulator) -> None:
    tenant_id = entra.publisher_tenant.id
    token = entra.mint_marketplace_api_token()
    wrong_issuer = entra.mint_access_token(
        tenant_id=tenant_id,
        audience=MARKETPLACE_APP_ID,
        client_id=entra.publisher_fulfillment_app.app_id,
        extra_claims={"iss": f"https://login.microsoftonline.com/{tenant_id}/v2.0"},
    )
    unknown_tenant = entra.mint_access_token(
        tenant_id="00000000-0000-0000-0000-000000000000",
        audience=MARKETPLACE_APP_ID,
        client_id=entra.publisher_fulfillment_app.app_id,
    )
    assert entra.verify_access_token(token, audience=MARKETPLACE_APP_ID)["tid"] == tenant_id
    with pytest.raises(InvalidTokenError, match="wrong issuer"):
        entra.verify_access_token(wrong_issuer, audience=MARKETPLACE_APP_ID)
    with pytest.raises(InvalidTokenError, match="unknown tenant"):
        entra.verify_access_token(unknown_tenant, audience=MARKETPLACE_APP_ID)

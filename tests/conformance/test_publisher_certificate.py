"""The publisher app signs in with a certificate: the control plane's credential factory against the Entra emulator.

The certificate is made here; Entra gets only its public part. A client assertion (RFC 7523, x5t header) signed
with a registered, valid certificate earns a Marketplace token; a certificate Entra does not hold, one past its
validity, an expired or forged assertion are refused. Rotation overlaps two certificates, so nothing stops.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from core.azure.credentials import CredentialFactory
from emulators.entra import MARKETPLACE_APP_ID, EntraEmulator
from harness.emulator_environment import settings_for_emulators

pytestmark = pytest.mark.timeout(60)

MARKETPLACE_SCOPE = f"{MARKETPLACE_APP_ID}/.default"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class Certificate:
    """A key pair and its self-signed certificate, as a publisher makes one for its app registration."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @classmethod
    def make(cls, valid_for: datetime.timedelta = datetime.timedelta(days=1)) -> Certificate:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"publisher-{uuid.uuid4().hex[:8]}")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(min(now, now + valid_for) - datetime.timedelta(days=2))
            .not_valid_after(now + valid_for)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def x5t(self) -> str:
        digest = hashlib.sha1(self.certificate.public_bytes(serialization.Encoding.DER)).digest()  # noqa: S324  # x5t is SHA-1 by definition
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def pem_file(self, folder: Path) -> Path:
        """Private key and certificate in one PEM file, as Key Vault hands a PEM certificate to the container."""
        path = folder / f"{uuid.uuid4().hex}.pem"
        key = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.write_bytes(key + self.certificate_pem.encode())
        return path

    def pkcs12_file(self, folder: Path, password: str) -> Path:
        path = folder / f"{uuid.uuid4().hex}.pfx"
        path.write_bytes(
            pkcs12.serialize_key_and_certificates(
                b"publisher", self.key, self.certificate, None, serialization.BestAvailableEncryption(password.encode())
            )
        )
        return path


@pytest.fixture
def publisher_app(emulator_state: dict[str, Any]) -> dict[str, Any]:
    app: dict[str, Any] = emulator_state["entra"]["apps"]["publisher-fulfillment"]
    return app


@pytest.fixture
def entra_control(emulator_state: dict[str, Any], ca_bundle: Path) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator_state["entra"]["control_url"], verify=str(ca_bundle)) as client:
        yield client


@pytest.fixture
def register(entra_control: httpx.Client, publisher_app: dict[str, Any]) -> Iterator[Any]:
    """Registers certificates on the publisher app; removes those still registered afterwards."""
    registered: list[str] = []

    def add(certificate: Certificate) -> str:
        answer = entra_control.post(
            f"/apps/{publisher_app['client_id']}/certificates", json={"certificate_pem": certificate.certificate_pem}
        )
        assert answer.status_code == 201, answer.text
        thumbprint = str(answer.json()["sha256_thumbprint"])
        registered.append(thumbprint)
        return thumbprint

    yield add
    for thumbprint in registered:
        entra_control.delete(f"/apps/{publisher_app['client_id']}/certificates/{thumbprint}")


def publisher_token(emulator_state: dict[str, Any], certificate_path: Path, password: str | None = None) -> str:
    """A Marketplace token through the control plane's own credential factory, configured by settings only."""
    settings = settings_for_emulators(
        emulator_state,
        publisher_client_secret=None,
        publisher_client_certificate_path=certificate_path,
        publisher_client_certificate_password=password,
    )
    credential = CredentialFactory(settings).publisher
    try:
        return credential.get_token(MARKETPLACE_SCOPE).token
    finally:
        close = getattr(credential, "close", None)
        if close is not None:
            close()


def token_request(emulator_state: dict[str, Any], ca_bundle: Path, assertion: str, client_id: str) -> httpx.Response:
    tenant = emulator_state["entra"]["publisher_tenant_id"]
    return httpx.post(
        f"{emulator_state['entra']['authority_url']}/{tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "scope": MARKETPLACE_SCOPE,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
        verify=str(ca_bundle),
    )


def assertion(
    emulator_state: dict[str, Any], client_id: str, signer: Certificate, named: Certificate, expires_in: float
) -> str:
    """An RFC 7523 client assertion signed by `signer`'s key, naming `named`'s certificate in its x5t header."""
    tenant = emulator_state["entra"]["publisher_tenant_id"]
    now = int(time.time())
    claims = {
        "aud": f"{emulator_state['entra']['authority_url']}/{tenant}/oauth2/v2.0/token",
        "iss": client_id,
        "sub": client_id,
        "jti": str(uuid.uuid4()),
        "nbf": now - 600,
        "iat": now - 600,
        "exp": int(now + expires_in),
    }
    return jwt.encode(claims, signer.key, algorithm="RS256", headers={"x5t": named.x5t})


def test_the_publisher_signs_in_with_its_registered_certificate_through_the_credential_factory(
    emulator_state: dict[str, Any], entra: EntraEmulator, publisher_app: dict[str, Any], register: Any, tmp_path: Path
) -> None:
    certificate = Certificate.make()
    register(certificate)
    token = publisher_token(emulator_state, certificate.pem_file(tmp_path))
    claims = entra.verify_access_token(token, audience=MARKETPLACE_APP_ID)
    assert claims["appid"] == publisher_app["client_id"]
    assert claims["tid"] == emulator_state["entra"]["publisher_tenant_id"]
    assert claims["appidacr"] == "2"  # signed in with a certificate, not a secret

    # The same certificate as a password-protected PKCS#12 file, with CP_PUBLISHER_CLIENT_CERTIFICATE_PASSWORD.
    token = publisher_token(emulator_state, certificate.pkcs12_file(tmp_path, "rotate-me"), password="rotate-me")
    assert entra.verify_access_token(token, audience=MARKETPLACE_APP_ID)["appidacr"] == "2"


def test_a_certificate_entra_does_not_hold_for_the_app_is_refused(
    emulator_state: dict[str, Any], register: Any, tmp_path: Path
) -> None:
    register(Certificate.make())
    stranger = Certificate.make()
    with pytest.raises(ClientAuthenticationError, match="AADSTS700027") as refusal:
        publisher_token(emulator_state, stranger.pem_file(tmp_path))
    assert "not registered" in str(refusal.value)


def test_a_certificate_past_its_validity_signs_nothing(
    emulator_state: dict[str, Any], register: Any, tmp_path: Path
) -> None:
    lapsed = Certificate.make(valid_for=-datetime.timedelta(hours=1))
    register(lapsed)
    with pytest.raises(ClientAuthenticationError, match="The key used is expired"):
        publisher_token(emulator_state, lapsed.pem_file(tmp_path))


def test_an_expired_or_forged_assertion_is_refused_over_http(
    emulator_state: dict[str, Any], ca_bundle: Path, publisher_app: dict[str, Any], register: Any
) -> None:
    certificate = Certificate.make()
    register(certificate)
    client_id = publisher_app["client_id"]
    accepted = token_request(
        emulator_state, ca_bundle, assertion(emulator_state, client_id, certificate, certificate, 600), client_id
    )
    assert accepted.status_code == 200, accepted.text

    expired = token_request(
        emulator_state, ca_bundle, assertion(emulator_state, client_id, certificate, certificate, -300), client_id
    )
    assert expired.status_code == 401
    assert expired.json()["error"] == "invalid_client"
    assert "AADSTS700024" in expired.json()["error_description"]

    # Another key claiming the registered certificate's thumbprint: the signature does not verify.
    forged = token_request(
        emulator_state, ca_bundle, assertion(emulator_state, client_id, Certificate.make(), certificate, 600), client_id
    )
    assert forged.status_code == 401
    assert forged.json()["error"] == "invalid_client"
    assert "AADSTS700027" in forged.json()["error_description"]


def test_rotation_overlaps_two_certificates_then_the_old_one_is_refused(
    emulator_state: dict[str, Any],
    entra_control: httpx.Client,
    publisher_app: dict[str, Any],
    register: Any,
    tmp_path: Path,
) -> None:
    old, new = Certificate.make(), Certificate.make()
    old_thumbprint = register(old)
    old_file, new_file = old.pem_file(tmp_path), new.pem_file(tmp_path)
    assert publisher_token(emulator_state, old_file)

    # 1. Add the new certificate: revisions still holding the old one keep signing in.
    register(new)
    assert publisher_token(emulator_state, old_file)
    assert publisher_token(emulator_state, new_file)

    # 2. Once every revision reads the new one, remove the old: only then does it stop working.
    removed = entra_control.delete(f"/apps/{publisher_app['client_id']}/certificates/{old_thumbprint}")
    assert removed.status_code == 204
    with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
        publisher_token(emulator_state, old_file)
    assert publisher_token(emulator_state, new_file)

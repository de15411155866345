"""Minting and verifying the RS256 tokens of the emulated Entra ID.

Issuers (the emulator's https base URL stands in for both Microsoft hosts):
- v2 tokens: `{authority_url}/{tenant id}/v2.0` (Azure: `https://login.microsoftonline.com/{tid}/v2.0`);
- v1 tokens: `https://sts.windows.net/{tenant id}/`, exactly Azure's (resources such as Azurite insist on it;
  the host is only a name inside the token, nothing is ever fetched from it).
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import jwt

from emulators.entra.directory import Directory
from emulators.entra.signing_keys import SigningKeyRing

# Clock skew tolerated when checking exp and nbf, like the usual validators of Entra tokens.
CLOCK_SKEW_SECONDS = 30
# Tokens whose verified signature is remembered; the memory is emptied when full.
VERIFIED_TOKENS_KEPT = 4096


class InvalidTokenError(Exception):
    """A token failed verification; the message says why."""


def issuer_v2(authority_url: str, tenant_id: str) -> str:
    """The `iss` of v2 tokens of a tenant."""
    return f"{authority_url}/{tenant_id}/v2.0"


V1_ISSUER_HOST = "https://sts.windows.net"


def issuer_v1(authority_url: str, tenant_id: str) -> str:
    """The `iss` of v1 tokens of a tenant."""
    return f"{V1_ISSUER_HOST}/{tenant_id}/"


def _normalise_audience(audience: str) -> str:
    return audience.rstrip("/").lower()


class TokenIssuer:
    """Signs tokens with the active key of the ring and verifies them against the published keys."""

    def __init__(self, directory: Directory, keys: SigningKeyRing) -> None:
        self.directory = directory
        self.keys = keys
        self._authority_url: str | None = None
        # Token -> (kid, claims) of tokens whose signature already verified: a client presents the same token on
        # every call for an hour, and RSA verification was a tenth of the ARM emulator's work under load.
        self._verified_signatures: dict[str, tuple[str, dict[str, Any]]] = {}

    @property
    def authority_url(self) -> str:
        """The emulator's https base URL; known once the server listens."""
        if self._authority_url is None:
            raise RuntimeError("the Entra emulator is not started yet: its authority URL is unknown")
        return self._authority_url

    @authority_url.setter
    def authority_url(self, value: str) -> None:
        self._authority_url = value.rstrip("/")

    def sign(self, claims: dict[str, Any]) -> str:
        """Sign claims with the active key; the header carries its kid (and x5t, as Entra's do)."""
        key = self.keys.active
        return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid, "x5t": key.kid})

    def app_token_claims(
        self,
        *,
        tenant_id: str,
        audience: str,
        client_id: str,
        client_authentication: str = "1",
        roles: list[str] | None = None,
        lifetime_seconds: int = 3600,
    ) -> dict[str, Any]:
        """Claims of an app-only access token; the resource decides v1 or v2 shape."""
        resource = self.directory.resource_for(audience)
        version = resource.access_token_version if resource else 2
        issued_at = int(time.time())
        object_id = self.directory.service_principal_object_id(tenant_id, client_id)
        claims: dict[str, Any] = {
            "aud": resource.audience_for(audience) if resource else audience,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + lifetime_seconds,
            "oid": object_id,
            "sub": object_id,
            "tid": tenant_id,
            "idtyp": "app",
            "uti": secrets.token_urlsafe(16),
            "rh": secrets.token_urlsafe(24),
        }
        if version == 2:
            claims.update(
                iss=issuer_v2(self.authority_url, tenant_id), azp=client_id, azpacr=client_authentication, ver="2.0"
            )
        else:
            issuer = issuer_v1(self.authority_url, tenant_id)
            claims.update(iss=issuer, idp=issuer, appid=client_id, appidacr=client_authentication, ver="1.0")
        if roles:
            claims["roles"] = roles
        return claims

    def mint_access_token(
        self,
        *,
        tenant_id: str,
        audience: str,
        client_id: str,
        extra_claims: dict[str, Any] | None = None,
        lifetime_seconds: int = 3600,
    ) -> str:
        """An app-only access token; `extra_claims` are merged last and may override anything."""
        claims = self.app_token_claims(
            tenant_id=tenant_id, audience=audience, client_id=client_id, lifetime_seconds=lifetime_seconds
        )
        claims.update(extra_claims or {})
        return self.sign(claims)

    def verify_access_token(self, token: str, *, audience: str | set[str]) -> dict[str, Any]:
        """Check signature (published keys only), lifetime, audience, tenant and issuer; return the claims."""
        verified = self._verified_signatures.get(token)
        if verified is None:
            claims = self._verify_signature(token)
        else:
            kid, claims = verified
            # A key retired since still invalidates the token; the lifetime is checked afresh on every call.
            if self.keys.find(kid) is None:
                raise InvalidTokenError(f"unknown signing key {kid!r}")
            now = time.time()
            if int(claims["exp"]) <= now - CLOCK_SKEW_SECONDS:
                raise InvalidTokenError("token expired")
            if int(claims["nbf"]) > now + CLOCK_SKEW_SECONDS:
                raise InvalidTokenError("token not yet valid (nbf)")
        accepted = {audience} if isinstance(audience, str) else set(audience)
        if _normalise_audience(str(claims["aud"])) not in {_normalise_audience(item) for item in accepted}:
            raise InvalidTokenError(f"wrong audience {claims['aud']!r}")
        tenant_id = str(claims["tid"])
        if tenant_id not in self.directory.tenants:
            raise InvalidTokenError(f"unknown tenant {tenant_id!r}")
        expected_issuer = (
            issuer_v1(self.authority_url, tenant_id)
            if claims.get("ver") == "1.0"
            else issuer_v2(self.authority_url, tenant_id)
        )
        if claims["iss"] != expected_issuer:
            raise InvalidTokenError(f"wrong issuer {claims['iss']!r}")
        return dict(claims)  # a copy: the remembered claims must not change with what a caller does

    def _verify_signature(self, token: str) -> dict[str, Any]:
        """Header, signature and lifetime of a token not seen before; remembers it once it verifies."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise InvalidTokenError(f"malformed token: {error}") from error
        if header.get("alg") != "RS256":
            raise InvalidTokenError(f"unexpected signing algorithm {header.get('alg')!r}")
        kid = header.get("kid")
        if not kid:
            raise InvalidTokenError("token header has no kid")
        key = self.keys.find(kid)
        if key is None:
            raise InvalidTokenError(f"unknown signing key {kid!r}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.private_key.public_key(),
                algorithms=["RS256"],
                leeway=CLOCK_SKEW_SECONDS,
                options={"verify_aud": False, "require": ["exp", "iat", "nbf", "aud", "iss", "tid"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise InvalidTokenError("token expired") from error
        except jwt.ImmatureSignatureError as error:
            raise InvalidTokenError("token not yet valid (nbf)") from error
        except jwt.InvalidSignatureError as error:
            raise InvalidTokenError("signature does not verify") from error
        except jwt.PyJWTError as error:
            raise InvalidTokenError(f"invalid token: {error}") from error
        if len(self._verified_signatures) >= VERIFIED_TOKENS_KEPT:
            self._verified_signatures.clear()
        self._verified_signatures[token] = (kid, claims)
        return claims


def new_request_id() -> str:
    """A GUID for trace_id / correlation_id / uti values."""
    return str(uuid.uuid4())

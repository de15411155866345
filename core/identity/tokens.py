"""Verify Entra ID access and id tokens: signature against the published keys, issuer, audience, lifetime.

Keys come from the authority's JWKS through PyJWT's `PyJWKClient`: the key set is kept for `lifespan`
seconds and then fetched again, so a key Entra stops publishing is refused once the lifespan ends; a token
with an unknown `kid` forces at most one refetch per cooldown (key rotation is honoured, forged kids cannot
make us fetch on every request); every fetch has a timeout. Only RS256 is accepted, so `none` and
HS256-with-the-public-key tokens fail.

Callers such as Marketplace send the same token on many requests, so the outcome of the expensive part
(parsing and the RSA signature check) is remembered per exact token string; lifetime, audience, issuer,
parties and whether its key is still published are checked on every call.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import jwt

from core.errors import Unauthenticated

CLOCK_SKEW_SECONDS = 30
ALLOWED_ALGORITHMS = ["RS256"]
# Bounded: when full the memory of signature checks starts afresh (tokens live about an hour anyway).
SIGNATURE_MEMORY_SIZE = 1024
DEFAULT_KEY_LIFESPAN_SECONDS = 3600.0
DEFAULT_REFETCH_COOLDOWN_SECONDS = 30.0


class SigningKeys:
    """The authority's signing keys by kid: PyJWKClient with a lifespan, a refetch cooldown and a timeout."""

    def __init__(
        self,
        jwks_uri: str,
        *,
        verify: str | bool = True,
        timeout_seconds: float = 10.0,
        lifespan_seconds: float = DEFAULT_KEY_LIFESPAN_SECONDS,
        refetch_cooldown_seconds: float = DEFAULT_REFETCH_COOLDOWN_SECONDS,
    ) -> None:
        self.jwks_uri = jwks_uri
        self.lifespan_seconds = lifespan_seconds
        self._client = jwt.PyJWKClient(
            jwks_uri,
            # The per-kid LRU cache never expires a key: only the key set's cache (with its lifespan) is used.
            cache_keys=False,
            cache_jwk_set=True,
            lifespan=lifespan_seconds,
            timeout=timeout_seconds,
            ssl_context=_ssl_context(verify),
            cooldown_duration=refetch_cooldown_seconds,
        )

    def key_for(self, kid: str) -> jwt.PyJWK:
        """The key with this kid; raises Unauthenticated when the authority does not publish it (any more)."""
        try:
            return self._client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as error:
            raise Unauthenticated(f"signing keys unavailable: {type(error).__name__}") from None
        except jwt.PyJWKClientError:
            raise Unauthenticated("token signed by an unknown key", details={"kid": kid}) from None
        except jwt.PyJWKSetError as error:
            raise Unauthenticated(f"signing keys unavailable: {type(error).__name__}") from None


def _ssl_context(verify: str | bool) -> ssl.SSLContext:
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@dataclass(frozen=True)
class TokenRules:
    """What a token must say to be accepted for one purpose."""

    audiences: Collection[str]
    tenant_ids: Collection[str] | None = None  # None: any tenant (multi-tenant apps)
    client_app_ids: Collection[str] | None = None  # azp (v2) or appid (v1) must be one of these
    require_nonce: str | None = None


class EntraTokenVerifier:
    """Verifies tokens issued by one Entra authority (Azure's, or the local emulator's)."""

    def __init__(
        self,
        authority_host: str,
        *,
        v1_issuer_host: str = "https://sts.windows.net",
        verify: str | bool = True,
        key_lifespan_seconds: float = DEFAULT_KEY_LIFESPAN_SECONDS,
        refetch_cooldown_seconds: float = DEFAULT_REFETCH_COOLDOWN_SECONDS,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.authority_host = authority_host.rstrip("/")
        self.v1_issuer_host = v1_issuer_host.rstrip("/")
        self.keys = SigningKeys(
            f"{self.authority_host}/common/discovery/v2.0/keys",
            verify=verify,
            lifespan_seconds=key_lifespan_seconds,
            refetch_cooldown_seconds=refetch_cooldown_seconds,
            timeout_seconds=timeout_seconds,
        )
        # token -> (kid, claims): the kid is looked up again on every call, so a retired key ends the memory too.
        self._signed_claims: dict[str, tuple[str, dict[str, Any]]] = {}
        self._signed_claims_lock = threading.Lock()

    def verify(self, token: str, rules: TokenRules) -> dict[str, Any]:
        """Return the verified claims, or raise Unauthenticated naming the first check that failed."""
        remembered = self._signed_claims.get(token)
        if remembered is None:
            kid, claims = self._check_signature(token)
            with self._signed_claims_lock:
                if len(self._signed_claims) >= SIGNATURE_MEMORY_SIZE:
                    self._signed_claims.clear()
                self._signed_claims[token] = (kid, claims)
        else:
            kid, claims = remembered
            self.keys.key_for(kid)  # still published (the key set is cached, so this is a dictionary look-up)
        self._check_lifetime(claims)
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if not set(audiences) & set(rules.audiences):
            raise Unauthenticated("token audience is not this application")
        self._check_issuer_and_parties(claims, rules)
        return dict(claims)

    def _check_signature(self, token: str) -> tuple[str, dict[str, Any]]:
        """Claims of a token whose signature, algorithm and required claims check out (and not expired now)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed token") from None
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise Unauthenticated(f"token algorithm {header.get('alg')!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthenticated("token has no key id")
        key = self.keys.key_for(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=ALLOWED_ALGORITHMS,
                leeway=CLOCK_SKEW_SECONDS,
                # The audience depends on the caller's rules: verify() checks it on every call.
                options={"require": ["exp", "iat", "iss", "aud", "tid"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("token not yet valid") from None
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"token rejected: {error}") from None
        audience = claims["aud"]
        if not isinstance(audience, str) and not (
            isinstance(audience, list) and all(isinstance(item, str) for item in audience)
        ):
            raise Unauthenticated("token rejected: Invalid claim format in token")
        return kid, claims

    @staticmethod
    def _check_lifetime(claims: dict[str, Any]) -> None:
        """Expiry and not-before against the clock now: a remembered signature does not outlive its token."""
        now = time.time()
        if float(claims["exp"]) <= now - CLOCK_SKEW_SECONDS:
            raise Unauthenticated("token expired")
        if "nbf" in claims and float(claims["nbf"]) > now + CLOCK_SKEW_SECONDS:
            raise Unauthenticated("token not yet valid")

    def _check_issuer_and_parties(self, claims: dict[str, Any], rules: TokenRules) -> None:
        tenant_id = str(claims["tid"])
        if rules.tenant_ids is not None and tenant_id not in rules.tenant_ids:
            raise Unauthenticated("token issued for another tenant")
        accepted_issuers = {f"{self.authority_host}/{tenant_id}/v2.0", f"{self.v1_issuer_host}/{tenant_id}/"}
        if claims["iss"] not in accepted_issuers:
            raise Unauthenticated("token issuer is not the expected authority")
        if rules.client_app_ids is not None:
            client = claims.get("azp") or claims.get("appid")
            if client not in rules.client_app_ids:
                raise Unauthenticated("token was not issued to an accepted client application")
        if rules.require_nonce is not None and claims.get("nonce") != rules.require_nonce:
            raise Unauthenticated("token nonce does not match the sign-in request")

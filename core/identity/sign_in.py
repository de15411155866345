"""Interactive user sign-in with Entra ID (authorization code + PKCE) through msal, for server-rendered pages.

The control-plane app is multi-tenant, so the authority is `<authority host>/organizations`; the
verified id-token claims name the user and their tenant (`tid`). msal keeps the PKCE verifier, state
and nonce in the flow dict that the caller stores between the redirect and the callback.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import msal
import requests

from core.errors import ConfigurationError, Forbidden, Unauthenticated, UpstreamUnavailable
from core.settings import Settings

SIGN_IN_SCOPES: list[str] = []  # openid, profile and offline_access are added by msal
# OAuth errors by which Entra refuses the person (disabled, removed, consent or tokens revoked).
REFUSALS = frozenset({"invalid_grant", "interaction_required", "consent_required", "login_required"})


class SignInNotRecognised(Unauthenticated):
    """The browser came back with a sign-in this session did not start (another tab's, or one already finished)."""

    code = "SignInNotRecognised"


class DelegatedAccessRefused(Forbidden):
    """Entra will not give a token to act for the person on a resource (not consented, or revoked since)."""

    code = "DelegatedAccessRefused"


def delegated_arm_scope(settings: Settings) -> str:
    """Azure Resource Manager's delegated permission (user_impersonation) on the configured ARM resource."""
    return settings.arm_credential_scope.removesuffix("/.default").rstrip("/") + "/user_impersonation"


@dataclass(frozen=True)
class SignedInUser:
    """Who signed in, from the verified id token."""

    tenant_id: str
    object_id: str
    display_name: str
    username: str
    # App roles of the control-plane app (the `roles` claim), e.g. the operator role.
    roles: tuple[str, ...] = ()
    # Directory role template ids (the `wids` claim): the fallback for tenants that assigned no app role.
    directory_roles: tuple[str, ...] = ()
    # For reading roles again later without the person (kept sealed in the server-side session only).
    refresh_token: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """For the session cookie."""
        return {
            "tenant_id": self.tenant_id,
            "object_id": self.object_id,
            "display_name": self.display_name,
            "username": self.username,
            "roles": list(self.roles),
            "wids": list(self.directory_roles),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SignedInUser:
        """From the session cookie."""
        return cls(
            tenant_id=str(values["tenant_id"]),
            object_id=str(values["object_id"]),
            display_name=str(values.get("display_name", "")),
            username=str(values.get("username", "")),
            roles=tuple(str(role) for role in values.get("roles", []) if isinstance(role, str)),
            directory_roles=tuple(str(role) for role in values.get("wids", []) if isinstance(role, str)),
        )


class _ConfiguredVerifySession(requests.Session):
    """A requests session whose `verify` wins over REQUESTS_CA_BUNDLE (requests lets the variable override it)."""

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> dict[str, Any]:
        merged: dict[str, Any] = super().merge_environment_settings(url, proxies, stream, verify, cert)
        merged["verify"] = self.verify
        return merged


class UserSignIn:
    """Starts and completes authorization-code flows for the control-plane app (one msal app per process)."""

    def __init__(self, settings: Settings) -> None:
        if settings.control_plane_client_id is None or settings.control_plane_client_secret is None:
            raise ConfigurationError("sign-in needs CP_CONTROL_PLANE_CLIENT_ID and CP_CONTROL_PLANE_CLIENT_SECRET")
        self.settings = settings
        self._application: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()

    def _app(self) -> msal.ConfidentialClientApplication:
        # Built lazily: msal reads the authority's metadata over the network on construction.
        with self._lock:
            if self._application is None:
                settings = self.settings
                http_client = _ConfiguredVerifySession()
                http_client.verify = settings.tls_verify
                assert settings.control_plane_client_secret is not None
                self._application = msal.ConfidentialClientApplication(
                    settings.control_plane_client_id,
                    client_credential=settings.control_plane_client_secret.get_secret_value(),
                    authority=f"{settings.entra_authority_host.rstrip('/')}/organizations",
                    instance_discovery=not settings.entra_disable_instance_discovery,
                    http_client=http_client,
                    timeout=settings.http_timeout_seconds,
                )
            return self._application

    def begin(self, redirect_uri: str, extra_scopes: list[str] | None = None) -> dict[str, Any]:
        """A new flow: keep it (server-side or in a signed cookie) and send the browser to flow["auth_uri"].

        `extra_scopes` asks the person to consent to delegated permissions on another resource as they sign in
        (incremental consent); the refresh token then reaches that resource too.
        """
        scopes = [*SIGN_IN_SCOPES, *(extra_scopes or [])]
        flow: dict[str, Any] = self._app().initiate_auth_code_flow(scopes, redirect_uri=redirect_uri)
        return flow

    def complete(self, flow: dict[str, Any], query: dict[str, str]) -> SignedInUser:
        """Redeem the code of the callback; raises Unauthenticated with Entra's reason when it fails."""
        try:
            result = self._app().acquire_token_by_auth_code_flow(flow, query)
        except ValueError:  # msal: state mismatch or a flow that was already used; its words quote the state values
            raise SignInNotRecognised(
                "this sign-in was started in another tab or window, or it was already finished"
            ) from None
        return _signed_in_user(result, "sign-in failed")

    def refresh(self, refresh_token: str) -> SignedInUser:
        """The same person's current roles and tenant, read again from Entra with their refresh token.

        Raises Unauthenticated when Entra refuses (user disabled or removed, consent revoked, token revoked).
        """
        result = self._app().acquire_token_by_refresh_token(refresh_token, scopes=SIGN_IN_SCOPES)
        if "error" in result and result["error"] not in REFUSALS:
            # Throttled or unavailable: says nothing about the person, so it must not end their session.
            raise UpstreamUnavailable(f"Entra could not answer: {result['error']}")
        return _signed_in_user(result, "Entra no longer signs this person in")

    def delegated_access_token(self, refresh_token: str, scope: str, timeout_seconds: float) -> str:
        """An access token to act for the person on `scope`'s resource, redeemed with their refresh token.

        Raises DelegatedAccessRefused when Entra refuses the person or the scope (not consented, revoked), and
        UpstreamUnavailable when Entra cannot answer.
        """
        try:
            # msal relays `timeout` to requests: a page waiting on this gets no more than its time left.
            result = self._app().acquire_token_by_refresh_token(
                refresh_token, scopes=[scope], timeout=min(timeout_seconds, self.settings.http_timeout_seconds)
            )
        except (requests.RequestException, ValueError) as error:
            raise UpstreamUnavailable(f"Entra could not answer ({type(error).__name__})") from None
        if "error" in result:
            if result["error"] in REFUSALS or result.get("suberror") == "consent_required":
                raise DelegatedAccessRefused(f"Entra refused a token for {scope}: {result['error']}")
            raise UpstreamUnavailable(f"Entra could not answer: {result['error']}")
        token = result.get("access_token")
        if not isinstance(token, str) or not token:
            raise UpstreamUnavailable("Entra answered without an access token")
        return token


def _signed_in_user(result: dict[str, Any], failure: str) -> SignedInUser:
    if "error" in result:
        raise Unauthenticated(f"{failure}: {result.get('error_description') or result['error']}")
    claims: dict[str, Any] = result.get("id_token_claims") or {}
    if not claims.get("tid") or not claims.get("oid"):
        raise Unauthenticated(f"{failure}: no tenant or object id in the id token")
    refresh_token = result.get("refresh_token")
    return SignedInUser(
        tenant_id=str(claims["tid"]),
        object_id=str(claims["oid"]),
        display_name=str(claims.get("name") or ""),
        username=str(claims.get("preferred_username") or ""),
        roles=tuple(str(role) for role in claims.get("roles", []) or [] if isinstance(role, str)),
        directory_roles=tuple(str(role) for role in claims.get("wids", []) or [] if isinstance(role, str)),
        refresh_token=refresh_token if isinstance(refresh_token, str) else None,
    )

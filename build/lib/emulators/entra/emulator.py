"""The Entra ID emulator as a suite component."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulators.common.faults import FaultInjector, FaultRule
from emulators.entra.directory import DEFAULT_DIRECTORY_PATH, AppRegistration, Directory, Tenant
from emulators.entra.grants import GrantStore, TokenEndpoint
from emulators.entra.routes import build_entra_app
from emulators.entra.sign_in import SignInService
from emulators.entra.signing_keys import SigningKeyRing
from emulators.entra.tokens import V1_ISSUER_HOST, TokenIssuer, issuer_v1, issuer_v2

if TYPE_CHECKING:
    from fastapi import FastAPI

    from emulators.suite import EmulatorSuiteConfig

# The first-party application Marketplace calls from; also the resource of the fulfilment and metering APIs.
MARKETPLACE_APP_ID = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"
PUBLISHER_TENANT_KEY = "publisher"
PUBLISHER_FULFILLMENT_APP_KEY = "publisher-fulfillment"
CONTROL_PLANE_APP_KEY = "control-plane"


class EntraEmulator:
    """Entra ID stand-in: a directory, rotating signing keys, OAuth endpoints and token helpers."""

    name = "entra"

    def __init__(self, directory: Directory, faults: FaultInjector) -> None:
        self.directory = directory
        self.faults = faults
        self.keys = SigningKeyRing()
        self.issuer = TokenIssuer(directory, self.keys)
        self.grants = GrantStore()
        self.token_endpoint = TokenEndpoint(directory, self.issuer, self.grants)
        self.sign_in = SignInService(directory, self.grants)

    @classmethod
    def from_suite_config(cls, config: EmulatorSuiteConfig) -> EntraEmulator:
        """Build from suite options: `entra_directory_path` (TOML) and `entra_faults` (initial fault rules)."""
        directory_path = Path(config.options.get("entra_directory_path", DEFAULT_DIRECTORY_PATH))
        rules = [FaultRule.model_validate(rule) for rule in config.options.get("entra_faults", [])]
        return cls(Directory.load(directory_path), FaultInjector(seed=config.seed, rules=rules))

    # Component protocol ---------------------------------------------------------------------

    def asgi_app(self) -> FastAPI:
        """The HTTP app served by the suite."""
        return build_entra_app(self)

    def on_started(self, base_url: str) -> None:
        """Learn the https base URL: it is the authority and part of every issuer."""
        self.issuer.authority_url = base_url

    def describe(self) -> dict[str, Any]:
        """Facts for emulators.json: authority, issuers, apps with their generated secrets, users."""
        publisher_tenant = self.publisher_tenant
        base = self.authority_url
        return {
            "authority_url": base,
            "sts_url": V1_ISSUER_HOST,
            "control_url": f"{base}/_emulator",
            "publisher_tenant_id": publisher_tenant.id,
            "issuer_v2_template": issuer_v2(base, "{tenant_id}"),
            "issuer_v1_template": issuer_v1(base, "{tenant_id}"),
            "jwks_uri_template": f"{base}/{{tenant_id}}/discovery/v2.0/keys",
            "marketplace_app_id": MARKETPLACE_APP_ID,
            "publisher_fulfillment_app_id": self.publisher_fulfillment_app.app_id,
            "control_plane_app_id": self.control_plane_app.app_id,
            **self.directory.describe(),
        }

    # Directory shortcuts --------------------------------------------------------------------

    @property
    def authority_url(self) -> str:
        """The https base URL (stands in for https://login.microsoftonline.com)."""
        return self.issuer.authority_url

    @property
    def publisher_tenant(self) -> Tenant:
        """The publisher's own tenant."""
        return self.directory.tenant_by_key(PUBLISHER_TENANT_KEY)

    @property
    def publisher_fulfillment_app(self) -> AppRegistration:
        """The single-tenant app that calls the Marketplace APIs and receives webhooks."""
        return self.directory.app_by_key(PUBLISHER_FULFILLMENT_APP_KEY)

    @property
    def control_plane_app(self) -> AppRegistration:
        """The multi-tenant app for portal sign-in and for reaching customers' subscriptions."""
        return self.directory.app_by_key(CONTROL_PLANE_APP_KEY)

    # Tokens ---------------------------------------------------------------------------------

    def mint_access_token(
        self,
        *,
        tenant_id: str,
        audience: str,
        client_id: str,
        extra_claims: dict[str, Any] | None = None,
        lifetime_seconds: int = 3600,
    ) -> str:
        """An app-only access token signed with the active key; v1 or v2 shape follows the audience's resource."""
        return self.issuer.mint_access_token(
            tenant_id=tenant_id,
            audience=audience,
            client_id=client_id,
            extra_claims=extra_claims,
            lifetime_seconds=lifetime_seconds,
        )

    def verify_access_token(self, token: str, *, audience: str | set[str]) -> dict[str, Any]:
        """Verify a token this emulator issued; raises InvalidTokenError with the reason."""
        return self.issuer.verify_access_token(token, audience=audience)

    def mint_marketplace_webhook_token(self, lifetime_seconds: int = 3600) -> str:
        """The bearer token Marketplace puts on webhook calls: v2, aud = publisher app, azp = Marketplace."""
        return self.mint_access_token(
            tenant_id=self.publisher_tenant.id,
            audience=self.publisher_fulfillment_app.app_id,
            client_id=MARKETPLACE_APP_ID,
            lifetime_seconds=lifetime_seconds,
        )

    def mint_marketplace_api_token(self, client_id: str | None = None, lifetime_seconds: int = 3600) -> str:
        """A token for the fulfilment and metering APIs, as the publisher app gets from the token endpoint."""
        return self.mint_access_token(
            tenant_id=self.publisher_tenant.id,
            audience=MARKETPLACE_APP_ID,
            client_id=client_id or self.publisher_fulfillment_app.app_id,
            lifetime_seconds=lifetime_seconds,
        )

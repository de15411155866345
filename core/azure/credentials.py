"""Entra ID credentials through azure-identity, chosen by settings; the only module that builds them.

One code path for Azure and the local emulator: the authority host, instance discovery and the CA
bundle come from settings. azure-identity caches tokens in memory until shortly before they expire.
"""

from __future__ import annotations

import json
import time
from functools import cached_property
from typing import Any

from azure.core.credentials import TokenCredential
from azure.identity import CertificateCredential, ClientSecretCredential, WorkloadIdentityCredential

from core.errors import ConfigurationError
from core.settings import Settings


def fresh_token_claims() -> str:
    """A claims challenge asking for a token issued from now on (nbf >= now): azure-identity and MSAL then bypass
    their token cache. For a service that refused a cached token, e.g. after Entra retired the key that signed it."""
    return json.dumps({"access_token": {"nbf": {"essential": True, "value": str(int(time.time()))}}})


class CredentialFactory:
    """Builds and caches the publisher credential and one credential per customer tenant."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._customer_credentials: dict[str, TokenCredential] = {}

    def _common_options(self) -> dict[str, Any]:
        return {
            "authority": self.settings.entra_authority_host,
            "disable_instance_discovery": self.settings.entra_disable_instance_discovery,
            "connection_verify": self.settings.tls_verify,
        }

    @cached_property
    def publisher(self) -> TokenCredential:
        """The single-tenant fulfilment app in the publisher tenant (Marketplace fulfilment and metering)."""
        settings = self.settings
        options = self._common_options()
        if settings.use_workload_identity:
            return WorkloadIdentityCredential(
                tenant_id=settings.publisher_tenant_id, client_id=settings.publisher_client_id, **options
            )
        if settings.publisher_client_certificate_path is not None:
            # A client assertion signed with the certificate's key (RFC 7523, x5t header): no secret crosses the wire.
            password = settings.publisher_client_certificate_password
            return CertificateCredential(
                settings.publisher_tenant_id,
                settings.publisher_client_id,
                certificate_path=str(settings.publisher_client_certificate_path),
                password=password.get_secret_value() if password is not None else None,
                **options,
            )
        if settings.publisher_client_secret is None:
            raise ConfigurationError("no publisher credential configured")
        return ClientSecretCredential(
            settings.publisher_tenant_id,
            settings.publisher_client_id,
            settings.publisher_client_secret.get_secret_value(),
            **options,
        )

    def customer_tenant(self, tenant_id: str) -> TokenCredential:
        """The multi-tenant control-plane app signed in to a customer's tenant (needs that tenant's consent)."""
        if tenant_id not in self._customer_credentials:
            settings = self.settings
            if settings.control_plane_client_id is None:
                raise ConfigurationError("CP_CONTROL_PLANE_CLIENT_ID is required to reach customer subscriptions")
            options = self._common_options()
            credential: TokenCredential
            if settings.control_plane_client_certificate_path is not None:
                credential = CertificateCredential(
                    tenant_id,
                    settings.control_plane_client_id,
                    certificate_path=str(settings.control_plane_client_certificate_path),
                    **options,
                )
            elif settings.control_plane_client_secret is not None:
                credential = ClientSecretCredential(
                    tenant_id,
                    settings.control_plane_client_id,
                    settings.control_plane_client_secret.get_secret_value(),
                    **options,
                )
            else:
                raise ConfigurationError(
                    "CP_CONTROL_PLANE_CLIENT_SECRET or CP_CONTROL_PLANE_CLIENT_CERTIFICATE_PATH is required"
                )
            self._customer_credentials[tenant_id] = credential
        return self._customer_credentials[tenant_id]

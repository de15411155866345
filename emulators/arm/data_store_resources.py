"""The stores the control plane's deployment uses: PostgreSQL flexible servers, Redis caches, container registries.

A server gets its FQDN and never returns its administrator password; a cache gets its host name, ports and
access keys, which only the listKeys action returns; a registry gets its login server.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from emulators.arm.errors import ResourceFailure
from emulators.arm.resource_providers import PutRequest, ResourceHandler, ResourceProviders
from emulators.arm.store import StoredResource

POSTGRES_VERSIONS = {"13", "14", "15", "16", "17"}


class PostgresFlexibleServerHandler(ResourceHandler):
    """flexibleServers: create needs an administrator login and password (while password auth is on)."""

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        properties = request.properties
        auth = properties.get("authConfig") or {}
        password_auth = str(auth.get("passwordAuth", "Enabled")).lower() == "enabled"
        if request.existing is None and password_auth:
            for required in ("administratorLogin", "administratorLoginPassword"):
                if not properties.get(required):
                    raise ResourceFailure("InvalidParameterValue", f"The property '{required}' is required.")
        version = str(properties.get("version") or "16")
        if version not in POSTGRES_VERSIONS:
            raise ResourceFailure("InvalidParameterValue", f"PostgreSQL version '{version}' is not supported.")
        sku = request.body.get("sku") or {}
        if not sku.get("name") or sku.get("tier") not in ("Burstable", "GeneralPurpose", "MemoryOptimized"):
            raise ResourceFailure(
                "InvalidParameterValue", "sku needs a name and a tier (Burstable, GeneralPurpose, MemoryOptimized)."
            )
        body = providers.base_body(request)
        body["properties"].pop("administratorLoginPassword", None)  # write-only
        previous = request.existing.body["properties"] if request.existing else {}
        body["properties"]["version"] = version
        body["properties"]["administratorLogin"] = previous.get("administratorLogin") or properties.get(
            "administratorLogin"
        )
        body["properties"]["fullyQualifiedDomainName"] = f"{request.resource_id.leaf_name}.postgres.database.azure.com"
        body["properties"]["state"] = "Ready"
        body["properties"].pop("provisioningState", None)
        return body


class PostgresChildHandler(ResourceHandler):
    """flexibleServers/databases and /firewallRules: no location, the parent server must exist."""

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        body = providers.base_body(request)
        body.pop("location", None)
        return body


class RedisCacheHandler(ResourceHandler):
    """redis: host name and ports; two access keys kept beside the body and answered by listKeys."""

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        sku = request.properties.get("sku") or {}
        if sku.get("name") not in ("Basic", "Standard", "Premium") or sku.get("family") not in ("C", "P"):
            raise ResourceFailure(
                "InvalidRequestBody", "properties.sku needs name (Basic, Standard, Premium) and family (C, P)."
            )
        if (sku.get("name") == "Premium") != (sku.get("family") == "P"):
            raise ResourceFailure("InvalidRequestBody", "The Premium tier uses family P; Basic and Standard use C.")
        body = providers.base_body(request)
        name = request.resource_id.leaf_name
        properties = body["properties"]
        properties["hostName"] = f"{name}.redis.cache.windows.net"
        properties["port"] = 6379
        properties["sslPort"] = 6380
        properties.setdefault("enableNonSslPort", False)
        properties.setdefault("minimumTlsVersion", "1.2")
        properties.setdefault("redisVersion", "6")
        return body

    def after_put(self, providers: ResourceProviders, stored: StoredResource) -> None:
        if "accessKeys" not in stored.runtime:
            stored.runtime["accessKeys"] = {
                "primaryKey": base64.b64encode(secrets.token_bytes(32)).decode(),
                "secondaryKey": base64.b64encode(secrets.token_bytes(32)).decode(),
            }

    def list_action(self, providers: ResourceProviders, stored: StoredResource, action: str) -> dict[str, Any]:
        if action != "listkeys":
            return super().list_action(providers, stored, action)
        if stored.body["properties"].get("disableAccessKeyAuthentication"):
            raise ResourceFailure("AccessKeyAuthenticationDisabled", "Access keys are disabled for this cache.")
        return dict(stored.runtime["accessKeys"])


class ContainerRegistryHandler(ResourceHandler):
    """registries: a login server named after the registry (what image references and pull credentials use)."""

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        if (request.body.get("sku") or {}).get("name") not in ("Basic", "Standard", "Premium"):
            raise ResourceFailure("InvalidSku", "sku.name must be Basic, Standard or Premium.")
        body = providers.base_body(request)
        body["properties"]["loginServer"] = f"{request.resource_id.leaf_name.lower()}.azurecr.io"
        body["properties"].setdefault("adminUserEnabled", False)
        return body


def register_data_store_handlers(providers: ResourceProviders) -> None:
    """Add the PostgreSQL flexible server and Redis cache handlers to the registry."""
    providers.register("Microsoft.DBforPostgreSQL/flexibleServers", PostgresFlexibleServerHandler())
    providers.register("Microsoft.DBforPostgreSQL/flexibleServers/databases", PostgresChildHandler())
    providers.register("Microsoft.DBforPostgreSQL/flexibleServers/firewallRules", PostgresChildHandler())
    providers.register("Microsoft.Cache/redis", RedisCacheHandler())
    providers.register("Microsoft.ContainerRegistry/registries", ContainerRegistryHandler())

"""The Key Vault data plane (what azure-keyvault-keys calls): one HTTPS port per vault.

Each vault gets its own loopback port (one event loop serves them all, see `VaultListeners`) because the
SDK derives the vault from a key id's scheme, host and port only (`https://host:port/keys/{name}/{version}`),
as real vaults have their own host names.
Authentication is Key Vault's challenge: a request without a token gets 401 with
`WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="https://vault.azure.net"`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from emulators.arm.keyvault_keys import (
    KeyVaultError,
    VaultKey,
    base64url,
    default_rotation_policy,
    from_base64url,
    key_bundle,
    new_key_version,
)
from emulators.arm.vault_listeners import VaultListeners
from emulators.common.faults import FaultInjectionMiddleware, FaultInjector, fault_control_router

if TYPE_CHECKING:
    from emulators.common.tls import EmulatorCertificateAuthority

KEY_VAULT_AUDIENCE = "https://vault.azure.net"
# Data actions, named after Key Vault's RBAC data actions.
ACTION_READ = "keys/read"
ACTION_WRITE = "keys/write"
ACTION_WRAP = "keys/wrap"
ACTION_UNWRAP = "keys/unwrap"


@dataclass
class VaultState:
    """A vault's data plane: who owns it, its keys, and whether it is soft-deleted."""

    name: str
    resource_id: str
    tenant_id: str
    sku_name: str
    creator_app: str | None
    purge_protection: bool
    url: str = ""
    deleted: bool = False
    keys: dict[str, VaultKey] = field(default_factory=dict)
    # Soft-deleted keys by lower-case name: their names cannot be reused until recovered or purged.
    deleted_keys: dict[str, VaultKey] = field(default_factory=dict)
    port: int | None = None

    @property
    def recovery_level(self) -> str:
        """Key Vault's recoveryLevel attribute for this vault's keys."""
        return "Recoverable" if self.purge_protection else "Recoverable+Purgeable"

    def key(self, name: str) -> VaultKey:
        """A key by name; KeyNotFound otherwise."""
        found = self.keys.get(name.lower())
        if found is None:
            raise KeyVaultError(404, "KeyNotFound", f"A key with (name/id) {name} was not found in this key vault.")
        return found


Authorizer = Callable[[VaultState, str | None, dict[str, Any], str], bool]
"""(vault, key name, token claims, action) -> allowed; ARM answers it from role assignments."""
TokenVerifier = Callable[[str], dict[str, Any]]


class KeyVaultService:
    """Every vault's data plane; ARM registers vaults as they are created and asks it for key material."""

    def __init__(
        self,
        verify_token: TokenVerifier,
        authority_url: Callable[[], str],
        authorizer: Authorizer,
        faults: FaultInjector,
        key_created: Callable[[VaultState, VaultKey], None],
        host: str = "127.0.0.1",
    ) -> None:
        self._verify_token = verify_token
        self._authority_url = authority_url
        self._authorizer = authorizer
        # Keys made through the data plane are ARM resources too (vaults/keys), like in Azure.
        self._key_created = key_created
        self.faults = faults
        self.host = host
        self.tls: EmulatorCertificateAuthority | None = None
        self._lock = threading.RLock()
        self._vaults: dict[str, VaultState] = {}
        self._vaults_by_port: dict[int, VaultState] = {}
        self._listeners: VaultListeners | None = None
        self._app = self._build_app()

    # Vault lifecycle (called by ARM) ---------------------------------------------------------------------------
    def open_vault(
        self,
        name: str,
        resource_id: str,
        tenant_id: str,
        sku_name: str,
        creator_app: str | None,
        purge_protection: bool,
    ) -> VaultState:
        """Register a vault (or update an existing one) and make sure its server listens; returns its state."""
        with self._lock:
            vault = self._vaults.get(name.lower())
            if vault is None:
                vault = VaultState(name, resource_id, tenant_id, sku_name, creator_app, purge_protection)
                self._vaults[name.lower()] = vault
            vault.resource_id, vault.tenant_id, vault.sku_name = resource_id, tenant_id, sku_name
            vault.purge_protection = purge_protection
            vault.deleted = False
            if vault.port is None:
                if self.tls is None:
                    raise RuntimeError("the Key Vault data plane has no TLS certificate authority yet")
                if self._listeners is None:
                    self._listeners = VaultListeners(self._app, self.tls, host=self.host)
                vault.port = self._listeners.open_port()
                vault.url = f"https://{self.host}:{vault.port}"
                self._vaults_by_port[vault.port] = vault
            return vault

    def vault(self, name: str) -> VaultState | None:
        """The vault's state, deleted or not."""
        return self._vaults.get(name.lower())

    def set_deleted(self, name: str, deleted: bool) -> None:
        """Soft delete or recover: a deleted vault answers no data-plane requests but keeps its keys."""
        with self._lock:
            vault = self._vaults.get(name.lower())
            if vault is not None:
                vault.deleted = deleted

    def purge(self, name: str) -> None:
        """Forget a vault; its port answers VaultNotFound until the emulator stops (no wait inside a request)."""
        with self._lock:
            vault = self._vaults.pop(name.lower(), None)
            if vault is not None and vault.port is not None:
                self._vaults_by_port.pop(vault.port, None)

    def stop(self) -> None:
        """Close every vault's port (purged vaults' too)."""
        with self._lock:
            listeners, self._listeners = self._listeners, None
            self._vaults_by_port.clear()
        if listeners is not None:
            listeners.stop()

    def create_key(
        self,
        vault: VaultState,
        key_name: str,
        key_type: str,
        key_size: int,
        operations: list[str] | None,
        attributes: dict[str, Any] | None,
        tags: dict[str, str] | None,
    ) -> VaultKey:
        """Create a key, or add a version when it exists (Key Vault's create semantics)."""
        if key_type == "RSA-HSM" and vault.sku_name.lower() != "premium":
            raise KeyVaultError(400, "BadParameter", "RSA-HSM keys require a premium SKU vault.")
        if key_name.lower() in vault.deleted_keys:
            raise KeyVaultError(
                409,
                "Conflict",
                f"Key {key_name} is currently in a deleted but recoverable state, and its name cannot be reused; "
                "in this state, the key can only be recovered or purged.",
                "ObjectIsDeletedButRecoverable",
            )
        version = new_key_version(key_type, key_size, operations, attributes, tags)
        with self._lock:
            key = vault.keys.get(key_name.lower())
            created = key is None
            if key is None:
                key = VaultKey(key_name, [version], default_rotation_policy())
                vault.keys[key_name.lower()] = key
            else:
                key.versions.append(version)
        if created:
            # Outside our lock: the callback takes ARM's lock, which ARM holds while calling us.
            self._key_created(vault, key)
        return key

    def delete_key(self, vault: VaultState, key_name: str) -> VaultKey:
        """Soft delete a key (every version): it answers KeyNotFound and its name stays taken until purged."""
        with self._lock:
            key = vault.key(key_name)
            del vault.keys[key_name.lower()]
            vault.deleted_keys[key_name.lower()] = key
            return key

    def rotate_key(self, vault: VaultState, key_name: str) -> VaultKey:
        """A new version with the same type, size and operations."""
        key = vault.key(key_name)
        latest = key.latest
        version = new_key_version(latest.key_type, latest.key_size, latest.operations, {"enabled": True}, latest.tags)
        with self._lock:
            key.versions.append(version)
        return key

    @staticmethod
    def set_rotation_policy(key: VaultKey, policy: dict[str, Any]) -> dict[str, Any]:
        """Replace the rotation policy, keeping its creation time."""
        now = int(time.time())
        created = key.rotation_policy.get("attributes", {}).get("created", now)
        attributes = dict(policy.get("attributes") or {})
        attributes.update(created=created, updated=now)
        key.rotation_policy = {"lifetimeActions": list(policy.get("lifetimeActions") or []), "attributes": attributes}
        return key.rotation_policy

    # HTTP -------------------------------------------------------------------------------------------------------
    def asgi_app(self) -> Any:
        """The ASGI app every vault server runs; the port tells which vault a request is for."""
        return self._app

    def _build_app(self) -> Any:
        app = FastAPI(title="Key Vault data plane emulator", openapi_url=None, docs_url=None, redoc_url=None)
        app.include_router(fault_control_router(self.faults))

        @app.exception_handler(KeyVaultError)
        async def key_vault_error(request: Request, error: KeyVaultError) -> JSONResponse:
            headers = {}
            if error.status == 401:
                headers["WWW-Authenticate"] = self._challenge(request)
            return JSONResponse(error.body(), status_code=error.status, headers=headers)

        @app.api_route("/keys/{key_name}/create", methods=["POST"])
        async def create_key(key_name: str, request: Request) -> Response:
            vault, _ = self._authorize(request, key_name, ACTION_WRITE)
            body = await _json_body(request)
            key = self.create_key(
                vault,
                key_name,
                str(body.get("kty", "")),
                int(body.get("key_size") or 2048),
                body.get("key_ops"),
                body.get("attributes"),
                body.get("tags"),
            )
            return _json(key_bundle(vault.url, key, key.latest, vault.recovery_level))

        @app.api_route("/keys/{key_name}/rotate", methods=["POST"])
        async def rotate_key(key_name: str, request: Request) -> Response:
            vault, _ = self._authorize(request, key_name, ACTION_WRITE)
            key = self.rotate_key(vault, key_name)
            return _json(key_bundle(vault.url, key, key.latest, vault.recovery_level))

        @app.api_route("/keys/{key_name}/rotationpolicy", methods=["GET", "PUT"])
        async def rotation_policy(key_name: str, request: Request) -> Response:
            action = ACTION_READ if request.method == "GET" else ACTION_WRITE
            vault, _ = self._authorize(request, key_name, action)
            key = vault.key(key_name)
            policy = (
                key.rotation_policy
                if request.method == "GET"
                else self.set_rotation_policy(key, await _json_body(request))
            )
            return _json({"id": f"{vault.url}/keys/{key.name}/rotationpolicy", **policy})

        @app.api_route("/keys/{key_name}/versions", methods=["GET"])
        async def list_versions(key_name: str, request: Request) -> Response:
            vault, _ = self._authorize(request, key_name, ACTION_READ)
            key = vault.key(key_name)
            items = []
            for version in key.versions:
                bundle = key_bundle(vault.url, key, version, vault.recovery_level)
                items.append({"kid": bundle["key"]["kid"], "attributes": bundle["attributes"], "tags": bundle["tags"]})
            return _json({"value": items, "nextLink": None})

        @app.api_route("/keys", methods=["GET"])
        async def list_keys(request: Request) -> Response:
            vault, _ = self._authorize(request, None, ACTION_READ)
            items = []
            for key in list(vault.keys.values()):
                bundle = key_bundle(vault.url, key, key.latest, vault.recovery_level)
                items.append(
                    {"kid": f"{vault.url}/keys/{key.name}", "attributes": bundle["attributes"], "tags": bundle["tags"]}
                )
            return _json({"value": items, "nextLink": None})

        @app.api_route("/keys/{key_name}/{version}/{operation}", methods=["POST"])
        async def key_operation(key_name: str, version: str, operation: str, request: Request) -> Response:
            wrapping = operation.lower() in ("wrapkey", "encrypt")
            if operation.lower() not in ("wrapkey", "unwrapkey", "encrypt", "decrypt"):
                raise KeyVaultError(400, "BadParameter", f"Operation '{operation}' is not supported.")
            vault, _ = self._authorize(request, key_name, ACTION_WRAP if wrapping else ACTION_UNWRAP)
            key = vault.key(key_name)
            key_version = key.version(version)
            required = {"wrapkey": "wrapKey", "unwrapkey": "unwrapKey", "encrypt": "encrypt", "decrypt": "decrypt"}[
                operation.lower()
            ]
            if required not in key_version.operations:
                raise KeyVaultError(
                    403, "Forbidden", f"Operation {required} is not permitted on this key.", "KeyOperationForbidden"
                )
            if not key_version.enabled:
                raise KeyVaultError(403, "Forbidden", "Operation is not allowed on a disabled key.", "KeyDisabled")
            body = await _json_body(request)
            algorithm = str(body.get("alg", ""))
            value = from_base64url(str(body.get("value", "")))
            result = key_version.wrap(algorithm, value) if wrapping else key_version.unwrap(algorithm, value)
            return _json({"kid": f"{vault.url}/keys/{key.name}/{key_version.version}", "value": base64url(result)})

        @app.api_route("/keys/{key_name}", methods=["GET"])
        @app.api_route("/keys/{key_name}/{version}", methods=["GET"])
        async def get_key(key_name: str, request: Request, version: str = "") -> Response:
            vault, _ = self._authorize(request, key_name, ACTION_READ)
            key = vault.key(key_name)
            return _json(key_bundle(vault.url, key, key.version(version), vault.recovery_level))

        return FaultInjectionMiddleware(app, self.faults)

    def _vault_for(self, request: Request) -> VaultState:
        server = request.scope.get("server") or ("", 0)
        vault = self._vaults_by_port.get(int(server[1]))
        if vault is None or vault.deleted:
            raise KeyVaultError(404, "VaultNotFound", "The vault was not found or has been deleted.")
        return vault

    def _challenge(self, request: Request) -> str:
        try:
            tenant_id = self._vault_for(request).tenant_id
        except KeyVaultError:
            tenant_id = "common"
        return f'Bearer authorization="{self._authority_url()}/{tenant_id}", resource="{KEY_VAULT_AUDIENCE}"'

    def _authorize(self, request: Request, key_name: str | None, action: str) -> tuple[VaultState, dict[str, Any]]:
        if "api-version" not in request.query_params:
            raise KeyVaultError(400, "BadParameter", "The 'api-version' query parameter is required.")
        vault = self._vault_for(request)
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            raise KeyVaultError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
        try:
            claims = self._verify_token(header[7:].strip())
        except Exception as error:  # the verifier's InvalidTokenError, whatever its module
            raise KeyVaultError(401, "Unauthorized", f"AKV10032: Invalid token: {error}.") from None
        if str(claims.get("tid", "")).lower() != vault.tenant_id.lower():
            raise KeyVaultError(
                401, "Unauthorized", f"AKV10032: Invalid issuer. Expected one from tenant {vault.tenant_id}."
            )
        if not self._authorizer(vault, key_name, claims, action):
            caller = claims.get("appid") or claims.get("azp") or claims.get("oid")
            raise KeyVaultError(
                403,
                "Forbidden",
                "Caller is not authorized to perform action on resource. "
                f"Caller: appid={caller};oid={claims.get('oid')}. "
                f"Action: 'Microsoft.KeyVault/vaults/{action}'. Resource: '{vault.resource_id.lower()}'.",
                "ForbiddenByRbac",
            )
        return vault, claims


async def _json_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise KeyVaultError(400, "BadParameter", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise KeyVaultError(400, "BadParameter", "The request body must be a JSON object.")
    return data


def _json(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body)

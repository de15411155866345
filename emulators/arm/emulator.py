"""The ARM emulator as a suite component, with the Key Vault data plane it hosts."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from emulators.arm.arm_app import build_arm_app
from emulators.arm.compute_resources import register_compute_handlers
from emulators.arm.container_apps_resources import register_container_apps_handlers
from emulators.arm.data_store_resources import register_data_store_handlers
from emulators.arm.deployments import DeploymentEngine
from emulators.arm.keyvault_data_plane import (
    ACTION_READ,
    ACTION_UNWRAP,
    ACTION_WRAP,
    ACTION_WRITE,
    KEY_VAULT_AUDIENCE,
    KeyVaultService,
    VaultState,
)
from emulators.arm.keyvault_keys import VaultKey
from emulators.arm.keyvault_resources import register_keyvault_handlers
from emulators.arm.monitor_resources import register_monitor_handlers
from emulators.arm.network_resources import register_network_handlers
from emulators.arm.resource_providers import ResourceProviders
from emulators.arm.store import ArmStore, StoredResource, Subscription
from emulators.arm.throttling import SubscriptionRateLimiter
from emulators.common.faults import FaultInjector, FaultRule

if TYPE_CHECKING:
    from emulators.common.tls import EmulatorCertificateAuthority
    from emulators.entra import EntraEmulator
    from emulators.suite import EmulatorSuiteConfig

ARM_SCOPE = "https://management.azure.com/.default"
# Stable subscription ids: derived from the tenant and the suite seed.
SUBSCRIPTION_NAMESPACE = uuid.UUID("0c6f4f0e-2b0d-4c55-9d1e-5a7f3e2b8c41")
# Key Vault built-in roles and the data actions they grant on keys.
KEY_VAULT_ROLE_ACTIONS = {
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": {ACTION_READ, ACTION_WRITE, ACTION_WRAP, ACTION_UNWRAP},  # Administrator
    "14b46e9e-c2b7-41b4-b07b-48a6ebf60603": {ACTION_READ, ACTION_WRITE, ACTION_WRAP, ACTION_UNWRAP},  # Crypto Officer
    "12338af0-0e69-4776-bea7-57ae8d297424": {ACTION_READ, ACTION_WRAP, ACTION_UNWRAP},  # Crypto User
    "e147488a-f6f5-4113-8e2d-b22465e65bf6": {ACTION_READ, ACTION_WRAP, ACTION_UNWRAP},  # Crypto Service Encryption User
}
# Access-policy key permissions (vaults without RBAC authorization) needed for each action.
ACCESS_POLICY_PERMISSIONS = {
    ACTION_READ: {"get", "list"},
    ACTION_WRITE: {"create", "rotate", "update", "setrotationpolicy"},
    ACTION_WRAP: {"wrapkey", "encrypt"},
    ACTION_UNWRAP: {"unwrapkey", "decrypt"},
}
DEFAULT_RATE_LIMITS = {
    "read_capacity": 12000,
    "read_refill_per_second": 200.0,
    "write_capacity": 1200,
    "write_refill_per_second": 20.0,
}


class ArmEmulator:
    """Azure Resource Manager stand-in: subscriptions, resource groups, deployments, resources, Key Vault.

    Suite options (all optional): `arm_subscriptions` (list of {id, tenant_id, display_name, access{app id: role},
    deployment_seconds}) replacing the default one-subscription-per-tenant set, `arm_rate_limits`
    (see DEFAULT_RATE_LIMITS), `arm_faults` and `keyvault_faults` (initial fault rules).
    """

    name = "arm"

    def __init__(self, config: EmulatorSuiteConfig, entra: EntraEmulator) -> None:
        self.entra = entra
        self.base_url = ""
        options = config.options
        self.faults = FaultInjector(
            seed=config.seed, rules=[FaultRule.model_validate(rule) for rule in options.get("arm_faults", [])]
        )
        self.store = ArmStore()
        self.providers = ResourceProviders(self.store)
        self.key_vaults = KeyVaultService(
            verify_token=lambda token: entra.verify_access_token(token, audience=KEY_VAULT_AUDIENCE),
            authority_url=self.authority_url,
            authorizer=self.authorize_key_operation,
            key_created=self.register_key_resource,
            faults=FaultInjector(
                seed=config.seed, rules=[FaultRule.model_validate(rule) for rule in options.get("keyvault_faults", [])]
            ),
            host=config.host,
        )
        register_network_handlers(self.providers)
        register_compute_handlers(self.providers)
        register_keyvault_handlers(self.providers, self.key_vaults)
        register_container_apps_handlers(self.providers)
        register_data_store_handlers(self.providers)
        register_monitor_handlers(self.providers)
        self.deployments = DeploymentEngine(self.store, self.providers, config.arm_deployment_seconds)
        limits = {**DEFAULT_RATE_LIMITS, **options.get("arm_rate_limits", {})}
        self.rate_limiter = SubscriptionRateLimiter(
            int(limits["read_capacity"]),
            float(limits["read_refill_per_second"]),
            int(limits["write_capacity"]),
            float(limits["write_refill_per_second"]),
        )
        for entry in options.get("arm_subscriptions") or self._default_subscriptions(config.seed):
            self.add_subscription(
                entry.get("id") or str(uuid.uuid4()),
                entry["tenant_id"],
                entry.get("display_name", "Emulated subscription"),
                dict(entry.get("access", {})),
                entry.get("deployment_seconds"),
            )

    def _default_subscriptions(self, seed: int) -> list[dict[str, Any]]:
        """One subscription per tenant; the control-plane app is Contributor where the tenant consented to it."""
        app_id = self.entra.control_plane_app.app_id
        return [
            {
                "id": str(uuid.uuid5(SUBSCRIPTION_NAMESPACE, f"{tenant.id}/{seed}")),
                "tenant_id": tenant.id,
                "display_name": f"{tenant.display_name} subscription",
                "access": {app_id: "Contributor"}
                if self.entra.directory.has_service_principal(tenant.id, app_id)
                else {},
            }
            for tenant in self.entra.directory.tenants.values()
        ]

    def add_subscription(
        self,
        subscription_id: str,
        tenant_id: str,
        display_name: str,
        access: dict[str, str],
        deployment_seconds: float | None,
    ) -> Subscription:
        """Create or replace a subscription."""
        subscription = Subscription(
            id=subscription_id,
            tenant_id=tenant_id,
            display_name=display_name,
            access={app.lower(): role for app, role in access.items()},
            deployment_seconds=deployment_seconds,
        )
        with self.store.lock:
            self.store.subscriptions[subscription_id.lower()] = subscription
        return subscription

    # Tokens and Key Vault authorisation ---------------------------------------------------------------------------
    def authority_url(self) -> str:
        """The Entra authority (stands in for https://login.microsoftonline.com)."""
        return self.entra.authority_url

    def verify_token(self, token: str, audiences: set[str]) -> dict[str, Any]:
        """Verify an Entra access token for one of the audiences; raises the Entra InvalidTokenError."""
        return self.entra.verify_access_token(token, audience=audiences)

    def authorize_key_operation(
        self, vault: VaultState, key_name: str | None, claims: dict[str, Any], action: str
    ) -> bool:
        """The app that deployed the vault may do everything; others need a Key Vault role (or access policy)."""
        app_id = str(claims.get("appid") or claims.get("azp") or "").lower()
        if vault.creator_app and app_id == vault.creator_app.lower():
            return True
        object_id = str(claims.get("oid", "")).lower()
        with self.store.lock:
            stored_vault = self.store.resource(vault.resource_id)
            if stored_vault is None:
                return False
            properties = stored_vault.body["properties"]
            if not properties.get("enableRbacAuthorization"):
                for policy in properties.get("accessPolicies", []):
                    if str(policy.get("objectId", "")).lower() == object_id:
                        granted = {item.lower() for item in (policy.get("permissions") or {}).get("keys", [])}
                        if "all" in granted or granted & ACCESS_POLICY_PERMISSIONS[action]:
                            return True
                return False
            target = (f"{vault.resource_id}/keys/{key_name}" if key_name else vault.resource_id).lower()
            for resource in self.store.resources_of_type("microsoft.authorization/roleassignments"):
                assignment = resource.body["properties"]
                scope = str(assignment["scope"]).lower().rstrip("/")
                if str(assignment["principalId"]).lower() != object_id:
                    continue
                if not (target == scope or target.startswith(scope + "/")):
                    continue
                role_id = str(assignment["roleDefinitionId"]).rsplit("/", 1)[-1].lower()
                if action in KEY_VAULT_ROLE_ACTIONS.get(role_id, set()):
                    return True
        return False

    def register_key_resource(self, vault: VaultState, key: VaultKey) -> None:
        """Make a key created in the data plane readable as Microsoft.KeyVault/vaults/keys (and a role scope)."""
        key_id = f"{vault.resource_id}/keys/{key.name}"
        latest = key.latest
        with self.store.lock:
            if self.store.resource(key_id) is not None:
                return
            body = {
                "id": key_id,
                "name": key.name,
                "type": "Microsoft.KeyVault/vaults/keys",
                "properties": {
                    "kty": latest.key_type,
                    "keySize": latest.key_size,
                    "keyOps": latest.operations,
                },
            }
            self.store.put_resource(StoredResource(id=key_id, body=body, created_by_app=vault.creator_app))

    # Component protocol ---------------------------------------------------------------------------------------------
    def use_certificate_authority(self, tls: EmulatorCertificateAuthority) -> None:
        """The suite's CA, for the per-vault data-plane servers opened later."""
        self.key_vaults.tls = tls

    def asgi_app(self) -> Any:
        """The ARM HTTP app."""
        return build_arm_app(self)

    def on_started(self, base_url: str) -> None:
        """Learn the https base URL (stands in for https://management.azure.com)."""
        self.base_url = base_url

    def stop(self) -> None:
        """Close the vault servers."""
        self.key_vaults.stop()

    def describe(self) -> dict[str, Any]:
        """Facts for emulators.json: URLs, token scopes, subscriptions and who may use them."""
        with self.store.lock:
            subscriptions = [
                {
                    "id": item.id,
                    "tenant_id": item.tenant_id,
                    "display_name": item.display_name,
                    "access": dict(item.access),
                }
                for item in self.store.subscriptions.values()
            ]
        return {
            "base_url": self.base_url,
            "control_url": f"{self.base_url}/_emulator",
            "credential_scopes": [ARM_SCOPE],
            "audience": "https://management.azure.com",
            "key_vault_audience": KEY_VAULT_AUDIENCE,
            "key_vault_client_options": {"verify_challenge_resource": False},
            "deployment_seconds_default": self.deployments.default_seconds,
            "subscriptions": subscriptions,
        }

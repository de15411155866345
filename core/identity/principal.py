"""The verified caller that services authorize against, and how Entra claims become one.

Tenancy says whose data (`tid`); the access level says what the caller may do with it:

- publisher operators hold the operator app role (settings.operator_app_role) in the publisher tenant;
- customer admins hold our app role `Customer.Admin`, which their tenant's admin assigns to them (or to a
  group) on our enterprise application; `Customer.Reader` makes a reader;
- a user with neither role falls back on directory roles: the `wids` of Global Administrator and
  Application Administrator (the people who consented to our app) count as admin, anyone else reads;
- an app-only token (client credentials) acts with the app roles assigned to that client app, and is only
  accepted from client apps the tenant's allow-list names (settings.app_only_clients).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core.errors import Forbidden, Unauthenticated


class CustomerRole(StrEnum):
    """App roles of our multi-tenant app that a customer's admin assigns to people and client apps."""

    ADMIN = "Customer.Admin"
    READER = "Customer.Reader"


class AccessLevel(StrEnum):
    """What a principal may do: readers see, admins act (in their tenant), operators operate (everywhere)."""

    READER = "reader"
    ADMIN = "admin"
    OPERATOR = "operator"


# Template ids of Microsoft Entra built-in directory roles (the `wids` claim), from Microsoft's published list.
GLOBAL_ADMINISTRATOR_ROLE_ID = "62e90394-69f5-4237-9190-012177145e10"
APPLICATION_ADMINISTRATOR_ROLE_ID = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"
ADMIN_DIRECTORY_ROLE_IDS = frozenset({GLOBAL_ADMINISTRATOR_ROLE_ID, APPLICATION_ADMINISTRATOR_ROLE_ID})


@dataclass(frozen=True)
class Principal:
    """A signed-in person or app. `entra_tenant_id` scopes every customer-facing query."""

    entra_tenant_id: str
    object_id: str
    display_name: str = ""
    roles: frozenset[str] = field(default_factory=frozenset)
    is_operator: bool = False
    access: AccessLevel = AccessLevel.READER
    is_app: bool = False

    @property
    def actor(self) -> str:
        """How the audit trail names this caller."""
        return f"app:{self.object_id}" if self.is_app else f"user:{self.object_id}"

    @property
    def can_act(self) -> bool:
        """True for customer admins and operators: the people who may change things."""
        return self.access in (AccessLevel.ADMIN, AccessLevel.OPERATOR)

    def require_admin(self) -> None:
        """Forbidden (403) for readers: they see, they do not act."""
        if not self.can_act:
            raise Forbidden(
                "this action needs the Customer.Admin role of your organisation; ask your Entra administrator to "
                "assign it to you on the VAST control plane enterprise application"
            )

    @classmethod
    def from_claims(
        cls,
        claims: dict[str, Any],
        *,
        operator_role: str,
        publisher_tenant_id: str,
        app_only_clients: dict[str, list[str]] | None = None,
    ) -> Principal:
        """Build from verified claims; an app-only token from a client app not on the tenant's allow-list is refused."""
        roles = frozenset(str(role) for role in claims.get("roles", []) or [] if isinstance(role, str))
        tenant_id = str(claims["tid"])
        app_only = is_app_only(claims)
        if app_only:
            client = str(claims.get("azp") or claims.get("appid") or "").lower()
            if client not in allowed_clients(app_only_clients or {}, tenant_id):
                raise Unauthenticated("app-only tokens are accepted only from client apps on the tenant's allow-list")
        wids = claims.get("wids", []) or []
        access = access_level(
            roles,
            frozenset(str(item) for item in wids if isinstance(item, str)),
            is_operator=not app_only and operator_role in roles and tenant_id == publisher_tenant_id,
            is_app=app_only,
        )
        return cls(
            entra_tenant_id=tenant_id,
            object_id=str(claims.get("oid") or claims.get("sub") or ""),
            display_name=str(claims.get("name") or claims.get("preferred_username") or ""),
            roles=roles,
            is_operator=access == AccessLevel.OPERATOR,
            access=access,
            is_app=app_only,
        )


def is_app_only(claims: dict[str, Any]) -> bool:
    """An app acting as itself: `idtyp` says so when present; otherwise a delegated (user) token always has `scp`."""
    if "idtyp" in claims:
        return bool(claims["idtyp"] == "app")
    return "scp" not in claims


def allowed_clients(app_only_clients: dict[str, list[str]], tenant_id: str) -> Collection[str]:
    """The client app ids whose app-only tokens this tenant's allow-list accepts (tenant ids compare lower-case)."""
    for tenant, clients in app_only_clients.items():
        if tenant.lower() == tenant_id.lower():
            return {client.lower() for client in clients}
    return ()


def access_level(
    roles: Collection[str], directory_roles: Collection[str], *, is_operator: bool, is_app: bool = False
) -> AccessLevel:
    """Operator first; then an explicit customer role; then (people only) the directory-role fallback."""
    if is_operator:
        return AccessLevel.OPERATOR
    if CustomerRole.ADMIN.value in roles:
        return AccessLevel.ADMIN
    if CustomerRole.READER.value in roles or is_app:
        return AccessLevel.READER
    if ADMIN_DIRECTORY_ROLE_IDS & set(directory_roles):
        return AccessLevel.ADMIN
    return AccessLevel.READER

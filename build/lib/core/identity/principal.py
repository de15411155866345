"""The verified caller that services authorize against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Principal:
    """A signed-in person or app. `entra_tenant_id` scopes every customer-facing query."""

    entra_tenant_id: str
    object_id: str
    display_name: str = ""
    roles: frozenset[str] = field(default_factory=frozenset)
    is_operator: bool = False

    @property
    def actor(self) -> str:
        """How the audit trail names this caller."""
        return f"user:{self.object_id}"

    @classmethod
    def from_claims(cls, claims: dict[str, Any], *, operator_role: str, publisher_tenant_id: str) -> Principal:
        """Build from verified claims; operators hold the operator app role in the publisher tenant."""
        roles = frozenset(str(role) for role in claims.get("roles", []) if isinstance(role, str))
        tenant_id = str(claims["tid"])
        return cls(
            entra_tenant_id=tenant_id,
            object_id=str(claims.get("oid") or claims.get("sub") or ""),
            display_name=str(claims.get("name") or claims.get("preferred_username") or ""),
            roles=roles,
            is_operator=operator_role in roles and tenant_id == publisher_tenant_id,
        )

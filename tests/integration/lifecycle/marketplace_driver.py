"""Drive the emulators and the control plane the way Marketplace, Entra ID and a customer's browser do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from emulators.suite import EmulatorSuite
from harness.marketplace_demo import (
    CONTOSO_ADMIN,
    CONTOSO_TENANT_ID,
    CustomerBrowser,
    deployment_choices,
)
from tests.support.waiting import wait_for

FABRIKAM_ADMIN = "frank.admin@fabrikam.onmicrosoft.com"
# A client app of Contoso's on the control plane's app-only allow-list (the lifecycle control plane's settings).
CONTOSO_AUTOMATION_CLIENT_ID = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
OPERATOR_OBJECT_ID = "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"


@dataclass
class Emulators:
    """Control APIs of the Entra ID and Marketplace emulators."""

    suite: EmulatorSuite
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        state = self.suite.state()
        self.ca_bundle = state["ca_bundle"]
        self.entra = state["entra"]
        self.marketplace = state.get("marketplace", {})  # a suite of Entra alone has none
        self.http = httpx.Client(verify=self.ca_bundle, timeout=10)

    def close(self) -> None:
        self.http.close()

    def deployment_choices(self) -> dict[str, str]:
        """Landing-page choices that target Contoso's subscription in the ARM emulator."""
        return deployment_choices(self.suite.state())

    def marketplace_control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.marketplace['control_url']}{path}", **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def purchase(self, plan_id: str = "standard", quantity: int | None = 2, tenant_id: str = CONTOSO_TENANT_ID) -> Any:
        """A customer buys the offer: a PendingFulfillmentStart subscription and a landing token."""
        return self.marketplace_control(
            "POST",
            "/purchases",
            json={
                "plan_id": plan_id,
                "quantity": quantity,
                "beneficiary": {"tenant_id": tenant_id, "email": CONTOSO_ADMIN, "object_id": str(uuid.uuid4())},
            },
        )

    def purchase_for_another_tenant(self, beneficiary_tenant_id: str, beneficiary_email: str) -> Any:
        """Contoso's admin buys the offer for another tenant: the purchaser is not the beneficiary."""
        return self.marketplace_control(
            "POST",
            "/purchases",
            json={
                "plan_id": "standard",
                "quantity": 2,
                "beneficiary": {
                    "tenant_id": beneficiary_tenant_id,
                    "email": beneficiary_email,
                    "object_id": str(uuid.uuid4()),
                },
                "purchaser": {"tenant_id": CONTOSO_TENANT_ID, "email": CONTOSO_ADMIN, "object_id": str(uuid.uuid4())},
            },
        )

    def customer_action(self, subscription_id: str, action: str, body: dict[str, Any] | None = None) -> Any:
        return self.marketplace_control("POST", f"/subscriptions/{subscription_id}/{action}", json=body)

    def marketplace_subscription(self, subscription_id: str) -> dict[str, Any]:
        state = self.marketplace_control("GET", "/state")
        return next(item for item in state["subscriptions"] if item["id"] == subscription_id)

    def marketplace_operation(self, operation_id: str) -> dict[str, Any] | None:
        state = self.marketplace_control("GET", "/state")
        return next((item for item in state["operations"] if item["id"] == operation_id), None)

    def set_webhook(self, url: str | None) -> None:
        self.marketplace_control("PUT", "/webhook", json={"url": url})

    def wait_until_not_delivered(self, operation_ids: set[str]) -> None:
        """Wait until the emulator's webhook sender has dealt with these operations (skipped: no URL was set)."""

        def settled() -> bool:
            deliveries = self.marketplace_control("GET", "/webhook-deliveries")
            outcomes = {
                item["operation_id"]: item["outcome"] for item in deliveries if item["operation_id"] in operation_ids
            }
            if any(outcome == "delivered" for outcome in outcomes.values()):
                raise AssertionError(f"a webhook meant to be lost was delivered: {outcomes}")
            return len(outcomes) == len(operation_ids) and "pending" not in outcomes.values()

        wait_for(settled, what="the emulator to skip the webhooks")

    def add_marketplace_fault(self, rule: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.marketplace_control("POST", "/faults", json=rule)
        return result

    def marketplace_faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.marketplace_control("GET", "/faults")
        return result

    def clear_marketplace_faults(self) -> None:
        self.marketplace_control("DELETE", "/faults")

    def mint_token(self, **request: Any) -> str:
        response = self.http.post(f"{self.entra['control_url']}/tokens", json=request)
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def webhook_token(self) -> str:
        response = self.http.post(f"{self.entra['control_url']}/tokens/marketplace-webhook")
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def control_plane_token(
        self, *, roles: list[str], tenant_id: str | None = None, wids: list[str] | None = None
    ) -> str:
        """A user (delegated) token for the control-plane app (operator when roles hold Operator in the publisher
        tenant; customer admin with Customer.Admin, reader with Customer.Reader or no role)."""
        app_id = self.entra["control_plane_app_id"]
        claims: dict[str, Any] = {
            "roles": roles,
            "oid": OPERATOR_OBJECT_ID,
            "name": "Test user",
            "idtyp": "user",
            "scp": "user_impersonation",
        }
        if wids:
            claims["wids"] = wids
        return self.mint_token(
            tenant_id=tenant_id or self.entra["publisher_tenant_id"],
            audience=app_id,
            client_id=app_id,
            extra_claims=claims,
        )

    def app_only_token(self, *, tenant_id: str, client_id: str, roles: list[str]) -> str:
        """An app-only (client credentials) token of a customer's client app for the control-plane app."""
        return self.mint_token(
            tenant_id=tenant_id,
            audience=self.entra["control_plane_app_id"],
            client_id=client_id,
            extra_claims={"roles": roles} if roles else None,
        )

    def assign_app_roles(self, object_id: str, roles: list[str]) -> None:
        """What a tenant's admin does in Entra: replace the user's app roles on the control-plane app."""
        app_id = self.entra["control_plane_app_id"]
        response = self.http.put(
            f"{self.entra['control_url']}/users/{object_id}/app-roles/{app_id}", json={"roles": roles}
        )
        response.raise_for_status()


class Browser(CustomerBrowser):
    """A customer's browser whose default choices target the emulated Contoso subscription."""

    def __init__(self, emulators: Emulators) -> None:
        super().__init__(emulators.ca_bundle)
        self.emulators = emulators

    def confirm(self, landing_page: httpx.Response, choices: dict[str, str] | None = None) -> httpx.Response:
        """Submit the deployment form (Contoso's ARM subscription unless told otherwise)."""
        return super().confirm(landing_page, choices or self.emulators.deployment_choices())

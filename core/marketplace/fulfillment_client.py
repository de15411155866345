"""Typed client of the Marketplace SaaS fulfilment API v2, on the shared MarketplaceHttp conventions.

Models are parsed leniently: unknown fields are kept (extra="allow") and enum-like fields are plain
strings, because Marketplace adds fields and values (term units, statuses) without a new api-version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from core.azure.credentials import CredentialFactory
from core.marketplace.http import MarketplaceHttp
from core.settings import Settings

# Operation statuses after which Marketplace accepts no PATCH.
TERMINAL_OPERATION_STATUSES = frozenset({"Succeeded", "Failed", "Conflict"})


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class MarketplaceParty(_Lenient):
    """A beneficiary or purchaser."""

    email_id: str | None = Field(default=None, alias="emailId")
    object_id: str | None = Field(default=None, alias="objectId")
    tenant_id: str | None = Field(default=None, alias="tenantId")
    puid: str | None = None


class SubscriptionTerm(_Lenient):
    """The billing term of a subscription."""

    term_unit: str | None = Field(default=None, alias="termUnit")
    start_date: datetime | None = Field(default=None, alias="startDate")
    end_date: datetime | None = Field(default=None, alias="endDate")


class FulfillmentSubscription(_Lenient):
    """A SaaS subscription as Get/List Subscription return it."""

    id: str
    name: str = ""
    publisher_id: str | None = Field(default=None, alias="publisherId")
    offer_id: str = Field(alias="offerId")
    plan_id: str = Field(alias="planId")
    quantity: int | None = None
    status: str = Field(alias="saasSubscriptionStatus")
    beneficiary: MarketplaceParty = Field(default_factory=MarketplaceParty)
    purchaser: MarketplaceParty = Field(default_factory=MarketplaceParty)
    term: SubscriptionTerm = Field(default_factory=SubscriptionTerm)
    auto_renew: bool | None = Field(default=None, alias="autoRenew")
    is_test: bool = Field(default=False, alias="isTest")
    is_free_trial: bool = Field(default=False, alias="isFreeTrial")


class ResolvedPurchase(_Lenient):
    """What Resolve answers for a landing-page token."""

    id: str
    subscription_name: str = Field(default="", alias="subscriptionName")
    offer_id: str = Field(alias="offerId")
    plan_id: str = Field(alias="planId")
    quantity: int | None = None
    subscription: FulfillmentSubscription


class FulfillmentOperation(_Lenient):
    """An operation of the operations API (also the body of a webhook, minus its extra fields)."""

    id: str
    activity_id: str | None = Field(default=None, alias="activityId")
    subscription_id: str = Field(alias="subscriptionId")
    offer_id: str | None = Field(default=None, alias="offerId")
    publisher_id: str | None = Field(default=None, alias="publisherId")
    plan_id: str | None = Field(default=None, alias="planId")
    quantity: int | None = None
    action: str
    time_stamp: datetime | None = Field(default=None, alias="timeStamp")
    status: str
    error_status_code: str | None = Field(default=None, alias="errorStatusCode")
    error_message: str | None = Field(default=None, alias="errorMessage")
    request_source: str | None = Field(default=None, alias="operationRequestSource")


class AvailablePlan(_Lenient):
    """One plan the subscription may move to."""

    plan_id: str = Field(alias="planId")
    display_name: str | None = Field(default=None, alias="displayName")
    is_private: bool | None = Field(default=None, alias="isPrivate")


class AcceptedChange(BaseModel):
    """A publisher-initiated change accepted by Marketplace (202): poll the operation."""

    operation_id: str | None
    operation_location: str | None


class FulfillmentClient:
    """Every fulfilment API call the control plane makes; nothing else calls /api/saas."""

    def __init__(self, http: MarketplaceHttp) -> None:
        self.http = http

    @classmethod
    def from_settings(cls, settings: Settings, credentials: CredentialFactory | None = None) -> FulfillmentClient:
        """The client for the configured fulfilment base URL, with the publisher credential."""
        factory = credentials or CredentialFactory(settings)
        return cls(
            MarketplaceHttp(
                settings.marketplace_fulfillment_base_url,
                api_version=settings.marketplace_api_version,
                credential=factory.publisher,
                token_scope=f"{settings.marketplace_resource_app_id}/.default",
                verify=settings.tls_verify,
                timeout_seconds=settings.http_timeout_seconds,
                max_attempts=settings.marketplace_max_attempts,
                backoff_initial_seconds=settings.marketplace_backoff_initial_seconds,
            )
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.http.close()

    def resolve(self, marketplace_token: str, *, budget_seconds: float | None = None) -> ResolvedPurchase:
        """The purchase behind a landing-page token (already URL-decoded); `budget_seconds` bounds the whole call."""
        response = self.http.request(
            "POST",
            "/subscriptions/resolve",
            headers={"x-ms-marketplace-token": marketplace_token},
            budget_seconds=budget_seconds,
        )
        return ResolvedPurchase.model_validate(response.body)

    def get_subscription(self, subscription_id: str) -> FulfillmentSubscription:
        """One subscription."""
        response = self.http.request("GET", f"/subscriptions/{_segment(subscription_id)}")
        return FulfillmentSubscription.model_validate(response.body)

    def list_subscriptions(self) -> list[FulfillmentSubscription]:
        """Every subscription of the publisher, following @nextLink pages."""
        subscriptions: list[FulfillmentSubscription] = []
        next_link: str | None = "/subscriptions"
        while next_link:
            response = self.http.request("GET", next_link)
            body: dict[str, Any] = response.body or {}
            subscriptions.extend(FulfillmentSubscription.model_validate(item) for item in body.get("subscriptions", []))
            next_link = body.get("@nextLink") or None
        return subscriptions

    def list_available_plans(self, subscription_id: str, plan_id: str | None = None) -> list[AvailablePlan]:
        """Plans the subscription may move to (optionally just one)."""
        params = {"planId": plan_id} if plan_id else None
        response = self.http.request(
            "GET", f"/subscriptions/{_segment(subscription_id)}/listAvailablePlans", params=params
        )
        return [AvailablePlan.model_validate(plan) for plan in (response.body or {}).get("plans", [])]

    def activate(self, subscription_id: str, plan_id: str, quantity: int | None = None) -> None:
        """Start billing: PendingFulfillmentStart -> Subscribed (idempotent on Marketplace's side)."""
        body: dict[str, Any] = {"planId": plan_id}
        if quantity is not None:
            body["quantity"] = quantity
        self.http.request("POST", f"/subscriptions/{_segment(subscription_id)}/activate", json=body)

    def change_plan(self, subscription_id: str, plan_id: str) -> AcceptedChange:
        """Publisher-initiated plan change (202 + operation)."""
        return self._change(subscription_id, {"planId": plan_id})

    def change_quantity(self, subscription_id: str, quantity: int) -> AcceptedChange:
        """Publisher-initiated quantity change (202 + operation)."""
        return self._change(subscription_id, {"quantity": quantity})

    def delete_subscription(self, subscription_id: str) -> AcceptedChange:
        """Publisher-initiated unsubscribe (202 + operation)."""
        response = self.http.request("DELETE", f"/subscriptions/{_segment(subscription_id)}", expected=(200, 202))
        return _accepted(response.headers)

    def list_pending_operations(self, subscription_id: str) -> list[FulfillmentOperation]:
        """Operations of the subscription that still wait (NotStarted or InProgress)."""
        response = self.http.request("GET", f"/subscriptions/{_segment(subscription_id)}/operations")
        return [FulfillmentOperation.model_validate(item) for item in (response.body or {}).get("operations", [])]

    def get_operation(self, subscription_id: str, operation_id: str) -> FulfillmentOperation:
        """One operation, as Marketplace holds it."""
        response = self.http.request(
            "GET", f"/subscriptions/{_segment(subscription_id)}/operations/{_segment(operation_id)}"
        )
        return FulfillmentOperation.model_validate(response.body)

    def patch_operation(self, subscription_id: str, operation_id: str, status: str) -> None:
        """Report "Success" or "Failure" of an InProgress operation; 409 (MarketplaceError) once it is completed."""
        if status not in ("Success", "Failure"):
            raise ValueError("status must be 'Success' or 'Failure'")
        self.http.request(
            "PATCH",
            f"/subscriptions/{_segment(subscription_id)}/operations/{_segment(operation_id)}",
            json={"status": status},
        )

    def _change(self, subscription_id: str, body: dict[str, Any]) -> AcceptedChange:
        response = self.http.request(
            "PATCH", f"/subscriptions/{_segment(subscription_id)}", json=body, expected=(200, 202)
        )
        return _accepted(response.headers)


def _segment(value: str) -> str:
    # Ids come from Marketplace or a webhook body; never let one change the path.
    return quote(value, safe="")


def _accepted(headers: Any) -> AcceptedChange:
    return AcceptedChange(
        operation_id=headers.get("operation-id"), operation_location=headers.get("operation-location")
    )

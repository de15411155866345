"""Typed client of the Marketplace SaaS fulfilment API v2, on the shared MarketplaceHttp conventions.

Every answer is parsed into these models; one that does not fit raises MarketplaceContractError (a typed,
recorded failure), never an AttributeError deep in a caller. Models are parsed leniently where the service
and other implementations of it are known to vary: unknown fields are kept (extra="allow"), enum-like fields
are plain strings (Marketplace adds term units and statuses without a new api-version), the operation source
is read under both spellings seen, and List Operations may answer a bare array instead of `{"operations"}`.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.azure.credentials import CredentialFactory
from core.marketplace.http import MarketplaceContractError, MarketplaceHttp
from core.settings import Settings

# Pages of List Subscriptions followed at most (100 subscriptions a page: far beyond any publisher).
MAX_SUBSCRIPTION_PAGES = 1000
# The source field: `operationRequestSource` in Microsoft's documentation, `operationRequestedSource` from
# another implementation of the fulfilment API (and in some of Microsoft's own examples).
REQUEST_SOURCE_ALIASES = AliasChoices("operationRequestSource", "operationRequestedSource")

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
    """The billing term of a subscription.

    Another implementation answers an end date equal to the start date. A term that ends where it starts tells
    nothing about its end, so the end is derived from the start and the term unit the way Microsoft's examples
    show it (P1M from 2022-03-07 ends 2022-04-06), or left unknown when the unit is not a whole number of months
    or years.
    """

    term_unit: str | None = Field(default=None, alias="termUnit")
    start_date: datetime | None = Field(default=None, alias="startDate")
    end_date: datetime | None = Field(default=None, alias="endDate")

    @model_validator(mode="after")
    def _derive_an_empty_term_end(self) -> SubscriptionTerm:
        if self.start_date is not None and self.end_date is not None and self.end_date <= self.start_date:
            months = _term_months(self.term_unit)
            self.end_date = None if months is None else _add_months(self.start_date, months) - timedelta(days=1)
        return self


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
    request_source: str | None = Field(default=None, validation_alias=REQUEST_SOURCE_ALIASES)


class AvailablePlan(_Lenient):
    """One plan the subscription may move to."""

    plan_id: str = Field(alias="planId")
    display_name: str | None = Field(default=None, alias="displayName")
    is_private: bool | None = Field(default=None, alias="isPrivate")


class SubscriptionsPage(_Lenient):
    """One page of List Subscriptions."""

    subscriptions: list[FulfillmentSubscription]
    next_link: str | None = Field(default=None, alias="@nextLink")


class OperationsList(_Lenient):
    """List Outstanding Operations as the documentation shows it."""

    operations: list[FulfillmentOperation]


class AvailablePlans(_Lenient):
    """List Available Plans."""

    plans: list[AvailablePlan]


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
        return _parse(ResolvedPurchase, response.body, "Resolve")

    def get_subscription(self, subscription_id: str) -> FulfillmentSubscription:
        """One subscription."""
        response = self.http.request("GET", f"/subscriptions/{_segment(subscription_id)}")
        return _parse(FulfillmentSubscription, response.body, "Get Subscription")

    def list_subscriptions(self, *, max_pages: int = MAX_SUBSCRIPTION_PAGES) -> list[FulfillmentSubscription]:
        """Every subscription of the publisher, following each `@nextLink` as given.

        Bounded by `max_pages`, and a link seen before (a server looping) is a contract error, not a hang.
        """
        subscriptions: list[FulfillmentSubscription] = []
        next_link: str | None = "/subscriptions"
        seen: set[str] = set()
        while next_link:
            url = str(self.http.url(next_link))
            if url in seen:
                raise MarketplaceContractError(
                    "List Subscriptions gave a @nextLink it gave before; paging stopped", details={"pages": len(seen)}
                )
            if len(seen) >= max_pages:
                raise MarketplaceContractError(
                    f"List Subscriptions has more than {max_pages} pages; paging stopped", details={"pages": len(seen)}
                )
            seen.add(url)
            page = _parse(SubscriptionsPage, self.http.request("GET", url).body, "List Subscriptions")
            subscriptions.extend(page.subscriptions)
            next_link = page.next_link or None
        return subscriptions

    def list_available_plans(self, subscription_id: str, plan_id: str | None = None) -> list[AvailablePlan]:
        """Plans the subscription may move to (optionally just one)."""
        params = {"planId": plan_id} if plan_id else None
        response = self.http.request(
            "GET", f"/subscriptions/{_segment(subscription_id)}/listAvailablePlans", params=params
        )
        return _parse(AvailablePlans, response.body, "List Available Plans").plans

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
        if isinstance(response.body, list):
            # Another implementation answers the bare array; the items are the same operations.
            return _parse(OperationsList, {"operations": response.body}, "List Operations").operations
        return _parse(OperationsList, response.body, "List Operations").operations

    def get_operation(self, subscription_id: str, operation_id: str) -> FulfillmentOperation:
        """One operation, as Marketplace holds it."""
        response = self.http.request(
            "GET", f"/subscriptions/{_segment(subscription_id)}/operations/{_segment(operation_id)}"
        )
        return _parse(FulfillmentOperation, response.body, "Get Operation")

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


Model = TypeVar("Model", bound=BaseModel)


def _parse(model: type[Model], body: Any, call: str) -> Model:
    """The answer as `model`, or a MarketplaceContractError naming the call and what did not fit."""
    try:
        return model.model_validate(body)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}"
            for problem in error.errors()[:5]
        )
        raise MarketplaceContractError(
            f"Marketplace's {call} answer does not follow the fulfilment API contract ({problems})",
            details={"call": call, "problems": error.error_count()},
        ) from None


def _term_months(term_unit: str | None) -> int | None:
    """Whole months of an ISO 8601 term unit such as P1M or P1Y; None for anything else."""
    match = re.fullmatch(r"P(\d{1,3})([MY])", term_unit or "")
    if match is None:
        return None
    count = int(match.group(1))
    return count * 12 if match.group(2) == "Y" else count


def _add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def _segment(value: str) -> str:
    # Ids come from Marketplace or a webhook body; never let one change the path.
    return quote(value, safe="")


def _accepted(headers: Any) -> AcceptedChange:
    return AcceptedChange(
        operation_id=headers.get("operation-id"), operation_location=headers.get("operation-location")
    )

"""SaaS subscriptions and their operations: the fulfilment API v2 state machine.

PendingFulfillmentStart -> Subscribed <-> Suspended, and any state -> Unsubscribed (terminal).
Customer-side changes (from the Azure portal) create operations: ChangePlan, ChangeQuantity and
Reinstate start InProgress and wait for the publisher's PATCH; an operation nobody patches is
accepted after `operation_timeout_seconds` of the emulator clock. Suspend, Unsubscribe and Renew
take effect at once and arrive Succeeded. Publisher-initiated PATCH/DELETE operations complete
after `publisher_operation_seconds`. Time-based transitions are applied lazily on every access,
so moving the clock is enough to trigger them.
"""

from __future__ import annotations

import base64
import datetime
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from emulators.marketplace.catalog import Offer, OfferCatalog, Plan
from emulators.marketplace.clock import EmulatorClock, isoformat

LANDING_TOKEN_HOURS = 24
TERMINAL_OPERATION_STATUSES = {"Succeeded", "Failed", "Conflict"}


class FulfillmentError(Exception):
    """An error answer of the fulfilment API (HTTP status, error code, message)."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Party:
    """A beneficiary or purchaser of a subscription."""

    email_id: str
    object_id: str
    tenant_id: str
    puid: str

    def to_json(self) -> dict[str, str]:
        """The JSON object of the fulfilment API."""
        return {"emailId": self.email_id, "objectId": self.object_id, "tenantId": self.tenant_id, "puid": self.puid}


@dataclass
class Subscription:
    """A SaaS subscription as Marketplace holds it."""

    id: str
    name: str
    offer_id: str
    publisher_id: str
    plan_id: str
    quantity: int | None
    status: str
    beneficiary: Party
    purchaser: Party
    azure_subscription_id: str
    private_offer: bool
    is_test: bool
    term_unit: str
    term_start: datetime.datetime
    term_end: datetime.datetime
    created: datetime.datetime
    last_modified: datetime.datetime
    auto_renew: bool = True

    def to_json(self) -> dict[str, Any]:
        """The subscription JSON of Get/List Subscription and of webhook snapshots."""
        # Neither quantity nor term.chargeDuration is nullable in the published schema: a plan bought without a
        # quantity (not priced per user) has no quantity field, and the charge duration is the term's own length.
        body: dict[str, Any] = {
            "id": self.id,
            "publisherId": self.publisher_id,
            "offerId": self.offer_id,
            "name": self.name,
            "saasSubscriptionStatus": self.status,
            "beneficiary": self.beneficiary.to_json(),
            "purchaser": self.purchaser.to_json(),
            "planId": self.plan_id,
            "term": {
                "termUnit": self.term_unit,
                "startDate": isoformat(self.term_start),
                "endDate": isoformat(self.term_end),
                "chargeDuration": self.term_unit,
            },
            "autoRenew": self.auto_renew,
            "isTest": self.is_test,
            "isFreeTrial": False,
            "allowedCustomerOperations": ["Delete", "Update", "Read"],
            "sandboxType": "None",
            "sessionMode": "None",
            "created": isoformat(self.created),
            "lastModified": isoformat(self.last_modified),
        }
        if self.quantity is not None:
            body["quantity"] = self.quantity
        return body


@dataclass
class Operation:
    """An operation on a subscription, from the customer's side ("Azure") or the publisher's ("Partner")."""

    id: str
    activity_id: str
    subscription_id: str
    offer_id: str
    publisher_id: str
    plan_id: str
    quantity: int | None
    action: str
    status: str
    source: str
    created: datetime.datetime
    error_status_code: str = ""
    error_message: str = ""
    subscription_before: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The operation JSON of the operations API."""
        body: dict[str, Any] = {
            "id": self.id,
            "activityId": self.activity_id,
            "subscriptionId": self.subscription_id,
            "offerId": self.offer_id,
            "publisherId": self.publisher_id,
            "planId": self.plan_id,
            "action": self.action,
            "timeStamp": isoformat(self.created),
            "status": self.status,
            "errorStatusCode": self.error_status_code,
            "errorMessage": self.error_message,
            "operationRequestSource": self.source,
        }
        if self.quantity is not None:  # an integer in the published schema, never null
            body["quantity"] = self.quantity
        return body


OperationListener = Callable[[Operation, str | None], None]


def _new_landing_token() -> str:
    # Landing tokens are opaque base64 with '+', '/' and '=' in them, so apps must URL-encode and decode them.
    while True:
        token = base64.b64encode(secrets.token_bytes(64)).decode()
        if "+" in token and "/" in token:
            return token


class FulfillmentState:
    """All subscriptions, operations and landing tokens of the emulator, behind one lock."""

    def __init__(
        self,
        catalog: OfferCatalog,
        clock: EmulatorClock,
        operation_timeout_seconds: float,
        publisher_operation_seconds: float,
    ) -> None:
        self.catalog = catalog
        self.clock = clock
        self.operation_timeout_seconds = operation_timeout_seconds
        self.publisher_operation_seconds = publisher_operation_seconds
        self._lock = threading.RLock()
        self._subscriptions: dict[str, Subscription] = {}
        self._operations: dict[str, Operation] = {}
        self._landing_tokens: dict[str, tuple[str, datetime.datetime]] = {}
        self._listeners: list[OperationListener] = []

    def add_listener(self, listener: OperationListener) -> None:
        """Called with every customer-side operation and the subscription's landing token (webhook source)."""
        self._listeners.append(listener)

    # Purchases and landing tokens -------------------------------------------------------------

    def purchase(
        self,
        *,
        plan_id: str,
        beneficiary: Party,
        purchaser: Party,
        offer_id: str | None = None,
        quantity: int | None = None,
        private_offer: bool = False,
        azure_subscription_id: str | None = None,
        name: str | None = None,
        is_test: bool = False,
        term_unit: str = "P1M",
        purchased_seconds_ago: float = 0.0,
    ) -> tuple[Subscription, str]:
        """A customer buys a plan: a PendingFulfillmentStart subscription and its landing token."""
        offer = self.catalog.offers.get(offer_id) if offer_id else self.catalog.default_offer()
        if offer is None:
            raise FulfillmentError(404, "NotFound", f"offer {offer_id} does not exist")
        plan = self._plan(offer, plan_id, private_offer)
        if quantity is not None:
            self._check_quantity(plan, quantity)
        now = self.clock.now() - datetime.timedelta(seconds=purchased_seconds_ago)
        term_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        subscription = Subscription(
            id=str(uuid.uuid4()),
            name=name or f"{offer.display_name} {plan.display_name}",
            offer_id=offer.id,
            publisher_id=offer.publisher_id,
            plan_id=plan.id,
            quantity=quantity,
            status="PendingFulfillmentStart",
            beneficiary=beneficiary,
            purchaser=purchaser,
            azure_subscription_id=azure_subscription_id or str(uuid.uuid4()),
            private_offer=private_offer,
            is_test=is_test,
            term_unit=term_unit,
            term_start=term_start,
            term_end=term_start + datetime.timedelta(days=30),
            created=now,
            last_modified=now,
        )
        with self._lock:
            self._subscriptions[subscription.id] = subscription
            token = self._issue_landing_token(subscription.id)
        return subscription, token

    def issue_landing_token(self, subscription_id: str) -> str:
        """A fresh landing-page token, as when the customer opens "Manage account" later."""
        with self._lock:
            self._subscription(subscription_id)
            return self._issue_landing_token(subscription_id)

    def _issue_landing_token(self, subscription_id: str) -> str:
        token = _new_landing_token()
        self._landing_tokens[token] = (subscription_id, self.clock.now())
        return token

    def resolve(self, token: str | None) -> Subscription:
        """The subscription behind a landing token (any state); 400 for missing, unknown or expired tokens."""
        if not token:
            raise FulfillmentError(400, "BadRequest", "The x-ms-marketplace-token header is missing.")
        with self._lock:
            self._settle()
            entry = self._landing_tokens.get(token)
            if entry is None:
                raise FulfillmentError(400, "BadRequest", "The marketplace token is invalid.")
            subscription_id, issued_at = entry
            if self.clock.now() - issued_at > datetime.timedelta(hours=LANDING_TOKEN_HOURS):
                raise FulfillmentError(400, "BadRequest", "The marketplace token has expired.")
            return replace(self._subscriptions[subscription_id])

    # Reads ------------------------------------------------------------------------------------

    def get(self, subscription_id: str) -> Subscription:
        """A copy of one subscription (404 when unknown)."""
        with self._lock:
            self._settle()
            return replace(self._subscription(subscription_id))

    def all_subscriptions(self) -> list[Subscription]:
        """Every subscription, oldest first."""
        with self._lock:
            self._settle()
            return [replace(subscription) for subscription in self._subscriptions.values()]

    def available_plans(self, subscription_id: str, plan_id: str | None) -> list[dict[str, Any]]:
        """Plans the subscription may move to (private plans only for private-offer purchases)."""
        with self._lock:
            subscription = self._subscription(subscription_id)
            offer = self.catalog.offers[subscription.offer_id]
            plans = [
                plan.as_available_plan(offer.dimensions)
                for plan in offer.plans.values()
                if (subscription.private_offer or not plan.private or plan.id == subscription.plan_id)
                and (plan_id is None or plan.id == plan_id)
            ]
        return plans

    def pending_operations(self, subscription_id: str) -> list[Operation]:
        """Operations of a subscription still waiting (NotStarted or InProgress)."""
        with self._lock:
            self._settle()
            self._subscription(subscription_id)
            return [
                replace(operation)
                for operation in self._operations.values()
                if operation.subscription_id == subscription_id and operation.status not in TERMINAL_OPERATION_STATUSES
            ]

    def get_operation(self, subscription_id: str, operation_id: str) -> Operation:
        """One operation of a subscription (404 when unknown)."""
        with self._lock:
            self._settle()
            return replace(self._operation(subscription_id, operation_id))

    def snapshot(self) -> dict[str, Any]:
        """Every subscription and operation as JSON, for tests."""
        with self._lock:
            self._settle()
            return {
                "subscriptions": [
                    {
                        **subscription.to_json(),
                        "azureSubscriptionId": subscription.azure_subscription_id,
                        "privateOffer": subscription.private_offer,
                    }
                    for subscription in self._subscriptions.values()
                ],
                "operations": [operation.to_json() for operation in self._operations.values()],
            }

    def metering_target(self, subscription_id: str) -> Subscription | None:
        """The subscription a usage event names, or None when unknown."""
        with self._lock:
            self._settle()
            subscription = self._subscriptions.get(subscription_id)
            return replace(subscription) if subscription else None

    # Publisher calls --------------------------------------------------------------------------

    def activate(self, subscription_id: str, plan_id: str | None, quantity: int | None) -> None:
        """Activate: PendingFulfillmentStart -> Subscribed; idempotent once Subscribed."""
        with self._lock:
            self._settle()
            subscription = self._subscription(subscription_id)
            if subscription.status == "Unsubscribed":
                raise FulfillmentError(404, "NotFound", f"Subscription {subscription_id} is unsubscribed.")
            if subscription.status == "Suspended":
                raise FulfillmentError(400, "BadRequest", "A suspended subscription cannot be activated.")
            if plan_id is not None and plan_id != subscription.plan_id:
                raise FulfillmentError(
                    400,
                    "BadRequest",
                    f"planId {plan_id} does not match the subscription's plan {subscription.plan_id}.",
                )
            if quantity is not None and subscription.quantity is not None and quantity != subscription.quantity:
                raise FulfillmentError(400, "BadRequest", "quantity does not match the subscription's quantity.")
            if subscription.status == "PendingFulfillmentStart":
                subscription.status = "Subscribed"
                subscription.last_modified = self.clock.now()

    def publisher_change(self, subscription_id: str, plan_id: str | None, quantity: int | None) -> Operation:
        """PATCH of a subscription: exactly one of plan or quantity; 409 while another operation runs."""
        if (plan_id is None) == (quantity is None):
            raise FulfillmentError(400, "BadRequest", "Specify exactly one of planId or quantity.")
        with self._lock:
            self._settle()
            subscription = self._changeable(subscription_id)
            offer = self.catalog.offers[subscription.offer_id]
            if plan_id is not None:
                plan = self._plan(offer, plan_id, subscription.private_offer)
                if plan.id == subscription.plan_id:
                    raise FulfillmentError(400, "BadRequest", f"The subscription is already on plan {plan_id}.")
                action = "ChangePlan"
            else:
                assert quantity is not None
                self._check_quantity(offer.plans[subscription.plan_id], quantity)
                action = "ChangeQuantity"
            return replace(self._new_operation(subscription, action, "Partner", "InProgress", plan_id, quantity))

    def publisher_delete(self, subscription_id: str) -> Operation:
        """DELETE of a subscription: an Unsubscribe operation that completes shortly."""
        with self._lock:
            self._settle()
            subscription = self._subscription(subscription_id)
            if subscription.status == "Unsubscribed":
                raise FulfillmentError(404, "NotFound", f"Subscription {subscription_id} is unsubscribed.")
            self._refuse_if_busy(subscription_id)
            return replace(self._new_operation(subscription, "Unsubscribe", "Partner", "InProgress"))

    def patch_operation(
        self, subscription_id: str, operation_id: str, status: str, *, late_success_after_seconds: float | None = None
    ) -> Operation:
        """The publisher reports Success or Failure of an InProgress operation; 409 once it is completed.

        `late_success_after_seconds` (quirks mode): a Success reported later than that is refused with 409 and the
        operation is accepted, as an implementation that auto-accepts sooner than documented answers.
        """
        if status not in ("Success", "Failure"):
            raise FulfillmentError(400, "BadRequest", "status must be 'Success' or 'Failure'.")
        with self._lock:
            self._settle()
            operation = self._operation(subscription_id, operation_id)
            if (
                late_success_after_seconds is not None
                and status == "Success"
                and operation.status == "InProgress"
                and (self.clock.now() - operation.created).total_seconds() >= late_success_after_seconds
            ):
                self._complete(operation)
            if operation.status in TERMINAL_OPERATION_STATUSES:
                raise FulfillmentError(409, "Conflict", f"Operation {operation_id} is already {operation.status}.")
            if status == "Success":
                self._complete(operation)
            else:
                operation.status = "Failed"
            return replace(operation)

    # Customer side (Azure portal), driven by the control API -----------------------------------

    def customer_change_plan(self, subscription_id: str, plan_id: str) -> Operation:
        """The customer moves to another plan: ChangePlan InProgress, webhook to the publisher."""
        with self._lock:
            self._settle()
            subscription = self._changeable(subscription_id)
            offer = self.catalog.offers[subscription.offer_id]
            plan = self._plan(offer, plan_id, subscription.private_offer)
            if plan.id == subscription.plan_id:
                raise FulfillmentError(400, "BadRequest", f"The subscription is already on plan {plan_id}.")
            return self._customer_operation(subscription, "ChangePlan", "InProgress", plan_id=plan.id)

    def customer_change_quantity(self, subscription_id: str, quantity: int) -> Operation:
        """The customer changes the quantity: ChangeQuantity InProgress, webhook to the publisher."""
        with self._lock:
            self._settle()
            subscription = self._changeable(subscription_id)
            self._check_quantity(self.catalog.offers[subscription.offer_id].plans[subscription.plan_id], quantity)
            return self._customer_operation(subscription, "ChangeQuantity", "InProgress", quantity=quantity)

    def suspend(self, subscription_id: str) -> Operation:
        """Payment failed: Subscribed -> Suspended, Suspend arrives Succeeded."""
        with self._lock:
            self._settle()
            subscription = self._in_status(subscription_id, {"Subscribed"})
            return self._customer_operation(subscription, "Suspend", "Succeeded")

    def reinstate(self, subscription_id: str) -> Operation:
        """Payment fixed: Reinstate InProgress; the subscription is Subscribed once it succeeds."""
        with self._lock:
            self._settle()
            subscription = self._in_status(subscription_id, {"Suspended"})
            self._refuse_if_busy(subscription_id)
            return self._customer_operation(subscription, "Reinstate", "InProgress")

    def unsubscribe(self, subscription_id: str) -> Operation:
        """The customer cancels: Unsubscribed at once, Unsubscribe arrives Succeeded."""
        with self._lock:
            self._settle()
            subscription = self._in_status(subscription_id, {"PendingFulfillmentStart", "Subscribed", "Suspended"})
            return self._customer_operation(subscription, "Unsubscribe", "Succeeded")

    def renew(self, subscription_id: str) -> Operation:
        """The term renews: the term moves forward, Renew arrives Succeeded."""
        with self._lock:
            self._settle()
            subscription = self._in_status(subscription_id, {"Subscribed"})
            return self._customer_operation(subscription, "Renew", "Succeeded")

    def reject_operation(self, operation_id: str, status_code: int) -> None:
        """The publisher's webhook refused an InProgress operation (4xx): it fails, unless its time was up already."""
        with self._lock:
            self._settle()
            operation = self._operations.get(operation_id)
            if operation is not None and operation.status == "InProgress":
                operation.status = "Failed"
                operation.error_status_code = str(status_code)
                operation.error_message = "The publisher's webhook rejected the operation."

    # Internals (lock held) --------------------------------------------------------------------

    def _subscription(self, subscription_id: str) -> Subscription:
        subscription = self._subscriptions.get(subscription_id)
        if subscription is None:
            raise FulfillmentError(404, "NotFound", f"Subscription {subscription_id} not found.")
        return subscription

    def _operation(self, subscription_id: str, operation_id: str) -> Operation:
        self._subscription(subscription_id)
        operation = self._operations.get(operation_id)
        if operation is None or operation.subscription_id != subscription_id:
            raise FulfillmentError(404, "NotFound", f"Operation {operation_id} not found.")
        return operation

    def _in_status(self, subscription_id: str, statuses: set[str]) -> Subscription:
        subscription = self._subscription(subscription_id)
        if subscription.status not in statuses:
            raise FulfillmentError(
                409,
                "Conflict",
                f"Subscription {subscription_id} is {subscription.status}; expected {sorted(statuses)}.",
            )
        return subscription

    def _changeable(self, subscription_id: str) -> Subscription:
        subscription = self._subscription(subscription_id)
        if subscription.status == "Unsubscribed":
            raise FulfillmentError(404, "NotFound", f"Subscription {subscription_id} is unsubscribed.")
        if subscription.status != "Subscribed":
            raise FulfillmentError(400, "BadRequest", f"Subscription {subscription_id} is {subscription.status}.")
        self._refuse_if_busy(subscription_id)
        return subscription

    def _refuse_if_busy(self, subscription_id: str) -> None:
        for operation in self._operations.values():
            if operation.subscription_id == subscription_id and operation.status == "InProgress":
                raise FulfillmentError(
                    409,
                    "Conflict",
                    f"Operation {operation.id} ({operation.action}) is in progress on this subscription.",
                )

    def _plan(self, offer: Offer, plan_id: str, private_offer: bool) -> Plan:
        plan = offer.plans.get(plan_id)
        if plan is None or (plan.private and not private_offer):
            raise FulfillmentError(400, "BadRequest", f"Plan {plan_id} is not available for offer {offer.id}.")
        return plan

    @staticmethod
    def _check_quantity(plan: Plan, quantity: int) -> None:
        if not plan.min_quantity <= quantity <= plan.max_quantity:
            raise FulfillmentError(
                400,
                "BadRequest",
                f"quantity {quantity} is outside {plan.min_quantity}..{plan.max_quantity} for plan {plan.id}.",
            )

    def _new_operation(
        self,
        subscription: Subscription,
        action: str,
        source: str,
        status: str,
        plan_id: str | None = None,
        quantity: int | None = None,
    ) -> Operation:
        operation = Operation(
            id=str(uuid.uuid4()),
            activity_id=str(uuid.uuid4()),
            subscription_id=subscription.id,
            offer_id=subscription.offer_id,
            publisher_id=subscription.publisher_id,
            plan_id=plan_id or subscription.plan_id,
            quantity=quantity if quantity is not None else subscription.quantity,
            action=action,
            status=status,
            source=source,
            created=self.clock.now(),
            subscription_before=subscription.to_json(),
        )
        self._operations[operation.id] = operation
        if status == "Succeeded":
            self._apply(operation)
        return operation

    def _customer_operation(
        self,
        subscription: Subscription,
        action: str,
        status: str,
        plan_id: str | None = None,
        quantity: int | None = None,
    ) -> Operation:
        operation = self._new_operation(subscription, action, "Azure", status, plan_id, quantity)
        token = self._issue_landing_token(subscription.id)
        for listener in self._listeners:
            listener(replace(operation), token)
        return replace(operation)

    def _complete(self, operation: Operation) -> None:
        operation.status = "Succeeded"
        self._apply(operation)

    def _apply(self, operation: Operation) -> None:
        subscription = self._subscriptions[operation.subscription_id]
        if operation.action == "ChangePlan":
            subscription.plan_id = operation.plan_id
        elif operation.action == "ChangeQuantity":
            subscription.quantity = operation.quantity
        elif operation.action == "Reinstate":
            subscription.status = "Subscribed"
        elif operation.action == "Suspend":
            subscription.status = "Suspended"
        elif operation.action == "Unsubscribe":
            subscription.status = "Unsubscribed"
        elif operation.action == "Renew":
            subscription.term_start = subscription.term_end + datetime.timedelta(days=1)
            subscription.term_end = subscription.term_start + datetime.timedelta(days=30)
        subscription.last_modified = self.clock.now()

    def _settle(self) -> None:
        """Accept operations whose time is up, by the emulator clock."""
        now = self.clock.now()
        for operation in self._operations.values():
            if operation.status != "InProgress":
                continue
            limit = self.operation_timeout_seconds if operation.source == "Azure" else self.publisher_operation_seconds
            if (now - operation.created).total_seconds() >= limit:
                self._complete(operation)

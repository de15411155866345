"""The metering service: usage events, their validation, first-write-wins storage and retrieval.

One event is kept per resource + dimension + plan + hour (the hour of effectiveStartTime); a later
event for the same key is a Duplicate that carries the accepted one. Events older than 24 hours or
in the future (emulator clock) are Expired, and so are events of a SaaS subscription dated before
the hour it was purchased in: usage is only accepted inside the subscription's term ("Usage events
can only be emitted for the past 24 hours", "against an active resource (subscribed) for the plan
purchased", Microsoft's "Marketplace metered billing APIs" page). A single event answers 400
BadArgument with the item as detail (code Expired); a batch item answers status Expired.
Retrieval aggregates per day like the usage API.
Control hooks drop or alter a stored event so reconciliation tests can plant differences.
"""

from __future__ import annotations

import datetime
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from emulators.marketplace.catalog import OfferCatalog
from emulators.marketplace.clock import EmulatorClock, isoformat, parse_timestamp
from emulators.marketplace.subscriptions import FulfillmentState

MAX_BATCH_SIZE = 25
EVENT_WINDOW = datetime.timedelta(hours=24)
DUPLICATE_MESSAGE = "This usage event already exist."


@dataclass
class ManagedApplication:
    """A managed application that may report usage (registered through the control API)."""

    resource_uri: str
    resource_usage_id: str
    offer_id: str
    plan_id: str
    azure_subscription_id: str


@dataclass
class StoredUsageEvent:
    """An accepted usage event as Marketplace holds it; `processed_quantity` differs only when altered."""

    usage_event_id: str
    resource_id: str
    resource_uri: str | None
    quantity: float
    processed_quantity: float
    dimension: str
    plan_id: str
    effective_start_time: str
    hour: datetime.datetime
    message_time: datetime.datetime
    offer_id: str
    azure_subscription_id: str
    recon_status: str | None = None

    def accepted_message(self) -> dict[str, Any]:
        """The Accepted answer, also quoted in Duplicate answers."""
        message: dict[str, Any] = {
            "usageEventId": self.usage_event_id,
            "status": "Accepted",
            "messageTime": isoformat(self.message_time),
            "resourceId": self.resource_id,
            "quantity": self.quantity,
            "dimension": self.dimension,
            "effectiveStartTime": self.effective_start_time,
            "planId": self.plan_id,
        }
        if self.resource_uri:
            message["resourceUri"] = self.resource_uri
        return message

    def to_json(self) -> dict[str, Any]:
        """Full stored state for the control API."""
        return {
            **self.accepted_message(),
            "processedQuantity": self.processed_quantity,
            "offerId": self.offer_id,
            "azureSubscriptionId": self.azure_subscription_id,
            "reconStatus": self.recon_status,
        }


class UsageEventRejected(Exception):
    """One event was not accepted; `status` is its batch status, `target` the offending field."""

    def __init__(self, status: str, message: str, target: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.target = target


@dataclass(frozen=True)
class _Target:
    resource_id: str
    resource_uri: str | None
    offer_id: str
    azure_subscription_id: str
    # The first hour usage may be dated in: the hour of the purchase (None: no such bound known).
    first_billable_hour: datetime.datetime | None = None


class UsageLedger:
    """Validates and stores usage events; thread-safe."""

    def __init__(self, catalog: OfferCatalog, clock: EmulatorClock, subscriptions: FulfillmentState) -> None:
        self.catalog = catalog
        self.clock = clock
        self.subscriptions = subscriptions
        self._lock = threading.Lock()
        self._events: dict[tuple[str, str, str, datetime.datetime], StoredUsageEvent] = {}
        self._managed_apps: dict[str, ManagedApplication] = {}

    def register_managed_application(self, application: ManagedApplication) -> None:
        """Let a managed application report usage by resourceUri or by its resource usage id."""
        with self._lock:
            self._managed_apps[application.resource_usage_id] = application

    # Submission -------------------------------------------------------------------------------

    def submit(self, event: Any) -> dict[str, Any]:
        """Process one event; returns its result item (with `status`), never raises for event problems."""
        now = self.clock.now()
        echo = _echo_fields(event)
        try:
            fields = self._validated_fields(event, now)
            target = self._target(fields)
            offer = self.catalog.offers[target.offer_id]
            if fields["planId"] not in offer.plans:
                raise UsageEventRejected("BadArgument", f"Plan {fields['planId']} is not part of the offer.", "planId")
            if fields["dimension"] not in offer.dimension_ids():
                raise UsageEventRejected(
                    "InvalidDimension", f"Dimension {fields['dimension']} is not defined for the plan.", "dimension"
                )
            if target.first_billable_hour is not None and fields["start"] < target.first_billable_hour:
                raise UsageEventRejected(
                    "Expired",
                    "The effectiveStartTime is before the subscription was purchased "
                    f"({isoformat(target.first_billable_hour)}).",
                    "effectiveStartTime",
                )
        except UsageEventRejected as rejection:
            return {
                **echo,
                "status": rejection.status,
                "messageTime": isoformat(now),
                "error": {"message": rejection.message, "target": rejection.target, "code": rejection.status},
            }
        start: datetime.datetime = fields["start"]
        hour = start.replace(minute=0, second=0, microsecond=0)
        key = (target.resource_id, fields["dimension"], fields["planId"], hour)
        with self._lock:
            existing = self._events.get(key)
            if existing is not None:
                return {
                    **echo,
                    "status": "Duplicate",
                    "messageTime": isoformat(now),
                    "error": {
                        "additionalInfo": {"acceptedMessage": existing.accepted_message()},
                        "message": DUPLICATE_MESSAGE,
                        "code": "Conflict",
                    },
                }
            stored = StoredUsageEvent(
                usage_event_id=str(uuid.uuid4()),
                resource_id=target.resource_id,
                resource_uri=target.resource_uri,
                quantity=fields["quantity"],
                processed_quantity=fields["quantity"],
                dimension=fields["dimension"],
                plan_id=fields["planId"],
                effective_start_time=fields["effectiveStartTime"],
                hour=hour,
                message_time=now,
                offer_id=target.offer_id,
                azure_subscription_id=target.azure_subscription_id,
            )
            self._events[key] = stored
        return stored.accepted_message()

    def _validated_fields(self, event: Any, now: datetime.datetime) -> dict[str, Any]:
        if not isinstance(event, dict):
            raise UsageEventRejected("BadArgument", "The usage event must be a JSON object.", "usageEventRequest")
        for name in ("dimension", "planId", "effectiveStartTime"):
            if not isinstance(event.get(name), str) or not event[name]:
                raise UsageEventRejected("BadArgument", f"The {name} is required.", name)
        if not event.get("resourceId") and not event.get("resourceUri"):
            raise UsageEventRejected("BadArgument", "The resourceId or resourceUri is required.", "resourceId")
        quantity = event.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int | float):
            raise UsageEventRejected("BadArgument", "The quantity must be a number.", "quantity")
        if quantity <= 0:
            raise UsageEventRejected("InvalidQuantity", "The quantity must be greater than 0.", "quantity")
        try:
            start = parse_timestamp(event["effectiveStartTime"])
        except ValueError as error:
            raise UsageEventRejected(
                "BadArgument", "The effectiveStartTime is not a valid date.", "effectiveStartTime"
            ) from error
        if start > now:
            raise UsageEventRejected("Expired", "The effectiveStartTime is in the future.", "effectiveStartTime")
        if now - start > EVENT_WINDOW:
            raise UsageEventRejected(
                "Expired", "The effectiveStartTime is more than 24 hours in the past.", "effectiveStartTime"
            )
        return {**event, "quantity": float(quantity), "start": start}

    def _target(self, fields: dict[str, Any]) -> _Target:
        """The billed resource: a SaaS subscription or a registered managed application."""
        resource_id = fields.get("resourceId")
        resource_uri = fields.get("resourceUri")
        with self._lock:
            applications = list(self._managed_apps.values())
        for application in applications:
            if resource_id == application.resource_usage_id or (
                isinstance(resource_uri, str) and resource_uri.lower() == application.resource_uri.lower()
            ):
                return _Target(
                    application.resource_usage_id,
                    application.resource_uri,
                    application.offer_id,
                    application.azure_subscription_id,
                )
        subscription = self.subscriptions.metering_target(str(resource_id)) if resource_id else None
        if subscription is None or subscription.status == "Unsubscribed":
            raise UsageEventRejected("ResourceNotFound", "The resource was not found.", "resourceId")
        if subscription.status != "Subscribed":
            raise UsageEventRejected(
                "ResourceNotActive", f"The resource is {subscription.status} and cannot be billed.", "resourceId"
            )
        return _Target(
            subscription.id,
            None,
            subscription.offer_id,
            subscription.azure_subscription_id,
            subscription.created.replace(minute=0, second=0, microsecond=0),
        )

    # Retrieval and control hooks --------------------------------------------------------------

    def usage_report(
        self,
        start: datetime.datetime,
        end: datetime.datetime,
        filters: dict[str, str],
    ) -> list[dict[str, Any]]:
        """Accepted usage aggregated per day, resource, dimension and plan, within [start, end)."""
        with self._lock:
            events = [event for event in self._events.values() if start <= event.hour < end]
        groups: dict[tuple[datetime.date, str, str, str], list[StoredUsageEvent]] = {}
        for event in events:
            groups.setdefault((event.hour.date(), event.resource_id, event.dimension, event.plan_id), []).append(event)
        report: list[dict[str, Any]] = []
        for (day, resource_id, dimension, plan_id), members in sorted(groups.items()):
            first = members[0]
            submitted = sum(member.quantity for member in members)
            processed = sum(member.processed_quantity for member in members)
            if any(member.processed_quantity != member.quantity for member in members):
                recon_status = "Mismatch"
            else:
                recon_status = next((member.recon_status for member in members if member.recon_status), "Accepted")
            offer = self.catalog.offers.get(first.offer_id)
            plan = offer.plans.get(plan_id) if offer else None
            row = {
                "usageDate": f"{day.isoformat()}T00:00:00Z",  # a date-time in the spec: UTC, with its offset
                "usageResourceId": resource_id,
                "dimension": dimension,
                "planId": plan_id,
                "planName": plan.display_name if plan else plan_id,
                "offerId": first.offer_id,
                "offerName": offer.display_name if offer else first.offer_id,
                "offerType": "SaaS" if first.resource_uri is None else "ManagedApplication",
                "azureSubscriptionId": first.azure_subscription_id,
                "reconStatus": recon_status,
                "submittedQuantity": round(submitted, 6),
                "processedQuantity": round(processed, 6),
                "submittedCount": len(members),
            }
            if all(row[name] == value for name, value in filters.items()):
                report.append(row)
        return report

    def drop(self, usage_event_id: str) -> StoredUsageEvent:
        """Forget an accepted event, as if Marketplace had lost it (a resubmission is then accepted)."""
        with self._lock:
            key = self._key_of(usage_event_id)
            return self._events.pop(key)

    def alter(
        self, usage_event_id: str, processed_quantity: float | None, recon_status: str | None
    ) -> StoredUsageEvent:
        """Change what Marketplace says it processed for an event, or its reconciliation status."""
        with self._lock:
            event = self._events[self._key_of(usage_event_id)]
            if processed_quantity is not None:
                event.processed_quantity = processed_quantity
            if recon_status is not None:
                event.recon_status = recon_status
            return event

    def _key_of(self, usage_event_id: str) -> tuple[str, str, str, datetime.datetime]:
        for key, event in self._events.items():
            if event.usage_event_id == usage_event_id:
                return key
        raise KeyError(usage_event_id)

    def snapshot(self) -> dict[str, Any]:
        """Stored events and managed applications as JSON, for tests."""
        with self._lock:
            return {
                "usage_events": [event.to_json() for event in self._events.values()],
                "managed_applications": [vars(application).copy() for application in self._managed_apps.values()],
            }


def _echo_fields(event: Any) -> dict[str, Any]:
    """The submitted fields a result item repeats."""
    if not isinstance(event, dict):
        return {}
    # Only values of the result schema's types are repeated (a number for quantity, strings otherwise): a field
    # sent as an object or a list is refused above and left out of the answer rather than echoed against the schema.
    texts = ("resourceId", "resourceUri", "dimension", "effectiveStartTime", "planId")
    echoed: dict[str, Any] = {name: event[name] for name in texts if isinstance(event.get(name), str)}
    quantity = event.get("quantity")
    if isinstance(quantity, int | float) and not isinstance(quantity, bool):
        echoed["quantity"] = quantity
    return echoed

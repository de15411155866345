"""Delivers customer-side operations to the publisher's webhook, with an Entra bearer token and retries.

One background thread sends deliveries in order. A 2xx answer delivers; a 4xx answer other than
429 to an InProgress operation rejects it (the operation fails); anything else (429, 5xx, timeout,
refused connection, 4xx to a notification) is retried up to `max_attempts`, after the answer's
Retry-After when it has one (capped), else with exponential backoff. Every attempt is logged for the
control API.
"""

from __future__ import annotations

import email.utils
import math
import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from emulators.marketplace.clock import EmulatorClock, isoformat
from emulators.marketplace.subscriptions import FulfillmentState, Operation

WEBHOOK_TIMEOUT_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 30.0
# A publisher cannot park a delivery for longer than this with one Retry-After.
MAX_RETRY_AFTER_SECONDS = 120.0
TOO_MANY_REQUESTS = 429


def retry_after_seconds(value: str | None) -> float | None:
    """The wait a Retry-After header asks for (delta seconds or an HTTP date), capped; None if absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - datetime.now(UTC)).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


@dataclass
class WebhookDelivery:
    """One webhook call and its attempts."""

    id: str
    operation_id: str
    action: str
    operation_status: str
    body: dict[str, Any]
    url: str | None = None
    outcome: str = "pending"
    attempts: list[dict[str, Any]] = field(default_factory=list)
    redelivery_of: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The delivery log entry."""
        return {
            "id": self.id,
            "operation_id": self.operation_id,
            "action": self.action,
            "url": self.url,
            "outcome": self.outcome,
            "attempts": list(self.attempts),
            "body": self.body,
            "redelivery_of": self.redelivery_of,
        }


class WebhookDispatcher:
    """Queue plus sender thread; `stop()` ends it promptly, even during a backoff wait."""

    def __init__(
        self,
        fulfillment: FulfillmentState,
        clock: EmulatorClock,
        mint_token: Callable[[], str],
        ca_bundle: Path | None,
        max_attempts: int,
        initial_backoff_seconds: float,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.fulfillment = fulfillment
        # How the operation reads in the body (the quirks mode's spelling of its fields).
        self.transform = transform or (lambda operation: operation)
        self.clock = clock
        self.mint_token = mint_token
        self.ca_bundle = ca_bundle
        self.max_attempts = max_attempts
        self.initial_backoff_seconds = initial_backoff_seconds
        self.webhook_url: str | None = None
        self._lock = threading.Lock()
        self._deliveries: list[WebhookDelivery] = []
        self._queue: queue.Queue[WebhookDelivery | None] = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Reordering for chaos tests: deliveries held back, then sent newest first.
        self._held: list[WebhookDelivery] = []
        self._hold_size = 0

    def start(self) -> None:
        """Start the sender thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="marketplace-webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the sender thread; undelivered items stay pending in the log."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def enqueue(self, operation: Operation, purchase_token: str | None) -> None:
        """Queue the webhook of a customer-side operation: the operation plus the subscription before it."""
        body = {
            **self.transform(operation.to_json()),
            "subscription": operation.subscription_before,
            "purchaseToken": purchase_token,
        }
        delivery = WebhookDelivery(
            id=str(uuid.uuid4()),
            operation_id=operation.id,
            action=operation.action,
            operation_status=operation.status,
            body=body,
        )
        with self._lock:
            self._deliveries.append(delivery)
            holding = self._hold_size > 0
            if holding:
                self._held.append(delivery)
            hold_full = holding and len(self._held) >= self._hold_size
        if not holding:
            self._queue.put(delivery)
        elif hold_full:
            self.release_held()

    def hold(self, size: int) -> None:
        """Hold the next `size` deliveries back and send them newest first: webhooks arriving out of order."""
        with self._lock:
            self._hold_size = size

    def release_held(self) -> int:
        """Stop holding; queue what is held, newest first. Returns how many were released."""
        with self._lock:
            held, self._held, self._hold_size = self._held, [], 0
        for delivery in reversed(held):
            self._queue.put(delivery)
        return len(held)

    def redeliver(self, delivery_ids: list[str]) -> list[str]:
        """Send past deliveries again, in the order given, each as a new delivery with a fresh token.

        Returns the new delivery ids; unknown ids are skipped.
        """
        with self._lock:
            by_id = {delivery.id: delivery for delivery in self._deliveries}
            copies = [
                WebhookDelivery(
                    id=str(uuid.uuid4()),
                    operation_id=by_id[delivery_id].operation_id,
                    action=by_id[delivery_id].action,
                    operation_status=by_id[delivery_id].operation_status,
                    body=by_id[delivery_id].body,
                    redelivery_of=delivery_id,
                )
                for delivery_id in delivery_ids
                if delivery_id in by_id
            ]
            self._deliveries.extend(copies)
        for copy in copies:
            self._queue.put(copy)
        return [copy.id for copy in copies]

    def deliveries(self) -> list[dict[str, Any]]:
        """The delivery log."""
        with self._lock:
            return [delivery.to_json() for delivery in self._deliveries]

    def _run(self) -> None:
        verify: Any = str(self.ca_bundle) if self.ca_bundle and self.ca_bundle.exists() else True
        while not self._stopping.is_set():
            delivery = self._queue.get()
            if delivery is None:
                return
            # A client per delivery: no idle connection is left open on the publisher's server between calls.
            with httpx.Client(timeout=WEBHOOK_TIMEOUT_SECONDS, verify=verify) as client:
                self._deliver(client, delivery)

    def _deliver(self, client: httpx.Client, delivery: WebhookDelivery) -> None:
        backoff = self.initial_backoff_seconds
        for attempt in range(1, self.max_attempts + 1):
            url = self.webhook_url
            if url is None:
                # Nothing to call: Partner Center always has a webhook, so this only happens in tests.
                self._finish(delivery, "skipped: no publisher webhook URL configured")
                return
            record: dict[str, Any] = {"attempt": attempt, "at": isoformat(self.clock.now()), "url": url}
            status_code: int | None = None
            retry_after: float | None = None
            try:
                response = client.post(
                    url,
                    json=delivery.body,
                    headers={
                        "Authorization": f"Bearer {self.mint_token()}",
                        "x-ms-requestid": str(uuid.uuid4()),
                        "x-ms-correlationid": delivery.body["activityId"],
                    },
                )
                status_code = response.status_code
                record["status_code"] = status_code
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
                if retry_after is not None:
                    record["retry_after_seconds"] = retry_after
            except httpx.HTTPError as error:
                record["error"] = f"{type(error).__name__}: {error}"
            with self._lock:
                delivery.url = url
                delivery.attempts.append(record)
            if status_code is not None and 200 <= status_code < 300:
                self._finish(delivery, "delivered")
                return
            if (
                status_code is not None
                and 400 <= status_code < 500
                and status_code != TOO_MANY_REQUESTS
                and delivery.operation_status == "InProgress"
            ):
                self.fulfillment.reject_operation(delivery.operation_id, status_code)
                self._finish(delivery, "rejected")
                return
            wait = retry_after if retry_after is not None else backoff
            if attempt < self.max_attempts and self._stopping.wait(wait):
                return
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        self._finish(delivery, "abandoned")

    def _finish(self, delivery: WebhookDelivery, outcome: str) -> None:
        with self._lock:
            delivery.outcome = outcome

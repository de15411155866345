"""The Marketplace metering service: batch and single usage events, and usage retrieval.

Submissions never repeat a request whose answer may have been lost (`retry_lost_responses=False`):
the caller gets MarketplaceUnreachable and settles the events through retrieval instead. Statuses
the service returns per event are passed through unchanged; the billing code decides what they mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.azure.credentials import CredentialFactory
from core.marketplace.http import MarketplaceError, MarketplaceHttp
from core.settings import Settings

MAX_BATCH_SIZE = 25
ACCEPTED = "Accepted"
DUPLICATE = "Duplicate"


@dataclass(frozen=True)
class UsageEvent:
    """One hour of one dimension for one resource (SaaS subscription id or managed-app resource usage id)."""

    resource_id: str
    dimension: str
    quantity: float
    effective_start_time: datetime
    plan_id: str

    def to_json(self) -> dict[str, Any]:
        """The request body of one event."""
        return {
            "resourceId": self.resource_id,
            "quantity": self.quantity,
            "dimension": self.dimension,
            "effectiveStartTime": format_timestamp(self.effective_start_time),
            "planId": self.plan_id,
        }


@dataclass(frozen=True)
class UsageEventResult:
    """Marketplace's answer for one event; `usage_event_id` is the accepted (or original, for Duplicate) event."""

    event: UsageEvent
    status: str
    usage_event_id: str | None
    message: str | None
    accepted_quantity: float | None = None


@dataclass(frozen=True)
class UsageAggregate:
    """What usage retrieval reports for one day, resource, dimension and plan."""

    usage_date: datetime
    resource_id: str
    dimension: str
    plan_id: str
    submitted_quantity: float
    processed_quantity: float
    submitted_count: int
    recon_status: str | None


class MeteringClient:
    """The only code that speaks to the metering API."""

    def __init__(self, http: MarketplaceHttp) -> None:
        self.http = http

    @classmethod
    def from_settings(
        cls, settings: Settings, credentials: CredentialFactory | None = None, **http_options: Any
    ) -> MeteringClient:
        """A client on the publisher's token; `http_options` tune MarketplaceHttp (timeouts, backoff)."""
        credential = (credentials or CredentialFactory(settings)).publisher
        options: dict[str, Any] = {"timeout_seconds": settings.http_timeout_seconds, **http_options}
        http = MarketplaceHttp(
            settings.marketplace_metering_base_url,
            api_version=settings.marketplace_api_version,
            credential=credential,
            token_scope=f"{settings.marketplace_resource_app_id}/.default",
            verify=settings.tls_verify,
            **options,
        )
        return cls(http)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def submit_batch(self, events: Sequence[UsageEvent]) -> list[UsageEventResult]:
        """POST /batchUsageEvent with 1 to 25 events; one result per event, matched by resource, dimension, hour.

        Raises MarketplaceUnreachable when the answer was lost and MarketplaceError after retries.
        """
        if not 1 <= len(events) <= MAX_BATCH_SIZE:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH_SIZE} events, not {len(events)}")
        response = self.http.request(
            "POST",
            "/batchUsageEvent",
            json={"request": [event.to_json() for event in events]},
            retry_lost_responses=False,
        )
        items = response.body.get("result", []) if isinstance(response.body, dict) else []
        by_key = {_event_key(event.resource_id, event.dimension, event.effective_start_time): event for event in events}
        results: list[UsageEventResult] = []
        for item in items:
            if not isinstance(item, dict):
                continue
            key = _item_key(item)
            event = by_key.pop(key, None) if key is not None else None
            if event is not None:
                results.append(_result(event, item))
        # An event the answer does not mention is reported as such, never assumed accepted.
        results.extend(UsageEventResult(event, "Missing", None, "not in the batch answer") for event in by_key.values())
        return results

    def submit_event(self, event: UsageEvent) -> UsageEventResult:
        """POST /usageEvent for one event; 409 is a Duplicate carrying the original accepted event."""
        response = self.http.request(
            "POST", "/usageEvent", json=event.to_json(), retry_lost_responses=False, expected=(200, 400, 409)
        )
        body = response.body if isinstance(response.body, dict) else {}
        if response.status == 200:
            return _result(event, body)
        if response.status == 409:
            return _result(event, {"status": DUPLICATE, "error": body})
        details = body.get("details") or [{}]
        detail = details[0] if isinstance(details, list) and details and isinstance(details[0], dict) else {}
        status = str(detail.get("code") or body.get("code") or "BadArgument")
        return UsageEventResult(event, status, None, str(detail.get("message") or body.get("message") or ""))

    def usage_events(
        self, start: datetime, end: datetime, *, filters: dict[str, str] | None = None
    ) -> list[UsageAggregate]:
        """GET /usageEvents for [start, end): what Marketplace holds, aggregated per day."""
        params = {"usageStartDate": format_timestamp(start), "usageEndDate": format_timestamp(end), **(filters or {})}
        response = self.http.request("GET", "/usageEvents", params=params)
        rows = response.body if isinstance(response.body, list) else []
        aggregates: list[UsageAggregate] = []
        for row in rows:
            if not isinstance(row, dict):
                continue
            try:
                aggregates.append(
                    UsageAggregate(
                        usage_date=parse_timestamp(str(row["usageDate"])),
                        resource_id=str(row["usageResourceId"]),
                        dimension=str(row["dimension"]),
                        plan_id=str(row["planId"]),
                        submitted_quantity=float(row.get("submittedQuantity") or 0.0),
                        processed_quantity=float(row.get("processedQuantity") or 0.0),
                        submitted_count=int(row.get("submittedCount") or 0),
                        recon_status=row.get("reconStatus"),
                    )
                )
            except (KeyError, TypeError, ValueError) as error:
                raise MarketplaceError(
                    200, f"unreadable usage row: {error}", error_code=None, request_id=response.request_id, body=row
                ) from None
        return aggregates


def _result(event: UsageEvent, item: dict[str, Any]) -> UsageEventResult:
    status = str(item.get("status") or "Missing")
    error: dict[str, Any] = item["error"] if isinstance(item.get("error"), dict) else {}
    if status == ACCEPTED:
        quantity = item.get("quantity")
        return UsageEventResult(
            event, status, str(item.get("usageEventId") or ""), None, float(quantity) if quantity else None
        )
    if status == DUPLICATE:
        info: dict[str, Any] = error["additionalInfo"] if isinstance(error.get("additionalInfo"), dict) else {}
        original: dict[str, Any] = info["acceptedMessage"] if isinstance(info.get("acceptedMessage"), dict) else {}
        quantity = original.get("quantity")
        return UsageEventResult(
            event,
            status,
            str(original.get("usageEventId") or "") or None,
            str(error.get("message") or ""),
            float(quantity) if quantity is not None else None,
        )
    return UsageEventResult(event, status, None, str(error.get("message") or status))


def _event_key(resource_id: str, dimension: str, start: datetime) -> tuple[str, str, datetime]:
    return resource_id, dimension, start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _item_key(item: dict[str, Any]) -> tuple[str, str, datetime] | None:
    try:
        start = parse_timestamp(str(item["effectiveStartTime"]))
    except (KeyError, ValueError):
        return None
    return _event_key(str(item.get("resourceId") or ""), str(item.get("dimension") or ""), start)


def format_timestamp(moment: datetime) -> str:
    """UTC ISO 8601 with a Z, as the metering API writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: str) -> datetime:
    """ISO 8601 (with Z or an offset, or naive meaning UTC) to an aware UTC datetime."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)

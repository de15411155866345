"""Metering API of the Marketplace emulator: single and batch usage events, retrieval and planted differences."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.timeout(30)

Purchase = Callable[..., dict[str, Any]]


def _hour(hours_ago: int = 1, minute: int = 0) -> str:
    start = datetime.datetime.now(datetime.UTC).replace(minute=minute, second=0, microsecond=0)
    return (start - datetime.timedelta(hours=hours_ago)).isoformat().replace("+00:00", "Z")


def _event(resource_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "resourceId": resource_id,
        "quantity": 12.5,
        "dimension": "capacity_tib",
        "effectiveStartTime": _hour(),
        "planId": "standard",
        **overrides,
    }


@pytest.fixture
def subscription_id(marketplace_api: httpx.Client, purchase: Purchase) -> str:
    """An activated Standard subscription bought two days ago (usage of the last 24 hours is in its term)."""
    bought = str(purchase(purchased_seconds_ago=2 * 86400)["subscription_id"])
    marketplace_api.post(f"saas/subscriptions/{bought}/activate", json={"planId": "standard"}).raise_for_status()
    return bought


def test_accepted_then_duplicate(marketplace_api: httpx.Client, subscription_id: str) -> None:
    event = _event(subscription_id)
    accepted = marketplace_api.post("usageEvent", json=event)
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert body["status"] == "Accepted"
    assert uuid.UUID(body["usageEventId"])
    assert body["messageTime"]
    for name in ("resourceId", "quantity", "dimension", "effectiveStartTime", "planId"):
        assert body[name] == event[name]

    # Same resource, dimension, plan and hour (a different minute and quantity): first write wins.
    later_in_hour = _event(subscription_id, quantity=99, effectiveStartTime=_hour(minute=35))
    duplicate = marketplace_api.post("usageEvent", json=later_in_hour)
    assert duplicate.status_code == 409
    conflict = duplicate.json()
    assert conflict["code"] == "Conflict"
    assert conflict["additionalInfo"]["acceptedMessage"] == body


def test_single_event_rejections(marketplace_api: httpx.Client, subscription_id: str, purchase: Purchase) -> None:
    cases = {
        "InvalidQuantity": _event(subscription_id, quantity=0),
        "InvalidDimension": _event(subscription_id, dimension="gpu_hours"),
        "Expired": _event(subscription_id, effectiveStartTime=_hour(hours_ago=25)),
        "ResourceNotFound": _event(str(uuid.uuid4())),
        "ResourceNotActive": _event(str(purchase()["subscription_id"])),
    }
    for expected, event in cases.items():
        response = marketplace_api.post("usageEvent", json=event)
        assert response.status_code == 400, (expected, response.text)
        body = response.json()
        assert body["code"] == "BadArgument"
        assert body["details"][0]["code"] == expected
    missing = marketplace_api.post("usageEvent", json={"quantity": 1})
    assert missing.status_code == 400
    assert missing.json()["details"][0]["code"] == "BadArgument"


def test_future_events_are_expired(
    marketplace_api: httpx.Client, marketplace_control: httpx.Client, subscription_id: str
) -> None:
    future = _event(subscription_id, effectiveStartTime=_hour(hours_ago=-2))
    assert marketplace_api.post("usageEvent", json=future).json()["details"][0]["code"] == "Expired"
    # Moving the emulator clock forward makes the same hour acceptable, then too old.
    marketplace_control.put("/clock", json={"offset_seconds": 3 * 3600})
    assert marketplace_api.post("usageEvent", json=future).status_code == 200
    marketplace_control.put("/clock", json={"offset_seconds": 30 * 3600})
    old = _event(subscription_id, effectiveStartTime=_hour(hours_ago=1), dimension="data_transfer_gib")
    assert marketplace_api.post("usageEvent", json=old).json()["details"][0]["code"] == "Expired"


def test_usage_before_the_purchase_is_refused_as_expired(marketplace_api: httpx.Client, purchase: Purchase) -> None:
    purchased = purchase(purchased_seconds_ago=90 * 60)
    bought = str(purchased["subscription_id"])
    marketplace_api.post(f"saas/subscriptions/{bought}/activate", json={"planId": "standard"}).raise_for_status()
    created = datetime.datetime.fromisoformat(purchased["subscription"]["created"].replace("Z", "+00:00"))
    purchase_hour = created.replace(minute=0, second=0, microsecond=0)
    before = (purchase_hour - datetime.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    single = marketplace_api.post("usageEvent", json=_event(bought, effectiveStartTime=before))
    assert single.status_code == 400, single.text
    body = single.json()
    assert body["code"] == "BadArgument"
    assert body["details"][0]["code"] == "Expired"
    assert body["details"][0]["target"] == "effectiveStartTime"
    assert "before the subscription was purchased" in body["details"][0]["message"]

    # The purchase hour itself is in the term (a partial first hour), as is every later one.
    in_term = purchase_hour.isoformat().replace("+00:00", "Z")
    batch = marketplace_api.post(
        "batchUsageEvent",
        json={
            "request": [
                _event(bought, dimension="data_transfer_gib", effectiveStartTime=before),
                _event(bought, dimension="data_transfer_gib", effectiveStartTime=in_term),
            ]
        },
    )
    assert batch.status_code == 200, batch.text
    assert [item["status"] for item in batch.json()["result"]] == ["Expired", "Accepted"]


def test_unsubscribed_resource_is_not_found(
    marketplace_api: httpx.Client, marketplace_control: httpx.Client, subscription_id: str
) -> None:
    marketplace_control.post(f"/subscriptions/{subscription_id}/unsubscribe").raise_for_status()
    response = marketplace_api.post("usageEvent", json=_event(subscription_id))
    assert response.json()["details"][0]["code"] == "ResourceNotFound"


def test_batch_results_per_item(marketplace_api: httpx.Client, subscription_id: str) -> None:
    batch = [
        _event(subscription_id, dimension="capacity_tib"),
        _event(subscription_id, dimension="data_transfer_gib"),
        _event(subscription_id, dimension="capacity_tib", quantity=3),
        _event(subscription_id, dimension="api_requests_10k", quantity=-1),
        _event(subscription_id, dimension="unknown_dimension"),
        _event(subscription_id, dimension="api_requests_10k", effectiveStartTime=_hour(hours_ago=48)),
        _event(str(uuid.uuid4())),
    ]
    response = marketplace_api.post("batchUsageEvent", json={"request": batch})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(batch)
    statuses = [item["status"] for item in body["result"]]
    assert statuses == [
        "Accepted",
        "Accepted",
        "Duplicate",
        "InvalidQuantity",
        "InvalidDimension",
        "Expired",
        "ResourceNotFound",
    ]
    duplicate = body["result"][2]
    assert duplicate["error"]["additionalInfo"]["acceptedMessage"]["usageEventId"] == body["result"][0]["usageEventId"]


def test_batch_size_limits(marketplace_api: httpx.Client, subscription_id: str) -> None:
    events = [_event(subscription_id, effectiveStartTime=_hour(hours_ago=hour)) for hour in range(1, 27)]
    too_many = marketplace_api.post("batchUsageEvent", json={"request": events})
    assert too_many.status_code == 400
    assert too_many.json()["code"] == "BadArgument"
    assert marketplace_api.post("batchUsageEvent", json={"request": []}).status_code == 400
    assert marketplace_api.post("batchUsageEvent", json={"request": events[:25]}).json()["count"] == 25


def test_usage_retrieval_filters_and_planted_differences(
    marketplace_api: httpx.Client, marketplace_control: httpx.Client, subscription_id: str
) -> None:
    first = marketplace_api.post("usageEvent", json=_event(subscription_id, quantity=10, effectiveStartTime=_hour(2)))
    second = marketplace_api.post("usageEvent", json=_event(subscription_id, quantity=5, effectiveStartTime=_hour(1)))
    transfer = marketplace_api.post(
        "usageEvent", json=_event(subscription_id, dimension="data_transfer_gib", quantity=7)
    )
    assert {first.status_code, second.status_code, transfer.status_code} == {200}
    today = datetime.datetime.now(datetime.UTC).date()
    window = {
        "usageStartDate": (today - datetime.timedelta(days=2)).isoformat(),
        "usageEndDate": today.isoformat(),
    }

    def rows(**filters: str) -> list[dict[str, Any]]:
        response = marketplace_api.get("usageEvents", params={**marketplace_api.params, **window, **filters})
        assert response.status_code == 200, response.text
        return [row for row in response.json() if row["usageResourceId"] == subscription_id]

    capacity = rows(dimension="capacity_tib")
    assert sum(row["submittedQuantity"] for row in capacity) == 15
    assert sum(row["submittedCount"] for row in capacity) == 2
    assert {row["reconStatus"] for row in capacity} == {"Accepted"}
    assert {row["dimension"] for row in rows()} == {"capacity_tib", "data_transfer_gib"}
    assert rows(planId="performance") == []

    altered = marketplace_control.patch(f"/usage-events/{first.json()['usageEventId']}", json={"processed_quantity": 8})
    assert altered.status_code == 200
    capacity = rows(dimension="capacity_tib")
    assert sum(row["processedQuantity"] for row in capacity) == 13
    assert sum(row["submittedQuantity"] for row in capacity) == 15
    mismatched = rows(dimension="capacity_tib", reconStatus="Mismatch")
    assert len(mismatched) == 1

    dropped = marketplace_control.post(f"/usage-events/{second.json()['usageEventId']}/drop")
    assert dropped.status_code == 200
    assert sum(row["submittedQuantity"] for row in rows(dimension="capacity_tib")) == 10
    # Once Marketplace has lost the event, sending it again is accepted.
    resent = marketplace_api.post("usageEvent", json=_event(subscription_id, quantity=5, effectiveStartTime=_hour(1)))
    assert resent.status_code == 200

    assert marketplace_api.get("usageEvents").status_code == 400


def test_managed_application_reports_by_resource_uri(
    marketplace_api: httpx.Client, marketplace_control: httpx.Client
) -> None:
    azure_subscription_id = str(uuid.uuid4())
    resource_uri = (
        f"/subscriptions/{azure_subscription_id}/resourceGroups/customer-rg/providers/"
        "Microsoft.Solutions/applications/facade-app"
    )
    usage_id = str(uuid.uuid4())
    registration = marketplace_control.post(
        "/managed-applications",
        json={
            "resource_uri": resource_uri,
            "resource_usage_id": usage_id,
            "plan_id": "standard",
            "azure_subscription_id": azure_subscription_id,
        },
    )
    assert registration.status_code == 201
    event = _event("", resourceUri=resource_uri)
    del event["resourceId"]
    accepted = marketplace_api.post("usageEvent", json=event)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["resourceId"] == usage_id
    # The same application by its resource usage id is the same resource: duplicate.
    assert marketplace_api.post("usageEvent", json=_event(usage_id)).status_code == 409


def test_metering_requires_the_publisher_token(marketplace_api: httpx.Client, subscription_id: str) -> None:
    response = marketplace_api.post("usageEvent", json=_event(subscription_id), headers={"Authorization": ""})
    assert response.status_code == 403
    no_version = marketplace_api.post("usageEvent", json=_event(subscription_id), params={"api-version": ""})
    assert no_version.status_code == 400
    assert no_version.json()["error"]["code"] == "ApiVersionUnspecified"

"""The Marketplace emulator against the project's own OpenAPI description of fulfilment v2 and metering.

`specs/marketplace.openapi.json` is written by this project from Microsoft's published specifications and the
documentation pages (required fields where the documentation always returns them, the documented error statuses).
Every endpoint is walked once with valid requests and each answer is validated (status, content type, body, headers),
then schemathesis fuzzes every operation with seeded positive and negative requests: no 5xx, nothing undocumented.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import APIOperation, BaseSchema, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.timeout(300)

SPEC_PATH = Path(__file__).parent / "specs" / "marketplace.openapi.json"
FUZZ_SEED = 20261207
FUZZ_EXAMPLES = 6
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
NOT_UTF8 = b'{"planId": "\xff\xfe"}'
# Usage is refused before the purchase (Expired): the walks buy a few hours back, as a customer who bought earlier.
BOUGHT_SECONDS_AGO = 6 * 3600
Operation = APIOperation[Any, Any, Any, Any]
Purchase = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def spec(emulator_state: dict[str, Any]) -> BaseSchema:
    config = schemathesis.Config.from_dict({"seed": FUZZ_SEED, "generation": {"database": "none"}})
    schema = schemathesis.openapi.from_dict(json.loads(SPEC_PATH.read_text(encoding="utf-8")), config=config)
    schema.config.base_url = emulator_state["marketplace"]["metering_base_url"]
    return schema


def operation(spec: BaseSchema, method: str, path: str) -> Operation:
    found: Operation = spec[path][method]
    return found


def validated(spec: BaseSchema, method: str, path: str, response: httpx.Response, status: int = 200) -> httpx.Response:
    """Check the expected status, then validate body and headers against the spec; return the answer."""
    assert response.status_code == status, (method, path, response.status_code, response.text)
    operation(spec, method, path).validate_response(response)
    return response


def test_every_endpoint_answers_a_valid_walk_as_documented(
    spec: BaseSchema, marketplace_api: httpx.Client, marketplace_control: httpx.Client, purchase: Purchase
) -> None:
    bought = purchase(plan_id="standard", purchased_seconds_ago=BOUGHT_SECONDS_AGO)
    subscription_id = bought["subscription_id"]
    token = bought["token"]
    sub = "/saas/subscriptions/{subscriptionId}"

    resolved = validated(
        spec,
        "POST",
        "/saas/subscriptions/resolve",
        marketplace_api.post("saas/subscriptions/resolve", headers={"x-ms-marketplace-token": token}),
    ).json()
    assert resolved["id"] == subscription_id
    # Bought without a quantity (not priced per user): the integer field is absent, never null.
    assert "quantity" not in resolved
    assert "quantity" not in resolved["subscription"]
    assert uuid.UUID(resolved["subscription"]["beneficiary"]["objectId"])
    assert uuid.UUID(resolved["subscription"]["purchaser"]["objectId"])
    assert resolved["subscription"]["term"]["chargeDuration"]

    validated(spec, "GET", "/saas/subscriptions/", marketplace_api.get("saas/subscriptions/"))
    validated(spec, "GET", sub, marketplace_api.get(f"saas/subscriptions/{subscription_id}"))
    validated(
        spec,
        "GET",
        f"{sub}/listAvailablePlans",
        marketplace_api.get(f"saas/subscriptions/{subscription_id}/listAvailablePlans"),
    )
    validated(
        spec,
        "POST",
        f"{sub}/activate",
        marketplace_api.post(f"saas/subscriptions/{subscription_id}/activate", json={"planId": "standard"}),
    )
    change = validated(
        spec, "PATCH", sub, marketplace_api.patch(f"saas/subscriptions/{subscription_id}", json={"quantity": 2}), 202
    )
    operation_id = change.headers["Operation-Id"]
    validated(spec, "GET", f"{sub}/operations", marketplace_api.get(f"saas/subscriptions/{subscription_id}/operations"))
    validated(
        spec,
        "GET",
        f"{sub}/operations/{{operationId}}",
        marketplace_api.get(f"saas/subscriptions/{subscription_id}/operations/{operation_id}"),
    )

    hour = datetime.datetime.now(datetime.UTC).replace(minute=0, second=0, microsecond=0)
    event = {
        "resourceId": subscription_id,
        "dimension": "capacity_tib",
        "quantity": 1.5,
        "effectiveStartTime": (hour - datetime.timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        "planId": "standard",
    }
    validated(spec, "POST", "/usageEvent", marketplace_api.post("usageEvent", json=event))
    validated(spec, "POST", "/usageEvent", marketplace_api.post("usageEvent", json=event), 409)  # Duplicate
    batch = {"request": [{**event, "dimension": "api_requests_10k"}]}
    validated(spec, "POST", "/batchUsageEvent", marketplace_api.post("batchUsageEvent", json=batch))
    start = (hour - datetime.timedelta(days=1)).date().isoformat()
    report = validated(
        spec, "GET", "/usageEvents", marketplace_api.get("usageEvents", params={"usageStartDate": start})
    ).json()
    mine = [row for row in report if row["usageResourceId"] == subscription_id]
    assert mine
    assert all(row["offerName"] and row["usageDate"].endswith("Z") for row in mine)
    other = purchase(plan_id="standard")["subscription_id"]  # the first one has a change in progress (409)
    validated(spec, "DELETE", sub, marketplace_api.delete(f"saas/subscriptions/{other}"), 202)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "saas/subscriptions/{id}"),
        ("POST", "saas/subscriptions/{id}/activate"),
        ("PATCH", "saas/subscriptions/{id}/operations/{operation}"),
        ("POST", "usageEvent"),
        ("POST", "batchUsageEvent"),
    ],
)
def test_a_body_that_is_not_utf8_is_a_bad_request(
    method: str, path: str, marketplace_api: httpx.Client, purchase: Purchase
) -> None:
    url = path.format(id=purchase()["subscription_id"], operation=uuid.uuid4())
    response = marketplace_api.request(
        method, url, content=NOT_UTF8, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert response.status_code == 400, response.text
    assert "UTF-8" in response.text


def test_a_wrong_method_lists_every_method_of_the_path(marketplace_api: httpx.Client, purchase: Purchase) -> None:
    response = marketplace_api.put(f"saas/subscriptions/{purchase()['subscription_id']}", json={})
    assert response.status_code == 405
    assert {method.strip() for method in response.headers["Allow"].split(",")} == {"GET", "PATCH", "DELETE"}


def test_the_list_answers_on_the_published_path_without_a_redirect(marketplace_api: httpx.Client) -> None:
    with_slash = marketplace_api.get("saas/subscriptions/", follow_redirects=False)
    without = marketplace_api.get("saas/subscriptions", follow_redirects=False)
    assert (with_slash.status_code, without.status_code) == (200, 200)


def test_usage_retrieval_reads_the_end_date_in_either_spelling(
    marketplace_api: httpx.Client, purchase: Purchase
) -> None:
    subscription_id = purchase(purchased_seconds_ago=BOUGHT_SECONDS_AGO)["subscription_id"]
    marketplace_api.post(f"saas/subscriptions/{subscription_id}/activate", json={"planId": "standard"})
    hour = datetime.datetime.now(datetime.UTC).replace(minute=0, second=0, microsecond=0)
    event = {
        "resourceId": subscription_id,
        "dimension": "capacity_tib",
        "quantity": 3,
        "effectiveStartTime": (hour - datetime.timedelta(hours=2)).isoformat(),
        "planId": "standard",
    }
    assert marketplace_api.post("usageEvent", json=event).status_code == 200
    day = (hour - datetime.timedelta(hours=2)).date()
    bounds = {"usageStartDate": day.isoformat()}
    for name in ("usageEndDate", "UsageEndDate"):
        inside = marketplace_api.get("usageEvents", params={**bounds, name: day.isoformat()}).json()
        before = marketplace_api.get(
            "usageEvents", params={**bounds, name: (day - datetime.timedelta(days=1)).isoformat()}
        ).json()
        assert subscription_id in {row["usageResourceId"] for row in inside}, name
        assert subscription_id not in {row["usageResourceId"] for row in before}, name


@pytest.fixture(scope="module")
def fuzz_ids(emulator_state: dict[str, Any], ca_bundle: Path, publisher_token: str) -> dict[str, str]:
    """A real subscription and operation, so half the fuzzed paths reach existing rows."""
    marketplace = emulator_state["marketplace"]
    contoso = emulator_state["entra"]["users"]["contoso-admin"]
    beneficiary = {"tenant_id": contoso["tenant_id"], "email": contoso["username"]}
    with httpx.Client(verify=str(ca_bundle)) as client:
        bought = client.post(
            f"{marketplace['control_url']}/purchases", json={"plan_id": "standard", "beneficiary": beneficiary}
        ).json()
        change = client.patch(
            f"{marketplace['fulfillment_base_url']}/subscriptions/{bought['subscription_id']}",
            params={"api-version": marketplace["api_version"]},
            headers={"Authorization": f"Bearer {publisher_token}"},
            json={"quantity": 3},
        )
    return {"subscriptionId": bought["subscription_id"], "operationId": change.headers.get("Operation-Id", "")}


def test_fuzzed_requests_answer_as_documented(
    spec: BaseSchema, publisher_token: str, fuzz_ids: dict[str, str], ca_bundle: Path
) -> None:
    @spec.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> st.SearchStrategy[Any]:
        """Half the time, the path names the real subscription (and operation)."""
        known = {name: fuzz_ids[name] for name in path_parameters or {} if name in fuzz_ids}
        if not known:
            return st.just(path_parameters)
        return st.one_of(st.just(path_parameters), st.just({**(path_parameters or {}), **known}))

    failures: list[str] = []
    for result in spec.get_all_operations():
        api_operation = result.ok()
        cases = st.one_of(
            api_operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            api_operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )

        @hypothesis.seed(FUZZ_SEED)
        @hypothesis.settings(
            max_examples=FUZZ_EXAMPLES,
            phases=[Phase.explicit, Phase.generate],
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases)
        def run(case: Case[Operation]) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {publisher_token}"}, checks=CHECKS, timeout=30, verify=str(ca_bundle)
            )

        try:
            run()
        except Exception as error:  # collect every operation's first failure, then report them all
            failures.append(f"{api_operation.method.upper()} {api_operation.path}: {error}")
    assert not failures, "\n\n".join(failures)

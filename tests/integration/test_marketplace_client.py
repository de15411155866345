"""The fulfilment client against the Marketplace emulator: paging as given, typed contract errors, UUID correlation ids.

A private emulator pair (Entra ID + Marketplace) with one subscription per page, so paging is exercised with a few
purchases; malformed answers come from the emulator's `malformed` fault, other implementations' shapes from its
quirks mode.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.correlation import CORRELATION_HEADER, correlation_scope
from core.marketplace.fulfillment_client import FulfillmentClient
from core.marketplace.http import MarketplaceContractError, MarketplaceError
from core.settings import DEFAULT_CATALOG_PATH
from emulators.entra import EntraEmulator
from emulators.marketplace import MarketplaceEmulator
from emulators.suite import EmulatorSuite, EmulatorSuiteConfig
from harness.emulator_environment import settings_for_emulators

CONTOSO_TENANT_ID = "c0a1b2c3-0000-4000-8000-00000000c0c0"


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorSuite]:
    config = EmulatorSuiteConfig(
        state_dir=tmp_path_factory.mktemp("client-emulators"),
        seed=20261207,
        catalog_path=DEFAULT_CATALOG_PATH,
        options={"marketplace_page_size": 1},
    )
    suite = EmulatorSuite(config)
    entra = EntraEmulator.from_suite_config(config)
    suite.add(entra)
    suite.add(MarketplaceEmulator.from_suite_config(config, entra))
    suite.start()
    yield suite
    suite.stop()


@pytest.fixture(scope="module")
def control(suite: EmulatorSuite) -> Iterator[httpx.Client]:
    state = suite.state()
    with httpx.Client(base_url=state["marketplace"]["control_url"], verify=state["ca_bundle"], timeout=15) as client:
        yield client


@pytest.fixture(scope="module")
def client(suite: EmulatorSuite) -> Iterator[FulfillmentClient]:
    fulfillment = FulfillmentClient.from_settings(
        settings_for_emulators(suite.state(), marketplace_backoff_initial_seconds=0.05)
    )
    yield fulfillment
    fulfillment.close()


@pytest.fixture(autouse=True)
def documented_behaviour(control: httpx.Client) -> Iterator[None]:
    yield
    control.delete("/faults").raise_for_status()
    control.put("/quirks", json={}).raise_for_status()


def _purchase(control: httpx.Client) -> str:
    response = control.post(
        "/purchases",
        json={
            "plan_id": "standard",
            "quantity": 2,
            "beneficiary": {"tenant_id": CONTOSO_TENANT_ID, "email": "admin@contoso.example", "object_id": "o1"},
        },
    )
    response.raise_for_status()
    return str(response.json()["subscription_id"])


def _count_requests(control: httpx.Client, path_pattern: str) -> int:
    """A zero-latency fault rule counts the requests it matches."""
    response = control.post("/faults", json={"kind": "latency", "method": "GET", "path_pattern": path_pattern})
    response.raise_for_status()
    return int(response.json()["id"])


def _hits(control: httpx.Client, rule_id: int) -> int:
    return next(int(rule["hits"]) for rule in control.get("/faults").json() if rule["id"] == rule_id)


def _malformed(control: httpx.Client, path_pattern: str, body: str, *, method: str = "GET") -> None:
    rule: dict[str, Any] = {"kind": "malformed", "method": method, "path_pattern": path_pattern, "body": body}
    control.post("/faults", json=rule).raise_for_status()


def test_list_subscriptions_follows_every_next_link_as_given_through_three_pages(
    control: httpx.Client, client: FulfillmentClient
) -> None:
    bought = [_purchase(control) for _ in range(3)]
    pages = _count_requests(control, r"^/api/saas/subscriptions$")
    listed = [subscription.id for subscription in client.list_subscriptions()]
    assert listed[-3:] == bought
    assert len(listed) == len(set(listed)) >= 3
    # One request per page: the continuationToken of each @nextLink reached the emulator (no first page again).
    assert _hits(control, pages) == len(listed)


def test_paging_stops_at_the_page_cap_and_on_a_link_seen_before(
    control: httpx.Client, client: FulfillmentClient, suite: EmulatorSuite
) -> None:
    for _ in range(3):
        _purchase(control)
    with pytest.raises(MarketplaceContractError, match="more than 2 pages"):
        client.list_subscriptions(max_pages=2)

    base = suite.state()["marketplace"]["fulfillment_base_url"]
    looping = f'{{"subscriptions": [], "@nextLink": "{base}/subscriptions?api-version=2018-08-31&continuationToken=7"}}'
    _malformed(control, r"^/api/saas/subscriptions$", looping)
    with pytest.raises(MarketplaceContractError, match="gave a @nextLink it gave before"):
        client.list_subscriptions()


def test_a_next_link_to_another_host_is_not_followed_with_our_token(
    control: httpx.Client, client: FulfillmentClient
) -> None:
    elsewhere = '{"subscriptions": [], "@nextLink": "https://127.0.0.2:1/api/saas/subscriptions?continuationToken=1"}'
    _malformed(control, r"^/api/saas/subscriptions$", elsewhere)
    with pytest.raises(MarketplaceContractError, match="link to another host"):
        client.list_subscriptions()


MALFORMED_SUBSCRIPTION_LISTS = {
    "not JSON": "<html>maintenance</html>",
    "a bare array": "[]",
    "subscriptions not a list": '{"subscriptions": "none"}',
    "an item without its required fields": '{"subscriptions": [{"id": "x"}]}',
    "a quantity that is not a number": (
        '{"subscriptions": [{"id": "x", "offerId": "o", "planId": "p", "saasSubscriptionStatus": "Subscribed",'
        ' "quantity": "many"}]}'
    ),
    "a nextLink that is not a string": '{"subscriptions": [], "@nextLink": 5}',
}


@pytest.mark.parametrize("body", MALFORMED_SUBSCRIPTION_LISTS.values(), ids=MALFORMED_SUBSCRIPTION_LISTS.keys())
def test_each_malformed_subscription_list_is_a_typed_contract_error(
    control: httpx.Client, client: FulfillmentClient, body: str
) -> None:
    _malformed(control, r"^/api/saas/subscriptions$", body)
    with pytest.raises(MarketplaceContractError, match="List Subscriptions answer does not follow"):
        client.list_subscriptions()


MALFORMED_OPERATION_LISTS = {
    "not JSON": "{",
    "null": "null",
    "operations not a list": '{"operations": {"id": "x"}}',
    "an operation without its required fields": '{"operations": [{"id": "x"}]}',
    "a bare array of strings": '["x"]',
}


@pytest.mark.parametrize("body", MALFORMED_OPERATION_LISTS.values(), ids=MALFORMED_OPERATION_LISTS.keys())
def test_each_malformed_operation_list_is_a_typed_contract_error(
    control: httpx.Client, client: FulfillmentClient, body: str
) -> None:
    subscription_id = _purchase(control)
    _malformed(control, r"/operations$", body)
    with pytest.raises(MarketplaceContractError, match="List Operations answer does not follow"):
        client.list_pending_operations(subscription_id)


def test_other_implementations_shapes_are_read_bare_operation_list_requested_source_equal_term_dates(
    control: httpx.Client, client: FulfillmentClient
) -> None:
    subscription_id = _purchase(control)
    control.post(f"/subscriptions/{subscription_id}/landing-token").raise_for_status()
    # Activate, so the customer can change the quantity: an InProgress operation to list.
    client.activate(subscription_id, "standard", 2)
    change = control.post(f"/subscriptions/{subscription_id}/change-quantity", json={"quantity": 3})
    change.raise_for_status()
    control.put(
        "/quirks", json={"bare_operations_list": True, "requested_source_spelling": True, "equal_term_dates": True}
    ).raise_for_status()

    [operation] = client.list_pending_operations(subscription_id)
    assert operation.id == change.json()["id"]
    assert operation.request_source == "Azure"
    assert client.get_operation(subscription_id, operation.id).request_source == "Azure"
    term = client.get_subscription(subscription_id).term
    assert term.start_date is not None
    assert term.end_date is not None
    # The answer's end equals its start; ours is derived from the term unit (P1M), as Microsoft's examples show.
    assert term.end_date > term.start_date
    assert (term.end_date - term.start_date).days in range(27, 31)


def test_correlation_ids_sent_to_marketplace_are_uuids(client: FulfillmentClient) -> None:
    ours = str(uuid.uuid4())
    with correlation_scope(ours):
        echoed = client.http.request("GET", "/subscriptions").headers[CORRELATION_HEADER]
    assert echoed == ours

    with correlation_scope("portal-req.42"):
        first = client.http.request("GET", "/subscriptions").headers[CORRELATION_HEADER]
        second = client.http.request("GET", "/subscriptions").headers[CORRELATION_HEADER]
    assert str(uuid.UUID(first)) == first
    assert first == second  # the same caller id always maps to the same UUID, so its calls stay joined


def test_a_token_whose_signing_key_entra_retired_is_replaced_once_and_the_call_succeeds(
    suite: EmulatorSuite, control: httpx.Client, client: FulfillmentClient
) -> None:
    """Entra can retire a signing key while tokens it signed are cached (an emergency rollover); Marketplace then
    refuses them. The client asks for a token issued from now on and sends the request once more."""
    subscription_id = _purchase(control)
    assert client.get_subscription(subscription_id).id == subscription_id  # a token is cached now
    state = suite.state()
    with httpx.Client(base_url=state["entra"]["control_url"], verify=state["ca_bundle"], timeout=15) as entra:
        entra.post("/keys/rotate").raise_for_status()
        assert entra.post("/keys/retire").json()["retired_kids"]
    subscriptions = _count_requests(control, f"/subscriptions/{subscription_id}$")

    assert client.get_subscription(subscription_id).id == subscription_id
    assert _hits(control, subscriptions) == 2  # the refused one, then the one with a fresh token


def test_a_refusal_that_a_fresh_token_does_not_cure_is_raised_after_one_more_try(
    control: httpx.Client, client: FulfillmentClient
) -> None:
    subscription_id = _purchase(control)
    refusal = {"kind": "status", "method": "GET", "path_pattern": f"/subscriptions/{subscription_id}$", "status": 403}
    rule_id = int(control.post("/faults", json=refusal).json()["id"])

    with pytest.raises(MarketplaceError) as refused:
        client.get_subscription(subscription_id)
    assert refused.value.status == 403
    assert _hits(control, rule_id) == 2

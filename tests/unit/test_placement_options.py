"""The pure choices behind the placement pickers: which subscriptions and regions are offered, which is picked."""

from __future__ import annotations

from core.azure.subscriptions import ListedLocation, ListedSubscription, SubscriptionReader
from core.clusters.placement_options import (
    PlacementSources,
    SubscriptionChoice,
    offerable_subscriptions,
    physical_regions,
    placement_options,
    selected_subscription,
)
from core.identity.sign_in import DelegatedAccessRefused

TENANT = "3f8b2a61-9d4e-4c7a-8e15-2b6c9d0a4f71"
OTHER_TENANT = "c5d9e0f2-1a3b-4d6c-9f8e-7b2a5c4d3e10"


def _subscription(subscription_id: str, name: str, state: str = "Enabled", tenant: str = TENANT) -> ListedSubscription:
    return ListedSubscription(subscription_id, name, state, tenant)


def test_only_usable_subscriptions_of_the_persons_tenant_that_our_consent_covers_are_offered_by_name() -> None:
    listed = [
        _subscription("B-1", "Production"),
        _subscription("a-2", "analytics"),
        _subscription("c-3", "Lab"),  # we have no role there
        _subscription("d-4", "Old", state="Disabled"),  # read-only in ARM
        _subscription("e-5", "Guest", tenant=OTHER_TENANT),  # the person is a guest in another tenant
        _subscription("f-6", "Past due", state="PastDue"),
    ]
    consented = ["b-1", "A-2", "d-4", "e-5", "f-6"]
    assert offerable_subscriptions(listed, consented, TENANT.upper()) == [
        SubscriptionChoice("a-2", "analytics"),
        SubscriptionChoice("f-6", "Past due"),
        SubscriptionChoice("B-1", "Production"),
    ]


def test_only_physical_regions_are_offered_in_arms_order() -> None:
    listed = [
        ListedLocation("westeurope", "West Europe", "(Europe) West Europe", "Physical"),
        ListedLocation("global", "Global", "Global", "Logical"),
        ListedLocation("eastus", "East US", "", "Physical"),
    ]
    assert [(region.name, region.display_name) for region in physical_regions(listed)] == [
        ("westeurope", "(Europe) West Europe"),
        ("eastus", "East US"),
    ]


def test_the_requested_subscription_is_picked_only_among_the_choices() -> None:
    choices = [SubscriptionChoice("a-2", "analytics"), SubscriptionChoice("B-1", "Production")]
    assert selected_subscription(choices, " b-1 ") == "B-1"
    assert selected_subscription(choices, "someone-elses") == "a-2"
    assert selected_subscription(choices, None) == "a-2"
    assert selected_subscription([], "b-1") is None


def _sources(delegated_token: object, now: float) -> PlacementSources:
    def token(timeout_seconds: float) -> str:
        assert timeout_seconds > 0
        if isinstance(delegated_token, Exception):
            raise delegated_token
        return str(delegated_token)

    def unreachable() -> str:
        raise AssertionError("no call to Entra or ARM was expected")

    # An address nothing listens on: any call the budget should have prevented would fail the test loudly.
    reader = SubscriptionReader("https://127.0.0.1:9", verify=True)
    return PlacementSources(reader=reader, delegated_token=token, app_token=unreachable, clock=lambda: now)


def test_a_refused_delegated_token_gives_a_note_instead_of_lists() -> None:
    options = placement_options(_sources(DelegatedAccessRefused("consent_required"), 0.0), TENANT, None, 10.0)
    assert (options.subscriptions, options.regions, options.default_region) == ((), (), None)
    assert options.note is not None
    assert "Type the subscription id and region instead" in options.note


def test_no_call_starts_once_the_pages_budget_is_spent() -> None:
    options = placement_options(_sources("token", now=9.9), TENANT, None, deadline=10.0)
    assert options.subscriptions == ()
    assert options.note is not None

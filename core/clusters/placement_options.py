"""Choices offered where a customer admin places a cluster: their subscriptions that our consent covers, and the
chosen subscription's physical regions, read from ARM with the admin's delegated token.

Only an offer: the form keeps free typing, and whatever comes back is checked by `check_placement` exactly as a
typed value. So every failure here (no delegated consent, Entra or ARM refusing, throttling, the page's time
budget spent) gives choices without lists and a note, never an error page.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from core.azure.subscriptions import ArmListingFailed, ListedLocation, ListedSubscription, SubscriptionReader
from core.errors import ControlPlaneError

# ARM's subscription states in which resources can still be created (Disabled and Deleted are read-only).
USABLE_STATES = frozenset({"enabled", "warned", "pastdue"})
# Below this much time left in the page's budget we do not start another call to Entra or ARM.
MIN_SECONDS_FOR_A_CALL = 0.3
TYPE_INSTEAD = "Type the subscription id and region instead."


@dataclass(frozen=True)
class SubscriptionChoice:
    """A subscription the person sees and our consent covers."""

    subscription_id: str
    display_name: str


@dataclass(frozen=True)
class RegionChoice:
    """A physical region of the chosen subscription."""

    name: str
    display_name: str


@dataclass(frozen=True)
class PlacementOptions:
    """What the form offers; empty lists with a `note` when they could not be had."""

    subscriptions: tuple[SubscriptionChoice, ...] = ()
    selected_subscription: str | None = None
    regions: tuple[RegionChoice, ...] = ()
    note: str | None = None

    @property
    def default_region(self) -> str | None:
        """The region the form starts with: the first ARM lists (it lists recommended regions first)."""
        return self.regions[0].name if self.regions else None


@dataclass
class PlacementSources:
    """Where the lists come from; the callables raise ControlPlaneError when they cannot answer."""

    reader: SubscriptionReader
    # The signed-in person's delegated ARM token, within the seconds given (raises when Entra will not give one).
    delegated_token: Callable[[float], str]
    # The control-plane app's ARM token in the person's tenant: what our consent covers.
    app_token: Callable[[], str]
    clock: Callable[[], float] = field(default=time.monotonic)


def offerable_subscriptions(
    listed: Iterable[ListedSubscription], consented_ids: Iterable[str], tenant_id: str
) -> list[SubscriptionChoice]:
    """The person's usable subscriptions of their own tenant that the app may deploy to, by name then id."""
    consented = {subscription_id.lower() for subscription_id in consented_ids}
    choices = {
        item.subscription_id.lower(): SubscriptionChoice(item.subscription_id, item.display_name)
        for item in listed
        if item.subscription_id.lower() in consented
        and item.state.lower() in USABLE_STATES
        # ARM lists subscriptions of other tenants the person is a guest in; the cluster goes in their own tenant.
        and (not item.tenant_id or item.tenant_id.lower() == tenant_id.lower())
    }
    return sorted(choices.values(), key=lambda choice: (choice.display_name.lower(), choice.subscription_id.lower()))


def physical_regions(listed: Iterable[ListedLocation]) -> list[RegionChoice]:
    """Regions a resource can be placed in (regionType Physical; Logical ones such as "global" cannot), ARM's order."""
    return [
        RegionChoice(item.name, item.regional_display_name or item.display_name)
        for item in listed
        if item.region_type.lower() == "physical"
    ]


def selected_subscription(choices: list[SubscriptionChoice], requested: str | None) -> str | None:
    """The requested subscription when it is one of the choices, else the first choice."""
    wanted = (requested or "").strip().lower()
    for choice in choices:
        if choice.subscription_id.lower() == wanted:
            return choice.subscription_id
    return choices[0].subscription_id if choices else None


def placement_options(
    sources: PlacementSources, tenant_id: str, requested_subscription: str | None, deadline: float
) -> PlacementOptions:
    """The choices for a person of `tenant_id`, read before `deadline` (a `sources.clock` time)."""

    def time_left() -> float:
        left = deadline - sources.clock()
        if left < MIN_SECONDS_FOR_A_CALL:
            raise ArmListingFailed("the page's time budget is spent")
        return left

    try:
        token = sources.delegated_token(time_left())
        listed = sources.reader.subscriptions(token, time_left())
        time_left()
        consented = [item.subscription_id for item in sources.reader.subscriptions(sources.app_token(), time_left())]
    except ControlPlaneError:
        return PlacementOptions(note=f"We could not list your Azure subscriptions just now. {TYPE_INSTEAD}")
    choices = offerable_subscriptions(listed, consented, tenant_id)
    if not choices:
        return PlacementOptions(
            note="None of the Azure subscriptions you can see has granted our application access yet. Ask your "
            f"administrator to give it the Contributor role on one, or {TYPE_INSTEAD.lower()}"
        )
    selected = selected_subscription(choices, requested_subscription)
    assert selected is not None
    try:
        regions = physical_regions(sources.reader.locations(token, selected, time_left()))
    except ControlPlaneError:
        return PlacementOptions(
            tuple(choices), selected, note="We could not list the regions of this subscription just now: type one."
        )
    return PlacementOptions(tuple(choices), selected, tuple(regions))

"""The regions ARM offers a subscription (Subscriptions - List Locations) and the resource-group rules tied to them."""

from __future__ import annotations

import re
from typing import Any

from emulators.arm.errors import ArmError

# Physical regions of the Azure public cloud a pay-as-you-go subscription lists: (name, display name, geography).
PUBLIC_REGIONS: tuple[tuple[str, str, str], ...] = (
    ("eastus", "East US", "United States"),
    ("eastus2", "East US 2", "United States"),
    ("westus", "West US", "United States"),
    ("westus2", "West US 2", "United States"),
    ("westus3", "West US 3", "United States"),
    ("centralus", "Central US", "United States"),
    ("northcentralus", "North Central US", "United States"),
    ("southcentralus", "South Central US", "United States"),
    ("westcentralus", "West Central US", "United States"),
    ("canadacentral", "Canada Central", "Canada"),
    ("canadaeast", "Canada East", "Canada"),
    ("brazilsouth", "Brazil South", "Brazil"),
    ("northeurope", "North Europe", "Europe"),
    ("westeurope", "West Europe", "Europe"),
    ("uksouth", "UK South", "United Kingdom"),
    ("ukwest", "UK West", "United Kingdom"),
    ("francecentral", "France Central", "France"),
    ("germanywestcentral", "Germany West Central", "Germany"),
    ("switzerlandnorth", "Switzerland North", "Switzerland"),
    ("norwayeast", "Norway East", "Norway"),
    ("swedencentral", "Sweden Central", "Sweden"),
    ("polandcentral", "Poland Central", "Poland"),
    ("italynorth", "Italy North", "Italy"),
    ("spaincentral", "Spain Central", "Spain"),
    ("uaenorth", "UAE North", "United Arab Emirates"),
    ("southafricanorth", "South Africa North", "South Africa"),
    ("centralindia", "Central India", "India"),
    ("southindia", "South India", "India"),
    ("eastasia", "East Asia", "Asia Pacific"),
    ("southeastasia", "Southeast Asia", "Asia Pacific"),
    ("japaneast", "Japan East", "Japan"),
    ("japanwest", "Japan West", "Japan"),
    ("koreacentral", "Korea Central", "Korea"),
    ("australiaeast", "Australia East", "Australia"),
    ("australiasoutheast", "Australia Southeast", "Australia"),
)
REGION_NAMES = frozenset(name for name, _, _ in PUBLIC_REGIONS)
# ARM's rule: 1-90 of letters (any script), digits, '_', '-', '.', '(' and ')', not ending in a period.
_GROUP_NAME = re.compile(r"^[-\w.()]{1,90}$")


def normalized_location(location: str) -> str:
    """ARM accepts a display name ("West Europe") for the programmatic one ("westeurope")."""
    return location.lower().replace(" ", "")


def list_locations(subscription_id: str) -> dict[str, Any]:
    """The body of GET /subscriptions/{id}/locations."""
    return {
        "value": [
            {
                "id": f"/subscriptions/{subscription_id}/locations/{name}",
                "name": name,
                "displayName": display_name,
                "regionalDisplayName": f"({geography}) {display_name}",
                "type": "Region",
                "metadata": {"regionType": "Physical", "regionCategory": "Recommended", "geography": geography},
            }
            for name, display_name, geography in PUBLIC_REGIONS
        ]
    }


def check_resource_group_name(name: str) -> None:
    """ARM's 400 for a resource group name outside its rules."""
    if not _GROUP_NAME.fullmatch(name) or name.endswith("."):
        raise ArmError(
            400,
            "InvalidResourceGroup",
            f"The provided resource group name '{name}' has these invalid characters or length. The name can only "
            "be a letter, digit, '-', '.', '(', ')' or '_', at most 90 characters, and cannot end with a period.",
        )


def check_resource_group_location(location: str) -> str:
    """The normalized location, or ARM's 400 for a region the subscription does not offer."""
    normalized = normalized_location(location)
    if normalized not in REGION_NAMES:
        raise ArmError(
            400,
            "LocationNotAvailableForResourceGroup",
            f"The provided location '{location}' is not available for resource group. List of available regions is "
            f"'{','.join(name for name, _, _ in PUBLIC_REGIONS)}'.",
        )
    return normalized

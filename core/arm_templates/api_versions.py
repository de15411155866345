"""API version freshness: the age limit and the versions allowed past it because nothing newer is stable."""

from __future__ import annotations

import re
from datetime import date

# The ARM template test toolkit's limit: an API version older than this is outdated.
MAXIMUM_AGE_DAYS = 730

API_VERSION_PATTERN = re.compile(r"^(?P<date>\d{4}-\d{2}-\d{2})(?P<suffix>-(preview|privatepreview|beta|alpha))?$")

# (lower-case resource type, api version) -> why it is allowed although it is outdated or a preview.
# Each entry must be the newest stable (or, where there is none, the newest published) version of its type.
NEWEST_STABLE_ALLOW_LIST: dict[tuple[str, str], str] = {
    ("microsoft.authorization/roleassignments", "2022-04-01"): (
        "Newest stable version of role assignments; every later version is a preview."
    ),
    ("microsoft.network/privatednszones", "2024-06-01"): "Newest stable version of private DNS zones.",
    ("microsoft.network/privatednszones/a", "2024-06-01"): "Newest stable version of private DNS record sets.",
    ("microsoft.network/privatednszones/virtualnetworklinks", "2024-06-01"): (
        "Newest stable version of private DNS virtual network links."
    ),
    ("microsoft.managedidentity/userassignedidentities", "2024-11-30"): (
        "Newest stable version of user-assigned identities; 2025-01-31-preview is a preview."
    ),
    # The publisher deployment (deploy/controlplane.json); each the newest stable version Microsoft lists.
    ("microsoft.insights/datacollectionendpoints", "2024-03-11"): (
        "Newest stable version of data collection endpoints."
    ),
    ("microsoft.insights/datacollectionrules", "2024-03-11"): "Newest stable version of data collection rules.",
    ("microsoft.dbforpostgresql/flexibleservers", "2024-08-01"): (
        "Newest stable version of PostgreSQL flexible servers; later versions are previews."
    ),
    ("microsoft.dbforpostgresql/flexibleservers/databases", "2024-08-01"): (
        "Newest stable version of PostgreSQL flexible server databases."
    ),
    ("microsoft.dbforpostgresql/flexibleservers/firewallrules", "2024-08-01"): (
        "Newest stable version of PostgreSQL flexible server firewall rules."
    ),
    ("microsoft.cache/redis", "2024-11-01"): "Newest stable version of Azure Cache for Redis.",
    ("microsoft.insights/diagnosticsettings", "2021-05-01-preview"): (
        "Newest published version of diagnostic settings; the only stable one (2016-09-01) predates metric "
        "settings and category groups."
    ),
}


def api_version_date(api_version: str) -> date | None:
    """The release date encoded in an API version, or None when the text is not an API version."""
    match = API_VERSION_PATTERN.match(api_version)
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group("date"))
    except ValueError:
        return None


def is_preview(api_version: str) -> bool:
    """True for preview, private preview, alpha and beta API versions."""
    match = API_VERSION_PATTERN.match(api_version)
    return bool(match and match.group("suffix"))


def is_allow_listed(resource_type: str, api_version: str) -> bool:
    """True when this type and version are recorded as the newest stable (or newest published) version."""
    return (resource_type.lower(), api_version.lower()) in NEWEST_STABLE_ALLOW_LIST

"""What ARM lists for one caller: its subscriptions and a subscription's locations (Subscriptions API).

Used to offer choices to a person waiting on a page, so each call gets the time left of the page's budget and
is never retried: a throttled, slow or refusing ARM means "no choices now", never a wait. The bearer token is
either a person's delegated token (what they can see) or the control-plane app's (what our consent covers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError

from core.errors import ControlPlaneError

SUBSCRIPTIONS_API_VERSION = "2022-12-01"
# More pages than this of subscriptions is a directory no picker helps with; typing stays possible.
MAX_PAGES = 5


class ArmListingFailed(ControlPlaneError):
    """ARM did not list what was asked (refused, throttled, failing or too slow); `reason` says which."""

    status_code = 503
    code = "ArmListingFailed"


@dataclass(frozen=True)
class ListedSubscription:
    """One item of Subscriptions - List."""

    subscription_id: str
    display_name: str
    state: str
    tenant_id: str


@dataclass(frozen=True)
class ListedLocation:
    """One item of Subscriptions - List Locations."""

    name: str
    display_name: str
    regional_display_name: str
    region_type: str


def bearer_token(credential: TokenCredential, scope: str) -> str:
    """An access token of an azure-identity credential; ArmListingFailed when Entra will not issue it."""
    try:
        return credential.get_token(scope).token
    except AzureError as error:
        # Raised before any ARM call: e.g. the tenant has not consented to the app.
        raise ArmListingFailed(f"no token for ARM ({type(error).__name__})") from None


class SubscriptionReader:
    """GETs against ARM's Subscriptions API with a bearer token and a timeout per call."""

    def __init__(self, arm_endpoint: str, verify: str | bool) -> None:
        self.base_url = arm_endpoint.rstrip("/")
        self.verify = verify

    def subscriptions(self, token: str, timeout_seconds: float) -> list[ListedSubscription]:
        """The subscriptions the token's principal can see, across nextLink pages."""
        found: list[ListedSubscription] = []
        url: str | None = f"{self.base_url}/subscriptions?api-version={SUBSCRIPTIONS_API_VERSION}"
        for _ in range(MAX_PAGES):
            if url is None:
                break
            page = self._get(url, token, timeout_seconds)
            for item in _items(page):
                if item.get("subscriptionId"):
                    found.append(
                        ListedSubscription(
                            subscription_id=str(item["subscriptionId"]),
                            display_name=str(item.get("displayName") or item["subscriptionId"]),
                            state=str(item.get("state") or ""),
                            tenant_id=str(item.get("tenantId") or ""),
                        )
                    )
            next_link = page.get("nextLink")
            url = str(next_link) if next_link else None
        return found

    def locations(self, token: str, subscription_id: str, timeout_seconds: float) -> list[ListedLocation]:
        """The locations ARM offers the subscription, in ARM's order."""
        url = (
            f"{self.base_url}/subscriptions/{quote(subscription_id, safe='')}/locations"
            f"?api-version={SUBSCRIPTIONS_API_VERSION}"
        )
        return [
            ListedLocation(
                name=str(item["name"]),
                display_name=str(item.get("displayName") or item["name"]),
                regional_display_name=str(item.get("regionalDisplayName") or item.get("displayName") or item["name"]),
                region_type=str((item.get("metadata") or {}).get("regionType") or ""),
            )
            for item in _items(self._get(url, token, timeout_seconds))
            if item.get("name")
        ]

    def _get(self, url: str, token: str, timeout_seconds: float) -> dict[str, Any]:
        if timeout_seconds <= 0:
            raise ArmListingFailed("no time left to ask ARM")
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            with httpx.Client(verify=self.verify, timeout=timeout_seconds) as client:
                response = client.get(url, headers=headers)
        except httpx.HTTPError as error:
            raise ArmListingFailed(f"ARM did not answer in time ({type(error).__name__})") from None
        if response.status_code != 200:
            raise ArmListingFailed(f"ARM answered {response.status_code} {_error_code(response)}".rstrip())
        try:
            body = response.json()
        except ValueError:
            raise ArmListingFailed("ARM answered something other than JSON") from None
        if not isinstance(body, dict):
            raise ArmListingFailed("ARM answered an unexpected body")
        return body


def _items(page: dict[str, Any]) -> list[dict[str, Any]]:
    value = page.get("value")
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _error_code(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return ""
    return str(error.get("code") or "") if isinstance(error, dict) else ""

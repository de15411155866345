"""X-Forwarded-For/Proto are honoured only from the configured trusted proxies (none by default).

Real API processes; each test speaks from its own loopback address (127.0.0.x), so the peer the API sees is
exactly the address the test chose. The portal allows a burst of 3 per client, so rotating forged
X-Forwarded-For values would show at once if they were believed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from core.settings import Settings
from tests.conftest import start_api

pytestmark = pytest.mark.timeout(120)

BURST = 3
TRUSTED_PROXY = "127.0.0.31"
# Loopback itself: what uvicorn trusts unless told otherwise.
UNTRUSTED_PEER = "127.0.0.1"


@pytest.fixture(scope="module")
def api_behind_a_proxy(tmp_path_factory: pytest.TempPathFactory, base_settings: Settings) -> Iterator[str]:
    """An API that trusts one proxy address, with a portal limit of a burst of 3 at 1 request/s."""
    group, base_url = start_api(
        tmp_path_factory.mktemp("proxy-logs"),
        base_settings,
        CP_TRUSTED_PROXIES=TRUSTED_PROXY,
        CP_RATE_LIMIT_PORTAL_PER_SECOND="1",
        CP_RATE_LIMIT_PORTAL_BURST=str(BURST),
    )
    yield base_url
    group.stop_all()


def client_from(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def statuses_with_rotating_forwarded_for(http: httpx.Client, url: str, count: int) -> list[int]:
    """Each request claims to come from another client."""
    return [http.get(url, headers={"X-Forwarded-For": f"203.0.113.{index + 1}"}).status_code for index in range(count)]


def test_no_proxy_is_trusted_by_default() -> None:
    assert Settings.model_fields["trusted_proxies"].default == ""


def test_forwarded_proto_from_an_untrusted_peer_does_not_switch_on_hsts(api_base_url: str) -> None:
    # The module's default API process: loopback is not a trusted proxy either.
    response = httpx.get(f"{api_base_url}/portal", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    assert "Strict-Transport-Security" not in response.headers
    assert response.headers["Content-Security-Policy"]  # the portal's headers are there, only HSTS is not


def test_rotating_forwarded_for_from_an_untrusted_peer_does_not_defeat_the_per_client_limit(
    api_behind_a_proxy: str,
) -> None:
    with client_from(UNTRUSTED_PEER) as attacker:
        statuses = statuses_with_rotating_forwarded_for(attacker, f"{api_behind_a_proxy}/portal", BURST + 3)
    assert 429 in statuses, statuses
    assert statuses.index(429) <= BURST + 1


def test_a_trusted_proxy_names_the_client_and_the_scheme(api_behind_a_proxy: str) -> None:
    with client_from(TRUSTED_PROXY) as proxy:
        # Distinct clients behind the proxy each have their own bucket: none of them is limited.
        statuses = statuses_with_rotating_forwarded_for(proxy, f"{api_behind_a_proxy}/portal", BURST + 3)
        assert 429 not in statuses, statuses
        client = f"198.51.100.{uuid.uuid4().int % 200 + 1}"
        response = proxy.get(
            f"{api_behind_a_proxy}/portal", headers={"X-Forwarded-For": client, "X-Forwarded-Proto": "https"}
        )
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.parametrize("value", ["*", "proxy.internal", "10.0.0.0/33"])
def test_only_addresses_and_networks_can_be_trusted(base_settings: Settings, value: str) -> None:
    with pytest.raises(ValueError, match="not an IP address or network"):
        Settings.model_validate(
            {
                "trusted_proxies": value,
                "publisher_tenant_id": "t",
                "publisher_client_id": "c",
                "use_workload_identity": True,
            }
        )

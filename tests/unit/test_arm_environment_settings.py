"""The ARM client reads proxy and CA settings from the environment once, as requests would on every call."""

from __future__ import annotations

import pytest

from core.azure.arm import environment_http_settings

ARM = "https://management.azure.com"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def test_no_proxy_and_the_given_verification_without_environment() -> None:
    assert environment_http_settings(ARM, True) == {"proxies": None, "connection_verify": True}


def test_https_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")

    settings = environment_http_settings(ARM, True)

    assert settings["proxies"] == {"https": "http://proxy.internal:3128"}


def test_no_proxy_exempts_the_arm_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "management.azure.com")

    assert environment_http_settings(ARM, True)["proxies"] is None


def test_ca_bundle_from_the_environment_only_when_verification_is_not_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corporate.pem")

    assert environment_http_settings(ARM, True)["connection_verify"] == "/etc/ssl/corporate.pem"
    assert environment_http_settings(ARM, "/srv/emulator-ca.pem")["connection_verify"] == "/srv/emulator-ca.pem"
    assert environment_http_settings(ARM, False)["connection_verify"] is False

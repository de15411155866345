"""Liveness, readiness and correlation ids, against a real API process."""

from __future__ import annotations

from pathlib import Path

import httpx

from core.settings import Settings
from tests.conftest import start_api


def test_healthz_answers(api_base_url: str) -> None:
    response = httpx.get(f"{api_base_url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_database_and_broker(api_base_url: str) -> None:
    response = httpx.get(f"{api_base_url}/readyz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "schema": "ok", "broker": "ok"}}


def test_correlation_id_is_echoed_or_generated(api_base_url: str) -> None:
    echoed = httpx.get(f"{api_base_url}/healthz", headers={"x-ms-correlationid": "abc-123"})
    assert echoed.headers["x-ms-correlationid"] == "abc-123"
    generated = httpx.get(f"{api_base_url}/healthz", headers={"x-ms-correlationid": "bad value with spaces"})
    assert generated.headers["x-ms-correlationid"] not in ("", "bad value with spaces")


def test_unknown_route_is_a_json_404(api_base_url: str) -> None:
    response = httpx.get(f"{api_base_url}/no/such/route")
    assert response.status_code == 404


def test_readyz_names_an_unreachable_broker(tmp_path: Path, base_settings: Settings) -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    group, base_url = start_api(tmp_path, base_settings, CP_BROKER_URL="redis://127.0.0.1:9/0")
    try:
        response = httpx.get(f"{base_url}/readyz", timeout=30)
    finally:
        group.stop_all()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("unreachable")

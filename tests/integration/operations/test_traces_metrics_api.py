"""Real processes: an operator asks for a probe through the API; one trace spans API -> outbox -> worker -> Blob.

Also: /metrics exposes the named metrics and its database gauges move; the SLO API answers operators
for every cluster and customer admins for their own tenant's only.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from core.db import Database
from core.probes.models import BlobProbeSample
from core.settings import Settings
from emulators.entra import EntraEmulator
from emulators.suite import EmulatorSuite
from harness.azurite import Azurite
from harness.processes import ProcessGroup
from tests.conftest import start_api
from tests.integration.operations.conftest import plant_ready_cluster
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.timeout(120), pytest.mark.broker]


@pytest.fixture
def running_control_plane(
    database: Database, operations_settings: Settings, azurite: Azurite, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """API, worker and relay processes writing spans to one JSON-lines file; stopped after the test."""
    traces_path = tmp_path / "traces.jsonl"
    overrides = {
        "CP_TELEMETRY_TRACES_EXPORTER": "jsonl",
        "CP_TELEMETRY_TRACES_PATH": str(traces_path),
        "CP_BLOB_PROBE_ENDPOINT_TEMPLATE": azurite.endpoint_template,
        "CP_BLOB_PROBE_ACCOUNT_NAME": azurite.account_name,
        "CP_BLOB_PROBE_ACCOUNT_KEY": azurite.account_key,
    }
    api_group, base_url = start_api(tmp_path / "api-logs", operations_settings, **overrides)
    workers = ProcessGroup(
        tmp_path / "worker-logs", {**os.environ, **operations_settings.as_environment(), **overrides}
    )
    workers.add("worker", "worker", "--concurrency=2")
    workers.add("relay", "relay")
    workers.start_all()
    try:
        yield base_url, traces_path
    finally:
        workers.stop_all()
        api_group.stop_all()


def bearer(entra: EntraEmulator, tenant_id: str, *, operator: bool) -> dict[str, str]:
    claims: dict[str, Any] = {
        "oid": str(uuid.uuid4()),
        "name": "Test user",
        "idtyp": "user",
        "scp": "user_impersonation",
    }
    if operator:
        claims["roles"] = ["Operator"]
    token = entra.mint_access_token(
        tenant_id=tenant_id,
        audience=entra.control_plane_app.app_id,
        client_id=entra.control_plane_app.app_id,
        extra_claims=claims,
    )
    return {"Authorization": f"Bearer {token}"}


def metric_value(exposition: str, name: str, labels: str = "") -> float | None:
    match = re.search(rf"^{re.escape(name + labels)} ([0-9.e+-]+)$", exposition, re.MULTILINE)
    return float(match.group(1)) if match else None


def read_spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_one_trace_from_api_through_outbox_to_blob_calls_with_metrics_and_slo_api(
    database: Database,
    emulator_suite: EmulatorSuite,
    azurite: Azurite,
    running_control_plane: tuple[str, Path],
) -> None:
    base_url, traces_path = running_control_plane
    entra = emulator_suite.components["entra"]
    assert isinstance(entra, EntraEmulator)
    customer_tenant = entra.directory.tenant_by_key("contoso").id
    other_tenant = entra.directory.tenant_by_key("fabrikam").id
    cluster = plant_ready_cluster(database, azurite.endpoint_fqdn, entra_tenant_id=customer_tenant)
    operator = bearer(entra, entra.publisher_tenant.id, operator=True)

    with httpx.Client(base_url=base_url, timeout=15) as client:
        before = client.get("/metrics").text
        for name in (
            "cp_webhooks_received_total",
            "cp_operations_total",
            "cp_controller_step_seconds",
            "cp_arm_calls_total",
        ):
            assert f"# TYPE {name.removesuffix('_total')}" in before
        assert metric_value(before, "cp_clusters", '{status="ready"}') == 1.0

        refused = client.post(
            f"/api/operations/clusters/{cluster.id}/blob-probe", headers=bearer(entra, customer_tenant, operator=False)
        )
        assert refused.status_code == 403
        accepted = client.post(f"/api/operations/clusters/{cluster.id}/blob-probe", headers=operator)
        assert accepted.status_code == 202, accepted.text

        def probe_samples() -> list[BlobProbeSample]:
            with database.session() as session:
                return list(session.exec(select(BlobProbeSample).where(BlobProbeSample.cluster_id == cluster.id)).all())

        samples = wait_for(probe_samples, timeout_seconds=60, what="the worker's probe samples")
        assert all(sample.succeeded for sample in samples)
        after = client.get("/metrics").text
        audited = metric_value(after, "cp_audit_events", '{outcome="success"}') or 0.0
        assert audited >= (metric_value(before, "cp_audit_events", '{outcome="success"}') or 0.0) + 1
        assert metric_value(after, "cp_outbox_backlog") == 0.0

        # The trace: the API's server span, the worker's consumer span, and the worker's Blob SDK calls.
        def probe_trace() -> list[dict[str, Any]] | None:
            spans = read_spans(traces_path)
            consumers = [s for s in spans if s["name"] == "outbox.consume operations.blob_probe_cluster"]
            return [s for s in spans if s["trace_id"] == consumers[0]["trace_id"]] if consumers else None

        trace = wait_for(probe_trace, what="the consumer span")
        consumer = next(s for s in trace if s["name"] == "outbox.consume operations.blob_probe_cluster")
        [server] = [s for s in trace if s["kind"] == "SERVER"]
        assert server["name"] == "POST /api/operations/clusters/{cluster_id}/blob-probe"
        assert (
            server["attributes"].get("http.status_code", server["attributes"].get("http.response.status_code")) == 202
        )
        assert consumer["instance"] != server["instance"]  # two processes, one trace
        assert consumer["instance"].startswith("worker-")
        assert server["instance"].startswith("api-")
        blob_calls = [s for s in trace if s["kind"] == "CLIENT" and s["instance"] == consumer["instance"]]
        assert len(blob_calls) >= len(samples), sorted({s["name"] for s in trace})

        # The SLO API: operators and the cluster's own tenant see it; another tenant gets 404.
        status = client.get(f"/api/operations/slo/clusters/{cluster.id}", headers=operator)
        assert status.status_code == 200, status.text
        body = status.json()
        assert body["latest_probe"]["passed"] is True
        assert {item["name"] for item in body["objectives"]} == {"availability", "latency"}
        own = client.get(
            f"/api/operations/slo/clusters/{cluster.id}", headers=bearer(entra, customer_tenant, operator=False)
        )
        assert own.status_code == 200
        other = client.get(
            f"/api/operations/slo/clusters/{cluster.id}", headers=bearer(entra, other_tenant, operator=False)
        )
        assert other.status_code == 404
        assert client.get(f"/api/operations/slo/clusters/{cluster.id}").status_code == 401
        series = client.get(
            f"/api/operations/slo/clusters/{cluster.id}/series",
            params={"hours": 1, "bucket_minutes": 15},
            headers=operator,
        )
        assert series.status_code == 200
        assert sum(point["total"] for point in series.json()["points"]) == len(samples)
        invalid = client.get(f"/api/operations/slo/clusters/{cluster.id}/series", params={"hours": 0}, headers=operator)
        assert invalid.status_code == 422

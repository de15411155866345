"""The sandbox's operations part: Azurite as a demo cluster's Blob endpoint, a probe through the outbox,
then the number of spans recorded, a /metrics excerpt and the demo cluster's SLO status."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import typer
from pydantic import SecretStr
from sqlmodel import select

from core.clusters.models import Cluster, ClusterStatus
from core.db import Database
from core.outbox.service import enqueue
from core.probes.models import BlobProbeSample
from core.settings import Settings
from core.slo.service import cluster_slo_status
from core.task_payloads import ProbeClusterBlob
from core.tenants.models import Tenant
from harness.azurite import Azurite, azurite_available

METRICS_EXCERPT_PREFIXES = ("cp_outbox_", "cp_clusters", "cp_audit_events", "cp_marketplace_operations")


def start_azurite(data_dir: Path) -> Azurite | None:
    """Azurite on a free port when node and tools/node are installed; None (with a note) otherwise."""
    if not azurite_available():
        typer.echo("  (azurite not installed: `npm ci` in tools/node enables the Blob probe demo)")
        return None
    azurite = Azurite(data_dir / "logs" / "azurite.log")
    azurite.log_path.parent.mkdir(parents=True, exist_ok=True)
    azurite.start()
    return azurite


def sandbox_overrides(settings: Settings, azurite: Azurite | None) -> dict[str, Any]:
    """Spans to a JSON-lines file; with Azurite, the probe's endpoint template and generated account."""
    overrides: dict[str, Any] = {
        "telemetry_traces_exporter": "jsonl",
        "telemetry_traces_path": (settings.data_dir / "traces.jsonl").resolve(),
    }
    if azurite is not None:
        overrides.update(
            blob_probe_endpoint_template=azurite.endpoint_template,
            blob_probe_account_name=azurite.account_name,
            blob_probe_account_key=SecretStr(azurite.account_key),
        )
    return overrides


def run_operations_demo(database: Database, settings: Settings, azurite: Azurite | None, base_url: str) -> bool:
    """Probe a demo cluster through the pipeline (when Azurite runs) and print traces, metrics and SLO status.

    True when the probe passed, or was not run (no Azurite on this machine: the sandbox says so when starting it).
    """
    cluster_id = None
    if azurite is not None:
        cluster_id = _plant_demo_cluster(database, azurite)
        with database.session() as session:
            enqueue(session, ProbeClusterBlob(cluster_id=cluster_id))
        _wait_for_samples(database, cluster_id, timeout_seconds=60)
    traces_path = settings.telemetry_traces_path
    span_lines = traces_path.read_text().splitlines() if traces_path and traces_path.exists() else []
    typer.echo(f"  traces         {len(span_lines)} spans in {traces_path}")
    exposition = httpx.get(f"{base_url}/metrics", timeout=10).text
    excerpt = [line for line in exposition.splitlines() if line.startswith(METRICS_EXCERPT_PREFIXES)]
    typer.echo("  /metrics       " + "\n                 ".join(excerpt[:12]))
    if cluster_id is None:
        return True
    with database.session() as session:
        cluster = session.get(Cluster, cluster_id)
        assert cluster is not None
        status = cluster_slo_status(session, settings, cluster)
    probe = status["latest_probe"]
    outcome = "passed" if probe and probe["passed"] else f"failed at {probe and probe['failed_check']}"
    typer.echo(f"  blob probe     {outcome} ({len(probe['checks']) if probe else 0} checks against Azurite)")
    for objective in status["objectives"]:
        typer.echo(
            f"  SLO            {objective['name']}: {objective['good']}/{objective['total']} good, "
            f"target {objective['target']}, error budget left {objective['error_budget_remaining']}"
        )
    typer.echo(f"  SLO API        {base_url}/api/operations/slo/clusters/{cluster_id} (bearer token required)")
    return bool(probe and probe["passed"])


def _plant_demo_cluster(database: Database, azurite: Azurite) -> str:
    # Stands in for a cluster the provisioning controller made ready; its Blob endpoint is Azurite.
    with database.session() as session:
        tenant = Tenant(entra_tenant_id=f"sandbox-{uuid.uuid4()}", display_name="Sandbox customer")
        session.add(tenant)
        session.flush()
        cluster = Cluster(
            tenant_id=tenant.id,
            managed_application_id=f"sandbox-demo-application-{uuid.uuid4()}",
            name="sandbox-demo",
            region="local",
            azure_subscription_id=str(uuid.uuid4()),
            resource_group="sandbox",
            desired_plan_id="sandbox",
            desired_quantity=1,
            status=ClusterStatus.READY,
            observed_generation=1,
            endpoint_fqdn=azurite.endpoint_fqdn,
        )
        session.add(cluster)
        session.flush()
        return cluster.id


def _wait_for_samples(database: Database, cluster_id: str, timeout_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        with database.session() as session:
            if session.exec(select(BlobProbeSample.id).where(BlobProbeSample.cluster_id == cluster_id)).first():
                return
        time.sleep(0.2)
    typer.secho("  blob probe did not report in time; see the worker log", fg=typer.colors.RED)

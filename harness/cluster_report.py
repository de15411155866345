"""Sandbox step: wait for a purchased cluster to be ready and print its connection facts from the JSON API."""

from __future__ import annotations

import time
from typing import Any

import httpx
import typer
from sqlmodel import col, select

from core.clusters.models import SETTLED_CLUSTER_STATUSES, Cluster
from core.db import Database


def wait_for_cluster(
    base_url: str, cluster_id: str, headers: dict[str, str], *, timeout_seconds: float = 180
) -> dict[str, Any]:
    """GET /api/clusters/{id} until it is settled (ready, failed, suspended or deleted); returns the last document."""
    deadline = time.monotonic() + timeout_seconds
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
        while True:
            response = client.get(f"/api/clusters/{cluster_id}")
            response.raise_for_status()
            detail: dict[str, Any] = response.json()
            if detail["status"] in SETTLED_CLUSTER_STATUSES or time.monotonic() > deadline:
                return detail
            # The controller advances one ARM step per check; a second between reads is plenty for a demo.
            time.sleep(1.0)


def print_cluster_outputs(detail: dict[str, Any]) -> None:
    """The facts a customer needs to connect: PLS alias, endpoint and key id (or the error when it failed)."""
    typer.echo("")
    typer.echo(f"Cluster {detail['name']} ({detail['id']}): {detail['status']}")
    outputs = detail["outputs"]
    typer.echo(f"  PLS alias      {outputs['pls_alias']}")
    typer.echo(f"  endpoint       {outputs['endpoint_fqdn']}")
    typer.echo(f"  key id         {outputs['key_id']}")
    steps = ", ".join(f"{step['step']} g{step['generation']} {step['state']}" for step in detail["steps"])
    typer.echo(f"  steps          {steps}")
    if detail["last_error"]:
        typer.echo(f"  last error     {detail['last_error']['code']}: {detail['last_error']['message']}")


def operator_headers(emulator_state: dict[str, Any]) -> dict[str, str]:
    """A bearer token for the JSON API as a publisher operator, minted by the Entra emulator."""
    entra = emulator_state["entra"]
    client_id = entra["apps"]["control-plane"]["client_id"]
    response = httpx.post(
        f"{entra['control_url']}/tokens",
        json={
            "tenant_id": entra["publisher_tenant_id"],
            "audience": client_id,
            "client_id": client_id,
            "extra_claims": {
                "idtyp": "user",
                "scp": "user_impersonation",
                "oid": "sandbox-operator",
                "roles": ["Operator"],
                "name": "Sandbox operator",
            },
        },
        verify=emulator_state["ca_bundle"],
        timeout=10,
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def report_latest_cluster(database: Database, emulator_state: dict[str, Any], base_url: str) -> bool:
    """After a purchase: wait for its cluster through the JSON API and print it; False when none is ready."""
    with database.session() as session:
        cluster_id = session.exec(select(Cluster.id).order_by(col(Cluster.created_at).desc())).first()
    if cluster_id is None:
        typer.secho("no cluster was requested by the purchase", fg=typer.colors.RED)
        return False
    detail = wait_for_cluster(base_url, cluster_id, operator_headers(emulator_state))
    print_cluster_outputs(detail)
    return bool(detail["status"] == "ready")

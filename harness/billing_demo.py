"""The sandbox's billing step: usage of a ready cluster flows to accepted Marketplace meter events.

Given the emulators' state and ready clusters (the provisioning step's), it collects the last hours
of usage from the façade metrics emulator, closes the hours, submits them to the Marketplace metering
emulator, settles, reconciles, and prints the ledger by status. Clusters deployed minutes ago have no billable
past hours (their samples are refused as outside the billable window), so unless a cluster has been live for
the demo's hours it buys one subscription in the emulator and registers a cluster live since then.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import typer
from sqlmodel import col, select

from billing.jobs import run_close, run_collection, run_reconciliation, run_settlement, run_submission
from billing.reports import status_counts
from core.clock import utc_now
from core.clusters.models import Cluster, ClusterStatus
from core.db import Database
from core.marketplace.fulfillment_client import FulfillmentClient
from core.settings import Settings
from core.subscriptions.models import MarketplaceSubscription, SubscriptionStatus
from core.tenants.models import Tenant
from emulators.suite import EmulatorSuite, EmulatorSuiteConfig, build_default_suite
from harness.emulator_environment import settings_for_emulators

DEMO_HOURS = 4


def clusters_live_since(database: Database, moment: datetime) -> list[str]:
    """Ready clusters whose subscription was active and cluster ready at `moment`: they have billable past hours.

    A cluster the sandbox deployed minutes ago has none yet (usage counts from activation and first ready on), so
    its samples are refused as outside the billable window, as they would be in production.
    """
    with database.session() as session:
        return list(
            session.exec(
                select(Cluster.id)
                .join(MarketplaceSubscription, col(MarketplaceSubscription.id) == col(Cluster.subscription_id))
                .where(
                    Cluster.status == ClusterStatus.READY,
                    col(Cluster.first_ready_at) <= moment,
                    col(MarketplaceSubscription.activated_at) <= moment,
                )
            ).all()
        )


def register_demo_customer(database: Database, state: dict[str, Any], settings: Settings) -> str:
    """Buy and activate a subscription in the emulator and record it with a ready cluster; returns the cluster id.

    The customer bought and went live the demo's hours ago, so those hours are inside the billable window.
    """
    live_since = utc_now() - timedelta(hours=DEMO_HOURS, minutes=10)
    with httpx.Client(base_url=state["marketplace"]["control_url"], verify=state["ca_bundle"], timeout=10) as control:
        response = control.post(
            "/purchases",
            json={
                "plan_id": "standard",
                "quantity": 1,
                "beneficiary": {"tenant_id": str(uuid.uuid4()), "email": "admin@contoso.example"},
                "name": "Sandbox billing demo",
                "purchased_seconds_ago": (utc_now() - live_since).total_seconds() + 60,
            },
        )
        response.raise_for_status()
        purchased = response.json()["subscription"]
    fulfillment = FulfillmentClient.from_settings(settings)
    try:
        fulfillment.activate(purchased["id"], "standard", 1)
    finally:
        fulfillment.close()
    with database.session() as session:
        tenant = Tenant(entra_tenant_id=purchased["beneficiary"]["tenantId"], display_name="Contoso (sandbox)")
        session.add(tenant)
        session.flush()
        session.add(
            MarketplaceSubscription(
                id=purchased["id"],
                tenant_id=tenant.id,
                name=purchased["name"],
                offer_id=purchased["offerId"],
                plan_id="standard",
                quantity=1,
                status=SubscriptionStatus.SUBSCRIBED,
                beneficiary_tenant_id=tenant.entra_tenant_id,
                activated_at=live_since,
            )
        )
        session.flush()
        cluster = Cluster(
            tenant_id=tenant.id,
            subscription_id=purchased["id"],
            name="sandbox-facade",
            region="westeurope",
            azure_subscription_id=str(uuid.uuid4()),
            resource_group="rg-sandbox-facade",
            desired_plan_id="standard",
            desired_quantity=1,
            status=ClusterStatus.READY,
            observed_generation=1,
            observed_plan_id="standard",
            observed_quantity=1,
            endpoint_fqdn="sandbox-facade.blob.example",
            first_ready_at=live_since,
        )
        session.add(cluster)
        session.flush()
        return cluster.id


def run_billing_demo(database: Database, settings: Settings, state: dict[str, Any]) -> dict[str, Any]:
    """Collect, close, submit, settle and reconcile against the emulators; print and return the ledger by status."""
    billing_settings = settings.model_copy(update={"billing_collection_lookback_hours": float(DEMO_HOURS)})
    now = utc_now()
    if not clusters_live_since(database, now - timedelta(hours=DEMO_HOURS)):
        typer.echo(
            f"  no cluster has been live for the last {DEMO_HOURS} hours: buying one subscription in the emulator "
            f"with a cluster live since then"
        )
        register_demo_customer(database, state, billing_settings)
    collected = run_collection(billing_settings, database, now=now)
    typer.echo(
        f"  collected {collected.stored} sample(s) from {collected.clusters} cluster(s); "
        f"{collected.rejected} refused (outside the billable window or invalid, kept with the reason)"
    )
    closed = run_close(billing_settings, database, now=now)
    typer.echo(f"  closed hours through {closed.cutoff:%H:%M}: {closed.entries_created} ledger entr(ies)")
    submitted = run_submission(billing_settings, database, now=now)
    settled = run_settlement(billing_settings, database, now=now)
    typer.echo(f"  submitted in {submitted.batches} batch(es): {submitted.counts}; settled {settled.counts}")
    report = run_reconciliation(
        billing_settings, database, start=now - timedelta(days=1), end=now + timedelta(hours=1), requested_by="sandbox"
    )
    typer.echo(f"  reconciliation report {report.id}: {report.difference_count} difference(s)")
    with database.session() as session:
        counts = status_counts(session)
    for status, bucket in sorted(counts["statuses"].items()):
        typer.echo(f"  ledger {status:<10} {bucket['entries']:>4} entr(ies), {bucket['billable_quantity']} billable")
    return {**counts, "differences": report.difference_count}


def billing_as_expected(counts: dict[str, Any]) -> bool:
    """The billing step's expected end: entries in the ledger, every one accepted (a duplicate was accepted
    before), nothing to reconcile."""
    statuses = counts["statuses"]
    return bool(statuses) and set(statuses) <= {"accepted", "duplicate"} and counts["differences"] == 0


def start_emulators(data_dir: Path) -> EmulatorSuite:
    """The default emulator suite under the sandbox folder (for a sandbox that has not started one)."""
    suite = build_default_suite(EmulatorSuiteConfig(state_dir=data_dir / "emulators", seed=20261126))
    suite.start()
    return suite


def settings_with_emulators(settings: Settings, state: dict[str, Any]) -> Settings:
    """The sandbox's settings pointed at the emulators billing talks to (database and broker unchanged)."""
    billing_state = {name: state[name] for name in ("ca_bundle", "entra", "marketplace", "facade")}
    return settings_for_emulators(
        billing_state,
        data_dir=settings.data_dir,
        database_url=settings.database_url,
        broker_url=settings.broker_url,
        log_format=settings.log_format,
    )


def run_in_sandbox(data_dir: Path, database: Database, settings: Settings, state: dict[str, Any] | None) -> bool:
    """The sandbox step: on the sandbox's emulators when it has them, else on a suite started for this step.

    True when it reached its expected end (billing_as_expected)."""
    suite = start_emulators(data_dir) if state is None else None
    try:
        emulator_state = state if state is not None else suite.state() if suite is not None else {}
        counts = run_billing_demo(database, settings_with_emulators(settings, emulator_state), emulator_state)
        return billing_as_expected(counts)
    finally:
        if suite is not None:
            suite.stop()

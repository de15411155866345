"""A worker killed while it reports an operation to Marketplace: the work resumes and has one effect."""

from __future__ import annotations

import pytest
from sqlmodel import select

from core.audit.models import AuditEvent
from core.clusters.models import Cluster
from core.db import Database
from core.subscriptions.models import MarketplaceOperation
from tests.integration.lifecycle.conftest import ActiveSubscription, ControlPlane
from tests.integration.lifecycle.marketplace_driver import Emulators
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


def _operation(database: Database, operation_id: str) -> MarketplaceOperation | None:
    with database.session() as session:
        return session.get(MarketplaceOperation, operation_id)


def _desired_generation(database: Database, cluster_id: str) -> int:
    with database.session() as session:
        cluster = session.get(Cluster, cluster_id)
        assert cluster is not None
        return cluster.desired_generation


def test_worker_killed_during_the_patch_resumes_and_reports_once(
    control_plane: ControlPlane, emulators: Emulators, database: Database, active_subscription: ActiveSubscription
) -> None:
    subscription_id, cluster_id = active_subscription.subscription_id, active_subscription.cluster_id
    slow_patch = emulators.add_marketplace_fault(
        {
            "kind": "latency",
            "method": "PATCH",
            "path_pattern": r"/api/saas/subscriptions/[^/]+/operations/",
            "latency_ms": 3000,
            "count": 1,
        }
    )
    worker = next(process for process in control_plane.group.processes if process.name == "worker")
    generation_before = _desired_generation(database, cluster_id)
    try:
        change = emulators.customer_action(subscription_id, "change-quantity", {"quantity": 3})
        # The verdict is PATCHed in the pass that verifies and applies the change: kill the worker inside it.
        wait_for(
            lambda: any(
                rule["id"] == slow_patch["id"] and rule["hits"] == 1 for rule in emulators.marketplace_faults()
            ),
            what="the worker to be inside the PATCH",
        )
        worker.kill()
        operation = _operation(database, change["id"])
        assert operation is not None
        assert operation.state == "received"  # the killed transaction left nothing half-done
        assert _desired_generation(database, cluster_id) == generation_before
        worker.start(control_plane.group.environment)
        reported = wait_for(
            lambda: (row := _operation(database, change["id"])) is not None and row.state == "reported" and row,
            timeout_seconds=60,
            what="the operation to be reported after the restart",
        )
    finally:
        emulators.clear_marketplace_faults()
        if not worker.alive():
            worker.start(control_plane.group.environment)
    assert _desired_generation(database, cluster_id) == generation_before + 1  # applied once
    assert reported.result == "Success"
    assert emulators.marketplace_operation(change["id"])["status"] == "Succeeded"
    assert emulators.marketplace_subscription(subscription_id)["quantity"] == 3
    with database.session() as session:
        reports = session.exec(
            select(AuditEvent).where(
                AuditEvent.subject_id == change["id"], AuditEvent.action == "marketplace_operation.reported"
            )
        ).all()
    assert len(reports) == 1

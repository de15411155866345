"""The promises the full scenario checks at the end, each a named check with pass/fail and the evidence.

Each check reads both sides: what the control plane recorded (its database) and what the other party holds
(the Marketplace and ARM emulators' state, the processes' logs).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from core.arm_templates.steps import IDENTITY_KEY_VAULT
from core.audit.actions import AuditAction
from core.audit.models import AuditEvent, AuditOutcome
from core.catalog.models import Plan
from core.clusters.drift import expected_resources
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.provisioning_models import ArmDeployment, DeploymentState
from core.connectivity.models import ExpectationStatus, ExpectedConnection
from core.db import Database
from core.models import metadata as every_table
from core.networking.models import ConnectionStatus, PrivateEndpointConnection
from core.networking.service import POLICY_AUTO_APPROVAL, POLICY_EXPECTED_CONNECTION
from core.subscriptions.models import (
    MarketplaceOperation,
    MarketplaceSubscription,
    OperationState,
    SubscriptionStatus,
)
from core.usage.models import LedgerStatus, UsageLedgerEntry

# Operations Marketplace waits on (InProgress until PATCHed); the others arrive Succeeded as notifications.
PATCHED_ACTIONS = {"ChangePlan", "ChangeQuantity", "Reinstate"}
RESULT_AT_MARKETPLACE = {"Success": "Succeeded", "Failure": "Failed"}
SCALE_SET_TYPE = "Microsoft.Compute/virtualMachineScaleSets"
MAX_DETAILS = 10
# Bearer tokens (JWS compact form) and PEM private keys, whoever issued them.
JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
PRIVATE_KEY_PATTERN = re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")


@dataclass
class InvariantResult:
    """One named check."""

    name: str
    passed: bool
    checked: int
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The check for the JSON summary (the first problems only)."""
        return {
            "name": self.name,
            "passed": self.passed,
            "checked": self.checked,
            "problem_count": len(self.problems),
            "problems": self.problems[:MAX_DETAILS],
        }


def _result(name: str, checked: int, problems: list[str]) -> InvariantResult:
    return InvariantResult(name=name, passed=not problems, checked=checked, problems=problems)


def reported(operation: MarketplaceOperation) -> bool:
    """Reported to Marketplace: applied and reported, or refused (failed) with the Failure PATCHed or answered.

    A refusal that reached Marketplace after its 10 s stays failed (for an operator) with result Success: the
    result records what Marketplace did, which is what the caller compares.
    """
    if operation.state == OperationState.REPORTED:
        return True
    return operation.state == OperationState.FAILED and operation.result is not None


def operations_reported(database: Database, marketplace: dict[str, Any]) -> InvariantResult:
    """Every Marketplace operation known to us and settled there; PATCHed results match our record."""
    problems: list[str] = []
    with database.session() as session:
        ours = {operation.id: operation for operation in session.exec(select(MarketplaceOperation)).all()}
    remote_ids = set()
    for remote in marketplace["operations"]:
        remote_ids.add(remote["id"])
        label = f"{remote['action']} {remote['id']}"
        if remote["status"] in ("InProgress", "NotStarted"):
            problems.append(f"{label} is still {remote['status']} at Marketplace")
            continue
        if remote["operationRequestSource"] != "Azure":
            continue  # our own PATCH/DELETE requests at Marketplace are not webhooks we process
        operation = ours.get(remote["id"])
        if operation is None:
            problems.append(
                f"{label} ({remote['status']}) was never recorded by us; {_deliveries_of(marketplace, remote['id'])}"
            )
            continue
        if not reported(operation):
            problems.append(f"{label} is {operation.state} with us ({operation.failure_reason or 'no reason'})")
            continue
        if remote["action"] in PATCHED_ACTIONS:
            expected = RESULT_AT_MARKETPLACE.get(operation.result or "")
            if expected != remote["status"]:
                problems.append(f"{label}: ours {operation.result}, Marketplace {remote['status']}")
        elif remote["status"] != "Succeeded":
            problems.append(f"{label}: a notification that is {remote['status']} at Marketplace")
    for operation_id, operation in ours.items():
        if operation_id not in remote_ids:
            problems.append(f"{operation.action} {operation_id} is ours only: Marketplace never had it")
    return _result("every Marketplace operation reported", len(marketplace["operations"]), problems)


def _deliveries_of(marketplace: dict[str, Any], operation_id: str) -> str:
    """What the Marketplace emulator's webhook sender did with an operation: outcome and last attempt."""
    outcomes = []
    for delivery in marketplace.get("webhook_deliveries", []):
        if delivery["operation_id"] != operation_id:
            continue
        last = delivery["attempts"][-1] if delivery["attempts"] else {}
        answer = last.get("status_code") or last.get("error", "no attempt")
        outcomes.append(f"{delivery['outcome']} after {len(delivery['attempts'])} attempt(s), last: {answer}")
    return "webhook " + ("; ".join(outcomes) if outcomes else "never sent")


def clusters_converged(
    database: Database, marketplace: dict[str, Any], arm_resources: list[dict[str, Any]]
) -> InvariantResult:
    """Every cluster's desired spec follows Marketplace, its observed spec equals it, and ARM holds that size."""
    problems: list[str] = []
    remote = {item["id"]: item for item in marketplace["subscriptions"]}
    scale_sets = {
        item["id"].split("/resourceGroups/")[1].split("/")[0].lower(): item["body"]
        for item in arm_resources
        if item["type"].lower() == SCALE_SET_TYPE.lower()
    }
    with database.session() as session:
        clusters = session.exec(select(Cluster).where(col(Cluster.subscription_id).is_not(None))).all()
        plans = {plan.plan_id: plan for plan in session.exec(select(Plan)).all()}
    for cluster in clusters:
        label = f"cluster {cluster.name} ({cluster.subscription_id})"
        subscription = remote.get(cluster.subscription_id or "")
        if subscription is None:
            problems.append(f"{label}: Marketplace has no such subscription")
            continue
        status = subscription["saasSubscriptionStatus"]
        if cluster.observed_generation != cluster.desired_generation:
            problems.append(
                f"{label}: observed generation {cluster.observed_generation} of {cluster.desired_generation}"
            )
            continue
        if cluster.desired_deleted != (status == SubscriptionStatus.UNSUBSCRIBED):
            problems.append(f"{label}: desired_deleted={cluster.desired_deleted} but Marketplace says {status}")
        if cluster.desired_deleted:
            if cluster.status != ClusterStatus.DELETED:
                problems.append(f"{label}: unsubscribed but {cluster.status}")
            continue
        if cluster.desired_suspended != (status == SubscriptionStatus.SUSPENDED):
            problems.append(f"{label}: desired_suspended={cluster.desired_suspended} but Marketplace says {status}")
        expected_status = ClusterStatus.SUSPENDED if cluster.desired_suspended else ClusterStatus.READY
        if cluster.status != expected_status:
            problems.append(f"{label}: {cluster.status}, expected {expected_status}")
        desired = (cluster.desired_plan_id, cluster.desired_quantity)
        if (subscription["planId"], subscription.get("quantity")) != desired:
            problems.append(
                f"{label}: desired {desired}, Marketplace holds {subscription['planId']} x {subscription['quantity']}"
            )
        if (cluster.observed_plan_id, cluster.observed_quantity) != desired:
            problems.append(
                f"{label}: observed {cluster.observed_plan_id} x {cluster.observed_quantity}, desired {desired}"
            )
        plan = plans.get(cluster.desired_plan_id)
        scale_set = scale_sets.get(cluster.resource_group.lower())
        if plan is None or scale_set is None:
            problems.append(f"{label}: no scale set in ARM resource group {cluster.resource_group}")
            continue
        sku = scale_set.get("sku") or {}
        expected_sku = (plan.vm_size, plan.nodes_per_unit * cluster.desired_quantity)
        if (sku.get("name"), sku.get("capacity")) != expected_sku:
            problems.append(
                f"{label}: ARM scale set {sku.get('name')} x {sku.get('capacity')}, expected {expected_sku}"
            )
    return _result("every cluster's observed spec equals its desired spec", len(clusters), problems)


def usage_accepted_once(database: Database, marketplace: dict[str, Any]) -> InvariantResult:
    """Every closed ledger hour settled; accepted ones held by Marketplace exactly once, nothing else held."""
    problems: list[str] = []
    events: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for event in marketplace["usage_events"]:
        events[(event["resourceId"], event["dimension"], _hour(event["effectiveStartTime"]))].append(event)
    for key, held in events.items():
        if len(held) > 1:
            problems.append(f"{key}: Marketplace holds {len(held)} usage events")
    with database.session() as session:
        entries = session.exec(select(UsageLedgerEntry)).all()
    ledger_keys = set()
    for entry in entries:
        key = (entry.resource_id, entry.dimension_id, entry.hour_start.strftime("%Y-%m-%dT%H"))
        ledger_keys.add(key)
        held = events.get(key, [])
        label = f"ledger entry {entry.id} {key}"
        if entry.status in (LedgerStatus.ACCEPTED, LedgerStatus.DUPLICATE):
            if len(held) != 1:
                problems.append(f"{label} is {entry.status} but Marketplace holds {len(held)} event(s)")
            elif abs(float(held[0]["quantity"]) - entry.billable_quantity) > 1e-6:
                problems.append(f"{label}: billed {entry.billable_quantity}, Marketplace holds {held[0]['quantity']}")
            elif entry.marketplace_usage_event_id not in (None, held[0]["usageEventId"]):
                problems.append(
                    f"{label}: usage event id {entry.marketplace_usage_event_id} vs {held[0]['usageEventId']}"
                )
        elif entry.status in (LedgerStatus.REJECTED, LedgerStatus.EXPIRED):
            if held:
                problems.append(f"{label} is {entry.status} but Marketplace accepted it")
        else:
            problems.append(f"{label} is still {entry.status}")
    for key in events:
        if key not in ledger_keys:
            problems.append(f"Marketplace holds usage {key} that no ledger entry accounts for")
    return _result("every closed ledger hour accepted exactly once", len(entries), problems)


def _hour(effective_start_time: str) -> str:
    return effective_start_time[:13]


def no_orphaned_resources(database: Database, resource_groups: list[dict[str, Any]], prefix: str) -> InvariantResult:
    """The scenario's resource groups in ARM are exactly those of clusters that still exist."""
    with database.session() as session:
        clusters = session.exec(select(Cluster).where(col(Cluster.subscription_id).is_not(None))).all()
    expected = {cluster.resource_group.lower() for cluster in clusters if cluster.status != ClusterStatus.DELETED}
    held = {group["name"].lower() for group in resource_groups if group["name"].lower().startswith(prefix)}
    problems = [f"orphaned resource group {name}" for name in sorted(held - expected)]
    problems += [f"resource group {name} of a live cluster is missing" for name in sorted(expected - held)]
    return _result("no orphaned ARM resources", len(held | expected), problems)


def audit_trail_complete(database: Database) -> InvariantResult:
    """Each subscription's transitions chain from its purchase to its status; each operation's states are audited."""
    problems: list[str] = []
    with database.session() as session:
        subscriptions = session.exec(select(MarketplaceSubscription)).all()
        operations = session.exec(select(MarketplaceOperation)).all()
        events = session.exec(
            select(AuditEvent)
            .where(col(AuditEvent.subject_type).in_(["marketplace_subscription", "marketplace_operation"]))
            .order_by(col(AuditEvent.id))
        ).all()
    by_subject: dict[str, list[AuditEvent]] = defaultdict(list)
    for event in events:
        by_subject[event.subject_id].append(event)
    for subscription in subscriptions:
        trail = by_subject.get(subscription.id, [])
        actions = {event.action for event in trail}
        if not actions & {AuditAction.SUBSCRIPTION_PURCHASE_CONFIRMED, AuditAction.SUBSCRIPTION_ADOPTED}:
            problems.append(f"subscription {subscription.id}: no purchase or adoption event")
        status = SubscriptionStatus.PENDING_FULFILLMENT_START
        for event in trail:
            if event.action != AuditAction.SUBSCRIPTION_TRANSITION or event.outcome != AuditOutcome.SUCCESS:
                continue
            before = (event.before or {}).get("status")
            if before != status:
                problems.append(f"subscription {subscription.id}: transition from {before} follows {status}")
            status = (event.after or {}).get("status", status)
        if status != subscription.status:
            problems.append(f"subscription {subscription.id}: audit ends at {status}, record is {subscription.status}")
    for operation in operations:
        actions = {event.action for event in by_subject.get(operation.id, [])}
        if not actions & {AuditAction.MARKETPLACE_WEBHOOK_RECEIVED, AuditAction.OPERATION_ADOPTED}:
            problems.append(f"operation {operation.id}: no webhook or adoption event")
        expected: tuple[OperationState, ...]
        if operation.state == OperationState.REPORTED:
            expected = (OperationState.VERIFIED, OperationState.APPLIED, OperationState.REPORTED)
        elif reported(operation):
            expected = (OperationState.VERIFIED, OperationState.FAILED)
        else:
            expected = ()
        for state in expected:
            if AuditAction.operation_entered(state) not in actions:
                problems.append(f"operation {operation.id} ({operation.action}): no {state} event")
    return _result("audit trail complete", len(subscriptions) + len(operations), problems)


def no_secrets_written_down(log_files: list[Path], database: Database, secrets: list[str]) -> InvariantResult:
    """No secret value, bearer token or private key in any process log, the traces or any text column of the database.

    `secrets` are every SecretStr of the settings and every purchase token, auth code and state the run carried.
    """
    problems: list[str] = []
    needles = sorted({secret for secret in secrets if len(secret) >= 8})
    for path in log_files:
        text = path.read_text(errors="replace") if path.exists() else ""
        problems.extend(_secrets_in(path.name, text, needles))
    checked = len(log_files)
    for table in every_table.sorted_tables:
        columns = [column for column in table.columns if _holds_text(column)]
        if not columns:
            continue
        checked += 1
        with database.engine.connect() as connection:
            result = connection.execute(sa.select(*columns)).yield_per(1000)
            for row in result:
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    text = value if isinstance(value, str) else json.dumps(value, default=str)
                    problems.extend(_secrets_in(f"{table.name}.{column.name}", text, needles))
    # One line per place and kind, however many rows hold it.
    return _result("no secrets written down", checked, sorted(set(problems)))


def _holds_text(column: sa.Column[Any]) -> bool:
    """Text and JSON columns, SQLModel's AutoString (a type decorator over VARCHAR) included."""
    kind = column.type
    if isinstance(kind, sa.TypeDecorator):
        kind = kind.impl_instance
    return isinstance(kind, sa.String | sa.Text | sa.JSON)


def _secrets_in(where: str, text: str, needles: list[str]) -> list[str]:
    problems = []
    if any(needle in text for needle in needles):
        problems.append(f"{where}: holds a secret value (a setting's SecretStr, a purchase token, a code or state)")
    if JWT_PATTERN.search(text):
        problems.append(f"{where}: holds a bearer token")
    if PRIVATE_KEY_PATTERN.search(text):
        problems.append(f"{where}: holds private key material")
    return problems


def expected_connections_only(database: Database) -> InvariantResult:
    """Every expected connection approved through its match; nothing else approved automatically.

    An automatic approval is one by policy: the expectation that matched it (which must name that connection), or
    the cluster's auto-approval list holding the endpoint's subscription (the customer's own rule).
    """
    problems: list[str] = []
    with database.session() as session:
        expectations = session.exec(select(ExpectedConnection)).all()
        connections = {row.id: row for row in session.exec(select(PrivateEndpointConnection)).all()}
        clusters = {row.id: row for row in session.exec(select(Cluster)).all()}
    matched_by = {row.matched_connection_id: row.id for row in expectations if row.matched_connection_id}
    for row in expectations:
        connection = connections.get(row.matched_connection_id or "")
        if row.status != ExpectationStatus.MATCHED.value or connection is None:
            problems.append(f"expected connection {row.id} ({row.consumer_kind}) is {row.status}, not matched")
        elif connection.status != ConnectionStatus.APPROVED:
            problems.append(f"expected connection {row.id} matched {connection.connection_name}, {connection.status}")
    for connection in connections.values():
        decided_by = connection.decided_by or ""
        if connection.status != ConnectionStatus.APPROVED or not decided_by.startswith("policy:"):
            continue
        if decided_by.startswith(POLICY_EXPECTED_CONNECTION):
            if matched_by.get(connection.id) != decided_by.rsplit(":", 1)[-1]:
                problems.append(f"{connection.connection_name} approved by an expectation that did not match it")
        elif decided_by == POLICY_AUTO_APPROVAL:
            cluster = clusters.get(connection.cluster_id)
            allowed = {item.lower() for item in (cluster.pls_auto_approval_subscriptions if cluster else [])}
            if "*" not in allowed and (connection.source_subscription_id or "") not in allowed:
                problems.append(f"{connection.connection_name} auto-approved without its subscription on the list")
        else:
            problems.append(f"{connection.connection_name} approved automatically by {decided_by}")
    return _result(
        "expected connections approved, nothing else automatically", len(expectations) + len(connections), problems
    )


def final_states(database: Database) -> dict[str, dict[str, int]]:
    """Counts for the summary: subscriptions by status, operations by action and result, ledger by status."""
    with database.session() as session:
        subscriptions = Counter(session.exec(select(MarketplaceSubscription.status)).all())
        operations = Counter(
            f"{action} {state}{' ' + result if result else ''}"
            for action, state, result in session.exec(
                select(MarketplaceOperation.action, MarketplaceOperation.state, MarketplaceOperation.result)
            ).all()
        )
        ledger = Counter(session.exec(select(UsageLedgerEntry.status)).all())
        clusters = Counter(session.exec(select(Cluster.status).where(col(Cluster.subscription_id).is_not(None))).all())
    return {
        "subscriptions": dict(sorted(subscriptions.items())),
        "clusters": dict(sorted(clusters.items())),
        "operations": dict(sorted(operations.items())),
        "ledger": dict(sorted(ledger.items())),
    }


def customer_resources_untouched_and_clusters_whole(
    database: Database, resources: list[dict[str, Any]], planted: list[str]
) -> InvariantResult:
    """Nothing we did not create was touched; nothing a ready (or suspended) cluster needs is missing.

    `resources` is ARM's whole store (the emulator's control API: children and role assignments included);
    `planted` the resources chaos put into clusters' groups as the customer. What a cluster needs is what its
    deployments' outputs name (scale set, load balancer, network, PLS, vault, identity...), its key enabled, and
    its identity's role assignment on the key.
    """
    present = {str(item["id"]).lower(): item for item in resources}
    problems = [
        f"customer resource {resource_id} is gone" for resource_id in planted if resource_id.lower() not in present
    ]
    live = (ClusterStatus.READY, ClusterStatus.SUSPENDED)
    with database.session() as session:
        clusters = session.exec(
            # A managed application's cluster has no deployment rows of ours: nothing is expected of it here.
            select(Cluster).where(col(Cluster.status).in_(live))
        ).all()
        rows = session.exec(
            select(ArmDeployment)
            .where(col(ArmDeployment.cluster_id).in_([cluster.id for cluster in clusters]))
            .where(ArmDeployment.state == DeploymentState.SUCCEEDED)
            .order_by(col(ArmDeployment.id))
        ).all()
    outputs: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        outputs[row.cluster_id][row.step] = row.outputs
    assignments = [
        item["body"] for item in resources if item["type"].lower() == "microsoft.authorization/roleassignments"
    ]
    checked = len(planted)
    for cluster in clusters:
        steps = outputs.get(cluster.id, {})
        for resource_id, _ in expected_resources(cluster.resource_group, steps).values():
            checked += 1
            if resource_id.lower() not in present:
                problems.append(f"cluster {cluster.name} ({cluster.status}): {resource_id} is missing")
        identity = steps.get(IDENTITY_KEY_VAULT) or {}
        key_id = str(identity.get("keyResourceId") or "")
        if not key_id:
            continue
        checked += 1
        key = present.get(key_id.lower())
        if key is None or not ((key["body"].get("properties") or {}).get("attributes") or {}).get("enabled", True):
            problems.append(f"cluster {cluster.name}: key {key_id} is missing or disabled")
            continue
        principal = str(identity.get("identityPrincipalId") or "")
        if not any(
            (item.get("properties") or {}).get("principalId") == principal
            and str(item["id"]).lower().startswith(key_id.lower() + "/")
            for item in assignments
        ):
            problems.append(f"cluster {cluster.name}: the identity's role assignment on {key_id} is missing")
    return _result("nothing foreign touched, nothing needed missing", checked, problems)

"""The drift observer: compare what our deployments made with what ARM holds now, and act on the difference.

Level-triggered: each observation computes the whole set of differences from scratch (what the latest successful
deployment of each step produced versus ARM's answers now), opens a drift row for a new one, keeps an open one,
and resolves one ARM no longer shows. What "we deployed" comes from the deployments' stored outputs (resource ids)
and parameters (capacity, SKU, PLS lists), never from guesses about names.

Cost per cluster and observation: one list of the resource group, plus a GET of the Private Link Service, a GET
of the key and one list of the key's role assignments (fewer when those are already missing). Clusters are spread
over the interval by a stable hash of their id (`due_cluster_ids`), so each is observed once per interval.

A drift is repaired by re-running the step that made the resource (the controller treats the step as never
deployed, `drift_repairs.steps_awaiting_repair`), except where a re-run could destroy data: a deleted or disabled
key, a deleted vault or resource group. Those are raised to an operator as incidents and nothing is re-deployed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from core.arm_templates.steps import CLUSTER, FACADE_CLUSTER_STEPS, IDENTITY_KEY_VAULT, PRIVATE_LINK, read_step_template
from core.audit.actions import AuditAction
from core.audit.models import AuditOutcome
from core.audit.service import record_audit_event
from core.azure.arm import ArmClient
from core.clock import utc_now
from core.clusters.controller import DeploymentHistory
from core.clusters.drift_models import ClusterDrift, DriftKind, DriftRemedy, DriftState
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.provisioning_models import ArmDeployment, DeploymentState
from core.clusters.service import lock_cluster
from core.outbox.service import enqueue
from core.settings import DEFAULT_ARM_TEMPLATES_PATH, Settings
from core.task_payloads import ObserveClusterDrift, ReconcileCluster

ACTOR = "system:drift-observer"
OBSERVED_STATUSES = (ClusterStatus.READY, ClusterStatus.SUSPENDED)
PRIVATE_LINK_API_VERSION = "2024-05-01"
KEY_API_VERSION = "2025-05-01"
VAULT_TYPE = "microsoft.keyvault/vaults"


@dataclass(frozen=True)
class Finding:
    """One difference between a step's deployment and ARM, and what to do about it."""

    kind: DriftKind
    resource_id: str
    step: str
    remedy: DriftRemedy
    expected: dict[str, Any] = field(default_factory=dict)
    observed: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        """Identity of the drift across observations."""
        return self.kind.value, self.resource_id.lower()


@dataclass
class ObservationReport:
    """What one observation did, for the task's log line and the tests."""

    cluster_id: str
    observed: bool = False
    skipped_because: str | None = None
    detected: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    repairs_requested: list[str] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)


# What we deployed ---------------------------------------------------------------------------------------------------
def _is_top_level_in_group(value: Any, resource_group: str) -> bool:
    """A tracked top-level resource id in the group (subnets, keys, frontends are children and not listed)."""
    if not isinstance(value, str) or not value.lower().startswith("/subscriptions/"):
        return False
    parts = value.strip("/").split("/")
    # subscriptions/{s}/resourceGroups/{g}/providers/{namespace}/{type}/{name}
    return (
        len(parts) == 8
        and parts[2].lower() == "resourcegroups"
        and parts[3].lower() == resource_group.lower()
        and parts[4].lower() == "providers"
    )


def _resource_type(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    return f"{parts[5]}/{parts[6]}"


def expected_resources(resource_group: str, outputs: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """lower-case id -> (id, step) for every top-level resource a step's outputs name in the cluster's group."""
    found: dict[str, tuple[str, str]] = {}
    for step in FACADE_CLUSTER_STEPS:
        for value in (outputs.get(step.name) or {}).values():
            if _is_top_level_in_group(value, resource_group):
                found.setdefault(value.lower(), (value, step.name))
    return found


@cache
def _crypto_role_name(templates: Path) -> str:
    # The role (its definition's GUID name) our identity-keyvault template grants on the key, read from the
    # template the controller deploys so the two cannot differ.
    step = next(item for item in FACADE_CLUSTER_STEPS if item.name == IDENTITY_KEY_VAULT)
    return str(read_step_template(templates, step)["variables"]["cryptoServiceEncryptionUserRoleName"]).lower()


def _latest_succeeded(rows: Sequence[ArmDeployment]) -> dict[str, ArmDeployment]:
    return {row.step: row for row in rows if row.state == DeploymentState.SUCCEEDED}


def _subscription_set(value: Any) -> list[str]:
    items = value.get("subscriptions") if isinstance(value, dict) else None
    return sorted(str(item).lower() for item in items or [])


# Comparing ----------------------------------------------------------------------------------------------------------
def find_drift(
    cluster: Cluster, rows: Sequence[ArmDeployment], arm: ArmClient, templates: Path = DEFAULT_ARM_TEMPLATES_PATH
) -> list[Finding]:
    """Every difference between the latest successful deployments of the cluster's steps and ARM now."""
    group = cluster.resource_group
    latest = _latest_succeeded(rows)
    outputs = {step: row.outputs for step, row in latest.items()}
    listed = arm.list_group_resources(group)
    if listed is None:
        group_id = f"/subscriptions/{cluster.azure_subscription_id}/resourceGroups/{group}"
        return [Finding(DriftKind.RESOURCE_GROUP_DELETED, group_id, IDENTITY_KEY_VAULT, DriftRemedy.INCIDENT)]
    present = {str(item.get("id", "")).lower(): item for item in listed}
    findings: list[Finding] = []
    for key, (resource_id, step) in expected_resources(group, outputs).items():
        if key not in present:
            # A deleted vault takes the customer's key with it: re-creating it would encrypt with a new key.
            remedy = DriftRemedy.INCIDENT if _resource_type(resource_id).lower() == VAULT_TYPE else DriftRemedy.REPAIR
            findings.append(Finding(DriftKind.RESOURCE_DELETED, resource_id, step, remedy, {"exists": True}))
    findings.extend(_scale_set_drift(latest.get(CLUSTER), present))
    findings.extend(_private_link_drift(latest.get(PRIVATE_LINK), present, arm))
    findings.extend(_key_drift(latest.get(IDENTITY_KEY_VAULT), present, arm, _crypto_role_name(templates)))
    return findings


def _scale_set_drift(row: ArmDeployment | None, present: Mapping[str, dict[str, Any]]) -> list[Finding]:
    if row is None:
        return []
    scale_set_id = str(row.outputs.get("scaleSetResourceId") or "")
    listed = present.get(scale_set_id.lower())
    if listed is None:
        return []  # missing: already a resource_deleted finding
    sku = listed.get("sku") or {}
    findings = []
    expected_capacity = row.parameters.get("instanceCount")
    if expected_capacity is not None and sku.get("capacity") != expected_capacity:
        findings.append(
            Finding(
                DriftKind.SCALE_SET_CAPACITY_CHANGED,
                scale_set_id,
                CLUSTER,
                DriftRemedy.REPAIR,
                {"capacity": expected_capacity},
                {"capacity": sku.get("capacity")},
            )
        )
    expected_size = row.parameters.get("vmSize")
    if expected_size is not None and str(sku.get("name", "")).lower() != str(expected_size).lower():
        findings.append(
            Finding(
                DriftKind.SCALE_SET_SKU_CHANGED,
                scale_set_id,
                CLUSTER,
                DriftRemedy.REPAIR,
                {"sku": expected_size},
                {"sku": sku.get("name")},
            )
        )
    return findings


def _private_link_drift(
    row: ArmDeployment | None, present: Mapping[str, dict[str, Any]], arm: ArmClient
) -> list[Finding]:
    if row is None:
        return []
    service_id = str(row.outputs.get("privateLinkServiceResourceId") or "")
    if service_id.lower() not in present:
        return []
    body = arm.read_resource(service_id, PRIVATE_LINK_API_VERSION)
    if body is None:
        return []  # deleted between the list and this read: the next observation reports it
    properties = body.get("properties") or {}
    findings = []
    checks = (
        (DriftKind.PLS_VISIBILITY_CHANGED, "visibility", "visibilitySubscriptionIds"),
        (DriftKind.PLS_AUTO_APPROVAL_CHANGED, "autoApproval", "autoApprovalSubscriptionIds"),
    )
    for kind, field_name, parameter in checks:
        expected = sorted(str(item).lower() for item in row.parameters.get(parameter) or [])
        observed = _subscription_set(properties.get(field_name))
        if expected != observed:
            findings.append(
                Finding(
                    kind,
                    service_id,
                    PRIVATE_LINK,
                    DriftRemedy.REPAIR,
                    {"subscriptions": expected},
                    {"subscriptions": observed},
                )
            )
    return findings


def _key_drift(
    row: ArmDeployment | None, present: Mapping[str, dict[str, Any]], arm: ArmClient, role: str
) -> list[Finding]:
    if row is None:
        return []
    vault_id = str(row.outputs.get("keyVaultResourceId") or "")
    key_id = str(row.outputs.get("keyResourceId") or "")
    if not key_id or vault_id.lower() not in present:
        return []  # no vault: already an incident (resource_deleted of the vault)
    key = arm.read_resource(key_id, KEY_API_VERSION)
    if key is None:
        return [Finding(DriftKind.KEY_DELETED, key_id, IDENTITY_KEY_VAULT, DriftRemedy.INCIDENT, {"exists": True})]
    findings = []
    enabled = ((key.get("properties") or {}).get("attributes") or {}).get("enabled", True)
    if enabled is False:
        findings.append(
            Finding(
                DriftKind.KEY_DISABLED,
                key_id,
                IDENTITY_KEY_VAULT,
                DriftRemedy.INCIDENT,
                {"enabled": True},
                {"enabled": False},
            )
        )
    identity_id = str(row.outputs.get("identityResourceId") or "")
    principal_id = str(row.outputs.get("identityPrincipalId") or "")
    if principal_id and identity_id.lower() in present:
        granted = any(
            str((item.get("properties") or {}).get("principalId", "")).lower() == principal_id.lower()
            and str((item.get("properties") or {}).get("roleDefinitionId", "")).lower().endswith(role)
            for item in arm.list_role_assignments(key_id)
        )
        if not granted:
            findings.append(
                Finding(
                    DriftKind.ROLE_ASSIGNMENT_REMOVED,
                    key_id,
                    IDENTITY_KEY_VAULT,
                    DriftRemedy.REPAIR,
                    {"principal_id": principal_id, "role": role},
                )
            )
    return findings


# Recording and acting -----------------------------------------------------------------------------------------------
class DriftObserver:
    """Observes one cluster per call under its row lock; the caller's transaction commits what it recorded."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def observe(self, session: Session, cluster_id: str, arm: ArmClient) -> ObservationReport:
        """Compare the cluster with ARM, record drift rows, ask for repairs, raise incidents."""
        report = ObservationReport(cluster_id)
        cluster = lock_cluster(session, cluster_id)
        reason = self._skip_reason(cluster)
        history = DeploymentHistory.load(session, cluster.id)
        if reason is None and history.in_flight() is not None:
            reason = "a deployment is running"
        if reason is None and not _latest_succeeded(history.rows):
            reason = "nothing deployed by the control plane"
        if reason is not None:
            report.skipped_because = reason
            return report
        findings = find_drift(cluster, history.rows, arm, self.settings.arm_templates_path)
        report.observed = True
        self._record(session, cluster, history, findings, report)
        return report

    @staticmethod
    def _skip_reason(cluster: Cluster) -> str | None:
        if cluster.status not in {status.value for status in OBSERVED_STATUSES}:
            return f"status {cluster.status}"
        if cluster.desired_deleted or cluster.observed_generation < cluster.desired_generation:
            return "converging towards a newer desired spec"
        return None

    def _record(
        self,
        session: Session,
        cluster: Cluster,
        history: DeploymentHistory,
        findings: Sequence[Finding],
        report: ObservationReport,
    ) -> None:
        now = utc_now()
        open_rows = {
            (row.kind, row.resource_id.lower()): row
            for row in session.exec(
                select(ClusterDrift).where(ClusterDrift.cluster_id == cluster.id, ClusterDrift.state == DriftState.OPEN)
            )
        }
        newest_deployment = max((row.id or 0 for row in history.rows), default=0)
        repaired_steps = _steps_repaired_since(history.rows)
        wants_reconcile = False
        for finding in findings:
            row = open_rows.pop(finding.key, None)
            if row is None:
                row = ClusterDrift(
                    cluster_id=cluster.id,
                    tenant_id=cluster.tenant_id,
                    kind=finding.kind.value,
                    resource_id=finding.resource_id,
                    step=finding.step,
                    remedy=finding.remedy.value,
                    expected=finding.expected,
                    observed=finding.observed,
                    detected_at=now,
                    last_seen_at=now,
                )
                report.detected.append(finding.kind.value)
                self._audit(session, cluster, AuditAction.CLUSTER_DRIFT_DETECTED, row, AuditOutcome.FAILURE)
                if finding.remedy == DriftRemedy.REPAIR:
                    self._request_repair(row, now, newest_deployment)
                    report.repairs_requested.append(finding.kind.value)
                    wants_reconcile = True
                else:
                    report.incidents.append(finding.kind.value)
                    self._audit(session, cluster, AuditAction.CLUSTER_DRIFT_INCIDENT, row, AuditOutcome.FAILURE)
                session.add(row)
                continue
            row.last_seen_at = now
            row.observed = finding.observed
            if row.remedy == DriftRemedy.REPAIR.value and repaired_steps.get(row.step, 0) > (
                row.repair_after_deployment_id or 0
            ):
                # Re-deployed since the repair was asked for and still different: try again, then hand it over.
                if row.repair_attempts >= self.settings.drift_repair_attempts:
                    row.remedy = DriftRemedy.INCIDENT.value
                    report.incidents.append(row.kind)
                    self._audit(session, cluster, AuditAction.CLUSTER_DRIFT_INCIDENT, row, AuditOutcome.FAILURE)
                else:
                    self._request_repair(row, now, newest_deployment)
                    report.repairs_requested.append(row.kind)
                    wants_reconcile = True
            elif row.remedy == DriftRemedy.REPAIR.value:
                # Asked for, not deployed yet, and the cluster is at rest: its reconcile message was lost (the
                # overdue sweep only looks at converging clusters). Asking again is harmless: passes are idempotent.
                wants_reconcile = True
            session.add(row)
        for row in open_rows.values():
            row.state = DriftState.RESOLVED
            row.resolved_at = now
            session.add(row)
            report.resolved.append(row.kind)
            self._audit(session, cluster, AuditAction.CLUSTER_DRIFT_RESOLVED, row, AuditOutcome.SUCCESS)
        if wants_reconcile:
            enqueue(session, ReconcileCluster(cluster_id=cluster.id))

    @staticmethod
    def _request_repair(row: ClusterDrift, now: datetime, newest_deployment: int) -> None:
        row.repair_attempts += 1
        row.repair_requested_at = now
        row.repair_after_deployment_id = newest_deployment

    @staticmethod
    def _audit(
        session: Session, cluster: Cluster, action: AuditAction, row: ClusterDrift, outcome: AuditOutcome
    ) -> None:
        details: dict[str, Any] = {
            "drift_id": row.id,
            "kind": row.kind,
            "resource_id": row.resource_id,
            "step": row.step,
            "remedy": row.remedy,
            "expected": row.expected,
            "observed": row.observed,
            "repair_attempts": row.repair_attempts,
        }
        if action == AuditAction.CLUSTER_DRIFT_INCIDENT:
            details["alert"] = "operator"
        record_audit_event(
            session,
            actor=ACTOR,
            action=action,
            subject_type="cluster",
            subject_id=cluster.id,
            tenant_id=cluster.tenant_id,
            outcome=outcome,
            details=details,
        )


def _steps_repaired_since(rows: Sequence[ArmDeployment]) -> dict[str, int]:
    """Per step, the id of its newest successful deployment."""
    newest: dict[str, int] = {}
    for row in rows:
        if row.state == DeploymentState.SUCCEEDED:
            newest[row.step] = max(newest.get(row.step, 0), row.id or 0)
    return newest


# Scheduling ---------------------------------------------------------------------------------------------------------
def slice_of(cluster_id: str, slices: int) -> int:
    """The cluster's slice of the interval: a stable hash, so each cluster has one fixed turn per interval."""
    digest = hashlib.sha256(cluster_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % slices


def current_slice(now: datetime, interval_seconds: float, slices: int) -> int:
    """Which slice a beat tick at `now` observes: the interval is cut into `slices` equal turns."""
    turn = interval_seconds / slices
    return int(now.timestamp() // turn) % slices


def due_cluster_ids(session: Session, *, slice_index: int, slices: int) -> list[str]:
    """Ready and suspended clusters of one slice (the hash is computed here: ids are random, slices balance)."""
    statement = select(Cluster.id).where(col(Cluster.status).in_([status.value for status in OBSERVED_STATUSES]))
    return [cluster_id for cluster_id in session.exec(statement) if slice_of(cluster_id, slices) == slice_index]


def enqueue_due_observations(session: Session, *, now: datetime, interval_seconds: float, slices: int) -> list[str]:
    """What one beat tick at `now` does: enqueue an observation of every cluster in that tick's slice."""
    index = current_slice(now, interval_seconds, slices)
    cluster_ids = due_cluster_ids(session, slice_index=index, slices=slices)
    for cluster_id in cluster_ids:
        enqueue(session, ObserveClusterDrift(cluster_id=cluster_id))
    return cluster_ids


def open_drifts(session: Session, cluster_id: str) -> list[ClusterDrift]:
    """The cluster's open drifts, oldest first."""
    statement = (
        select(ClusterDrift)
        .where(ClusterDrift.cluster_id == cluster_id, ClusterDrift.state == DriftState.OPEN)
        .order_by(col(ClusterDrift.detected_at))
    )
    return list(session.exec(statement).all())


def cluster_drift_history(session: Session, cluster_id: str, *, limit: int = 100) -> list[ClusterDrift]:
    """The cluster's drifts, open first, then newest first (what the portal and the JSON API show)."""
    statement = (
        select(ClusterDrift)
        .where(ClusterDrift.cluster_id == cluster_id)
        .order_by(col(ClusterDrift.state), col(ClusterDrift.detected_at).desc())
        .limit(limit)
    )
    return list(session.exec(statement).all())


def drifts_by_state(
    session: Session, *, state: DriftState, tenant_id: str | None, offset: int = 0, limit: int = 100
) -> list[ClusterDrift]:
    """Drifts of every cluster (an operator's list) or of one tenant's clusters, newest first."""
    statement = select(ClusterDrift).where(ClusterDrift.state == state.value)
    if tenant_id is not None:
        statement = statement.where(ClusterDrift.tenant_id == tenant_id)
    statement = statement.order_by(col(ClusterDrift.detected_at).desc(), col(ClusterDrift.id)).offset(offset)
    return list(session.exec(statement.limit(limit)).all())

"""The provisioning controller: compare a cluster's desired spec with what ARM holds and take the next step only.

One pass (`reconcile_cluster`) runs under the cluster's row lock and does at most one ARM write: it finishes
the bookkeeping of an in-flight deployment, then starts the first step whose parameters differ from the last
successful deployment of that step, or changes the scale set's power state, or records the cluster ready.
It never waits on ARM: a started operation is checked again by a delayed outbox message (and the beat sweep
when that message is lost). Deployment names are deterministic per step, generation and attempt, and a
pass adopts a deployment ARM already knows under that name, so a crash between the PUT and the commit
never deploys anything twice.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlmodel import Session, col, select

from core.arm_templates.steps import (
    CLUSTER,
    DIAGNOSTICS,
    DNS,
    FACADE_CLUSTER_STEPS,
    IDENTITY_KEY_VAULT,
    PRIVATE_LINK,
    bound_parameters,
    read_step_template,
)
from core.audit.actions import AuditAction
from core.audit.models import AuditOutcome
from core.audit.service import record_audit_event
from core.azure.arm import ArmAccessDenied, ArmClient, ArmClientFactory, ArmRequestFailed, DeploymentObservation
from core.catalog.models import Offer, Plan
from core.clock import utc_now
from core.clusters.drift_repairs import steps_awaiting_repair
from core.clusters.models import CLUSTER_STATES, SETTLED_CLUSTER_STATUSES, Cluster, ClusterStatus
from core.clusters.ownership import (
    OWNERSHIP_TAG,
    ResourceGroupNotOwned,
    api_version_for,
    next_deletions,
    owner_of,
    ownership_tags,
    split_group_contents,
)
from core.clusters.provisioning_models import ArmDeployment, DeploymentState
from core.clusters.service import lock_cluster
from core.errors import ConfigurationError
from core.outbox.service import enqueue
from core.settings import Settings
from core.task_payloads import ClusterConverged, ConvergenceOutcome, ReconcileCluster, SyncPrivateEndpoints
from core.tenants.models import Tenant

ACTOR = "system:provisioning-controller"

# Whether a deployment the controller does not own built the cluster (a managed application's: the customer's own
# deployment creates its resources), so that the controller observes it and never deploys it. The package that
# builds such clusters answers, handed in by whoever builds the controller: the clusters package imports none of
# the packages built on it.
BuiltElsewhere = Callable[[Session, Cluster], bool]


@dataclass(frozen=True)
class StepPlan:
    """A step with the parameters the desired spec gives it, and their fingerprint."""

    step: str
    parameters: dict[str, Any]
    parameters_hash: str


class DeploymentHistory:
    """A cluster's ARM deployment rows, read once per pass, oldest first: the pass asks it several questions
    (what runs, what each step last deployed, the first cluster step's key) instead of querying for each."""

    def __init__(self, rows: Sequence[ArmDeployment]) -> None:
        self.rows = list(rows)

    @classmethod
    def load(cls, session: Session, cluster_id: str) -> DeploymentHistory:
        """Every deployment row of the cluster, in id order."""
        statement = select(ArmDeployment).where(ArmDeployment.cluster_id == cluster_id).order_by(col(ArmDeployment.id))
        return cls(session.exec(statement).all())

    def add(self, row: ArmDeployment) -> None:
        """A row this pass created."""
        self.rows.append(row)

    def in_flight(self) -> ArmDeployment | None:
        """The newest running deployment."""
        running = [row for row in self.rows if row.state == DeploymentState.RUNNING]
        return running[-1] if running else None

    def deployed_hashes(self) -> dict[str, str]:
        """Per step, the parameter fingerprint of its latest successful deployment."""
        return {row.step: row.parameters_hash for row in self.rows if row.state == DeploymentState.SUCCEEDED}

    def latest_outputs(self) -> dict[str, dict[str, Any]]:
        """Per step, the outputs of its latest successful deployment."""
        return {row.step: row.outputs for row in self.rows if row.state == DeploymentState.SUCCEEDED}

    def owned_resource_ids(self) -> set[str]:
        """Every resource id our deployments reported creating, failed runs included (what deletion may remove)."""
        return {resource_id for row in self.rows for resource_id in row.output_resources or []}

    def deployed_into(self, resource_group: str) -> bool:
        """True once any deployment of ours was started in that group."""
        return any(row.resource_group.lower() == resource_group.lower() for row in self.rows)

    def first_of_step(self, step: str) -> ArmDeployment | None:
        """The step's oldest deployment, whatever its state."""
        return next((row for row in self.rows if row.step == step), None)

    def attempts(self, step: str, generation: int) -> int:
        """How many deployments the step already has for this generation."""
        return sum(1 for row in self.rows if row.step == step and row.generation == generation)


def parameters_fingerprint(parameters: Mapping[str, Any]) -> str:
    """A stable hash of a step's parameters: equal fingerprints mean the step has nothing to change."""
    return hashlib.sha256(json.dumps(parameters, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def first_step_to_deploy(plans: Sequence[StepPlan], deployed_hashes: Mapping[str, str]) -> StepPlan | None:
    """The first step whose last successful deployment used other parameters (or never ran); None when all match."""
    for plan in plans:
        if deployed_hashes.get(plan.step) != plan.parameters_hash:
            return plan
    return None


def status_while_deploying(status: ClusterStatus) -> ClusterStatus:
    """Which status a cluster shows while a step is deployed, given where it was."""
    if status in (ClusterStatus.READY, ClusterStatus.UPDATING):
        return ClusterStatus.UPDATING
    if status in (ClusterStatus.SUSPENDED, ClusterStatus.RESUMING):
        return ClusterStatus.RESUMING
    return ClusterStatus.PROVISIONING


def deployment_name_for(cluster_name: str, step: str, generation: int, attempt: int) -> str:
    """Deterministic ARM deployment name; a retry of the same step and generation gets an attempt suffix."""
    name = f"{cluster_name}-{step}-g{generation}"
    return name if attempt == 1 else f"{name}-a{attempt}"


def retry_delay_seconds(base_seconds: float, attempts: int) -> float:
    """Exponential backoff with up to 20% jitter, so a burst of failures does not come back in lockstep."""
    delay: float = base_seconds * (2 ** max(0, attempts - 1))
    return delay * (1 + random.uniform(0, 0.2))


@cache
def _step_template(templates: Path, step_name: str) -> dict[str, Any]:
    for step in FACADE_CLUSTER_STEPS:
        if step.name == step_name:
            return read_step_template(templates, step)
    raise KeyError(step_name)


def _new_admin_public_key() -> str:
    # Nobody logs in with it (nodes are managed by the image); the template requires a key, never a password.
    private_key = ed25519.Ed25519PrivateKey.generate()
    public = private_key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode()


class ClusterController:
    """Runs reconcile passes for clusters; holds the ARM client factory of this process."""

    def __init__(self, settings: Settings, arm_clients: ArmClientFactory, *, built_elsewhere: BuiltElsewhere) -> None:
        self.settings = settings
        self.arm_clients = arm_clients
        self.built_elsewhere = built_elsewhere
        # A tenant row's Entra tenant id never changes: one read per tenant and process, not one per pass.
        self._entra_tenant_ids: dict[str, str] = {}

    # Entry point ------------------------------------------------------------------------------------------------
    def reconcile(self, session: Session, cluster_id: str) -> None:
        """One pass for one cluster under its row lock; the caller's transaction commits what it did."""
        # The pass's reads never depend on its own pending writes: everything goes out in one flush at commit.
        with session.no_autoflush:
            self._reconcile(session, cluster_id)

    def _reconcile(self, session: Session, cluster_id: str) -> None:
        cluster = lock_cluster(session, cluster_id)
        # The customer's own deployment built a managed application's cluster: it is observed, never deployed.
        if self.built_elsewhere(session, cluster):
            return
        # A failed cluster waits for an operator retry, except that an unsubscribe still stops and deletes it.
        deletion_pending = cluster.desired_deleted and cluster.observed_generation < cluster.desired_generation
        if cluster.status == ClusterStatus.DELETED or (cluster.status == ClusterStatus.FAILED and not deletion_pending):
            cluster.next_attempt_at = None
            return
        try:
            arm = self._arm_for(session, cluster)
            self._converge(session, cluster, arm, DeploymentHistory.load(session, cluster.id))
        except ArmAccessDenied as error:
            self._fail(session, cluster, "ArmAccessDenied", error.message, [])
        except ArmRequestFailed as error:
            # Throttling and 5xx were already retried by the SDK; what is left counts against the retry budget.
            self._record_failed_attempt(session, cluster, error.arm_code, error.message, error.arm_details)
        cluster.updated_at = utc_now()
        session.add(cluster)

    def _arm_for(self, session: Session, cluster: Cluster) -> ArmClient:
        entra_tenant_id = self._entra_tenant_ids.get(cluster.tenant_id)
        if entra_tenant_id is None:
            tenant = session.get(Tenant, cluster.tenant_id)
            if tenant is None:
                raise ConfigurationError(f"cluster {cluster.id} has no tenant row")
            entra_tenant_id = self._entra_tenant_ids[cluster.tenant_id] = tenant.entra_tenant_id
        return self.arm_clients.for_subscription(entra_tenant_id, cluster.azure_subscription_id)

    def _converge(self, session: Session, cluster: Cluster, arm: ArmClient, history: DeploymentHistory) -> None:
        in_flight = history.in_flight()
        known: dict[str, DeploymentObservation] | None = None
        if in_flight is not None:
            # One list answers both questions of this pass: has the running step ended, and does ARM already hold
            # the next step's deployment name (a PUT whose commit was lost). The row lock keeps it current.
            known = arm.list_deployments(in_flight.resource_group)
            if not self._settle_in_flight(session, cluster, arm, in_flight, known.get(in_flight.deployment_name)):
                return
            if in_flight.resource_group != cluster.resource_group:
                known = None  # the next step deploys elsewhere: this list says nothing about it
        if cluster.desired_deleted:
            self._converge_deletion(session, cluster, arm, history)
            return
        plans = self.step_plans(session, cluster, history)
        if plans is None:
            return
        deployed = history.deployed_hashes()
        # A drift repair re-runs a step whose resources changed out of band, as if it had never been deployed.
        # Only a cluster that once converged can have drift: a first provisioning skips the query.
        if cluster.observed_generation > 0:
            for step in steps_awaiting_repair(session, cluster.id, history.rows):
                deployed.pop(step, None)
        plan = first_step_to_deploy(plans, deployed)
        if plan is not None:
            self._start_step(session, cluster, arm, plan, known, history)
            return
        if not self._converge_power(session, cluster, arm, history):
            return
        self._record_converged(session, cluster, history)

    # In-flight deployments ----------------------------------------------------------------------------------------
    def _settle_in_flight(
        self,
        session: Session,
        cluster: Cluster,
        arm: ArmClient,
        row: ArmDeployment,
        observation: DeploymentObservation | None,
    ) -> bool:
        """Record the end of a running deployment from ARM's view of it; False while it still runs or when it failed."""
        now = utc_now()
        if observation is not None and not observation.finished:
            self._schedule_check(session, cluster, self.settings.provisioning_poll_interval_seconds)
            return False
        row.finished_at = now
        if observation is not None and observation.succeeded:
            row.state = DeploymentState.SUCCEEDED
            row.outputs = observation.outputs
            row.output_resources = list(observation.output_resources)
            session.add(row)
            cluster.attempts = 0
            self._audit_step(session, cluster, row, AuditAction.CLUSTER_STEP_SUCCEEDED, AuditOutcome.SUCCESS)
            if row.step == PRIVATE_LINK:
                # Connections can arrive as soon as the PLS exists, before the cluster is ready.
                cluster.pls_resource_id = observation.outputs.get("privateLinkServiceResourceId")
                cluster.pls_alias = observation.outputs.get("privateLinkServiceAlias")
                enqueue(session, SyncPrivateEndpoints(cluster_id=cluster.id))
            return True
        error = observation.error if observation is not None else None
        if observation is not None:
            # What a failed run created before it stopped is ours too (deletion must be able to remove it).
            row.output_resources = arm.created_by_deployment(row.resource_group, row.deployment_name)
        row.state = DeploymentState.FAILED
        row.error_code = error.code if error else "DeploymentNotFound"
        row.error_message = (error.message if error else "ARM no longer knows this deployment")[:4096]
        row.error_details = error.details if error else []
        session.add(row)
        self._audit_step(session, cluster, row, AuditAction.CLUSTER_STEP_FAILED, AuditOutcome.FAILURE)
        self._record_failed_attempt(session, cluster, row.error_code, row.error_message, row.error_details)
        return False

    # Step selection -----------------------------------------------------------------------------------------------
    @staticmethod
    def _admin_public_key(history: DeploymentHistory) -> str:
        # Reuse the key of the first cluster deployment, so a scale change does not also change the nodes' key.
        first = history.first_of_step(CLUSTER)
        if first is not None and first.parameters.get("adminSshPublicKey"):
            return str(first.parameters["adminSshPublicKey"])
        return _new_admin_public_key()

    def step_plans(self, session: Session, cluster: Cluster, history: DeploymentHistory) -> list[StepPlan] | None:
        """Every step's parameters for the desired spec, as far as earlier outputs allow (later steps wait)."""
        # The plan and its offer in one round trip (this runs on every pass that may start a step).
        found = session.exec(
            select(Plan, Offer)
            .join(Offer, col(Offer.id) == col(Plan.offer_id), isouter=True)
            .where(Plan.plan_id == cluster.desired_plan_id)
        ).first()
        if found is None:
            self._fail(session, cluster, "UnknownPlan", f"plan {cluster.desired_plan_id!r} is not in the catalog", [])
            return None
        plan_row, offer = found
        key_policy = cluster.key_policy or {}
        rotation_days = int(key_policy.get("rotation_days", 90))
        expiry_days = max(28, rotation_days + 30)
        own: dict[str, dict[str, Any]] = {
            IDENTITY_KEY_VAULT: {
                "clusterName": cluster.name,
                "location": cluster.region,
                "keyVaultSku": key_policy.get("key_vault_sku", "standard"),
                "keyType": key_policy.get("key_type", "RSA"),
                "keySize": int(key_policy.get("key_size", 3072)),
                "keyExpiryDays": expiry_days,
                "keyRotationDaysBeforeExpiry": expiry_days - rotation_days,
            },
            CLUSTER: {
                "clusterName": cluster.name,
                "location": cluster.region,
                "vmSize": plan_row.vm_size,
                "instanceCount": plan_row.nodes_per_unit * cluster.desired_quantity,
                "blobApiPort": offer.blob_api_port if offer else 443,
            },
            PRIVATE_LINK: {
                "clusterName": cluster.name,
                "location": cluster.region,
                "visibilitySubscriptionIds": list(cluster.pls_visibility_subscriptions),
                "autoApprovalSubscriptionIds": list(cluster.pls_auto_approval_subscriptions),
            },
            DNS: {"clusterName": cluster.name},
            DIAGNOSTICS: {"clusterName": cluster.name, "location": cluster.region},
        }
        outputs = history.latest_outputs()
        plans: list[StepPlan] = []
        for step in FACADE_CLUSTER_STEPS:
            try:
                wired = bound_parameters(step, outputs)
            except KeyError:
                break  # an earlier step has not produced its outputs yet
            parameters = {**own[step.name], **wired}
            fingerprint = parameters_fingerprint(parameters)
            if step.name == CLUSTER:
                # The SSH key is not part of the desired spec: keep it out of the fingerprint.
                parameters = {**parameters, "adminSshPublicKey": self._admin_public_key(history)}
            plans.append(StepPlan(step.name, parameters, fingerprint))
        return plans

    # Starting a step ------------------------------------------------------------------------------------------------
    def _start_step(
        self,
        session: Session,
        cluster: Cluster,
        arm: ArmClient,
        plan: StepPlan,
        known: Mapping[str, DeploymentObservation] | None,
        history: DeploymentHistory,
    ) -> None:
        """PUT the step's deployment unless ARM already holds its name; `known` is this pass's list of the group."""
        generation = cluster.desired_generation
        attempt = history.attempts(plan.step, generation) + 1
        name = deployment_name_for(cluster.name, plan.step, generation, attempt)
        self._move(session, cluster, status_while_deploying(ClusterStatus(cluster.status)))
        group_created = False
        if plan.step == IDENTITY_KEY_VAULT:
            owned = self._ensure_own_group(session, cluster, arm, history)
            if owned is None:
                return
            group_created = owned
        # A crash after an earlier PUT but before its commit leaves ARM with a deployment we have no row for:
        # adopt it instead of submitting it again. A group this pass created holds no deployment yet.
        existing = None
        if not group_created:
            existing = known.get(name) if known is not None else arm.get_deployment(cluster.resource_group, name)
        if existing is None:
            template = _step_template(self.settings.arm_templates_path, plan.step)
            arm.begin_deployment(cluster.resource_group, name, template, plan.parameters)
        row = ArmDeployment(
            cluster_id=cluster.id,
            step=plan.step,
            generation=generation,
            attempt=attempt,
            deployment_name=name,
            resource_group=cluster.resource_group,
            parameters=plan.parameters,
            parameters_hash=plan.parameters_hash,
        )
        session.add(row)
        history.add(row)
        cluster.current_step = plan.step
        cluster.arm_deployment_name = name
        self._audit_step(session, cluster, row, AuditAction.CLUSTER_STEP_STARTED, AuditOutcome.SUCCESS)
        self._schedule_check(session, cluster, self.settings.provisioning_poll_interval_seconds)

    def _ensure_own_group(
        self, session: Session, cluster: Cluster, arm: ArmClient, history: DeploymentHistory
    ) -> bool | None:
        """Create the cluster's group, or confirm an existing one is ours; True when created, None when refused.

        An existing group is never PUT again (that would replace the customer's tags): our tag is merged in.
        A group someone else holds (created after confirmation, or tagged for another cluster) fails the
        cluster with the reason, before anything is deployed into it.
        """
        tags = ownership_tags(cluster.name)
        group = arm.get_resource_group(cluster.resource_group)
        if group is None:
            return arm.create_resource_group(cluster.resource_group, cluster.region, tags)
        owner = owner_of(group.tags)
        if owner == cluster.name or (owner is None and history.deployed_into(cluster.resource_group)):
            if owner is None:
                arm.merge_resource_group_tags(cluster.resource_group, tags)  # the customer removed it: put it back
            return False
        message = (
            f"Resource group '{cluster.resource_group}' exists and is not this cluster's "
            f"({OWNERSHIP_TAG}={owner or 'missing'}): nothing was deployed into it. Choose a new resource group."
        )
        self._fail(session, cluster, ResourceGroupNotOwned.code, message, [])
        return None

    # Power state (suspend / reinstate) -------------------------------------------------------------------------------
    @staticmethod
    def _scale_set_name(history: DeploymentHistory) -> str | None:
        outputs = history.latest_outputs().get(CLUSTER) or {}
        name = outputs.get("scaleSetName")
        return str(name) if name else None

    def _converge_power(self, session: Session, cluster: Cluster, arm: ArmClient, history: DeploymentHistory) -> bool:
        """Make the scale set's power match `desired_suspended`; True when it does."""
        status = ClusterStatus(cluster.status)
        scale_set = self._scale_set_name(history)
        if scale_set is None:
            return True
        if cluster.desired_suspended:
            if status == ClusterStatus.SUSPENDED:
                return True
            power = arm.scale_set_power_state(cluster.resource_group, scale_set)
            if power == "deallocated":
                if status == ClusterStatus.RESUMING:
                    # A drift repair re-deployed a step of a suspended cluster; the scale set stayed deallocated.
                    self._move(session, cluster, ClusterStatus.READY)
                    self._move(session, cluster, ClusterStatus.SUSPENDING)
                return True
            if status != ClusterStatus.SUSPENDING:
                if status not in (ClusterStatus.READY, ClusterStatus.UPDATING):
                    # Provisioning or resuming first ends in ready; suspending starts from there.
                    self._move(session, cluster, ClusterStatus.READY)
                self._move(session, cluster, ClusterStatus.SUSPENDING)
                cluster.current_step = "deallocate"
                arm.begin_deallocate_scale_set(cluster.resource_group, scale_set)
                self._audit(session, cluster, AuditAction.CLUSTER_SUSPEND_STARTED, {"scale_set": scale_set})
            self._schedule_check(session, cluster, self.settings.provisioning_poll_interval_seconds)
            return False
        if status not in (ClusterStatus.SUSPENDED, ClusterStatus.SUSPENDING, ClusterStatus.RESUMING):
            return True
        power = arm.scale_set_power_state(cluster.resource_group, scale_set)
        if power == "running":
            return True
        if status != ClusterStatus.RESUMING or cluster.current_step != "start":
            self._move(session, cluster, ClusterStatus.RESUMING)
            cluster.current_step = "start"
            arm.begin_start_scale_set(cluster.resource_group, scale_set)
            self._audit(session, cluster, AuditAction.CLUSTER_RESUME_STARTED, {"scale_set": scale_set})
        self._schedule_check(session, cluster, self.settings.provisioning_poll_interval_seconds)
        return False

    # Unsubscribe: stop, keep for the retention period, then delete --------------------------------------------------
    def _converge_deletion(
        self, session: Session, cluster: Cluster, arm: ArmClient, history: DeploymentHistory
    ) -> None:
        now = utc_now()
        if cluster.status != ClusterStatus.DEPROVISIONING or cluster.retention_until is None:
            scale_set = self._scale_set_name(history)
            if scale_set is not None and arm.scale_set_power_state(cluster.resource_group, scale_set) not in (
                None,
                "deallocated",
            ):
                arm.begin_deallocate_scale_set(cluster.resource_group, scale_set)
            self._move(session, cluster, ClusterStatus.DEPROVISIONING)
            cluster.retention_until = now + timedelta(days=self.settings.cluster_retention_days)
            cluster.current_step = "retention"
            self._audit(
                session,
                cluster,
                AuditAction.CLUSTER_STOPPED_FOR_RETENTION,
                {"retention_until": str(cluster.retention_until)},
            )
            self._announce(
                session, cluster, ConvergenceOutcome.CONVERGED, "stopped; data kept until the retention period ends"
            )
            cluster.observed_generation = cluster.desired_generation
        retention_until = cluster.retention_until or now
        if now < retention_until:
            self._schedule_check(session, cluster, (retention_until - now).total_seconds())
            return
        if not arm.resource_group_exists(cluster.resource_group):
            self._record_deleted(session, cluster, [])
            return
        ours, foreign = split_group_contents(
            arm.list_group_resource_ids(cluster.resource_group), history.owned_resource_ids()
        )
        if not foreign:
            # Everything in the group is ours: the group goes, and ARM deletes its resources with it.
            if cluster.current_step != "delete-resource-group":
                arm.begin_delete_resource_group(cluster.resource_group)
                cluster.current_step = "delete-resource-group"
                self._audit(
                    session, cluster, AuditAction.CLUSTER_DELETE_STARTED, {"resource_group": cluster.resource_group}
                )
            self._schedule_check(session, cluster, self.settings.provisioning_poll_interval_seconds)
            return
        if ours:
            # Someone else's resources share the group: delete ours one tier at a time and keep the group.
            batch = next_deletions(ours)
            for resource_id in batch:
                arm.begin_delete_resource(resource_id, api_version_for(resource_id))
            cluster.current_step = "delete-own-resources"
            self._audit(
                session,
                cluster,
                AuditAction.CLUSTER_DELETE_RESOURCES_STARTED,
                {"resource_group": cluster.resource_group, "resources": batch, "kept": foreign},
            )
            self._schedule_check(session, cluster, self.settings.provisioning_poll_interval_seconds)
            return
        self._record_deleted(session, cluster, foreign)

    def _record_deleted(self, session: Session, cluster: Cluster, leftovers: list[str]) -> None:
        """The cluster is gone; what others put in its group stays there and is shown to the operator."""
        self._move(session, cluster, ClusterStatus.DELETED)
        cluster.current_step = None
        cluster.next_attempt_at = None
        cluster.leftover_resource_ids = sorted(leftovers)
        details: dict[str, Any] = {"resource_group": cluster.resource_group}
        if leftovers:
            details |= {"resource_group_kept": True, "leftover_resources": sorted(leftovers), "alert": "operator"}
        self._audit(session, cluster, AuditAction.CLUSTER_DELETED, details)

    # Outcomes -------------------------------------------------------------------------------------------------------
    def _record_converged(self, session: Session, cluster: Cluster, history: DeploymentHistory) -> None:
        outputs = history.latest_outputs()
        identity = outputs.get(IDENTITY_KEY_VAULT, {})
        link = outputs.get(PRIVATE_LINK, {})
        cluster.endpoint_fqdn = outputs.get(DNS, {}).get("endpointFqdn") or cluster.endpoint_fqdn
        cluster.pls_alias = link.get("privateLinkServiceAlias") or cluster.pls_alias
        cluster.pls_resource_id = link.get("privateLinkServiceResourceId") or cluster.pls_resource_id
        cluster.identity_id = identity.get("identityResourceId") or cluster.identity_id
        # A rotation since the key step ran leaves a newer version on the cluster: keep it.
        if cluster.key_id is None:
            cluster.key_id = identity.get("keyIdWithVersion")
        target = ClusterStatus.SUSPENDED if cluster.desired_suspended else ClusterStatus.READY
        self._move(session, cluster, target)
        cluster.current_step = None
        cluster.next_attempt_at = None
        cluster.attempts = 0
        cluster.last_error_code = cluster.last_error_message = None
        cluster.last_error_details = []
        if cluster.observed_generation != cluster.desired_generation:
            cluster.observed_generation = cluster.desired_generation
            cluster.observed_plan_id = cluster.desired_plan_id
            cluster.observed_quantity = cluster.desired_quantity
            self._audit(
                session,
                cluster,
                AuditAction.cluster_converged_to(target.value),
                {"generation": cluster.desired_generation},
            )
            self._announce(session, cluster, ConvergenceOutcome.CONVERGED, None)

    def _record_failed_attempt(
        self, session: Session, cluster: Cluster, code: str, message: str, details: list[dict[str, Any]]
    ) -> None:
        """Keep ARM's error; try again after a backoff, or fail the cluster once the retry budget is spent."""
        cluster.attempts += 1
        cluster.last_error_code = code[:128]
        cluster.last_error_message = message[:4096]
        cluster.last_error_details = details
        if cluster.attempts >= self.settings.provisioning_retry_budget:
            self._fail(session, cluster, code, message, details)
            return
        delay = retry_delay_seconds(self.settings.provisioning_retry_backoff_seconds, cluster.attempts)
        self._schedule_check(session, cluster, delay, replace=True)

    def _fail(self, session: Session, cluster: Cluster, code: str, message: str, details: list[dict[str, Any]]) -> None:
        """Mark the cluster failed (an operator retry re-enters), alert operators, tell the subscription side."""
        cluster.last_error_code = code[:128]
        cluster.last_error_message = message[:4096]
        cluster.last_error_details = details
        cluster.next_attempt_at = None
        self._move(session, cluster, ClusterStatus.FAILED)
        record_audit_event(
            session,
            actor=ACTOR,
            action=AuditAction.CLUSTER_FAILED,
            subject_type="cluster",
            subject_id=cluster.id,
            tenant_id=cluster.tenant_id,
            outcome=AuditOutcome.FAILURE,
            details={
                "code": code,
                "message": message,
                "details": details,
                "attempts": cluster.attempts,
                "generation": cluster.desired_generation,
                "alert": "operator",
            },
        )
        self._announce(session, cluster, ConvergenceOutcome.FAILED, f"{code}: {message}")

    # Helpers ----------------------------------------------------------------------------------------------------------
    def _schedule_check(
        self, session: Session, cluster: Cluster, delay_seconds: float, *, replace: bool = False
    ) -> None:
        """Enqueue the next pass after a delay, unless an earlier one is already due (keeps one chain per cluster)."""
        now = utc_now()
        due = now + timedelta(seconds=delay_seconds)
        pending = cluster.next_attempt_at
        if not replace and pending is not None and now < pending <= due:
            return
        cluster.next_attempt_at = due
        enqueue(session, ReconcileCluster(cluster_id=cluster.id), delay_seconds=delay_seconds)

    def _move(self, session: Session, cluster: Cluster, target: ClusterStatus) -> None:
        current = ClusterStatus(cluster.status)
        if current == target:
            return
        CLUSTER_STATES.check(current, target)
        cluster.status = target
        if target == ClusterStatus.READY and cluster.first_ready_at is None:
            cluster.first_ready_at = utc_now()
        session.add(cluster)

    def _announce(self, session: Session, cluster: Cluster, outcome: ConvergenceOutcome, reason: str | None) -> None:
        enqueue(
            session,
            ClusterConverged(
                cluster_id=cluster.id, generation=cluster.desired_generation, outcome=outcome, reason=reason
            ),
        )

    def _audit(self, session: Session, cluster: Cluster, action: AuditAction, details: dict[str, Any]) -> None:
        record_audit_event(
            session,
            actor=ACTOR,
            action=action,
            subject_type="cluster",
            subject_id=cluster.id,
            tenant_id=cluster.tenant_id,
            details=details,
        )

    def _audit_step(
        self, session: Session, cluster: Cluster, row: ArmDeployment, action: AuditAction, outcome: AuditOutcome
    ) -> None:
        details: dict[str, Any] = {
            "step": row.step,
            "generation": row.generation,
            "attempt": row.attempt,
            "deployment_name": row.deployment_name,
        }
        if row.error_code:
            details["error"] = {"code": row.error_code, "message": row.error_message, "details": row.error_details}
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


def overdue_cluster_ids(session: Session, *, now: datetime, grace: timedelta, limit: int = 500) -> list[str]:
    """Clusters still converging whose next check is overdue (its message was lost) or was never scheduled."""
    unsettled = col(Cluster.status).notin_([status.value for status in SETTLED_CLUSTER_STATUSES])
    behind = (
        (Cluster.observed_generation < Cluster.desired_generation)
        & (Cluster.status != ClusterStatus.FAILED)
        & (Cluster.status != ClusterStatus.DELETED)
    )
    # A cluster just changed has its reconcile message on the way: only one quiet for `grace` counts as lost.
    never_scheduled = col(Cluster.next_attempt_at).is_(None) & (Cluster.updated_at < now - grace)
    overdue = never_scheduled | (col(Cluster.next_attempt_at) < now - grace)
    statement = select(Cluster.id).where(unsettled | behind).where(overdue).limit(limit)
    return list(session.exec(statement).all())

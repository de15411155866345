"""Confirm a managed application with ARM and record what it holds: tenant, managed resource group and cluster.

A notification is only a hint (anyone holding the endpoint's secret could send one), so the observer reads the
application back from ARM as the publisher: the control-plane app signed in to the PUBLISHER tenant, reaching the
customer's subscription through the offer's publisher authorizations. For managed applications the customer's
own deployment creates the resources, so the cluster row is observed (status ready, generations equal) and the
provisioning controller never deploys it. Running a pass twice changes nothing the second time.

When ARM refuses the publisher (no cross-tenant authorization yet, or a permanent ARM error) the failure is audited
in this transaction, the message completes, and a delayed observation is enqueued through the outbox with an
attempt number: the audit survives, no worker sleeps, and the application is observed once access appears.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, select

from core.audit.actions import AuditAction
from core.audit.models import AuditEvent, AuditOutcome
from core.audit.service import record_audit_event
from core.azure.arm import ArmAccessDenied, ArmClientFactory, ArmRequestFailed
from core.catalog.models import Plan
from core.clock import utc_now
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.service import cluster_name_for
from core.db import lock_rows
from core.managed_apps.models import ManagedApplication, ManagedAppProvisioningState
from core.outbox.service import enqueue
from core.settings import Settings
from core.task_payloads import ObserveManagedApplication
from core.tenants.service import get_or_create_tenant

ACTOR = "system:managed-app-observer"
APPLICATIONS_API_VERSION = "2019-07-01"
# Access is usually missing only while the publisher authorization propagates; back off up to an hour, then stop
# (the next notification for the application starts a new chain).
RETRY_BASE_SECONDS = 30.0
RETRY_MAX_SECONDS = 3600.0
MAX_ATTEMPTS = 12
# mainTemplate output -> Cluster column.
CLUSTER_OUTPUTS = {
    "endpointFqdn": "endpoint_fqdn",
    "privateLinkServiceAlias": "pls_alias",
    "privateLinkServiceResourceId": "pls_resource_id",
    "keyIdWithVersion": "key_id",
    "identityResourceId": "identity_id",
}
LIVE_STATES = frozenset(
    {
        ManagedAppProvisioningState.ACCEPTED.value,
        ManagedAppProvisioningState.SUCCEEDED.value,
        ManagedAppProvisioningState.UPDATING.value,
    }
)
GONE_STATES = frozenset({ManagedAppProvisioningState.DELETING.value, ManagedAppProvisioningState.DELETED.value})


class ObservationOutcome(StrEnum):
    """What one observation pass did."""

    OBSERVED = "observed"
    UNCHANGED = "unchanged"
    NOT_CONFIRMED = "not_confirmed"
    ACCESS_FAILED = "access_failed"
    GAVE_UP = "gave_up"
    MISSING = "missing"


@dataclass(frozen=True)
class ApplicationFacts:
    """What ARM says about a Microsoft.Solutions/applications resource, reduced to what we use."""

    provisioning_state: str
    location: str
    managed_resource_group_id: str | None
    parameters: dict[str, Any]
    outputs: dict[str, Any]

    @classmethod
    def from_arm(cls, body: dict[str, Any]) -> ApplicationFacts:
        """Parse leniently: parameters and outputs may be `{name: {"value": v}}` or plain `{name: v}`."""
        properties = body.get("properties") or {}
        return cls(
            provisioning_state=str(properties.get("provisioningState") or "Unknown"),
            location=str(body.get("location") or "").lower().replace(" ", ""),
            managed_resource_group_id=properties.get("managedResourceGroupId"),
            parameters=_plain_values(properties.get("parameters")),
            outputs=_plain_values(properties.get("outputs")),
        )


def _plain_values(section: Any) -> dict[str, Any]:
    if not isinstance(section, dict):
        return {}
    return {
        name: value["value"] if isinstance(value, dict) and "value" in value else value
        for name, value in section.items()
    }


def _resource_group_parts(resource_group_id: str) -> tuple[str, str] | None:
    """(subscription id, resource group name) of `/subscriptions/{s}/resourceGroups/{name}`."""
    parts = [part for part in resource_group_id.split("/") if part]
    if len(parts) != 4 or parts[0].lower() != "subscriptions" or parts[2].lower() != "resourcegroups":
        return None
    return parts[1].lower(), parts[3]


def retry_delay_seconds(attempt: int) -> float:
    """Delay before observation attempt `attempt + 1`: doubling from RETRY_BASE_SECONDS, capped."""
    return float(min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, attempt - 1)))


def built_by_managed_application(session: Session, cluster: Cluster) -> bool:
    """Whether a managed application's own deployment built the cluster, which the observer then records.

    The provisioning controller asks (handed this function where it is built) and never deploys such a cluster. A
    cluster row naming an application that was never notified is not one: the controller deploys it.
    """
    if cluster.managed_application_id is None:
        return False
    owner = session.exec(
        select(ManagedApplication.id).where(ManagedApplication.application_id == cluster.managed_application_id)
    ).first()
    return owner is not None


class ManagedApplicationObserver:
    """Observes managed applications with the publisher's ARM access; holds this process's ARM client factory."""

    def __init__(self, settings: Settings, arm_clients: ArmClientFactory) -> None:
        self.settings = settings
        self.arm_clients = arm_clients

    def observe(self, session: Session, managed_application_id: str, attempt: int = 1) -> ObservationOutcome:
        """One pass under the application's row lock; the caller's transaction commits what it recorded."""
        application = session.exec(
            lock_rows(select(ManagedApplication).where(ManagedApplication.id == managed_application_id))
        ).first()
        if application is None:
            return ObservationOutcome.MISSING
        arm = self.arm_clients.for_subscription(self.settings.publisher_tenant_id, application.azure_subscription_id)
        try:
            body = arm.get_resource(application.application_id, APPLICATIONS_API_VERSION)
            customer_tenant_id = arm.subscription_tenant_id()
        except ArmAccessDenied as error:
            return self._record_access_failure(session, application, attempt, "ArmAccessDenied", error.message)
        except ArmRequestFailed as error:
            if error.transient:
                raise  # throttling and outages: the consumer's own retry with backoff is the right tool
            return self._record_access_failure(session, application, attempt, error.arm_code, error.message)
        facts = ApplicationFacts.from_arm(body) if body is not None else None
        refusal = _unconfirmed_reason(application.provisioning_state, facts)
        if refusal is not None:
            return self._record_not_confirmed(session, application, refusal, facts)
        changed = self._link(session, application, customer_tenant_id, facts)
        state = application.provisioning_state
        if state == ManagedAppProvisioningState.SUCCEEDED.value and facts is not None:
            changed = self._observe_cluster(session, application, facts) or changed
        elif state in GONE_STATES:
            changed = self._observe_removal(session, application) or changed
        if changed:
            application.verified_at = utc_now()
            application.updated_at = application.verified_at
            session.add(application)
            session.flush()
            return ObservationOutcome.OBSERVED
        return ObservationOutcome.UNCHANGED

    # Linking -----------------------------------------------------------------------------------------------------
    def _link(
        self, session: Session, application: ManagedApplication, customer_tenant_id: str, facts: ApplicationFacts | None
    ) -> bool:
        tenant = get_or_create_tenant(session, customer_tenant_id)
        managed_group = facts.managed_resource_group_id if facts else application.managed_resource_group_id
        before = {
            "tenant_id": application.tenant_id,
            "managed_resource_group_id": application.managed_resource_group_id,
        }
        after = {"tenant_id": tenant.id, "managed_resource_group_id": managed_group}
        if before == after:
            return False
        application.tenant_id = tenant.id
        application.managed_resource_group_id = managed_group
        session.add(application)
        session.flush()
        record_audit_event(
            session,
            actor=ACTOR,
            action=AuditAction.MANAGED_APP_VERIFIED,
            subject_type="managed_application",
            subject_id=application.id,
            tenant_id=tenant.id,
            before=before,
            after=after,
            details={"application_id": application.application_id, "entra_tenant_id": customer_tenant_id},
        )
        return True

    # Cluster -----------------------------------------------------------------------------------------------------
    def _observe_cluster(self, session: Session, application: ManagedApplication, facts: ApplicationFacts) -> bool:
        placement = _resource_group_parts(facts.managed_resource_group_id or "")
        # Checked by _unconfirmed_reason and set by _link before this runs.
        assert placement is not None
        assert application.tenant_id is not None
        plan = session.exec(
            select(Plan).where(Plan.offer_id == application.plan_product, Plan.plan_id == application.plan_id)
        ).one()
        cluster = session.exec(
            lock_rows(select(Cluster).where(Cluster.managed_application_id == application.application_id))
        ).first()
        if cluster is not None and cluster.status == ClusterStatus.DELETED:
            return False  # deleted is final; a new deployment of the same name is a new application
        spec: dict[str, Any] = {
            "desired_plan_id": application.plan_id,
            "desired_quantity": _quantity_from_parameters(facts.parameters, plan),
            "pls_visibility_subscriptions": _string_list(facts.parameters.get("visibilitySubscriptionIds")),
            "pls_auto_approval_subscriptions": _string_list(facts.parameters.get("autoApprovalSubscriptionIds")),
        }
        observed: dict[str, Any] = {
            "tenant_id": application.tenant_id,
            "region": facts.location,
            "azure_subscription_id": placement[0],
            "resource_group": placement[1],
            **{column: facts.outputs.get(output) for output, column in CLUSTER_OUTPUTS.items()},
        }
        if cluster is None:
            cluster = Cluster(
                managed_application_id=application.application_id,
                name=cluster_name_for(application.id),
                status=ClusterStatus.READY,
                **spec,
                **observed,
            )
            before = None
        else:
            before = _cluster_view(cluster)
            if any(getattr(cluster, field) != value for field, value in spec.items()):
                cluster.desired_generation += 1
            for field, value in {**spec, **observed}.items():
                setattr(cluster, field, value)
            cluster.status = ClusterStatus.READY
        if cluster.first_ready_at is None:
            cluster.first_ready_at = utc_now()
        # The customer's deployment already converged: what ARM shows is the observed state of this generation.
        cluster.observed_generation = cluster.desired_generation
        cluster.observed_plan_id = cluster.desired_plan_id
        cluster.observed_quantity = cluster.desired_quantity
        after = _cluster_view(cluster)
        if before == after:
            return False
        cluster.updated_at = utc_now()
        session.add(cluster)
        session.flush()
        record_audit_event(
            session,
            actor=ACTOR,
            action=AuditAction.CLUSTER_OBSERVED_FROM_MANAGED_APP,
            subject_type="cluster",
            subject_id=cluster.id,
            tenant_id=cluster.tenant_id,
            before=before,
            after=after,
            details={"application_id": application.application_id},
        )
        return True

    def _observe_removal(self, session: Session, application: ManagedApplication) -> bool:
        cluster = session.exec(
            lock_rows(select(Cluster).where(Cluster.managed_application_id == application.application_id))
        ).first()
        if cluster is None:
            return False
        target = (
            ClusterStatus.DELETED
            if application.provisioning_state == ManagedAppProvisioningState.DELETED.value
            else ClusterStatus.DEPROVISIONING
        )
        if cluster.status in (target.value, ClusterStatus.DELETED):
            return False
        before = _cluster_view(cluster)
        cluster.status = target
        cluster.updated_at = utc_now()
        session.add(cluster)
        session.flush()
        record_audit_event(
            session,
            actor=ACTOR,
            action=AuditAction.cluster_by_managed_app(target.value),
            subject_type="cluster",
            subject_id=cluster.id,
            tenant_id=cluster.tenant_id,
            before=before,
            after=_cluster_view(cluster),
            details={"application_id": application.application_id},
        )
        return True

    # Failures ----------------------------------------------------------------------------------------------------
    def _record_not_confirmed(
        self, session: Session, application: ManagedApplication, reason: str, facts: ApplicationFacts | None
    ) -> ObservationOutcome:
        action = AuditAction.MANAGED_APP_OBSERVATION_REFUSED
        if not _already_audited(session, application, action):
            record_audit_event(
                session,
                actor=ACTOR,
                action=action,
                subject_type="managed_application",
                subject_id=application.id,
                tenant_id=application.tenant_id,
                outcome=AuditOutcome.REFUSED,
                details={
                    "reason": reason,
                    "application_id": application.application_id,
                    "notified_state": application.provisioning_state,
                    "arm_state": facts.provisioning_state if facts else None,
                    "event_time": application.last_event_time.isoformat(),
                },
            )
        return ObservationOutcome.NOT_CONFIRMED

    def _record_access_failure(
        self, session: Session, application: ManagedApplication, attempt: int, code: str, message: str
    ) -> ObservationOutcome:
        gave_up = attempt >= MAX_ATTEMPTS
        delay = None if gave_up else retry_delay_seconds(attempt)
        record_audit_event(
            session,
            actor=ACTOR,
            action=AuditAction.MANAGED_APP_OBSERVATION_FAILED,
            subject_type="managed_application",
            subject_id=application.id,
            tenant_id=application.tenant_id,
            outcome=AuditOutcome.FAILURE,
            details={
                "code": code,
                "message": message[:2000],
                "application_id": application.application_id,
                "attempt": attempt,
                "retry_in_seconds": delay,
                "event_time": application.last_event_time.isoformat(),
            },
        )
        if delay is None:
            return ObservationOutcome.GAVE_UP
        enqueue(
            session,
            ObserveManagedApplication(managed_application_id=application.id, attempt=attempt + 1),
            delay_seconds=delay,
        )
        return ObservationOutcome.ACCESS_FAILED


def _unconfirmed_reason(state: str, facts: ApplicationFacts | None) -> str | None:
    """Why ARM does not back the notified state, or None when it does."""
    if facts is None:
        return "notification not confirmed by ARM" if state in LIVE_STATES else None
    if state == ManagedAppProvisioningState.SUCCEEDED.value and facts.provisioning_state != state:
        return f"notification not confirmed by ARM: the application is {facts.provisioning_state}"
    if (
        state == ManagedAppProvisioningState.SUCCEEDED.value
        and _resource_group_parts(facts.managed_resource_group_id or "") is None
    ):
        return "ARM shows no managed resource group for the application"
    if state == ManagedAppProvisioningState.DELETED.value and facts.provisioning_state not in GONE_STATES:
        return "deletion not confirmed by ARM: the application still exists"
    return None


def _already_audited(session: Session, application: ManagedApplication, action: str) -> bool:
    """True when the latest such event is about the same notification (so a replay writes nothing)."""
    latest = session.exec(
        select(AuditEvent)
        .where(
            AuditEvent.subject_type == "managed_application",
            AuditEvent.subject_id == application.id,
            AuditEvent.action == action,
        )
        .order_by(col(AuditEvent.id).desc())
        .limit(1)
    ).first()
    return latest is not None and latest.details.get("event_time") == application.last_event_time.isoformat()


def _quantity_from_parameters(parameters: dict[str, Any], plan: Plan) -> int:
    # The package's template takes nodes (units times the plan's nodes per unit); the plan quantity is units.
    nodes = parameters.get("instanceCount")
    if isinstance(nodes, int) and not isinstance(nodes, bool) and nodes > 0:
        return max(1, math.ceil(nodes / plan.nodes_per_unit))
    return plan.min_quantity


def _string_list(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _cluster_view(cluster: Cluster) -> dict[str, Any]:
    """The fields an observation sets, for audit before/after and change detection."""
    fields = (
        "status",
        "region",
        "azure_subscription_id",
        "resource_group",
        "desired_plan_id",
        "desired_quantity",
        "desired_generation",
        "observed_generation",
        "pls_visibility_subscriptions",
        "pls_auto_approval_subscriptions",
        *CLUSTER_OUTPUTS.values(),
    )
    return {field: getattr(cluster, field) for field in fields}

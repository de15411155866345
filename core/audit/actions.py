"""What an audit event records: one member per action, the one place an action's name is spelled.

The values are stored in `audit_events.action` and read back by the timelines, the SLO clock, the operator's
filters and the scenario's invariants: never change one. Actions named after another enum's value (a cluster
status, an operation state) are looked up through the classmethods below, which only ever return a member.
"""

from __future__ import annotations

from enum import StrEnum, unique


@unique  # two members sharing a value would make one an alias of the other, silently
class AuditAction(StrEnum):
    # Marketplace subscriptions
    SUBSCRIPTION_ADOPTED = "subscription.adopted"
    SUBSCRIPTION_PURCHASE_CONFIRMED = "subscription.purchase_confirmed"
    SUBSCRIPTION_PURCHASE_RECORDED_AWAITING_PLACEMENT = "subscription.purchase_recorded_awaiting_placement"
    SUBSCRIPTION_PLACEMENT_COMPLETED = "subscription.placement_completed"
    SUBSCRIPTION_TRANSITION = "subscription.transition"
    SUBSCRIPTION_ACTIVATED = "subscription.activated"
    SUBSCRIPTION_CLUSTER_CONVERGED = "subscription.cluster_converged"
    SUBSCRIPTION_CLUSTER_FAILED = "subscription.cluster_failed"
    SUBSCRIPTION_ACCEPTED_CHANGE_NOT_APPLIED = "subscription.accepted_change_not_applied"

    # Marketplace webhooks and operations
    MARKETPLACE_WEBHOOK_RECEIVED = "marketplace.webhook_received"
    MARKETPLACE_WEBHOOK_REFUSED = "marketplace.webhook_refused"
    OPERATION_ADOPTED = "marketplace_operation.adopted"
    OPERATION_REFUSED_AT_INTAKE = "marketplace_operation.refused_at_intake"
    # One per OperationState a transition enters (marketplace_operation.<state>).
    OPERATION_RECEIVED = "marketplace_operation.received"
    OPERATION_VERIFIED = "marketplace_operation.verified"
    OPERATION_APPLIED = "marketplace_operation.applied"
    OPERATION_REPORTED = "marketplace_operation.reported"
    OPERATION_FAILED = "marketplace_operation.failed"

    # Clusters: requests and the controller's progress
    CLUSTER_REQUESTED = "cluster.requested"
    CLUSTER_DESIRED_SPEC_CHANGED = "cluster.desired_spec_changed"
    CLUSTER_RETRY_REQUESTED = "cluster.retry_requested"
    CLUSTER_STEP_STARTED = "cluster.step.started"
    CLUSTER_STEP_SUCCEEDED = "cluster.step.succeeded"
    CLUSTER_STEP_FAILED = "cluster.step.failed"
    CLUSTER_READY = "cluster.ready"
    CLUSTER_SUSPENDED = "cluster.suspended"
    CLUSTER_FAILED = "cluster.failed"
    CLUSTER_SUSPEND_STARTED = "cluster.suspend.started"
    CLUSTER_RESUME_STARTED = "cluster.resume.started"
    CLUSTER_STOPPED_FOR_RETENTION = "cluster.stopped_for_retention"
    CLUSTER_DELETE_STARTED = "cluster.delete.started"
    CLUSTER_DELETE_RESOURCES_STARTED = "cluster.delete.resources_started"
    CLUSTER_DELETED = "cluster.deleted"
    CLUSTER_KEY_ROTATION_REQUESTED = "cluster.key_rotation.requested"
    CLUSTER_KEY_ROTATION_COMPLETED = "cluster.key_rotation.completed"
    CLUSTER_KEY_ROTATION_FAILED = "cluster.key_rotation.failed"
    CLUSTER_BLOB_PROBE_REQUESTED = "cluster.blob_probe.requested"
    CLUSTER_BLOB_PROBE_FAILED = "cluster.blob_probe.failed"
    CLUSTER_DRIFT_DETECTED = "cluster.drift.detected"
    CLUSTER_DRIFT_INCIDENT = "cluster.drift.incident"
    CLUSTER_DRIFT_RESOLVED = "cluster.drift.resolved"
    CLUSTER_AUTO_APPROVAL_ALL_SUBSCRIPTIONS_CONFIRMED = "cluster.auto_approval.all_subscriptions_confirmed"

    # Private endpoint connections (private_endpoint_connection.<ConnectionStatus>)
    CONNECTION_PENDING = "private_endpoint_connection.pending"
    CONNECTION_APPROVED = "private_endpoint_connection.approved"
    CONNECTION_REJECTED = "private_endpoint_connection.rejected"

    # Expected connections ("connect a service"): declared by a customer admin, matched, expired or cancelled
    EXPECTED_CONNECTION_CREATED = "expected_connection.created"
    EXPECTED_CONNECTION_MATCHED = "expected_connection.matched"
    EXPECTED_CONNECTION_EXPIRED = "expected_connection.expired"
    EXPECTED_CONNECTION_CANCELLED = "expected_connection.cancelled"

    # Managed applications
    CLUSTER_OBSERVED_FROM_MANAGED_APP = "cluster.observed_from_managed_app"
    CLUSTER_DELETED_BY_MANAGED_APP = "cluster.deleted_by_managed_app"
    CLUSTER_DEPROVISIONING_BY_MANAGED_APP = "cluster.deprovisioning_by_managed_app"
    MANAGED_APP_VERIFIED = "managed_app.verified"
    MANAGED_APP_OBSERVATION_REFUSED = "managed_app.observation_refused"
    MANAGED_APP_OBSERVATION_FAILED = "managed_app.observation_failed"
    MANAGED_APP_NOTIFICATION_REFUSED = "managed_app.notification_refused"
    MANAGED_APP_NOTIFICATION_OUT_OF_ORDER = "managed_app.notification_out_of_order"
    # One per notification (managed_app.<event type>.<provisioning state>, lower case).
    MANAGED_APP_PUT_ACCEPTED = "managed_app.put.accepted"
    MANAGED_APP_PUT_SUCCEEDED = "managed_app.put.succeeded"
    MANAGED_APP_PUT_FAILED = "managed_app.put.failed"
    MANAGED_APP_PUT_UPDATING = "managed_app.put.updating"
    MANAGED_APP_PUT_DELETING = "managed_app.put.deleting"
    MANAGED_APP_PUT_DELETED = "managed_app.put.deleted"
    MANAGED_APP_PATCH_ACCEPTED = "managed_app.patch.accepted"
    MANAGED_APP_PATCH_SUCCEEDED = "managed_app.patch.succeeded"
    MANAGED_APP_PATCH_FAILED = "managed_app.patch.failed"
    MANAGED_APP_PATCH_UPDATING = "managed_app.patch.updating"
    MANAGED_APP_PATCH_DELETING = "managed_app.patch.deleting"
    MANAGED_APP_PATCH_DELETED = "managed_app.patch.deleted"
    MANAGED_APP_DELETE_ACCEPTED = "managed_app.delete.accepted"
    MANAGED_APP_DELETE_SUCCEEDED = "managed_app.delete.succeeded"
    MANAGED_APP_DELETE_FAILED = "managed_app.delete.failed"
    MANAGED_APP_DELETE_UPDATING = "managed_app.delete.updating"
    MANAGED_APP_DELETE_DELETING = "managed_app.delete.deleting"
    MANAGED_APP_DELETE_DELETED = "managed_app.delete.deleted"

    # Browser sessions
    SESSION_SIGNED_IN = "session.signed_in"
    SESSION_ROLES_REFRESHED = "session.roles_refreshed"
    SESSION_REVOKED = "session.revoked"

    # Outbox dead letters
    OUTBOX_DEAD_LETTERED = "outbox.dead_lettered"
    OUTBOX_DEAD_LETTER_RETRIED = "outbox.dead_letter_retried"
    OUTBOX_DEAD_LETTER_DISMISSED = "outbox.dead_letter_dismissed"

    # Billing (billing.ledger_entry.<LedgerStatus> for the statuses an operator is told about)
    LEDGER_ENTRY_EXPIRED = "billing.ledger_entry.expired"
    LEDGER_ENTRY_REJECTED = "billing.ledger_entry.rejected"

    # Monitoring
    SLO_BURN_RATE_ALERT = "slo.burn_rate_alert"
    PIPELINE_PROBE_COMPLETED = "system.pipeline_probe.completed"

    @classmethod
    def operation_entered(cls, state: str) -> AuditAction:
        """The action of a Marketplace operation entering `state` (an OperationState value)."""
        return cls(f"marketplace_operation.{state}")

    @classmethod
    def cluster_converged_to(cls, status: str) -> AuditAction:
        """The action of a cluster reaching its desired rest: `cluster.ready` or `cluster.suspended`."""
        return cls(f"cluster.{status}")

    @classmethod
    def cluster_by_managed_app(cls, status: str) -> AuditAction:
        """The action of a managed application's removal moving its cluster to `status` (deleted, deprovisioning)."""
        return cls(f"cluster.{status}_by_managed_app")

    @classmethod
    def connection_now(cls, status: str) -> AuditAction:
        """The action of a private endpoint connection now in `status` (a ConnectionStatus value)."""
        return cls(f"private_endpoint_connection.{status}")

    @classmethod
    def managed_app_notification(cls, event_type: str, provisioning_state: str) -> AuditAction:
        """The action of a managed-application notification (event type and provisioning state, any case)."""
        return cls(f"managed_app.{event_type.lower()}.{provisioning_state.lower()}")

    @classmethod
    def ledger_entry_now(cls, status: str) -> AuditAction:
        """The action of a ledger entry moved to `status` (expired or rejected)."""
        return cls(f"billing.ledger_entry.{status}")

"""Every audit action is a member of AuditAction, including those named after another enum's value."""

from __future__ import annotations

import itertools

import pytest

from core.audit.actions import AuditAction
from core.clusters.models import ClusterStatus
from core.managed_apps.models import ManagedAppProvisioningState
from core.managed_apps.schemas import NotificationEventType
from core.networking.models import ConnectionStatus
from core.subscriptions.models import OperationState
from core.usage.models import LedgerStatus


@pytest.mark.parametrize("state", list(OperationState))
def test_every_operation_state_has_its_action(state: OperationState) -> None:
    assert AuditAction.operation_entered(state) == f"marketplace_operation.{state.value}"


@pytest.mark.parametrize("status", list(ConnectionStatus))
def test_every_connection_status_has_its_action(status: ConnectionStatus) -> None:
    assert AuditAction.connection_now(status.value) == f"private_endpoint_connection.{status.value}"


@pytest.mark.parametrize(
    ("event_type", "state"), list(itertools.product(NotificationEventType, ManagedAppProvisioningState))
)
def test_every_managed_app_notification_has_its_action(
    event_type: NotificationEventType, state: ManagedAppProvisioningState
) -> None:
    action = AuditAction.managed_app_notification(event_type, state)
    assert action == f"managed_app.{event_type.value.lower()}.{state.value.lower()}"


def test_the_controller_and_managed_apps_name_their_cluster_actions() -> None:
    assert AuditAction.cluster_converged_to(ClusterStatus.READY) is AuditAction.CLUSTER_READY
    assert AuditAction.cluster_converged_to(ClusterStatus.SUSPENDED) is AuditAction.CLUSTER_SUSPENDED
    assert AuditAction.cluster_by_managed_app(ClusterStatus.DELETED) is AuditAction.CLUSTER_DELETED_BY_MANAGED_APP
    assert (
        AuditAction.cluster_by_managed_app(ClusterStatus.DEPROVISIONING)
        is AuditAction.CLUSTER_DEPROVISIONING_BY_MANAGED_APP
    )


def test_the_ledger_statuses_an_operator_is_told_about_have_actions() -> None:
    assert AuditAction.ledger_entry_now(LedgerStatus.EXPIRED) is AuditAction.LEDGER_ENTRY_EXPIRED
    assert AuditAction.ledger_entry_now(LedgerStatus.REJECTED) is AuditAction.LEDGER_ENTRY_REJECTED


def test_an_action_outside_the_enum_is_refused() -> None:
    with pytest.raises(ValueError, match="not a valid AuditAction"):
        AuditAction.operation_entered("misspelled")


def test_a_stored_action_compares_equal_to_its_member() -> None:
    # Rows hold plain strings: lookups and comparisons against members must keep working.
    stored = "subscription.transition"
    assert stored == AuditAction.SUBSCRIPTION_TRANSITION
    assert stored in {AuditAction.SUBSCRIPTION_TRANSITION}
    assert {AuditAction.CLUSTER_READY: 1}["cluster.ready"] == 1

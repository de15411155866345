"""The progress page's states: terminal ones stop polling, failures say who must act and how, no audit codes."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from core.audit.models import AuditOutcome
from core.audit.service import record_audit_event
from core.clusters.models import ClusterStatus
from core.subscriptions.models import SubscriptionStatus
from core.subscriptions.progress import ProgressState, WhoMustAct, purchase_progress
from core.tenants.models import Tenant
from tests.support.factories import create_cluster, create_subscription, create_tenant


def _progress_of(session: Session, tenant: Tenant, subscription_id: str) -> tuple[str, bool, str, str]:
    progress = purchase_progress(session, subscription_id, tenant.entra_tenant_id)
    return progress.state, progress.terminal, progress.who_must_act, progress.what_to_do


def test_a_cluster_being_set_up_keeps_polling_and_needs_nobody(session: Session) -> None:
    tenant = create_tenant(session)
    subscription = create_subscription(session, tenant, status=SubscriptionStatus.PENDING_FULFILLMENT_START)
    create_cluster(session, tenant, subscription=subscription, status=ClusterStatus.PROVISIONING, current_step="dns")

    progress = purchase_progress(session, subscription.id, tenant.entra_tenant_id)

    assert (progress.state, progress.terminal, progress.done) == (ProgressState.PROVISIONING, False, False)
    assert progress.who_must_act == WhoMustAct.NOBODY
    assert progress.current_step == "the DNS records"


@pytest.mark.parametrize(
    ("subscription_status", "cluster_status", "expected"),
    [
        (SubscriptionStatus.SUBSCRIBED, ClusterStatus.READY, ProgressState.READY),
        (SubscriptionStatus.PENDING_FULFILLMENT_START, ClusterStatus.FAILED, ProgressState.FAILED),
        (SubscriptionStatus.SUSPENDED, ClusterStatus.SUSPENDED, ProgressState.SUSPENDED),
        (SubscriptionStatus.UNSUBSCRIBED, ClusterStatus.DEPROVISIONING, ProgressState.REFUSED),
        (SubscriptionStatus.PENDING_FULFILLMENT_START, None, ProgressState.AWAITING_CHOICES),
    ],
)
def test_states_where_nothing_more_happens_on_its_own_stop_polling(
    session: Session,
    subscription_status: SubscriptionStatus,
    cluster_status: ClusterStatus | None,
    expected: ProgressState,
) -> None:
    tenant = create_tenant(session)
    # Refused: Marketplace unsubscribed it before it was ever activated.
    never_activated = {"activated_at": None} if expected == ProgressState.REFUSED else {}
    subscription = create_subscription(session, tenant, status=subscription_status, **never_activated)
    if cluster_status is not None:
        create_cluster(session, tenant, subscription=subscription, status=cluster_status)

    state, terminal, _, what_to_do = _progress_of(session, tenant, subscription.id)

    assert (state, terminal) == (expected, True)
    assert what_to_do


def test_a_cluster_ready_before_activation_keeps_polling_until_marketplace_confirms(session: Session) -> None:
    tenant = create_tenant(session)
    subscription = create_subscription(session, tenant, status=SubscriptionStatus.PENDING_FULFILLMENT_START)
    create_cluster(session, tenant, subscription=subscription, status=ClusterStatus.READY)

    assert _progress_of(session, tenant, subscription.id)[:2] == (ProgressState.ACTIVATING, False)


def test_a_refused_activation_is_terminal_and_says_so(session: Session) -> None:
    tenant = create_tenant(session)
    subscription = create_subscription(session, tenant, status=SubscriptionStatus.PENDING_FULFILLMENT_START)
    create_cluster(session, tenant, subscription=subscription, status=ClusterStatus.READY)
    record_audit_event(
        session,
        actor="system:test",
        action="subscription.activated",
        subject_type="marketplace_subscription",
        subject_id=subscription.id,
        outcome=AuditOutcome.FAILURE,
        details={"marketplace_status": "Unsubscribed"},
    )

    progress = purchase_progress(session, subscription.id, tenant.entra_tenant_id)

    assert (progress.state, progress.terminal) == (ProgressState.REFUSED, True)
    assert "did not activate" in progress.headline
    assert [line.label for line in progress.events] == ["Azure Marketplace did not activate the subscription"]


def test_a_failure_the_customer_must_fix_names_the_fix(session: Session) -> None:
    tenant = create_tenant(session)
    subscription = create_subscription(session, tenant, status=SubscriptionStatus.PENDING_FULFILLMENT_START)
    create_cluster(
        session,
        tenant,
        subscription=subscription,
        status=ClusterStatus.FAILED,
        current_step="cluster",
        last_error_code="DeploymentFailed",
        last_error_details=[{"code": "QuotaExceeded", "message": "vmssCapacity limit 2 in westeurope"}],
    )

    progress = purchase_progress(session, subscription.id, tenant.entra_tenant_id)

    assert (progress.state, progress.who_must_act) == (ProgressState.FAILED, WhoMustAct.CUSTOMER)
    assert "raise the virtual machine quota" in progress.what_to_do
    assert "the cluster's virtual machines" in progress.explanation


def test_a_failure_on_our_side_says_our_operators_act(session: Session) -> None:
    tenant = create_tenant(session)
    subscription = create_subscription(session, tenant, status=SubscriptionStatus.PENDING_FULFILLMENT_START)
    create_cluster(
        session, tenant, subscription=subscription, status=ClusterStatus.FAILED, last_error_code="InternalServerError"
    )

    progress = purchase_progress(session, subscription.id, tenant.entra_tenant_id)

    assert (progress.state, progress.terminal, progress.who_must_act) == (
        ProgressState.FAILED,
        True,
        WhoMustAct.PUBLISHER,
    )
    assert "operators were alerted" in progress.explanation


def test_every_event_gets_words_not_its_code(session: Session) -> None:
    tenant = create_tenant(session)
    subscription = create_subscription(session, tenant, status=SubscriptionStatus.PENDING_FULFILLMENT_START)
    cluster = create_cluster(session, tenant, subscription=subscription, status=ClusterStatus.PROVISIONING)
    for action, details in [
        ("cluster.step.started", {"step": "identity-keyvault"}),
        ("cluster.step.failed", {"step": "private-link"}),
        ("cluster.something_new", {}),
    ]:
        record_audit_event(
            session, actor="system:test", action=action, subject_type="cluster", subject_id=cluster.id, details=details
        )

    labels = [line.label for line in purchase_progress(session, subscription.id, tenant.entra_tenant_id).events]

    assert labels == [
        "Setting up managed identity, Key Vault and encryption key",
        "A try at the Private Link service failed; trying again",
        "Update",
    ]
    assert not any("." in label or "_" in label for label in labels)

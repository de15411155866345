"""Factories for rows many tests need: tenants, subscriptions, operations, clusters, connections, key rotations,
raw outbox rows.

Rows are flushed, not committed.

Each takes only what a test cares about; the rest gets valid, unique defaults.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from core.clock import utc_now
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.provisioning_models import KeyRotation, KeyRotationState
from core.connectivity.catalog import ConsumerKind
from core.connectivity.models import ExpectedConnection
from core.correlation import new_correlation_id
from core.networking.models import ConnectionStatus, PrivateEndpointConnection
from core.outbox.models import OutboxMessage
from core.subscriptions.models import (
    MarketplaceOperation,
    MarketplaceSubscription,
    OperationAction,
    OperationState,
    SubscriptionStatus,
)
from core.tenants.models import Tenant

DEFAULT_OFFER_ID = "vast-blob-facade"
# How long an activated subscription or a ready cluster has been so, unless a test says otherwise.
ESTABLISHED_FOR = timedelta(days=30)


def create_tenant(session: Session, **fields: Any) -> Tenant:
    """A tenant with a fresh Entra tenant id."""
    tenant = Tenant(**{"entra_tenant_id": str(uuid.uuid4()), "display_name": "Contoso", **fields})
    session.add(tenant)
    session.flush()
    return tenant


def create_subscription(
    session: Session,
    tenant: Tenant,
    *,
    subscription_id: str | None = None,
    plan_id: str = "standard",
    quantity: int | None = 1,
    status: SubscriptionStatus = SubscriptionStatus.SUBSCRIBED,
    **fields: Any,
) -> MarketplaceSubscription:
    """A Marketplace subscription of the default offer (pass the emulator's id to bill against the emulator).

    One that was ever Subscribed counts as activated long ago unless `activated_at` says otherwise.
    """
    if status != SubscriptionStatus.PENDING_FULFILLMENT_START:
        fields.setdefault("activated_at", utc_now() - ESTABLISHED_FOR)
    subscription = MarketplaceSubscription(
        **{
            "id": subscription_id or str(uuid.uuid4()),
            "tenant_id": tenant.id,
            "offer_id": DEFAULT_OFFER_ID,
            "plan_id": plan_id,
            "quantity": quantity,
            "status": status.value,
            "beneficiary_tenant_id": tenant.entra_tenant_id,
            **fields,
        }
    )
    session.add(subscription)
    session.flush()
    return subscription


def create_cluster(
    session: Session,
    tenant: Tenant,
    *,
    subscription: MarketplaceSubscription | None = None,
    managed_application_id: str | None = None,
    status: ClusterStatus = ClusterStatus.READY,
    **fields: Any,
) -> Cluster:
    """A cluster owned by a subscription (or a managed application), ready by default (and for long)."""
    if status not in (ClusterStatus.PENDING, ClusterStatus.PROVISIONING, ClusterStatus.FAILED):
        fields.setdefault("first_ready_at", utc_now() - ESTABLISHED_FOR)
    plan_id = subscription.plan_id if subscription is not None else fields.pop("desired_plan_id", "standard")
    quantity = (subscription.quantity if subscription is not None else None) or fields.pop("desired_quantity", 1)
    name = fields.pop("name", f"facade-{uuid.uuid4().hex[:10]}")
    cluster = Cluster(
        **{
            "tenant_id": tenant.id,
            "subscription_id": subscription.id if subscription is not None else None,
            "managed_application_id": managed_application_id,
            "name": name,
            "region": "westeurope",
            "azure_subscription_id": str(uuid.uuid4()),
            "resource_group": f"rg-{name}",
            "desired_plan_id": plan_id,
            "desired_quantity": quantity,
            "status": status.value,
            "observed_plan_id": plan_id if status == ClusterStatus.READY else None,
            "observed_quantity": quantity if status == ClusterStatus.READY else None,
            "endpoint_fqdn": f"{name}.facade.example",
            **fields,
        }
    )
    session.add(cluster)
    session.flush()
    return cluster


def create_operation(
    session: Session,
    subscription: MarketplaceSubscription,
    *,
    action: OperationAction = OperationAction.CHANGE_QUANTITY,
    state: OperationState = OperationState.REPORTED,
    **fields: Any,
) -> MarketplaceOperation:
    """A Marketplace operation on the subscription, already reported by default."""
    operation = MarketplaceOperation(
        **{
            "id": str(uuid.uuid4()),
            "subscription_id": subscription.id,
            "action": action.value,
            "marketplace_status": "Succeeded" if state == OperationState.REPORTED else "InProgress",
            "state": state.value,
            **fields,
        }
    )
    session.add(operation)
    session.flush()
    return operation


def create_private_endpoint_connection(
    session: Session, cluster: Cluster, *, status: ConnectionStatus = ConnectionStatus.PENDING, **fields: Any
) -> PrivateEndpointConnection:
    """A connection on the cluster's Private Link Service from a consumer subscription, pending by default."""
    source = str(uuid.uuid4())
    name = fields.pop("connection_name", f"pe-{uuid.uuid4().hex[:10]}")
    connection = PrivateEndpointConnection(
        **{
            "cluster_id": cluster.id,
            "tenant_id": cluster.tenant_id,
            "connection_name": name,
            "arm_connection_id": f"{cluster.pls_resource_id or '/pls'}/privateEndpointConnections/{name}",
            "private_endpoint_id": f"/subscriptions/{source}/resourceGroups/consumer/providers/"
            f"Microsoft.Network/privateEndpoints/{name}",
            "source_subscription_id": source,
            "status": status.value,
            **fields,
        }
    )
    session.add(connection)
    session.flush()
    return connection


def create_expected_connection(session: Session, cluster: Cluster, **fields: Any) -> ExpectedConnection:
    """A waiting expectation of a Synapse workspace's managed private endpoint on the cluster, for a day."""
    workspace = fields.pop("workspace", f"syn-{uuid.uuid4().hex[:8]}")
    managed = f"vast-{uuid.uuid4().hex[:24]}"
    now = utc_now()
    expectation = ExpectedConnection(
        **{
            "cluster_id": cluster.id,
            "tenant_id": cluster.tenant_id,
            "consumer_kind": ConsumerKind.SYNAPSE.value,
            "consumer_resource_id": f"/subscriptions/{cluster.azure_subscription_id}/resourceGroups/analytics/"
            f"providers/Microsoft.Synapse/workspaces/{workspace}",
            "expected_endpoint_name": f"{workspace}.{managed}",
            "managed_endpoint_name": managed,
            "created_by": "user:test",
            "created_at": now,
            "expires_at": now + timedelta(days=1),
            **fields,
        }
    )
    session.add(expectation)
    session.flush()
    return expectation


def create_key_rotation(
    session: Session, cluster: Cluster, *, state: KeyRotationState = KeyRotationState.COMPLETED, **fields: Any
) -> KeyRotation:
    """A finished rotation of the cluster's key by default."""
    rotation = KeyRotation(
        **{
            "cluster_id": cluster.id,
            "requested_by": "policy:key-rotation",
            "state": state.value,
            "key_id_before": cluster.key_id,
            **fields,
        }
    )
    session.add(rotation)
    session.flush()
    return rotation


def create_outbox_row(session: Session, task_name: str, arguments: dict[str, Any]) -> OutboxMessage:
    """An outbox row with any arguments, as another release could have left it (`enqueue` takes typed payloads
    only): for tests of dispatch order and of messages a consumer cannot read."""
    message = OutboxMessage(
        task_name=task_name, arguments=arguments, correlation_id=new_correlation_id(), available_at=utc_now()
    )
    session.add(message)
    session.flush()
    return message


def webhook_payload(subscription_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A well-formed Marketplace webhook body (ChangeQuantity, fresh operation id); `overrides` replace fields."""
    subscription_id = subscription_id or str(uuid.uuid4())
    return {
        "id": str(uuid.uuid4()),
        "activityId": str(uuid.uuid4()),
        "subscriptionId": subscription_id,
        "publisherId": "vastdata1234567890",
        "offerId": DEFAULT_OFFER_ID,
        "planId": "standard",
        "quantity": 3,
        "action": "ChangeQuantity",
        "timeStamp": "2026-11-26T01:00:00Z",
        "status": "InProgress",
        "operationRequestSource": "Azure",
        "subscription": {"id": subscription_id, "saasSubscriptionStatus": "Subscribed"},
        "purchaseToken": None,
        **overrides,
    }

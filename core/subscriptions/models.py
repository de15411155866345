"""Marketplace subscriptions mirror Azure's status; operations follow received -> verified -> applied -> reported."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.clock import utc_now
from core.columns import StrEnumColumn, UTCDateTime, empty_json_list
from core.statemachine import StateMachine, enum_check


class SubscriptionStatus(StrEnum):
    """Marketplace's saasSubscriptionStatus values that we hold."""

    PENDING_FULFILLMENT_START = "PendingFulfillmentStart"
    SUBSCRIBED = "Subscribed"
    SUSPENDED = "Suspended"
    UNSUBSCRIBED = "Unsubscribed"


SUBSCRIPTION_STATES = StateMachine(
    "marketplace subscription",
    {
        SubscriptionStatus.PENDING_FULFILLMENT_START: [SubscriptionStatus.SUBSCRIBED, SubscriptionStatus.UNSUBSCRIBED],
        SubscriptionStatus.SUBSCRIBED: [SubscriptionStatus.SUSPENDED, SubscriptionStatus.UNSUBSCRIBED],
        SubscriptionStatus.SUSPENDED: [SubscriptionStatus.SUBSCRIBED, SubscriptionStatus.UNSUBSCRIBED],
        SubscriptionStatus.UNSUBSCRIBED: [],
    },
)


class OperationAction(StrEnum):
    CHANGE_PLAN = "ChangePlan"
    CHANGE_QUANTITY = "ChangeQuantity"
    SUSPEND = "Suspend"
    REINSTATE = "Reinstate"
    UNSUBSCRIBE = "Unsubscribe"
    RENEW = "Renew"


class OperationState(StrEnum):
    """Our processing state of a Marketplace operation."""

    RECEIVED = "received"
    VERIFIED = "verified"
    APPLIED = "applied"
    REPORTED = "reported"
    FAILED = "failed"


OPERATION_STATES = StateMachine(
    "marketplace operation",
    {
        OperationState.RECEIVED: [OperationState.VERIFIED, OperationState.FAILED],
        OperationState.VERIFIED: [OperationState.APPLIED, OperationState.FAILED],
        OperationState.APPLIED: [OperationState.REPORTED, OperationState.FAILED],
        OperationState.FAILED: [OperationState.RECEIVED],
        OperationState.REPORTED: [],
    },
)


class MarketplaceSubscription(SQLModel, table=True):
    __tablename__ = "marketplace_subscriptions"
    __table_args__ = (
        enum_check("status", SubscriptionStatus, "ck_marketplace_subscriptions_status"),
        sa.CheckConstraint("quantity IS NULL OR quantity >= 1", name="ck_marketplace_subscriptions_quantity"),
        # The operators' list: newest first (the default) and by name, a page at a time.
        sa.Index("ix_marketplace_subscriptions_created_at_id", "created_at", "id"),
        sa.Index("ix_marketplace_subscriptions_name_id", "name", "id"),
    )

    id: str = Field(primary_key=True, max_length=64, description="Marketplace subscription id")
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=36)
    name: str = Field(default="", max_length=256)
    offer_id: str = Field(foreign_key="offers.id", max_length=64)
    plan_id: str = Field(max_length=64)
    quantity: int | None = None
    status: SubscriptionStatus = Field(
        default=SubscriptionStatus.PENDING_FULFILLMENT_START, sa_type=StrEnumColumn(SubscriptionStatus, 32), index=True
    )
    purchaser_tenant_id: str | None = Field(default=None, max_length=64)
    purchaser_object_id: str | None = Field(default=None, max_length=64)
    purchaser_email: str | None = Field(default=None, max_length=320)
    beneficiary_tenant_id: str = Field(max_length=64)
    beneficiary_object_id: str | None = Field(default=None, max_length=64)
    beneficiary_email: str | None = Field(default=None, max_length=320)
    term_unit: str | None = Field(default=None, max_length=16)
    term_start: datetime | None = Field(default=None, sa_type=UTCDateTime)
    term_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    auto_renew: bool | None = None
    is_test: bool = False
    is_free_trial: bool = False
    activated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # When the subscription ended: billing counts no usage from this instant on.
    unsubscribed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # SHA-256 of the landing-page token that confirmed the purchase: the same token cannot confirm twice.
    confirmed_token_sha256: str | None = Field(default=None, unique=True, max_length=64)
    # Bought by another tenant than the beneficiary's: recorded, and nothing deploys until an admin of the
    # beneficiary's tenant chooses where the cluster goes.
    placement_pending: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    # The last Marketplace representation we saw, unknown fields included, for support and reconciliation.
    marketplace_snapshot: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class MarketplaceOperation(SQLModel, table=True):
    __tablename__ = "marketplace_operations"
    __table_args__ = (
        enum_check("action", OperationAction, "ck_marketplace_operations_action"),
        enum_check("state", OperationState, "ck_marketplace_operations_state"),
        sa.CheckConstraint(
            "result IS NULL OR result IN ('Success', 'Failure')", name="ck_marketplace_operations_result"
        ),
    )

    id: str = Field(primary_key=True, max_length=64, description="Marketplace operation id")
    subscription_id: str = Field(foreign_key="marketplace_subscriptions.id", index=True, max_length=64)
    activity_id: str | None = Field(default=None, max_length=64)
    action: str = Field(max_length=32)
    plan_id: str | None = Field(default=None, max_length=64)
    quantity: int | None = None
    marketplace_status: str = Field(max_length=32, description="status as Marketplace last reported it")
    request_source: str | None = Field(default=None, max_length=16)
    state: OperationState = Field(
        default=OperationState.RECEIVED, sa_type=StrEnumColumn(OperationState, 16), index=True
    )
    result: str | None = Field(default=None, max_length=16)
    failure_reason: str | None = Field(default=None, max_length=2048)
    attempts: int = 0
    # The cluster's desired generation this operation produced; it is reported once the cluster converges there.
    desired_generation: int | None = None
    time_stamp: datetime | None = Field(default=None, sa_type=UTCDateTime)
    received_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class ReconciliationStatus(StrEnum):
    REQUESTED = "requested"
    COMPLETED = "completed"
    FAILED = "failed"


class MarketplaceReconciliationReport(SQLModel, table=True):
    """One reconciliation run against the fulfilment API and the changes it made."""

    __tablename__ = "marketplace_reconciliation_reports"
    __table_args__ = (enum_check("status", ReconciliationStatus, "ck_marketplace_reconciliation_reports_status"),)

    id: int | None = Field(default=None, primary_key=True)
    trigger: str = Field(max_length=64, description="schedule, or the operator who forced it")
    status: ReconciliationStatus = Field(
        default=ReconciliationStatus.REQUESTED, sa_type=StrEnumColumn(ReconciliationStatus, 16), index=True
    )
    requested_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    subscriptions_seen: int = 0
    operations_seen: int = 0
    changes: list[dict[str, Any]] = Field(default_factory=empty_json_list, sa_type=sa.JSON)
    error: str | None = Field(default=None, max_length=2048)


class SubscriptionSuspension(SQLModel, table=True):
    """One period the subscription was Suspended; billing applies the offer's policy to usage inside it."""

    __tablename__ = "subscription_suspensions"
    __table_args__ = (
        sa.CheckConstraint(
            "reinstated_at IS NULL OR reinstated_at >= suspended_at", name="ck_subscription_suspensions_order"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: str = Field(foreign_key="marketplace_subscriptions.id", index=True, max_length=64)
    suspended_at: datetime = Field(sa_type=UTCDateTime)
    # None while the subscription is still suspended (reinstated or unsubscribed closes the period).
    reinstated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

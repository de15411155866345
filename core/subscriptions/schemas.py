"""What callers send and receive about Marketplace subscriptions: webhook bodies, landing-page choices, views."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from core.clusters.schemas import ClusterPlacement, KeyPolicy, PrivateLinkPolicy
from core.subscriptions.models import OperationAction

# Quantities are stored in INTEGER columns (32-bit on PostgreSQL): a larger one is invalid input, not a database error.
MAX_QUANTITY = 2**31 - 1


class WebhookSubscriptionSnapshot(BaseModel):
    """The subscription as it was before the operation (only its id is checked; the rest is kept)."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=64)


class WebhookPayload(BaseModel):
    """The body Marketplace posts to the webhook; unknown fields are tolerated, unknown actions are not."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str = Field(min_length=1, max_length=64, description="Marketplace operation id")
    activity_id: str | None = Field(default=None, alias="activityId", max_length=64)
    subscription_id: str = Field(alias="subscriptionId", min_length=1, max_length=64)
    publisher_id: str | None = Field(default=None, alias="publisherId")
    offer_id: str | None = Field(default=None, alias="offerId")
    plan_id: str | None = Field(default=None, alias="planId", max_length=64)
    quantity: int | None = Field(default=None, ge=0, le=MAX_QUANTITY)
    action: OperationAction
    time_stamp: datetime | None = Field(default=None, alias="timeStamp")
    status: str = Field(min_length=1, max_length=32)
    # Documented as operationRequestSource; another implementation sends operationRequestedSource.
    request_source: str | None = Field(
        default=None,
        validation_alias=AliasChoices("operationRequestSource", "operationRequestedSource"),
        max_length=16,
    )
    subscription: WebhookSubscriptionSnapshot | None = None
    purchase_token: str | None = Field(default=None, alias="purchaseToken")

    def subscription_ids_agree(self) -> bool:
        """The body's subscriptionId and its subscription snapshot name the same subscription."""
        return self.subscription is None or self.subscription.id == self.subscription_id


class PurchasePrivateLinkPolicy(PrivateLinkPolicy):
    """The Private Link choices of a purchase form: named subscriptions only for auto-approval.

    Approving every Azure subscription's endpoints without a person is turned on in the portal, which asks for
    confirmation and audits it; a purchase form has neither.
    """

    @field_validator("auto_approval_subscriptions")
    @classmethod
    def _no_blanket_auto_approval(cls, values: list[str]) -> list[str]:
        if "*" in values:
            raise ValueError("approving every Azure subscription is turned on in the portal, with a confirmation")
        return values


class DeploymentChoices(BaseModel):
    """What the customer chooses on the landing page; validated by the cluster schemas."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    placement: ClusterPlacement
    private_link: PurchasePrivateLinkPolicy
    key_policy: KeyPolicy

    @classmethod
    def from_form(cls, form: dict[str, str]) -> DeploymentChoices:
        """Build from landing-page form fields; raises pydantic.ValidationError naming the bad fields."""
        return cls.model_validate(
            {
                "placement": {
                    "region": form.get("region", "").strip(),
                    "azure_subscription_id": form.get("azure_subscription_id", "").strip(),
                    "resource_group": form.get("resource_group", "").strip(),
                },
                "private_link": {
                    "visibility_subscriptions": split_list(form.get("pls_visibility_subscriptions", "")),
                    "auto_approval_subscriptions": split_list(form.get("pls_auto_approval_subscriptions", "")),
                },
                "key_policy": {
                    "key_vault_sku": form.get("key_vault_sku", "standard"),
                    "key_type": form.get("key_type", "RSA"),
                    "key_size": form.get("key_size", "3072"),
                    "rotation_days": form.get("rotation_days", "90"),
                },
            }
        )


def split_list(value: str) -> list[str]:
    """Comma-, space- or newline-separated values of a text field."""
    return [item for item in value.replace(",", " ").split() if item]


class OperationView(BaseModel):
    """A Marketplace operation and how far we got with it."""

    id: str
    subscription_id: str
    action: str
    plan_id: str | None
    quantity: int | None
    marketplace_status: str
    request_source: str | None
    state: str
    result: str | None
    failure_reason: str | None
    attempts: int
    desired_generation: int | None
    received_at: datetime
    updated_at: datetime


class SubscriptionView(BaseModel):
    """A Marketplace subscription as we hold it."""

    id: str
    tenant_id: str
    beneficiary_tenant_id: str
    name: str
    offer_id: str
    plan_id: str
    quantity: int | None
    status: str
    activated_at: datetime | None
    term_start: datetime | None
    term_end: datetime | None
    created_at: datetime
    updated_at: datetime


class SubscriptionPage(BaseModel):
    """One page of subscriptions."""

    items: list[SubscriptionView]
    total: int
    offset: int
    limit: int


class AuditEventView(BaseModel):
    """One audit event."""

    occurred_at: datetime
    actor: str
    action: str
    subject_type: str
    subject_id: str
    outcome: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    details: dict[str, Any]


class ClusterSummary(BaseModel):
    """The cluster of a subscription: desired and observed generation and status."""

    id: str
    status: str
    desired_plan_id: str
    desired_quantity: int
    desired_suspended: bool
    desired_deleted: bool
    desired_generation: int
    observed_generation: int


class SubscriptionDetail(BaseModel):
    """A subscription with its cluster, operations and audit trail."""

    subscription: SubscriptionView
    cluster: ClusterSummary | None
    operations: list[OperationView]
    audit_trail: list[AuditEventView]


class ReconciliationReportView(BaseModel):
    """One reconciliation run and what it changed."""

    id: int
    trigger: str
    status: str
    requested_at: datetime
    finished_at: datetime | None
    subscriptions_seen: int
    operations_seen: int
    changes: list[dict[str, Any]]
    error: str | None


class ProgressLine(BaseModel):
    """One line of the landing page's progress list."""

    occurred_at: datetime
    action: str = Field(description="The audit action (for support); pages show `label`")
    outcome: str
    label: str = Field(description="What happened, in words")


class ProgressStep(BaseModel):
    """One step of setting up the cluster, in the order they run."""

    name: str = Field(description="The step in words, e.g. 'the Private Link service'")
    state: str = Field(description="done, running, failed or waiting")
    typical_seconds: float | None = Field(description="Median duration of our past completed runs of this step")
    typical: str = Field(description="The typical duration in words (or why there is none yet)")


class PurchaseProgress(BaseModel):
    """What the progress page shows."""

    subscription_id: str
    subscription_status: str
    cluster_status: str | None
    done: bool = Field(description="Same as `terminal` (kept for older pollers)")
    state: str = Field(description="awaiting_choices, provisioning, activating, ready, failed, refused, ...")
    terminal: bool = Field(description="Nothing more happens without someone acting: stop polling")
    headline: str
    explanation: str
    who_must_act: str = Field(description="nobody, customer or publisher")
    what_to_do: str
    status_label: str
    current_step: str | None
    steps: list[ProgressStep] = Field(description="The set-up steps with their state and typical duration")
    events: list[ProgressLine]

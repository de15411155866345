"""Imports every table so SQLModel.metadata (and Alembic) sees the whole schema."""

from sqlmodel import SQLModel

from core.audit.models import AuditEvent
from core.catalog.models import MeteredDimension, Offer, Plan, PlanIncludedQuantity
from core.clusters.models import Cluster
from core.inbox.models import InboundEvent
from core.managed_apps.models import ManagedApplication
from core.networking.models import PrivateEndpointConnection
from core.outbox.models import OutboxMessage
from core.subscriptions.models import MarketplaceOperation, MarketplaceSubscription
from core.tenants.models import Tenant
from core.usage.models import UsageLedgerEntry, UsageSample

metadata = SQLModel.metadata

__all__ = [
    "AuditEvent",
    "Cluster",
    "InboundEvent",
    "ManagedApplication",
    "MarketplaceOperation",
    "MarketplaceSubscription",
    "MeteredDimension",
    "Offer",
    "OutboxMessage",
    "Plan",
    "PlanIncludedQuantity",
    "PrivateEndpointConnection",
    "Tenant",
    "UsageLedgerEntry",
    "UsageSample",
    "metadata",
]

"""Imports every table so SQLModel.metadata (and Alembic) sees the whole schema."""

from sqlmodel import SQLModel

from core.audit.models import AuditEvent
from core.browser_sessions.models import BrowserSessionRecord
from core.catalog.models import MeteredDimension, Offer, Plan, PlanIncludedQuantity
from core.clusters.drift_models import ClusterDrift
from core.clusters.models import Cluster
from core.clusters.provisioning_models import ArmDeployment, KeyRotation
from core.connectivity.models import ExpectedConnection
from core.inbox.models import InboundEvent
from core.managed_apps.models import ManagedApplication
from core.monitoring.models import LogRecord, MonitorExportMark
from core.networking.models import PrivateEndpointConnection
from core.outbox.models import OutboxMessage
from core.probes.models import BlobProbeSample
from core.subscriptions.models import MarketplaceOperation, MarketplaceReconciliationReport, MarketplaceSubscription
from core.tenants.models import Tenant
from core.usage.models import (
    RejectedUsageSample,
    UsageCollectionMark,
    UsageLedgerAdjustment,
    UsageLedgerEntry,
    UsageSample,
)
from core.usage.reconciliation_models import UsageReconciliationDifference, UsageReconciliationReport

metadata = SQLModel.metadata

__all__ = [
    "ArmDeployment",
    "AuditEvent",
    "BlobProbeSample",
    "BrowserSessionRecord",
    "Cluster",
    "ClusterDrift",
    "ExpectedConnection",
    "InboundEvent",
    "KeyRotation",
    "LogRecord",
    "ManagedApplication",
    "MarketplaceOperation",
    "MarketplaceReconciliationReport",
    "MarketplaceSubscription",
    "MeteredDimension",
    "MonitorExportMark",
    "Offer",
    "OutboxMessage",
    "Plan",
    "PlanIncludedQuantity",
    "PrivateEndpointConnection",
    "RejectedUsageSample",
    "Tenant",
    "UsageCollectionMark",
    "UsageLedgerAdjustment",
    "UsageLedgerEntry",
    "UsageReconciliationDifference",
    "UsageReconciliationReport",
    "UsageSample",
    "metadata",
]

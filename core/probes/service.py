"""Probe ready clusters' Blob endpoints and record each check as an SLO sample.

Each check becomes a sample; a failed run also becomes an audit event naming the exact failing check
(and so reaches Log Analytics with the other audit events).
"""

from __future__ import annotations

import logging

from sqlmodel import Session, col, select

from core.audit.actions import AuditAction
from core.audit.models import AuditOutcome
from core.audit.service import record_audit_event
from core.azure.credentials import CredentialFactory
from core.clusters.models import Cluster, ClusterStatus
from core.errors import ConfigurationError, NotFound
from core.probes.blob_probe import AccountCredential, BlobProbe, ProbeReport
from core.probes.models import BlobProbeSample
from core.settings import Settings
from core.telemetry import metrics
from core.telemetry.tracing import tracer
from core.tenants.models import Tenant

logger = logging.getLogger(__name__)


def ready_cluster_ids(session: Session) -> list[str]:
    """Clusters the probe covers: ready, with an endpoint."""
    statement = select(Cluster.id).where(Cluster.status == ClusterStatus.READY, col(Cluster.endpoint_fqdn).is_not(None))
    return list(session.exec(statement.order_by(col(Cluster.id))).all())


def blob_endpoint(settings: Settings, cluster: Cluster) -> str:
    """The cluster's Blob endpoint URL from the configured template."""
    return settings.blob_probe_endpoint_template.format(
        endpoint_fqdn=cluster.endpoint_fqdn, cluster_name=cluster.name, cluster_id=cluster.id
    )


def probe_credential(settings: Settings, credentials: CredentialFactory, entra_tenant_id: str) -> AccountCredential:
    """Shared key when one is configured (Azurite locally), else the control-plane app in the customer's tenant."""
    if settings.blob_probe_account_key is not None:
        if not settings.blob_probe_account_name:
            raise ConfigurationError("CP_BLOB_PROBE_ACCOUNT_NAME is required with CP_BLOB_PROBE_ACCOUNT_KEY")
        return AccountCredential(
            account_name=settings.blob_probe_account_name,
            account_key=settings.blob_probe_account_key.get_secret_value(),
        )
    return AccountCredential(token_credential=credentials.customer_tenant(entra_tenant_id))


def probe_cluster(session: Session, settings: Settings, credentials: CredentialFactory, cluster_id: str) -> ProbeReport:
    """Probe one ready cluster and record its samples in `session`; raises NotFound for any other cluster.

    The probe is bounded (no retries, per-call timeouts), so the caller's transaction stays short.
    """
    row = session.exec(
        select(Cluster, Tenant).join(Tenant, col(Tenant.id) == col(Cluster.tenant_id)).where(Cluster.id == cluster_id)
    ).first()
    if row is None or row[0].status != ClusterStatus.READY or not row[0].endpoint_fqdn:
        raise NotFound(f"cluster {cluster_id} is not a ready cluster with an endpoint")
    cluster, tenant = row
    with tracer(__name__).start_as_current_span("blob_probe.run", attributes={"cluster.id": cluster_id}):
        probe = BlobProbe(
            blob_endpoint(settings, cluster),
            probe_credential(settings, credentials, tenant.entra_tenant_id),
            timeout_seconds=settings.blob_probe_timeout_seconds,
            connection_verify=settings.tls_verify,
        )
        try:
            report = probe.run()
        finally:
            probe.close()
    record_probe_report(session, cluster, report)
    return report


def record_probe_report(session: Session, cluster: Cluster, report: ProbeReport) -> None:
    """One sample per check; one audit event naming the exact failing check when the run failed."""
    for check in report.checks:
        session.add(
            BlobProbeSample(
                run_id=report.run_id,
                cluster_id=cluster.id,
                tenant_id=cluster.tenant_id,
                check_name=check.name,
                authentication=check.authentication,
                succeeded=check.succeeded,
                latency_ms=check.latency_ms,
                error_code=check.error_code,
                error_message=check.error_message,
            )
        )
        metrics.BLOB_PROBE_CHECKS.labels(check=check.name, result="passed" if check.succeeded else "failed").inc()
    failure = report.first_failure
    if failure is not None:
        record_audit_event(
            session,
            actor="system:blob-probe",
            action=AuditAction.CLUSTER_BLOB_PROBE_FAILED,
            subject_type="cluster",
            subject_id=cluster.id,
            tenant_id=cluster.tenant_id,
            outcome=AuditOutcome.FAILURE,
            details={
                "run_id": report.run_id,
                "check": failure.name,
                "authentication": failure.authentication,
                "error_code": failure.error_code,
                "error_message": failure.error_message,
            },
        )
        logger.warning(
            "blob probe failed",
            extra={"cluster_id": cluster.id, "check": failure.name, "error_code": failure.error_code},
        )
    session.flush()

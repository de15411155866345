"""Operator pages: every subscription with filters, cluster detail and retry, stuck work and reconcile,
metering ledger and reconciliation reports (with CSV), read-only configuration, audit search."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlmodel import select

from api.dependencies import DatabaseDep, RowId, SettingsDep
from billing.reconciliation import differences_csv, list_reports, report_with_differences
from billing.reports import collection_lag, rejected_samples, status_counts
from core.audit.queries import search_audit_events
from core.catalog.models import Plan
from core.clock import utc_now
from core.clusters.drift import cluster_drift_history
from core.clusters.queries import cluster_deployments, cluster_timeline, clusters_needing_attention
from core.clusters.recovery import retry_failed_cluster
from core.errors import NotFound
from core.messaging import TaskNames
from core.networking.service import visible_cluster
from core.outbox.dead_letters import NotADeadLetter, dead_letters, dismiss_dead_letter, retry_dead_letter
from core.outbox.service import enqueue
from core.slo.service import visible_clusters
from core.subscriptions.models import SubscriptionStatus
from core.subscriptions.overview import subscription_overviews
from core.subscriptions.reconciliation import start_report
from core.subscriptions.service import retry_operation
from core.subscriptions.stuck_operations import stuck_operations
from core.usage.reconciliation_models import DifferenceKind
from portal.configuration_view import setting_lines
from portal.pages import OperatorDep, OperatorFormDep, PortalRoute, redirect_with_message, render
from portal.slo_view import cluster_slo

router = APIRouter(prefix="/portal/operator", tags=["portal"], route_class=PortalRoute, include_in_schema=False)
# Work unchanged for this long is shown as stuck: well past what one controller or operation step takes.
STUCK_AFTER = timedelta(minutes=10)


@router.get("/subscriptions", response_class=HTMLResponse)
def subscriptions_page(
    request: Request,
    visitor: OperatorDep,
    database: DatabaseDep,
    status: Annotated[str, Query(max_length=32)] = "",
    plan: Annotated[str, Query(max_length=64)] = "",
    tenant: Annotated[str, Query(max_length=64)] = "",
    failed: Annotated[str, Query(max_length=8)] = "",
) -> Response:
    """Every subscription, filtered by status, plan, beneficiary tenant and failures."""
    with database.session() as db:
        overviews = subscription_overviews(
            db,
            visitor.principal,
            status=status or None,
            plan_id=plan or None,
            beneficiary_tenant_id=tenant.strip() or None,
            failed_only=failed == "on",
        )
        plans = {row.plan_id: row.display_name for row in db.exec(select(Plan)).all()}
    filters = {"status": status, "plan": plan, "tenant": tenant, "failed": failed == "on"}
    context = {
        "overviews": overviews,
        "plans": plans,
        "statuses": [item.value for item in SubscriptionStatus],
        "filters": filters,
    }
    return render(request, visitor.session, "operator/subscriptions.html", context)


@router.get("/clusters/{cluster_id}", response_class=HTMLResponse)
def cluster_page(request: Request, visitor: OperatorDep, database: DatabaseDep, cluster_id: str) -> Response:
    """A cluster with its desired and observed spec, every ARM deployment with its error, and the retry form."""
    with database.session() as db:
        cluster = visible_cluster(db, visitor.principal, cluster_id)
        context = {
            "cluster": cluster,
            "steps": cluster_deployments(db, cluster.id),
            "timeline": cluster_timeline(db, cluster.id),
            "drifts": cluster_drift_history(db, cluster.id),
        }
    return render(request, visitor.session, "operator/cluster.html", context)


@router.post("/clusters/{cluster_id}/retry")
def retry_cluster(
    visitor: OperatorFormDep, database: DatabaseDep, cluster_id: str, reason: Annotated[str, Form()] = ""
) -> Response:
    """Give a failed cluster a fresh retry budget."""
    with database.session() as db:
        retry_failed_cluster(db, cluster_id, actor=visitor.principal.actor, reason=reason.strip() or "operator retry")
    return redirect_with_message(
        visitor.session, f"/portal/operator/clusters/{quote(cluster_id, safe='')}", "Retry requested."
    )


@router.get("/operations", response_class=HTMLResponse)
def operations_page(request: Request, visitor: OperatorDep, database: DatabaseDep) -> Response:
    """Failed or stuck Marketplace operations and clusters, and dead letters, with retry, dismiss and reconcile."""
    unchanged_since = utc_now() - STUCK_AFTER
    with database.session() as db:
        letters = dead_letters(db)
        # An operation whose processing gave up shows that reason, not "reconcile re-drives it".
        letter_by_operation = {
            str(letter.arguments["operation_id"]): letter
            for letter in reversed(letters)
            if isinstance(letter.arguments, dict) and "operation_id" in letter.arguments
        }
        context = {
            "operations": stuck_operations(db, unchanged_since=unchanged_since, including=list(letter_by_operation)),
            "letter_by_operation": letter_by_operation,
            "dead_letters": letters,
            "clusters": clusters_needing_attention(db, unchanged_since=unchanged_since),
            "stuck_minutes": int(STUCK_AFTER.total_seconds() // 60),
        }
    return render(request, visitor.session, "operator/operations.html", context)


@router.post("/operations/{operation_id}/retry")
def retry_operation_form(visitor: OperatorFormDep, database: DatabaseDep, operation_id: str) -> Response:
    """Send a failed Marketplace operation through verification and application again."""
    with database.session() as db:
        retry_operation(db, operation_id, actor=visitor.principal.actor)
    return redirect_with_message(visitor.session, "/portal/operator/operations", f"Operation {operation_id} retried.")


@router.post("/dead-letters/{message_id}/retry")
def retry_dead_letter_form(visitor: OperatorFormDep, database: DatabaseDep, message_id: str) -> Response:
    """Give a dead-lettered message a fresh attempt budget (audited)."""
    number = _message_number(message_id)
    try:
        with database.session() as db:
            retry_dead_letter(db, number, actor=visitor.principal.actor)
    except NotADeadLetter:
        return redirect_with_message(
            visitor.session, "/portal/operator/operations", f"Message {number} was already retried or dismissed."
        )
    return redirect_with_message(
        visitor.session, "/portal/operator/operations", f"Message {number} will be delivered again."
    )


@router.post("/dead-letters/{message_id}/dismiss")
def dismiss_dead_letter_form(visitor: OperatorFormDep, database: DatabaseDep, message_id: str) -> Response:
    """Close a dead-lettered message without running it (audited)."""
    number = _message_number(message_id)
    try:
        with database.session() as db:
            dismiss_dead_letter(db, number, actor=visitor.principal.actor)
    except NotADeadLetter:
        return redirect_with_message(
            visitor.session, "/portal/operator/operations", f"Message {number} was already retried or dismissed."
        )
    return redirect_with_message(visitor.session, "/portal/operator/operations", f"Message {number} dismissed.")


@router.post("/reconciliations")
def reconcile_now(visitor: OperatorFormDep, database: DatabaseDep) -> Response:
    """Reconcile with Marketplace now (the same service calls as the publisher API)."""
    with database.session() as db:
        report = start_report(db, visitor.principal.actor)
        enqueue(db, TaskNames.MARKETPLACE_RECONCILE, {"report_id": report.id})
        report_id = report.id
    return redirect_with_message(
        visitor.session, "/portal/operator/operations", f"Reconciliation with Marketplace #{report_id} started."
    )


# The newest refused samples on the metering page; the JSON API pages through all of them.
REFUSED_SAMPLES_SHOWN = 50


@router.get("/billing", response_class=HTMLResponse)
def billing_page(request: Request, visitor: OperatorDep, database: DatabaseDep, settings: SettingsDep) -> Response:
    """Ledger entries by status, clusters whose usage reads fail, refused samples and the reconciliation reports."""
    with database.session() as db:
        context = {
            "ledger": status_counts(db),
            "reports": list_reports(db, limit=50),
            "refused": rejected_samples(db, cluster_id=None, limit=REFUSED_SAMPLES_SHOWN),
            "lagging": collection_lag(
                db,
                utc_now(),
                grace=timedelta(minutes=settings.billing_hour_close_grace_minutes),
                window=timedelta(hours=settings.metering_window_hours),
            ),
        }
    return render(request, visitor.session, "operator/billing.html", context)


@router.get("/billing/reports/{report_id}", response_class=HTMLResponse)
def report_page(request: Request, visitor: OperatorDep, database: DatabaseDep, report_id: RowId) -> Response:
    """One usage reconciliation report with every difference highlighted by kind."""
    with database.session() as db:
        report, differences = report_with_differences(db, report_id)
    kinds = {kind.value: kind.value.replace("_", " ") for kind in DifferenceKind}
    context = {"report": report, "differences": differences, "kinds": kinds}
    return render(request, visitor.session, "operator/report.html", context)


@router.get("/billing/reports/{report_id}/differences.csv")
def report_csv(visitor: OperatorDep, database: DatabaseDep, report_id: RowId) -> PlainTextResponse:
    """The report's differences as CSV for spreadsheets."""
    with database.session() as db:
        _, differences = report_with_differences(db, report_id)
    return PlainTextResponse(
        differences_csv(differences),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="usage-reconciliation-{report_id}.csv"'},
    )


@router.get("/slo", response_class=HTMLResponse)
def slo_overview_page(request: Request, visitor: OperatorDep, database: DatabaseDep, settings: SettingsDep) -> Response:
    """Every cluster's SLO status: objectives, current SLIs, error budget left and active burn-rate alerts."""
    now = utc_now()
    with database.session() as db:
        clusters = [
            cluster_slo(db, settings, cluster, with_charts=False, now=now)
            for cluster in visible_clusters(db, visitor.principal)
        ]
    context = {"clusters": clusters, "evaluated_at": now}
    return render(request, visitor.session, "operator/slo.html", context)


@router.get("/configuration", response_class=HTMLResponse)
def configuration_page(request: Request, visitor: OperatorDep, settings: SettingsDep) -> Response:
    """Endpoints and settings of this deployment, read-only, secrets shown only as set or not set."""
    endpoints, others = setting_lines(settings)
    return render(request, visitor.session, "operator/configuration.html", {"endpoints": endpoints, "others": others})


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    visitor: OperatorDep,
    database: DatabaseDep,
    action: Annotated[str, Query(max_length=128)] = "",
    actor: Annotated[str, Query(max_length=256)] = "",
    subject: Annotated[str, Query(max_length=512)] = "",
) -> Response:
    """Search every tenant's audit trail by action prefix, actor and subject id."""
    with database.session() as db:
        events = search_audit_events(
            db,
            tenant_row_id=None,
            action_prefix=action.strip() or None,
            actor=actor.strip() or None,
            subject_id=subject.strip() or None,
        )
    context = {"events": events, "action": action, "actor": actor, "subject": subject, "operator_view": True}
    return render(request, visitor.session, "audit.html", context)


def _message_number(message_id: str) -> int:
    # ASCII digits only, within a 64-bit id: anything else names no message (404), never a 500.
    if not message_id.isascii() or not message_id.isdigit() or len(message_id) > 18:
        raise NotFound("outbox message not found", details={"outbox_id": message_id[:64]})
    return int(message_id)

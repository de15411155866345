"""Operator pages: every subscription with filters, cluster detail and retry, stuck work and reconcile,
metering ledger and reconciliation reports (with CSV), read-only configuration, audit search."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlmodel import select

from billing.reconciliation import differences_csv, list_reports, report_with_differences
from billing.reports import adjustment_count, collection_lag, rejected_samples, status_by_dimension
from core.audit.queries import search_audit_page
from core.catalog.models import Plan
from core.clock import utc_now
from core.clusters.drift import cluster_drift_history
from core.clusters.queries import (
    cluster_deployments,
    cluster_timeline,
    clusters_in_retention,
    clusters_needing_attention,
    stuck_cluster_reason,
)
from core.clusters.recovery import retry_failed_cluster
from core.errors import NotFound
from core.networking.service import visible_cluster
from core.outbox.dead_letters import NotADeadLetter, dead_letters, dismiss_dead_letter, retry_dead_letter
from core.outbox.service import enqueue
from core.paging import PageRequest, SortDirection
from core.slo.service import visible_clusters_page
from core.subscriptions.listing import SubscriptionFilters, SubscriptionOrder, SubscriptionSort, list_subscriptions
from core.subscriptions.models import SubscriptionStatus
from core.subscriptions.reconciliation import start_report
from core.subscriptions.service import retry_operation
from core.subscriptions.stuck_operations import stuck_operations
from core.task_payloads import ReconcileWithMarketplace
from core.usage.reconciliation_models import DifferenceKind
from portal.configuration_view import setting_lines
from portal.list_links import ListLinks
from portal.pages import OperatorDep, OperatorFormDep, PortalRoute, redirect_with_message, render
from portal.slo_view import cluster_slo
from web.dependencies import DatabaseDep, RowId, SettingsDep

router = APIRouter(prefix="/portal/operator", tags=["portal"], route_class=PortalRoute, include_in_schema=False)
# The stuck-work page shows the oldest items of each kind; fixing them brings the next ones up.
STUCK_ROWS_SHOWN = 50
RETENTION_ROWS_SHOWN = 20
# Work unchanged for this long is shown as stuck: well past what one controller or operation step takes.
STUCK_AFTER = timedelta(minutes=10)


@router.get("/subscriptions", response_class=HTMLResponse)
def subscriptions_page(
    request: Request,
    visitor: OperatorDep,
    database: DatabaseDep,
    q: Annotated[str, Query(max_length=256)] = "",
    status: Annotated[str, Query(max_length=32)] = "",
    plan: Annotated[str, Query(max_length=64)] = "",
    tenant: Annotated[str, Query(max_length=64)] = "",
    failed: Annotated[str, Query(max_length=8)] = "",
    sort: Annotated[str, Query(max_length=32)] = SubscriptionSort.CREATED.value,
    order: Annotated[str, Query(alias="dir", max_length=32)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    """Every subscription: searched, filtered, sorted by any column and paged, with the number that match."""
    column = SubscriptionSort(sort) if sort in SubscriptionSort.__members__.values() else SubscriptionSort.CREATED
    direction = _direction(order, default=SortDirection.DESCENDING if column is SubscriptionSort.CREATED else None)
    filters = SubscriptionFilters(
        search=q, status=status, plan_id=plan, beneficiary_tenant_id=tenant, failed_only=failed == "on"
    )
    with database.session() as db:
        listed = list_subscriptions(db, filters, SubscriptionOrder(column, direction), PageRequest.of(page))
        plans = {row.plan_id: row.display_name for row in db.exec(select(Plan)).all()}
    values = {"q": q, "status": status, "plan": plan, "tenant": tenant, "failed": "on" if failed == "on" else ""}
    context = {
        "listed": listed,
        "plans": plans,
        "statuses": [item.value for item in SubscriptionStatus],
        "filters": {**values, "failed": failed == "on"},
        "links": ListLinks("/portal/operator/subscriptions", values, column.value, direction),
    }
    return render(request, visitor.session, "operator/subscriptions.html", context)


def _direction(value: str, *, default: SortDirection | None) -> SortDirection:
    if value in SortDirection.__members__.values():
        return SortDirection(value)
    return default or SortDirection.ASCENDING


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
    now = utc_now()
    unchanged_since = now - STUCK_AFTER
    with database.session() as db:
        letters = dead_letters(db)
        # An operation whose processing gave up shows that reason, not "reconcile re-drives it".
        letter_by_operation = {
            str(letter.arguments["operation_id"]): letter
            for letter in reversed(letters)
            if isinstance(letter.arguments, dict) and "operation_id" in letter.arguments
        }
        context = {
            "operations": stuck_operations(
                db, unchanged_since=unchanged_since, including=list(letter_by_operation), limit=STUCK_ROWS_SHOWN
            ),
            "letter_by_operation": letter_by_operation,
            "dead_letters": letters,
            "clusters": [
                (cluster, stuck_cluster_reason(cluster, now=now))
                for cluster in clusters_needing_attention(db, unchanged_since=unchanged_since, limit=STUCK_ROWS_SHOWN)
            ],
            "retention": clusters_in_retention(db, now=now, limit=RETENTION_ROWS_SHOWN),
            "shown": STUCK_ROWS_SHOWN,
            "retention_shown": RETENTION_ROWS_SHOWN,
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
        enqueue(db, ReconcileWithMarketplace(report_id=report.id))
        report_id = report.id
    return redirect_with_message(
        visitor.session, "/portal/operator/operations", f"Reconciliation with Marketplace #{report_id} started."
    )


# Each cluster's SLO status costs a few queries: a page holds as many as answer well within the pages' budget.
SLO_PAGE_SIZE = 10
# The newest refused samples on the metering page; the JSON API pages through all of them.
REFUSED_SAMPLES_SHOWN = 50


@router.get("/billing", response_class=HTMLResponse)
def billing_page(request: Request, visitor: OperatorDep, database: DatabaseDep, settings: SettingsDep) -> Response:
    """Ledger entries by status, clusters whose usage reads fail, refused samples and the reconciliation reports."""
    with database.session() as db:
        context = {
            "ledger": status_by_dimension(db),
            "adjustments": adjustment_count(db),
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
def slo_overview_page(
    request: Request,
    visitor: OperatorDep,
    database: DatabaseDep,
    settings: SettingsDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    """Every cluster's SLO status, a page at a time: objectives, current SLIs, error budget left, burn-rate alerts."""
    now = utc_now()
    with database.session() as db:
        listed = visible_clusters_page(db, visitor.principal, PageRequest.of(page, SLO_PAGE_SIZE))
        clusters = [cluster_slo(db, settings, cluster, with_charts=False, now=now) for cluster in listed.rows]
    context = {
        "clusters": clusters,
        "evaluated_at": now,
        "listed": listed,
        "links": ListLinks("/portal/operator/slo", {}, "", SortDirection.ASCENDING),
    }
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
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    """Search every tenant's audit trail by action prefix, actor and subject id, newest first, paged."""
    with database.session() as db:
        listed = search_audit_page(
            db,
            PageRequest.of(page),
            action_prefix=action.strip() or None,
            actor=actor.strip() or None,
            subject_id=subject.strip() or None,
        )
    values = {"action": action, "actor": actor, "subject": subject}
    context = {
        "events": listed.rows,
        "listed": listed,
        "links": ListLinks("/portal/operator/audit", values, "", SortDirection.DESCENDING),
        "action": action,
        "actor": actor,
        "subject": subject,
        "operator_view": True,
    }
    return render(request, visitor.session, "audit.html", context)


def _message_number(message_id: str) -> int:
    # ASCII digits only, within a 64-bit id: anything else names no message (404), never a 500.
    if not message_id.isascii() or not message_id.isdigit() or len(message_id) > 18:
        raise NotFound("outbox message not found", details={"outbox_id": message_id[:64]})
    return int(message_id)

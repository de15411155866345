"""Customer admin pages: subscriptions, a subscription's cluster (timeline, connections, key, usage), audit trail.

Every id in a URL is resolved through the tenant-scoped queries and services, so another tenant's
subscription, cluster or connection answers 404 exactly like one that does not exist.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError
from sqlmodel import Session, select

from core.audit.actions import AuditAction
from core.audit.models import AuditEvent
from core.audit.queries import search_audit_events
from core.audit.sentences import STEP_NAMES, actor_in_words, sentence_of
from core.audit.service import record_audit_event
from core.catalog.models import MeteredDimension, Plan
from core.clock import utc_now
from core.clusters.drift import cluster_drift_history
from core.clusters.failure_advice import failure_advice
from core.clusters.key_rotation import request_key_rotation
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.queries import cluster_deployments, cluster_timeline, recent_key_rotations
from core.clusters.schemas import PrivateLinkPolicy
from core.clusters.service import change_desired_spec
from core.errors import Conflict, ValidationFailed
from core.networking.models import ConnectionStatus
from core.networking.service import decide_connection, list_connections
from core.slo.service import visible_cluster
from core.subscriptions.models import SubscriptionStatus
from core.subscriptions.overview import (
    SubscriptionOverview,
    subscription_overviews,
    tenant_row_id,
    visible_subscription,
)
from core.subscriptions.schemas import split_list
from core.usage.queries import usage_by_dimension
from portal.pages import AdminFormDep, PortalRoute, VisitorDep, redirect_with_message, render
from portal.readable import utc_time
from portal.slo_view import CHART_BUCKET_MINUTES, CHART_HOURS, cluster_slo
from portal.usage_chart import UsageChart, build_usage_chart
from web.dependencies import DatabaseDep, SettingsDep

router = APIRouter(prefix="/portal", tags=["portal"], route_class=PortalRoute, include_in_schema=False)
USAGE_WINDOW = timedelta(days=7)
# Where a SaaS customer changes plan or quantity: Marketplace owns the change, we apply what it tells us.
AZURE_SAAS_RESOURCES_URL = "https://portal.azure.com/#browse/Microsoft.SaaS%2Fresources"
# The auto-approval entry that approves every subscription able to see the service.
WILDCARD = "*"


def timeline_done(cluster: Cluster | None) -> bool:
    """Whether the detail page's timeline stops polling: no cluster, or a settled one (deleted included)."""
    return cluster is None or ClusterStatus(cluster.status).settled


def _detail_path(subscription_id: str) -> str:
    return f"/portal/subscriptions/{quote(subscription_id, safe='')}"


def _cluster_of(overview: SubscriptionOverview) -> Cluster:
    if overview.cluster is None:
        raise Conflict("this subscription has no cluster yet; wait until the purchase has been set up")
    return overview.cluster


@router.get("/subscriptions", response_class=HTMLResponse)
def subscriptions_page(request: Request, visitor: VisitorDep, database: DatabaseDep) -> Response:
    """The visitor's subscriptions with plan, quantity, status and their cluster's outputs."""
    with database.session() as db:
        overviews = subscription_overviews(db, visitor.principal)
        plans = _plan_names(db)
    return render(request, visitor.session, "subscriptions.html", {"overviews": overviews, "plans": plans})


@router.get("/subscriptions/{subscription_id}", response_class=HTMLResponse)
def subscription_page(
    request: Request, visitor: VisitorDep, database: DatabaseDep, settings: SettingsDep, subscription_id: str
) -> Response:
    """One subscription: its cluster, live timeline, private endpoint connections, key, usage and plan changes."""
    with database.session() as db:
        overview = visible_subscription(db, visitor.principal, subscription_id)
        cluster = overview.cluster
        context: dict[str, Any] = {
            "overview": overview,
            "plans": _plan_names(db),
            "timeline": cluster_timeline(db, cluster.id) if cluster else [],
            "steps": cluster_deployments(db, cluster.id) if cluster else [],
            "connections": list_connections(db, visitor.principal, cluster.id) if cluster else [],
            "rotations": recent_key_rotations(db, cluster.id) if cluster else [],
            "drifts": cluster_drift_history(db, cluster.id) if cluster else [],
            "charts": _usage_charts(db, overview) if cluster else [],
            "timeline_done": timeline_done(cluster),
            "failure": failure_advice(cluster, settings.control_plane_client_id)
            if cluster is not None and cluster.status == ClusterStatus.FAILED
            else None,
            "timeline_url": _detail_path(subscription_id) + "/timeline",
            "change_url": AZURE_SAAS_RESOURCES_URL,
            "active": overview.subscription.status != SubscriptionStatus.UNSUBSCRIBED,
        }
    return render(request, visitor.session, "subscription.html", context)


@router.get("/subscriptions/{subscription_id}/timeline")
def timeline_json(visitor: VisitorDep, database: DatabaseDep, subscription_id: str) -> JSONResponse:
    """The provisioning timeline the detail page polls (progressive enhancement; the page works by reload)."""
    with database.session() as db:
        overview = visible_subscription(db, visitor.principal, subscription_id)
        cluster = overview.cluster
        events = cluster_timeline(db, cluster.id) if cluster else []
        body = {
            "subscription_status": overview.subscription.status,
            "cluster_status": cluster.status if cluster else None,
            "current_step": cluster.current_step if cluster else None,
            "current_step_text": STEP_NAMES.get(cluster.current_step or "") if cluster else None,
            "done": timeline_done(cluster),
            "events": [_timeline_event(event) for event in events],
        }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.post("/subscriptions/{subscription_id}/connections/{connection_id}")
def decide_connection_form(
    visitor: AdminFormDep,
    database: DatabaseDep,
    subscription_id: str,
    connection_id: str,
    decision: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Approve or reject a private endpoint connection as the signed-in person."""
    if decision not in (ConnectionStatus.APPROVED, ConnectionStatus.REJECTED):
        raise ValidationFailed("choose approve or reject")
    with database.session() as db:
        cluster = _cluster_of(visible_subscription(db, visitor.principal, subscription_id))
        row = decide_connection(
            db,
            visitor.principal,
            cluster.id,
            connection_id,
            ConnectionStatus(decision),
            reason.strip() or f"{decision} in the portal",
        )
        name = row.connection_name
    return redirect_with_message(
        visitor.session, _detail_path(subscription_id) + "#connections", f"Connection {name} {decision}."
    )


@router.post("/subscriptions/{subscription_id}/auto-approval")
def update_auto_approval(
    visitor: AdminFormDep,
    database: DatabaseDep,
    subscription_id: str,
    auto_approval_subscriptions: Annotated[str, Form()] = "",
    confirm_all_subscriptions: Annotated[str, Form()] = "",
) -> Response:
    """The policy editor: Azure subscriptions whose private endpoints are approved without asking.

    `*` approves every subscription that can see the service: it needs the explicit confirmation box, and
    is audited as a decision of its own.
    """
    with database.session() as db:
        cluster = _cluster_of(visible_subscription(db, visitor.principal, subscription_id))
        try:
            policy = PrivateLinkPolicy(
                visibility_subscriptions=cluster.pls_visibility_subscriptions,
                auto_approval_subscriptions=split_list(auto_approval_subscriptions),
            )
        except ValidationError as error:
            problems = "; ".join(str(issue["msg"]).removeprefix("Value error, ") for issue in error.errors())
            raise ValidationFailed(f"the auto-approval list was not saved: {problems}") from None
        approves_everyone = WILDCARD in policy.auto_approval_subscriptions
        if approves_everyone and WILDCARD not in cluster.pls_auto_approval_subscriptions:
            if confirm_all_subscriptions != "yes":
                raise ValidationFailed(
                    "the auto-approval list was not saved: * approves private endpoints from every subscription "
                    "that can see the service; tick the confirmation box to mean it"
                )
            record_audit_event(
                db,
                actor=visitor.principal.actor,
                action=AuditAction.CLUSTER_AUTO_APPROVAL_ALL_SUBSCRIPTIONS_CONFIRMED,
                subject_type="cluster",
                subject_id=cluster.id,
                tenant_id=cluster.tenant_id,
                before={"auto_approval_subscriptions": cluster.pls_auto_approval_subscriptions},
                after={"auto_approval_subscriptions": policy.auto_approval_subscriptions},
                details={"confirmation": "explicit"},
            )
        change_desired_spec(
            db,
            cluster.id,
            actor=visitor.principal.actor,
            reason="auto-approval list edited in the portal",
            pls_auto_approval_subscriptions=policy.auto_approval_subscriptions,
        )
    return redirect_with_message(
        visitor.session, _detail_path(subscription_id) + "#policy", "Auto-approval list saved; the cluster is updating."
    )


@router.post("/subscriptions/{subscription_id}/key-rotations")
def rotate_key(
    visitor: AdminFormDep,
    database: DatabaseDep,
    subscription_id: str,
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Rotate the customer-managed key now."""
    with database.session() as db:
        cluster = _cluster_of(visible_subscription(db, visitor.principal, subscription_id))
        request_key_rotation(
            db, cluster, actor=visitor.principal.actor, reason=reason.strip() or "rotated in the portal"
        )
    return redirect_with_message(
        visitor.session, _detail_path(subscription_id) + "#key", "Key rotation requested; the new key id appears here."
    )


@router.get("/clusters/{cluster_id}/slo", response_class=HTMLResponse)
def cluster_slo_page(
    request: Request, visitor: VisitorDep, database: DatabaseDep, settings: SettingsDep, cluster_id: str
) -> Response:
    """A cluster's service levels: objectives, SLIs, error budgets, burn rates, alerts and SLI charts."""
    with database.session() as db:
        slo = cluster_slo(db, settings, visible_cluster(db, visitor.principal, cluster_id), with_charts=True)
    context = {
        "slo": slo,
        "chart_hours": CHART_HOURS,
        "chart_bucket_minutes": CHART_BUCKET_MINUTES,
        "probe_interval_minutes": settings.blob_probe_interval_seconds / 60,
        "back_url": _detail_path(slo.cluster.subscription_id)
        if slo.cluster.subscription_id
        else "/portal/subscriptions",
    }
    return render(request, visitor.session, "slo.html", context)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    visitor: VisitorDep,
    database: DatabaseDep,
    action: Annotated[str, Query(max_length=128)] = "",
) -> Response:
    """The audit trail of the visitor's tenant (operators: every tenant), newest first."""
    with database.session() as db:
        events = search_audit_events(
            db, tenant_row_id=tenant_row_id(db, visitor.principal), action_prefix=action.strip() or None
        )
    return render(request, visitor.session, "audit.html", {"events": events, "action": action, "operator_view": False})


def _timeline_event(event: AuditEvent) -> dict[str, Any]:
    """One timeline line for the page's script: the words it shows, and the codes for machines."""
    said = sentence_of(event)
    return {
        "occurred_at": event.occurred_at.isoformat(),
        "occurred_at_text": utc_time(event.occurred_at),
        "action": event.action,
        "step": (event.details or {}).get("step"),
        "outcome": event.outcome,
        "actor": event.actor,
        "sentence": said.text,
        "tone": said.tone.value,
        "who": actor_in_words(event.actor),
    }


def _plan_names(db: Session) -> dict[str, str]:
    return {plan.plan_id: plan.display_name for plan in db.exec(select(Plan)).all()}


def _usage_charts(db: Session, overview: SubscriptionOverview) -> list[UsageChart]:
    assert overview.cluster is not None
    dimensions = {
        dimension.dimension_id: dimension
        for dimension in db.exec(
            select(MeteredDimension).where(MeteredDimension.offer_id == overview.subscription.offer_id)
        ).all()
    }
    now = utc_now()
    series = usage_by_dimension(db, overview.cluster.id, since=now - USAGE_WINDOW)
    charts = []
    for dimension_id, dimension in sorted(dimensions.items()):
        hours = series.get(dimension_id, [])
        charts.append(
            build_usage_chart(
                dimension_id, dimension.display_name, dimension.unit, hours, end=now, earliest=now - USAGE_WINDOW
            )
        )
    return charts

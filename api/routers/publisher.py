"""The publisher's JSON API (operators only): subscriptions, their operations and audit trail, retries, reconcile."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.security import OperatorDep
from core.browser_sessions.service import revoke_sessions
from core.clock import utc_now
from core.outbox.service import enqueue
from core.subscriptions.models import SubscriptionStatus
from core.subscriptions.queries import (
    list_subscriptions,
    operation_view,
    reconciliation_report,
    subscription_detail,
)
from core.subscriptions.reconciliation import start_report
from core.subscriptions.schemas import OperationView, ReconciliationReportView, SubscriptionDetail, SubscriptionPage
from core.subscriptions.service import retry_operation
from core.task_payloads import ReconcileWithMarketplace
from web.dependencies import MAX_DATABASE_INTEGER, RowId, SessionDep
from web.errors import error_response, error_responses

ERROR_RESPONSES = {
    **error_responses(401, 422),
    403: error_response("The caller is not a publisher operator"),
}
router = APIRouter(prefix="/api/publisher", tags=["publisher"], responses=ERROR_RESPONSES)


@router.get("/subscriptions", response_model=SubscriptionPage, summary="List and filter subscriptions")
def get_subscriptions(
    session: SessionDep,
    operator: OperatorDep,
    status: Annotated[SubscriptionStatus | None, Query(description="Marketplace status")] = None,
    plan_id: Annotated[str | None, Query(max_length=64)] = None,
    tenant_id: Annotated[str | None, Query(max_length=64, description="Beneficiary's Entra tenant id")] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_DATABASE_INTEGER)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> SubscriptionPage:
    """Subscriptions, newest first."""
    return list_subscriptions(
        session,
        status=status.value if status else None,
        plan_id=plan_id,
        beneficiary_tenant_id=tenant_id,
        offset=offset,
        limit=limit,
    )


@router.get(
    "/subscriptions/{subscription_id}",
    response_model=SubscriptionDetail,
    summary="A subscription with its cluster, operations and audit trail",
    responses={404: error_response("No such subscription")},
)
def get_subscription(session: SessionDep, operator: OperatorDep, subscription_id: str) -> SubscriptionDetail:
    """Everything we hold about one subscription."""
    return subscription_detail(session, subscription_id)


@router.post(
    "/operations/{operation_id}/retry",
    response_model=OperationView,
    status_code=202,
    summary="Retry a failed Marketplace operation",
    responses={404: error_response("No such operation"), 409: error_response("The operation has not failed")},
)
def post_retry_operation(session: SessionDep, operator: OperatorDep, operation_id: str) -> OperationView:
    """Send a failed operation through verification and application again."""
    return operation_view(retry_operation(session, operation_id, actor=operator.actor))


@router.post(
    "/reconciliations",
    response_model=ReconciliationReportView,
    status_code=202,
    summary="Force a reconciliation with Marketplace",
)
def post_reconciliation(session: SessionDep, operator: OperatorDep) -> ReconciliationReportView:
    """Start a reconciliation now; poll the report it returns."""
    report = start_report(session, operator.actor)
    assert report.id is not None
    enqueue(session, ReconcileWithMarketplace(report_id=report.id))
    return ReconciliationReportView.model_validate(report, from_attributes=True)


@router.get(
    "/reconciliations/{report_id}",
    response_model=ReconciliationReportView,
    summary="A reconciliation report",
    responses={404: error_response("No such report")},
)
def get_reconciliation(session: SessionDep, operator: OperatorDep, report_id: RowId) -> ReconciliationReportView:
    """What a reconciliation found and changed."""
    return reconciliation_report(session, report_id)


class SessionRevocation(BaseModel):
    """The person whose browser sessions end (tenant and object id, as their tokens name them)."""

    model_config = ConfigDict(extra="forbid")
    entra_tenant_id: str = Field(min_length=1, max_length=64)
    object_id: str = Field(min_length=1, max_length=64)


class SessionRevocationView(BaseModel):
    entra_tenant_id: str
    object_id: str
    sessions_ended: int


@router.post(
    "/sessions/revocations",
    response_model=SessionRevocationView,
    summary="End every browser session of one person now",
)
def post_session_revocation(
    session: SessionDep, operator: OperatorDep, body: SessionRevocation
) -> SessionRevocationView:
    """Their next request is signed out; signing in again reads their roles afresh from Entra."""
    count = revoke_sessions(
        session, entra_tenant_id=body.entra_tenant_id, object_id=body.object_id, actor=operator.actor, now=utc_now()
    )
    return SessionRevocationView(entra_tenant_id=body.entra_tenant_id, object_id=body.object_id, sessions_ended=count)

"""Billing for publisher operators: the ledger by status and the usage reconciliation reports (JSON and CSV)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse, Response

from api.security import OperatorDep
from billing.reconciliation import differences_csv, list_reports, report_with_differences
from billing.reports import collection_lag, rejected_samples, status_counts
from billing.schemas import (
    CollectionLagView,
    DifferenceView,
    LedgerStatusView,
    RejectedSampleView,
    ReportSummaryView,
    ReportView,
)
from core.clock import utc_now
from core.errors import ValidationFailed
from web.dependencies import RowId, SessionDep, SettingsDep
from web.errors import error_response, error_responses

ERROR_RESPONSES = {
    **error_responses(401, 422),
    403: error_response("The caller is not a publisher operator"),
}
router = APIRouter(prefix="/api/publisher/billing", tags=["billing"], responses=ERROR_RESPONSES)


@router.get("/ledger", response_model=LedgerStatusView, summary="Ledger entries and quantities by status")
def get_ledger_status(
    session: SessionDep,
    operator: OperatorDep,
    start: Annotated[datetime | None, Query(alias="from", description="first hour (UTC, inclusive)")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="last hour (UTC, exclusive)")] = None,
) -> LedgerStatusView:
    """Counts and billable quantity per status for hours in [from, to)."""
    for name, value in (("from", start), ("to", end)):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed(f"{name} needs a UTC offset, e.g. 2026-11-26T00:00:00Z")
    if start is not None and end is not None and end <= start:
        raise ValidationFailed("to must be after from")
    return LedgerStatusView.model_validate(status_counts(session, start, end))


@router.get(
    "/rejected-samples", response_model=list[RejectedSampleView], summary="Usage samples refused, with the reason"
)
def get_rejected_samples(
    session: SessionDep,
    operator: OperatorDep,
    cluster_id: Annotated[uuid.UUID | None, Query(description="only this cluster's samples")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[RejectedSampleView]:
    """Newest measurement first: samples outside a cluster's billable window, dated in the future or negative."""
    rows = rejected_samples(session, cluster_id=str(cluster_id) if cluster_id else None, limit=limit)
    return [RejectedSampleView.model_validate(row) for row in rows]


@router.get(
    "/collection-lag",
    response_model=list[CollectionLagView],
    summary="Clusters whose usage cannot be read, with the hours they hold open",
)
def get_collection_lag(session: SessionDep, operator: OperatorDep, settings: SettingsDep) -> list[CollectionLagView]:
    """Longest failing first. Their hours close only after a successful read; hours older than Marketplace's window
    can no longer be billed through metering."""
    rows = collection_lag(
        session,
        utc_now(),
        grace=timedelta(minutes=settings.billing_hour_close_grace_minutes),
        window=timedelta(hours=settings.metering_window_hours),
    )
    return [CollectionLagView.model_validate(row) for row in rows]


@router.get("/reconciliation-reports", response_model=list[ReportSummaryView], summary="Usage reconciliation runs")
def get_reports(
    session: SessionDep, operator: OperatorDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[ReportSummaryView]:
    """The newest reports first."""
    return [ReportSummaryView.of(report) for report in list_reports(session, limit=limit)]


@router.get(
    "/reconciliation-reports/{report_id}",
    response_model=ReportView,
    summary="One reconciliation report with its differences",
    responses={404: error_response("No such report")},
)
def get_report(session: SessionDep, operator: OperatorDep, report_id: RowId) -> ReportView:
    """Every difference of one report."""
    report, differences = report_with_differences(session, report_id)
    return ReportView(
        **ReportSummaryView.of(report).model_dump(),
        differences=[DifferenceView.of(difference) for difference in differences],
    )


@router.get(
    "/reconciliation-reports/{report_id}/differences.csv",
    # The plain Response class leaves the 200 to the CSV below and documents the errors as JSON.
    response_class=Response,
    summary="One report's differences as CSV",
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        404: error_response("No such report"),
    },
)
def get_report_csv(session: SessionDep, operator: OperatorDep, report_id: RowId) -> PlainTextResponse:
    """The differences with a header row, for spreadsheets."""
    _, differences = report_with_differences(session, report_id)
    return PlainTextResponse(
        differences_csv(differences),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="usage-reconciliation-{report_id}.csv"'},
    )

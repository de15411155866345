"""Connect a service, in the portal: the consumer matrix, the DNS a consumer needs, and the form that declares one.

The page and the form go through the same services as the JSON API (`core.connectivity.service`), so the rules,
the tenant scoping and the audit trail are one.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from core.connectivity.catalog import ConsumerKind, connectivity_catalog
from core.connectivity.dns import cluster_dns
from core.connectivity.models import ExpectationStatus
from core.connectivity.service import (
    DEFAULT_LIFETIME,
    connect_service,
    connectivity_matrix,
    instructions_for,
    list_expectations,
    may_declare,
)
from core.errors import ValidationFailed
from core.networking.service import visible_cluster
from portal.pages import AdminFormDep, PortalRoute, VisitorDep, redirect_with_message, render
from web.dependencies import DatabaseDep

router = APIRouter(prefix="/portal", tags=["portal"], route_class=PortalRoute, include_in_schema=False)


def _page_path(cluster_id: str) -> str:
    return f"/portal/clusters/{quote(cluster_id, safe='')}/connectivity"


def _context(db: Any, visitor: Any, cluster_id: str) -> dict[str, Any]:
    cluster = visible_cluster(db, visitor.principal, cluster_id)
    ready = cluster.pls_resource_id is not None and cluster.pls_alias is not None
    expectations = list_expectations(db, visitor.principal, cluster.id)
    return {
        "cluster": cluster,
        "catalog": connectivity_catalog().consumer,
        "matrix": connectivity_matrix(db, visitor.principal, cluster.id),
        "dns": cluster_dns(cluster),
        "expectations": [
            (
                row,
                instructions_for(cluster, row)
                if ready and row.status == ExpectationStatus.WAITING and may_declare(visitor.principal)
                else None,
            )
            for row in reversed(expectations)
        ],
        "ready": ready,
        "lifetime_hours": int(DEFAULT_LIFETIME.total_seconds() // 3600),
    }


@router.get("/clusters/{cluster_id}/connectivity", response_class=HTMLResponse)
def connectivity_page(request: Request, visitor: VisitorDep, database: DatabaseDep, cluster_id: str) -> Response:
    """Consumers and their connection state, DNS to set up, expected connections, and "connect a service"."""
    with database.session() as db:
        context = _context(db, visitor, cluster_id)
    return render(request, visitor.session, "connectivity.html", context)


@router.post("/clusters/{cluster_id}/connectivity", response_class=HTMLResponse)
def connect_form(
    request: Request,
    visitor: AdminFormDep,
    database: DatabaseDep,
    cluster_id: str,
    consumer: Annotated[str, Form(max_length=64)] = "",
    resource_id: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """Declare a consumer; the page then shows exactly what to create on the customer's side."""
    try:
        kind = ConsumerKind(consumer)
    except ValueError:
        kind = None
    with database.session() as db:
        try:
            if kind is None:
                raise ValidationFailed("choose the service that connects")
            answer = connect_service(db, visitor.principal, cluster_id, kind, resource_id, DEFAULT_LIFETIME)
            expectation_id = answer.expectation.id
        except ValidationFailed as error:
            db.rollback()
            context = _context(db, visitor, cluster_id)
            context |= {
                "form_error": error.message,
                "form_details": error.details,
                "form": {"consumer": consumer, "resource_id": resource_id},
            }
            return render(request, visitor.session, "connectivity.html", context, status_code=422)
    return redirect_with_message(
        visitor.session,
        f"{_page_path(cluster_id)}#expectation-{expectation_id}",
        "Expected connection recorded: create what is shown below; it is approved when it reaches the cluster.",
    )

"""Consumer connectivity: the catalog, "connect a service" (expected connections), DNS and the health matrix."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.security import AdminDep, PrincipalDep
from core.connectivity.catalog import ConsumerEntry, ConsumerKind, connectivity_catalog
from core.connectivity.consumers import Instructions
from core.connectivity.dns import ClusterDns, cluster_dns
from core.connectivity.models import ExpectationStatus, ExpectedConnection
from core.connectivity.service import (
    ConsumerHealth,
    cancel_expectation,
    connect_service,
    connectivity_matrix,
    get_expectation,
    instructions_for,
    list_expectations,
    may_declare,
)
from core.identity.principal import Principal
from core.networking.service import visible_cluster
from web.dependencies import SessionDep
from web.errors import error_response, error_responses
from web.permissions import public_route

router = APIRouter(prefix="/api", tags=["connectivity"], responses=error_responses(401, 404, 422))


class ConnectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    consumer: ConsumerKind
    resource_id: str = Field(
        min_length=1,
        max_length=1024,
        description="private endpoint id (customer VNet), factory or Synapse workspace ARM id, Databricks NCC id, "
        "or Fabric workspace id",
    )
    lifetime_hours: int = Field(default=24, ge=1, le=720, description="the expectation expires after this long")


class ExpectationView(BaseModel):
    id: str
    consumer_kind: str
    consumer_resource_id: str
    status: str
    expected_endpoint_id: str | None
    expected_endpoint_name: str | None
    expected_request_message: str | None
    managed_endpoint_name: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    matched_connection_id: str | None
    evidence: dict[str, Any]


class ConnectView(BaseModel):
    expectation: ExpectationView
    instructions: Instructions | None = Field(description="None while the cluster has no Private Link Service")


class ConnectivityView(BaseModel):
    dns: ClusterDns
    consumers: list[ConsumerHealth]


def _view(row: ExpectedConnection, principal: Principal) -> ExpectationView:
    view = ExpectationView.model_validate(row, from_attributes=True)
    if row.status == ExpectationStatus.WAITING and not may_declare(principal):
        # Still usable: its one-time values are for the admins who declare, not for readers or operators.
        view = view.model_copy(
            update={"expected_endpoint_name": None, "expected_request_message": None, "managed_endpoint_name": None}
        )
    return view


@router.get(
    "/connectivity/consumers",
    dependencies=[
        public_route("the connectivity catalog: facts from Microsoft's public documentation, no tenant data")
    ],
)
def list_consumers() -> list[ConsumerEntry]:
    """Which Azure services can target our Private Link Service, how, and the documents each fact comes from."""
    return list(connectivity_catalog().consumer)


@router.post(
    "/clusters/{cluster_id}/expected-connections",
    status_code=201,
    responses={
        **error_responses(403),
        409: error_response("The cluster has no Private Link Service yet"),
    },
)
def connect(cluster_id: str, body: ConnectRequest, session: SessionDep, principal: AdminDep) -> ConnectView:
    """Connect a service: record the connection we expect from it and answer with exactly what to create."""
    answer = connect_service(
        session, principal, cluster_id, body.consumer, body.resource_id, timedelta(hours=body.lifetime_hours)
    )
    return ConnectView(expectation=_view(answer.expectation, principal), instructions=answer.instructions)


@router.get("/clusters/{cluster_id}/expected-connections")
def get_expectations(cluster_id: str, session: SessionDep, principal: PrincipalDep) -> list[ExpectationView]:
    """The cluster's expected connections, waiting, matched (with their evidence), expired or cancelled."""
    return [_view(row, principal) for row in list_expectations(session, principal, cluster_id)]


@router.get("/clusters/{cluster_id}/expected-connections/{expectation_id}")
def get_one(cluster_id: str, expectation_id: str, session: SessionDep, principal: PrincipalDep) -> ConnectView:
    """One expected connection with its instructions again (none while the cluster has no Private Link Service)."""
    cluster = visible_cluster(session, principal, cluster_id)
    row = get_expectation(session, principal, cluster_id, expectation_id)
    shown = cluster.pls_resource_id is not None and cluster.pls_alias is not None and may_declare(principal)
    return ConnectView(
        expectation=_view(row, principal), instructions=instructions_for(cluster, row) if shown else None
    )


@router.delete(
    "/clusters/{cluster_id}/expected-connections/{expectation_id}",
    responses={
        **error_responses(403),
        409: error_response("The expectation was already matched, expired or cancelled"),
    },
)
def cancel(cluster_id: str, expectation_id: str, session: SessionDep, principal: AdminDep) -> ExpectationView:
    """Withdraw a waiting expectation: its connection, if it still comes, waits for a person."""
    return _view(cancel_expectation(session, principal, cluster_id, expectation_id), principal)


@router.get("/clusters/{cluster_id}/connectivity")
def get_connectivity(cluster_id: str, session: SessionDep, principal: PrincipalDep) -> ConnectivityView:
    """Per consumer: the FQDNs to map, the private DNS zone a customer VNet needs, and the connection state."""
    cluster = visible_cluster(session, principal, cluster_id)
    return ConnectivityView(dns=cluster_dns(cluster), consumers=connectivity_matrix(session, principal, cluster_id))

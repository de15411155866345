"""Tenant isolation on every route of the app, against a real API process: one case per route, or a reason it is public.

Contoso (tenant A) and Fabrikam (tenant B) each own a subscription with a cluster, connections, a key rotation,
an operation and audit events. Fabrikam's admin asking for anything of Contoso's gets 404 (exactly like an id
that does not exist) and never sees a byte of Contoso's data, also when pairing Fabrikam's own cluster with
Contoso's connection or rotation id; list routes answer 200 with Fabrikam's rows only. Contoso's admin gets
the same routes with success. Operator-only routes refuse both customers (403 on the JSON API; 404 in the
portal, where operator pages do not exist for customers) and let a publisher operator through.

The route table is checked against the app's routes, so a new route without a case here fails the suite.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import httpx
import pytest

from core.audit.service import record_audit_event
from core.clusters.models import Cluster, ClusterStatus
from core.db import Database
from core.subscriptions.models import MarketplaceSubscription
from core.subscriptions.reconciliation import start_report
from harness.marketplace_demo import CONTOSO_ADMIN, CONTOSO_TENANT_ID
from tests.integration.lifecycle.conftest import ControlPlane, delete_test_rows
from tests.integration.lifecycle.marketplace_driver import FABRIKAM_ADMIN, Emulators
from tests.integration.security.routes import app_route_keys
from tests.integration.security.visitors import OPERATOR_USERNAME, PortalVisitor, sign_in_to_portal
from tests.support.factories import (
    create_cluster,
    create_expected_connection,
    create_key_rotation,
    create_operation,
    create_private_endpoint_connection,
    create_subscription,
    create_tenant,
)

# Generous: the first test of a module may wait for the control plane to start on a loaded machine.
pytestmark = [pytest.mark.broker, pytest.mark.timeout(150)]
# Clusters that a mutating case changes, so no case sees another's effect (or the worker's reaction to it).
SPARE_CLUSTERS = ("api-key-rotation", "portal-key-rotation", "portal-auto-approval", "api-connect")


@dataclass
class TenantData:
    """What one customer tenant owns, and the strings that must never reach another tenant."""

    entra_tenant_id: str
    subscription_id: str
    cluster_id: str
    connection_ids: dict[str, str]
    rotation_id: str
    operation_id: str
    spare: dict[str, tuple[str, str]] = field(default_factory=dict)  # case -> (subscription id, cluster id)
    expectation_ids: dict[str, str] = field(default_factory=dict)  # purpose -> expected connection id
    markers: tuple[str, ...] = ()


def _own_everything(database: Database, entra_tenant_id: str, label: str) -> TenantData:
    """A tenant with a ready cluster, connections, a finished key rotation, an operation and audit events."""
    marker = f"{label}-{uuid.uuid4().hex[:8]}"
    with database.session() as session:
        tenant = create_tenant(session, entra_tenant_id=entra_tenant_id, display_name=f"{marker}-tenant")

        def subscription_with_cluster(name: str) -> tuple[MarketplaceSubscription, Cluster]:
            subscription = create_subscription(session, tenant, name=name)
            # No endpoint: the running scheduler's Blob probe must have nothing to call outside loopback.
            cluster = create_cluster(
                session,
                tenant,
                subscription=subscription,
                name=f"{name}-cluster",
                resource_group=f"rg-{name}",
                endpoint_fqdn=None,
                key_id=f"https://kv-{name}.vault.azure.net/keys/cmk/1",
                status=ClusterStatus.READY,
            )
            return subscription, cluster

        subscription, cluster = subscription_with_cluster(marker)
        connections = {
            purpose: create_private_endpoint_connection(
                session, cluster, connection_name=f"pe-{purpose}-{marker}", request_message=f"from {marker}"
            ).id
            for purpose in ("api", "portal")
        }
        rotation = create_key_rotation(session, cluster, reason=f"rotated for {marker}")
        expectations = {
            purpose: create_expected_connection(session, cluster, workspace=f"syn-{purpose}-{marker}").id
            for purpose in ("read", "cancel")
        }
        operation = create_operation(session, subscription)
        record_audit_event(
            session,
            actor="system:controller",
            action="cluster.provisioning.ready",
            subject_type="cluster",
            subject_id=cluster.id,
            tenant_id=tenant.id,
            details={"note": f"audit of {marker}"},
        )
        spare = {}
        for purpose in SPARE_CLUSTERS:
            spare_subscription, spare_cluster = subscription_with_cluster(f"{marker}-{purpose}")
            spare[purpose] = (spare_subscription.id, spare_cluster.id)
        return TenantData(
            entra_tenant_id=entra_tenant_id,
            subscription_id=subscription.id,
            cluster_id=cluster.id,
            connection_ids=connections,
            rotation_id=rotation.id,
            operation_id=operation.id,
            spare=spare,
            expectation_ids=expectations,
            markers=(marker,),
        )


@dataclass
class World:
    """Both tenants' data, an operator's reconciliation report, and one signed-in client per person."""

    contoso: TenantData
    fabrikam: TenantData
    report_id: int
    bearer: dict[str, str]
    visitors: dict[str, PortalVisitor]


@pytest.fixture(scope="module")
def world(control_plane: ControlPlane, emulators: Emulators, database_url: str) -> Iterator[World]:
    database = Database(database_url)
    fabrikam_tenant_id = emulators.entra["tenants"]["fabrikam"]["id"]
    contoso = _own_everything(database, CONTOSO_TENANT_ID, "contoso")
    fabrikam = _own_everything(database, fabrikam_tenant_id, "fabrikam")
    with database.session() as session:
        report_id = start_report(session, "security-suite").id
    assert report_id is not None
    bearer = {
        "contoso": emulators.control_plane_token(roles=["Customer.Admin"], tenant_id=CONTOSO_TENANT_ID),
        "fabrikam": emulators.control_plane_token(roles=["Customer.Admin"], tenant_id=fabrikam_tenant_id),
        "operator": emulators.control_plane_token(roles=["Operator"]),
    }
    visitors: dict[str, PortalVisitor] = {}
    try:
        for person, username in (
            ("contoso", CONTOSO_ADMIN),
            ("fabrikam", FABRIKAM_ADMIN),
            ("operator", OPERATOR_USERNAME),
        ):
            visitors[person] = sign_in_to_portal(emulators, control_plane.base_url, username)
        yield World(contoso, fabrikam, report_id, bearer, visitors)
    finally:
        for visitor in visitors.values():
            visitor.close()
        delete_test_rows(database)
        database.dispose()


# How a case builds its URL: from the tenant whose resource is in the path and the one whose child id is.
UrlBuilder = Callable[[TenantData, TenantData, World], str]


@dataclass(frozen=True)
class RouteCase:
    """One route: who may call it, how to call it, and what its rightful caller gets."""

    method: str
    path: str
    surface: Literal["api", "portal"]
    url: UrlBuilder
    body: dict[str, str] | None = None
    # The status of the rightful caller (Contoso's admin; the operator on operator routes); None: not called,
    # because its effect would reach beyond this test (a reconciliation with Marketplace rewrites subscriptions).
    owner_status: int | None = 200
    listing: bool = False  # a list: another tenant gets 200 without the owner's rows instead of 404
    child: bool = False  # the path holds a child id too, so the attacker also tries it under their own parent

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


def _cluster(owner: TenantData, _child: TenantData, _world: World) -> str:
    return owner.cluster_id


def _subscription(owner: TenantData, _child: TenantData, _world: World) -> str:
    return owner.subscription_id


def _spare_cluster(purpose: str) -> UrlBuilder:
    return lambda owner, _child, _world: owner.spare[purpose][1]


def _spare_subscription(purpose: str) -> UrlBuilder:
    return lambda owner, _child, _world: owner.spare[purpose][0]


def _path(template: str, **parts: UrlBuilder) -> UrlBuilder:
    """A URL builder that fills the named path parameters of `template`."""

    def build(owner: TenantData, child: TenantData, world: World) -> str:
        return template.format(**{name: part(owner, child, world) for name, part in parts.items()})

    return build


def _child(pick: Callable[[TenantData], str]) -> UrlBuilder:
    return lambda _owner, child, _world: pick(child)


def _fixed(value: str) -> UrlBuilder:
    return lambda _owner, _child, _world: value


CUSTOMER_CASES = [
    RouteCase("GET", "/api/operations/slo/clusters", "api", _fixed("/api/operations/slo/clusters"), listing=True),
    RouteCase(
        "GET",
        "/api/operations/slo/clusters/{cluster_id}",
        "api",
        _path("/api/operations/slo/clusters/{id}", id=_cluster),
    ),
    RouteCase(
        "GET",
        "/api/operations/slo/clusters/{cluster_id}/series",
        "api",
        _path("/api/operations/slo/clusters/{id}/series", id=_cluster),
    ),
    RouteCase("GET", "/api/clusters/{cluster_id}", "api", _path("/api/clusters/{id}", id=_cluster)),
    RouteCase("GET", "/api/clusters/{cluster_id}/drift", "api", _path("/api/clusters/{id}/drift", id=_cluster)),
    RouteCase(
        "POST",
        "/api/clusters/{cluster_id}/key-rotations",
        "api",
        _path("/api/clusters/{id}/key-rotations", id=_spare_cluster("api-key-rotation")),
        body={"reason": "security suite"},
        owner_status=202,
    ),
    RouteCase(
        "GET",
        "/api/clusters/{cluster_id}/key-rotations/{rotation_id}",
        "api",
        _path(
            "/api/clusters/{id}/key-rotations/{rotation}",
            id=_cluster,
            rotation=_child(lambda data: data.rotation_id),
        ),
        child=True,
    ),
    RouteCase(
        "GET",
        "/portal/clusters/{cluster_id}/connectivity",
        "portal",
        _path("/portal/clusters/{id}/connectivity", id=_cluster),
    ),
    RouteCase(
        "POST",
        "/portal/clusters/{cluster_id}/connectivity",
        "portal",
        _path("/portal/clusters/{id}/connectivity", id=_spare_cluster("api-connect")),
        body={"consumer": "databricks-serverless", "resource_id": "6d1f0c43-5a0e-4d36-9d8c-0f3c2b1a9e87"},
        owner_status=409,  # allowed; the spare cluster has no Private Link Service to connect to
    ),
    RouteCase(
        "GET",
        "/api/clusters/{cluster_id}/connectivity",
        "api",
        _path("/api/clusters/{id}/connectivity", id=_cluster),
    ),
    RouteCase(
        "GET",
        "/api/clusters/{cluster_id}/expected-connections",
        "api",
        _path("/api/clusters/{id}/expected-connections", id=_cluster),
    ),
    RouteCase(
        "POST",
        "/api/clusters/{cluster_id}/expected-connections",
        "api",
        _path("/api/clusters/{id}/expected-connections", id=_spare_cluster("api-connect")),
        body={
            "consumer": "databricks-serverless",
            "resource_id": "6d1f0c43-5a0e-4d36-9d8c-0f3c2b1a9e87",
        },
        owner_status=409,  # allowed; the spare cluster has no Private Link Service to connect to
    ),
    RouteCase(
        "GET",
        "/api/clusters/{cluster_id}/expected-connections/{expectation_id}",
        "api",
        _path(
            "/api/clusters/{id}/expected-connections/{expectation}",
            id=_cluster,
            expectation=_child(lambda data: data.expectation_ids["read"]),
        ),
        child=True,
    ),
    RouteCase(
        "DELETE",
        "/api/clusters/{cluster_id}/expected-connections/{expectation_id}",
        "api",
        _path(
            "/api/clusters/{id}/expected-connections/{expectation}",
            id=_cluster,
            expectation=_child(lambda data: data.expectation_ids["cancel"]),
        ),
        child=True,
    ),
    RouteCase(
        "GET",
        "/api/clusters/{cluster_id}/private-endpoint-connections",
        "api",
        _path("/api/clusters/{id}/private-endpoint-connections", id=_cluster),
    ),
    RouteCase(
        "POST",
        "/api/clusters/{cluster_id}/private-endpoint-connections/{connection_id}/decision",
        "api",
        _path(
            "/api/clusters/{id}/private-endpoint-connections/{connection}/decision",
            id=_cluster,
            connection=_child(lambda data: data.connection_ids["api"]),
        ),
        body={"decision": "approved", "reason": "security suite"},
        child=True,
    ),
    RouteCase(
        "GET",
        "/marketplace/subscriptions/{subscription_id}",
        "portal",
        _path("/marketplace/subscriptions/{id}", id=_subscription),
    ),
    RouteCase(
        "GET",
        "/marketplace/subscriptions/{subscription_id}/progress",
        "portal",
        _path("/marketplace/subscriptions/{id}/progress", id=_subscription),
    ),
    # Placement of a purchase made by another tenant: already placed here, so the owner goes on to progress.
    RouteCase(
        "GET",
        "/marketplace/subscriptions/{subscription_id}/placement",
        "portal",
        _path("/marketplace/subscriptions/{id}/placement", id=_subscription),
        owner_status=303,
    ),
    RouteCase(
        "POST",
        "/marketplace/subscriptions/{subscription_id}/placement",
        "portal",
        _path("/marketplace/subscriptions/{id}/placement", id=_subscription),
        body={"region": "westeurope"},
        owner_status=303,
    ),
    RouteCase("GET", "/portal/subscriptions", "portal", _fixed("/portal/subscriptions"), listing=True),
    RouteCase(
        "GET",
        "/portal/subscriptions/{subscription_id}",
        "portal",
        _path("/portal/subscriptions/{id}", id=_subscription),
    ),
    RouteCase(
        "GET",
        "/portal/subscriptions/{subscription_id}/timeline",
        "portal",
        _path("/portal/subscriptions/{id}/timeline", id=_subscription),
    ),
    RouteCase(
        "POST",
        "/portal/subscriptions/{subscription_id}/connections/{connection_id}",
        "portal",
        _path(
            "/portal/subscriptions/{id}/connections/{connection}",
            id=_subscription,
            connection=_child(lambda data: data.connection_ids["portal"]),
        ),
        body={"decision": "rejected", "reason": "security suite"},
        owner_status=303,
        child=True,
    ),
    RouteCase(
        "POST",
        "/portal/subscriptions/{subscription_id}/auto-approval",
        "portal",
        _path("/portal/subscriptions/{id}/auto-approval", id=_spare_subscription("portal-auto-approval")),
        body={"auto_approval_subscriptions": str(uuid.UUID(int=7))},
        owner_status=303,
    ),
    RouteCase(
        "POST",
        "/portal/subscriptions/{subscription_id}/key-rotations",
        "portal",
        _path("/portal/subscriptions/{id}/key-rotations", id=_spare_subscription("portal-key-rotation")),
        body={"reason": "security suite"},
        owner_status=303,
    ),
    RouteCase("GET", "/portal/clusters/{cluster_id}/slo", "portal", _path("/portal/clusters/{id}/slo", id=_cluster)),
    RouteCase("GET", "/portal/audit", "portal", _fixed("/portal/audit"), listing=True),
]

_operation = _child(lambda data: data.operation_id)


def _report(_owner: TenantData, _child: TenantData, world: World) -> str:
    return str(world.report_id)


# No usage reconciliation report exists here: the operator's 404 names the report, past the role check.
_missing_report = _fixed("424242")

OPERATOR_CASES = [
    RouteCase(
        "POST",
        "/api/operations/clusters/{cluster_id}/blob-probe",
        "api",
        _path("/api/operations/clusters/{id}/blob-probe", id=_cluster),
        owner_status=202,
    ),
    # 409: the cluster has not failed, which the operator learns only past the role check.
    RouteCase(
        "POST",
        "/api/clusters/{cluster_id}/retry",
        "api",
        _path("/api/clusters/{id}/retry", id=_cluster),
        body={"reason": "security suite"},
        owner_status=409,
    ),
    RouteCase("GET", "/api/drift", "api", _fixed("/api/drift")),
    RouteCase("GET", "/api/publisher/subscriptions", "api", _fixed("/api/publisher/subscriptions")),
    RouteCase(
        "GET",
        "/api/publisher/subscriptions/{subscription_id}",
        "api",
        _path("/api/publisher/subscriptions/{id}", id=_subscription),
    ),
    RouteCase(
        "POST",
        "/api/publisher/operations/{operation_id}/retry",
        "api",
        _path("/api/publisher/operations/{id}/retry", id=_operation),
        owner_status=409,
    ),
    RouteCase(
        "POST", "/api/publisher/reconciliations", "api", _fixed("/api/publisher/reconciliations"), owner_status=None
    ),
    RouteCase(
        "GET",
        "/api/publisher/reconciliations/{report_id}",
        "api",
        _path("/api/publisher/reconciliations/{id}", id=_report),
    ),
    RouteCase(
        "POST",
        "/api/publisher/sessions/revocations",
        "api",
        _fixed("/api/publisher/sessions/revocations"),
        body={"entra_tenant_id": CONTOSO_TENANT_ID, "object_id": str(uuid.UUID(int=11))},
    ),
    RouteCase("GET", "/api/publisher/billing/ledger", "api", _fixed("/api/publisher/billing/ledger")),
    RouteCase(
        "GET", "/api/publisher/billing/rejected-samples", "api", _fixed("/api/publisher/billing/rejected-samples")
    ),
    RouteCase("GET", "/api/publisher/billing/collection-lag", "api", _fixed("/api/publisher/billing/collection-lag")),
    RouteCase(
        "GET",
        "/api/publisher/billing/reconciliation-reports",
        "api",
        _fixed("/api/publisher/billing/reconciliation-reports"),
    ),
    RouteCase(
        "GET",
        "/api/publisher/billing/reconciliation-reports/{report_id}",
        "api",
        _path("/api/publisher/billing/reconciliation-reports/{id}", id=_missing_report),
        owner_status=404,
    ),
    RouteCase(
        "GET",
        "/api/publisher/billing/reconciliation-reports/{report_id}/differences.csv",
        "api",
        _path("/api/publisher/billing/reconciliation-reports/{id}/differences.csv", id=_missing_report),
        owner_status=404,
    ),
    RouteCase("GET", "/portal/operator/subscriptions", "portal", _fixed("/portal/operator/subscriptions")),
    RouteCase(
        "GET", "/portal/operator/clusters/{cluster_id}", "portal", _path("/portal/operator/clusters/{id}", id=_cluster)
    ),
    RouteCase(
        "POST",
        "/portal/operator/clusters/{cluster_id}/retry",
        "portal",
        _path("/portal/operator/clusters/{id}/retry", id=_cluster),
        body={"reason": "security suite"},
        owner_status=409,
    ),
    RouteCase("GET", "/portal/operator/operations", "portal", _fixed("/portal/operator/operations")),
    RouteCase(
        "POST",
        "/portal/operator/operations/{operation_id}/retry",
        "portal",
        _path("/portal/operator/operations/{id}/retry", id=_operation),
        body={},
        owner_status=409,
    ),
    # No dead letter exists here: the operator's 404 names the message, past the role check.
    RouteCase(
        "POST",
        "/portal/operator/dead-letters/{message_id}/retry",
        "portal",
        _fixed("/portal/operator/dead-letters/424242/retry"),
        body={},
        owner_status=404,
    ),
    RouteCase(
        "POST",
        "/portal/operator/dead-letters/{message_id}/dismiss",
        "portal",
        _fixed("/portal/operator/dead-letters/424242/dismiss"),
        body={},
        owner_status=404,
    ),
    RouteCase(
        "POST",
        "/portal/operator/reconciliations",
        "portal",
        _fixed("/portal/operator/reconciliations"),
        body={},
        owner_status=None,
    ),
    RouteCase("GET", "/portal/operator/billing", "portal", _fixed("/portal/operator/billing")),
    RouteCase(
        "GET",
        "/portal/operator/billing/reports/{report_id}",
        "portal",
        _path("/portal/operator/billing/reports/{id}", id=_missing_report),
        owner_status=404,
    ),
    RouteCase(
        "GET",
        "/portal/operator/billing/reports/{report_id}/differences.csv",
        "portal",
        _path("/portal/operator/billing/reports/{id}/differences.csv", id=_missing_report),
        owner_status=404,
    ),
    RouteCase("GET", "/portal/operator/slo", "portal", _fixed("/portal/operator/slo")),
    RouteCase("GET", "/portal/operator/configuration", "portal", _fixed("/portal/operator/configuration")),
    RouteCase("GET", "/portal/operator/audit", "portal", _fixed("/portal/operator/audit")),
]

# Routes that take no tenant principal, and why that is right.
PUBLIC_ROUTES = {
    "GET /openapi.json": "the API description; no data",
    "GET /healthz": "liveness for the orchestrator; no data",
    "GET /readyz": "readiness for the orchestrator; names dependencies, no tenant data",
    "GET /api/connectivity/consumers": "the connectivity catalog: facts from Microsoft's public documentation",
    "GET /metrics": "counts for the scraper inside the deployment; test_metrics_hold_no_tenant_data checks it",
    "POST /managedapp/resource": "Azure's managed-application notifications, authenticated by the shared `sig`",
    "POST /marketplace/webhook": "Marketplace's webhook, authenticated by its Entra token (test_token_attacks)",
    "GET /marketplace/landing": "the purchase link: the Marketplace token names the purchase, the sign-in its tenant",
    "POST /marketplace/landing": "confirms the purchase the Marketplace token names, for the signed-in buyer's tenant",
    "POST /marketplace/landing/placement": "checks choices for the purchase the Marketplace token names, for the "
    "signed-in buyer's tenant; records nothing",
    "GET /portal": "the sign-in page, or a redirect to the visitor's home",
    "GET /portal/sign-in": "starts the Entra sign-in",
    "GET /auth/callback": "Entra's redirect back to the portal and the purchase pages during sign-in",
    "POST /portal/sign-out": "ends the visitor's own session (CSRF-checked)",
    "MOUNT /portal/static": "the portal's CSS and JavaScript",
}


def test_every_route_has_an_isolation_case_or_is_public(control_plane: ControlPlane, database_url: str) -> None:
    covered = [case.key for case in CUSTOMER_CASES + OPERATOR_CASES] + list(PUBLIC_ROUTES)
    assert len(covered) == len(set(covered)), "a route has two entries"
    routes = app_route_keys(control_plane.settings, database_url)
    assert sorted(routes - set(covered)) == [], "routes without a tenant-isolation case or a reason to be public"
    assert sorted(set(covered) - routes) == [], "cases for routes the app no longer has"


def call(world: World, person: str, case: RouteCase, url: str) -> httpx.Response:
    """Call the route as `person`: with their bearer token on the JSON API, with their portal session otherwise."""
    visitor = world.visitors[person]
    client = visitor.browser.http
    if case.surface == "api":
        headers = {"Authorization": f"Bearer {world.bearer[person]}"}
        return client.request(case.method, url, headers=headers, json=case.body, follow_redirects=False)
    if case.method == "GET":
        return client.get(url, follow_redirects=False)
    return client.post(url, data={**(case.body or {}), "csrf_token": visitor.csrf_token}, follow_redirects=False)


def assert_no_leak(response: httpx.Response, owner: TenantData) -> None:
    for marker in owner.markers:
        assert marker not in response.text, f"{response.request.url} showed {marker!r}: {response.text[:500]}"


@pytest.mark.parametrize("case", CUSTOMER_CASES, ids=lambda case: case.key)
def test_another_tenant_gets_nothing_the_owner_gets_through(
    case: RouteCase, control_plane: ControlPlane, world: World
) -> None:
    base = control_plane.base_url
    contoso, fabrikam = world.contoso, world.fabrikam
    attempts = [(contoso, contoso)] + ([(fabrikam, contoso)] if case.child else [])
    for parent, child in attempts:
        response = call(world, "fabrikam", case, base + case.url(parent, child, world))
        if case.listing:
            assert response.status_code == 200, response.text
            assert fabrikam.markers[0] in response.text, "the list did not even show the caller's own rows"
        else:
            assert response.status_code == 404, (parent.entra_tenant_id, response.status_code, response.text[:300])
        assert_no_leak(response, contoso)
    owned = call(world, "contoso", case, base + case.url(contoso, contoso, world))
    assert owned.status_code == case.owner_status, owned.text[:500]
    if case.listing:
        assert contoso.markers[0] in owned.text, "the owner's list lacks the owner's rows"
    assert_no_leak(owned, fabrikam)


@pytest.mark.parametrize("case", OPERATOR_CASES, ids=lambda case: case.key)
def test_operator_routes_refuse_customers(case: RouteCase, control_plane: ControlPlane, world: World) -> None:
    refused = 403 if case.surface == "api" else 404
    base = control_plane.base_url
    for person, data in (("contoso", world.contoso), ("fabrikam", world.fabrikam)):
        response = call(world, person, case, base + case.url(world.contoso, world.contoso, world))
        assert response.status_code == refused, (person, response.status_code, response.text[:300])
        other = world.fabrikam if data is world.contoso else world.contoso
        assert_no_leak(response, other)
    if case.owner_status is not None:
        response = call(world, "operator", case, base + case.url(world.contoso, world.contoso, world))
        assert response.status_code == case.owner_status, response.text[:500]


def test_metrics_hold_no_tenant_data(control_plane: ControlPlane, world: World) -> None:
    response = httpx.get(f"{control_plane.base_url}/metrics", timeout=15)
    assert response.status_code == 200
    for data in (world.contoso, world.fabrikam):
        for secret in (*data.markers, data.subscription_id, data.cluster_id, data.entra_tenant_id):
            assert secret not in response.text

"""Roles on every mutating route, driven from the app's route table, against a real API process.

Readers see; admins act. For every route whose declared permission is `act` (web.permissions), JSON and
portal alike: Contoso's admin is allowed; a Contoso reader (an explicit Customer.Reader, or a member with
neither an app role nor an admin directory role) gets 403; Fabrikam's admin gets 404, as for an id that does
not exist; an app-only token from a client app not on Contoso's allow-list is refused (401), and one on the
list acts only with the roles assigned to that app. Every route of the app declares a permission: a new route
without one fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlmodel import select

from core.audit.models import AuditEvent
from core.clusters.models import Cluster
from core.db import Database
from core.identity.principal import GLOBAL_ADMINISTRATOR_ROLE_ID
from harness.marketplace_demo import CONTOSO_ADMIN, CONTOSO_TENANT_ID
from server.app import create_app
from tests.integration.lifecycle.conftest import ControlPlane, delete_test_rows
from tests.integration.lifecycle.marketplace_driver import CONTOSO_AUTOMATION_CLIENT_ID, FABRIKAM_ADMIN, Emulators
from tests.integration.security.test_tenant_isolation import CUSTOMER_CASES, RouteCase, TenantData, _own_everything
from tests.integration.security.visitors import PortalVisitor, sign_in_to_portal
from web.permissions import Permission, declared_permission

pytestmark = [pytest.mark.broker, pytest.mark.timeout(150)]

CONTOSO_READER = "rita.reader@contoso.onmicrosoft.com"
CONTOSO_MEMBER = "uma.user@contoso.onmicrosoft.com"  # neither an app role nor an admin directory role
UNLISTED_CLIENT_ID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
# Routes FastAPI adds itself (documentation) and the static files: no handler of ours runs.
FRAMEWORK_ROUTES = {"GET /openapi.json", "MOUNT /portal/static"}
# `act` routes addressed by something else than a tenant's ids, with the test that covers their authorization.
OTHER_ACT_ROUTES = {
    "GET /marketplace/subscriptions/{subscription_id}/placement": "test_placement",
    "POST /marketplace/subscriptions/{subscription_id}/placement": "test_placement",
    "DELETE /api/clusters/{cluster_id}/expected-connections/{expectation_id}": "test_connect_a_service",
}


def _declared(control_plane: ControlPlane, database_url: str) -> dict[str, Permission | None]:
    database = Database(database_url)
    try:
        app = create_app(control_plane.settings, database)
        declared: dict[str, Permission | None] = {}
        for route in iter_route_contexts(app.routes):
            for method in route.methods or {"MOUNT"}:
                if method != "HEAD":
                    declared[f"{method} {route.path}"] = declared_permission(route)
        return declared
    finally:
        database.dispose()


MUTATING_CASES = [
    case for case in CUSTOMER_CASES if case.method == "POST" and not case.path.startswith("/marketplace/")
]


def test_every_route_declares_its_permission(control_plane: ControlPlane, database_url: str) -> None:
    declared = _declared(control_plane, database_url)
    undeclared = sorted(key for key, permission in declared.items() if permission is None)
    assert undeclared == sorted(FRAMEWORK_ROUTES), "routes that declare no permission"


def test_every_act_route_has_a_role_case(control_plane: ControlPlane, database_url: str) -> None:
    declared = _declared(control_plane, database_url)
    act_routes = {key for key, permission in declared.items() if permission == Permission.ACT}
    assert act_routes == {case.key for case in MUTATING_CASES} | set(OTHER_ACT_ROUTES), "act routes without a role case"
    # And nothing that changes a tenant's things is declared weaker than `act`.
    for case in MUTATING_CASES:
        assert declared[case.key] == Permission.ACT, case.key


@dataclass
class People:
    contoso: TenantData
    fabrikam: TenantData
    bearer: dict[str, str]
    visitors: dict[str, PortalVisitor]


@pytest.fixture(scope="module")
def people(control_plane: ControlPlane, emulators: Emulators, database_url: str) -> Iterator[People]:
    database = Database(database_url)
    fabrikam_tenant_id = emulators.entra["tenants"]["fabrikam"]["id"]
    contoso = _own_everything(database, CONTOSO_TENANT_ID, "contoso")
    fabrikam = _own_everything(database, fabrikam_tenant_id, "fabrikam")
    bearer = {
        "admin": emulators.control_plane_token(roles=["Customer.Admin"], tenant_id=CONTOSO_TENANT_ID),
        "reader": emulators.control_plane_token(roles=["Customer.Reader"], tenant_id=CONTOSO_TENANT_ID),
        "member": emulators.control_plane_token(roles=[], tenant_id=CONTOSO_TENANT_ID),
        # An explicit reader role wins over the directory-role fallback.
        "global-admin-reader": emulators.control_plane_token(
            roles=["Customer.Reader"], tenant_id=CONTOSO_TENANT_ID, wids=[GLOBAL_ADMINISTRATOR_ROLE_ID]
        ),
        "other-tenant-admin": emulators.control_plane_token(roles=["Customer.Admin"], tenant_id=fabrikam_tenant_id),
        "unlisted-app": emulators.app_only_token(
            tenant_id=CONTOSO_TENANT_ID, client_id=UNLISTED_CLIENT_ID, roles=["Customer.Admin"]
        ),
        "listed-app-reader": emulators.app_only_token(
            tenant_id=CONTOSO_TENANT_ID, client_id=CONTOSO_AUTOMATION_CLIENT_ID, roles=["Customer.Reader"]
        ),
        "listed-app-admin": emulators.app_only_token(
            tenant_id=CONTOSO_TENANT_ID, client_id=CONTOSO_AUTOMATION_CLIENT_ID, roles=["Customer.Admin"]
        ),
    }
    visitors: dict[str, PortalVisitor] = {}
    try:
        for person, username in (
            ("admin", CONTOSO_ADMIN),
            ("reader", CONTOSO_READER),
            ("member", CONTOSO_MEMBER),
            ("other-tenant-admin", FABRIKAM_ADMIN),
        ):
            visitors[person] = sign_in_to_portal(emulators, control_plane.base_url, username)
        yield People(contoso, fabrikam, bearer, visitors)
    finally:
        for visitor in visitors.values():
            visitor.close()
        delete_test_rows(database)
        database.dispose()


def _call(people: People, person: str, case: RouteCase, url: str, bearer: str | None = None) -> httpx.Response:
    if case.surface == "api":
        client = people.visitors["admin"].browser.http
        headers = {"Authorization": f"Bearer {people.bearer[bearer or person]}"}
        return client.request(case.method, url, headers=headers, json=case.body, follow_redirects=False)
    visitor = people.visitors[person]
    return visitor.browser.http.post(
        url, data={**(case.body or {}), "csrf_token": visitor.csrf_token}, follow_redirects=False
    )


@pytest.mark.parametrize("case", MUTATING_CASES, ids=lambda case: case.key)
def test_admin_acts_reader_is_forbidden_other_tenant_sees_nothing_unlisted_app_is_refused(
    case: RouteCase, control_plane: ControlPlane, people: People
) -> None:
    url = control_plane.base_url + case.url(people.contoso, people.contoso, None)  # type: ignore[arg-type]
    refusals: list[tuple[str, str | None, int]] = [
        ("reader", None, 403),
        ("member", None, 403),
        ("other-tenant-admin", None, 404),
    ]
    if case.surface == "api":
        refusals += [
            ("admin", "global-admin-reader", 403),
            ("admin", "listed-app-reader", 403),
            ("admin", "unlisted-app", 401),
        ]
    for person, bearer, status in refusals:
        response = _call(people, person, case, url, bearer)
        assert response.status_code == status, (person, bearer, response.status_code, response.text[:300])
        for marker in people.contoso.markers:
            assert marker not in response.text
    allowed = _call(people, "admin", case, url, "listed-app-admin" if case.surface == "api" else None)
    assert allowed.status_code == case.owner_status, allowed.text[:500]


def test_readers_see_what_admins_see(control_plane: ControlPlane, people: People) -> None:
    base = control_plane.base_url
    cluster_id = people.contoso.cluster_id
    for bearer in ("reader", "member", "listed-app-reader"):
        response = httpx.get(
            f"{base}/api/clusters/{cluster_id}", headers={"Authorization": f"Bearer {people.bearer[bearer]}"}
        )
        assert response.status_code == 200, (bearer, response.text)
    page = people.visitors["reader"].browser.http.get(f"{base}/portal/subscriptions/{people.contoso.subscription_id}")
    assert page.status_code == 200
    assert 'id="reader-note"' in page.text
    assert "/auto-approval" not in page.text  # no form the reader could not use


def test_auto_approving_everyone_needs_an_explicit_confirmation_and_is_audited(
    control_plane: ControlPlane, people: People, database_url: str
) -> None:
    subscription_id, cluster_id = people.contoso.spare["portal-auto-approval"]
    url = f"{control_plane.base_url}/portal/subscriptions/{subscription_id}/auto-approval"
    admin = people.visitors["admin"]
    unconfirmed = admin.browser.http.post(
        url, data={"auto_approval_subscriptions": "*", "csrf_token": admin.csrf_token}, follow_redirects=False
    )
    assert unconfirmed.status_code == 422, unconfirmed.text[:300]
    assert "tick the confirmation box" in unconfirmed.text
    database = Database(database_url)
    try:
        with database.session() as session:
            cluster = session.get(Cluster, cluster_id)
            assert cluster is not None
            assert "*" not in cluster.pls_auto_approval_subscriptions
        confirmed = admin.browser.http.post(
            url,
            data={
                "auto_approval_subscriptions": "*",
                "confirm_all_subscriptions": "yes",
                "csrf_token": admin.csrf_token,
            },
            follow_redirects=False,
        )
        assert confirmed.status_code == 303, confirmed.text[:300]
        with database.session() as session:
            cluster = session.get(Cluster, cluster_id)
            assert cluster is not None
            assert cluster.pls_auto_approval_subscriptions == ["*"]
            audited = session.exec(
                select(AuditEvent).where(
                    AuditEvent.action == "cluster.auto_approval.all_subscriptions_confirmed",
                    AuditEvent.subject_id == cluster_id,
                )
            ).all()
        assert len(audited) == 1
        assert audited[0].actor.startswith("user:")
        assert audited[0].details["confirmation"] == "explicit"
    finally:
        database.dispose()


def test_app_only_tokens_of_another_tenants_allow_list_entry_are_refused(
    control_plane: ControlPlane, emulators: Emulators, people: People
) -> None:
    # Contoso's automation client is listed for Contoso only: the same client id in Fabrikam is not.
    token = emulators.app_only_token(
        tenant_id=emulators.entra["tenants"]["fabrikam"]["id"],
        client_id=CONTOSO_AUTOMATION_CLIENT_ID,
        roles=["Customer.Admin"],
    )
    response = httpx.get(
        f"{control_plane.base_url}/api/clusters/{people.fabrikam.cluster_id}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401, response.text
    assert "allow-list" in response.text


def test_a_tenant_admin_without_an_app_role_is_an_admin_by_the_documented_fallback(
    control_plane: ControlPlane, emulators: Emulators, people: People
) -> None:
    # Alice holds no app role of ours; Entra's wids says she is a Global Administrator of Contoso.
    page = people.visitors["admin"].browser.http.get(
        f"{control_plane.base_url}/portal/subscriptions/{people.contoso.subscription_id}"
    )
    assert page.status_code == 200
    assert 'id="reader-note"' not in page.text
    assert "/auto-approval" in page.text

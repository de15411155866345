"""The portal in a real browser: customer admins and operators, tenancy, CSRF, live timeline, charts.

One story, in order: Contoso and Fabrikam buy through Marketplace; Contoso's cluster provisions while
Alice watches; Fabrikam's fails on an ARM quota until Olivia (operator) retries it. Each test reads the
database only to learn ids and to confirm what the browser showed.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from sqlmodel import col, select

from billing.collector import record_collected
from billing.jobs import run_close, run_reconciliation, run_submission
from core.audit.models import AuditEvent
from core.clock import utc_now
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.provisioning_models import KeyRotation
from core.db import Database
from core.networking.models import PrivateEndpointConnection
from core.probes.models import BlobProbeSample
from core.slo.service import cluster_slo_status, cluster_time_series, evaluate_burn_rate_alerts
from core.usage.models import UsageLedgerEntry, UsageSample
from core.usage.reconciliation_models import UsageReconciliationDifference
from portal.readable import budget_used, percent
from tests.browser.accessibility import assert_accessible, tab_to
from tests.browser.conftest import (
    CONTOSO_ADMIN,
    FABRIKAM_ADMIN,
    OPERATOR,
    PHONE,
    ControlPlane,
    EmulatorControl,
    screenshot,
    sign_in,
)
from tests.browser.story import (
    Purchase,
    azure_subscription,
    cluster_row,
    purchase_through_landing_page,
    subscription_status,
    wait_for,
)

pytestmark = [pytest.mark.timeout(180)]
ContextFactory = Callable[..., BrowserContext]


@dataclass(frozen=True)
class Story:
    contoso: Purchase
    fabrikam: Purchase
    contoso_azure_subscription_id: str

    def release_contoso_deployments(self, emulators: EmulatorControl) -> None:
        """Let Contoso's held ARM deployments finish: its cluster goes on to ready."""
        emulators.call(
            "arm", "PUT", f"/subscriptions/{self.contoso_azure_subscription_id}/deployments-held", json={"held": False}
        )


@pytest.fixture(scope="module")
def provisioning_story(
    control_plane: ControlPlane, emulator_control: EmulatorControl, portal_database: Database
) -> Story:
    """Both purchases confirmed; Contoso's ARM deployments are held, so its cluster is still being set up whatever
    the machine's load until a test releases them; Fabrikam's Azure subscription has a scale-set quota its cluster
    cannot fit in."""
    app_id = control_plane.settings.control_plane_client_id
    assert app_id is not None
    contoso_azure = azure_subscription(emulator_control, "contoso", app_id)
    emulator_control.call("arm", "PUT", f"/subscriptions/{contoso_azure}/deployments-held", json={"held": True})
    contoso = purchase_through_landing_page(
        emulator_control,
        portal_database,
        tenant_key="contoso",
        username=CONTOSO_ADMIN,
        azure_subscription_id=contoso_azure,
    )
    fabrikam = purchase_through_landing_page(
        emulator_control,
        portal_database,
        tenant_key="fabrikam",
        username=FABRIKAM_ADMIN,
        azure_subscription_id=azure_subscription(emulator_control, "fabrikam", app_id, quota_limit=1),
    )
    return Story(contoso, fabrikam, contoso_azure)


@pytest.fixture(scope="module")
def story(provisioning_story: Story, emulator_control: EmulatorControl) -> Story:
    """The story with Contoso's deployments released."""
    provisioning_story.release_contoso_deployments(emulator_control)
    return provisioning_story


def _csrf_token(page: Page) -> str:
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    return token


def test_customer_watches_provisioning_and_sees_only_own_subscriptions(
    provisioning_story: Story,
    control_plane: ControlPlane,
    emulator_control: EmulatorControl,
    new_context: ContextFactory,
    portal_database: Database,
) -> None:
    story = provisioning_story
    page = sign_in(new_context(), control_plane.base_url, CONTOSO_ADMIN)

    expect(page).to_have_url(re.compile(r"/portal/subscriptions$"))
    rows = page.locator("tr[data-subscription-id]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-subscription-id", story.contoso.subscription_id)
    assert story.fabrikam.subscription_id not in page.content()
    screenshot(page, "customer-subscriptions")

    rows.first.get_by_role("link").click()
    # While the controller works, the page polls its timeline; it reloads itself once the cluster is ready.
    assert cluster_row(portal_database, story.contoso.cluster_id).status != ClusterStatus.READY
    expect(page.locator("#timeline-events li").first).to_be_visible()
    assert_accessible(page)
    screenshot(page, "customer-subscription-provisioning")
    story.release_contoso_deployments(emulator_control)
    expect(page.locator("#cluster-status")).to_have_text("ready", timeout=90_000)
    cluster = cluster_row(portal_database, story.contoso.cluster_id)
    assert cluster.endpoint_fqdn
    assert cluster.pls_alias
    assert cluster.key_id
    expect(page.locator("#endpoint")).to_have_text(cluster.endpoint_fqdn)
    expect(page.locator("#pls-alias")).to_have_text(cluster.pls_alias)
    expect(page.locator("#key-id")).to_have_text(cluster.key_id)
    with portal_database.session() as session:
        actions = [
            event.action
            for event in session.exec(
                select(AuditEvent)
                .where(AuditEvent.subject_type == "cluster", AuditEvent.subject_id == cluster.id)
                .order_by(col(AuditEvent.id))
            )
        ]
    # Every event is on the timeline, in order, each as a sentence (the code stays in an attribute).
    timeline = page.locator("#timeline-events li").evaluate_all("(items) => items.map((item) => item.dataset.action)")
    assert timeline == actions
    sentences = page.locator("#timeline-events .sentence").all_inner_texts()
    assert len(sentences) == len(actions)
    assert not any(action in " ".join(sentences) for action in actions)
    assert_accessible(page)
    screenshot(page, "customer-subscription-ready")
    # The list is checked once the cluster is ready: checking it first would give provisioning a head start.
    page.goto(f"{control_plane.base_url}/portal/subscriptions")
    assert_accessible(page)


def test_customer_approves_a_pending_connection_edits_the_policy_and_rotates_the_key(
    story: Story,
    control_plane: ControlPlane,
    emulator_control: EmulatorControl,
    new_context: ContextFactory,
    portal_database: Database,
) -> None:
    def ready_cluster() -> Cluster | None:
        row = cluster_row(portal_database, story.contoso.cluster_id)
        return row if row.status == ClusterStatus.READY else None

    cluster = wait_for(ready_cluster, what="Contoso's cluster ready")
    consumer_subscription = str(uuid.uuid4())
    emulator_control.call(
        "arm",
        "POST",
        "/private-endpoints",
        json={
            "target": cluster.pls_alias,
            "consumer_subscription_id": consumer_subscription,
            "name": "analytics-pe",
            "request_message": "Synapse workspace of the analytics team",
        },
    )
    page = sign_in(new_context(), control_plane.base_url, CONTOSO_ADMIN)
    detail = f"{control_plane.base_url}/portal/subscriptions/{story.contoso.subscription_id}"

    def connection_listed() -> bool:
        page.goto(detail)
        return page.locator("tr[data-connection^='analytics-pe.']").count() == 1

    wait_for(connection_listed, what="the pending connection on the page", timeout_seconds=30)
    row = page.locator("tr[data-connection^='analytics-pe.']")
    expect(row).to_contain_text("pending")
    expect(row).to_contain_text(consumer_subscription)
    row.get_by_label("Reason").fill("analytics team asked for it")
    # The approve form works from the keyboard: Tab reaches its button, Enter submits it.
    tab_to(page, row.get_by_role("button", name="Approve analytics-pe"))
    page.keyboard.press("Enter")
    expect(page.locator(".flash")).to_have_text(re.compile(r"^Connection analytics-pe\.\S+ approved\.$"))
    expect(page.locator("tr[data-connection^='analytics-pe.']")).to_contain_text("approved")

    def approved_in_arm() -> bool:
        resources = emulator_control.call(
            "arm", "GET", "/resources", params={"resource_type": "Microsoft.Network/privateLinkServices"}
        )
        connections = [
            connection
            for resource in resources
            for connection in resource["body"]["properties"].get("privateEndpointConnections", [])
        ]
        states = [
            item["properties"]["privateLinkServiceConnectionState"]["status"]
            for item in connections
            if item["name"].startswith("analytics-pe")
        ]
        return states == ["Approved"]

    wait_for(approved_in_arm, what="the approval to reach ARM", timeout_seconds=30)

    # The policy editor refuses what is not a subscription id, and saves a valid list as a new desired spec.
    page.get_by_label("Auto-approve private endpoints from these Azure subscriptions").fill("not-a-subscription")
    page.get_by_role("button", name="Save auto-approval list").click()
    expect(page.locator(".error-message")).to_contain_text("not an Azure subscription id")
    page.go_back()
    page.reload()
    page.get_by_label("Auto-approve private endpoints from these Azure subscriptions").fill(consumer_subscription)
    page.get_by_role("button", name="Save auto-approval list").click()
    expect(page.locator(".flash")).to_contain_text("Auto-approval list saved")
    assert cluster_row(portal_database, cluster.id).pls_auto_approval_subscriptions == [consumer_subscription]

    wait_for(lambda: cluster_row(portal_database, cluster.id).status == "ready", what="the policy change to converge")
    key_before = cluster_row(portal_database, cluster.id).key_id
    page.goto(detail)
    page.get_by_label("Reason for rotating now").fill("quarterly rotation")
    page.get_by_role("button", name="Rotate key now").click()
    expect(page.locator(".flash")).to_contain_text("Key rotation requested")

    def rotated() -> str | None:
        with portal_database.session() as session:
            rotation = session.exec(select(KeyRotation).where(KeyRotation.cluster_id == cluster.id)).first()
            return rotation.key_id_after if rotation is not None and rotation.state == "completed" else None

    key_after = wait_for(rotated, what="the key rotation", timeout_seconds=30)
    assert key_after != key_before
    page.reload()
    expect(page.locator("#current-key-id")).to_have_text(key_after)
    expect(page.locator(".rotations")).to_contain_text("completed")
    assert_accessible(page)
    screenshot(page, "customer-connections-and-key")
    phone = sign_in(
        new_context(PHONE), control_plane.base_url, CONTOSO_ADMIN, path=detail.removeprefix(control_plane.base_url)
    )
    expect(phone.locator("#current-key-id")).to_have_text(key_after)
    assert_accessible(phone)
    screenshot(phone, "customer-subscription-phone")


def test_cross_tenant_ids_answer_404_on_every_route(
    story: Story, control_plane: ControlPlane, new_context: ContextFactory, portal_database: Database
) -> None:
    with portal_database.session() as session:
        contoso_connection = session.exec(
            select(PrivateEndpointConnection).where(PrivateEndpointConnection.cluster_id == story.contoso.cluster_id)
        ).first()
    connection_id = contoso_connection.id if contoso_connection else str(uuid.uuid4())
    base = control_plane.base_url
    alice = sign_in(new_context(), base, CONTOSO_ADMIN)
    frank = sign_in(new_context(), base, FABRIKAM_ADMIN)

    def attempts(own: Purchase, other: Purchase, other_connection: str) -> list[tuple[str, str, dict[str, str]]]:
        other_path = f"/portal/subscriptions/{other.subscription_id}"
        own_path = f"/portal/subscriptions/{own.subscription_id}"
        return [
            ("GET", other_path, {}),
            ("GET", f"{other_path}/timeline", {}),
            ("POST", f"{other_path}/connections/{other_connection}", {"decision": "approved"}),
            ("POST", f"{other_path}/connections/{other_connection}", {"decision": "rejected"}),
            ("POST", f"{other_path}/auto-approval", {"auto_approval_subscriptions": "*"}),
            ("POST", f"{other_path}/key-rotations", {"reason": "not mine"}),
            # Another tenant's connection id under one's own subscription is just as unknown.
            ("POST", f"{own_path}/connections/{other_connection}", {"decision": "rejected"}),
        ]

    checks = [
        (alice, attempts(story.contoso, story.fabrikam, str(uuid.uuid4())), story.fabrikam.cluster_id),
        (frank, attempts(story.fabrikam, story.contoso, connection_id), story.contoso.cluster_id),
    ]
    for page, routes, other_cluster in checks:
        token = _csrf_token(page)
        for method, path, form in routes:
            if method == "GET":
                response = page.request.get(f"{base}{path}", max_redirects=0)
            else:
                response = page.request.post(f"{base}{path}", form={**form, "csrf_token": token}, max_redirects=0)
            assert response.status == 404, f"{method} {path}: {response.status}"
            assert "Not found" in response.text()
        timeline = page.request.get(f"{base}{routes[1][1]}", headers={"Accept": "application/json"})
        assert timeline.status == 404
        assert timeline.json()["error"]["code"] == "NotFound"
        page.goto(f"{base}{routes[0][1]}")
        expect(page.locator("h1")).to_have_text("Not found")
        # To customer admins the operator pages do not exist, whatever the id.
        for path in ("/portal/operator/subscriptions", f"/portal/operator/clusters/{other_cluster}"):
            assert page.request.get(f"{base}{path}", max_redirects=0).status == 404
        retry = page.request.post(
            f"{base}/portal/operator/clusters/{other_cluster}/retry", form={"csrf_token": token}, max_redirects=0
        )
        assert retry.status == 404
    assert_accessible(alice)
    screenshot(alice, "customer-not-found")
    # Nothing above changed anything.
    with portal_database.session() as session:
        decided = session.exec(
            select(PrivateEndpointConnection).where(col(PrivateEndpointConnection.decided_by).startswith("user:2b3c"))
        ).all()
        rotations = session.exec(select(KeyRotation).where(KeyRotation.reason == "not mine")).all()
    assert decided == []
    assert rotations == []


def test_forms_without_the_session_csrf_token_are_refused_and_pages_carry_security_headers(
    story: Story, control_plane: ControlPlane, new_context: ContextFactory, portal_database: Database
) -> None:
    base = control_plane.base_url
    page = sign_in(new_context(), base, CONTOSO_ADMIN)
    path = f"{base}/portal/subscriptions/{story.contoso.subscription_id}/key-rotations"
    with portal_database.session() as session:
        rotations_before = len(session.exec(select(KeyRotation)).all())
    missing = page.request.post(path, form={"reason": "forged"}, max_redirects=0)
    forged = page.request.post(path, form={"reason": "forged", "csrf_token": "x" * 43}, max_redirects=0)
    assert missing.status == 403
    assert forged.status == 403
    assert "Not allowed" in missing.text()
    sign_out_without_token = page.request.post(f"{base}/portal/sign-out", form={}, max_redirects=0)
    assert sign_out_without_token.status == 403
    with portal_database.session() as session:
        assert len(session.exec(select(KeyRotation)).all()) == rotations_before

    response = page.request.get(f"{base}/portal/subscriptions")
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    assert "strict-transport-security" not in headers  # plain http on loopback; only sent over https
    # X-Forwarded-Proto from a peer that is not a configured trusted proxy (none is) switches nothing on.
    forged = page.request.get(f"{base}/portal/subscriptions", headers={"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" not in forged.headers
    cookie = next(item for item in page.context.cookies() if item["name"] == control_plane.settings.session_cookie_name)
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Lax"

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("h1")).to_have_text("You signed out of the portal")
    assert_accessible(page)
    page.goto(f"{base}/portal/subscriptions")
    page.wait_for_url("**/authorize**")


def test_operator_filters_failed_clusters_reads_the_arm_error_and_retries(
    story: Story,
    control_plane: ControlPlane,
    emulator_control: EmulatorControl,
    new_context: ContextFactory,
    portal_database: Database,
) -> None:
    wait_for(
        lambda: cluster_row(portal_database, story.fabrikam.cluster_id).status == ClusterStatus.FAILED,
        what="Fabrikam's cluster to fail on the quota",
    )
    base = control_plane.base_url
    page = sign_in(new_context(), base, OPERATOR)
    expect(page).to_have_url(re.compile(r"/portal/operator/subscriptions$"))
    expect(page.locator("tr[data-subscription-id]")).to_have_count(2)
    page.get_by_label("Only failed").check()
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("tr[data-subscription-id]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-subscription-id", story.fabrikam.subscription_id)
    page.get_by_label("Beneficiary tenant id").fill(emulator_control.tenant_id("contoso"))
    page.get_by_role("button", name="Filter").click()
    expect(page.locator(".empty-state")).to_contain_text("No subscriptions match")
    page.goto(f"{base}/portal/operator/subscriptions?failed=on")
    assert_accessible(page)
    screenshot(page, "operator-subscriptions-failed")

    page.locator("tr[data-subscription-id]").first.get_by_role("link", name="failed").click()
    expect(page.locator("#last-error-code")).to_have_text("DeploymentFailed")
    expect(page.locator(".error-box")).to_contain_text("uota")
    expect(page.locator("tr.row-failed")).to_have_count(2)  # the retry budget: two failed attempts
    assert_accessible(page)
    screenshot(page, "operator-cluster-failed")

    emulator_control.call("arm", "DELETE", f"/subscriptions/{story.fabrikam.azure_subscription_id}/quotas")
    page.get_by_label("Why retry now (for the audit trail)").fill("quota raised by the customer")
    page.get_by_role("button", name="Retry cluster").click()
    expect(page.locator(".flash")).to_have_text("Retry requested.")
    wait_for(
        lambda: cluster_row(portal_database, story.fabrikam.cluster_id).status == ClusterStatus.READY,
        what="the retried cluster to become ready",
    )
    page.reload()
    expect(page.locator("#cluster-status")).to_have_text("ready")

    page.goto(f"{base}/portal/operator/audit?action=cluster.retry")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("quota raised by the customer")
    assert_accessible(page)
    screenshot(page, "operator-audit-search")
    page.goto(f"{base}/portal/operator/operations")
    expect(page.locator("h1")).to_have_text("Stuck work")
    page.get_by_role("button", name="Reconcile with Marketplace now").click()
    expect(page.locator(".flash")).to_contain_text("Reconciliation with Marketplace")
    assert_accessible(page)
    screenshot(page, "operator-stuck-work")


def test_usage_charts_reconciliation_report_csv_and_configuration(
    story: Story,
    control_plane: ControlPlane,
    emulator_control: EmulatorControl,
    new_context: ContextFactory,
    portal_database: Database,
) -> None:
    now = utc_now()
    first_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)
    # Samples as the collector stores them: three closed hours above the plan's allowance (5 TiB x quantity 2).
    with portal_database.session() as session:
        for offset, capacity in enumerate([12.0, 25.0, 14.0]):
            hour = first_hour + timedelta(hours=offset)
            session.add(
                UsageSample(
                    cluster_id=story.contoso.cluster_id,
                    dimension_id="capacity_tib",
                    sampled_at=hour + timedelta(minutes=30),
                    hour_start=hour,
                    value=capacity,
                )
            )
        # ...and read through now, as the collector marks a successful read (hours close only behind the mark).
        record_collected(session, story.contoso.cluster_id, now, now)
    run_close(control_plane.settings, portal_database, now=now, since=first_hour)
    # Marketplace accepts usage only for an active subscription: activation follows the cluster becoming ready.
    wait_for(
        lambda: subscription_status(portal_database, story.contoso.subscription_id) == "Subscribed",
        what="Contoso's subscription to be activated",
    )
    run_submission(control_plane.settings, portal_database, now=now)

    def accepted_entries() -> list[UsageLedgerEntry]:
        with portal_database.session() as session:
            rows = session.exec(
                select(UsageLedgerEntry).where(UsageLedgerEntry.cluster_id == story.contoso.cluster_id)
            ).all()
        return list(rows) if len(rows) == 3 and all(row.status == "accepted" for row in rows) else []

    entries = sorted(wait_for(accepted_entries, what="the ledger hours accepted by Marketplace"), key=_hour)
    # Marketplace loses one accepted event: the day it belongs to no longer matches the ledger.
    lost = entries[0]
    emulator_control.call("marketplace", "POST", f"/usage-events/{lost.marketplace_usage_event_id}/drop")
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    report = run_reconciliation(
        control_plane.settings,
        portal_database,
        start=day_start - timedelta(days=1),
        end=day_start + timedelta(days=1),
        requested_by="portal browser test",
    )

    base = control_plane.base_url
    alice = sign_in(new_context(), base, CONTOSO_ADMIN, path=f"/portal/subscriptions/{story.contoso.subscription_id}")
    chart = alice.locator("svg.usage-chart").first
    expect(chart).to_be_visible()
    expect(chart.locator("rect.bar-included")).to_have_count(3)
    heights = chart.locator("g").evaluate_all(
        "(groups) => groups.map((g) => [...g.querySelectorAll('rect')].map((r) => Number(r.getAttribute('height'))))"
    )
    ordered = entries
    # Each bar is as tall as its hour's measured quantity; its upper part is what was billed above the plan.
    totals = [included + billed for included, billed in heights]
    peak = max(entry.measured_quantity for entry in ordered)
    for (_, billed), total, entry in zip(heights, totals, ordered, strict=True):
        assert abs(total / max(totals) - entry.measured_quantity / peak) < 0.01
        assert abs(billed / total - entry.billable_quantity / entry.measured_quantity) < 0.01
    assert_accessible(alice)
    screenshot(alice, "customer-usage-chart")

    page = sign_in(new_context(), base, OPERATOR, path="/portal/operator/billing")
    expect(page.locator("h1")).to_have_text("Metering")
    assert_accessible(page)
    screenshot(page, "operator-metering")
    page.get_by_role("link", name=f"Report {report.id}", exact=True).click()
    expect(page.locator("#difference-count")).to_have_text(str(report.difference_count))
    with portal_database.session() as session:
        differences = session.exec(
            select(UsageReconciliationDifference).where(UsageReconciliationDifference.report_id == report.id)
        ).all()
    assert [item.kind for item in differences] == ["missing_there"]
    highlighted = page.locator("tr.difference-missing_there")
    expect(highlighted).to_have_count(1)
    expect(highlighted).to_contain_text("missing there")
    expect(highlighted.locator("td.differs")).to_have_count(2)
    assert_accessible(page)
    screenshot(page, "operator-reconciliation-report")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download differences as CSV").click()
    download = download_info.value
    assert download.suggested_filename == f"usage-reconciliation-{report.id}.csv"
    rows = list(csv.reader(io.StringIO(download.path().read_text(encoding="utf-8"))))
    assert len(rows) == 1 + len(differences)
    assert sorted(row[rows[0].index("kind")] for row in rows[1:]) == sorted(item.kind for item in differences)

    page.goto(f"{base}/portal/operator/configuration")
    content = page.content()
    assert control_plane.settings.arm_endpoint in content
    secret = control_plane.settings.control_plane_client_secret
    assert secret is not None
    assert secret.get_secret_value() not in content
    expect(page.locator("tr", has_text="CP_CONTROL_PLANE_CLIENT_SECRET")).to_contain_text("secret set")
    assert_accessible(page)
    screenshot(page, "operator-configuration")


def _hour(entry: UsageLedgerEntry) -> datetime:
    return entry.hour_start


def _plant_probe_samples(database: Database, cluster_id: str, now: datetime) -> None:
    """Probe checks as the probe service stores them: (minutes ago, good, failed, latency ms)."""
    batches = [(180, 20, 0, 30.0), (120, 18, 2, 30.0), (25, 10, 0, 800.0), (2, 9, 1, 30.0)]
    with database.session() as session:
        cluster = session.get(Cluster, cluster_id)
        assert cluster is not None
        for minutes_ago, good, failed, latency_ms in batches:
            run_id = str(uuid.uuid4())
            for index in range(good + failed):
                session.add(
                    BlobProbeSample(
                        run_id=run_id,
                        cluster_id=cluster.id,
                        tenant_id=cluster.tenant_id,
                        check_name="put_block_blob",
                        authentication="entra",
                        succeeded=index >= failed,
                        latency_ms=latency_ms,
                        error_code="ServiceRequestError" if index < failed else None,
                        probed_at=now - timedelta(minutes=minutes_ago, seconds=index),
                    )
                )


def _number(value: str | None) -> float | None:
    return float(value) if value else None


def test_slo_page_shows_core_slo_numbers_and_charts_and_hides_other_tenants_clusters(
    story: Story, control_plane: ControlPlane, new_context: ContextFactory, portal_database: Database
) -> None:
    settings = control_plane.settings
    _plant_probe_samples(portal_database, story.contoso.cluster_id, utc_now())
    with portal_database.session() as session:
        fired = evaluate_burn_rate_alerts(session, settings)
    assert ("availability", "page") in {(alert["objective"], alert["severity"]) for alert in fired}

    base = control_plane.base_url
    alice = sign_in(new_context(), base, CONTOSO_ADMIN, path=f"/portal/subscriptions/{story.contoso.subscription_id}")
    alice.locator("#slo-link").click()
    expect(alice.locator("h1")).to_contain_text("Service levels of")
    evaluated_at = datetime.fromisoformat(alice.locator("#evaluated-at").get_attribute("datetime") or "")
    with portal_database.session() as session:
        cluster = session.get(Cluster, story.contoso.cluster_id)
        assert cluster is not None
        # Evaluated at the page's instant, so a probe run after the page was drawn cannot change the numbers.
        status = cluster_slo_status(session, settings, cluster, now=evaluated_at)
        series = cluster_time_series(session, settings, cluster, hours=24, bucket_minutes=60, now=evaluated_at)
    for objective in status["objectives"]:
        row = alice.locator(f"#objectives tr[data-objective='{objective['name']}']")
        # core.slo's numbers in the page's words: a bounded percentage, and the budget as the share used.
        expect(row.locator(".attainment")).to_have_text(percent(objective["attainment"]))
        expect(row.locator(".budget")).to_have_text(budget_used(objective["error_budget_remaining"]))
        expect(row.locator(".counts")).to_have_text(f"{objective['good']} / {objective['total']}")
        assert _number(row.locator(".attainment").get_attribute("data-value")) == objective["attainment"]
        assert _number(row.locator(".budget").get_attribute("data-value")) == objective["error_budget_remaining"]
        for window, rate in objective["burn_rates"].items():
            shown = row.locator(f".burn-rates [data-window='{window}']").get_attribute("data-value")
            assert _number(shown) == rate, (objective["name"], window)
        # The chart has one bar per hour with checks, as tall as good / all checks of that hour.
        good_key = {"availability": "available", "latency": "fast"}[objective["name"]]
        expected = [point[good_key] / point["total"] for point in series["points"] if point["total"]]
        bars = alice.locator(f"svg.sli-chart[data-objective='{objective['name']}'] rect")
        shown_slis = [float(value) for value in bars.evaluate_all("(rects) => rects.map((r) => r.dataset.sli)")]
        assert shown_slis == pytest.approx(expected)
    assert {objective["name"]: objective["met"] for objective in status["objectives"]} == {
        "availability": False,
        "latency": False,
    }
    recorded = {(alert["objective"], alert["severity"]) for alert in status["recent_alerts"]}
    shown_alerts = alice.locator("#active-alerts li")
    expect(shown_alerts).to_have_count(len(status["recent_alerts"]))
    for objective_name, severity in recorded:
        expect(shown_alerts.filter(has_text=f"{severity} {objective_name}").first).to_be_visible()
    assert_accessible(alice)
    screenshot(alice, "customer-slo")

    # Another tenant's cluster is as unknown as one that does not exist, and the overview is operators' only.
    frank = sign_in(new_context(), base, FABRIKAM_ADMIN)
    for page, other_cluster in ((alice, story.fabrikam.cluster_id), (frank, story.contoso.cluster_id)):
        response = page.request.get(f"{base}/portal/clusters/{other_cluster}/slo", max_redirects=0)
        assert response.status == 404
        assert "Not found" in response.text()
        assert page.request.get(f"{base}/portal/operator/slo", max_redirects=0).status == 404
    assert frank.request.get(f"{base}/portal/clusters/{story.fabrikam.cluster_id}/slo").status == 200

    olivia = sign_in(new_context(), base, OPERATOR, path="/portal/operator/slo")
    expect(olivia.locator("h1")).to_have_text("Service levels")
    for purchase in (story.contoso, story.fabrikam):
        expect(olivia.locator(f"#slo-overview tr[data-cluster-id='{purchase.cluster_id}']")).to_have_count(2)
    availability = olivia.locator(
        f"#slo-overview tr[data-cluster-id='{story.contoso.cluster_id}'][data-objective='availability']"
    )
    assert (
        _number(availability.locator(".attainment").get_attribute("data-value"))
        == status["objectives"][0]["attainment"]
    )
    expect(availability.locator(".alerts")).to_contain_text("page")
    assert_accessible(olivia)
    screenshot(olivia, "operator-slo")
    olivia.locator(f"#slo-overview tr[data-cluster-id='{story.contoso.cluster_id}'] a").click()
    expect(olivia.locator("svg.sli-chart")).to_have_count(2)


def test_customer_connects_a_databricks_ncc_and_the_matrix_shows_it_connected(
    story: Story,
    control_plane: ControlPlane,
    emulator_control: EmulatorControl,
    new_context: ContextFactory,
    portal_database: Database,
) -> None:
    def ready_cluster() -> Cluster | None:
        row = cluster_row(portal_database, story.contoso.cluster_id)
        return row if row.status == ClusterStatus.READY else None

    cluster = wait_for(ready_cluster, what="Contoso's cluster ready")
    page = sign_in(new_context(), control_plane.base_url, CONTOSO_ADMIN)
    page.goto(f"{control_plane.base_url}/portal/subscriptions/{story.contoso.subscription_id}")
    page.locator("#connectivity-link").click()
    expect(page.locator("h1")).to_have_text(f"Connectivity of {cluster.name}")
    databricks = page.locator("#consumer-matrix tr[data-consumer='databricks-serverless']")
    expect(databricks.locator(".state")).to_have_text("not connected")
    expect(page.locator("#consumer-matrix tr[data-consumer='ai-search-shared-private-link'] .state")).to_have_text(
        "not supported"
    )
    assert cluster.endpoint_fqdn
    expect(page.locator("#dns-table tr[data-consumer='customer-vnet']")).to_contain_text(cluster.endpoint_fqdn)

    # A hostile id is refused on the form with the reason, and nothing is recorded.
    page.get_by_label("Service", exact=True).select_option("databricks-serverless")
    page.get_by_label(re.compile("^Your resource")).fill("not-an-ncc-id")
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#connect-error")).to_contain_text("NCC id must be a UUID")
    expect(page.locator("#expectations .expectation")).to_have_count(0)

    ncc_id = str(uuid.uuid4())
    page.get_by_label(re.compile("^Your resource")).fill(ncc_id)
    page.get_by_role("button", name="Connect").click()
    expect(page.locator(".flash")).to_contain_text("Expected connection recorded")
    expectation = page.locator("#expectations .expectation").first
    expect(expectation).to_have_attribute("data-status", "waiting")
    assert cluster.pls_resource_id
    expect(expectation).to_contain_text(cluster.pls_resource_id)
    expect(expectation).to_contain_text(f"network-connectivity-configs/{ncc_id}/private-endpoint-rules")
    expect(databricks.locator(".state")).to_have_text("waiting")
    screenshot(page, "customer-connect-a-service")

    # Databricks creates the endpoint the way it does; the running sync approves it by the NCC it names.
    emulator_control.call(
        "arm",
        "POST",
        "/private-endpoints",
        json={
            "target": cluster.pls_resource_id,
            "source_kind": "databricks-serverless",
            "consumer_resource_id": ncc_id,
            "name": "rule",
        },
    )

    def connected() -> bool:
        page.reload()
        return (
            page.locator("#consumer-matrix tr[data-consumer='databricks-serverless'] .state").inner_text()
            == "connected"
        )

    wait_for(connected, what="the Databricks connection approved on the matrix", timeout_seconds=60)
    expect(page.locator("#expectations .expectation").first).to_have_attribute("data-status", "matched")
    expect(page.locator("#expectations .evidence")).to_contain_text("request_message")
    screenshot(page, "customer-connectivity-matrix")

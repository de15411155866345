"""Operator pages at scale in a real browser: sorting, paging and search of every subscription; stuck work with
a reason, an age and an action; retention shown as retention; metering per dimension with its unit; a retry
answered by a success page or a refusal, never both; every page free of serious axe-core violations and its
actions reachable from the keyboard.

The module seeds its own rows (many subscriptions of named and unnamed tenants, clusters failed, stalled or in
retention, ledger entries of two dimensions) and removes them afterwards, so the portal story keeps its own view.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import BrowserContext, Page, expect
from sqlmodel import col, select

from core.audit.models import AuditEvent
from core.clock import utc_now
from core.clusters.drift_models import ClusterDrift
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.provisioning_models import ArmDeployment, KeyRotation
from core.db import Database
from core.outbox.models import OutboxMessage
from core.subscriptions.models import MarketplaceOperation, MarketplaceSubscription, SubscriptionStatus
from core.tenants.models import Tenant
from core.usage.models import UsageLedgerEntry
from tests.browser.accessibility import assert_accessible, tab_to
from tests.browser.conftest import OPERATOR, ControlPlane, screenshot, sign_in
from tests.support.factories import create_cluster, create_subscription, create_tenant

pytestmark = [pytest.mark.timeout(180)]
ContextFactory = Callable[..., BrowserContext]
# More than one page of 50.
SUBSCRIPTIONS = 64
PREFIX = "ops-test"


@dataclass(frozen=True)
class Seeded:
    tenant_names: list[str]
    unnamed_tenant_id: str
    failed_cluster: str
    second_failed_cluster: str
    stalled_cluster: str
    retention_cluster: str


@pytest.fixture(scope="module")
def seeded(portal_database: Database, control_plane: ControlPlane) -> Iterator[Seeded]:
    now = utc_now()
    with portal_database.session() as session:
        named = [
            create_tenant(session, display_name="Northwind Traders"),
            create_tenant(session, display_name="Adatum Corporation"),
        ]
        unnamed = create_tenant(session, display_name="")
        tenants = [*named, unnamed]
        subscriptions = [
            create_subscription(
                session,
                tenants[index % 3],
                name=f"{PREFIX} {index:02d}",
                quantity=1 + index % 4,
                created_at=now - timedelta(minutes=index),
            )
            for index in range(SUBSCRIPTIONS)
        ]
        failed, second_failed, stalled, retention = (
            create_cluster(
                session,
                tenants[0],
                subscription=subscriptions[0],
                status=ClusterStatus.FAILED,
                last_error_code="QuotaExceeded",
                last_error_message="Operation could not be completed as it results in exceeding approved quota.",
            ),
            # Unsubscribed: a retry leads it into its retention period, where it stays for this test's lifetime.
            create_cluster(
                session,
                tenants[0],
                subscription=subscriptions[3],
                status=ClusterStatus.FAILED,
                desired_deleted=True,
                last_error_code="ResourceGroupDeletionBlocked",
            ),
            create_cluster(
                session,
                tenants[1],
                subscription=subscriptions[1],
                status=ClusterStatus.PROVISIONING,
                current_step="private-link",
                updated_at=now - timedelta(hours=2),
                # Its next check is scheduled (a long ARM deployment), so the controller's sweep leaves it be.
                next_attempt_at=now + timedelta(days=1),
            ),
            create_cluster(
                session,
                tenants[2],
                subscription=subscriptions[2],
                status=ClusterStatus.DEPROVISIONING,
                desired_deleted=True,
                retention_until=now + timedelta(days=29),
                updated_at=now - timedelta(days=1),
                next_attempt_at=now + timedelta(days=29),
            ),
        )
        subscriptions[2].status = SubscriptionStatus.UNSUBSCRIBED
        for hour in range(3):
            for dimension, quantity in (("capacity_tib", 12.5), ("data_transfer_gib", 300.0)):
                session.add(
                    UsageLedgerEntry(
                        resource_id=subscriptions[4].id,
                        resource_kind="saas",
                        dimension_id=dimension,
                        plan_id="standard",
                        hour_start=now.replace(minute=0, second=0, microsecond=0) - timedelta(days=30, hours=hour),
                        measured_quantity=quantity,
                        included_quantity=0.0,
                        billable_quantity=quantity,
                        status="accepted",
                    )
                )
        seeded = Seeded(
            tenant_names=[tenant.display_name for tenant in named],
            unnamed_tenant_id=unnamed.entra_tenant_id,
            failed_cluster=failed.id,
            second_failed_cluster=second_failed.id,
            stalled_cluster=stalled.id,
            retention_cluster=retention.id,
        )
        tenant_ids = [tenant.id for tenant in tenants]
        subscription_ids = [item.id for item in subscriptions]
        cluster_ids = [failed.id, second_failed.id, stalled.id, retention.id]
    yield seeded
    with portal_database.session() as session:
        # What the retries enqueued for these clusters, then the rows themselves, children first.
        for message in session.exec(select(OutboxMessage)).all():
            if isinstance(message.arguments, dict) and message.arguments.get("cluster_id") in cluster_ids:
                session.delete(message)
        session.execute(sa.delete(UsageLedgerEntry).where(col(UsageLedgerEntry.resource_id).in_(subscription_ids)))
        for child in (ArmDeployment, KeyRotation, ClusterDrift):
            session.execute(sa.delete(child).where(col(child.cluster_id).in_(cluster_ids)))
        session.execute(sa.delete(AuditEvent).where(col(AuditEvent.tenant_id).in_(tenant_ids)))
        session.execute(sa.delete(Cluster).where(col(Cluster.id).in_(cluster_ids)))
        session.execute(
            sa.delete(MarketplaceOperation).where(col(MarketplaceOperation.subscription_id).in_(subscription_ids))
        )
        session.execute(sa.delete(MarketplaceSubscription).where(col(MarketplaceSubscription.id).in_(subscription_ids)))
        session.execute(sa.delete(Tenant).where(col(Tenant.id).in_(tenant_ids)))


def _operator(new_context: ContextFactory, control_plane: ControlPlane, path: str) -> Page:
    return sign_in(new_context(), control_plane.base_url, OPERATOR, path=path)


def _column(page: Page, selector: str) -> list[str]:
    return [text.strip() for text in page.locator(f"#subscriptions tbody tr {selector}").all_inner_texts()]


def test_subscriptions_are_searched_sorted_and_paged_with_counts(
    seeded: Seeded, control_plane: ControlPlane, new_context: ContextFactory, portal_database: Database
) -> None:
    with portal_database.session() as session:
        total = session.exec(select(sa.func.count()).select_from(MarketplaceSubscription)).one()
    page = _operator(new_context, control_plane, f"/portal/operator/subscriptions?q={PREFIX}")
    expect(page.locator("#list-count")).to_have_text(f"Showing 1–50 of {SUBSCRIPTIONS} subscriptions")
    expect(page.locator("#subscriptions tbody tr")).to_have_count(50)
    # Tenants by name where known, their GUID beside it; each subscription's id under its name.
    northwind = page.locator("#subscriptions tbody tr", has_text="Northwind Traders").first
    expect(northwind.locator(".tenant-name")).to_have_text("Northwind Traders")
    expect(northwind).to_contain_text(re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-"))
    assert all(re.fullmatch(r"[0-9a-f-]{36}", text) for text in _column(page, "td:first-child .secondary"))
    assert_accessible(page)
    screenshot(page, "operator-subscriptions-search")

    # Sorting by tenant from the keyboard: Tab reaches the column heading, Enter sorts.
    tab_to(page, page.get_by_role("link", name=re.compile(r"^Tenant")))
    page.keyboard.press("Enter")
    expect(page.locator("th[aria-sort='ascending']")).to_contain_text("Tenant")
    # Named tenants sort by name, unnamed ones by their GUID; the GUID starts with a digit or a-f, after "A".
    shown = _column(page, "td:nth-child(2)")
    keys = [text.split("\n")[0] for text in shown]
    assert keys == sorted(keys, key=str.casefold) or keys == sorted(keys)
    page.get_by_role("link", name=re.compile(r"^Tenant")).click()
    expect(page.locator("th[aria-sort='descending']")).to_contain_text("Tenant")
    page.get_by_role("link", name=re.compile(r"^Qty")).click()
    quantities = [int(text) for text in _column(page, "td:nth-child(4)")]
    assert quantities == sorted(quantities)

    page.get_by_role("link", name="Next").click()
    expect(page.locator("#list-count")).to_have_text(f"Showing 51–{SUBSCRIPTIONS} of {SUBSCRIPTIONS} subscriptions")
    expect(page.locator(".pager [aria-current='page']")).to_have_text("Page 2 of 2")
    quantities_after = [int(text) for text in _column(page, "td:nth-child(4)")]
    assert quantities_after == sorted(quantities_after)
    assert min(quantities_after) >= max(quantities)
    screenshot(page, "operator-subscriptions-page-2")

    # The search narrows by tenant name, and by the start of an id.
    page.get_by_role("searchbox", name="Search").fill("Adatum")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#list-count")).to_have_text(re.compile(r"^Showing 1–\d+ of \d+ subscriptions$"))
    assert set(_column(page, ".tenant-name")) == {"Adatum Corporation"}
    page.get_by_role("searchbox", name="Search").fill(seeded.unnamed_tenant_id[:13])
    page.get_by_role("button", name="Filter").click()
    assert set(page.locator("#subscriptions tbody tr td:nth-child(2)").all_inner_texts()) == {seeded.unnamed_tenant_id}
    # Everything is still there without a search, counted.
    page.goto(f"{control_plane.base_url}/portal/operator/subscriptions")
    expect(page.locator("#list-count")).to_have_text(f"Showing 1–50 of {total} subscriptions")
    # Odd paging and sorting values are clamped to a valid page, never an error.
    for query in ("page=999999", "sort=nonsense&dir=sideways", "q=%25_%5C"):
        response = page.request.get(f"{control_plane.base_url}/portal/operator/subscriptions?{query}")
        assert response.status == 200, query


def test_stuck_work_has_reasons_ages_and_retry_and_retention_is_apart(
    seeded: Seeded, control_plane: ControlPlane, new_context: ContextFactory, portal_database: Database
) -> None:
    page = _operator(new_context, control_plane, "/portal/operator/operations")
    stuck = page.locator("#stuck-clusters")
    failed_row = stuck.locator(f"tr[data-cluster-id='{seeded.failed_cluster}']")
    expect(failed_row.locator(".reason")).to_contain_text("QuotaExceeded: Operation could not be completed")
    stalled_row = stuck.locator(f"tr[data-cluster-id='{seeded.stalled_cluster}']")
    expect(stalled_row.locator(".reason")).to_have_text(
        re.compile(r"^No progress for 1[12]\d minutes while provisioning at step private-link\.$")
    )
    expect(stalled_row.locator("time")).to_have_text(re.compile(r"^2 h \d+ min$"))
    expect(stalled_row.get_by_role("link", name="See its steps and errors")).to_be_visible()
    # The cluster keeping its data for the retention period is listed as such, not as stuck.
    expect(stuck.locator(f"tr[data-cluster-id='{seeded.retention_cluster}']")).to_have_count(0)
    retention_row = page.locator(f"#retention tr[data-cluster-id='{seeded.retention_cluster}']")
    expect(retention_row).to_be_visible()
    assert_accessible(page)
    screenshot(page, "operator-stuck-work-reasons")

    # Retry reached with Tab and sent with Enter; the answer is a success page and nothing else.
    with portal_database.session() as session:
        name = session.get(Cluster, seeded.failed_cluster).name  # type: ignore[union-attr]
    tab_to(page, page.get_by_role("button", name=f"Retry cluster {name}"))
    page.keyboard.press("Enter")
    expect(page.locator(".flash")).to_have_text("Retry requested.")
    expect(page.locator("h1")).not_to_have_text(re.compile("cannot"))
    assert_accessible(page)

    # A double-submitted retry: the first is accepted (its message waits for the next page), the second is
    # refused with a 409 page that does not carry the first one's success message.
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    retry = f"{control_plane.base_url}/portal/operator/clusters/{seeded.second_failed_cluster}/retry"
    first = page.request.post(retry, form={"csrf_token": token, "reason": "double"}, max_redirects=0)
    second = page.request.post(retry, form={"csrf_token": token, "reason": "double"}, max_redirects=0)
    assert first.status == 303
    assert second.status == 409
    refusal = second.text()
    assert "That cannot be done right now" in refusal
    assert "only a failed cluster can be retried" in refusal
    assert "Retry requested." not in refusal
    page.goto(f"{control_plane.base_url}{first.headers['location']}")
    expect(page.locator(".flash")).to_have_text("Retry requested.")


def test_metering_shows_each_dimension_with_its_unit_and_never_a_sum_across_units(
    seeded: Seeded, control_plane: ControlPlane, new_context: ContextFactory, portal_database: Database
) -> None:
    page = _operator(new_context, control_plane, "/portal/operator/billing")
    with portal_database.session() as session:
        accepted = {
            dimension: float(quantity)
            for dimension, quantity in session.exec(
                select(UsageLedgerEntry.dimension_id, sa.func.sum(UsageLedgerEntry.billable_quantity))
                .where(UsageLedgerEntry.status == "accepted")
                .group_by(col(UsageLedgerEntry.dimension_id))
            ).all()
        }
    capacity = page.locator("#ledger-by-dimension tr[data-status='accepted'][data-dimension='capacity_tib']")
    transfer = page.locator("#ledger-by-dimension tr[data-status='accepted'][data-dimension='data_transfer_gib']")
    expect(capacity.locator(".quantity")).to_have_text(f"{accepted['capacity_tib']:,} TiB")
    expect(transfer.locator(".quantity")).to_have_text(f"{accepted['data_transfer_gib']:,} GiB")
    # No cell adds TiB to GiB.
    mixed = f"{accepted['capacity_tib'] + accepted['data_transfer_gib']:,}"
    assert mixed not in page.locator("#ledger-by-dimension").inner_text()
    assert_accessible(page)
    screenshot(page, "operator-metering-units")


def test_navigation_and_every_operator_list_work_from_the_keyboard_and_pass_axe(
    seeded: Seeded, control_plane: ControlPlane, new_context: ContextFactory
) -> None:
    page = _operator(new_context, control_plane, "/portal/operator/subscriptions")
    for name, path in (
        ("Stuck work", "/portal/operator/operations"),
        ("Metering", "/portal/operator/billing"),
        ("Audit search", "/portal/operator/audit"),
        ("All subscriptions", "/portal/operator/subscriptions"),
    ):
        tab_to(page, page.get_by_role("navigation", name="Main").get_by_role("link", name=name))
        page.keyboard.press("Enter")
        page.wait_for_url(f"**{path}")
        assert_accessible(page)
    # The navigation fits on one line at a laptop's width.
    heights = page.locator("nav[aria-label='Main'] li").evaluate_all(
        "(items) => items.map((item) => item.getBoundingClientRect().top)"
    )
    assert len(set(heights)) == 1, heights
    for path in ("/portal/operator/slo", "/portal/operator/configuration", "/portal/subscriptions", "/portal/audit"):
        page.goto(f"{control_plane.base_url}{path}")
        assert_accessible(page)
    page.goto(f"{control_plane.base_url}/portal/operator/audit?page=2")
    assert_accessible(page)
    page.goto(f"{control_plane.base_url}/portal/operator/clusters/{seeded.failed_cluster}")
    assert_accessible(page)
    page.goto(f"{control_plane.base_url}/portal/operator/clusters/{uuid.uuid4()}")
    expect(page.locator("h1")).to_have_text("Not found")
    assert_accessible(page)
    signed_out = new_context().new_page()
    signed_out.goto(f"{control_plane.base_url}/portal/sign-in")
    assert_accessible(signed_out)

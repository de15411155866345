"""The operators' list read models on the real database: every subscription searched, sorted and paged with a
count; audit search paged; stuck clusters apart from those waiting out retention; ledger totals per dimension."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from billing.reports import status_by_dimension
from core.audit.models import AuditEvent
from core.audit.queries import search_audit_page
from core.clock import utc_now
from core.clusters.models import ClusterStatus
from core.clusters.queries import clusters_in_retention, clusters_needing_attention, stuck_cluster_reason
from core.paging import MAX_PAGE, PageRequest, SortDirection
from core.subscriptions.listing import SubscriptionFilters, SubscriptionOrder, SubscriptionSort, list_subscriptions
from core.subscriptions.models import OperationState
from core.usage.models import UsageLedgerEntry
from tests.support.factories import create_cluster, create_operation, create_subscription, create_tenant


def test_subscriptions_sorted_by_each_column_and_paged_without_gaps_or_repeats(session: Session) -> None:
    now = utc_now()
    tenants = [create_tenant(session, display_name=name) for name in ("Zeta", "Alpha", "")]
    created = [
        create_subscription(
            session,
            tenants[index % 3],
            name=f"sub {index:02d}",
            quantity=1 + index % 3,
            created_at=now - timedelta(minutes=index),
        )
        for index in range(23)
    ]
    for column in SubscriptionSort:
        for direction in SortDirection:
            seen = []
            for number in (1, 2, 3):
                page = list_subscriptions(
                    session, SubscriptionFilters(), SubscriptionOrder(column, direction), PageRequest.of(number, 10)
                )
                assert page.total == 23
                assert not page.total_is_capped
                seen.extend(item.subscription.id for item in page.rows)
            assert sorted(seen) == sorted(item.id for item in created), (column, direction)
    by_quantity = list_subscriptions(
        session,
        SubscriptionFilters(),
        SubscriptionOrder(SubscriptionSort.QUANTITY, SortDirection.DESCENDING),
        PageRequest.of(1, 23),
    )
    quantities = [item.subscription.quantity for item in by_quantity.rows]
    assert quantities == sorted(quantities, reverse=True)
    newest = list_subscriptions(session, SubscriptionFilters(), SubscriptionOrder(), PageRequest.of(1, 5))
    assert [item.subscription.name for item in newest.rows] == ["sub 00", "sub 01", "sub 02", "sub 03", "sub 04"]
    assert newest.has_next
    assert not newest.has_previous
    assert newest.page_count == 5
    by_tenant = list_subscriptions(
        session,
        SubscriptionFilters(),
        SubscriptionOrder(SubscriptionSort.TENANT, SortDirection.ASCENDING),
        PageRequest.of(1, 23),
    )
    names = [item.tenant_name for item in by_tenant.rows if item.tenant_name]
    assert names == sorted(names)


def test_the_search_matches_names_tenant_names_and_id_prefixes_only(session: Session) -> None:
    northwind = create_tenant(session, display_name="Northwind Traders")
    other = create_tenant(session, display_name="Contoso")
    mine = create_subscription(session, northwind, name="analytics tier")
    theirs = create_subscription(session, other, name="bulk 100%_tier")
    cluster = create_cluster(session, other, subscription=theirs, name="facade-searchme")

    def found(text: str) -> set[str]:
        page = list_subscriptions(session, SubscriptionFilters(search=text), SubscriptionOrder(), PageRequest.of(1))
        return {item.subscription.id for item in page.rows}

    assert found("northwind") == {mine.id}
    assert found("ANALYTICS") == {mine.id}
    assert found(mine.id[:8]) == {mine.id}
    assert found(northwind.entra_tenant_id[:13]) == {mine.id}
    assert found("facade-searchme") == {theirs.id}
    assert found(cluster.azure_subscription_id[:8]) == {theirs.id}
    # LIKE's wildcards are plain characters in a search.
    assert found("100%_") == {theirs.id}
    assert found("%") == {theirs.id}
    assert found("_tier") == {theirs.id}


def test_only_failed_keeps_failed_clusters_and_failed_operations(session: Session) -> None:
    tenant = create_tenant(session, display_name="Failing Inc")
    failed_cluster = create_subscription(session, tenant, name="failed cluster")
    create_cluster(session, tenant, subscription=failed_cluster, status=ClusterStatus.FAILED)
    failed_operation = create_subscription(session, tenant, name="failed operation")
    create_operation(session, failed_operation, state=OperationState.FAILED)
    create_subscription(session, tenant, name="fine")
    page = list_subscriptions(
        session, SubscriptionFilters(search="Failing", failed_only=True), SubscriptionOrder(), PageRequest.of(1)
    )
    assert {item.subscription.name for item in page.rows} == {"failed cluster", "failed operation"}
    assert page.total == 2


def test_audit_search_pages_newest_first_and_counts_up_to_the_cap(session: Session) -> None:
    now = utc_now()
    for index in range(7):
        session.add(
            AuditEvent(
                occurred_at=now - timedelta(seconds=index),
                actor="user:pager",
                action="cluster.paged",
                subject_type="cluster",
                subject_id=f"subject-{index % 2}",
            )
        )
    session.flush()
    first = search_audit_page(session, PageRequest.of(1, 3), actor="user:pager")
    second = search_audit_page(session, PageRequest.of(3, 3), actor="user:pager")
    assert first.total == 7
    assert [event.occurred_at for event in first.rows] == sorted((e.occurred_at for e in first.rows), reverse=True)
    assert len(second.rows) == 1
    assert not second.has_next
    assert search_audit_page(session, PageRequest.of(1), subject_id="subject-1", actor="user:pager").total == 3
    assert search_audit_page(session, PageRequest.of(1), action_prefix="cluster.pag").total >= 7
    # Page numbers beyond the last readable page are clamped, never refused.
    assert PageRequest.of(10**9).number == MAX_PAGE
    assert PageRequest.of(-5).number == 1


def test_a_cluster_in_retention_is_not_stuck_until_its_retention_ended_long_ago(session: Session) -> None:
    now = utc_now()
    since = now - timedelta(minutes=10)
    tenant = create_tenant(session)
    waiting = create_cluster(
        session,
        tenant,
        subscription=create_subscription(session, tenant),
        status=ClusterStatus.DEPROVISIONING,
        desired_deleted=True,
        retention_until=now + timedelta(days=3),
        updated_at=now - timedelta(days=27),
    )
    overdue = create_cluster(
        session,
        tenant,
        subscription=create_subscription(session, tenant),
        status=ClusterStatus.DEPROVISIONING,
        desired_deleted=True,
        retention_until=now - timedelta(hours=1),
        updated_at=now - timedelta(days=30),
    )
    stalled = create_cluster(
        session,
        tenant,
        subscription=create_subscription(session, tenant),
        status=ClusterStatus.PROVISIONING,
        current_step="cluster",
        updated_at=now - timedelta(hours=1),
    )
    stuck = {cluster.id for cluster in clusters_needing_attention(session, unchanged_since=since)}
    assert waiting.id not in stuck
    assert {overdue.id, stalled.id} <= stuck
    assert waiting.id in {cluster.id for cluster in clusters_in_retention(session, now=now)}
    assert overdue.id not in {cluster.id for cluster in clusters_in_retention(session, now=now)}
    assert stuck_cluster_reason(stalled, now=now) == "No progress for 60 minutes while provisioning at step cluster."


def test_ledger_totals_are_per_dimension_with_the_dimensions_unit(session: Session) -> None:
    hour = utc_now().replace(minute=0, second=0, microsecond=0) - timedelta(days=400)
    for dimension, quantity in (("capacity_tib", 2.5), ("data_transfer_gib", 100.0), ("capacity_tib", 1.5)):
        session.add(
            UsageLedgerEntry(
                resource_id=f"sub-{dimension}-{quantity}",
                resource_kind="saas",
                dimension_id=dimension,
                plan_id="standard",
                hour_start=hour,
                measured_quantity=quantity,
                included_quantity=0.0,
                billable_quantity=quantity,
                status="expired",
            )
        )
    session.flush()
    totals = {(row.status, row.dimension_id): row for row in status_by_dimension(session)}
    capacity = totals[("expired", "capacity_tib")]
    transfer = totals[("expired", "data_transfer_gib")]
    assert (capacity.entries, capacity.billable_quantity, capacity.unit) == (2, 4.0, "TiB")
    assert (transfer.entries, transfer.billable_quantity, transfer.unit) == (1, 100.0, "GiB")

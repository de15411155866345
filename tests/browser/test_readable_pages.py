"""Pages a customer trusts at a glance (issue #22): readable charts, bounded SLO numbers, the timeline and a failure
in words, and branded error pages carrying the request's correlation id.

Contoso buys twice: one cluster provisions normally (its usage and service levels are shown), the other loses our
application's access in Azure while it is being set up, as when a customer removes the role assignment.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from core import migrator
from core.clock import utc_now
from core.clusters.models import Cluster, ClusterStatus
from core.correlation import CORRELATION_HEADER
from core.db import Database
from core.probes.models import BlobProbeSample
from core.settings import Settings
from core.usage.models import LedgerStatus, ResourceKind, UsageLedgerEntry
from tests.browser.conftest import CONTOSO_ADMIN, OPERATOR, ControlPlane, EmulatorControl, screenshot, sign_in
from tests.browser.story import Purchase, azure_subscription, cluster_row, purchase_through_landing_page, wait_for
from tests.conftest import start_api

pytestmark = [pytest.mark.timeout(180)]
ContextFactory = Callable[..., BrowserContext]
# A time tick reads as an hour ("15:00") or, at midnight and on week-long axes, as a day ("Tue 8 Dec").
TIME_TICK = re.compile(r"^(\d\d:00|[A-Z][a-z]{2} \d{1,2} [A-Z][a-z]{2})$")
# An audit action code (`cluster.blob_probe.failed`) never reaches a customer's page.
ACTION_CODE = re.compile(r"\b[a-z]+(\.[a-z_]+)+\b")
UTC_INSTANT = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
FAILURE_RED = "rgb(180, 35, 24)"  # --bad in portal.css


@dataclass(frozen=True)
class Purchases:
    healthy: Purchase
    access_lost: Purchase


@pytest.fixture(scope="module")
def purchases(control_plane: ControlPlane, emulator_control: EmulatorControl, portal_database: Database) -> Purchases:
    app_id = control_plane.settings.control_plane_client_id
    assert app_id is not None
    healthy = purchase_through_landing_page(
        emulator_control,
        portal_database,
        tenant_key="contoso",
        username=CONTOSO_ADMIN,
        azure_subscription_id=azure_subscription(emulator_control, "contoso", app_id),
    )
    losing = azure_subscription(emulator_control, "contoso", app_id)
    # Slow deployments, so the role is surely gone before the controller's next ARM call.
    emulator_control.call("arm", "PUT", f"/subscriptions/{losing}/deployment-seconds", json={"seconds": 3})
    access_lost = purchase_through_landing_page(
        emulator_control, portal_database, tenant_key="contoso", username=CONTOSO_ADMIN, azure_subscription_id=losing
    )
    emulator_control.call("arm", "DELETE", f"/subscriptions/{losing}/access/{app_id}")
    return Purchases(healthy, access_lost)


def test_a_lost_role_reads_as_who_must_act_and_how_and_the_timeline_in_words(
    purchases: Purchases, control_plane: ControlPlane, new_context: ContextFactory, portal_database: Database
) -> None:
    purchase = purchases.access_lost

    def failed() -> Cluster | None:
        row = cluster_row(portal_database, purchase.cluster_id)
        return row if row.status == ClusterStatus.FAILED else None

    cluster = wait_for(failed, what="the cluster to fail without access")
    assert cluster.last_error_code == "ArmAccessDenied"
    app_id = control_plane.settings.control_plane_client_id
    base = control_plane.base_url
    page = sign_in(new_context(), base, CONTOSO_ADMIN, path=f"/portal/subscriptions/{purchase.subscription_id}")

    banner = page.locator("#failure")
    expect(page.locator("#failure-headline")).to_have_text("Setting up your cluster needs your action")
    what_to_do = page.locator("#failure-what-to-do").inner_text()
    assert f"application id {app_id}" in what_to_do
    assert f"Contributor role on Azure subscription {purchase.azure_subscription_id}" in what_to_do
    assert f"scope /subscriptions/{purchase.azure_subscription_id}" in what_to_do
    banner_text = banner.inner_text()
    assert "nothing needs to be done" not in banner_text
    assert ".." not in banner_text
    # ARM's own text is the operators' to read: a customer does not get it, folded or not.
    expect(page.locator("#failure-arm-details")).to_have_count(0)
    assert "AuthorizationFailed" not in page.content()

    lines = page.locator("#timeline-events li")
    sentences = lines.locator(".sentence").all_inner_texts()
    assert sentences[0] == "Cluster requested"
    assert sentences[-1] == "Setting up the cluster stopped"
    assert all(sentence and not ACTION_CODE.search(sentence) for sentence in sentences), sentences
    assert not ACTION_CODE.search(page.locator("#timeline-events").inner_text())
    # Colour only for the real failure: the last line is red, no other line is.
    colours = lines.locator(".sentence").evaluate_all("(items) => items.map((item) => getComputedStyle(item).color)")
    assert colours[-1] == FAILURE_RED
    assert FAILURE_RED not in colours[:-1]
    assert all(UTC_INSTANT.match(text) for text in lines.locator("time").all_inner_texts())
    screenshot(page, "customer-failure-consent-missing")

    olivia = sign_in(new_context(), base, OPERATOR, path=f"/portal/subscriptions/{purchase.subscription_id}")
    details = olivia.locator("#failure-arm-details")
    expect(details).to_have_count(1)
    expect(details.locator(".details").first).not_to_be_visible()  # folded away until opened
    details.locator("summary").click()
    expect(details).to_contain_text("AuthorizationFailed")
    expect(olivia.locator("#failure-what-to-do")).to_have_text(what_to_do)
    screenshot(olivia, "operator-failure-consent-missing")


def _ledger_hours(database: Database, purchase: Purchase, measured: list[float], included: float) -> None:
    """Closed hours as the ledger holds them after the close and Marketplace's acceptance."""
    first = utc_now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=len(measured))
    with database.session() as session:
        for offset, quantity in enumerate(measured):
            session.add(
                UsageLedgerEntry(
                    resource_id=purchase.subscription_id,
                    resource_kind=ResourceKind.SAAS.value,
                    cluster_id=purchase.cluster_id,
                    dimension_id="api_requests_10k",
                    plan_id="standard",
                    hour_start=first + timedelta(hours=offset),
                    measured_quantity=quantity,
                    included_quantity=included,
                    billable_quantity=max(quantity - included, 0.0),
                    status=LedgerStatus.ACCEPTED,
                )
            )


def test_the_usage_chart_has_a_time_axis_round_ticks_labels_and_a_table(
    purchases: Purchases, control_plane: ControlPlane, new_context: ContextFactory, portal_database: Database
) -> None:
    purchase = purchases.healthy
    # 100 x 10k requests an hour per unit, quantity 2; the busiest hour is the 1475.15.
    measured = [150.0, 480.0, 1475.15, 900.0, 200.5, 120.0]
    _ledger_hours(portal_database, purchase, measured, included=200.0)
    page = sign_in(
        new_context(), control_plane.base_url, CONTOSO_ADMIN, path=f"/portal/subscriptions/{purchase.subscription_id}"
    )

    figure = page.locator("figure[data-dimension='api_requests_10k']")
    chart = figure.locator("svg.usage-chart")
    expect(chart).to_be_visible()
    assert chart.locator(".value-tick").all_text_contents() == ["0", "500", "1,000", "1,500"]
    expect(chart.locator(".axis-unit").first).to_have_text("10k requests")
    time_ticks = chart.locator(".time-tick").all_text_contents()
    assert len(time_ticks) >= 4
    assert all(TIME_TICK.match(tick) for tick in time_ticks), time_ticks
    expect(chart.locator(".axis-unit", has_text="time (UTC)")).to_be_visible()
    expect(chart.locator(".allowance-label")).to_have_text("included in your plan: 200 10k requests per hour")
    expect(chart.locator(".bar-label", has_text="1,475.15")).to_be_visible()
    expect(chart.locator("g.bar")).to_have_count(len(measured))
    billed = sum(max(quantity - 200.0, 0.0) for quantity in measured)
    expect(figure.locator("figcaption")).to_contain_text(f"billed {billed:,.2f} 10k requests in total")
    screenshot(page, "customer-usage-chart-readable")

    figure.locator("details.chart-table summary").click()
    rows = figure.locator("details.chart-table tbody tr")
    expect(rows).to_have_count(len(measured))
    busiest = rows.filter(has_text="1,475.15")
    expect(busiest.locator("td").nth(1)).to_have_text("200")
    expect(busiest.locator("td").nth(2)).to_have_text("1,275.15")
    assert all(text.endswith("UTC") for text in rows.locator("th").all_inner_texts())
    screenshot(page, "customer-usage-table")


def _probe_samples(database: Database, purchase: Purchase) -> None:
    """Probe checks as the probe service stores them: (minutes ago, good, failed, latency ms); one hour all failed."""
    now = utc_now()
    cluster = cluster_row(database, purchase.cluster_id)
    with database.session() as session:
        for minutes_ago, good, failed, latency_ms in [(200, 20, 0, 30.0), (130, 0, 10, 30.0), (5, 9, 1, 30.0)]:
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


def test_the_slo_page_has_bounded_numbers_utc_times_and_a_visible_zero(
    purchases: Purchases, control_plane: ControlPlane, new_context: ContextFactory, portal_database: Database
) -> None:
    purchase = purchases.healthy
    _probe_samples(portal_database, purchase)
    path = f"/portal/clusters/{purchase.cluster_id}/slo"
    page = sign_in(new_context(), control_plane.base_url, CONTOSO_ADMIN, path=path)

    expect(page.locator("h1")).to_contain_text("Service levels of")
    assert UTC_INSTANT.match(page.locator("#evaluated-at").inner_text())
    # 11 failed checks of 40 against a 99.9 % target: the budget is spent many times over, and says "exhausted".
    availability = page.locator("#objectives tr[data-objective='availability']")
    expect(availability.locator(".budget")).to_have_text("exhausted")
    assert float(availability.locator(".budget").get_attribute("data-value") or "0") < -100
    for cell in page.locator("#objectives .budget").all_inner_texts():
        assert re.fullmatch(r"exhausted|\d{1,2}(\.\d)? % used|—", cell), cell
    for cell in page.locator("#objectives .attainment, #objectives .target").all_inner_texts():
        assert re.fullmatch(r"\d{1,3}(\.\d{1,3})? %", cell), cell
    expect(availability.locator(".attainment")).to_have_text("72.5 %")

    chart = page.locator("svg.sli-chart[data-objective='availability']")
    caption = page.locator("#sli-chart-availability")
    expect(caption).to_have_text("Availability per hour: 3 hours with probe checks, 2 below the 99.9 % target")
    zero = chart.locator("rect[data-sli='0.0']")
    expect(zero).to_have_count(1)
    box = zero.bounding_box()
    assert box is not None
    assert box["height"] > 0
    expect(chart.locator(".bar-label", has_text=re.compile(r"^0 %$"))).to_be_visible()
    value_ticks = chart.locator(".value-tick").all_text_contents()
    assert value_ticks[0] == "0 %"
    assert value_ticks[-1] == "100 %"
    time_ticks = chart.locator(".time-tick").all_text_contents()
    assert len(time_ticks) >= 3
    assert all(TIME_TICK.match(tick) for tick in time_ticks), time_ticks
    latest = page.locator("#latest-probe-result").inner_text()
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: ", latest), latest
    assert "T" not in latest.split(" UTC")[0]
    screenshot(page, "customer-slo-readable")


def _correlation_of(page_response: object) -> str:
    headers: dict[str, str] = page_response.headers  # type: ignore[attr-defined]
    return headers[CORRELATION_HEADER]


def test_an_unknown_page_is_a_branded_404_with_the_requests_correlation_id(
    control_plane: ControlPlane, new_context: ContextFactory
) -> None:
    base = control_plane.base_url
    page: Page = new_context().new_page()

    response = page.goto(f"{base}/portal/no-such-page")
    assert response is not None
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    expect(page.locator(".brand")).to_have_text("VAST on Azure portal")  # in the portal's layout
    expect(page.locator("#correlation-id")).to_have_text(_correlation_of(response))
    assert "text/html" in response.headers["content-type"]
    assert "script-src 'self'" in response.headers["content-security-policy"]
    screenshot(page, "error-404")

    # JSON routes keep answering JSON, whatever the caller accepts.
    api = page.request.get(f"{base}/api/no-such-route", headers={"Accept": "text/html"})
    assert api.status == 404
    assert api.json()["error"]["code"] == "NotFound"


def test_a_real_500_is_a_branded_page_whose_id_finds_the_error_in_the_log(
    tmp_path: Path, app_settings: Settings, new_context: ContextFactory
) -> None:
    # The API's database file is overwritten under it (a disk fault, a bad restore): every read now fails with an
    # error no handler expects.
    database_file = tmp_path / "controlplane.db"
    migrator.upgrade(f"sqlite:///{database_file}", "heads")
    group, base = start_api(
        tmp_path / "logs", app_settings, CP_DATABASE_URL=f"sqlite:///{database_file}", CP_LOG_FORMAT="json"
    )
    try:
        database_file.write_bytes(b"this is not a database: the file was overwritten\n" * 200)
        page = new_context().new_page()
        response = page.goto(f"{base}/portal/sign-in")
        assert response is not None
        assert response.status == 500
        correlation_id = _correlation_of(response)
        expect(page.locator("h1")).to_have_text("Something went wrong on our side")
        expect(page.locator("#correlation-id")).to_have_text(correlation_id)
        expect(page.locator(".brand")).to_have_text("VAST on Azure portal")
        assert "sqlite" not in page.content().lower()  # the cause is in the log, not on the page
        screenshot(page, "error-500")

        answer = httpx.get(f"{base}/portal/sign-in", headers={"Accept": "application/json"}, timeout=30)
        assert answer.status_code == 500
        assert answer.json()["error"]["code"] == "InternalError"
        assert answer.json()["error"]["details"]["correlation_id"] == answer.headers[CORRELATION_HEADER]
    finally:
        group.stop_all()
    logged = [
        json.loads(line)
        for line in (tmp_path / "logs" / "api.log").read_text(encoding="utf-8").splitlines()
        if line.startswith("{")
    ]
    errors = [entry for entry in logged if entry.get("correlation_id") == correlation_id and entry["level"] == "error"]
    assert [entry["message"] for entry in errors] == ["unhandled error"]
    assert "file is not a database" in json.dumps(errors[0])

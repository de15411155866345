"""One running control plane (API, worker, scheduler) on the emulators for the lifecycle tests.

The Marketplace emulator sends its webhooks to this API and links purchases to its landing page.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from core.clusters.models import Cluster
from core.db import Database
from core.models import metadata
from core.outbox.service import enqueue
from core.settings import Settings
from core.subscriptions.models import MarketplaceSubscription
from core.task_payloads import ClusterConverged, ConvergenceOutcome
from emulators.suite import EmulatorSuite
from harness.processes import ProcessGroup, free_port, wait_until_listening
from tests.conftest import KEPT_BETWEEN_TESTS
from tests.integration.lifecycle.marketplace_driver import (
    CONTOSO_AUTOMATION_CLIENT_ID,
    CONTOSO_TENANT_ID,
    Browser,
    Emulators,
)
from tests.support.waiting import wait_for

CLEANUP_ATTEMPTS = 5
# Every quirk on every answer. Our Success PATCH always follows a provisioning step, so here every one is late
# (deterministically: no race between the worker and a one-second limit).
QUIRKS = {
    "bare_operations_list": True,
    "requested_source_spelling": True,
    "late_success_patch_seconds": 0.0,
    "equal_term_dates": True,
    "seed": 20261207,
}


@dataclass
class ControlPlane:
    """The processes under test and where to reach them."""

    base_url: str
    settings: Settings
    group: ProcessGroup


def delete_test_rows(database: Database) -> None:
    """Empty every table but the catalog and the browser sessions, retrying.

    The running worker may still add rows while it deletes.
    """
    for attempt in range(1, CLEANUP_ATTEMPTS + 1):
        try:
            with database.engine.begin() as connection:
                for table in reversed(metadata.sorted_tables):
                    if table.name not in KEPT_BETWEEN_TESTS:
                        connection.execute(table.delete())
            return
        except DBAPIError:  # a foreign key or deadlock against the still-running worker
            if attempt == CLEANUP_ATTEMPTS:
                raise


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """As the shared fixture, but the cleanup retries (see delete_test_rows)."""
    database = Database(database_url)
    yield database
    delete_test_rows(database)
    database.dispose()


@pytest.fixture(scope="package")
def emulators(emulator_suite: EmulatorSuite) -> Iterator[Emulators]:
    driver = Emulators(emulator_suite)
    yield driver
    driver.close()


@pytest.fixture(scope="package")
def control_plane(
    tmp_path_factory: pytest.TempPathFactory, app_settings: Settings, emulators: Emulators
) -> Iterator[ControlPlane]:
    """API + worker + scheduler (outbox relay), wired to the emulators in both directions."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = app_settings.model_copy(
        update={
            "api_port": port,
            "public_base_url": base_url,
            "marketplace_backoff_initial_seconds": 0.2,
            # A message lost with a killed worker is dispatched again after this long.
            "outbox_redispatch_after_seconds": 4.0,
            # Contoso's automation may call the JSON API with app-only tokens (tests/integration/security).
            "app_only_clients": {CONTOSO_TENANT_ID: [CONTOSO_AUTOMATION_CLIENT_ID]},
        }
    )
    environment = {**os.environ, **settings.as_environment()}
    group = ProcessGroup(tmp_path_factory.mktemp("lifecycle-logs"), environment)
    group.add("api", "api")
    group.add("worker", "worker", "--concurrency=2")
    group.add("beat", "beat")
    group.start_all()
    try:
        wait_until_listening(base_url, timeout_seconds=120, group=group)
        emulators.set_webhook(f"{base_url}/marketplace/webhook")
        emulators.marketplace_control("PUT", "/landing-page", json={"url": f"{base_url}/marketplace/landing"})
        yield ControlPlane(base_url, settings, group)
    finally:
        emulators.set_webhook(None)
        group.stop_all()


@pytest.fixture(params=["documented", "quirks"])
def marketplace_mode(request: pytest.FixtureRequest, emulators: Emulators) -> Iterator[str]:
    """Marketplace as Microsoft documents it, and as other known implementations answer (the emulator's quirks
    mode: a bare operations list, operationRequestedSource, 409 on a late Success PATCH, equal term dates).

    Modules opt in with `pytest.mark.usefixtures("marketplace_mode")`, which sets the mode before any other fixture
    (the purchase and landing page of `active_subscription` run in it too).
    """
    mode = str(request.param)
    quirks = {"documented": {}, "quirks": QUIRKS}[mode]
    emulators.marketplace_control("PUT", "/quirks", json=quirks)
    try:
        yield mode
    finally:
        emulators.marketplace_control("PUT", "/quirks", json={})


@pytest.fixture
def browser(emulators: Emulators) -> Iterator[Browser]:
    client = Browser(emulators)
    yield client
    client.close()


@dataclass
class ActiveSubscription:
    """A purchase taken through the landing page and activated: Subscribed on both sides."""

    subscription_id: str
    cluster_id: str


def report_converged(
    database: Database,
    cluster_id: str,
    outcome: ConvergenceOutcome = ConvergenceOutcome.CONVERGED,
    reason: str | None = None,
) -> int:
    """What the provisioning controller does when a cluster reaches its desired generation (the contract)."""
    with database.session() as session:
        cluster = session.get(Cluster, cluster_id)
        assert cluster is not None
        generation = cluster.desired_generation
        enqueue(
            session,
            ClusterConverged(cluster_id=cluster_id, generation=generation, outcome=outcome, reason=reason),
        )
    return generation


@pytest.fixture
def active_subscription(
    control_plane: ControlPlane, emulators: Emulators, browser: Browser, database: Database
) -> ActiveSubscription:
    purchase = emulators.purchase(plan_id="standard", quantity=2)
    subscription_id = purchase["subscription_id"]
    confirmed = browser.confirm(browser.open_landing(purchase["landing_page_url"]))
    assert confirmed.status_code == 200, confirmed.text[:2000]
    with database.session() as session:
        cluster = session.exec(select(Cluster).where(Cluster.subscription_id == subscription_id)).one()
    report_converged(database, cluster.id)
    wait_for(
        lambda: emulators.marketplace_subscription(subscription_id)["saasSubscriptionStatus"] == "Subscribed",
        what="activation",
    )
    # Marketplace answers before our transaction commits: the tests that follow act on our record.
    wait_for(lambda: _status(database, subscription_id) == "Subscribed", what="our subscription to follow")
    return ActiveSubscription(subscription_id, cluster.id)


def _status(database: Database, subscription_id: str) -> str | None:
    with database.session() as session:
        subscription = session.get(MarketplaceSubscription, subscription_id)
        return None if subscription is None else subscription.status

"""The full scenario's workload: purchases, landing pages, provisioning, a seeded stream of customer actions,
metered hours and reconciliation, all through the emulators' control APIs and the control plane's own HTTP.

Every wait polls observable state (the Marketplace emulator's state, our database, the JSON API) against a
deadline; nothing sleeps to hide a race.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
from sqlmodel import col, select

from billing.jobs import run_close, run_collection, run_reconciliation, run_settlement, run_submission
from core.catalog.loader import load_catalog
from core.clock import utc_now
from core.clusters.models import Cluster, ClusterStatus
from core.connectivity.models import ExpectationStatus, ExpectedConnection
from core.db import Database
from core.settings import Settings
from core.subscriptions.models import MarketplaceOperation, MarketplaceSubscription, OperationState
from core.usage.models import LedgerStatus, UsageLedgerEntry
from harness.marketplace_demo import CONTOSO_ADMIN, CONTOSO_TENANT_ID, CustomerBrowser, deployment_choices
from harness.scenario.consumers import CONNECTABLE, consumer_resource_id, endpoint_request

ResultT = TypeVar("ResultT")

# Plans bought, with their weights and quantity ranges the scenario draws from (within the catalog's bounds).
PLAN_MIX: list[tuple[str, int, tuple[int, int]]] = [
    ("standard", 5, (1, 4)),
    ("performance", 3, (1, 3)),
    ("enterprise-private", 1, (2, 4)),
]
PLAN_QUANTITY_RANGE = {plan: bounds for plan, _, bounds in PLAN_MIX}
# Customer actions by the Marketplace status they need, with weights: unsubscribes are rarer so usage remains.
ACTIONS_BY_STATUS: dict[str, list[tuple[str, int]]] = {
    "Subscribed": [("change-plan", 3), ("change-quantity", 4), ("suspend", 2), ("renew", 2), ("unsubscribe", 1)],
    "Suspended": [("reinstate", 4), ("unsubscribe", 1)],
}
UPSCALE_SHARE = 0.7
SETTLED_OPERATION_STATES = {OperationState.REPORTED, OperationState.FAILED}
UNSETTLED_LEDGER = {LedgerStatus.PENDING, LedgerStatus.SUBMITTED, LedgerStatus.UNKNOWN}
LANDING_ATTEMPTS = 6


class ScenarioError(Exception):
    """A step of the scenario could not complete (a deadline passed, an answer was unusable)."""


def wait_for(
    check: Callable[[], ResultT | None], *, timeout_seconds: float, what: str, interval: float = 0.25
) -> ResultT:
    """Poll `check` until it returns something truthy; raise ScenarioError naming `what` after the deadline."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise ScenarioError(f"timed out after {timeout_seconds:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Purchase:
    """One subscription the scenario bought, and what the customer did with it."""

    index: int
    subscription_id: str
    plan_id: str
    quantity: int
    private_offer: bool
    landing_page_url: str
    resource_group: str
    last_operation_id: str | None = None
    actions: list[str] = field(default_factory=list)


@dataclass
class WorkloadFigures:
    """Counts of what the workload did, for the summary."""

    purchases: int = 0
    landing_retries: int = 0
    actions_sent: dict[str, int] = field(default_factory=dict)
    actions_refused_by_marketplace: int = 0
    billing_passes: list[dict[str, Any]] = field(default_factory=list)
    marketplace_reconciliation: dict[str, Any] = field(default_factory=dict)
    usage_reconciliation: dict[str, Any] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    consumers_connected: dict[str, int] = field(default_factory=dict)
    spoofed_connections: int = 0


class Workload:
    """Drives Marketplace, Entra sign-in and the customer's browser against a running control plane."""

    def __init__(
        self,
        *,
        seed: int,
        emulator_state: dict[str, Any],
        database: Database,
        settings: Settings,
        api_base_url: str,
        say: Callable[[str], None],
    ) -> None:
        self.random = random.Random(seed)
        self.state = emulator_state
        self.database = database
        self.settings = settings
        self.api_base_url = api_base_url
        self.say = say
        self.ca_bundle = str(emulator_state["ca_bundle"])
        self.marketplace = httpx.Client(
            base_url=emulator_state["marketplace"]["control_url"], verify=self.ca_bundle, timeout=30
        )
        catalog = load_catalog(settings.catalog_path)
        self.plan_bounds = {
            plan.id: (plan.min_quantity, plan.max_quantity) for offer in catalog.offers for plan in offer.plans
        }
        self.purchases: list[Purchase] = []
        self.figures = WorkloadFigures()
        # The newest hour the scenario's own billing passes closed (the billing proof checks through it).
        self.closed_through: datetime | None = None
        # How far the emulators' clocks (and the scenario's billing passes) run ahead of real time.
        self.ahead = timedelta()
        self.tokens_seen: list[str] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connections."""
        self.marketplace.close()

    # Marketplace state ------------------------------------------------------------------------------------------

    def marketplace_state(self) -> dict[str, Any]:
        """The Marketplace emulator's subscriptions, operations and usage events."""
        response = self.marketplace.get("/state")
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state

    def _timed(self, phase: str, began: float) -> None:
        self.figures.phase_seconds[phase] = round(time.monotonic() - began, 1)

    # Purchases and landing pages ------------------------------------------------------------------------------

    def configure_marketplace(self) -> None:
        """Point the emulator's webhook and landing page at the control plane."""
        self.marketplace.put("/webhook", json={"url": f"{self.api_base_url}/marketplace/webhook"}).raise_for_status()
        self.marketplace.put(
            "/landing-page", json={"url": f"{self.api_base_url}/marketplace/landing"}
        ).raise_for_status()

    def buy(self, count: int) -> None:
        """`count` purchases with a seeded mix of plans and quantities."""
        began = time.monotonic()
        plans = [plan for plan, _, _ in PLAN_MIX]
        weights = [weight for _, weight, _ in PLAN_MIX]
        for index in range(count):
            plan_id = self.random.choices(plans, weights)[0]
            low, high = PLAN_QUANTITY_RANGE[plan_id]
            quantity = self.random.randint(low, high)
            private_offer = plan_id == "enterprise-private"
            response = self.marketplace.post(
                "/purchases",
                json={
                    "plan_id": plan_id,
                    "quantity": quantity,
                    "private_offer": private_offer,
                    "name": f"scenario-{index:04d}",
                    "beneficiary": {
                        "tenant_id": CONTOSO_TENANT_ID,
                        "email": CONTOSO_ADMIN,
                        "object_id": str(uuid.uuid4()),
                    },
                },
            )
            response.raise_for_status()
            body = response.json()
            self.tokens_seen.append(body["token"])  # a landing token resolves the purchase: never to be logged
            self.purchases.append(
                Purchase(
                    index=index,
                    subscription_id=body["subscription_id"],
                    plan_id=plan_id,
                    quantity=quantity,
                    private_offer=private_offer,
                    landing_page_url=body["landing_page_url"],
                    resource_group=f"rg-scenario-{index:04d}",
                )
            )
        self.figures.purchases = count
        self._timed("purchases", began)

    def complete_landing_pages(self, parallel: int = 4) -> None:
        """Each customer signs in with Entra ID on the landing page and confirms the deployment form."""
        began = time.monotonic()
        chunks = [self.purchases[start::parallel] for start in range(parallel)]
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="landing") as pool:
            for result in pool.map(self._land_all, chunks):
                del result
        self._timed("landing_pages", began)

    def _land_all(self, purchases: list[Purchase]) -> None:
        browser = CustomerBrowser(self.ca_bundle, secrets_seen=self.tokens_seen)
        try:
            for purchase in purchases:
                self._land(browser, purchase)
        finally:
            browser.close()

    def _land(self, browser: CustomerBrowser, purchase: Purchase) -> None:
        # 2048-bit keys: the ARM emulator generates every customer key, and bigger ones only cost its CPU here.
        choices = {**deployment_choices(self.state), "resource_group": purchase.resource_group, "key_size": "2048"}
        last_problem = "no attempt"
        for attempt in range(LANDING_ATTEMPTS):
            if attempt:
                with self._lock:
                    self.figures.landing_retries += 1
            if self._recorded(purchase.subscription_id):
                return  # an earlier attempt's confirmation committed though its answer was lost
            try:
                page = browser.open_landing(purchase.landing_page_url)
                if page.status_code != 200:
                    last_problem = f"landing page HTTP {page.status_code}"
                    continue
                progress = browser.confirm(page, choices)
                if progress.status_code == 200 or self._recorded(purchase.subscription_id):
                    return
                last_problem = f"confirmation HTTP {progress.status_code}"
            except (httpx.TransportError, RuntimeError) as error:
                # An API process killed mid-request, or a page cut short: the customer reloads.
                last_problem = f"{type(error).__name__}: {error}"
        if not self._recorded(purchase.subscription_id):
            raise ScenarioError(f"landing page of {purchase.subscription_id} did not confirm: {last_problem}")

    def _recorded(self, subscription_id: str) -> bool:
        with self.database.session() as session:
            return session.get(MarketplaceSubscription, subscription_id) is not None

    def wait_until_subscribed(self, timeout_seconds: float) -> None:
        """Every purchase provisioned and activated: Subscribed at Marketplace."""
        began = time.monotonic()
        ids = {purchase.subscription_id for purchase in self.purchases}

        def all_subscribed() -> bool:
            statuses = {
                item["id"]: item["saasSubscriptionStatus"]
                for item in self.marketplace_state()["subscriptions"]
                if item["id"] in ids
            }
            return all(status == "Subscribed" for status in statuses.values()) and len(statuses) == len(ids)

        wait_for(all_subscribed, timeout_seconds=timeout_seconds, what="every purchase to be Subscribed", interval=0.5)
        self._timed("provisioning", began)

    # The stream of customer actions ---------------------------------------------------------------------------

    def run_action_stream(self, events: int, timeout_seconds: float, max_in_flight: int) -> None:
        """`events` seeded customer actions, legal for each subscription's state, one at a time per subscription."""
        began = time.monotonic()
        deadline = began + timeout_seconds
        sent = 0
        while sent < events:
            if time.monotonic() > deadline:
                raise ScenarioError(
                    f"only {sent} of {events} customer actions were taken within {timeout_seconds:.0f} s"
                )
            state = self.marketplace_state()
            remote = {item["id"]: item for item in state["subscriptions"]}
            busy = {
                item["subscriptionId"] for item in state["operations"] if item["status"] in ("InProgress", "NotStarted")
            }
            actionable = [
                purchase
                for purchase in self.purchases
                if remote[purchase.subscription_id]["saasSubscriptionStatus"] in ACTIONS_BY_STATUS
            ]
            if not actionable:
                self.say(f"every subscription is unsubscribed after {sent} action(s); the stream ends early")
                break
            idle = [
                purchase for purchase in actionable if purchase.subscription_id not in busy and self._settled(purchase)
            ]
            in_flight = len(actionable) - len(idle)
            room = max(0, max_in_flight - in_flight)
            for purchase in self.random.sample(idle, min(room, len(idle), events - sent)):
                if self._act(purchase, remote[purchase.subscription_id]):
                    sent += 1
            time.sleep(0.2)
        self._timed("action_stream", began)

    def _settled(self, purchase: Purchase) -> bool:
        """The customer waits for the last action to be processed and the cluster to catch up, as in the portal."""
        with self.database.session() as session:
            if purchase.last_operation_id is not None:
                operation = session.get(MarketplaceOperation, purchase.last_operation_id)
                if operation is None or operation.state not in SETTLED_OPERATION_STATES:
                    return False
            cluster = session.exec(select(Cluster).where(Cluster.subscription_id == purchase.subscription_id)).first()
        return cluster is None or cluster.observed_generation >= cluster.desired_generation

    def _act(self, purchase: Purchase, remote: dict[str, Any]) -> bool:
        status = remote["saasSubscriptionStatus"]
        names = [name for name, _ in ACTIONS_BY_STATUS[status]]
        weights = [weight for _, weight in ACTIONS_BY_STATUS[status]]
        action = self.random.choices(names, weights)[0]
        body: dict[str, Any] | None = None
        if action == "change-plan":
            quantity = int(remote.get("quantity") or 1)
            plans = [
                plan
                for plan, (low, high) in self.plan_bounds.items()
                if plan != remote["planId"]
                and low <= quantity <= high
                and (plan != "enterprise-private" or purchase.private_offer)
            ]
            if not plans:
                action, body = "renew", None
            else:
                body = {"plan_id": self.random.choice(plans)}
        elif action == "change-quantity":
            body = {"quantity": self._next_quantity(remote["planId"], int(remote.get("quantity") or 1))}
        response = self.marketplace.post(f"/subscriptions/{purchase.subscription_id}/{action}", json=body)
        if response.status_code in (400, 404, 409):
            self.figures.actions_refused_by_marketplace += 1
            return False
        response.raise_for_status()
        purchase.last_operation_id = response.json()["id"]
        purchase.actions.append(action)
        self.figures.actions_sent[action] = self.figures.actions_sent.get(action, 0) + 1
        return True

    def _next_quantity(self, plan_id: str, current: int) -> int:
        """Mostly up (a downgrade below the data stored is refused, and those are common enough already)."""
        low, high = self.plan_bounds[plan_id]
        up = list(range(current + 1, min(high, current + 2) + 1))
        down = list(range(max(low, current - 2), current))
        if up and (not down or self.random.random() < UPSCALE_SHARE):
            return self.random.choice(up)
        return self.random.choice(down)

    # Convergence --------------------------------------------------------------------------------------------

    def wait_until_converged(self, timeout_seconds: float) -> None:
        """No operation waiting at Marketplace or with us, and every cluster at its desired generation and rest."""
        began = time.monotonic()
        resting = {ClusterStatus.READY, ClusterStatus.SUSPENDED, ClusterStatus.DELETED}

        def converged() -> bool:
            state = self.marketplace_state()
            if any(item["status"] in ("InProgress", "NotStarted") for item in state["operations"]):
                return False
            with self.database.session() as session:
                operations = session.exec(select(MarketplaceOperation.state)).all()
                clusters = session.exec(select(Cluster)).all()
            if any(item not in SETTLED_OPERATION_STATES for item in operations):
                return False
            return all(
                cluster.observed_generation == cluster.desired_generation and cluster.status in resting
                for cluster in clusters
            )

        wait_for(converged, timeout_seconds=timeout_seconds, what="operations and clusters to converge", interval=0.5)
        self._timed("convergence", began)

    # Consumers connecting to clusters --------------------------------------------------------------------------

    def connect_consumers(self, timeout_seconds: float) -> None:
        """Each kind of consumer connects to a ready cluster through "connect a service", plus one spoof per
        cluster (another subscription copying a customer VNet's request message); waits until every expected
        connection is matched. The invariant then holds that nothing else was approved automatically."""
        began = time.monotonic()
        with self.database.session() as session:
            clusters = session.exec(
                select(Cluster)
                .where(
                    Cluster.status == ClusterStatus.READY,
                    col(Cluster.pls_resource_id).is_not(None),
                    col(Cluster.desired_deleted).is_(False),
                )
                .order_by(col(Cluster.name))
            ).all()
        targets = [(cluster.id, cluster.azure_subscription_id, cluster.pls_resource_id) for cluster in clusters[:2]]
        if not targets:
            return
        headers = {"Authorization": f"Bearer {self._customer_admin_token()}"}
        arm = httpx.Client(base_url=self.state["arm"]["control_url"], verify=self.ca_bundle, timeout=30)
        with httpx.Client(base_url=self.api_base_url, timeout=30) as api, arm:
            for index, consumer in enumerate(CONNECTABLE):
                cluster_id, subscription_id, pls_id = targets[index % len(targets)]
                resource_id = consumer_resource_id(consumer, subscription_id, f"{index}-{cluster_id[:8]}")
                declared = api.post(
                    f"/api/clusters/{cluster_id}/expected-connections",
                    json={"consumer": consumer, "resource_id": resource_id},
                    headers=headers,
                )
                if declared.status_code != 201:
                    raise ScenarioError(
                        f"connect a service ({consumer}) answered {declared.status_code}: {declared.text}"
                    )
                answer = declared.json()
                arm.post("/private-endpoints", json=endpoint_request(consumer, resource_id, answer)).raise_for_status()
                self.figures.consumers_connected[consumer] = self.figures.consumers_connected.get(consumer, 0) + 1
                if consumer == "customer-vnet":
                    spoof = {
                        "target": pls_id,
                        "consumer_subscription_id": str(uuid.uuid4()),
                        "name": resource_id.rsplit("/", 1)[-1],
                        "request_message": answer["expectation"]["expected_request_message"],
                    }
                    arm.post("/private-endpoints", json=spoof).raise_for_status()
                    self.figures.spoofed_connections += 1

        def all_matched() -> bool:
            with self.database.session() as session:
                statuses = session.exec(select(ExpectedConnection.status)).all()
            return bool(statuses) and all(status != ExpectationStatus.WAITING.value for status in statuses)

        wait_for(all_matched, timeout_seconds=timeout_seconds, what="every expected connection to be matched")
        self._timed("consumers", began)

    def _customer_admin_token(self) -> str:
        entra = self.state["entra"]
        app_id = entra["control_plane_app_id"]
        response = httpx.post(
            f"{entra['control_url']}/tokens",
            verify=self.ca_bundle,
            timeout=10,
            json={
                "tenant_id": CONTOSO_TENANT_ID,
                "audience": app_id,
                "client_id": app_id,
                "extra_claims": {
                    "idtyp": "user",
                    "scp": "user_impersonation",
                    "roles": ["Customer.Admin"],
                    "oid": str(uuid.uuid4()),
                    "name": "Scenario customer admin",
                },
            },
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        self.tokens_seen.append(token)
        return token

    # Billing and reconciliation ------------------------------------------------------------------------------

    def advance_clocks(self, ahead: timedelta) -> None:
        """Move the façade metrics and Marketplace clocks `ahead` of real time, and the billing passes with them.

        Usage is billable only from activation, minutes before in a scenario run: moving ahead lets the
        hours since then close. Called once nothing waits on Marketplace's clock (operations all reported).
        """
        for component in ("facade", "marketplace"):
            with httpx.Client(base_url=self.state[component]["control_url"], verify=self.ca_bundle, timeout=30) as c:
                c.put("/clock", json={"offset_seconds": ahead.total_seconds()}).raise_for_status()
        self.ahead = ahead

    def billing_now(self) -> datetime:
        """The billing passes' clock: real time plus what the emulators' clocks were advanced by."""
        return utc_now() + self.ahead

    def meter_hours(self, hours: float) -> dict[str, Any]:
        """Collect `hours` of usage from the façade metrics emulator, close the hours, submit and settle."""
        began = time.monotonic()
        lookback = hours + self.ahead.total_seconds() / 3600.0
        settings = self.settings.model_copy(update={"billing_collection_lookback_hours": lookback})
        now = self.billing_now()
        collected = run_collection(settings, self.database, now=now)
        closed = run_close(settings, self.database, now=now)
        self.closed_through = closed.cutoff
        submitted = run_submission(settings, self.database, now=now)
        figures = {
            "clusters_read": collected.clusters,
            "samples_stored": collected.stored,
            "entries_created": closed.entries_created,
            "submitted": dict(submitted.counts),
        }
        self.figures.billing_passes.append(figures)
        self._timed(f"billing_pass_{len(self.figures.billing_passes)}", began)
        return figures

    def settle_ledger(self, timeout_seconds: float) -> None:
        """Submit and settle until no entry is pending, submitted or unknown (answers lost to faults included)."""
        began = time.monotonic()

        def settled() -> bool:
            run_submission(self.settings, self.database, now=self.billing_now())
            run_settlement(self.settings, self.database, now=self.billing_now())
            with self.database.session() as session:
                statuses = session.exec(select(UsageLedgerEntry.status)).all()
            return not any(status in UNSETTLED_LEDGER for status in statuses)

        wait_for(settled, timeout_seconds=timeout_seconds, what="every ledger entry to be settled", interval=1.0)
        self._timed("ledger_settlement", began)

    def reconcile_usage(self) -> None:
        """Reconcile the ledger with Marketplace's usage retrieval over the metered window."""
        now = self.billing_now()
        report = run_reconciliation(
            self.settings,
            self.database,
            start=now - timedelta(days=2),
            end=now + timedelta(hours=1),
            requested_by="scenario",
        )
        self.figures.usage_reconciliation = {"report_id": report.id, "differences": report.difference_count}

    def reconcile_marketplace(self, timeout_seconds: float) -> None:
        """Force a Marketplace reconciliation through the publisher API as an operator, and wait for its report."""
        token = self._operator_token()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=self.api_base_url, headers=headers, timeout=30) as api:
            started = api.post("/api/publisher/reconciliations")
            started.raise_for_status()
            report_id = started.json()["id"]

            def finished() -> dict[str, Any] | None:
                try:
                    response = api.get(f"/api/publisher/reconciliations/{report_id}")
                except httpx.TransportError:
                    return None
                report: dict[str, Any] = response.json() if response.status_code == 200 else {}
                return report if report.get("status") in ("completed", "failed") else None

            report = wait_for(finished, timeout_seconds=timeout_seconds, what=f"reconciliation report {report_id}")
        self.figures.marketplace_reconciliation = {
            "report_id": report_id,
            "status": report["status"],
            "subscriptions_seen": report.get("subscriptions_seen"),
            "operations_seen": report.get("operations_seen"),
            "changes": len(report.get("changes") or []),
            "error": report.get("error"),
        }

    def _operator_token(self) -> str:
        entra = self.state["entra"]
        app_id = entra["control_plane_app_id"]
        response = httpx.post(
            f"{entra['control_url']}/tokens",
            verify=self.ca_bundle,
            timeout=10,
            json={
                "tenant_id": entra["publisher_tenant_id"],
                "audience": app_id,
                "client_id": app_id,
                "extra_claims": {
                    "idtyp": "user",
                    "scp": "user_impersonation",
                    "roles": ["Operator"],
                    "oid": str(uuid.uuid4()),
                    "name": "Scenario operator",
                },
            },
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        self.tokens_seen.append(token)
        return token

"""Benchmark: webhook-to-verdict latency of ChangeQuantity operations while a provisioning backlog converges.

Marketplace accepts a ChangePlan/ChangeQuantity on its own 10 s after the webhook unless the publisher refuses
it by then, so the verdict (a Failure PATCH, or the Success PATCH we send at once) must reach Marketplace
within 10 s however busy the workers are. The bench:

1. requests `--clusters` clusters (the provisioning backlog; ARM deployments take `--latency` s each) and waits
   until their deployments are under way;
2. plays Marketplace for `--operations` subscriptions (each Subscribed at Marketplace, with a ready cluster): it
   starts a customer ChangeQuantity in the Marketplace emulator and sends its webhook, `--send-concurrency` at
   a time. One in `--refuse-every` is a downgrade below the capacity the cluster stores (refused), the others
   upgrades (accepted);
3. measures each operation from the moment it was started at Marketplace (its 10 s clock starts then) to its
   verdict: a refusal answered in the webhook (400) or PATCHed Failure by the worker, an acceptance answered 200
   (Marketplace accepts on its own unless refused); then the optional Success PATCH the worker sends, and reads
   Marketplace's end state back: a refusal that arrived late shows as Succeeded (auto-accepted).

Processes: the emulators in their own process, one API, the relay, `--provisioning-workers` workers on the
default queue and one verdict worker on the marketplace-verdicts queue (`--shared-workers`: every worker takes
both queues, no dedicated verdict worker). Prints figures; asserts nothing. Defaults are small; the issue's size
is `--operations 10000 --clusters 1000 --latency 5`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import col, func, select

import core.models  # noqa: F401  # registers every table
from bench.metering_submission import wait_for_state
from bench.provisioning import _cpu_seconds, _reference_loop_microseconds
from bench.termination import exit_cleanly_on_sigterm
from core import migrator
from core.audit.models import AuditEvent
from core.catalog.loader import load_catalog, sync_catalog
from core.clock import utc_now
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.provisioning_models import ArmDeployment
from core.clusters.schemas import ClusterPlacement, KeyPolicy, PrivateLinkPolicy
from core.clusters.service import cluster_name_for, request_cluster
from core.db import Database, make_engine
from core.marketplace.fulfillment_client import FulfillmentClient
from core.messaging import DEFAULT_QUEUE, VERDICT_QUEUE, TaskNames
from core.outbox.models import OutboxMessage
from core.settings import DEFAULT_CATALOG_PATH
from core.subscriptions.models import MarketplaceSubscription, SubscriptionStatus
from core.tenants.service import get_or_create_tenant
from core.usage.models import UsageSample
from harness.emulator_environment import settings_for_emulators
from harness.processes import ProcessGroup, free_port, wait_until_listening
from harness.scenario.private_redis import PrivateRedis, redis_server_available

MARKETPLACE_WINDOW_SECONDS = 10.0
VERDICT_ACTIONS = ("marketplace_operation.reported", "marketplace_operation.failed")
PURCHASED_QUANTITY = 4  # standard x 4 holds 100 TiB
STORED_TIB = 80.0  # what every bench cluster stores: x 2 (50 TiB) is refused, x 8 accepted
CUSTOMER_EMAIL = "alice.admin@contoso.onmicrosoft.com"
RETRYABLE = frozenset({429, 500, 502, 503, 504})


@dataclass
class Sent:
    """One operation as the sender saw it."""

    operation_id: str
    subscription_id: str
    refused_expected: bool
    started_at: float  # wall clock, when Marketplace started the operation (its timeStamp: the 10 s start there)
    webhook_status: int = 0
    webhook_attempts: int = 0
    sent_at: float = 0.0  # wall clock, when the webhook was first sent
    answered_at: float = 0.0  # wall clock, when the last webhook answer arrived


@dataclass
class Burst:
    sent: list[Sent] = field(default_factory=list)
    seconds: float = 0.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def prepare_database(url: str | None, work: Path) -> tuple[str, Any]:
    """The database URL for the run (a schema of its own on PostgreSQL), and how to drop it."""
    if not url:
        return f"sqlite:///{work / 'controlplane.db'}", lambda: None
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return f"{url}?options=-csearch_path%3D{schema}", drop


def seed(
    database: Database, state: dict[str, Any], client: FulfillmentClient, control: httpx.Client, arguments: Any
) -> list[tuple[str, bool]]:
    """The backlog's cluster requests, and the subscriptions the burst changes: (subscription id, refusal expected)."""
    tenant_id = state["entra"]["tenants"]["contoso"]["id"]
    azure_subscription = next(item["id"] for item in state["arm"]["subscriptions"] if item["tenant_id"] == tenant_id)
    catalog = load_catalog(DEFAULT_CATALOG_PATH)
    offer_id = catalog.offers[0].id
    targets: list[tuple[str, bool]] = []
    for index in range(arguments.operations):
        purchase = control.post(
            "/purchases",
            json={
                "plan_id": "standard",
                "quantity": PURCHASED_QUANTITY,
                "beneficiary": {"tenant_id": tenant_id, "email": CUSTOMER_EMAIL, "object_id": str(uuid.uuid4())},
            },
        )
        purchase.raise_for_status()
        subscription_id = purchase.json()["subscription_id"]
        client.activate(subscription_id, "standard", PURCHASED_QUANTITY)
        targets.append((subscription_id, index % arguments.refuse_every == 0))
    with database.session() as session:
        sync_catalog(session, catalog)
        tenant = get_or_create_tenant(session, tenant_id)
        now = utc_now()
        for index, (subscription_id, _) in enumerate(targets):
            session.add(
                MarketplaceSubscription(
                    id=subscription_id,
                    tenant_id=tenant.id,
                    offer_id=offer_id,
                    plan_id="standard",
                    quantity=PURCHASED_QUANTITY,
                    status=SubscriptionStatus.SUBSCRIBED,
                    beneficiary_tenant_id=tenant_id,
                )
            )
            session.flush()
            # Ready, as if provisioned earlier: an accepted change makes the controller converge it again.
            cluster = Cluster(
                tenant_id=tenant.id,
                subscription_id=subscription_id,
                name=cluster_name_for(subscription_id),
                region="westeurope",
                azure_subscription_id=azure_subscription,
                resource_group=f"rg-verdict-{index:05d}",
                desired_plan_id="standard",
                desired_quantity=PURCHASED_QUANTITY,
                status=ClusterStatus.READY,
                observed_generation=1,
                observed_plan_id="standard",
                observed_quantity=PURCHASED_QUANTITY,
            )
            session.add(cluster)
            session.flush()
            sampled_at = now - timedelta(minutes=5)
            session.add(
                UsageSample(
                    cluster_id=cluster.id,
                    dimension_id="capacity_tib",
                    sampled_at=sampled_at,
                    hour_start=sampled_at.replace(minute=0, second=0, microsecond=0),
                    value=STORED_TIB,
                )
            )
        for index in range(arguments.clusters):
            subscription = MarketplaceSubscription(
                id=str(uuid.uuid4()),
                tenant_id=tenant.id,
                offer_id=offer_id,
                plan_id="standard",
                quantity=1,
                status=SubscriptionStatus.SUBSCRIBED,
                beneficiary_tenant_id=tenant_id,
            )
            session.add(subscription)
            session.flush()
            request_cluster(
                session,
                tenant_id=tenant.id,
                subscription_id=subscription.id,
                plan_id="standard",
                quantity=1,
                placement=ClusterPlacement(
                    azure_subscription_id=azure_subscription,
                    resource_group=f"rg-backlog-{index:05d}",
                    region="westeurope",
                ),
                private_link=PrivateLinkPolicy(),
                key_policy=KeyPolicy(),
                actor="bench",
            )
    return targets


async def send_burst(
    control_url: str, webhook_url: str, token: str, ca_bundle: str, targets: list[tuple[str, bool]], concurrency: int
) -> Burst:
    """Start each ChangeQuantity at Marketplace and send its webhook as Marketplace does (retrying 429/5xx)."""
    burst = Burst()
    pending = iter(targets)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def one(client: httpx.AsyncClient, subscription_id: str, refuse: bool) -> None:
        quantity = 2 if refuse else 2 * PURCHASED_QUANTITY
        created = await client.post(
            f"{control_url}/subscriptions/{subscription_id}/change-quantity", json={"quantity": quantity}
        )
        created.raise_for_status()
        operation = created.json()
        started_at = datetime.fromisoformat(operation["timeStamp"].replace("Z", "+00:00")).timestamp()
        sent = Sent(operation["id"], subscription_id, refuse, started_at, sent_at=time.time())
        burst.sent.append(sent)
        body = json.dumps({**operation, "subscription": {"id": subscription_id}, "purchaseToken": None})
        for attempt in range(1, 31):
            sent.webhook_attempts = attempt
            try:
                response = await client.post(webhook_url, content=body, headers=headers)
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
                continue
            sent.webhook_status = response.status_code
            sent.answered_at = time.time()
            if response.status_code not in RETRYABLE:
                # What Marketplace does with the answer to a webhook it sent: a 4xx in time rejects the operation.
                await client.post(
                    f"{control_url}/operations/{operation['id']}/webhook-answer",
                    json={"status_code": response.status_code},
                )
                return
            await asyncio.sleep(float(response.headers.get("Retry-After", "0.5")))

    async def lane(client: httpx.AsyncClient) -> None:
        for subscription_id, refuse in pending:
            await one(client, subscription_id, refuse)

    started = time.monotonic()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(verify=ca_bundle, timeout=30, limits=limits) as client:
        await asyncio.gather(*(lane(client) for _ in range(concurrency)))
    burst.seconds = time.monotonic() - started
    return burst


def stored_times(database: Database, operation_ids: set[str]) -> dict[str, float]:
    """When the API stored each webhook (its 200 follows that commit)."""
    with database.session() as session:
        events = session.exec(
            select(AuditEvent.subject_id, AuditEvent.occurred_at).where(
                AuditEvent.action == "marketplace.webhook_received"
            )
        ).all()
    return {subject: occurred_at.timestamp() for subject, occurred_at in events if subject in operation_ids}


def outbox_times(database: Database, operation_ids: set[str]) -> dict[str, tuple[float, float]]:
    """When the relay published each webhook's outbox row, and when a worker took it (it marks the row first)."""
    with database.session() as session:
        rows = session.exec(
            select(OutboxMessage.arguments, OutboxMessage.dispatched_at, OutboxMessage.completed_at).where(
                OutboxMessage.task_name == TaskNames.MARKETPLACE_PROCESS_OPERATION
            )
        ).all()
    return {
        arguments["operation_id"]: (dispatched.timestamp(), taken.timestamp())
        for arguments, dispatched, taken in rows
        if arguments.get("operation_id") in operation_ids and dispatched is not None and taken is not None
    }


def verdict_times(database: Database, operation_ids: set[str]) -> dict[str, tuple[float, str | None]]:
    """When our worker recorded each operation's PATCH answer, and the 409 note when Marketplace had decided first."""
    with database.session() as session:
        events = session.exec(
            select(AuditEvent.subject_id, AuditEvent.occurred_at, AuditEvent.details).where(
                col(AuditEvent.action).in_(VERDICT_ACTIONS), col(AuditEvent.details)["reported"].is_not(None)
            )
        ).all()
    return {
        subject: (occurred_at.timestamp(), details.get("note"))
        for subject, occurred_at, details in events
        if subject in operation_ids
    }


def backlog_figures(database: Database, clusters: int) -> str:
    with database.session() as session:
        ready = session.exec(
            select(func.count())
            .select_from(Cluster)
            .where(Cluster.status == ClusterStatus.READY, col(Cluster.resource_group).startswith("rg-backlog-"))
        ).one()
        due = session.exec(
            select(func.count())
            .select_from(OutboxMessage)
            .where(col(OutboxMessage.completed_at).is_(None), OutboxMessage.available_at <= utc_now())
        ).one()
        deployments = session.exec(select(func.count()).select_from(ArmDeployment)).one()
    return f"{ready}/{clusters} backlog clusters ready, {deployments} ARM deployments recorded, {due} outbox rows due"


def main() -> None:
    """Run the benchmark and print its figures."""
    exit_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--operations", type=int, default=200, help="ChangeQuantity webhooks in the burst")
    parser.add_argument("--clusters", type=int, default=100, help="clusters provisioning while the burst arrives")
    parser.add_argument("--latency", type=float, default=5.0, help="seconds per ARM deployment")
    parser.add_argument("--refuse-every", type=int, default=4, help="one operation in this many is refused")
    parser.add_argument("--send-concurrency", type=int, default=50)
    parser.add_argument("--provisioning-workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="threads per provisioning worker")
    parser.add_argument("--verdict-concurrency", type=int, default=4, help="threads of the verdict worker")
    parser.add_argument("--shared-workers", action="store_true", help="no dedicated verdict worker")
    parser.add_argument("--database", default="", help="PostgreSQL URL (a schema per run); empty: SQLite")
    parser.add_argument("--broker", default="", help="broker URL; empty: a private redis-server, else SQLite")
    parser.add_argument("--timeout", type=float, default=600)
    arguments = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-verdict-"))
    database_url, drop_database = prepare_database(arguments.database, work)
    migrator.upgrade(database_url)
    database = Database(database_url)
    redis = None
    broker_url = arguments.broker
    if not broker_url and redis_server_available():
        redis = PrivateRedis(work / "redis")
        redis.start()
        broker_url = redis.url
    broker_url = broker_url or f"sqla+sqlite:///{work / 'broker.db'}"
    options_path = work / "emulator-options.json"
    options_path.write_text(
        json.dumps(
            {
                "arm_deployment_seconds": arguments.latency,
                "arm_rate_limits": {"write_capacity": 100_000, "read_capacity": 100_000},
            }
        )
    )
    state_dir = work / "emulators"
    emulators = subprocess.Popen(
        [sys.executable, "-m", "harness", "emulators", "--state-dir", str(state_dir), "--options", str(options_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    group: ProcessGroup | None = None
    try:
        state = wait_for_state(state_dir / "emulators.json", emulators)
        port = free_port()
        settings = settings_for_emulators(
            state,
            data_dir=work,
            database_url=database_url,
            broker_url=broker_url,
            api_port=port,
            provisioning_poll_interval_seconds=arguments.latency,
            outbox_poll_interval_seconds=0.1,
            log_level="WARNING",
        )
        control = httpx.Client(base_url=state["marketplace"]["control_url"], verify=state["ca_bundle"], timeout=30)
        client = FulfillmentClient.from_settings(settings)
        targets = seed(database, state, client, control, arguments)
        token = control.post(f"{state['entra']['control_url']}/tokens/marketplace-webhook").json()["access_token"]
        group = ProcessGroup(work / "logs", {**os.environ, **settings.as_environment()})
        group.add("api", "api")
        group.add("relay", "relay")
        worker_queues = f"{VERDICT_QUEUE},{DEFAULT_QUEUE}" if arguments.shared_workers else DEFAULT_QUEUE
        workers = [
            group.add(
                f"worker-{index}", "worker", f"--concurrency={arguments.concurrency}", f"--queues={worker_queues}"
            )
            for index in range(arguments.provisioning_workers)
        ]
        if not arguments.shared_workers:
            workers.append(
                group.add(
                    "verdict-worker",
                    "worker",
                    f"--concurrency={arguments.verdict_concurrency}",
                    f"--queues={VERDICT_QUEUE}",
                )
            )
        reference = _reference_loop_microseconds()
        group.start_all()
        base_url = f"http://127.0.0.1:{port}"
        wait_until_listening(base_url, timeout_seconds=90, group=group)
        # The backlog is under way: ARM deployments of the backlog clusters are in flight.
        deadline = time.monotonic() + arguments.timeout
        while time.monotonic() < deadline:
            with database.session() as session:
                if session.exec(select(func.count()).select_from(ArmDeployment)).one() >= min(arguments.clusters, 50):
                    break
            time.sleep(0.5)
        load_before = backlog_figures(database, arguments.clusters)
        load_average = os.getloadavg()[0]
        burst = asyncio.run(
            send_burst(
                state["marketplace"]["control_url"],
                f"{base_url}/marketplace/webhook",
                token,
                state["ca_bundle"],
                targets,
                arguments.send_concurrency,
            )
        )
        load_after_burst = backlog_figures(database, arguments.clusters)
        operation_ids = {sent.operation_id for sent in burst.sent}
        times: dict[str, tuple[float, str | None]] = {}
        while time.monotonic() < deadline:
            times = verdict_times(database, operation_ids)
            if len(times) == len(operation_ids):
                break
            time.sleep(0.5)
        load_at_end = backlog_figures(database, arguments.clusters)
        stored = stored_times(database, operation_ids)
        outbox = outbox_times(database, operation_ids)
        worker_cpu = sum(_cpu_seconds(item.process.pid) for item in workers if item.process)
        marketplace = {item["id"]: item for item in control.get("/state").json()["operations"]}
        control.close()
        client.close()
    finally:
        if group is not None:
            group.stop_all()
        emulators.terminate()
        emulators.wait(timeout=30)
        database.dispose()
        if redis is not None:
            redis.stop()
        drop_database()

    latencies = []
    for sent in burst.sent:
        if sent.webhook_status in (200, 400):
            latencies.append(sent.answered_at - sent.started_at)
        elif sent.operation_id in times:
            latencies.append(times[sent.operation_id][0] - sent.started_at)
    patches = [
        times[sent.operation_id][0] - sent.started_at
        for sent in burst.sent
        if sent.operation_id in times and sent.webhook_status != 400
    ]
    late_success = sum(1 for value in times.values() if value[1] is not None)
    refusals = [sent for sent in burst.sent if sent.refused_expected]
    honoured = sum(1 for sent in refusals if marketplace.get(sent.operation_id, {}).get("status") == "Failed")
    accepted = [sent for sent in burst.sent if not sent.refused_expected]
    accepted_ok = sum(1 for sent in accepted if marketplace.get(sent.operation_id, {}).get("status") == "Succeeded")
    within = sum(1 for value in latencies if value <= MARKETPLACE_WINDOW_SECONDS)
    to_store = [stored[sent.operation_id] - sent.started_at for sent in burst.sent if sent.operation_id in stored]
    to_verdict = [times[operation_id][0] - stored[operation_id] for operation_id in times if operation_id in stored]
    print(
        f"load                  : {len(burst.sent)} ChangeQuantity webhooks sent in {burst.seconds:.1f} s "
        f"({arguments.send_concurrency} in flight) while {arguments.clusters} clusters provision "
        f"({arguments.latency:g} s per ARM deployment)"
    )
    print(
        f"processes             : 1 api, 1 relay, {arguments.provisioning_workers} workers x {arguments.concurrency} "
        + (
            "threads on both queues (no dedicated verdict worker)"
            if arguments.shared_workers
            else f"threads on {DEFAULT_QUEUE}, 1 verdict worker x {arguments.verdict_concurrency} on {VERDICT_QUEUE}"
        )
    )
    print(
        f"backend               : {'PostgreSQL' if arguments.database else 'SQLite'}, broker {broker_url.split(':')[0]}"
    )
    print(f"reports recorded      : {len(times)}/{len(burst.sent)} (our worker's PATCH or its record of the 4xx)")
    if latencies:
        print(
            f"webhook-to-verdict    : p50 {statistics.median(latencies):.2f} s, "
            f"p99 {percentile(latencies, 0.99):.2f} s, max {max(latencies):.2f} s "
            "(operation started at Marketplace -> refused 400 / accepted 200 in the webhook's answer)"
        )
    if patches:
        print(
            f"Success PATCH         : p50 {statistics.median(patches):.2f} s, p99 {percentile(patches, 0.99):.2f} s, "
            f"max {max(patches):.2f} s after the start (optional; 409 once Marketplace accepted on its own)"
        )
    answers = [sent.answered_at - sent.sent_at for sent in burst.sent if sent.answered_at]
    if answers:
        print(
            f"  webhook answer      : p50 {statistics.median(answers):.2f} s, p99 {percentile(answers, 0.99):.2f} s "
            "(sent -> answered by our API, retries included)"
        )
    if to_store and to_verdict:
        print(
            f"  start -> stored     : p50 {statistics.median(to_store):.2f} s, p99 {percentile(to_store, 0.99):.2f} s "
            "(creating the operation at Marketplace, sending the webhook, our API storing it)"
        )
        print(
            f"  stored -> reported  : p50 {statistics.median(to_verdict):.2f} s, "
            f"p99 {percentile(to_verdict, 0.99):.2f} s (relay, broker, verdict worker: GET, decide, PATCH)"
        )
    relayed = [outbox[key][0] - stored[key] for key in outbox if key in stored]
    queued = [outbox[key][1] - outbox[key][0] for key in outbox]
    deciding = [times[key][0] - outbox[key][1] for key in outbox if key in times]
    for label, values in (
        ("  stored -> published", relayed),
        ("  published -> taken ", queued),
        ("  taken -> reported  ", deciding),
    ):
        if values:
            print(f"{label}  : p50 {statistics.median(values):.2f} s, p99 {percentile(values, 0.99):.2f} s")
    print(f"verdicts within 10 s  : {within}/{len(latencies)}")
    print(f"refusals honoured     : {honoured}/{len(refusals)} Failed at Marketplace (late ones are auto-accepted)")
    print(f"acceptances           : {accepted_ok}/{len(accepted)} Succeeded; {late_success} PATCHes answered 409")
    webhook_statuses: dict[int, int] = {}
    for sent in burst.sent:
        webhook_statuses[sent.webhook_status] = webhook_statuses.get(sent.webhook_status, 0) + 1
    print(f"webhook answers       : {webhook_statuses} (last answer per webhook)")
    print(f"backlog at burst start: {load_before}")
    print(f"backlog after burst   : {load_after_burst}")
    print(f"backlog at the end    : {load_at_end}")
    print(
        f"worker CPU seconds    : {worker_cpu:.1f}; load average at burst start {load_average:.1f} "
        f"({os.cpu_count()} CPUs)"
    )
    print(f"machine speed         : sum(range(10000)) took {reference:.0f} us (lower is faster)")


if __name__ == "__main__":
    main()

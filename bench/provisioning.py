"""Benchmark: N subscriptions purchased at once, their clusters converged by 2 worker processes against ARM.

Prints the time until all are ready next to the critical path (steps x ARM deployment latency), worker memory
at the start and end, and duplicate deployments (more than one ARM deployment per cluster, step and generation).
The emulators run in their own process, so the figures measure our workers rather than this load generator.
Defaults are small; the issue's size is `--clusters 1000 --latency 5`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import timeit
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import func, select

import core.models  # noqa: F401  # registers every table
from bench.metering_submission import wait_for_state
from bench.termination import exit_cleanly_on_sigterm
from core import migrator
from core.arm_templates.steps import FACADE_CLUSTER_STEPS
from core.catalog.loader import load_catalog, sync_catalog
from core.clusters.models import Cluster, ClusterStatus
from core.clusters.provisioning_models import ArmDeployment
from core.clusters.schemas import ClusterPlacement, KeyPolicy, PrivateLinkPolicy
from core.clusters.service import request_cluster
from core.db import Database, make_engine
from core.messaging import TaskNames
from core.outbox.models import OutboxMessage
from core.settings import DEFAULT_CATALOG_PATH
from core.subscriptions.models import MarketplaceSubscription, SubscriptionStatus
from core.tenants.service import get_or_create_tenant
from harness.emulator_environment import settings_for_emulators
from harness.processes import ProcessGroup


def _rss_megabytes(pid: int) -> float:
    total = 0.0
    for candidate in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{candidate}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except FileNotFoundError:
            continue
    return total


def _stat_cpu_seconds(stat: str, *, waited_children: bool = False) -> float:
    """utime + stime of a /proc/<pid>/stat line, plus cutime + cstime (its exited, waited-for children) if asked."""
    # Fields after the command name start at `state` (field 3): utime, stime, cutime, cstime are fields 14 to 17.
    fields = stat.rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11 : 15 if waited_children else 13]) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its live children, from /proc."""
    total = 0.0
    for candidate in [pid, *_children(pid)]:
        try:
            total += _stat_cpu_seconds(Path(f"/proc/{candidate}/stat").read_text())
        except FileNotFoundError:
            continue
    return total


def _server_cpu_seconds(command: str) -> float:
    """CPU time of a server's processes by command name (postgres, redis-server), exited children included.

    These servers are shared by the whole machine; read before and after a run, the difference is the run's
    share when nothing else uses them.
    """
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if text[text.index("(") + 1 : text.rindex(")")] == command:
            # Exited children count: PostgreSQL's backends end and are waited for by the postmaster.
            total += _stat_cpu_seconds(text, waited_children=True)
    return total


def _reference_loop_microseconds() -> float:
    """A fixed pure-Python loop, timed here: runs on different days or machines compare only at equal readings."""
    return min(timeit.repeat("sum(range(10000))", number=200, repeat=5)) / 200 * 1e6


def _children(pid: int) -> list[int]:
    try:
        return [int(item) for item in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def main() -> None:
    """Run the benchmark and print its figures."""
    exit_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per ARM deployment")
    parser.add_argument("--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--poll", type=float, default=None, help="controller check interval (default: the latency)")
    parser.add_argument("--concurrency", type=int, default=4, help="threads per worker process")
    parser.add_argument(
        "--delivery-batch-size", type=int, default=None, help="outbox rows per broker message (default: the setting's)"
    )
    arguments = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-provisioning-"))
    if arguments.broker.startswith("redis://"):
        import redis

        # Messages left by an earlier run name outbox rows of a schema that no longer exists.
        client = redis.Redis.from_url(arguments.broker)
        client.flushdb()
        client.close()
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(arguments.database)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    database_url = f"{arguments.database}?options=-csearch_path%3D{schema}"
    migrator.upgrade(database_url)
    database = Database(database_url)
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
    # ARM is another service: in this process it would share the load generator's GIL and skew the figures.
    emulators = subprocess.Popen(
        [sys.executable, "-m", "harness", "emulators", "--state-dir", str(state_dir), "--options", str(options_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        state = wait_for_state(state_dir / "emulators.json", emulators)
    except BaseException:
        emulators.terminate()
        raise
    settings = settings_for_emulators(
        state,
        data_dir=work,
        database_url=database_url,
        broker_url=arguments.broker,
        provisioning_poll_interval_seconds=arguments.poll or arguments.latency,
        outbox_poll_interval_seconds=0.1,
        log_level="WARNING",
        **(
            {"outbox_delivery_batch_size": arguments.delivery_batch_size}
            if arguments.delivery_batch_size is not None
            else {}
        ),
    )
    environment = {**os.environ, **settings.as_environment()}
    group = ProcessGroup(work / "logs", environment)
    relay = group.add("relay", "relay")
    workers = [group.add(f"worker-{index}", "worker", f"--concurrency={arguments.concurrency}") for index in range(2)]
    try:
        tenant_id = state["entra"]["tenants"]["contoso"]["id"]
        subscription_id = next(item["id"] for item in state["arm"]["subscriptions"] if item["tenant_id"] == tenant_id)
        catalog = load_catalog(DEFAULT_CATALOG_PATH)
        with database.session() as session:
            sync_catalog(session, catalog)
            tenant = get_or_create_tenant(session, tenant_id)
            # What a confirmed purchase records (the landing page's part is measured by the webhook benchmarks).
            for index in range(arguments.clusters):
                subscription = MarketplaceSubscription(
                    id=str(uuid.uuid4()),
                    tenant_id=tenant.id,
                    offer_id=catalog.offers[0].id,
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
                        azure_subscription_id=subscription_id,
                        resource_group=f"rg-bench-{index:05d}",
                        region="westeurope",
                    ),
                    private_link=PrivateLinkPolicy(),
                    key_policy=KeyPolicy(),
                    actor="bench",
                )
        reference_at_start = _reference_loop_microseconds()
        servers_at_start = {name: _server_cpu_seconds(name) for name in ("postgres", "redis-server")}
        load_at_start = os.getloadavg()[0]
        started = time.monotonic()
        group.start_all()
        ready = 0
        # Worker memory is read once the first cluster is ready (imports and connections are warm), then at the end.
        memory_start: list[float] = []
        first_ready_after = 0.0
        while time.monotonic() - started < arguments.timeout:
            with database.session() as session:
                ready = session.exec(
                    select(func.count()).select_from(Cluster).where(Cluster.status == ClusterStatus.READY)
                ).one()
            if ready and not memory_start:
                first_ready_after = time.monotonic() - started
                memory_start = [_rss_megabytes(item.process.pid) for item in workers if item.process]
            if ready == arguments.clusters:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        memory_end = [_rss_megabytes(item.process.pid) for item in workers if item.process]
        worker_cpu = sum(_cpu_seconds(item.process.pid) for item in workers if item.process)
        relay_cpu = _cpu_seconds(relay.process.pid) if relay.process else 0.0
        emulator_cpu = _cpu_seconds(emulators.pid)
        server_cpu = {name: _server_cpu_seconds(name) - before for name, before in servers_at_start.items()}
        load_at_end = os.getloadavg()[0]
        with database.session() as session:
            rows = session.exec(select(ArmDeployment.cluster_id, ArmDeployment.step, ArmDeployment.generation)).all()
            passes = session.exec(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.task_name == TaskNames.CLUSTER_RECONCILE)
            ).one()
        duplicates = len(rows) - len(set(rows))
    finally:
        group.stop_all()
        emulators.terminate()
        emulators.wait(timeout=30)
        database.dispose()
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    reference_at_end = _reference_loop_microseconds()
    critical_path = len(FACADE_CLUSTER_STEPS) * arguments.latency
    print(f"clusters ready        : {ready}/{arguments.clusters}")
    print(f"time until all ready  : {elapsed:.1f} s")
    print(f"first cluster ready   : {first_ready_after:.1f} s (polled every 0.5 s)")
    print(f"critical path         : {critical_path:.1f} s ({len(FACADE_CLUSTER_STEPS)} steps x {arguments.latency} s)")
    print(f"ratio                 : {elapsed / critical_path:.2f}x")
    print(
        f"worker memory (MB)    : first ready {[round(m) for m in memory_start]} end {[round(m) for m in memory_end]}"
    )
    print(
        f"CPU seconds           : workers {worker_cpu:.1f}, relay {relay_cpu:.1f}, "
        f"emulators {emulator_cpu:.1f} (their own process)"
    )
    print(
        f"server CPU seconds    : postgres {server_cpu['postgres']:.1f}, redis {server_cpu['redis-server']:.1f} "
        "(whole servers, read from /proc)"
    )
    per_cluster = max(ready, 1)
    print(
        f"CPU ms per ready cluster: workers {1000 * worker_cpu / per_cluster:.0f}, "
        f"relay {1000 * relay_cpu / per_cluster:.0f}, emulators {1000 * emulator_cpu / per_cluster:.0f}"
    )
    print(f"load average (1 min)  : {load_at_start:.1f} at start, {load_at_end:.1f} at end ({os.cpu_count()} CPUs)")
    print(
        f"machine speed         : sum(range(10000)) took {reference_at_start:.0f} us before the run, "
        f"{reference_at_end:.0f} us after it (lower is faster)"
    )
    print("(time includes starting the worker and relay processes)")
    print(f"deployments recorded  : {len(rows)}; duplicates per cluster/step/generation: {duplicates}")
    print(f"controller passes     : {passes / max(arguments.clusters, 1):.1f} per cluster (reconcile messages)")
    print(
        f"workers               : 2 processes x {arguments.concurrency} threads; "
        f"{settings.outbox_delivery_batch_size} outbox rows per broker message at most"
    )


if __name__ == "__main__":
    main()

"""Benchmark: Marketplace webhook ingest (token verified, stored once, audited, outbox row) against PostgreSQL.

Side by side with the stack's ceiling, a minimal FastAPI endpoint that only inserts one row, written two ways:
in a transaction through the standard engine (pool ping, BEGIN, INSERT, COMMIT: what a plain endpoint does),
and in autocommit through `Database.run_idempotent_write` (one round trip: how the webhook writes its one
statement). Every server runs the same way: `--processes` single-worker uvicorn processes (uvloop, httptools)
sharing one loopback port through SO_REUSEPORT (what `cli api --reuse-port` does).
The load generator runs in its own process with a lean keep-alive HTTP/1.1 client, so its cost stays off the
servers' interpreter. All servers start first; then closed loops (`--concurrency` clients for `--seconds`) give
the sustained rate, the servers taking turns for `--rounds` rounds so that a slow spell of the machine hits each
alike, and the ratio is taken per round. Last, an open loop at `--rate` requests/s per server, whose latencies
count from each request's scheduled send time (a stalled server shows up in p99 instead of slowing the load
down). About one request in ten replays an earlier operation id; afterwards the stored rows are counted to show
zero lost or duplicated effects.

Wall-clock rates depend on whatever else the machine runs, so each phase also prints the CPU time the server
processes and their PostgreSQL backends spent per request. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import core.models  # noqa: F401  # registers every table
from bench.entra_for_webhooks import api_environment, start_entra
from bench.termination import exit_cleanly_on_sigterm
from core import migrator
from core.catalog.loader import load_catalog, sync_catalog
from core.db import Database, make_engine
from core.settings import DEFAULT_CATALOG_PATH
from core.subscriptions.models import MarketplaceSubscription, SubscriptionStatus
from core.tenants.service import get_or_create_tenant
from emulators.suite import EmulatorSuite, EmulatorSuiteConfig
from harness.processes import free_port, wait_until_listening

MINIMAL_TABLE = "bench_minimal_rows"
REPLAY_EVERY = 10
REQUEST_TIMEOUT_SECONDS = 10.0


def build_minimal_app() -> FastAPI:
    """The ceiling: parse the JSON body and insert one row, nothing else (CP_BENCH_DATABASE_URL).

    CP_BENCH_CEILING_WRITE says how: `transaction` (the plain way, BEGIN, INSERT, COMMIT on the standard
    engine) or `autocommit` (the way the webhook writes its one statement, `Database.run_idempotent_write`).
    """
    database = Database(os.environ["CP_BENCH_DATABASE_URL"])
    autocommit = os.environ["CP_BENCH_CEILING_WRITE"] == "autocommit"
    insert_row = sa.text(f"INSERT INTO {MINIMAL_TABLE} (natural_id) VALUES (:id) ON CONFLICT DO NOTHING")  # noqa: S608
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/ingest")
    async def ingest(request: Request) -> JSONResponse:
        body = json.loads(await request.body())

        def insert() -> None:
            if autocommit:
                database.run_idempotent_write(lambda connection: connection.execute(insert_row, {"id": body["id"]}))
                return
            with database.engine.begin() as connection:
                connection.execute(insert_row, {"id": body["id"]})

        await asyncio.to_thread(insert)
        return JSONResponse({"status": "stored"})

    return app


@dataclass
class Phase:
    """Latencies, failures and CPU cost of one load phase."""

    name: str
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    server_cpu_seconds: float = 0.0
    database_cpu_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        latencies = sorted(self.latencies_ms)
        if not latencies:
            return f"{self.name}: no successful requests ({self.failures} failures)"
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        requests = len(latencies) + self.failures
        return (
            f"{self.name}: {self.rate:7.1f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  failures {self.failures}  "
            f"CPU/request: server {self.server_cpu_seconds / requests * 1000:5.2f} ms, "
            f"PostgreSQL {self.database_cpu_seconds / requests * 1000:5.2f} ms"
        )


@dataclass
class Server:
    """One server under test: its processes, the phases measured on it and the operation ids it was sent."""

    key: str
    name: str
    port: int
    path: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    target: Target | None = None
    closed: list[Phase] = field(default_factory=list)
    open: Phase | None = None
    sent_ids: list[str] = field(default_factory=list)
    acknowledged_ids: set[str] = field(default_factory=set)

    @property
    def application_name(self) -> str:
        return f"bench_{self.key.replace('-', '_')}"


@dataclass(frozen=True)
class Target:
    """Where the load goes and what it sends."""

    port: int
    path: str
    authorization: str
    subscription_id: str


class KeepAliveConnection:
    """One HTTP/1.1 connection that POSTs and reads Content-Length responses; reconnects after an error."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, body: bytes) -> int:
        """Send one request and return the response status (0 when the exchange failed)."""
        head = (
            f"POST {self.target.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.target.port}\r\n"
            f"Authorization: {self.target.authorization}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        try:
            return await asyncio.wait_for(self._exchange(head + body), REQUEST_TIMEOUT_SECONDS)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.close()
            return 0

    async def _exchange(self, request: bytes) -> int:
        if self._streams is None:
            self._streams = await asyncio.open_connection("127.0.0.1", self.target.port)
        reader, writer = self._streams
        writer.write(request)
        response_head = await reader.readuntil(b"\r\n\r\n")
        status = int(response_head.split(b" ", 2)[1])
        length = 0
        for line in response_head.lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        return status

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


class LoadGenerator:
    """Sends webhook-shaped bodies; every REPLAY_EVERY-th request repeats an earlier operation id."""

    def __init__(self, target: Target, sent_ids: list[str], acknowledged_ids: set[str]) -> None:
        self.target = target
        self.sent_ids = sent_ids
        self.acknowledged_ids = acknowledged_ids

    def next_operation_id(self) -> str:
        if self.sent_ids and len(self.sent_ids) % REPLAY_EVERY == 0:
            operation_id = self.sent_ids[len(self.sent_ids) // 2]
        else:
            operation_id = str(uuid.uuid4())
        self.sent_ids.append(operation_id)
        return operation_id

    async def send(self, connection: KeepAliveConnection, phase: Phase, since: float) -> None:
        """Send one webhook and record its latency from `since` (or a failure)."""
        operation_id = self.next_operation_id()
        if await connection.post(self.body(operation_id)) == 200:
            phase.latencies_ms.append((time.perf_counter() - since) * 1000)
            self.acknowledged_ids.add(operation_id)
        else:
            phase.failures += 1

    def body(self, operation_id: str) -> bytes:
        return json.dumps(
            {
                "id": operation_id,
                "activityId": str(uuid.uuid4()),
                "subscriptionId": self.target.subscription_id,
                "offerId": "vast-blob-facade",
                "planId": "standard",
                "quantity": 2,
                "action": "Renew",
                "timeStamp": "2026-11-26T00:00:00Z",
                "status": "Succeeded",
                "operationRequestSource": "Azure",
                "subscription": {"id": self.target.subscription_id},
            }
        ).encode()

    async def closed_loop(self, concurrency: int, seconds: float) -> Phase:
        phase = Phase(f"sustained ({concurrency} clients)")
        started = time.perf_counter()
        deadline = started + seconds

        async def client_loop() -> None:
            connection = KeepAliveConnection(self.target)
            while time.perf_counter() < deadline:
                await self.send(connection, phase, time.perf_counter())
            connection.close()

        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        phase.seconds = time.perf_counter() - started
        return phase

    async def open_loop(self, rate: float, seconds: float, connections: int) -> Phase:
        phase = Phase(f"open loop at {rate:.0f} req/s")
        total = int(rate * seconds)
        schedule: asyncio.Queue[float | None] = asyncio.Queue()
        started = time.perf_counter()

        async def sender() -> None:
            connection = KeepAliveConnection(self.target)
            while (scheduled := await schedule.get()) is not None:
                # From the scheduled send time: time spent waiting for a free connection counts.
                await self.send(connection, phase, scheduled)
            connection.close()

        senders = [asyncio.create_task(sender()) for _ in range(connections)]
        for index in range(total):
            scheduled = started + index / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            schedule.put_nowait(scheduled)
        for _ in senders:
            schedule.put_nowait(None)
        await asyncio.gather(*senders)
        phase.seconds = time.perf_counter() - started
        return phase


def run_phase(
    target: Target,
    sent_ids: list[str],
    acknowledged_ids: set[str],
    kind: str,
    concurrency: int,
    rate: float,
    seconds: float,
) -> tuple[Phase, list[str], set[str]]:
    """One phase in the load generator's process; returns the phase and the operation ids sent and acknowledged."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    generator = LoadGenerator(target, sent_ids, acknowledged_ids)
    if kind == "closed":
        phase = asyncio.run(generator.closed_loop(concurrency, seconds))
    else:
        phase = asyncio.run(generator.open_loop(rate, seconds, concurrency))
    return phase, generator.sent_ids, generator.acknowledged_ids


def _process_tree(pid: int) -> list[int]:
    tree = [pid]
    for parent in tree:
        try:
            tree.extend(int(child) for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split())
        except FileNotFoundError:
            continue
    return tree


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User plus system CPU seconds of each live process, from /proc (fields 14 and 15 of stat)."""
    seconds: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def _backend_pids(admin: sa.Engine, application_name: str) -> list[int]:
    with admin.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"), {"name": application_name}
        )
        return [int(pid) for (pid,) in rows]


def _cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    # A process born during the phase (a new pooled connection) spent all of its CPU inside it.
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def serve_minimal(port: int) -> None:
    """One ceiling process on a port its siblings share (SO_REUSEPORT), the way `cli api --reuse-port` serves."""
    import uvicorn

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", port))
    config = uvicorn.Config(
        "bench.webhook_ingest:build_minimal_app", factory=True, port=port, log_level="warning", access_log=False
    )
    uvicorn.Server(config).run(sockets=[listener])


def _serve(
    arguments: list[str], environment: dict[str, str], count: int, port: int, log_path: Path
) -> list[subprocess.Popen[bytes]]:
    processes = []
    for _ in range(count):
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                arguments, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        processes.append(process)
    # Generous: on a busy machine importing the app takes a while.
    wait_until_listening(f"http://127.0.0.1:{port}", timeout_seconds=180)
    return processes


def _stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _count(database: Database, statement: str) -> int:
    with database.engine.connect() as connection:
        return int(connection.execute(sa.text(statement)).scalar_one())


def main() -> None:
    """Run the servers through their phases and print the figures."""
    exit_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--rounds", type=int, default=3, help="closed-loop phases per server, taken in turns")
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--concurrency", type=int, default=32, help="clients of the closed loop")
    parser.add_argument("--connections", type=int, default=64, help="connections of the open loop")
    parser.add_argument("--processes", type=int, default=2, help="server processes sharing the port, per server")
    parser.add_argument("--serve-minimal", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=["ceiling", "ceiling-autocommit", "webhook"], help="measure one server only")
    options = parser.parse_args()
    if options.serve_minimal:
        serve_minimal(options.serve_minimal)
        return

    schema = f"bench_webhook_{uuid.uuid4().hex[:8]}"
    admin = make_engine(options.database)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{options.database}?options=-csearch_path%3D{schema}"
    state_dir = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    suite = EmulatorSuite(EmulatorSuiteConfig(state_dir=state_dir))
    processes: list[subprocess.Popen[bytes]] = []
    load_process = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        migrator.upgrade(url)
        database = Database(url)
        with database.session() as session:
            sync_catalog(session, load_catalog(DEFAULT_CATALOG_PATH))
        with database.engine.begin() as connection:
            connection.execute(sa.text(f"CREATE TABLE {MINIMAL_TABLE} (natural_id varchar(64) PRIMARY KEY)"))
        entra, entra_environment = start_entra(suite)
        subscription_id = str(uuid.uuid4())
        with database.session() as session:
            tenant = get_or_create_tenant(session, "3f8b2a61-9d4e-4c7a-8e15-2b6c9d0a4f71")
            session.add(
                MarketplaceSubscription(
                    id=subscription_id,
                    tenant_id=tenant.id,
                    offer_id="vast-blob-facade",
                    plan_id="standard",
                    quantity=2,
                    beneficiary_tenant_id=tenant.entra_tenant_id,
                    status=SubscriptionStatus.SUBSCRIBED,
                )
            )
        api_port = free_port()
        environment = api_environment(entra_environment, state_dir, api_port)
        authorization = f"Bearer {entra.mint_marketplace_webhook_token()}"
        servers = [
            Server("ceiling", "minimal insert in a transaction (ceiling)", free_port(), "/ingest"),
            Server("ceiling-autocommit", "minimal insert in autocommit", free_port(), "/ingest"),
            Server("webhook", "webhook (verify + store)", api_port, "/marketplace/webhook"),
        ]
        servers = [server for server in servers if options.only in (None, server.key)]
        for server in servers:
            server_url = f"{url}&application_name={server.application_name}"
            server_environment = {
                **environment,
                "CP_DATABASE_URL": server_url,
                "CP_BENCH_DATABASE_URL": server_url,
                "CP_BENCH_CEILING_WRITE": "autocommit" if server.key == "ceiling-autocommit" else "transaction",
                # This measures intake capacity: the limiter still runs (its cost counts), its bounds are out of
                # reach (the defaults let one Marketplace token send 500/s, and nothing consumes the outbox here).
                "CP_RATE_LIMIT_WEBHOOK_PER_SECOND": "1000000",
                "CP_WEBHOOK_BACKLOG_LIMIT": "0",
            }
            arguments = (
                [sys.executable, "-m", "cli.main", "api", "--reuse-port"]
                if server.key == "webhook"
                else [sys.executable, "-m", "bench.webhook_ingest", "--serve-minimal", str(server.port)]
            )
            server.processes = _serve(
                arguments, server_environment, options.processes, server.port, state_dir / f"{server.key}.log"
            )
            processes.extend(server.processes)
            server.target = Target(server.port, server.path, authorization, subscription_id)

        def measure(server: Server, kind: str, clients: int) -> Phase:
            server_pids = [pid for process in server.processes for pid in _process_tree(process.pid)]
            server_before = _cpu_seconds(server_pids)
            database_before = _cpu_seconds(_backend_pids(admin, server.application_name))
            assert server.target is not None  # every server's target is set when it starts
            phase, server.sent_ids, server.acknowledged_ids = load_process.submit(
                run_phase,
                server.target,
                server.sent_ids,
                server.acknowledged_ids,
                kind,
                clients,
                options.rate,
                options.seconds,
            ).result()
            phase.server_cpu_seconds = _cpu_spent(server_before, _cpu_seconds(server_pids))
            phase.database_cpu_seconds = _cpu_spent(
                database_before, _cpu_seconds(_backend_pids(admin, server.application_name))
            )
            return phase

        # The servers take turns round after round, so a slow spell of the machine hits all of them alike.
        for _ in range(options.rounds):
            for server in servers:
                server.closed.append(measure(server, "closed", options.concurrency))
        for server in servers:
            server.open = measure(server, "open", options.connections)

        print(
            f"webhook ingest on PostgreSQL, {options.rounds} round(s) of {options.seconds:.0f} s per server, "
            f"{options.processes} uvicorn process(es) per server, load average {os.getloadavg()[0]:.1f}"
        )
        for server in servers:
            print(f"  {server.name}")
            for phase in server.closed:
                print(f"    {phase.line()}")
            assert server.open is not None  # measured for every server just above
            print(f"    {server.open.line()}")
            print(f"    median sustained rate {statistics.median(phase.rate for phase in server.closed):.1f} req/s")
        by_key = {server.key: server for server in servers}
        if "webhook" in by_key:
            for key in ("ceiling", "ceiling-autocommit"):
                if key in by_key:
                    ratios = [
                        webhook.rate / ceiling.rate
                        for webhook, ceiling in zip(by_key["webhook"].closed, by_key[key].closed, strict=True)
                    ]
                    print(
                        f"  sustained webhook rate / {by_key[key].name}: median {statistics.median(ratios) * 100:.0f}% "
                        f"(rounds: {', '.join(f'{ratio * 100:.0f}%' for ratio in ratios)})"
                    )
        if "webhook" in by_key:
            sent_ids, acknowledged_ids = by_key["webhook"].sent_ids, by_key["webhook"].acknowledged_ids
            with database.engine.connect() as connection:
                stored_ids = set(connection.execute(sa.text("SELECT natural_id FROM inbound_events")).scalars())
            operations = _count(database, "SELECT count(*) FROM marketplace_operations")
            outbox = _count(database, "SELECT count(*) FROM outbox_messages")
            audited = _count(
                database, "SELECT count(*) FROM audit_events WHERE action = 'marketplace.webhook_received'"
            )
            # Each stored operation must have exactly one operation row, outbox row and audit event.
            duplicated = max(operations, outbox, audited) - len(stored_ids)
            print(
                f"  effects: {len(sent_ids)} requests, {len(set(sent_ids))} distinct operation ids, "
                f"{len(acknowledged_ids)} acknowledged -> {len(stored_ids)} inbox rows, {operations} operation rows, "
                f"{outbox} outbox rows, {audited} audit events "
                f"(lost {len(acknowledged_ids - stored_ids)}, duplicated {max(0, duplicated)})"
            )
        database.dispose()
    finally:
        load_process.shutdown(cancel_futures=True)
        for process in processes:
            _stop(process)
        suite.stop()
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
        shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

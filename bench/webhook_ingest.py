"""Benchmark: Marketplace webhook ingest (token verified, stored once, outbox row) against PostgreSQL.

Side by side with a minimal FastAPI endpoint that only inserts one row (the stack's ceiling), each served
by one uvicorn process on loopback. Two phases per server: a closed loop (`--concurrency` clients for
`--seconds`) for the sustained rate, and an open loop at `--rate` requests/s for latency. About one request
in ten replays an earlier operation id; afterwards the stored rows are counted to show zero lost or
duplicated effects. Prints figures; asserts nothing.
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
from pathlib import Path

import httpx
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import core.models  # noqa: F401  # registers every table
from cli.processes import free_port, wait_until_listening
from core import migrator
from core.catalog.loader import load_catalog, sync_catalog
from core.db import Database, make_engine
from core.settings import DEFAULT_CATALOG_PATH
from core.subscriptions.models import MarketplaceSubscription
from core.tenants.service import get_or_create_tenant
from emulators.suite import EmulatorSuite, EmulatorSuiteConfig

MINIMAL_TABLE = "bench_minimal_rows"
REPLAY_EVERY = 10


def build_minimal_app() -> FastAPI:
    """The ceiling: parse the JSON body and insert one row, nothing else (CP_BENCH_DATABASE_URL)."""
    engine = make_engine(os.environ["CP_BENCH_DATABASE_URL"])
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/ingest")
    async def ingest(request: Request) -> JSONResponse:
        body = json.loads(await request.body())

        def insert() -> None:
            with engine.begin() as connection:
                connection.execute(
                    sa.text(f"INSERT INTO {MINIMAL_TABLE} (natural_id) VALUES (:id) ON CONFLICT DO NOTHING"),  # noqa: S608
                    {"id": body["id"]},
                )

        await asyncio.to_thread(insert)
        return JSONResponse({"status": "stored"})

    return app


@dataclass
class Phase:
    """Latencies and statuses of one load phase."""

    name: str
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0

    def line(self) -> str:
        latencies = sorted(self.latencies_ms)
        if not latencies:
            return f"{self.name}: no successful requests ({self.failures} failures)"
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        rate = len(latencies) / self.seconds if self.seconds else 0.0
        return f"{self.name}: {rate:7.1f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  failures {self.failures}"


class LoadGenerator:
    """Sends webhook-shaped bodies; every REPLAY_EVERY-th request repeats an earlier operation id."""

    def __init__(self, url: str, headers: dict[str, str], subscription_id: str) -> None:
        self.url = url
        self.headers = headers
        self.subscription_id = subscription_id
        self.sent_ids: list[str] = []

    def body(self) -> bytes:
        if self.sent_ids and len(self.sent_ids) % REPLAY_EVERY == 0:
            operation_id = self.sent_ids[len(self.sent_ids) // 2]
        else:
            operation_id = str(uuid.uuid4())
        self.sent_ids.append(operation_id)
        return json.dumps(
            {
                "id": operation_id,
                "activityId": str(uuid.uuid4()),
                "subscriptionId": self.subscription_id,
                "offerId": "vast-blob-facade",
                "planId": "standard",
                "quantity": 2,
                "action": "Renew",
                "timeStamp": "2026-11-26T00:00:00Z",
                "status": "Succeeded",
                "operationRequestSource": "Azure",
                "subscription": {"id": self.subscription_id},
            }
        ).encode()

    async def _send(self, client: httpx.AsyncClient, phase: Phase) -> None:
        started = time.perf_counter()
        try:
            response = await client.post(self.url, content=self.body(), headers=self.headers)
            ok = response.status_code == 200
        except httpx.HTTPError:
            ok = False
        if ok:
            phase.latencies_ms.append((time.perf_counter() - started) * 1000)
        else:
            phase.failures += 1

    async def closed_loop(self, concurrency: int, seconds: float) -> Phase:
        phase = Phase(f"sustained ({concurrency} clients)")
        deadline = time.perf_counter() + seconds

        async def client_loop(client: httpx.AsyncClient) -> None:
            while time.perf_counter() < deadline:
                await self._send(client, phase)

        started = time.perf_counter()
        async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=concurrency)) as client:
            await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        phase.seconds = time.perf_counter() - started
        return phase

    async def open_loop(self, rate: float, seconds: float) -> Phase:
        phase = Phase(f"open loop at {rate:.0f} req/s")
        total = int(rate * seconds)
        started = time.perf_counter()
        async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=200)) as client:
            tasks = []
            for index in range(total):
                delay = started + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self._send(client, phase)))
            await asyncio.gather(*tasks)
        phase.seconds = time.perf_counter() - started
        return phase


def _serve(arguments: list[str], environment: dict[str, str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("ab")
    process = subprocess.Popen(arguments, env=environment, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    wait_until_listening(f"http://127.0.0.1:{port}", timeout_seconds=60)
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _measure(generator: LoadGenerator, concurrency: int, rate: float, seconds: float) -> list[Phase]:
    return [
        asyncio.run(generator.closed_loop(concurrency, seconds)),
        asyncio.run(generator.open_loop(rate, seconds)),
    ]


def _count(database: Database, statement: str) -> int:
    with database.engine.connect() as connection:
        return int(connection.execute(sa.text(statement)).scalar_one())


def main() -> None:
    """Run both servers through both phases and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--concurrency", type=int, default=32)
    options = parser.parse_args()

    schema = f"bench_webhook_{uuid.uuid4().hex[:8]}"
    admin = make_engine(options.database)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{options.database}?options=-csearch_path%3D{schema}"
    state_dir = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    suite = EmulatorSuite(EmulatorSuiteConfig(state_dir=state_dir))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        migrator.upgrade(url)
        database = Database(url)
        with database.session() as session:
            sync_catalog(session, load_catalog(DEFAULT_CATALOG_PATH))
        with database.engine.begin() as connection:
            connection.execute(sa.text(f"CREATE TABLE {MINIMAL_TABLE} (natural_id varchar(64) PRIMARY KEY)"))
        from emulators.common.faults import FaultInjector
        from emulators.entra import EntraEmulator
        from emulators.entra.directory import DEFAULT_DIRECTORY_PATH, Directory

        entra = EntraEmulator(Directory.load(DEFAULT_DIRECTORY_PATH), FaultInjector())
        suite.add(entra)
        state = suite.start()["entra"]
        publisher_app = state["apps"]["publisher-fulfillment"]
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
                    status="Subscribed",
                )
            )
        api_port, minimal_port = free_port(), free_port()
        environment = {
            **os.environ,
            "CP_DATABASE_URL": url,
            "CP_DATA_DIR": str(state_dir),
            "CP_ENTRA_AUTHORITY_HOST": state["authority_url"],
            "CP_ENTRA_V1_ISSUER_HOST": state["sts_url"],
            "CP_PUBLISHER_TENANT_ID": state["publisher_tenant_id"],
            "CP_PUBLISHER_CLIENT_ID": publisher_app["client_id"],
            "CP_PUBLISHER_CLIENT_SECRET": publisher_app["client_secret"],
            "CP_CA_BUNDLE": str(suite.tls.ca_path),
            "CP_LOG_LEVEL": "WARNING",
            "CP_API_PORT": str(api_port),
            "CP_BENCH_DATABASE_URL": url,
        }
        headers = {
            "Authorization": f"Bearer {entra.mint_marketplace_webhook_token()}",
            "Content-Type": "application/json",
        }
        results: dict[str, tuple[list[Phase], LoadGenerator]] = {}
        servers: dict[str, tuple[list[str], int, str]] = {
            "minimal insert (ceiling)": (
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bench.webhook_ingest:build_minimal_app",
                    "--factory",
                    "--port",
                    str(minimal_port),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                minimal_port,
                "/ingest",
            ),
            "webhook (verify + store)": ([sys.executable, "-m", "cli.main", "api"], api_port, "/marketplace/webhook"),
        }
        for name, (arguments, port, path) in servers.items():
            process = _serve(arguments, environment, port, state_dir / f"{port}.log")
            processes.append(process)
            generator = LoadGenerator(f"http://127.0.0.1:{port}{path}", headers, subscription_id)
            results[name] = (_measure(generator, options.concurrency, options.rate, options.seconds), generator)
            _stop(process)
            processes.remove(process)

        print(f"webhook ingest on PostgreSQL, {options.seconds:.0f} s per phase, 1 uvicorn process per server")
        for name, (phases, _) in results.items():
            print(f"  {name}")
            for phase in phases:
                print(f"    {phase.line()}")
        ceiling = results["minimal insert (ceiling)"][0][0]
        webhook = results["webhook (verify + store)"][0][0]
        ratio = (len(webhook.latencies_ms) / webhook.seconds) / (len(ceiling.latencies_ms) / ceiling.seconds)
        print(f"  sustained webhook rate = {ratio * 100:.0f}% of the ceiling")
        generator = results["webhook (verify + store)"][1]
        unique_ids = len(set(generator.sent_ids))
        stored = _count(database, "SELECT count(*) FROM inbound_events")
        operations = _count(database, "SELECT count(*) FROM marketplace_operations")
        outbox = _count(database, "SELECT count(*) FROM outbox_messages")
        print(
            f"  effects: {len(generator.sent_ids)} requests, {unique_ids} distinct operation ids -> "
            f"{stored} inbox rows, {operations} operation rows, {outbox} outbox rows "
            f"(lost {unique_ids - stored}, duplicated {max(0, stored - unique_ids)})"
        )
        database.dispose()
    finally:
        for process in processes:
            _stop(process)
        suite.stop()
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()

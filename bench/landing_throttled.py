"""Benchmark: portal page latency while landing-page requests wait on a throttled, slow Marketplace.

One API process on the embedded database and the emulators. A customer admin's portal page
(`/portal/subscriptions`) is timed alone, then again while `--landing` landing-page requests are in flight
against a Marketplace whose resolve call takes `--latency-ms` and then answers 429 with `Retry-After:
--retry-after`. Prints the portal's p50/p95/max in both phases and their ratio (the target: within 2x), and
what the landing requests got (status, Retry-After, elapsed against the request budget).

Prints figures; asserts nothing. `python -m bench.landing_throttled --help`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.termination import exit_cleanly_on_sigterm
from core import migrator
from core.catalog.loader import load_catalog, sync_catalog
from core.db import Database
from harness import marketplace_demo
from harness.marketplace_demo import CONTOSO_ADMIN, CONTOSO_TENANT_ID, CustomerBrowser
from harness.processes import ProcessGroup, free_port, wait_until_listening
from harness.sandbox import sandbox_settings
from harness.scenario.full import EmulatorProcess

RESOLVE = r"/api/saas/subscriptions/resolve"


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95, ordered[-1]


def _portal_latencies(client: httpx.Client, url: str, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(url)
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"portal answered {response.status_code}")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--landing", type=int, default=50, help="concurrent landing-page requests")
    parser.add_argument("--latency-ms", type=int, default=2000, help="Marketplace's delay before each answer")
    parser.add_argument("--retry-after", type=int, default=20, help="Retry-After of Marketplace's 429")
    parser.add_argument("--samples", type=int, default=40, help="portal requests timed alone")
    arguments = parser.parse_args()
    exit_cleanly_on_sigterm()

    with tempfile.TemporaryDirectory(prefix="bench-landing-") as folder:
        data_dir = Path(folder)
        settings = sandbox_settings(data_dir, free_port())
        # The emulators in a process of their own: Marketplace is another service, not this process's GIL.
        emulators = EmulatorProcess(data_dir / "emulators", 20261207, {})
        group: ProcessGroup | None = None
        try:
            state = emulators.start()
            settings = marketplace_demo.emulator_settings(state, settings)
            migrator.upgrade(settings.resolved_database_url)
            database = Database(settings.resolved_database_url)
            with database.session() as session:
                sync_catalog(session, load_catalog(settings.catalog_path))
            database.dispose()
            group = ProcessGroup(data_dir / "logs", {**os.environ, **settings.as_environment()})
            group.add("api", "api")
            group.start_all()
            base_url = f"http://{settings.api_host}:{settings.api_port}"
            wait_until_listening(base_url, timeout_seconds=60, group=group)
            control = httpx.Client(base_url=state["marketplace"]["control_url"], verify=state["ca_bundle"], timeout=30)
            control.put("/landing-page", json={"url": f"{base_url}/marketplace/landing"}).raise_for_status()

            def purchase() -> str:
                beneficiary = {"tenant_id": CONTOSO_TENANT_ID, "email": CONTOSO_ADMIN, "object_id": str(uuid.uuid4())}
                response = control.post(
                    "/purchases", json={"plan_id": "standard", "quantity": 2, "beneficiary": beneficiary}
                )
                response.raise_for_status()
                url: str = response.json()["landing_page_url"]
                return url

            customer = CustomerBrowser(state["ca_bundle"])
            customer.open_landing(purchase(), username=CONTOSO_ADMIN)  # signs the customer in
            portal = CustomerBrowser(state["ca_bundle"])
            portal.open_landing(f"{base_url}/portal/sign-in", username=CONTOSO_ADMIN)
            portal_url = f"{base_url}/portal/subscriptions"
            landing_urls = [purchase() for _ in range(arguments.landing)]

            _portal_latencies(portal.http, portal_url, 5)  # warm-up
            alone = _portal_latencies(portal.http, portal_url, arguments.samples)

            control.post(
                "/faults",
                json={"kind": "latency", "method": "POST", "path_pattern": RESOLVE, "latency_ms": arguments.latency_ms},
            ).raise_for_status()
            control.post(
                "/faults",
                json={
                    "kind": "status",
                    "method": "POST",
                    "path_pattern": RESOLVE,
                    "status": 429,
                    "retry_after_seconds": arguments.retry_after,
                },
            ).raise_for_status()
            limits = httpx.Limits(max_connections=arguments.landing, max_keepalive_connections=arguments.landing)
            landing_client = httpx.Client(cookies=dict(customer.http.cookies), timeout=300, limits=limits)

            def open_landing(url: str) -> tuple[int, str | None, float]:
                started = time.perf_counter()
                page = landing_client.get(url)
                return page.status_code, page.headers.get("retry-after"), time.perf_counter() - started

            loaded: list[float] = []
            with ThreadPoolExecutor(max_workers=arguments.landing) as pool:
                futures = [pool.submit(open_landing, url) for url in landing_urls]
                while not all(future.done() for future in futures):
                    loaded.extend(_portal_latencies(portal.http, portal_url, 1))
                results = [future.result() for future in futures]
            control.delete("/faults").raise_for_status()
            landing_client.close()

            alone_p50, alone_p95, alone_max = _percentiles(alone)
            loaded_p50, loaded_p95, loaded_max = _percentiles(loaded)
            landing_elapsed = [elapsed for _, _, elapsed in results]
            print(f"Marketplace resolve: {arguments.latency_ms} ms, then 429 Retry-After {arguments.retry_after}")
            print(f"request budget: {settings.marketplace_request_budget_seconds:.1f} s")
            print(
                f"portal alone:  n={len(alone)} p50={alone_p50 * 1000:.1f} ms p95={alone_p95 * 1000:.1f} ms "
                f"max={alone_max * 1000:.1f} ms"
            )
            print(
                f"portal loaded: n={len(loaded)} p50={loaded_p50 * 1000:.1f} ms p95={loaded_p95 * 1000:.1f} ms "
                f"max={loaded_max * 1000:.1f} ms"
            )
            print(f"ratio loaded/alone: p50 {loaded_p50 / alone_p50:.2f}x, p95 {loaded_p95 / alone_p95:.2f}x")
            landing_p50, _, landing_max = _percentiles(landing_elapsed)
            answers = Counter((status, retry_after) for status, retry_after, _ in results)
            print(
                f"landing: {len(results)} requests, p50={landing_p50:.2f} s max={landing_max:.2f} s, "
                f"answers (status, Retry-After): {dict(answers)}"
            )
            customer.close()
            portal.close()
            control.close()
        finally:
            if group is not None:
                group.stop_all()
            emulators.stop()


if __name__ == "__main__":
    main()

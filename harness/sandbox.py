"""The sandbox: the whole control plane on the embedded default, driven through a demo, with a summary."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import typer

from core import migrator
from core.catalog.loader import load_catalog, sync_catalog
from core.db import Database
from core.identity.principal import AccessLevel, access_level
from core.outbox.pipeline_probe import start_probe, wait_for_probe
from core.settings import Settings
from harness import billing_demo, cluster_report, marketplace_demo, operations_demo
from harness.processes import ProcessGroup, free_port, wait_until_ready


def sandbox_settings(data_dir: Path, api_port: int) -> Settings:
    """Embedded-default settings: SQLite and the SQLite broker under data_dir."""
    return Settings(
        _env_file=None,
        data_dir=data_dir,
        api_port=api_port,
        publisher_tenant_id="sandbox-publisher-tenant",
        publisher_client_id="sandbox-publisher-app",
        publisher_client_secret="sandbox-only",  # noqa: S106  # replaced by the emulator's generated secret
        log_format="json",
        outbox_poll_interval_seconds=0.2,
    )


def run_sandbox(data_dir: Path, *, serve: bool) -> int:
    """Start API, worker and scheduler; run the demo; print the summary. Returns the exit code."""
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    settings = sandbox_settings(data_dir, free_port())
    step("starting the Entra ID, Marketplace and ARM emulators")
    emulator_suite = marketplace_demo.start_emulators(data_dir)
    settings = marketplace_demo.emulator_settings(emulator_suite.state(), settings)
    step("migrating the embedded database and loading the catalog")
    migrator.upgrade(settings.resolved_database_url)
    database = Database(settings.resolved_database_url)
    with database.session() as session:
        sync_catalog(session, load_catalog(settings.catalog_path))

    step("starting Azurite as the demo cluster's Blob endpoint")
    azurite = operations_demo.start_azurite(data_dir)
    settings = settings.model_copy(update=operations_demo.sandbox_overrides(settings, azurite))
    group = ProcessGroup(data_dir / "logs", {**os.environ, **settings.as_environment()})
    group.add("api", "api")
    group.add("worker", "worker")
    group.add("beat", "beat")
    step("starting api, worker and scheduler")
    group.start_all()
    base_url = f"http://{settings.api_host}:{settings.api_port}"
    try:
        readiness = wait_until_ready(base_url, timeout_seconds=90, group=group)
        step(f"api ready at {base_url}: {readiness['checks']}")
        step("sending a pipeline probe: outbox -> relay (scheduler) -> broker -> worker -> database")
        elapsed = wait_for_probe(database, start_probe(database), timeout_seconds=60)
        if elapsed is None:
            typer.secho("probe did not complete; see logs in " + str(group.log_dir), fg=typer.colors.RED)
            return 1
        step(f"probe completed in {elapsed * 1000:.0f} ms")
        print_summary(base_url, group)
        # Every step has an expected end state; the demo exits non-zero when any step misses it.
        missed: list[str] = []
        step("marketplace: purchase -> landing page (Entra sign-in) -> confirmation -> activation")
        purchased = marketplace_demo.run_purchase_demo(emulator_suite.state(), base_url)
        if purchased is None:
            missed.append("purchase: the subscription did not reach Subscribed")
        step("provisioning: the purchased cluster's PLS alias, endpoint and key id from the JSON API")
        if not cluster_report.report_latest_cluster(database, emulator_suite.state(), base_url):
            missed.append("provisioning: the purchased cluster is not ready")
        step("operations: Blob probe of the demo cluster through the outbox, traces, metrics, SLO status")
        if not operations_demo.run_operations_demo(database, settings, azurite, base_url):
            missed.append("operations: the Blob probe did not pass")
        step("billing: ready cluster usage -> hourly ledger -> Marketplace metering -> reconciliation")
        if not billing_demo.run_in_sandbox(data_dir, database, settings, state=emulator_suite.state()):
            missed.append("billing: not every ledger entry was accepted, or the reconciliation found differences")
        if purchased is not None:
            step("marketplace: change quantity and plan, suspend, reinstate, renew, unsubscribe")
            if not marketplace_demo.run_lifecycle_demo(emulator_suite.state(), database, purchased):
                missed.append("lifecycle: an action missed its expected end state (printed above)")
        print_portal_sign_ins(base_url, emulator_suite.state()["entra"])
        report_missed_steps(missed, group)
        if serve:
            wait_for_interrupt()
        return 1 if missed else 0
    finally:
        step("stopping")
        group.stop_all()
        database.dispose()
        emulator_suite.stop()
        if azurite is not None:
            azurite.stop()


def report_missed_steps(missed: list[str], group: ProcessGroup) -> None:
    """Say plainly whether every step reached its expected end state, and which did not."""
    typer.echo("")
    if not missed:
        typer.secho("every step reached its expected end state", fg=typer.colors.GREEN)
        return
    typer.secho(f"{len(missed)} step(s) missed their expected end state:", fg=typer.colors.RED)
    for item in missed:
        typer.secho(f"  - {item}", fg=typer.colors.RED)
    typer.secho(f"  logs in {group.log_dir}", fg=typer.colors.RED)


def print_summary(base_url: str, group: ProcessGroup) -> None:
    typer.echo("")
    typer.echo("Sandbox summary")
    typer.echo(f"  API            {base_url}  (OpenAPI: {base_url}/docs)")
    typer.echo(f"  processes      {', '.join(managed.name for managed in group.processes)}")
    typer.echo(f"  logs           {group.log_dir}")


def print_portal_sign_ins(base_url: str, entra: dict[str, Any]) -> None:
    """The portal's URL and who can sign in there (the Entra emulator's users: pick one, no password)."""
    tenant_keys = {tenant["id"]: key for key, tenant in entra.get("tenants", {}).items()}
    typer.echo("")
    typer.echo(f"  portal         {base_url}/portal  (sign in on the Entra emulator's page: pick a user, no password)")
    for user in entra.get("users", {}).values():
        tenant = tenant_keys.get(user["tenant_id"], user["tenant_id"])
        if user["tenant_id"] == entra["publisher_tenant_id"]:
            who = "publisher tenant: the operator pages when holding the Operator role"
        else:
            # What the control plane makes of the person's token: app role first, then the directory-role fallback.
            roles = user.get("app_roles", {}).get(entra["control_plane_app_id"], [])
            access = access_level(roles, user.get("directory_roles", []), is_operator=False)
            who = f"{'customer admin' if access == AccessLevel.ADMIN else 'reader'} of tenant {tenant}"
        typer.echo(f"  demo sign-in   {user['username']}  ({user['display_name']}, {who})")


def step(message: str) -> None:
    typer.secho(f"[sandbox {time.strftime('%H:%M:%S')}] {message}", fg=typer.colors.CYAN)


def wait_for_interrupt() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    typer.echo("running; Ctrl-C stops")
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()

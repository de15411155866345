"""The sandbox: the whole control plane on the embedded default, driven through a demo, with a summary."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import typer

from cli.processes import ProcessGroup, free_port, wait_until_ready
from core import migrator
from core.catalog.loader import load_catalog, sync_catalog
from core.db import Database
from core.probe import start_probe, wait_for_probe
from core.settings import Settings


def sandbox_settings(data_dir: Path, api_port: int) -> Settings:
    """Embedded-default settings: SQLite and the SQLite broker under data_dir."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
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
    step("migrating the embedded database and loading the catalog")
    migrator.upgrade(settings.resolved_database_url)
    database = Database(settings.resolved_database_url)
    with database.session() as session:
        sync_catalog(session, load_catalog(settings.catalog_path))

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
        if serve:
            wait_for_interrupt()
        return 0
    finally:
        step("stopping")
        group.stop_all()
        database.dispose()


def print_summary(base_url: str, group: ProcessGroup) -> None:
    typer.echo("")
    typer.echo("Sandbox summary")
    typer.echo(f"  API            {base_url}  (OpenAPI: {base_url}/docs)")
    typer.echo(f"  processes      {', '.join(managed.name for managed in group.processes)}")
    typer.echo(f"  logs           {group.log_dir}")


def step(message: str) -> None:
    typer.secho(f"[sandbox {time.strftime('%H:%M:%S')}] {message}", fg=typer.colors.CYAN)


def wait_for_interrupt() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    typer.echo("running; Ctrl-C stops")
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()

"""`controlplane`: run the API, workers, scheduler and relay, migrate, and check the catalog, templates and billing."""

from __future__ import annotations

import gc
import signal
import socket
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.billing import billing_app
from cli.process_settings import require_schema_or_exit, settings_or_exit
from cli.templates import templates_app
from core.errors import ConfigurationError

app = typer.Typer(
    help="Control plane for VAST Blob-API façade clusters sold through Azure Marketplace.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
catalog_app = typer.Typer(help="The offer catalog.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(templates_app, name="templates")
app.add_typer(billing_app, name="billing")


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Interface to bind; defaults to CP_API_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Port; defaults to CP_API_PORT.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Uvicorn worker processes.")] = 1,
    reuse_port: Annotated[
        bool, typer.Option(help="Bind with SO_REUSEPORT so several API processes share one port (one worker each).")
    ] = False,
) -> None:
    """Serve the HTTP API (landing page, webhook, JSON API, portal)."""
    import uvicorn

    settings = settings_or_exit()
    require_schema_or_exit(settings)
    bind_host = host or settings.api_host
    bind_port = port if port is not None else settings.api_port
    options: dict[str, Any] = {
        "factory": True,
        "host": bind_host,
        "port": bind_port,
        "log_config": None,
        # X-Forwarded-For/Proto only from the configured proxies; uvicorn would otherwise trust any loopback peer.
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": settings.trusted_proxies or None,
    }
    if workers > 1:
        uvicorn.run("server.app:create_app", workers=workers, access_log=False, **options)  # each worker builds its app
        return
    config = uvicorn.Config("server.app:create_app", access_log=False, **options)
    config.load()
    # The app and everything imported live as long as the process: keep them out of every later collection pass.
    gc.freeze()
    sockets = None
    if reuse_port:
        # The kernel spreads connections over every process bound this way; one killed leaves the others serving.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind((bind_host, bind_port))
        sockets = [listener]
    uvicorn.Server(config).run(sockets=sockets)


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Parallel tasks; defaults to CP_WORKER_CONCURRENCY.")
    ] = None,
    pool: Annotated[str, typer.Option(help="Celery pool: threads, prefork or solo.")] = "threads",
    queues: Annotated[
        str,
        typer.Option(
            help="Comma-separated queues to consume: marketplace-verdicts (Marketplace operations, decided within "
            "10 s) and celery (everything else); both by default."
        ),
    ] = "",
) -> None:
    """Run a Celery worker that consumes outbox messages and scheduled jobs."""
    settings = settings_or_exit()
    require_schema_or_exit(settings)
    from core.messaging import ALL_QUEUES

    queues = queues or ",".join(ALL_QUEUES)
    from workers.celery_app import run_worker

    run_worker(
        [
            "worker",
            f"--loglevel={settings.log_level}",
            f"--pool={pool}",
            f"--concurrency={concurrency or settings.worker_concurrency}",
            f"--queues={queues}",
            "--without-gossip",
            "--without-mingle",
        ],
        queues=queues.split(","),
    )


@app.command()
def beat() -> None:
    """Run the scheduler: Celery beat plus the outbox relay (exactly one per deployment)."""
    settings = settings_or_exit()
    require_schema_or_exit(settings)
    import core.models  # noqa: F401  # registers every table before the first flush
    from core.db import get_database
    from workers.celery_app import celery_app
    from workers.relay import OutboxRelay, celery_publisher

    stop = threading.Event()
    relay = OutboxRelay(
        get_database(),
        celery_publisher(celery_app),
        batch_size=settings.outbox_batch_size,
        delivery_batch_size=settings.outbox_delivery_batch_size,
        redispatch_after_seconds=settings.outbox_redispatch_after_seconds,
        max_attempts=settings.outbox_max_attempts,
    )
    relay_thread = threading.Thread(
        target=relay.run_forever, args=(stop, settings.outbox_poll_interval_seconds), name="outbox-relay", daemon=True
    )
    relay_thread.start()
    try:
        celery_app.start(["beat", f"--loglevel={settings.log_level}"])
    finally:
        stop.set()
        relay_thread.join(timeout=10)


@app.command()
def relay(
    once: Annotated[bool, typer.Option(help="Publish one batch and exit.")] = False,
) -> None:
    """Run only the outbox relay (the scheduler runs one already)."""
    settings = settings_or_exit()
    import core.models  # noqa: F401  # registers every table before the first flush
    from core.db import get_database
    from workers.celery_app import celery_app
    from workers.relay import OutboxRelay, celery_publisher

    outbox_relay = OutboxRelay(
        get_database(),
        celery_publisher(celery_app),
        batch_size=settings.outbox_batch_size,
        delivery_batch_size=settings.outbox_delivery_batch_size,
        redispatch_after_seconds=settings.outbox_redispatch_after_seconds,
        max_attempts=settings.outbox_max_attempts,
    )
    if once:
        typer.echo(f"published {outbox_relay.run_once()} message(s)")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        outbox_relay.run_forever(stop, settings.outbox_poll_interval_seconds)
    except KeyboardInterrupt:
        stop.set()


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "heads",
    downgrade: Annotated[bool, typer.Option(help="Downgrade to the revision instead of upgrading.")] = False,
) -> None:
    """Apply database migrations, then load the offer catalog into the database."""
    settings = settings_or_exit()
    import core.models  # noqa: F401  # registers every table before the first flush
    from core import migrator
    from core.catalog.loader import load_catalog, sync_catalog
    from core.db import get_database

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if downgrade:
        migrator.downgrade(settings.resolved_database_url, revision)
        typer.echo(f"downgraded to {revision}")
        return
    try:
        catalog = load_catalog(settings.catalog_path)
    except ConfigurationError as error:
        typer.secho(str(error), fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    migrator.upgrade(settings.resolved_database_url, revision)
    with get_database().session() as session:
        sync_catalog(session, catalog)
    typer.echo(f"database at {revision}; catalog {catalog.catalog_version} loaded")


@app.command()
def probe(
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for the worker.")] = 30.0,
) -> None:
    """Send a probe through outbox -> relay -> broker -> worker and report how long it took."""
    settings_or_exit()
    import core.models  # noqa: F401  # registers every table before the first flush
    from core.db import get_database
    from core.outbox.pipeline_probe import start_probe, wait_for_probe

    database = get_database()
    probe_id = start_probe(database)
    elapsed = wait_for_probe(database, probe_id, timeout)
    if elapsed is None:
        typer.secho(f"probe {probe_id} did not complete within {timeout:.0f}s", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)
    typer.echo(f"probe {probe_id} completed in {elapsed * 1000:.0f} ms")


@catalog_app.command("check")
def catalog_check(
    path: Annotated[
        Path | None, typer.Argument(help="Catalog file to validate; defaults to the one shipped in the package.")
    ] = None,
) -> None:
    """Validate a catalog file and print its offers and plans."""
    from core.catalog.loader import load_catalog
    from core.settings import DEFAULT_CATALOG_PATH

    path = path or DEFAULT_CATALOG_PATH

    try:
        catalog = load_catalog(path)
    except ConfigurationError as error:
        typer.secho(str(error), fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    for offer in catalog.offers:
        plans = ", ".join(f"{plan.id}{' (private)' if plan.private else ''}" for plan in offer.plans)
        dimensions = ", ".join(dimension.id for dimension in offer.dimensions)
        typer.echo(f"{offer.id}: plans {plans}; dimensions {dimensions}")


if __name__ == "__main__":
    app()

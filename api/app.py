"""The ASGI application factory."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

import core.models  # noqa: F401  # the API process starts here: every table registered before the first flush
from api.body_limits import BodyLimitMiddleware
from api.errors import MIDDLEWARE_RESPONSES, install_error_handlers
from api.middleware import CorrelationMiddleware
from api.rate_limits import install_rate_limits
from api.routers import billing, clusters, connectivity, drift, health, managed_apps, marketplace, operations, publisher
from core.db import Database, get_database
from core.identity.tokens import EntraTokenVerifier
from core.monitoring.log_spool import install_log_spool
from core.settings import Settings, get_settings
from core.telemetry.tracing import configure_tracing, spans_exported
from portal.installation import install_portal


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """Build the app; settings and database default to the process-wide ones."""
    settings = settings or get_settings()
    app = FastAPI(
        title="VAST on Azure control plane",
        version="0.1.0",
        description="Marketplace fulfilment, provisioning, metering and operations for VAST Blob-API façade clusters.",
        responses=MIDDLEWARE_RESPONSES,
        # The interactive documentation pages need inline script and a CDN, which the pages' CSP forbids: the
        # description is served at /openapi.json for any viewer to load.
        docs_url=None,
        redoc_url=None,
        # Server spans come from the OpenTelemetry instrumentor below; FastAPI's own would record them twice.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.settings = settings
    app.state.database = database or get_database()
    app.state.token_verifier = EntraTokenVerifier(
        settings.entra_authority_host,
        v1_issuer_host=settings.entra_v1_issuer_host,
        verify=settings.tls_verify,
        key_lifespan_seconds=settings.entra_signing_key_lifespan_seconds,
        refetch_cooldown_seconds=settings.entra_signing_key_refetch_cooldown_seconds,
        timeout_seconds=settings.http_timeout_seconds,
    )
    # Traces of every request, continued into the outbox; with an export configured, warnings and errors
    # are spooled for Log Analytics.
    configure_tracing(settings, "api")
    # One server span per request when spans go somewhere (the per-message receive/send child spans add cost, no
    # insight); unexported, they would cost a tenth of a webhook's CPU for nothing.
    if spans_exported(settings):
        FastAPIInstrumentor.instrument_app(
            app, excluded_urls="healthz,readyz,metrics", exclude_spans=["receive", "send"]
        )
    if settings.monitor_ingestion_endpoint:
        install_log_spool(app.state.database, settings.monitor_log_spool_level, "api")
    install_error_handlers(app)
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.request_body_max_bytes, max_depth=settings.request_json_max_depth
    )
    # Inside the correlation middleware, so a 429 is logged and carries a correlation id like any answer.
    install_rate_limits(app, settings, app.state.database)
    app.add_middleware(CorrelationMiddleware)
    # Routes match in order: the webhook, the hottest route, is looked up first.
    app.include_router(marketplace.router)
    app.include_router(health.router)
    app.include_router(operations.router)
    app.include_router(clusters.router)
    app.include_router(connectivity.router)
    app.include_router(drift.router)
    app.include_router(managed_apps.router)
    app.include_router(publisher.router)
    app.include_router(billing.router)
    install_portal(app)
    return app

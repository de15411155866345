"""The ASGI application factory: the shared web layer's middlewares, then the JSON API and the portal side by side."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

import core.models  # noqa: F401  # the API process starts here: every table registered before the first flush
from api.installation import install_api
from core.db import Database, get_database
from core.identity.tokens import EntraTokenVerifier
from core.monitoring.log_spool import install_log_spool, remove_log_spool
from core.settings import Settings, get_settings
from core.telemetry.tracing import configure_tracing, spans_exported
from portal.error_pages import branded_error_page
from portal.installation import install_portal
from web.body_limits import BodyLimitMiddleware
from web.errors import MIDDLEWARE_RESPONSES, install_error_handlers
from web.middleware import CorrelationMiddleware, UnhandledErrorMiddleware
from web.rate_limits import install_rate_limits
from web.security_headers import SecurityHeadersMiddleware


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """Build the app; settings and database default to the process-wide ones."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def spool_logs_while_serving(app: FastAPI) -> AsyncIterator[None]:
        # With an export configured, warnings and errors are spooled for Log Analytics while the app serves, not
        # from the moment it is built: a process that only builds the app (to read its routes) keeps its logging.
        spool = None
        if settings.monitor_ingestion_endpoint:
            spool = install_log_spool(app.state.database, settings.monitor_log_spool_level, "api")
        try:
            yield
        finally:
            if spool is not None:
                remove_log_spool(spool)

    app = FastAPI(
        lifespan=spool_logs_while_serving,
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
    # Traces of every request, continued into the outbox.
    configure_tracing(settings, "api")
    # One server span per request when spans go somewhere (the per-message receive/send child spans add cost, no
    # insight); unexported, they would cost a tenth of a webhook's CPU for nothing.
    if spans_exported(settings):
        FastAPIInstrumentor.instrument_app(
            app, excluded_urls="healthz,readyz,metrics", exclude_spans=["receive", "send"]
        )
    # Browsers get the portal's branded error pages; API clients keep the JSON error body.
    install_error_handlers(app, branded_error_page)
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.request_body_max_bytes, max_depth=settings.request_json_max_depth
    )
    # Inside the correlation middleware, so a 429 is logged and carries a correlation id like any answer.
    install_rate_limits(app, settings, app.state.database, branded_error_page)
    # Just inside the correlation middleware: an unhandled error is logged and answered under the request's id.
    app.add_middleware(UnhandledErrorMiddleware, error_page=branded_error_page)
    app.add_middleware(CorrelationMiddleware)
    # Outermost: every answer on a browser path, and every HTML answer, carries the headers (a 429 and a 413 too).
    app.add_middleware(SecurityHeadersMiddleware)
    install_api(app)
    install_portal(app)
    return app

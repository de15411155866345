"""The ASGI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.middleware import CorrelationMiddleware
from api.routers import health, managed_apps
from core.db import Database, get_database
from core.identity.tokens import EntraTokenVerifier
from core.settings import Settings, get_settings


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """Build the app; settings and database default to the process-wide ones."""
    settings = settings or get_settings()
    app = FastAPI(
        title="VAST on Azure control plane",
        version="0.1.0",
        description="Marketplace fulfilment, provisioning, metering and operations for VAST Blob-API façade clusters.",
    )
    app.state.settings = settings
    app.state.database = database or get_database()
    app.state.token_verifier = EntraTokenVerifier(
        settings.entra_authority_host, v1_issuer_host=settings.entra_v1_issuer_host, verify=settings.tls_verify
    )
    install_error_handlers(app)
    app.add_middleware(CorrelationMiddleware)
    app.include_router(health.router)
    app.include_router(managed_apps.router)
    return app

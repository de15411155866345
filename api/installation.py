"""Attach the JSON API and the Marketplace webhook to the ASGI app the application factory builds."""

from __future__ import annotations

from fastapi import FastAPI

from api.routers import billing, clusters, connectivity, drift, health, managed_apps, marketplace, operations, publisher


def install_api(app: FastAPI) -> None:
    """Include the API's routers; the webhook, the hottest route, is looked up first (routes match in order)."""
    app.include_router(marketplace.router)
    app.include_router(health.router)
    app.include_router(operations.router)
    app.include_router(clusters.router)
    app.include_router(connectivity.router)
    app.include_router(drift.router)
    app.include_router(managed_apps.router)
    app.include_router(publisher.router)
    app.include_router(billing.router)

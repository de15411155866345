"""Attach the portal to the ASGI app: its routers, its static files and its security headers."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from portal.routers import connectivity, customer, operator, sign_in
from portal.security_headers import SecurityHeadersMiddleware

STATIC_DIRECTORY = Path(__file__).resolve().parent / "static"


def install_portal(app: FastAPI) -> None:
    """Include the portal's routes under /portal (and the sign-in callback) and serve /portal/static."""
    app.add_middleware(SecurityHeadersMiddleware)
    app.include_router(sign_in.router)
    app.include_router(customer.router)
    app.include_router(connectivity.router)
    app.include_router(operator.router)
    app.mount("/portal/static", StaticFiles(directory=STATIC_DIRECTORY), name="portal-static")

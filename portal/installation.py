"""Attach the portal to the ASGI app: its pages (the purchase pages a Marketplace link opens included), the
sign-in callback and its static files."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from portal.routers import connectivity, customer, operator, purchase, sign_in

STATIC_DIRECTORY = Path(__file__).resolve().parent / "static"


def install_portal(app: FastAPI) -> None:
    """Include the portal's routes (under /portal, the purchase pages, the sign-in callback); serve its static files."""
    app.include_router(purchase.router)
    app.include_router(sign_in.router)
    app.include_router(customer.router)
    app.include_router(connectivity.router)
    app.include_router(operator.router)
    app.mount("/portal/static", StaticFiles(directory=STATIC_DIRECTORY), name="portal-static")

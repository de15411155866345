"""The Marketplace emulator (fulfilment API v2 + metering) as a suite component."""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

from emulators.common.faults import (
    CONTROL_PREFIX,
    FaultInjectionMiddleware,
    FaultInjector,
    FaultRule,
    fault_control_router,
)
from emulators.entra import MARKETPLACE_APP_ID, EntraEmulator
from emulators.marketplace.catalog import DEFAULT_CATALOG_PATH, OfferCatalog
from emulators.marketplace.clock import EmulatorClock
from emulators.marketplace.control_routes import build_control_router
from emulators.marketplace.fulfillment_routes import build_fulfillment_router
from emulators.marketplace.http_conventions import (
    SUPPORTED_API_VERSION,
    MarketplaceApiError,
    PublisherAuthenticator,
    api_error,
    request_id_middleware,
)
from emulators.marketplace.metering import UsageLedger
from emulators.marketplace.metering_routes import build_metering_router
from emulators.marketplace.quirks import QuirkPlan, Quirks
from emulators.marketplace.subscriptions import FulfillmentError, FulfillmentState
from emulators.marketplace.webhooks import WebhookDispatcher

if TYPE_CHECKING:
    from emulators.suite import EmulatorSuiteConfig

DEFAULT_OPERATION_TIMEOUT_SECONDS = 10.0
DEFAULT_PUBLISHER_OPERATION_SECONDS = 2.0
DEFAULT_WEBHOOK_MAX_ATTEMPTS = 6
DEFAULT_WEBHOOK_INITIAL_BACKOFF_SECONDS = 0.5
DEFAULT_PAGE_SIZE = 100


class MarketplaceEmulator:
    """Fulfilment (/api/saas) and metering (/api) on one port, with a control API and webhook sender."""

    name = "marketplace"

    def __init__(
        self,
        entra: EntraEmulator,
        catalog: OfferCatalog,
        faults: FaultInjector,
        *,
        publisher_webhook_url: str | None = None,
        landing_page_url: str | None = None,
        webhook_ca_bundle: Path | None = None,
        operation_timeout_seconds: float = DEFAULT_OPERATION_TIMEOUT_SECONDS,
        publisher_operation_seconds: float = DEFAULT_PUBLISHER_OPERATION_SECONDS,
        webhook_max_attempts: int = DEFAULT_WEBHOOK_MAX_ATTEMPTS,
        webhook_initial_backoff_seconds: float = DEFAULT_WEBHOOK_INITIAL_BACKOFF_SECONDS,
        page_size: int = DEFAULT_PAGE_SIZE,
        quirks: QuirkPlan | None = None,
    ) -> None:
        self.entra = entra
        self.catalog = catalog
        self.faults = faults
        self.clock = EmulatorClock()
        self.landing_page_url = landing_page_url
        self.page_size = page_size
        self.quirks = Quirks(quirks)
        self.fulfillment = FulfillmentState(catalog, self.clock, operation_timeout_seconds, publisher_operation_seconds)
        self.ledger = UsageLedger(catalog, self.clock, self.fulfillment)
        self.webhooks = WebhookDispatcher(
            self.fulfillment,
            self.clock,
            entra.mint_marketplace_webhook_token,
            webhook_ca_bundle,
            webhook_max_attempts,
            webhook_initial_backoff_seconds,
            transform=self.quirks.operation,
        )
        self.webhooks.webhook_url = publisher_webhook_url
        self.fulfillment.add_listener(self.webhooks.enqueue)
        self.publisher_app_ids = {entra.publisher_fulfillment_app.app_id}
        self._base_url: str | None = None

    @classmethod
    def from_suite_config(cls, config: EmulatorSuiteConfig, entra: EntraEmulator) -> MarketplaceEmulator:
        """Build from the suite config; `options` may hold marketplace_* settings and marketplace_faults."""
        options = config.options
        rules = [FaultRule.model_validate(rule) for rule in options.get("marketplace_faults", [])]
        return cls(
            entra,
            OfferCatalog.load(Path(config.catalog_path or DEFAULT_CATALOG_PATH)),
            FaultInjector(seed=config.seed, rules=rules),
            publisher_webhook_url=config.publisher_webhook_url,
            landing_page_url=options.get("marketplace_landing_page_url"),
            # The suite's CA, so https webhook receivers using the emulator certificates are trusted.
            webhook_ca_bundle=config.state_dir / "tls" / "emulator-ca.pem",
            operation_timeout_seconds=float(
                options.get("marketplace_operation_timeout_seconds", DEFAULT_OPERATION_TIMEOUT_SECONDS)
            ),
            publisher_operation_seconds=float(
                options.get("marketplace_publisher_operation_seconds", DEFAULT_PUBLISHER_OPERATION_SECONDS)
            ),
            webhook_max_attempts=int(options.get("marketplace_webhook_max_attempts", DEFAULT_WEBHOOK_MAX_ATTEMPTS)),
            webhook_initial_backoff_seconds=float(
                options.get("marketplace_webhook_initial_backoff_seconds", DEFAULT_WEBHOOK_INITIAL_BACKOFF_SECONDS)
            ),
            page_size=int(options.get("marketplace_page_size", DEFAULT_PAGE_SIZE)),
            quirks=QuirkPlan.model_validate(options["marketplace_quirks"]) if "marketplace_quirks" in options else None,
        )

    def asgi_app(self) -> FastAPI:
        """Fulfilment, metering, control and fault routes, with request ids and fault injection."""
        # No slash redirects: a path with an empty last segment (".../operations/") is not another resource.
        app = FastAPI(
            title="Marketplace emulator", docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False
        )
        authenticate = PublisherAuthenticator(self.entra, self.publisher_app_ids)
        api_routers = [
            build_fulfillment_router(self.fulfillment, authenticate, self.page_size, self.quirks),
            build_metering_router(self.ledger, authenticate),
        ]

        @app.exception_handler(MarketplaceApiError)
        async def api_error_handler(request: Request, error: MarketplaceApiError) -> Response:
            return error.response()

        @app.exception_handler(FulfillmentError)
        async def fulfillment_error_handler(request: Request, error: FulfillmentError) -> Response:
            return api_error(error.status_code, error.code, error.message).response()

        @app.exception_handler(HTTPException)
        async def routing_error_handler(request: Request, error: HTTPException) -> Response:
            """Unknown paths answer in the API's error shape; a 405 lists every method of the path in Allow.

            (Starlette's 405 names only the methods of the first route that matched the path.)
            """
            if request.url.path.startswith(CONTROL_PREFIX):
                return await http_exception_handler(request, error)
            if error.status_code != 405:
                code = HTTPStatus(error.status_code).phrase.replace(" ", "")
                return api_error(error.status_code, code, str(error.detail), dict(error.headers or {})).response()
            allowed = sorted(
                {
                    method
                    for router in api_routers
                    for route in router.routes
                    if route.matches(request.scope)[0] is not Match.NONE
                    for method in getattr(route, "methods", None) or ()
                }
            )
            return Response(status_code=405, headers={"Allow": ", ".join(allowed)})

        for router in api_routers:
            app.include_router(router)
        app.include_router(build_control_router(self))
        app.include_router(fault_control_router(self.faults))
        app.middleware("http")(request_id_middleware)
        app.add_middleware(FaultInjectionMiddleware, injector=self.faults)
        return app

    def on_started(self, base_url: str) -> None:
        """Remember the base URL and start sending webhooks."""
        self._base_url = base_url
        self.webhooks.start()

    def stop(self) -> None:
        """Stop the webhook sender thread (the suite stops the HTTP server)."""
        self.webhooks.stop()

    @property
    def base_url(self) -> str:
        """The https base URL of the emulator."""
        if self._base_url is None:
            raise RuntimeError("the Marketplace emulator is not started yet")
        return self._base_url

    def describe(self) -> dict[str, Any]:
        """Facts for emulators.json."""
        return {
            "base_url": self.base_url,
            "fulfillment_base_url": f"{self.base_url}/api/saas",
            "metering_base_url": f"{self.base_url}/api",
            "control_url": f"{self.base_url}/_emulator",
            "api_version": SUPPORTED_API_VERSION,
            "resource_app_id": MARKETPLACE_APP_ID,
            "token_scope": f"{MARKETPLACE_APP_ID}/.default",
            "publisher_app_ids": sorted(self.publisher_app_ids),
            "publisher_tenant_id": self.entra.publisher_tenant.id,
            "publisher_webhook_url": self.webhooks.webhook_url,
            "landing_page_url": self.landing_page_url,
            "operation_timeout_seconds": self.fulfillment.operation_timeout_seconds,
            "publisher_operation_seconds": self.fulfillment.publisher_operation_seconds,
            "offers": sorted(self.catalog.offers),
            "quirks": self.quirks.plan.model_dump(),
        }

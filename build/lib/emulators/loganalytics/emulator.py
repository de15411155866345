"""The Logs Ingestion API as azure-monitor-ingestion calls it, and a control API to read what arrived.

`POST /dataCollectionRules/{immutable id}/streams/{stream}?api-version=2023-01-01` with a JSON array
body (gzip-compressed by the SDK), `Authorization: Bearer` for the audience https://monitor.azure.com.
Answers 204 on success; 400/401/403/404/413 with `{"error": {"code", "message"}}` like the service.
The data collection rule and its streams are generated at start and published by `describe()`.

Control API (never faulted):
- GET    /_emulator/loganalytics/rows?stream=S   rows stored for a stream, in arrival order
- GET    /_emulator/loganalytics/uploads         one entry per accepted upload (stream, row count)
- DELETE /_emulator/loganalytics/rows            forget everything
- /_emulator/faults                              fault rules (emulators/common/faults.py)
"""

from __future__ import annotations

import gzip
import json
import secrets
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from emulators.common.faults import FaultInjectionMiddleware, FaultInjector, FaultRule, fault_control_router
from emulators.entra import EntraEmulator

if TYPE_CHECKING:
    from emulators.suite import EmulatorSuiteConfig

API_VERSION = "2023-01-01"
MONITOR_AUDIENCE = "https://monitor.azure.com"
DEFAULT_STREAMS = ("Custom-ControlPlaneAudit_CL", "Custom-ControlPlaneLogs_CL")
# The service refuses a single call with more than 1 MB of uncompressed data.
MAX_UNCOMPRESSED_BYTES = 1024 * 1024


class IngestionError(Exception):
    """An answer the service gives instead of 204."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"code": self.code, "message": self.message}}, status_code=self.status_code)


class IngestedRows:
    """Rows per stream, thread-safe (the server thread writes, tests read through the control API)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._uploads: list[dict[str, Any]] = []

    def add(self, stream: str, rows: list[dict[str, Any]]) -> None:
        received_at = datetime.now(UTC).isoformat()
        with self._lock:
            self._rows.setdefault(stream, []).extend({**row, "_IngestedAt": received_at} for row in rows)
            self._uploads.append({"stream": stream, "rows": len(rows), "received_at": received_at})

    def rows(self, stream: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._rows.get(stream, []))

    def uploads(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._uploads)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._uploads.clear()


class LogAnalyticsEmulator:
    """One data collection endpoint with one data collection rule and its streams."""

    name = "loganalytics"

    def __init__(self, entra: EntraEmulator, faults: FaultInjector, streams: tuple[str, ...] = DEFAULT_STREAMS) -> None:
        self.entra = entra
        self.faults = faults
        self.streams = streams
        self.dcr_immutable_id = f"dcr-{secrets.token_hex(16)}"
        self.store = IngestedRows()
        self._base_url: str | None = None

    @classmethod
    def from_suite_config(cls, config: EmulatorSuiteConfig, entra: EntraEmulator) -> LogAnalyticsEmulator:
        """Build from suite options: `loganalytics_faults` (initial fault rules), `loganalytics_streams`."""
        rules = [FaultRule.model_validate(rule) for rule in config.options.get("loganalytics_faults", [])]
        streams = tuple(config.options.get("loganalytics_streams", DEFAULT_STREAMS))
        return cls(entra, FaultInjector(seed=config.seed, rules=rules), streams)

    def asgi_app(self) -> FastAPI:
        """Ingestion and control routes behind the fault middleware."""
        app = FastAPI(title="Log Analytics emulator", docs_url=None, redoc_url=None, openapi_url=None)

        @app.exception_handler(IngestionError)
        async def ingestion_error(request: Request, error: IngestionError) -> Response:
            return error.response()

        @app.post("/dataCollectionRules/{rule_id}/streams/{stream}", status_code=204)
        async def upload(rule_id: str, stream: str, request: Request) -> Response:
            self._authenticate(request)
            if request.query_params.get("api-version") != API_VERSION:
                raise IngestionError(400, "InvalidApiVersion", f"api-version must be {API_VERSION}")
            if rule_id != self.dcr_immutable_id:
                raise IngestionError(404, "NotFound", f"data collection rule {rule_id!r} not found")
            if stream not in self.streams:
                raise IngestionError(400, "InvalidStream", f"stream {stream!r} is not declared by the rule")
            rows = _decode_rows(await request.body(), request.headers.get("content-encoding", ""))
            self.store.add(stream, rows)
            return Response(status_code=204)

        control = APIRouter(prefix="/_emulator/loganalytics", tags=["emulator control"])

        @control.get("/rows")
        def stored_rows(stream: str) -> list[dict[str, Any]]:
            return self.store.rows(stream)

        @control.get("/uploads")
        def uploads() -> list[dict[str, Any]]:
            return self.store.uploads()

        @control.delete("/rows", status_code=204)
        def clear_rows() -> None:
            self.store.clear()

        app.include_router(control)
        app.include_router(fault_control_router(self.faults))
        app.add_middleware(FaultInjectionMiddleware, injector=self.faults)
        return app

    def _authenticate(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise IngestionError(401, "InvalidAuthenticationToken", "bearer token required")
        try:
            self.entra.verify_access_token(token, audience=MONITOR_AUDIENCE)
        except Exception as error:  # every verification failure is a 401 naming the reason
            raise IngestionError(401, "InvalidAuthenticationToken", str(error)) from error

    def on_started(self, base_url: str) -> None:
        """The data collection endpoint is the server's base URL."""
        self._base_url = base_url

    def describe(self) -> dict[str, Any]:
        """Endpoint, rule id, streams and control URL for emulators.json."""
        return {
            "endpoint": self._base_url,
            "dcr_immutable_id": self.dcr_immutable_id,
            "streams": list(self.streams),
            "control_url": f"{self._base_url}/_emulator/loganalytics",
            "audience": MONITOR_AUDIENCE,
        }


def _decode_rows(body: bytes, content_encoding: str) -> list[dict[str, Any]]:
    if content_encoding.lower() == "gzip":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as error:
            raise IngestionError(400, "InvalidContentEncoding", f"body is not valid gzip: {error}") from error
    if len(body) > MAX_UNCOMPRESSED_BYTES:
        raise IngestionError(413, "ContentLengthLimitExceeded", "more than 1 MB of data in one call")
    try:
        rows = json.loads(body)
    except ValueError as error:
        raise IngestionError(400, "InvalidJson", f"body is not JSON: {error}") from error
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise IngestionError(400, "InvalidPayload", "body must be a JSON array of objects")
    return rows

"""What every Marketplace API call shares: api-version, request/correlation ids and the publisher bearer token."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from emulators.entra import MARKETPLACE_APP_ID, EntraEmulator, InvalidTokenError

SUPPORTED_API_VERSION = "2018-08-31"
REQUEST_ID_HEADER = "x-ms-requestid"
CORRELATION_ID_HEADER = "x-ms-correlationid"


class MarketplaceApiError(Exception):
    """An error answer with its complete JSON body."""

    def __init__(self, status_code: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(str(body))
        self.status_code = status_code
        self.body = body
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        """The JSON response."""
        return JSONResponse(self.body, status_code=self.status_code, headers=self.headers)


def api_error(status_code: int, code: str, message: str, headers: dict[str, str] | None = None) -> MarketplaceApiError:
    """An error in the `{"error": {"code", "message"}}` shape of the fulfilment API."""
    return MarketplaceApiError(status_code, {"error": {"code": code, "message": message}}, headers)


def require_api_version(request: Request) -> None:
    """400 ApiVersionUnspecified / UnsupportedApiVersion unless api-version=2018-08-31."""
    version = request.query_params.get("api-version")
    if not version:
        raise api_error(400, "ApiVersionUnspecified", "An API version is required, but was not specified.")
    if version != SUPPORTED_API_VERSION:
        raise api_error(
            400,
            "UnsupportedApiVersion",
            f"The HTTP resource that matches the request URI '{request.url}' does not support the API version "
            f"'{version}'.",
        )


class PublisherAuthenticator:
    """Checks the bearer token: issued by Entra for the Marketplace resource to an allowed publisher app."""

    def __init__(self, entra: EntraEmulator, publisher_app_ids: set[str]) -> None:
        self.entra = entra
        self.publisher_app_ids = publisher_app_ids

    def __call__(self, request: Request) -> dict[str, Any]:
        """The verified claims; 403 for a missing, invalid or expired token and for another app or tenant.

        Both published specs (fulfilment v2 and metering) document 403 for "the authentication token wasn't
        provided, is invalid, or the request is attempting to access an acquisition that doesn't belong to the
        current publisher"; neither documents a 401.
        """
        authorization = request.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise api_error(403, "Forbidden", "The authorization token is missing.")
        try:
            claims = self.entra.verify_access_token(token.strip(), audience=MARKETPLACE_APP_ID)
        except InvalidTokenError as error:
            raise api_error(403, "Forbidden", f"The authorization token is invalid: {error}") from error
        caller = claims.get("azp") or claims.get("appid")
        if claims["tid"] != self.entra.publisher_tenant.id or caller not in self.publisher_app_ids:
            raise api_error(
                403,
                "Forbidden",
                f"The application {caller} of tenant {claims['tid']} is not allowed to call this publisher's APIs.",
            )
        return claims


async def request_id_middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Echo x-ms-requestid and x-ms-correlationid, generating them when the caller sent none."""
    request_id = request.headers.get(REQUEST_ID_HEADER) or str(uuid.uuid4())
    correlation_id = request.headers.get(CORRELATION_ID_HEADER) or str(uuid.uuid4())
    response = await call_next(request)
    response.headers[REQUEST_ID_HEADER] = request_id
    response.headers[CORRELATION_ID_HEADER] = correlation_id
    return response

"""OAuth errors in the JSON shape Entra ID answers with (AADSTS codes, trace and correlation ids)."""

from __future__ import annotations

import datetime
import uuid

from fastapi.responses import JSONResponse


class EntraError(Exception):
    """An OAuth error; `aadsts` is the numeric AADSTS code, `status_code` the HTTP status."""

    def __init__(
        self, error: str, aadsts: int, description: str, status_code: int = 400, suberror: str | None = None
    ) -> None:
        super().__init__(f"{error}: AADSTS{aadsts}: {description}")
        self.error = error
        self.aadsts = aadsts
        self.description = description
        self.status_code = status_code
        # Entra's hint for the client beside `error` (consent_required, bad_token, ...); MSAL passes it on.
        self.suberror = suberror

    def response(self, correlation_id: str | None = None) -> JSONResponse:
        """The JSON error body with its trace and correlation ids."""
        trace_id = str(uuid.uuid4())
        correlation = correlation_id or str(uuid.uuid4())
        timestamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        body = {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.aadsts}: {self.description} Trace ID: {trace_id} "
                f"Correlation ID: {correlation} Timestamp: {timestamp}"
            ),
            "error_codes": [self.aadsts],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation,
        }
        if self.suberror:
            body["suberror"] = self.suberror
        return JSONResponse(body, status_code=self.status_code)


def invalid_request(description: str, aadsts: int = 900144) -> EntraError:
    """A malformed request (missing or bad parameter)."""
    return EntraError("invalid_request", aadsts, description)


def invalid_client(description: str, aadsts: int = 7000215) -> EntraError:
    """Client authentication failed (wrong secret, bad assertion)."""
    return EntraError("invalid_client", aadsts, description, status_code=401)


def unauthorized_client(app_id: str, tenant_id: str) -> EntraError:
    """The app is unknown in the tenant: not registered, or no service principal (no consent)."""
    return EntraError(
        "unauthorized_client",
        700016,
        f"Application with identifier '{app_id}' was not found in the directory '{tenant_id}'. This can happen if "
        "the application has not been installed by the administrator of the tenant or consented to by any user in "
        "the tenant. You may have sent your authentication request to the wrong tenant.",
    )


def invalid_scope(scope: str) -> EntraError:
    """The scope is not `<resource>/.default` for client credentials, or otherwise unusable."""
    return EntraError(
        "invalid_scope",
        1002012,
        f"The provided value for scope {scope} is not valid. Client credential flows must have a scope value "
        "with /.default suffixed to the resource identifier (application ID URI).",
    )


def invalid_resource(resource: str, tenant_id: str) -> EntraError:
    """The scope names a resource the directory does not know."""
    return EntraError(
        "invalid_resource",
        500011,
        f"The resource principal named {resource} was not found in the tenant named {tenant_id}. This can happen "
        "if the application has not been installed by the administrator of the tenant or consented to by any user "
        "in the tenant.",
    )


def invalid_grant(description: str, aadsts: int) -> EntraError:
    """An authorization code or refresh token that cannot be redeemed."""
    return EntraError("invalid_grant", aadsts, description)


def consent_required(app_id: str, app_name: str) -> EntraError:
    """A token asked for a resource scope the user (or an administrator) has not consented to for this app."""
    return EntraError(
        "invalid_grant",
        65001,
        f"The user or administrator has not consented to use the application with ID '{app_id}' named "
        f"'{app_name}'. Send an interactive authorization request for this user and resource.",
        suberror="consent_required",
    )


def tenant_not_found(tenant: str) -> EntraError:
    """The tenant in the path is unknown."""
    return EntraError(
        "invalid_tenant",
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the "
        "correct cloud.",
    )

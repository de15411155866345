"""One error hierarchy for the domain; the API maps each class to one HTTP status in one handler."""

from __future__ import annotations

from typing import Any


class ControlPlaneError(Exception):
    """Base of every expected error. `code` is stable and machine-readable.

    `status_code` belongs to the class (web.errors.http_status reads it from the type): a distinct cause is a
    subclass of its own, caught by type, never an instance with another status.
    """

    status_code = 500
    code = "InternalError"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ConfigurationError(ControlPlaneError):
    """Settings or catalog are missing or invalid; the process must not start."""

    code = "ConfigurationError"


class ValidationFailed(ControlPlaneError):
    status_code = 422
    code = "ValidationFailed"


class BadRequest(ControlPlaneError):
    status_code = 400
    code = "BadRequest"


class PayloadTooLarge(ControlPlaneError):
    """A request body above the configured size limit."""

    status_code = 413
    code = "PayloadTooLarge"


class Unauthenticated(ControlPlaneError):
    status_code = 401
    code = "Unauthenticated"


class Forbidden(ControlPlaneError):
    status_code = 403
    code = "Forbidden"


class NotFound(ControlPlaneError):
    """Also what a tenant gets for another tenant's resource, so existence does not leak."""

    status_code = 404
    code = "NotFound"


class Conflict(ControlPlaneError):
    status_code = 409
    code = "Conflict"


class IllegalTransition(Conflict):
    """A state machine refused a transition; recorded in the audit trail, not applied."""

    code = "IllegalTransition"


class UpstreamUnavailable(ControlPlaneError):
    """An external service (Marketplace, ARM, Entra) failed after retries."""

    status_code = 503
    code = "UpstreamUnavailable"


class TooManyRequests(ControlPlaneError):
    """A client over its rate limit, or webhook intake over its backlog bound; answered with Retry-After."""

    status_code = 429
    code = "TooManyRequests"

"""The HTTP conventions both Marketplace APIs share: api-version, publisher bearer token, request and
correlation ids, timeouts, and tenacity retries on 429/5xx that honour Retry-After.

The fulfilment and metering clients build on `MarketplaceHttp`; nothing else talks to Marketplace.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from azure.core.credentials import TokenCredential
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from core.azure.credentials import fresh_token_claims
from core.correlation import CORRELATION_HEADER, ensure_correlation_id
from core.errors import ControlPlaneError

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-ms-requestid"
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Marketplace documents 403 for an invalid token (and for a foreign acquisition); 401 is answered in practice.
TOKEN_REFUSED_STATUSES = frozenset({401, 403})
MAX_RETRY_AFTER_SECONDS = 60.0


class MarketplaceError(ControlPlaneError):
    """Marketplace answered with an error status (after retries, for the retryable ones).

    Marketplace's own status is `status`; ours is always 502: its 401 or 404 is about our call to Marketplace,
    never about the request of whoever we answer.
    """

    status_code = 502
    code = "MarketplaceError"

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_code: str | None,
        request_id: str | None,
        body: Any,
        retry_after_seconds: int | None = None,
    ) -> None:
        super().__init__(
            f"Marketplace answered {status}: {message}",
            details={"status": status, "error_code": error_code, "request_id": request_id},
        )
        self.status = status
        self.error_code = error_code
        self.request_id = request_id
        self.body = body
        # What Marketplace asked us to wait before trying again (429/503), for a caller that passes it on.
        self.retry_after_seconds = retry_after_seconds


class MarketplaceContractError(ControlPlaneError):
    """Marketplace answered with a shape its published contract does not allow (a malformed body, a paging link
    that leaves its host or loops): recorded as a failure for operators, never retried as if it were transient."""

    status_code = 502
    code = "MarketplaceContractError"


class MarketplaceUnreachable(ControlPlaneError):
    """The request may or may not have reached Marketplace: no answer came back."""

    status_code = 503
    code = "MarketplaceUnreachable"


@dataclass(frozen=True)
class MarketplaceResponse:
    status: int
    body: Any
    headers: httpx.Headers
    request_id: str


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


class MarketplaceHttp:
    """One Marketplace API (base URL) reached with the publisher's token."""

    def __init__(
        self,
        base_url: str,
        *,
        api_version: str,
        credential: TokenCredential,
        token_scope: str,
        verify: str | bool = True,
        timeout_seconds: float = 10.0,
        max_attempts: int = 5,
        backoff_initial_seconds: float = 0.5,
        backoff_max_seconds: float = 20.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.credential = credential
        self.token_scope = token_scope
        self.max_attempts = max_attempts
        self.backoff_initial_seconds = backoff_initial_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self._client = httpx.Client(verify=verify, timeout=httpx.Timeout(timeout_seconds))

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        retry_lost_responses: bool = True,
        expected: tuple[int, ...] = (200,),
        budget_seconds: float | None = None,
    ) -> MarketplaceResponse:
        """Send one logical request; retries keep the same x-ms-requestid.

        `budget_seconds` bounds the whole call, retries and Retry-After waits included, for a caller that holds a
        request open (the landing page): each attempt's timeout is cut to what is left, and a wait that would end
        beyond it is not waited; the last answer is raised instead (its Retry-After kept on the error).

        `retry_lost_responses=False` is for calls that must never be blindly repeated once they may
        have reached Marketplace (usage events): a transport failure then raises MarketplaceUnreachable.
        Statuses in `expected` are returned; other 4xx raise MarketplaceError at once.
        """
        request_id = str(uuid.uuid4())
        request_headers = {
            REQUEST_ID_HEADER: request_id,
            CORRELATION_HEADER: marketplace_correlation_id(ensure_correlation_id()),
            **(headers or {}),
        }
        url = self.url(path, params)

        def retryable(error: BaseException) -> bool:
            if isinstance(error, _RetryableStatus):
                return True
            if isinstance(error, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
                # Connecting failed: the request never left, always safe to repeat.
                return retry_lost_responses or isinstance(error, httpx.ConnectError)
            return False

        started = time.monotonic()
        stop: stop_base = stop_after_attempt(self.max_attempts)
        if budget_seconds is not None:
            stop = stop | stop_before_delay(budget_seconds)
        retrying = Retrying(retry=retry_if_exception(retryable), stop=stop, wait=self._wait, reraise=True)

        def send(token: str) -> httpx.Response:
            return self._client.request(
                method,
                url,
                json=json,
                headers={**request_headers, "Authorization": f"Bearer {token}"},
                timeout=self._attempt_timeout(started, budget_seconds),
            )

        try:
            for attempt in retrying:
                with attempt:
                    response = send(self.credential.get_token(self.token_scope).token)
                    if response.status_code in TOKEN_REFUSED_STATUSES and response.status_code not in expected:
                        # A cached token can go bad before it expires (Entra retired its signing key): send once
                        # more with a token issued from now on; a second refusal is Marketplace's real answer.
                        response = send(self._fresh_token())
                    if response.status_code in RETRYABLE_STATUSES and response.status_code not in expected:
                        raise _RetryableStatus(response)
        except _RetryableStatus as exhausted:
            raise self._error(exhausted.response, request_id) from None
        except httpx.HTTPError as error:
            raise MarketplaceUnreachable(
                f"no answer from Marketplace for {method} {path}: {type(error).__name__}",
                details={"request_id": request_id},
            ) from error
        if response.status_code not in expected:
            raise self._error(response, request_id)
        return MarketplaceResponse(response.status_code, _json_or_none(response), response.headers, request_id)

    def _fresh_token(self) -> str:
        """A token newer than any cached one."""
        return self.credential.get_token(self.token_scope, claims=fresh_token_claims()).token

    def url(self, path: str, params: dict[str, str] | None = None) -> httpx.URL:
        """The URL of a path under the base URL, or of an absolute link Marketplace gave (an `@nextLink`).

        A link's own query is kept as given (httpx's `params=` would replace it, dropping its continuationToken);
        api-version is added only when it is absent. A link must stay on the base URL's scheme, host and port:
        our bearer token goes with it.
        """
        if path.startswith(("https://", "http://")):
            url = httpx.URL(path)
            base = httpx.URL(self.base_url)
            if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
                raise MarketplaceContractError(
                    "Marketplace gave a link to another host; it is not followed",
                    details={"link_host": url.host, "base_host": base.host},
                )
        else:
            url = httpx.URL(f"{self.base_url}{path}")
        if "api-version" not in url.params:
            url = url.copy_merge_params({"api-version": self.api_version})
        return url.copy_merge_params(params) if params else url

    def _attempt_timeout(self, started: float, budget_seconds: float | None) -> httpx.Timeout:
        """The client's timeout, cut to what is left of the budget."""
        if budget_seconds is None:
            return self._client.timeout
        left = max(budget_seconds - (time.monotonic() - started), 0.05)
        return httpx.Timeout(min(left, self._client.timeout.read or left))

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, _RetryableStatus):
            retry_after = error.response.headers.get("retry-after")
            if retry_after is not None:
                try:
                    return min(float(retry_after), MAX_RETRY_AFTER_SECONDS)
                except ValueError:
                    pass
        backoff = wait_exponential_jitter(initial=self.backoff_initial_seconds, max=self.backoff_max_seconds)
        return float(backoff(state))

    @staticmethod
    def _error(response: httpx.Response, request_id: str) -> MarketplaceError:
        body = _json_or_none(response)
        error_code: str | None = None
        message = response.text[:500]
        if isinstance(body, dict):
            nested = body.get("error")
            error: dict[str, Any] = nested if isinstance(nested, dict) else body
            error_code = error.get("code") if isinstance(error.get("code"), str) else None
            message = str(error.get("message") or message)
        return MarketplaceError(
            response.status_code,
            message,
            error_code=error_code,
            request_id=request_id,
            body=body,
            retry_after_seconds=_retry_after(response),
        )


def _retry_after(response: httpx.Response) -> int | None:
    """Retry-After in whole seconds (the delta form; an HTTP date is ignored), or None."""
    value = response.headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return math.ceil(seconds) if math.isfinite(seconds) and seconds >= 0 else None


def marketplace_correlation_id(correlation_id: str) -> str:
    """The UUID Marketplace's x-ms-correlationid must be (the spec's format: uuid).

    Our own ids are UUIDs already; a caller's id that is not one (a header like `portal-req.42`) maps to a stable
    name-based UUID, and both are logged so a Marketplace support case can be joined to our logs.
    """
    try:
        return str(uuid.UUID(correlation_id))
    except ValueError:
        mapped = str(uuid.uuid5(uuid.NAMESPACE_URL, f"x-ms-correlationid:{correlation_id}"))
        logger.info(
            "correlation id mapped to a UUID for Marketplace",
            extra={"caller_correlation_id": correlation_id[:128], "marketplace_correlation_id": mapped},
        )
        return mapped


def _json_or_none(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None

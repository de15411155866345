"""Security headers from one list: on every HTML response and on every browser path (web.browser_paths) whatever its
content type (pages, JSON for the live parts, static files)."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.browser_paths import is_browser_path

# No inline script or style anywhere: scripts and CSS come from /portal/static, charts are inline SVG.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
HSTS_VALUE = "max-age=31536000; includeSubDomains"
# The one list: every HTML response and every portal response carries all of these.
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class SecurityHeadersMiddleware:
    """Adds the security headers to HTML and portal responses, nosniff to every other; HSTS only over https.

    `scheme` is the connection's own unless a configured trusted proxy said otherwise (CP_TRUSTED_PROXIES).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        portal_path = is_browser_path(str(scope.get("path", "")))
        over_https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if portal_path or headers.get("content-type", "").startswith("text/html"):
                    headers.update(SECURITY_HEADERS)
                    if over_https:
                        headers["Strict-Transport-Security"] = HSTS_VALUE
                else:
                    headers["X-Content-Type-Options"] = "nosniff"
            await send(message)

        await self.app(scope, receive, send_with_headers)

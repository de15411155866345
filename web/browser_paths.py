"""The paths browsers use: the portal, the sign-in callback and the purchase pages a Marketplace link opens.

One list, read by the security headers (every answer on these paths carries them, whatever its content type) and
by the rate limits (these paths share the portal's per-person bucket).
"""

from __future__ import annotations

# The landing page's path is the URL configured in Partner Center: it must never change.
LANDING_PATH = "/marketplace/landing"
PURCHASE_PATH_PREFIX = "/marketplace/subscriptions/"
SIGN_IN_CALLBACK_PATH = "/auth/callback"
BROWSER_PATH_PREFIXES = ("/portal", SIGN_IN_CALLBACK_PATH, LANDING_PATH, PURCHASE_PATH_PREFIX)
# Static files: served without a bucket (a page's own stylesheet must not count against its visitor).
STATIC_PATH_PREFIX = "/portal/static/"


def is_browser_path(path: str) -> bool:
    """Whether `path` is one browsers open (the portal, the sign-in callback or a purchase page)."""
    return path.startswith(BROWSER_PATH_PREFIXES)

"""People signed in to the portal through the Entra emulator's sign-in page, as a browser without JavaScript does."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.integration.lifecycle.marketplace_driver import Browser, Emulators

OPERATOR_USERNAME = "olivia.operator@vastpublisher.onmicrosoft.com"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class PortalVisitor:
    """A signed-in browser (its cookie is the session) and the session's CSRF token for forms."""

    browser: Browser
    csrf_token: str

    def close(self) -> None:
        self.browser.close()


def sign_in_to_portal(emulators: Emulators, base_url: str, username: str) -> PortalVisitor:
    """Open the portal's sign-in, pick `username` on the Entra page, and land on the visitor's home."""
    browser = Browser(emulators)
    home = browser.open_landing(f"{base_url}/portal/sign-in", username=username)
    assert home.status_code == 200, (home.status_code, home.url)
    assert home.url.path.startswith("/portal/"), home.url
    match = CSRF_FIELD.search(home.text)
    assert match is not None, home.text
    return PortalVisitor(browser, match.group(1))

"""Coming back through the sign-in: back after signing in lands on the page, a sign-in this browser did not start
(another tab's) says in plain words to start again, with a link that does, and nothing quotes msal or the state."""

from __future__ import annotations

import html
import re

import httpx
import pytest

from harness.marketplace_demo import CONTOSO_ADMIN
from tests.integration.lifecycle.conftest import ControlPlane
from tests.integration.lifecycle.marketplace_driver import Browser, Emulators

pytestmark = [pytest.mark.timeout(120)]


def _entra_sign_in(http: httpx.Client, entra_page: httpx.Response) -> httpx.Response:
    """Pick the account on the Entra emulator's sign-in page; the browser follows Entra back to our callback."""
    match = re.search(r'name="request_id" value="([^"]+)"', entra_page.text)
    assert match is not None, entra_page.text[:600]
    form = {"request_id": html.unescape(match.group(1)), "username": CONTOSO_ADMIN, "action": "sign-in"}
    return http.post(str(entra_page.url), data=form)


def _callback_url(response: httpx.Response) -> str:
    """The /auth/callback URL Entra sent the browser to (what the history holds for back)."""
    return next(str(hop.url) for hop in [*response.history, response] if hop.url.path == "/auth/callback")


def test_back_to_the_sign_in_callback_while_signed_in_lands_on_the_purchase_page(
    control_plane: ControlPlane, emulators: Emulators, browser: Browser
) -> None:
    purchase = emulators.purchase()
    landing = browser.open_landing(purchase["landing_page_url"])
    assert landing.status_code == 200, landing.text
    assert landing.url.path == "/marketplace/landing"
    callback = _callback_url(landing)

    # Back: the browser opens the callback again, with the code and state already redeemed.
    again = browser.http.get(callback)

    assert again.status_code == 200, again.text
    assert again.url.path == "/marketplace/landing"
    assert 'name="region"' in again.text
    assert "expired" not in again.text


def test_a_sign_in_started_in_another_tab_asks_in_plain_words_to_start_again(
    control_plane: ControlPlane, emulators: Emulators
) -> None:
    purchase = emulators.purchase()
    with httpx.Client(verify=emulators.ca_bundle, timeout=15, follow_redirects=True) as http:
        first_tab = http.get(purchase["landing_page_url"])
        assert "Sign in to your account" in first_tab.text
        # A second tab opens the link too: its sign-in replaces the first one's in the session.
        second_tab = http.get(purchase["landing_page_url"])
        assert "Sign in to your account" in second_tab.text

        page = _entra_sign_in(http, first_tab)

    assert page.status_code == 400
    assert page.url.path == "/auth/callback"
    assert "Please sign in again" in page.text
    assert "started in another tab or window" in page.text
    for jargon in ("state mismatch", "msal", " vs "):
        assert jargon not in page.text
    restart = re.search(r'<a class="button primary" href="([^"]+)">Start the sign-in again</a>', page.text)
    assert restart is not None, page.text
    # The link opens the purchase again, which starts a fresh sign-in.
    assert html.unescape(restart.group(1)).startswith("/marketplace/landing?token=")


def test_a_stale_callback_without_a_session_offers_a_new_sign_in(control_plane: ControlPlane) -> None:
    stale = httpx.get(f"{control_plane.base_url}/auth/callback?code=old&state=old", timeout=15)

    assert stale.status_code == 400
    assert "Please sign in again" in stale.text
    assert 'href="/portal/sign-in"' in stale.text

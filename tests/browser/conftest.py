"""A running control plane (API, worker, scheduler) on the emulators, and headless chromium to drive the portal.

The story data is real: purchases go through Marketplace and the landing page, clusters are provisioned
by the controller through the ARM emulator, people sign in on the Entra emulator's sign-in page.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from core.db import Database
from core.models import metadata
from core.settings import Settings
from emulators.suite import EmulatorSuite
from harness.emulator_environment import settings_for_emulators
from harness.processes import ProcessGroup, free_port, wait_until_listening
from tests.conftest import CATALOG_TABLES

CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "portal"
CONTOSO_ADMIN = "alice.admin@contoso.onmicrosoft.com"
FABRIKAM_ADMIN = "frank.admin@fabrikam.onmicrosoft.com"
OPERATOR = "olivia.operator@vastpublisher.onmicrosoft.com"
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass
class ControlPlane:
    """The processes under test and where to reach them."""

    base_url: str
    settings: Settings
    group: ProcessGroup


@dataclass
class EmulatorControl:
    """The emulators' control APIs and facts (emulators.json)."""

    state: dict[str, Any]
    http: httpx.Client

    def call(self, emulator: str, method: str, path: str, **kwargs: Any) -> Any:
        """Call `/_emulator{path}` of one emulator; fails the test on an error status."""
        response = self.http.request(method, f"{self.state[emulator]['control_url']}{path}", **kwargs)
        assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def tenant_id(self, key: str) -> str:
        tenant_id: str = self.state["entra"]["tenants"][key]["id"]
        return tenant_id


@pytest.fixture(scope="package")
def portal_database(database_url: str) -> Iterator[Database]:
    """The database under test for the whole story; emptied (catalog kept) after the package."""
    database = Database(database_url)
    yield database
    with database.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            if table.name not in CATALOG_TABLES:
                connection.execute(table.delete())
    database.dispose()


@pytest.fixture(scope="package")
def emulator_control(emulator_suite: EmulatorSuite) -> Iterator[EmulatorControl]:
    state = emulator_suite.state()
    # emulators.json names the ARM URL `base_url`; settings_for_emulators reads `endpoint` (see the report).
    state["arm"].setdefault("endpoint", state["arm"]["base_url"])
    with httpx.Client(verify=state["ca_bundle"], timeout=15) as http:
        yield EmulatorControl(state, http)


@pytest.fixture(scope="package")
def control_plane(
    tmp_path_factory: pytest.TempPathFactory,
    base_settings: Settings,
    emulator_control: EmulatorControl,
    portal_database: Database,
) -> Iterator[ControlPlane]:
    """API + worker + scheduler on the emulators; Marketplace sends its webhooks and buyers here.

    It stops before `portal_database` empties the tables (it depends on it).
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = settings_for_emulators(
        emulator_control.state,
        data_dir=base_settings.data_dir,
        database_url=base_settings.database_url,
        broker_url=base_settings.broker_url,
        log_format="json",
        outbox_poll_interval_seconds=0.2,
        session_secret="portal-session-secret-" + uuid.uuid4().hex,
        api_port=port,
        public_base_url=base_url,
        provisioning_poll_interval_seconds=0.3,
        provisioning_retry_backoff_seconds=0.2,
        provisioning_retry_budget=2,
        arm_retry_total=2,
        arm_retry_backoff_seconds=0.1,
        marketplace_backoff_initial_seconds=0.2,
        private_endpoint_sync_interval_seconds=1.0,
    )
    environment = {**os.environ, **settings.as_environment()}
    group = ProcessGroup(tmp_path_factory.mktemp("portal-logs"), environment)
    group.add("api", "api")
    group.add("worker", "worker", "--concurrency=2")
    group.add("beat", "beat")
    group.start_all()
    try:
        # Three processes import the app at once: on a loaded 2-core machine that alone can take a minute.
        wait_until_listening(base_url, timeout_seconds=180, group=group)
        emulator_control.call("marketplace", "PUT", "/webhook", json={"url": f"{base_url}/marketplace/webhook"})
        emulator_control.call("marketplace", "PUT", "/landing-page", json={"url": f"{base_url}/marketplace/landing"})
        yield ControlPlane(base_url, settings, group)
    finally:
        emulator_control.call("marketplace", "PUT", "/webhook", json={"url": None})
        group.stop_all()


@pytest.fixture(scope="package")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def chromium(playwright_driver: Playwright) -> Iterator[Browser]:
    """Debian's chromium, headless (no browser is downloaded)."""
    if not Path(CHROMIUM_PATH).exists():
        pytest.fail(f"{CHROMIUM_PATH} is missing: install Debian's chromium package (./dev test does it as root)")
    browser = playwright_driver.chromium.launch(executable_path=CHROMIUM_PATH, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def new_context(chromium: Browser) -> Iterator[Any]:
    """Make browser contexts (one per person); all are closed after the test."""
    contexts: list[BrowserContext] = []

    def make(viewport: dict[str, int] | None = None) -> BrowserContext:
        # The emulators serve HTTPS with a CA generated at start, which chromium's own store cannot know.
        context = chromium.new_context(
            viewport=viewport or LAPTOP,  # type: ignore[arg-type]
            accept_downloads=True,
            ignore_https_errors=True,
        )
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


def sign_in(context: BrowserContext, base_url: str, username: str, path: str = "/portal") -> Page:
    """Open the portal, sign in on the Entra emulator's page as `username`, and return the page we land on."""
    page = context.new_page()
    page.goto(f"{base_url}{path}")
    if page.url.startswith(f"{base_url}/portal") and "Sign in to the portal" in page.content():
        page.get_by_role("link", name="Sign in with Microsoft Entra ID").click()
    page.wait_for_url("**/authorize**")
    page.get_by_label(username, exact=False).check()
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/portal/**")
    expect(page.locator("#signed-in-as")).to_be_visible()
    return page


def screenshot(page: Page, name: str) -> None:
    """Keep a full-page screenshot under test-artifacts/portal/ (gitignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

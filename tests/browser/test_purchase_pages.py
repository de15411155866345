"""The purchase pages in a real browser: what a paying customer sees first.

The landing page reads as a purchase confirmation with pickers; a refused field says why beside the field in plain
words; the keyboard alone submits it. The progress page then follows provisioning to ready, or to a failure that
names what to do. Screenshots go to test-artifacts/portal/ (ignored by git).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, expect

from tests.browser.conftest import CONTOSO_ADMIN, FABRIKAM_ADMIN, ControlPlane, EmulatorControl, screenshot
from tests.browser.story import azure_subscription

pytestmark = [pytest.mark.timeout(300)]
# The controller's whole run (retries included) on a loaded machine: what the page may take to reach a terminal state.
PROVISIONING_TIMEOUT_MS = 180_000
ContextFactory = Callable[..., BrowserContext]
# Words of validators and libraries that must never reach a customer.
JARGON = ("Value error", "String should match pattern", "^[", "Input should be", "state mismatch", "pydantic")


@pytest.fixture
def csp_violations(new_context: ContextFactory) -> tuple[BrowserContext, list[str]]:
    """A browser context that notes every Content-Security-Policy violation its pages report."""
    context = new_context()
    violations: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    context.on("console", note)
    return context, violations


def _buy(emulators: EmulatorControl, tenant_key: str, username: str, quantity: int = 2) -> dict[str, str]:
    """A purchase in the Marketplace emulator for the tenant; returns its landing link and subscription id."""
    bought: dict[str, str] = emulators.call(
        "marketplace",
        "POST",
        "/purchases",
        json={
            "plan_id": "standard",
            "quantity": quantity,
            "beneficiary": {
                "tenant_id": emulators.tenant_id(tenant_key),
                "email": username,
                "object_id": str(uuid.uuid4()),
            },
        },
    )
    return bought


def _open_landing_signed_in(context: BrowserContext, landing_url: str, username: str, base_url: str) -> Page:
    """Open the purchase link, sign in on the Entra emulator's page, and return the purchase page."""
    page = context.new_page()
    page.goto(landing_url)
    page.wait_for_url("**/authorize**")
    page.get_by_label(username, exact=False).check()
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/marketplace/landing?**")
    return page


def _assert_no_inline_script_or_style(page: Page) -> None:
    # The page as served (the live DOM gains attributes from the browser itself).
    markup = page.context.request.get(page.url).text()
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", markup) is None, "an inline script"
    assert "<style" not in markup, "an inline style sheet"
    assert " style=" not in markup, "an inline style attribute"


def test_the_purchase_page_confirms_the_purchase_refuses_a_field_in_plain_words_and_submits_by_keyboard(
    control_plane: ControlPlane, emulator_control: EmulatorControl, csp_violations: tuple[BrowserContext, list[str]]
) -> None:
    context, violations = csp_violations
    app_id = control_plane.settings.control_plane_client_id
    assert app_id is not None
    target = azure_subscription(emulator_control, "contoso", app_id)
    bought = _buy(emulator_control, "contoso", CONTOSO_ADMIN)

    page = _open_landing_signed_in(context, bought["landing_page_url"], CONTOSO_ADMIN, control_plane.base_url)

    # The purchase as bought: the plan's name, its size, the term and what the plan includes.
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your purchase")
    expect(page.locator("#plan")).to_contain_text("Standard")
    expect(page.locator("#quantity")).to_have_text("2 units: 6 nodes, 50 TiB usable")
    expect(page.locator("#term")).to_contain_text("Monthly")
    expect(page.locator("#price li")).to_have_count(3)
    expect(page.locator("#signed-in-as")).to_be_visible()  # the portal's layout, signed in
    # The pickers: the admin's subscriptions our application may deploy to; picking one shows its regions.
    picker = page.get_by_label("Your Azure subscriptions that our application may deploy to")
    expect(picker.locator(f'option[value="{target}"]')).to_have_count(1)
    picker.select_option(target)
    page.get_by_role("button", name="Show this subscription's regions").click()
    expect(page.get_by_label("Azure subscription", exact=True)).to_have_value(target)
    expect(page.get_by_label("Azure region")).not_to_have_value("")
    # Inline help for the Private Link and key choices.
    expect(page.locator("#pls-hint")).to_contain_text("private endpoints")
    expect(page.locator("#key-hint")).to_contain_text("Key Vault in your subscription")
    expect(page.locator("button.primary-action")).to_have_count(1)
    _assert_no_inline_script_or_style(page)
    screenshot(page, "purchase-page")

    # A rotation period out of range, sent with the Enter key from the field itself.
    page.get_by_label("Azure region").fill("westeurope")
    rotation = page.get_by_label("Rotate the key every (days)")
    rotation.fill("3")
    rotation.press("Enter")

    expect(page.locator("#rotation_days-error")).to_have_text("Enter a whole number of days from 7 to 730.")
    expect(page.get_by_label("Rotate the key every (days)")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_contain_text("Rotate the key every: Enter a whole number of days")
    # The other choices were kept, and nothing of the validators' wording shows.
    expect(page.get_by_label("Azure subscription", exact=True)).to_have_value(target)
    for words in JARGON:
        assert words not in page.inner_text("main"), words
    screenshot(page, "purchase-page-field-error")

    fixed = page.get_by_label("Rotate the key every (days)")
    fixed.fill("90")
    fixed.press("Enter")

    page.wait_for_url(re.compile(rf"/marketplace/subscriptions/{re.escape(bought['subscription_id'])}$"))
    expect(page.locator("#progress-steps li")).to_have_count(5)
    screenshot(page, "progress-provisioning")
    # The page follows the cluster by itself until it is ready, then says what happens next and stops polling.
    expect(page.locator("#progress-headline")).to_have_text("Your cluster is ready", timeout=PROVISIONING_TIMEOUT_MS)
    expect(page.locator("#progress-steps .step-state")).to_have_text(["Done"] * 5)
    # Every step has run at least once now: each says how long it usually takes, from our own history.
    for typical in page.locator("#progress-steps .typical").all_inner_texts():
        assert re.fullmatch(r"usually (under 10 seconds|about \d+ (seconds|minutes|hours))", typical), typical
    expect(page.locator("#progress-action")).to_contain_text("What happens next:")
    expect(page.locator("#progress-hint")).to_contain_text("no longer updates itself")
    _assert_no_inline_script_or_style(page)
    screenshot(page, "progress-ready")
    assert violations == []


def test_the_progress_page_of_a_failed_set_up_says_what_the_customer_must_do(
    control_plane: ControlPlane, emulator_control: EmulatorControl, csp_violations: tuple[BrowserContext, list[str]]
) -> None:
    context, violations = csp_violations
    app_id = control_plane.settings.control_plane_client_id
    assert app_id is not None
    # A scale-set quota of one VM: the cluster's six nodes cannot fit, which only the customer can change.
    target = azure_subscription(emulator_control, "fabrikam", app_id, quota_limit=1)
    bought = _buy(emulator_control, "fabrikam", FABRIKAM_ADMIN)
    page = _open_landing_signed_in(context, bought["landing_page_url"], FABRIKAM_ADMIN, control_plane.base_url)
    page.get_by_label("Azure subscription", exact=True).fill(target)
    page.get_by_label("Azure region").fill("westeurope")
    page.get_by_role("button", name="Confirm and deploy").click()
    page.wait_for_url(re.compile(r"/marketplace/subscriptions/[^/]+$"))

    expect(page.locator("#progress-headline")).to_have_text("Setting up your cluster needs your action", timeout=90_000)
    expect(page.locator("#progress-who")).to_have_text("What you need to do:")
    expect(page.locator("#progress-what-to-do")).to_contain_text("raise the virtual machine quota")
    expect(page.locator("#progress-steps .step-failed .step-state")).to_have_text("Failed")
    expect(page.locator("#progress-state")).to_have_class(re.compile(r"\bstate-failed\b"))
    expect(page.locator("#progress-hint")).to_contain_text("no longer updates itself")
    screenshot(page, "progress-failed")
    assert violations == []

"""Accessibility checks for portal pages in the browser tests: axe-core, and reaching controls with the keyboard.

axe-core comes from npm (`tools/node`, installed by `npm ci`) and is evaluated in the page by Playwright, never
loaded from a CDN. Evaluation goes through the browser's debugging protocol, so the portal's CSP (`script-src
'self'`) stays as strict as in production.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page

AXE_SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "node" / "node_modules" / "axe-core" / "axe.min.js"
# What a page must never have; "moderate" and "minor" findings are reported by axe but do not fail a test.
BLOCKING_IMPACTS = frozenset({"serious", "critical"})
# Enough presses to cross the longest page the tests show without looping forever on a focus trap.
MAX_TAB_PRESSES = 300


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations of the page as it is now (WCAG 2.x A and AA rules and best practices)."""
    if not AXE_SCRIPT.exists():
        raise AssertionError(f"{AXE_SCRIPT} is missing: run `npm ci --prefix tools/node`")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SCRIPT.read_text(encoding="utf-8"))
    results: dict[str, Any] = page.evaluate("async () => await window.axe.run(document, {resultTypes: ['violations']})")
    violations: list[dict[str, Any]] = results["violations"]
    return violations


def assert_accessible(page: Page) -> None:
    """Fail with each serious or critical axe-core violation of the page, naming the rule and the elements."""
    blocking = [item for item in axe_violations(page) if item.get("impact") in BLOCKING_IMPACTS]
    if blocking:
        lines = [f"{page.url}: {len(blocking)} serious or critical accessibility violations"]
        for item in blocking:
            targets = ", ".join(" ".join(node["target"]) for node in item["nodes"][:5])
            lines.append(f"- {item['id']} ({item['impact']}): {item['help']} at {targets}")
        raise AssertionError("\n".join(lines))


def tab_to(page: Page, target: Locator) -> int:
    """Press Tab from the top of the page until `target` has the focus; returns how many presses it took."""
    page.locator("body").focus()
    page.evaluate("() => document.activeElement instanceof HTMLElement && document.activeElement.blur()")
    for presses in range(1, MAX_TAB_PRESSES + 1):
        page.keyboard.press("Tab")
        if target.evaluate("(element) => element === document.activeElement"):
            return presses
    raise AssertionError(f"{target} was not reached with {MAX_TAB_PRESSES} presses of Tab")

"""The Marketplace part of the sandbox: a purchase through the emulator taken through the landing page to Subscribed.

`CustomerBrowser` is what a customer's browser does on the landing page (follow redirects, sign in on the
Entra emulator's page, submit the deployment form); the integration tests drive the same class.
"""

from __future__ import annotations

import html
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import typer
from sqlmodel import select

from core.clusters.models import Cluster
from core.db import Database
from core.redaction import is_secret_name
from core.settings import Settings
from core.subscriptions.models import MarketplaceOperation
from emulators.suite import EmulatorSuite, EmulatorSuiteConfig, build_default_suite
from harness.emulator_environment import settings_for_emulators

CONTOSO_TENANT_ID = "3f8b2a61-9d4e-4c7a-8e15-2b6c9d0a4f71"
CONTOSO_ADMIN = "alice.admin@contoso.onmicrosoft.com"
DEFAULT_CHOICES = {
    "region": "westeurope",
    "azure_subscription_id": "6b9a3c2d-1e4f-4a5b-8c7d-9e0f1a2b3c4d",
    "resource_group": "",  # each cluster gets a resource group of its own
    "pls_visibility_subscriptions": "*",
    "pls_auto_approval_subscriptions": "6b9a3c2d-1e4f-4a5b-8c7d-9e0f1a2b3c4d",
    "key_vault_sku": "premium",
    "key_type": "RSA-HSM",
    "key_size": "4096",
    "rotation_days": "30",
}


def deployment_choices(emulator_state: dict[str, Any], tenant_id: str = CONTOSO_TENANT_ID) -> dict[str, str]:
    """Landing-page choices that target the tenant's subscription in the ARM emulator (when it runs)."""
    arm_subscriptions = emulator_state.get("arm", {}).get("subscriptions", [])
    target = next((item["id"] for item in arm_subscriptions if item["tenant_id"] == tenant_id), None)
    return {**DEFAULT_CHOICES, "azure_subscription_id": target or DEFAULT_CHOICES["azure_subscription_id"]}


def _field(pattern: str, page: str) -> str:
    match = re.search(pattern, page)
    if match is None:
        raise RuntimeError(f"the page has no {pattern!r}: {page[:600]!r}")
    return html.unescape(match.group(1))


class CustomerBrowser:
    """Cookies, redirects and forms, like a browser without JavaScript."""

    def __init__(self, ca_bundle: str, secrets_seen: list[str] | None = None) -> None:
        # With `secrets_seen`, every token, code and state this browser carries in a URL is noted there, so a
        # run can prove none of them was written down anywhere.
        hooks: dict[str, list[Callable[..., Any]]] = (
            {"request": [partial(_note_secrets, secrets_seen)]} if secrets_seen is not None else {}
        )
        self.http = httpx.Client(verify=ca_bundle, timeout=15, follow_redirects=True, event_hooks=hooks)

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def open_landing(self, landing_url: str, username: str = CONTOSO_ADMIN) -> httpx.Response:
        """Open the landing link; sign in on the Entra page when asked; return the page we land on."""
        page = self.http.get(landing_url)
        if "Sign in to your account" in page.text:
            request_id = _field(r'name="request_id" value="([^"]+)"', page.text)
            page = self.http.post(
                str(page.url), data={"request_id": request_id, "username": username, "action": "sign-in"}
            )
        return page

    def confirm(self, landing_page: httpx.Response, choices: dict[str, str]) -> httpx.Response:
        """Submit the deployment form of a landing page; returns the progress page."""
        form = {
            "csrf_token": _field(r'name="csrf_token" value="([^"]+)"', landing_page.text),
            "token": _field(r'name="token" value="([^"]+)"', landing_page.text),
            **choices,
        }
        base = str(landing_page.url).split("/marketplace/")[0]
        return self.http.post(f"{base}/marketplace/landing", data=form)


def _note_secrets(secrets_seen: list[str], request: httpx.Request) -> None:
    for name, value in request.url.params.multi_items():
        if is_secret_name(name) and value:
            secrets_seen.append(value)


def run_purchase_demo(emulator_state: dict[str, Any], base_url: str, timeout_seconds: float = 120) -> str | None:
    """Purchase -> landing page -> confirmation -> activation; prints each step. The subscription id once Subscribed."""
    marketplace = emulator_state["marketplace"]
    control = httpx.Client(base_url=marketplace["control_url"], verify=emulator_state["ca_bundle"], timeout=10)
    browser = CustomerBrowser(emulator_state["ca_bundle"])
    try:
        control.put("/webhook", json={"url": f"{base_url}/marketplace/webhook"}).raise_for_status()
        control.put("/landing-page", json={"url": f"{base_url}/marketplace/landing"}).raise_for_status()
        purchase = control.post(
            "/purchases",
            json={
                "plan_id": "standard",
                "quantity": 2,
                "beneficiary": {"tenant_id": CONTOSO_TENANT_ID, "email": CONTOSO_ADMIN},
            },
        )
        purchase.raise_for_status()
        subscription_id = purchase.json()["subscription_id"]
        _say(f"Marketplace purchase {subscription_id}: standard x 2, PendingFulfillmentStart")
        landing = browser.open_landing(purchase.json()["landing_page_url"])
        _say(f"landing page after Entra sign-in: HTTP {landing.status_code}")
        progress = browser.confirm(landing, deployment_choices(emulator_state))
        _say(f"confirmed: HTTP {progress.status_code} at {progress.url.path}")
        deadline = time.monotonic() + timeout_seconds
        status = "PendingFulfillmentStart"
        while time.monotonic() < deadline:
            status = control.get("/state").json()
            status = next(item for item in status["subscriptions"] if item["id"] == subscription_id)[
                "saasSubscriptionStatus"
            ]
            if status == "Subscribed":
                break
            time.sleep(1)
        events = browser.http.get(f"{base_url}/marketplace/subscriptions/{subscription_id}/progress").json()
        for event in events["events"]:
            _say(f"  {event['occurred_at'][11:19]} {event['action']} ({event['outcome']})")
        _say(f"Marketplace status: {status}; cluster: {events['cluster_status']}")
        return subscription_id if status == "Subscribed" else None
    finally:
        browser.close()
        control.close()


@dataclass(frozen=True)
class ExpectedEnd:
    """Where a customer action must leave both sides: our operation, Marketplace's operation and subscription."""

    ours: str  # our operation's state and result, e.g. "reported Success"
    marketplace_operation: str
    subscription: str  # Marketplace's subscription: status, plan x quantity


# Customer actions in the Azure portal, as the Marketplace emulator's control API takes them, and their ends.
# The changes are upgrades: a change that does not reduce capacity is always accepted, whatever the usage.
LIFECYCLE_ACTIONS: list[tuple[str, dict[str, Any] | None, ExpectedEnd]] = [
    ("change-quantity", {"quantity": 20}, ExpectedEnd("reported Success", "Succeeded", "Subscribed standard x 20")),
    (
        "change-plan",
        {"plan_id": "performance"},
        ExpectedEnd("reported Success", "Succeeded", "Subscribed performance x 20"),
    ),
    ("suspend", None, ExpectedEnd("reported", "Succeeded", "Suspended performance x 20")),
    ("reinstate", None, ExpectedEnd("reported Success", "Succeeded", "Subscribed performance x 20")),
    ("renew", None, ExpectedEnd("reported", "Succeeded", "Subscribed performance x 20")),
    ("unsubscribe", None, ExpectedEnd("reported", "Succeeded", "Unsubscribed performance x 20")),
]


def run_lifecycle_demo(
    emulator_state: dict[str, Any], database: Database, subscription_id: str, timeout_seconds: float = 90
) -> bool:
    """Each customer action in turn: webhook -> verified -> decided and reported -> converged; prints both sides.

    True when every action reached its expected end on both sides; each miss is printed with what was expected.
    """
    control = httpx.Client(
        base_url=emulator_state["marketplace"]["control_url"], verify=emulator_state["ca_bundle"], timeout=10
    )
    all_as_expected = True
    try:
        for action, body, expected in LIFECYCLE_ACTIONS:
            response = control.post(f"/subscriptions/{subscription_id}/{action}", json=body)
            response.raise_for_status()
            operation_id = response.json()["id"]
            deadline = time.monotonic() + timeout_seconds
            operation = None
            while time.monotonic() < deadline:
                with database.session() as session:
                    operation = session.get(MarketplaceOperation, operation_id)
                    cluster = session.exec(select(Cluster).where(Cluster.subscription_id == subscription_id)).first()
                # Next action only once the cluster has caught up, as a customer would wait for the portal.
                caught_up = cluster is None or cluster.observed_generation >= cluster.desired_generation
                if operation is not None and operation.state in ("reported", "failed") and caught_up:
                    break
                time.sleep(0.5)
            state = control.get("/state").json()
            remote = next(item for item in state["operations"] if item["id"] == operation_id)
            subscription = next(item for item in state["subscriptions"] if item["id"] == subscription_id)
            ours = f"{operation.state} {operation.result or ''}".strip() if operation else "not received"
            theirs = f"{subscription['saasSubscriptionStatus']} {subscription['planId']} x {subscription['quantity']}"
            _say(f"{action:16} ours: {ours:18} Marketplace: operation {remote['status']}, subscription {theirs}")
            reached = ExpectedEnd(ours, remote["status"], theirs)
            if reached != expected:
                all_as_expected = False
                typer.secho(
                    f"  [marketplace] {action} missed its expected end: ours {expected.ours}, Marketplace operation "
                    f"{expected.marketplace_operation}, subscription {expected.subscription}"
                    + (f"; reason: {operation.failure_reason}" if operation and operation.failure_reason else ""),
                    fg=typer.colors.RED,
                )
        return all_as_expected
    finally:
        control.close()


def _say(message: str) -> None:
    typer.echo(f"  [marketplace] {message}")


def start_emulators(data_dir: Path) -> EmulatorSuite:
    """Entra ID, Marketplace and ARM emulators on loopback ports, their state under data_dir/emulators."""
    suite = build_default_suite(EmulatorSuiteConfig(state_dir=data_dir / "emulators", seed=20261126))
    suite.start()
    return suite


def emulator_settings(emulator_state: dict[str, Any], base: Settings) -> Settings:
    """The sandbox's settings pointed at the emulators, with a fresh session secret for the landing page."""
    return settings_for_emulators(
        emulator_state,
        data_dir=base.data_dir,
        api_port=base.api_port,
        log_format=base.log_format,
        outbox_poll_interval_seconds=base.outbox_poll_interval_seconds,
        public_base_url=f"http://{base.api_host}:{base.api_port}",
        session_secret=secrets.token_urlsafe(32),
    )

"""Work Marketplace cannot do gives up at once with Marketplace's reason, and an operator retries or dismisses it."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlmodel import col, select

from core.audit.models import AuditEvent
from core.db import Database
from core.messaging import TaskNames
from core.outbox.models import OutboxMessage
from core.subscriptions.models import MarketplaceOperation
from tests.integration.lifecycle.conftest import ActiveSubscription, ControlPlane
from tests.integration.lifecycle.marketplace_driver import Emulators
from tests.integration.security.visitors import OPERATOR_USERNAME, PortalVisitor, sign_in_to_portal
from tests.support.factories import webhook_payload
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.timeout(150)]


@pytest.fixture
def operator(emulators: Emulators, control_plane: ControlPlane) -> Iterator[PortalVisitor]:
    visitor = sign_in_to_portal(emulators, control_plane.base_url, OPERATOR_USERNAME)
    yield visitor
    visitor.close()


def _send_webhook(emulators: Emulators, control_plane: ControlPlane, body: dict[str, object]) -> None:
    response = httpx.post(
        f"{control_plane.base_url}/marketplace/webhook",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {emulators.webhook_token()}"},
        timeout=15,
    )
    assert response.status_code == 200, response.text


def _process_row(database: Database, operation_id: str) -> OutboxMessage | None:
    with database.session() as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.task_name == TaskNames.MARKETPLACE_PROCESS_OPERATION)
            .order_by(col(OutboxMessage.id))
        ).all()
    return next((row for row in rows if row.arguments.get("operation_id") == operation_id), None)


def _wait_dead(database: Database, operation_id: str) -> OutboxMessage:
    return wait_for(
        lambda: (row := _process_row(database, operation_id)) is not None and row.dead_lettered_at is not None and row,
        timeout_seconds=60,
        what=f"the processing of {operation_id} to be dead-lettered",
    )


def _audit_actions(database: Database, message_id: int) -> list[tuple[str, str]]:
    with database.session() as session:
        events = session.exec(
            select(AuditEvent).where(
                AuditEvent.subject_type == "outbox_message", AuditEvent.subject_id == str(message_id)
            )
        ).all()
    return sorted((event.action, event.actor) for event in events)


def _dead_letter_gauge(control_plane: ControlPlane) -> float:
    text = httpx.get(f"{control_plane.base_url}/metrics", timeout=15).text
    match = re.search(r"^cp_outbox_dead_letters (\S+)$", text, re.MULTILINE)
    assert match is not None, "cp_outbox_dead_letters is not exported"
    return float(match.group(1))


def test_a_webhook_naming_an_operation_marketplace_does_not_know_is_dead_lettered_at_once_with_the_404(
    control_plane: ControlPlane,
    emulators: Emulators,
    database: Database,
    active_subscription: ActiveSubscription,
    operator: PortalVisitor,
) -> None:
    # A validly signed webhook for a real subscription, naming an operation Marketplace never had; sent with the
    # source field spelled as another implementation spells it.
    body = webhook_payload(active_subscription.subscription_id, operationRequestedSource="Azure")
    del body["operationRequestSource"]
    _send_webhook(emulators, control_plane, body)

    dead = _wait_dead(database, body["id"])
    assert dead.attempts == 1  # given up at once: no retry makes Marketplace know it
    assert dead.last_error is not None
    assert "GiveUp: Marketplace does not know operation" in dead.last_error
    assert "404" in dead.last_error
    with database.session() as session:
        stored = session.get(MarketplaceOperation, body["id"])
        assert stored is not None
        assert stored.request_source == "Azure"
    assert _dead_letter_gauge(control_plane) >= 1.0

    # The stuck-work page says why, on the operation and among the dead letters, with both actions.
    page = operator.browser.http.get(f"{control_plane.base_url}/portal/operator/operations")
    assert page.status_code == 200
    assert f'id="dead-letter-{dead.id}"' in page.text
    assert "Gave up: GiveUp: Marketplace does not know operation" in page.text
    assert f"Retry message {dead.id}" in page.text
    assert f"Dismiss message {dead.id}" in page.text

    retried = operator.browser.http.post(
        f"{control_plane.base_url}/portal/operator/dead-letters/{dead.id}/retry",
        data={"csrf_token": operator.csrf_token},
        follow_redirects=False,
    )
    assert retried.status_code == 303, retried.text
    # Delivered again, Marketplace still answers 404: dead-lettered again, counted from a fresh budget.
    again = wait_for(
        lambda: (
            (row := _process_row(database, body["id"])) is not None
            and row.dead_lettered_at is not None
            and row.dead_lettered_at != dead.dead_lettered_at
            and row
        ),
        timeout_seconds=60,
        what="the retried message to give up again",
    )
    assert again.attempts == 1

    dismissed = operator.browser.http.post(
        f"{control_plane.base_url}/portal/operator/dead-letters/{dead.id}/dismiss",
        data={"csrf_token": operator.csrf_token},
        follow_redirects=False,
    )
    assert dismissed.status_code == 303, dismissed.text
    twice = operator.browser.http.post(
        f"{control_plane.base_url}/portal/operator/dead-letters/{dead.id}/dismiss",
        data={"csrf_token": operator.csrf_token},
        follow_redirects=True,
    )
    assert twice.status_code == 200
    assert "already retried or dismissed" in twice.text
    assert f'id="dead-letter-{dead.id}"' not in twice.text
    trail = _audit_actions(database, dead.id or 0)
    assert [action for action, _actor in trail] == sorted(
        ["outbox.dead_lettered", "outbox.dead_lettered", "outbox.dead_letter_retried", "outbox.dead_letter_dismissed"]
    )
    actors = dict(trail)
    assert actors["outbox.dead_lettered"] == "system:worker"
    assert actors["outbox.dead_letter_retried"].startswith("user:")
    assert actors["outbox.dead_letter_dismissed"] == actors["outbox.dead_letter_retried"]


def test_a_webhook_naming_a_subscription_marketplace_does_not_know_is_dead_lettered_and_odd_ids_are_404(
    control_plane: ControlPlane, emulators: Emulators, database: Database, operator: PortalVisitor
) -> None:
    body = webhook_payload(str(uuid.uuid4()))
    _send_webhook(emulators, control_plane, body)
    dead = _wait_dead(database, body["id"])
    assert dead.attempts == 1
    assert dead.last_error is not None
    assert "Marketplace does not know operation" in dead.last_error

    for odd in ("%C2%B2", "99999999999999999999", "-1", "1.0", "%EF%BC%91"):
        response = operator.browser.http.post(
            f"{control_plane.base_url}/portal/operator/dead-letters/{odd}/retry",
            data={"csrf_token": operator.csrf_token},
            follow_redirects=False,
        )
        assert response.status_code == 404, (odd, response.status_code)
    assert _process_row(database, body["id"]) is not None

"""Storing a webhook at the service level: one row per natural id under concurrency, adopted operations kept."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import select

from core.audit.models import AuditEvent
from core.db import Database
from core.inbox.models import InboundEvent, InboundSource
from core.inbox.service import record_inbound_event
from core.outbox.models import OutboxMessage
from core.subscriptions.models import MarketplaceOperation, OperationAction, OperationState
from core.subscriptions.schemas import WebhookPayload
from core.subscriptions.webhook_store import WebhookReceipt, record_webhook
from tests.conftest import TEST_DATABASE
from tests.support.factories import create_operation, create_subscription, create_tenant, webhook_payload

pytestmark = pytest.mark.timeout(60)


def test_concurrent_twins_store_one_inbound_event_and_agree_on_it(database: Database) -> None:
    natural_id = f"operation-{uuid.uuid4()}"
    twins = 8
    start_together = threading.Barrier(twins)

    def deliver(copy: int) -> tuple[int | None, bool]:
        start_together.wait()
        with database.session() as session:
            event, created = record_inbound_event(
                session, InboundSource.MARKETPLACE_WEBHOOK, natural_id, {"id": natural_id, "copy": copy}
            )
            return event.id, created

    with ThreadPoolExecutor(max_workers=twins) as pool:
        outcomes = list(pool.map(deliver, range(twins)))

    assert sorted(created for _, created in outcomes) == [False] * (twins - 1) + [True]
    with database.session() as session:
        stored = session.exec(select(InboundEvent).where(InboundEvent.natural_id == natural_id)).all()
    assert len(stored) == 1
    assert {event_id for event_id, _ in outcomes} == {stored[0].id}
    winner_copy = stored[0].payload["copy"]
    assert outcomes[winner_copy] == (stored[0].id, True)
    assert stored[0].received_at is not None


def test_webhook_for_an_operation_reconciliation_already_adopted_keeps_the_adopted_row(database: Database) -> None:
    with database.session() as session:
        tenant = create_tenant(session)
        subscription = create_subscription(session, tenant, quantity=2)
        operation_id = create_operation(
            session, subscription, action=OperationAction.RENEW, state=OperationState.VERIFIED, attempts=2
        ).id
        subscription_id = subscription.id
    body = {
        "id": operation_id,
        "subscriptionId": subscription_id,
        "action": "Renew",
        "status": "Succeeded",
        "planId": "standard",
        "quantity": 2,
    }

    receipt = _store(database, body)
    replay = _store(database, body)

    assert (receipt.created, replay.created) == (True, False)
    with database.session() as session:
        operation = session.get(MarketplaceOperation, operation_id)
        assert operation is not None
        assert (operation.state, operation.attempts, operation.marketplace_status) == ("verified", 2, "InProgress")
        audits = session.exec(select(AuditEvent).where(AuditEvent.subject_id == operation_id)).all()
        assert [audit.action for audit in audits] == ["marketplace.webhook_received"]
        assert audits[0].tenant_id == tenant.id
        messages = session.exec(select(OutboxMessage)).all()
        assert [message.arguments for message in messages if message.arguments.get("operation_id") == operation_id] == [
            {"operation_id": operation_id, "subscription_id": subscription_id}
        ]


def test_webhook_for_a_known_subscription_stores_the_operation_with_its_defaults(database: Database) -> None:
    operation_id = str(uuid.uuid4())
    with database.session() as session:
        subscription_id = create_subscription(session, create_tenant(session), quantity=2).id
    body = {
        "id": operation_id,
        "activityId": str(uuid.uuid4()),
        "subscriptionId": subscription_id,
        "action": "ChangeQuantity",
        "status": "InProgress",
        "quantity": 5,
        "timeStamp": "2026-11-26T00:00:00Z",
    }

    assert _store(database, body).created

    with database.session() as session:
        operation = session.get(MarketplaceOperation, operation_id)
    assert operation is not None
    assert (operation.action, operation.quantity, operation.state, operation.attempts) == (
        "ChangeQuantity",
        5,
        "received",
        0,
    )
    assert operation.time_stamp is not None
    assert operation.time_stamp.isoformat() == "2026-11-26T00:00:00+00:00"
    assert operation.received_at is not None
    assert operation.updated_at is not None


@pytest.mark.skipif(TEST_DATABASE != "postgresql", reason="SQLite has no server to drop a connection")
def test_a_connection_the_server_dropped_is_replaced_and_the_webhook_stored_once(database: Database) -> None:
    first = {"id": str(uuid.uuid4()), "subscriptionId": str(uuid.uuid4()), "action": "Renew", "status": "Succeeded"}
    assert _store(database, first).created
    # The pool's connection is now idle; the server drops it, as a failover or an idle timeout would.
    with database.engine.begin() as admin:
        pooled_backend = database.run_idempotent_write(
            lambda connection: connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        )
        admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pooled_backend})

    second = {**first, "id": str(uuid.uuid4())}
    assert _store(database, second).created
    assert not _store(database, second).created
    with database.session() as session:
        stored = session.exec(
            select(InboundEvent.natural_id).where(InboundEvent.natural_id.in_([first["id"], second["id"]]))  # type: ignore[attr-defined]
        ).all()
    assert sorted(stored) == sorted([first["id"], second["id"]])


def _store(database: Database, body: dict[str, Any]) -> WebhookReceipt:
    return database.run_idempotent_write(
        lambda connection: record_webhook(connection, WebhookPayload.model_validate(body), raw_body=body)
    )


def test_a_time_stamp_without_an_offset_is_stored_as_utc(database: Database) -> None:
    operation_id = str(uuid.uuid4())
    with database.session() as session:
        subscription_id = create_subscription(session, create_tenant(session)).id
    body = {
        "id": operation_id,
        "subscriptionId": subscription_id,
        "action": "Suspend",
        "status": "InProgress",
        "timeStamp": "2026-11-26T08:30:00",
    }
    assert _store(database, body).created
    with database.session() as session:
        operation = session.get(MarketplaceOperation, operation_id)
    assert operation is not None
    assert operation.time_stamp == datetime(2026, 11, 26, 8, 30, tzinfo=UTC)


def test_a_webhooks_purchase_token_is_stored_only_as_its_hash(database: Database) -> None:
    body = webhook_payload(purchaseToken="purchase-token-never-stored")
    payload = WebhookPayload.model_validate(body)
    with database.engine.begin() as connection:
        record_webhook(connection, payload, raw_body=body)
    with database.session() as session:
        stored = session.exec(select(InboundEvent).where(InboundEvent.natural_id == payload.id)).one()
    assert "purchase-token-never-stored" not in json.dumps(stored.payload)
    assert "purchaseToken" not in stored.payload
    assert stored.payload["purchaseTokenSha256"] == hashlib.sha256(b"purchase-token-never-stored").hexdigest()
    assert stored.payload["subscription"] == body["subscription"]  # the rest is kept as Marketplace sent it

"""Store a verified Marketplace webhook once: inbox row, operation row, audit event and outbox row together.

This is the API's hottest write, so it skips the ORM unit of work and runs Core statements built once per
backend. On PostgreSQL the four inserts are one statement, data-modifying CTEs that all hang off the inbox
insert: a replay (its (source, natural id) key already taken, or taken by a concurrent twin that commits
first) inserts nothing anywhere, in one round trip. SQLite has no data-modifying CTEs; there the same rows
are inserted one statement after another. Nothing is committed here: the caller's connection decides.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from core.audit.actions import AuditAction
from core.audit.models import AuditEvent, AuditOutcome
from core.clock import utc_now
from core.correlation import current_correlation_id, new_correlation_id
from core.inbox.models import InboundEvent, InboundSource
from core.messaging import TaskNames
from core.outbox.models import OutboxMessage
from core.redaction import REDACTED, fingerprint, redact_value
from core.subscriptions.models import MarketplaceOperation, MarketplaceSubscription, OperationState
from core.subscriptions.schemas import WebhookPayload
from core.telemetry.tracing import current_traceparent

MARKETPLACE_ACTOR = "marketplace"

_events: sa.Table = InboundEvent.__table__  # type: ignore[attr-defined]
_operations: sa.Table = MarketplaceOperation.__table__  # type: ignore[attr-defined]
_audit_events: sa.Table = AuditEvent.__table__  # type: ignore[attr-defined]
_outbox: sa.Table = OutboxMessage.__table__  # type: ignore[attr-defined]
_subscriptions: sa.Table = MarketplaceSubscription.__table__  # type: ignore[attr-defined]
# Parameters bound to JSON columns: the driver gets their JSON text (the statement casts it).
_JSON_PARAMETERS = ("webhook_payload", "webhook_arguments")


@dataclass(frozen=True)
class WebhookReceipt:
    """What storing a webhook did: `created` is False for a replay."""

    operation_id: str
    created: bool


def record_webhook(connection: sa.Connection, payload: WebhookPayload, *, raw_body: dict[str, Any]) -> WebhookReceipt:
    """Store a verified webhook once (inbox, operation row, audit event, outbox) on the caller's connection.

    On PostgreSQL this is one statement, safe to run in autocommit and to repeat (`Database.run_idempotent_write`);
    on SQLite the caller's transaction holds the four inserts together. The operation row is written only for a
    subscription we know, and never over a row reconciliation adopted before the webhook arrived; the audit event
    says which case it was.
    """
    parameters = _parameters(payload, raw_body)
    if connection.dialect.name == "postgresql":
        sql, constants = _one_statement_for_the_driver(connection.dialect)
        json_values = {name: json.dumps(parameters[name]) for name in _JSON_PARAMETERS}
        event_id = connection.exec_driver_sql(sql, {**constants, **parameters, **json_values}).scalar()
    else:
        event_id = _store_statement_by_statement(connection, parameters)
    return WebhookReceipt(payload.id, created=event_id is not None)


def _parameters(payload: WebhookPayload, raw_body: dict[str, Any]) -> dict[str, Any]:
    correlation_id = current_correlation_id()
    return {
        "webhook_source": InboundSource.MARKETPLACE_WEBHOOK.value,
        "webhook_operation_id": payload.id,
        "webhook_payload": stored_body(raw_body),
        "webhook_correlation_id": correlation_id,
        "webhook_outbox_correlation_id": correlation_id or new_correlation_id(),
        "webhook_traceparent": current_traceparent(),
        "webhook_now": utc_now(),
        "webhook_subscription_id": payload.subscription_id,
        "webhook_activity_id": payload.activity_id,
        "webhook_action": payload.action.value,
        "webhook_plan_id": payload.plan_id,
        "webhook_quantity": payload.quantity,
        "webhook_status": payload.status,
        "webhook_request_source": payload.request_source,
        # Marketplace's times are UTC; one sent without an offset is read as UTC rather than refused.
        "webhook_time_stamp": (
            payload.time_stamp.replace(tzinfo=UTC)
            if payload.time_stamp is not None and payload.time_stamp.tzinfo is None
            else payload.time_stamp
        ),
        "webhook_arguments": {"operation_id": payload.id, "subscription_id": payload.subscription_id},
    }


def stored_body(raw_body: dict[str, Any]) -> dict[str, Any]:
    """The webhook body as stored: the purchase token only as its SHA-256 (it may still resolve the purchase).

    Any other secret-named field is redacted as well; nothing downstream reads them from the inbox.
    """
    body = dict(raw_body)
    token = body.pop("purchaseToken", None)
    stored: dict[str, Any] = redact_value(body)
    if isinstance(token, str) and token:
        stored["purchaseTokenSha256"] = fingerprint(token)
    elif "purchaseToken" in raw_body:
        stored["purchaseToken"] = None if token is None else REDACTED
    return stored


def _store_statement_by_statement(connection: sa.Connection, parameters: dict[str, Any]) -> int | None:
    event_id: int | None = connection.execute(_event_insert(sqlite.insert), parameters).scalar()
    if event_id is None:
        return None
    tenant_id = connection.execute(_tenant_of_subscription(), parameters).scalar()
    if tenant_id is not None:
        connection.execute(_operation_insert_for_sqlite(), parameters)
    details = {
        "action": parameters["webhook_action"],
        "subscription_id": parameters["webhook_subscription_id"],
        "status": parameters["webhook_status"],
        "inbound_event_id": event_id,
        "known_subscription": tenant_id is not None,
    }
    connection.execute(
        _audit_insert_for_sqlite(), {**parameters, "webhook_tenant_id": tenant_id, "webhook_details": details}
    )
    connection.execute(_outbox_insert_for_sqlite(), parameters)
    return event_id


@cache
def _operation_insert_for_sqlite() -> sa.Insert:
    return sqlite.insert(_operations).values(_operation_values()).on_conflict_do_nothing(index_elements=["id"])


@cache
def _audit_insert_for_sqlite() -> sa.Insert:
    values = _audit_values(tenant_id=_param("tenant_id", _audit_events), details=_param("details", _audit_events))
    return sa.insert(_audit_events).values(values)


@cache
def _outbox_insert_for_sqlite() -> sa.Insert:
    return sa.insert(_outbox).values(_outbox_values())


@cache
def _one_statement_for_the_driver(dialect: sa.Dialect) -> tuple[str, dict[str, Any]]:
    """The statement compiled once, with the values of its constants: each request skips SQLAlchemy's compile
    cache lookup and parameter processing, which for a statement this size cost as much as the driver's work."""
    compiled = _store_in_one_statement().compile(dialect=dialect)
    constants = {name: bind.effective_value for bind, name in compiled.bind_names.items() if not bind.required}
    return compiled.string, constants


@cache
def _store_in_one_statement() -> sa.Select[int]:
    """The four inserts as one PostgreSQL statement; returns the new inbox id, or no row for a replay."""
    event = _event_insert(postgresql.insert).cte("event")
    subscription_known = sa.exists().where(_subscriptions.c.id == _param("subscription_id", _operations))
    operation_values = _operation_values()
    operation = (
        postgresql.insert(_operations)
        .from_select(
            list(operation_values), sa.select(*operation_values.values()).select_from(event).where(subscription_known)
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .cte("operation")
    )
    details = sa.func.json_build_object(
        *("action", _param("action", _operations)),
        *("subscription_id", _param("subscription_id", _operations)),
        *("status", _param("status", _operations, "marketplace_status")),
        *("inbound_event_id", event.c.id),
        *("known_subscription", subscription_known),
        type_=sa.JSON,
    )
    audit_values = _audit_values(tenant_id=_tenant_of_subscription().scalar_subquery(), details=details)
    audit = (
        sa.insert(_audit_events)
        .from_select(list(audit_values), sa.select(*audit_values.values()).select_from(event))
        .cte("audit")
    )
    outbox_values = _outbox_values()
    outbox = (
        sa.insert(_outbox)
        .from_select(list(outbox_values), sa.select(*outbox_values.values()).select_from(event))
        .cte("outbox")
    )
    return sa.select(event.c.id).add_cte(operation, audit, outbox)


def _param(name: str, table: sa.Table, column: str | None = None) -> sa.BindParameter[Any]:
    """The parameter `webhook_<name>`, typed like the column it fills (json_build_object needs the types).

    The prefix keeps parameter names apart from column names: a Core INSERT takes an execution parameter
    named like one of its columns as that column's value, over what `.values()` says.
    """
    return sa.bindparam(f"webhook_{name}", type_=table.c[column or name].type)


@cache
def _event_insert(dialect_insert: Callable[[sa.Table], Any]) -> sa.Insert:
    """The inbox insert: ON CONFLICT DO NOTHING needs the dialect's own insert construct."""
    statement: sa.Insert = (
        dialect_insert(_events)
        .values(
            source=_param("source", _events),
            natural_id=_param("operation_id", _events, "natural_id"),
            payload=_param("payload", _events),
            correlation_id=_param("correlation_id", _events),
            received_at=_param("now", _events, "received_at"),
        )
        .on_conflict_do_nothing(index_elements=["source", "natural_id"])
        .returning(_events.c.id)
    )
    return statement


@cache
def _tenant_of_subscription() -> sa.Select[str]:
    return sa.select(_subscriptions.c.tenant_id).where(_subscriptions.c.id == _param("subscription_id", _operations))


def _operation_values() -> dict[str, Any]:
    return {
        "id": _param("operation_id", _operations, "id"),
        "subscription_id": _param("subscription_id", _operations),
        "activity_id": _param("activity_id", _operations),
        "action": _param("action", _operations),
        "plan_id": _param("plan_id", _operations),
        "quantity": _param("quantity", _operations),
        "marketplace_status": _param("status", _operations, "marketplace_status"),
        "request_source": _param("request_source", _operations),
        "time_stamp": _param("time_stamp", _operations),
        "state": sa.literal(OperationState.RECEIVED, sa.String),
        "attempts": sa.literal(0, sa.Integer),
        "received_at": _param("now", _operations, "received_at"),
        "updated_at": _param("now", _operations, "updated_at"),
    }


def _audit_values(*, tenant_id: Any, details: Any) -> dict[str, Any]:
    return {
        "occurred_at": _param("now", _audit_events, "occurred_at"),
        "tenant_id": tenant_id,
        "actor": sa.literal(MARKETPLACE_ACTOR, sa.String),
        "action": sa.literal(AuditAction.MARKETPLACE_WEBHOOK_RECEIVED.value, sa.String),
        "subject_type": sa.literal("marketplace_operation", sa.String),
        "subject_id": _param("operation_id", _audit_events, "subject_id"),
        "outcome": sa.literal(AuditOutcome.SUCCESS, sa.String),
        "details": details,
        "correlation_id": _param("correlation_id", _audit_events),
        # Named here: a column left to its Python default is bound as NULL in an INSERT ... SELECT.
        "occurrences": sa.literal(1, sa.Integer),
    }


def _outbox_values() -> dict[str, Any]:
    return {
        "task_name": sa.literal(TaskNames.MARKETPLACE_PROCESS_OPERATION, sa.String),
        "arguments": _param("arguments", _outbox),
        "correlation_id": _param("outbox_correlation_id", _outbox, "correlation_id"),
        "traceparent": _param("traceparent", _outbox),
        "created_at": _param("now", _outbox, "created_at"),
        "available_at": _param("now", _outbox, "available_at"),
        "dispatch_count": sa.literal(0, sa.Integer),
        "attempts": sa.literal(0, sa.Integer),
    }

"""The managed-application notification endpoint, against a real API process."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from core.audit.models import AuditEvent
from core.db import Database
from core.inbox.models import InboundEvent
from core.managed_apps.models import ManagedApplication
from core.outbox.models import OutboxMessage
from core.settings import Settings
from tests.conftest import start_api

SECRET = "notification-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def notification_url(tmp_path_factory: pytest.TempPathFactory, base_settings: Settings) -> Iterator[str]:
    group, base_url = start_api(
        tmp_path_factory.mktemp("managed-app-api"), base_settings, CP_MANAGED_APP_NOTIFICATION_SECRET=SECRET
    )
    yield f"{base_url}/managedapp/resource?sig={SECRET}"
    group.stop_all()


def _notification(application_id: str, event_type: str, state: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "eventType": event_type,
        "applicationId": application_id,
        "eventTime": at.isoformat(),
        "provisioningState": state,
        "billingDetails": {"resourceUsageId": "usage-" + application_id[-8:]},
        "plan": {
            "publisher": "vastdata1234567890",
            "product": "vast-blob-facade",
            "name": "standard",
            "version": "1.0.0",
        },
        **extra,
    }


def _application_id(subscription: str | None = None, group: str = "customer-rg") -> str:
    return (
        f"/subscriptions/{subscription or uuid.uuid4()}/resourceGroups/{group}/providers/Microsoft.Solutions/"
        f"applications/vast-{uuid.uuid4().hex[:8]}"
    )


def _application(database: Database, application_id: str) -> ManagedApplication:
    with database.session() as session:
        return session.exec(select(ManagedApplication).where(ManagedApplication.application_id == application_id)).one()


def test_full_lifecycle_with_replays(notification_url: str, database: Database) -> None:
    application_id = _application_id()
    start = datetime.now(UTC) - timedelta(minutes=10)
    sequence = [
        ("PUT", "Accepted", start),
        ("PUT", "Succeeded", start + timedelta(minutes=2)),
        ("DELETE", "Deleting", start + timedelta(minutes=5)),
        ("DELETE", "Deleted", start + timedelta(minutes=6)),
    ]
    states = []
    for event_type, state, at in sequence:
        body = _notification(application_id, event_type, state, at)
        first = httpx.post(notification_url, json=body, timeout=10)
        replay = httpx.post(notification_url, json=body, timeout=10)
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "recorded"
        assert replay.status_code == 200
        assert replay.json()["status"] == "duplicate"
        states.append(_application(database, application_id).provisioning_state)
    assert states == ["Accepted", "Succeeded", "Deleting", "Deleted"]

    application = _application(database, application_id)
    assert application.resource_usage_id == "usage-" + application_id[-8:]
    assert application.plan_id == "standard"
    with database.session() as session:
        events = session.exec(select(InboundEvent).where(InboundEvent.source == "managed_app_notification")).all()
        actions = [
            event.action
            for event in session.exec(
                select(AuditEvent).where(AuditEvent.subject_id == application.id).order_by(col(AuditEvent.id))
            ).all()
        ]
        work = session.exec(select(OutboxMessage).where(OutboxMessage.task_name == "managed_apps.observe")).all()
    assert len(events) == 4
    # Applied at intake, so processed when received (replays did not move it).
    assert all(event.processed_at is not None and event.processed_at >= event.received_at for event in events)
    assert actions == [
        "managed_app.put.accepted",
        "managed_app.put.succeeded",
        "managed_app.delete.deleting",
        "managed_app.delete.deleted",
    ]
    assert len(work) == 4


def test_a_late_older_event_does_not_roll_the_state_back(notification_url: str, database: Database) -> None:
    application_id = _application_id()
    now = datetime.now(UTC)
    newer = httpx.post(notification_url, json=_notification(application_id, "PUT", "Succeeded", now), timeout=10)
    older = httpx.post(
        notification_url, json=_notification(application_id, "PUT", "Accepted", now - timedelta(minutes=3)), timeout=10
    )
    assert newer.json()["status"] == "recorded"
    assert older.status_code == 200
    assert older.json()["status"] == "stale"
    assert _application(database, application_id).provisioning_state == "Succeeded"
    with database.session() as session:
        events = session.exec(
            select(InboundEvent).where(InboundEvent.natural_id.contains(application_id.lower()))  # type: ignore[attr-defined]
        ).all()
    # The stale one was decided on (refused) as well: both are processed.
    assert len(events) == 2
    assert all(event.processed_at is not None for event in events)


def test_failed_deployment_keeps_the_error(notification_url: str, database: Database) -> None:
    application_id = _application_id()
    error = {"code": "DeploymentFailed", "message": "Quota exceeded for Standard_L8s_v3", "details": []}
    response = httpx.post(
        notification_url,
        json=_notification(application_id, "PUT", "Failed", datetime.now(UTC), error=error),
        timeout=10,
    )
    assert response.status_code == 200
    assert _application(database, application_id).last_error == error


def _refusals(database: Database) -> list[AuditEvent]:
    with database.session() as session:
        return list(
            session.exec(select(AuditEvent).where(AuditEvent.action == "managed_app.notification_refused")).all()
        )


@pytest.mark.parametrize(
    ("query", "body", "status", "message"),
    [
        ("", None, 401, "signature"),
        ("?sig=wrong", None, 401, "signature"),
        (None, b"{not json", 400, "not valid JSON"),
        (None, {"eventType": "POST"}, 422, "eventType"),
        (
            None,
            {"applicationId": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/vms/a"},
            422,
            "applicationId",
        ),
        (
            None,
            {"plan": {"publisher": "p", "product": "vast-blob-facade", "name": "gold", "version": "1"}},
            422,
            "gold",
        ),
        (
            None,
            {"plan": {"publisher": "p", "product": "other-offer", "name": "standard", "version": "1"}},
            422,
            "other-offer",
        ),
        (None, {"error": {"code": "X", "message": "y"}}, 422, "only sent with provisioningState Failed"),
        (None, {"eventTime": "2026-11-26T10:00:00"}, 422, "time zone"),
        # A far-future eventTime would make every later genuine event stale: the application would freeze.
        (None, {"eventTime": "9999-12-31T23:59:59+00:00"}, 422, "in the future"),
        (None, {"eventTime": "2020-01-01T00:00:00+00:00"}, 422, "in the past"),
        # Exact ids: no trailing newline (`$` would have let it through), a subscription that is a GUID.
        (None, {"applicationId": _application_id() + "\n"}, 422, "applicationId"),
        (None, {"applicationId": _application_id(subscription="-" * 36)}, 422, "applicationId"),
        (None, {"applicationId": _application_id(group="rg.")}, 422, "applicationId"),
    ],
)
def test_bad_requests_are_refused_audited_and_change_nothing(
    notification_url: str, database: Database, query: str | None, body: Any, status: int, message: str
) -> None:
    application_id = _application_id()
    url = notification_url if query is None else notification_url.split("?")[0] + query
    if isinstance(body, bytes):
        response = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=10)
    else:
        payload = _notification(application_id, "PUT", "Accepted", datetime.now(UTC)) | (body or {})
        response = httpx.post(url, json=payload, timeout=10)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    assert len(_refusals(database)) == 1
    with database.session() as session:
        assert session.exec(select(ManagedApplication)).all() == []
        assert session.exec(select(InboundEvent)).all() == []

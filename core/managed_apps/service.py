"""Record managed-application notifications durably and idempotently."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlmodel import Session, select

from core.audit.actions import AuditAction
from core.audit.models import AuditOutcome
from core.audit.service import record_audit_event
from core.catalog.models import Offer, Plan
from core.clock import utc_now
from core.errors import ValidationFailed
from core.inbox.models import InboundSource
from core.inbox.service import mark_processed, record_inbound_event
from core.managed_apps.models import ManagedApplication
from core.managed_apps.schemas import ManagedAppNotification
from core.outbox.service import enqueue
from core.task_payloads import ObserveManagedApplication

ACTOR = "azure:managed-applications"


class NotificationOutcome(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    STALE = "stale"


@dataclass(frozen=True)
class NotificationResult:
    outcome: NotificationOutcome
    managed_application: ManagedApplication


def check_event_time(
    notification: ManagedAppNotification, *, now: datetime, max_skew_seconds: float, max_age_seconds: float
) -> None:
    """Refuse an eventTime too far from now (ValidationFailed).

    Events are ordered by eventTime, so one from the far future would make every later genuine event "stale" and
    freeze the application; one older than Azure's retry window cannot be a genuine delivery.
    """
    if notification.event_time > now + timedelta(seconds=max_skew_seconds):
        raise ValidationFailed(
            f"eventTime {notification.event_time.isoformat()} is more than {max_skew_seconds:g} s in the future"
        )
    if notification.event_time < now - timedelta(seconds=max_age_seconds):
        raise ValidationFailed(
            f"eventTime {notification.event_time.isoformat()} is more than {max_age_seconds:g} s in the past"
        )


def record_notification(session: Session, notification: ManagedAppNotification) -> NotificationResult:
    """Store the notification once; apply it to the application unless an older event arrived late."""
    _check_offer_and_plan(session, notification)
    event, created = record_inbound_event(
        session,
        InboundSource.MANAGED_APP_NOTIFICATION,
        notification.natural_id,
        notification.model_dump(mode="json", by_alias=True),
    )
    application = session.exec(
        select(ManagedApplication).where(ManagedApplication.application_id == notification.application_id)
    ).first()
    if not created and application is not None:
        return NotificationResult(NotificationOutcome.DUPLICATE, application)
    subscription_id, resource_group, name = notification.application_parts()
    usage_id = notification.billing_details.resource_usage_id if notification.billing_details else None
    if application is None:
        application = ManagedApplication(
            application_id=notification.application_id,
            azure_subscription_id=subscription_id,
            resource_group=resource_group,
            application_name=name,
            plan_id=notification.plan.name,
            plan_publisher=notification.plan.publisher,
            plan_product=notification.plan.product,
            plan_version=notification.plan.version,
            provisioning_state=notification.provisioning_state.value,
            last_event_time=notification.event_time,
        )
        before = None
    elif notification.event_time < application.last_event_time:
        record_audit_event(
            session,
            actor=ACTOR,
            action=AuditAction.MANAGED_APP_NOTIFICATION_OUT_OF_ORDER,
            subject_type="managed_application",
            subject_id=application.id,
            tenant_id=application.tenant_id,
            outcome=AuditOutcome.REFUSED,
            details={"event_id": event.id, "state": notification.provisioning_state.value},
        )
        mark_processed(session, InboundSource.MANAGED_APP_NOTIFICATION, notification.natural_id)
        return NotificationResult(NotificationOutcome.STALE, application)
    else:
        before = {"provisioning_state": application.provisioning_state, "plan_id": application.plan_id}
    application.provisioning_state = notification.provisioning_state.value
    application.last_event_time = notification.event_time
    application.plan_id = notification.plan.name
    application.plan_version = notification.plan.version
    application.resource_usage_id = usage_id or application.resource_usage_id
    application.last_error = notification.error.model_dump() if notification.error else None
    application.updated_at = utc_now()
    session.add(application)
    session.flush()
    record_audit_event(
        session,
        actor=ACTOR,
        action=AuditAction.managed_app_notification(notification.event_type, notification.provisioning_state),
        subject_type="managed_application",
        subject_id=application.id,
        tenant_id=application.tenant_id,
        before=before,
        after={"provisioning_state": application.provisioning_state, "plan_id": application.plan_id},
        details={"event_id": event.id, "application_id": application.application_id},
    )
    enqueue(session, ObserveManagedApplication(managed_application_id=application.id))
    mark_processed(session, InboundSource.MANAGED_APP_NOTIFICATION, notification.natural_id)
    return NotificationResult(NotificationOutcome.RECORDED, application)


def _check_offer_and_plan(session: Session, notification: ManagedAppNotification) -> None:
    offer = session.get(Offer, notification.plan.product)
    if offer is None:
        raise ValidationFailed(f"plan.product {notification.plan.product!r} is not an offer of this publisher")
    plan = session.exec(select(Plan).where(Plan.offer_id == offer.id, Plan.plan_id == notification.plan.name)).first()
    if plan is None:
        raise ValidationFailed(f"plan.name {notification.plan.name!r} is not a plan of offer {offer.id!r}")

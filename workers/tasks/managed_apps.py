"""Managed-application tasks: read a notified application back from ARM and record what it holds."""

from __future__ import annotations

from functools import cache

from sqlmodel import Session

from core.azure.arm import ArmClientFactory
from core.managed_apps.observation import ManagedApplicationObserver
from core.settings import get_settings
from core.task_payloads import ObserveManagedApplication
from workers.consumer import outbox_consumer


@cache
def _observer() -> ManagedApplicationObserver:
    # One per worker process: the publisher-tenant credential and its token cache are shared by every task.
    settings = get_settings()
    return ManagedApplicationObserver(settings, ArmClientFactory(settings))


@outbox_consumer(ObserveManagedApplication)
def observe_managed_application(session: Session, payload: ObserveManagedApplication) -> None:
    """Confirm the application with ARM; link its tenant and managed resource group; observe its cluster."""
    _observer().observe(session, payload.managed_application_id, payload.attempt)

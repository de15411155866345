"""Marketplace lifecycle tasks: the transaction boundary around core.subscriptions.orchestration.

Each consumer runs in the transaction its outbox message opens (workers.consumer) and calls one step of the
SubscriptionOrchestrator, which holds the decisions, the Marketplace calls and the state changes; a failed call
raises, the transaction rolls back and the outbox message is delivered again. Routing (the verdict queue for
process_operation) is by task name, in core.messaging.
"""

from __future__ import annotations

from functools import lru_cache

from sqlmodel import Session

from core.marketplace.fulfillment_client import FulfillmentClient
from core.messaging import TaskNames
from core.settings import get_settings
from core.subscriptions import orchestration
from core.subscriptions.orchestration import SubscriptionOrchestrator
from core.task_payloads import (
    ActivateSubscription,
    ClusterConverged,
    ProcessMarketplaceOperation,
    ReconcileWithMarketplace,
    RetryAcceptedChange,
)
from workers.celery_app import celery_app
from workers.consumer import outbox_consumer, run_in_session


@lru_cache(maxsize=1)
def fulfillment_client() -> FulfillmentClient:
    """One fulfilment client per worker process (its token and connections are reused)."""
    return FulfillmentClient.from_settings(get_settings())


def _orchestrator() -> SubscriptionOrchestrator:
    # Built per task (it is cheap) so each step reads the settings as they are; the client stays per process.
    return SubscriptionOrchestrator(get_settings(), fulfillment_client)


@outbox_consumer(ProcessMarketplaceOperation)
def process_operation(session: Session, payload: ProcessMarketplaceOperation) -> None:
    """Verify, decide, apply and report an operation a webhook announced (runs on the verdict queue)."""
    _orchestrator().process_operation(session, payload.operation_id, payload.subscription_id)


@outbox_consumer(ClusterConverged)
def cluster_converged(session: Session, payload: ClusterConverged) -> None:
    """A cluster reached (or failed) a desired generation: activate when ready; alert when an accepted change failed."""
    _orchestrator().cluster_converged(session, payload.cluster_id, payload.generation, payload.outcome, payload.reason)


@outbox_consumer(RetryAcceptedChange)
def retry_accepted_change(session: Session, payload: RetryAcceptedChange) -> None:
    """Another attempt at a change Marketplace accepted, unless the cluster has moved on."""
    orchestration.retry_accepted_change(session, payload.cluster_id, payload.generation)


@outbox_consumer(ActivateSubscription)
def activate(session: Session, payload: ActivateSubscription) -> None:
    """Activate a subscription that is still PendingFulfillmentStart (the "immediately" activation mode)."""
    _orchestrator().activate(session, payload.subscription_id)


@outbox_consumer(ReconcileWithMarketplace)
def reconcile_requested(session: Session, payload: ReconcileWithMarketplace) -> None:
    """A reconciliation an operator forced through the API."""
    _orchestrator().reconcile_requested(session, payload.report_id)


@celery_app.task(name=TaskNames.MARKETPLACE_RECONCILE_SCHEDULED, ignore_result=True)  # type: ignore[untyped-decorator]
def reconcile_scheduled() -> None:
    """The periodic reconciliation (beat)."""
    run_in_session(lambda session: _orchestrator().reconcile_scheduled(session))

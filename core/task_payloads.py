"""What each outbox task carries: one typed payload per task, validated when enqueued and again when consumed.

A payload names its task, so producers cannot send a task arguments it does not take, and consumers receive a
model instead of loose keyword arguments. Unknown fields are refused at both ends: a message the consumer cannot
read fails visibly (retried, then dead-lettered) instead of being half-applied.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import ControlPlaneError
from core.messaging import TaskNames


class TaskPayload(BaseModel):
    """The arguments of one outbox task; `task_name` is the task it is enqueued under."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task_name: ClassVar[str]

    def arguments(self) -> dict[str, Any]:
        """The JSON stored on the outbox row and carried by the broker message."""
        return self.model_dump(mode="json")


class ConvergenceOutcome(StrEnum):
    """Whether a cluster reached the generation it was asked for."""

    CONVERGED = "converged"
    FAILED = "failed"


class PipelineProbe(TaskPayload):
    task_name = TaskNames.PIPELINE_PROBE
    probe_id: str


class ReconcileCluster(TaskPayload):
    task_name = TaskNames.CLUSTER_RECONCILE
    cluster_id: str


class ClusterConverged(TaskPayload):
    task_name = TaskNames.CLUSTER_CONVERGED
    cluster_id: str
    generation: int
    outcome: ConvergenceOutcome
    reason: str | None = None


class RotateClusterKey(TaskPayload):
    task_name = TaskNames.CLUSTER_ROTATE_KEY
    rotation_id: str


class SyncPrivateEndpoints(TaskPayload):
    task_name = TaskNames.CLUSTER_SYNC_PRIVATE_ENDPOINTS
    cluster_id: str


class ObserveClusterDrift(TaskPayload):
    task_name = TaskNames.CLUSTER_OBSERVE_DRIFT
    cluster_id: str


class RetryAcceptedChange(TaskPayload):
    task_name = TaskNames.CLUSTER_RETRY_ACCEPTED_CHANGE
    cluster_id: str
    generation: int


class ProcessMarketplaceOperation(TaskPayload):
    task_name = TaskNames.MARKETPLACE_PROCESS_OPERATION
    operation_id: str
    subscription_id: str


class ActivateSubscription(TaskPayload):
    task_name = TaskNames.MARKETPLACE_ACTIVATE
    subscription_id: str


class ReconcileWithMarketplace(TaskPayload):
    task_name = TaskNames.MARKETPLACE_RECONCILE
    report_id: int


class ProbeClusterBlob(TaskPayload):
    task_name = TaskNames.BLOB_PROBE_CLUSTER
    cluster_id: str


class ObserveManagedApplication(TaskPayload):
    task_name = TaskNames.MANAGED_APP_OBSERVE
    managed_application_id: str
    attempt: int = 1


class MalformedTaskPayload(ControlPlaneError):
    """An outbox message whose arguments its task does not take (for example one from a newer release)."""

    code = "MalformedTaskPayload"


PayloadT = TypeVar("PayloadT", bound=TaskPayload)


def read_payload(payload_type: type[PayloadT], arguments: dict[str, Any]) -> PayloadT:
    """The message's arguments as the task's payload, or MalformedTaskPayload saying what is wrong with them."""
    try:
        return payload_type.model_validate(arguments)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'payload'}: {problem['msg']}"
            for problem in error.errors()
        )
        raise MalformedTaskPayload(f"{payload_type.task_name} cannot take {sorted(arguments)}: {problems}") from error

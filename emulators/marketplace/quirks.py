"""Quirks mode: the Marketplace emulator answers as other known implementations of the fulfilment API do.

Microsoft's documentation is the contract; implementations met in the field differ from it in ways a publisher's
client must tolerate. Each quirk is one such difference, applied to the answers (and webhooks) only, so the
emulator's own state and its control API stay as Microsoft documents them:

- `bare_operations_list`: List Outstanding Operations answers a JSON array, not `{"operations": [...]}`.
- `requested_source_spelling`: operations and webhooks carry `operationRequestedSource` instead of the documented
  `operationRequestSource`.
- `late_success_patch_seconds`: a Success PATCH of an operation older than this (emulator clock) is answered 409
  Conflict; the operation was accepted meanwhile (the auto-accept the documentation describes, only sooner).
- `equal_term_dates`: a subscription's `term.endDate` equals its `term.startDate`.

Like the fault plan, quirks are set at start (`marketplace_quirks` in the suite options) or through
`/_emulator/quirks`, and each applies with `probability` drawn from a seeded generator, so a run is repeatable.
"""

from __future__ import annotations

import random
import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DOCUMENTED_SOURCE_FIELD = "operationRequestSource"
OTHER_SOURCE_FIELD = "operationRequestedSource"


class QuirkPlan(BaseModel):
    """Which quirks are on; all off is Microsoft's documented behaviour."""

    model_config = ConfigDict(extra="forbid")

    bare_operations_list: bool = False
    requested_source_spelling: bool = False
    late_success_patch_seconds: float | None = Field(default=None, ge=0)
    equal_term_dates: bool = False
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    seed: int = 0

    @classmethod
    def every_quirk(cls, *, late_success_patch_seconds: float = 1.0, seed: int = 0) -> QuirkPlan:
        """All known quirks, each on every answer."""
        return cls(
            bare_operations_list=True,
            requested_source_spelling=True,
            late_success_patch_seconds=late_success_patch_seconds,
            equal_term_dates=True,
            seed=seed,
        )


class Quirks:
    """The plan in force and its seeded generator; thread-safe."""

    def __init__(self, plan: QuirkPlan | None = None) -> None:
        self._lock = threading.Lock()
        self._plan = plan or QuirkPlan()
        self._random = random.Random(self._plan.seed)

    def set(self, plan: QuirkPlan) -> QuirkPlan:
        """Replace the plan (and reseed)."""
        with self._lock:
            self._plan = plan
            self._random = random.Random(plan.seed)
            return plan

    @property
    def plan(self) -> QuirkPlan:
        """The plan in force."""
        with self._lock:
            return self._plan.model_copy()

    def _fires(self, enabled: bool) -> bool:
        with self._lock:
            return enabled and (self._plan.probability >= 1.0 or self._random.random() < self._plan.probability)

    def operations_list(self, operations: list[dict[str, Any]]) -> Any:
        """The List Operations answer."""
        items = [self.operation(operation) for operation in operations]
        return items if self._fires(self.plan.bare_operations_list) else {"operations": items}

    def operation(self, operation: dict[str, Any]) -> dict[str, Any]:
        """An operation as answered or posted in a webhook."""
        if DOCUMENTED_SOURCE_FIELD not in operation or not self._fires(self.plan.requested_source_spelling):
            return operation
        renamed = {key: value for key, value in operation.items() if key != DOCUMENTED_SOURCE_FIELD}
        renamed[OTHER_SOURCE_FIELD] = operation[DOCUMENTED_SOURCE_FIELD]
        return renamed

    def subscription(self, subscription: dict[str, Any]) -> dict[str, Any]:
        """A subscription as answered."""
        term = subscription.get("term")
        if not isinstance(term, dict) or not self._fires(self.plan.equal_term_dates):
            return subscription
        return {**subscription, "term": {**term, "endDate": term.get("startDate")}}

    def late_success_patch_seconds(self) -> float | None:
        """The age after which a Success PATCH is refused with 409, when that quirk fires for this request."""
        limit = self.plan.late_success_patch_seconds
        return limit if limit is not None and self._fires(True) else None

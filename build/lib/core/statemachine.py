"""A small table-driven state machine used by every status column with rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Generic, TypeVar

import sqlalchemy as sa

from core.errors import IllegalTransition

StateT = TypeVar("StateT", bound=StrEnum)


class StateMachine(Generic[StateT]):
    """Allowed transitions between the values of one enum; self-transitions are always allowed."""

    def __init__(self, name: str, transitions: Mapping[StateT, Iterable[StateT]]) -> None:
        self.name = name
        self._allowed = {state: frozenset(targets) for state, targets in transitions.items()}

    def can(self, current: StateT, target: StateT) -> bool:
        return current == target or target in self._allowed.get(current, frozenset())

    def check(self, current: StateT, target: StateT) -> None:
        """Raise IllegalTransition when `current -> target` is not allowed."""
        if not self.can(current, target):
            raise IllegalTransition(
                f"{self.name}: transition {current.value} -> {target.value} is not allowed",
                details={"machine": self.name, "from": current.value, "to": target.value},
            )

    def is_terminal(self, state: StateT) -> bool:
        return not self._allowed.get(state)


def enum_check(column: str, enum: type[StrEnum], name: str) -> sa.CheckConstraint:
    """A CHECK constraint holding a string column to the values of `enum`."""
    values = ", ".join(f"'{member.value}'" for member in enum)
    return sa.CheckConstraint(f"{column} IN ({values})", name=name)

"""The error raised for malformed expressions."""

from __future__ import annotations


class ArmExpressionError(ValueError):
    """A syntax error in an ARM expression; `position` is the character offset in the expression text."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at position {position})")
        self.message = message
        self.position = position

"""ARM's error shape as an exception the request handlers raise."""

from __future__ import annotations

from typing import Any


class ArmError(Exception):
    """An error answered as `{"error": {"code", "message", "target"?, "details"?}}` with an HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body ARM sends for this error."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        if self.details:
            error["details"] = self.details
        return {"error": error}


class TemplateError(ArmError):
    """A template, parameter or expression problem: ARM answers 400 InvalidTemplate."""

    def __init__(self, message: str, *, code: str = "InvalidTemplate", target: str | None = None) -> None:
        super().__init__(400, code, message, target=target)


class ResourceFailure(Exception):
    """A resource that could not be created during a deployment; becomes one failed deployment operation."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def not_found(kind: str, name: str) -> ArmError:
    """ARM's 404 for a missing resource or resource group."""
    if kind == "resourceGroup":
        return ArmError(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")
    return ArmError(404, "ResourceNotFound", f"The Resource '{name}' was not found.")

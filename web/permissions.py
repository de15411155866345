"""Every route declares what it takes to call it, through the dependencies it already has.

A dependency that authorizes carries a `Permission` (`declares`); `declared_permission` reads the strongest
one found in a route's dependency tree. Routes that take no principal say so with `public_route(reason)`.
The security suite walks the app's route table and fails for a route that declares nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from fastapi import Depends
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

PERMISSION_ATTRIBUTE = "__permission__"
REASON_ATTRIBUTE = "__public_reason__"
Call = TypeVar("Call", bound=Callable[..., Any])


class Permission(StrEnum):
    """What a route needs, weakest first."""

    PUBLIC = "public"  # no principal: authenticated otherwise (Marketplace token, `sig`) or nothing to protect
    READ = "read"  # a signed-in reader of the tenant (or an operator)
    ACT = "act"  # a customer admin of the tenant (or an operator)
    OPERATE = "operate"  # a publisher operator


STRENGTH = {permission: rank for rank, permission in enumerate(Permission)}


def declares(permission: Permission) -> Callable[[Call], Call]:
    """Mark an authorizing dependency with the permission it enforces."""

    def mark(call: Call) -> Call:
        setattr(call, PERMISSION_ATTRIBUTE, permission)
        return call

    return mark


def public_route(reason: str) -> Any:
    """A route dependency saying the route takes no principal, and why that is right."""

    def public() -> None:
        """Nothing to check: see the reason."""

    setattr(public, PERMISSION_ATTRIBUTE, Permission.PUBLIC)
    setattr(public, REASON_ATTRIBUTE, reason)
    return Depends(public)


def declared_permission(route: Any) -> Permission | None:
    """The strongest permission any dependency of the route declares; None when none does (or it is no APIRoute).

    Takes an APIRoute or a route context of `fastapi.routing.iter_route_contexts`.
    """
    original = getattr(route, "original_route", route)
    dependant = getattr(route, "dependant", None)
    if not isinstance(dependant, Dependant):
        if not isinstance(original, APIRoute):
            return None
        dependant = original.dependant
    found = list(_permissions(dependant))
    return max(found, key=STRENGTH.__getitem__) if found else None


def _permissions(dependant: Dependant) -> list[Permission]:
    found: list[Permission] = []
    permission = getattr(dependant.call, PERMISSION_ATTRIBUTE, None)
    if isinstance(permission, Permission):
        found.append(permission)
    for child in dependant.dependencies:
        found.extend(_permissions(child))
    return found

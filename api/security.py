"""Authentication for the JSON API: Entra bearer tokens for the control-plane app, mapped to a Principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.dependencies import SettingsDep
from core.errors import Forbidden, Unauthenticated
from core.identity.principal import Principal
from core.identity.tokens import EntraTokenVerifier, TokenRules


def get_token_verifier(request: Request) -> EntraTokenVerifier:
    verifier: EntraTokenVerifier = request.app.state.token_verifier
    return verifier


def current_principal(
    request: Request,
    settings: SettingsDep,
    verifier: Annotated[EntraTokenVerifier, Depends(get_token_verifier)],
) -> Principal:
    """The caller of a JSON API route, from `Authorization: Bearer <token>` issued for the control-plane app."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("missing bearer token")
    if settings.control_plane_client_id is None:
        raise Unauthenticated("this deployment has no control-plane app configured")
    client_id = settings.control_plane_client_id
    claims = verifier.verify(token, TokenRules(audiences={client_id, f"api://{client_id}"}))
    return Principal.from_claims(
        claims, operator_role=settings.operator_app_role, publisher_tenant_id=settings.publisher_tenant_id
    )


def operator_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """Only publisher operators pass."""
    if not principal.is_operator:
        raise Forbidden("this operation is for publisher operators")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
OperatorDep = Annotated[Principal, Depends(operator_principal)]

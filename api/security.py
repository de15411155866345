"""Authentication for the JSON API: Entra bearer tokens for the control-plane app, mapped to a Principal.

Three levels, each a dependency that declares its permission (web.permissions): any verified caller of a
tenant (READ), a customer admin of it (ACT: readers get 403), a publisher operator (OPERATE).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.errors import Forbidden, Unauthenticated
from core.identity.principal import Principal
from core.identity.tokens import EntraTokenVerifier, TokenRules
from web.dependencies import SettingsDep
from web.permissions import Permission, declares

# Declared as a security scheme so the OpenAPI document says which routes want a token; the checks stay ours.
bearer_token = HTTPBearer(
    scheme_name="EntraBearer", description="An Entra ID access token for the control-plane app", auto_error=False
)


def get_token_verifier(request: Request) -> EntraTokenVerifier:
    verifier: EntraTokenVerifier = request.app.state.token_verifier
    return verifier


@declares(Permission.READ)
def current_principal(
    settings: SettingsDep,
    verifier: Annotated[EntraTokenVerifier, Depends(get_token_verifier)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_token)],
) -> Principal:
    """The caller of a JSON API route, from `Authorization: Bearer <token>` issued for the control-plane app."""
    if credentials is None:
        raise Unauthenticated("missing bearer token")
    token = credentials.credentials
    if settings.control_plane_client_id is None:
        raise Unauthenticated("this deployment has no control-plane app configured")
    client_id = settings.control_plane_client_id
    claims = verifier.verify(token, TokenRules(audiences={client_id, f"api://{client_id}"}))
    return Principal.from_claims(
        claims,
        operator_role=settings.operator_app_role,
        publisher_tenant_id=settings.publisher_tenant_id,
        app_only_clients=settings.app_only_clients,
    )


@declares(Permission.ACT)
def admin_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """Customer admins (and operators) pass; readers get 403."""
    principal.require_admin()
    return principal


@declares(Permission.OPERATE)
def operator_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """Only publisher operators pass."""
    if not principal.is_operator:
        raise Forbidden("this operation is for publisher operators")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
AdminDep = Annotated[Principal, Depends(admin_principal)]
OperatorDep = Annotated[Principal, Depends(operator_principal)]

"""HTTP surface of the Entra emulator: discovery, keys, token, authorize, logout and the control API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict

from emulators.common.faults import CONTROL_PREFIX, FaultInjectionMiddleware, fault_control_router
from emulators.entra.directory import TENANT_ALIASES
from emulators.entra.errors import EntraError, tenant_not_found
from emulators.entra.sign_in import SignInPageError, error_page
from emulators.entra.tokens import issuer_v1, issuer_v2, new_request_id

if TYPE_CHECKING:
    from emulators.entra.emulator import EntraEmulator


class CertificateRegistration(BaseModel):
    """A PEM certificate to add to an app registration."""

    model_config = ConfigDict(extra="forbid")
    certificate_pem: str


class RedirectUriRegistration(BaseModel):
    """A redirect URI to add to an app registration."""

    model_config = ConfigDict(extra="forbid")
    redirect_uri: str


class RoleAssignment(BaseModel):
    """The app roles a user holds on an app (replacing what they held)."""

    model_config = ConfigDict(extra="forbid")
    roles: list[str]


class TokenMintRequest(BaseModel):
    """Arguments of EntraEmulator.mint_access_token, for callers in other processes."""

    model_config = ConfigDict(extra="forbid")
    tenant_id: str
    audience: str
    client_id: str
    extra_claims: dict[str, Any] | None = None
    lifetime_seconds: int = 3600


def _tenant_path_id(emulator: EntraEmulator, tenant_segment: str) -> str:
    """The tenant part of endpoint URLs: the tenant id, or the alias itself for common/organizations."""
    tenant = emulator.directory.resolve_tenant(tenant_segment)
    if tenant is not None:
        return tenant.id
    if tenant_segment.lower() in TENANT_ALIASES:
        return tenant_segment.lower()
    raise tenant_not_found(tenant_segment)


def _openid_configuration(emulator: EntraEmulator, tenant_segment: str, version: int) -> dict[str, Any]:
    base = emulator.authority_url
    tenant_id = _tenant_path_id(emulator, tenant_segment)
    # Multi-tenant metadata carries a template issuer, exactly like Entra's.
    issuer_tenant = tenant_id if tenant_id not in TENANT_ALIASES else "{tenantid}"
    issuer = issuer_v2(base, issuer_tenant) if version == 2 else issuer_v1(base, issuer_tenant)
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{base}/{tenant_id}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/{tenant_id}/oauth2/v2.0/token",
        "end_session_endpoint": f"{base}/{tenant_id}/oauth2/v2.0/logout",
        "jwks_uri": f"{base}/{tenant_id}/discovery/v2.0/keys" if version == 2 else f"{base}/{tenant_id}/discovery/keys",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
        "response_modes_supported": ["query", "form_post"],
        "response_types_supported": ["code"],
        "subject_types_supported": ["pairwise"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "nbf",
            "nonce",
            "tid",
            "oid",
            "name",
            "preferred_username",
            "email",
            "roles",
            "ver",
        ],
        "request_uri_parameter_supported": False,
        "frontchannel_logout_supported": True,
        "http_logout_supported": True,
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
    }


def build_entra_app(emulator: EntraEmulator) -> FastAPI:
    """The ASGI app of the Entra emulator, wrapped in the fault-injection middleware."""
    app = FastAPI(title="Entra ID emulator", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(EntraError)
    async def entra_error_handler(request: Request, error: EntraError) -> Response:
        return error.response(request.headers.get("client-request-id"))

    @app.exception_handler(SignInPageError)
    async def sign_in_error_handler(request: Request, error: SignInPageError) -> Response:
        return error_page(error)

    @app.get("/{tenant}/v2.0/.well-known/openid-configuration")
    def openid_configuration_v2(tenant: str) -> dict[str, Any]:
        return _openid_configuration(emulator, tenant, version=2)

    @app.get("/{tenant}/.well-known/openid-configuration")
    def openid_configuration_v1(tenant: str) -> dict[str, Any]:
        return _openid_configuration(emulator, tenant, version=1)

    @app.get("/{tenant}/discovery/v2.0/keys")
    @app.get("/{tenant}/discovery/keys")
    def keys(tenant: str) -> dict[str, Any]:
        _tenant_path_id(emulator, tenant)
        return emulator.keys.jwks()

    @app.post("/{tenant}/oauth2/v2.0/token")
    async def token(tenant: str, request: Request) -> Response:
        form = {key: str(value) for key, value in (await request.form()).items()}
        correlation_id = request.headers.get("client-request-id") or new_request_id()
        try:
            body = emulator.token_endpoint.handle(tenant, form)
        except EntraError as error:
            return error.response(correlation_id)
        headers = {
            "client-request-id": correlation_id,
            "x-ms-request-id": new_request_id(),
            "cache-control": "no-store",
        }
        return JSONResponse(body, headers=headers)

    @app.get("/{tenant}/oauth2/v2.0/authorize")
    def authorize_page(tenant: str, request: Request) -> Response:
        return emulator.sign_in.begin(tenant, dict(request.query_params))

    @app.post("/{tenant}/oauth2/v2.0/authorize")
    async def authorize_submit(tenant: str, request: Request) -> Response:
        form = {key: str(value) for key, value in (await request.form()).items()}
        return emulator.sign_in.complete(form)

    @app.get("/{tenant}/oauth2/v2.0/logout")
    def logout(tenant: str, request: Request) -> Response:
        return emulator.sign_in.logout(dict(request.query_params))

    app.include_router(_control_router(emulator))
    app.include_router(fault_control_router(emulator.faults))
    app.add_middleware(FaultInjectionMiddleware, injector=emulator.faults)
    return app


def _control_router(emulator: EntraEmulator) -> APIRouter:
    router = APIRouter(prefix=f"{CONTROL_PREFIX}", tags=["emulator control"])

    def known_app(app_id: str) -> str:
        if app_id not in emulator.directory.apps:
            raise HTTPException(status_code=404, detail=f"unknown app {app_id}")
        return app_id

    def known_tenant(tenant_id: str) -> str:
        tenant = emulator.directory.resolve_tenant(tenant_id)
        if tenant is None:
            raise HTTPException(status_code=404, detail=f"unknown tenant {tenant_id}")
        return tenant.id

    @router.get("/directory")
    def directory() -> dict[str, Any]:
        return emulator.describe()

    @router.get("/keys")
    def key_state() -> dict[str, Any]:
        return emulator.keys.describe()

    @router.post("/keys/rotate")
    def rotate_keys() -> dict[str, Any]:
        emulator.keys.rotate()
        return emulator.keys.describe()

    @router.post("/keys/retire")
    def retire_keys() -> dict[str, Any]:
        retired = emulator.keys.retire_inactive()
        return {**emulator.keys.describe(), "retired_kids": retired}

    @router.post("/apps/{app_id}/certificates", status_code=201)
    def register_certificate(app_id: str, registration: CertificateRegistration) -> dict[str, str]:
        try:
            certificate = emulator.directory.register_certificate(known_app(app_id), registration.certificate_pem)
        except ValueError as error:
            raise HTTPException(status_code=400, detail=str(error)) from error
        return {"sha1_thumbprint": certificate.sha1_thumbprint, "sha256_thumbprint": certificate.sha256_thumbprint}

    @router.delete("/apps/{app_id}/certificates/{thumbprint}", status_code=204)
    def remove_certificate(app_id: str, thumbprint: str) -> None:
        # The last step of a rotation: the old certificate stops signing anything Entra accepts.
        if not emulator.directory.remove_certificate(known_app(app_id), thumbprint):
            raise HTTPException(status_code=404, detail=f"no certificate {thumbprint!r} on app {app_id}")

    @router.post("/apps/{app_id}/redirect-uris", status_code=201)
    def add_redirect_uri(app_id: str, registration: RedirectUriRegistration) -> dict[str, list[str]]:
        app = emulator.directory.apps[known_app(app_id)]
        if registration.redirect_uri not in app.redirect_uris:
            app.redirect_uris.append(registration.redirect_uri)
        return {"redirect_uris": list(app.redirect_uris)}

    @router.put("/tenants/{tenant_id}/consents/{app_id}", status_code=204)
    def grant_consent(tenant_id: str, app_id: str) -> None:
        emulator.directory.grant_consent(known_tenant(tenant_id), known_app(app_id))

    @router.delete("/tenants/{tenant_id}/consents/{app_id}", status_code=204)
    def revoke_consent(tenant_id: str, app_id: str) -> None:
        emulator.directory.revoke_consent(known_tenant(tenant_id), known_app(app_id))

    @router.delete("/tenants/{tenant_id}/consents/{app_id}/delegated", status_code=204)
    def revoke_delegated_consent(tenant_id: str, app_id: str) -> None:
        # Deleting the app's oAuth2PermissionGrants: people still sign in, but no longer reach ARM through it.
        emulator.directory.revoke_delegated(known_tenant(tenant_id), known_app(app_id))

    @router.put("/users/{object_id}/app-roles/{app_id}")
    def assign_app_roles(object_id: str, app_id: str, assignment: RoleAssignment) -> dict[str, list[str]]:
        if emulator.directory.current_user(object_id) is None:
            raise HTTPException(status_code=404, detail=f"unknown user {object_id}")
        try:
            user = emulator.directory.assign_app_roles(object_id, known_app(app_id), assignment.roles)
        except ValueError as error:
            raise HTTPException(status_code=400, detail=str(error)) from error
        return {"roles": list(user.app_roles.get(app_id, ()))}

    @router.post("/tokens")
    def mint_token(request: TokenMintRequest) -> dict[str, str]:
        return {"access_token": emulator.mint_access_token(**request.model_dump())}

    @router.post("/tokens/marketplace-webhook")
    def mint_marketplace_webhook_token() -> dict[str, str]:
        return {"access_token": emulator.mint_marketplace_webhook_token()}

    return router

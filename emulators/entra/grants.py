"""The token endpoint: client authentication and the client-credentials, authorization-code and refresh grants."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from emulators.entra import errors
from emulators.entra.directory import TENANT_ALIASES, AppRegistration, Directory, Resource, Tenant, User
from emulators.entra.tokens import CLOCK_SKEW_SECONDS, TokenIssuer, issuer_v2

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
OIDC_SCOPES = {"openid", "profile", "email", "offline_access"}
ACCESS_TOKEN_SECONDS = 3600
AUTHORIZATION_CODE_SECONDS = 600
REFRESH_TOKEN_SECONDS = 24 * 3600
# Namespace for the pairwise `sub` of user tokens (one per user and app, as Entra does).
PAIRWISE_SUBJECT_NAMESPACE = uuid.UUID("0c8f4b1e-2d3a-4e5f-9a6b-7c8d9e0f1a2b")


@dataclass
class UserGrant:
    """What a user consented to in a sign-in: kept behind an authorization code or a refresh token."""

    client_id: str
    user: User
    scopes: list[str]
    redirect_uri: str = ""
    nonce: str | None = None
    code_challenge: str | None = None
    expires_at: float = 0.0
    redeemed: bool = False


class GrantStore:
    """Authorization codes (single-use) and refresh tokens, time-bounded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, UserGrant] = {}
        self._refresh_tokens: dict[str, UserGrant] = {}

    def issue_code(self, grant: UserGrant) -> str:
        """Store a grant behind a new authorization code."""
        code = secrets.token_urlsafe(48)
        grant.expires_at = time.time() + AUTHORIZATION_CODE_SECONDS
        with self._lock:
            self._codes[code] = grant
        return code

    def redeem_code(self, code: str) -> UserGrant:
        """Mark a code used and return its grant; a second redemption fails."""
        with self._lock:
            grant = self._codes.get(code)
            if grant is None:
                raise errors.invalid_grant("The provided value for the 'code' parameter is not valid.", 70000)
            if grant.redeemed:
                raise errors.invalid_grant("OAuth2 Authorization code was already redeemed, please retry.", 54005)
            if time.time() > grant.expires_at:
                raise errors.invalid_grant("The provided authorization code or refresh token has expired.", 70008)
            grant.redeemed = True
            return grant

    def issue_refresh_token(self, grant: UserGrant) -> str:
        """A new refresh token for the grant."""
        token = secrets.token_urlsafe(64)
        refresh_grant = UserGrant(
            client_id=grant.client_id,
            user=grant.user,
            scopes=list(grant.scopes),
            expires_at=time.time() + REFRESH_TOKEN_SECONDS,
        )
        with self._lock:
            self._refresh_tokens[token] = refresh_grant
        return token

    def redeem_refresh_token(self, token: str) -> UserGrant:
        """The grant of a refresh token. Each use returns a fresh one, but, as Microsoft documents, the old one is
        not revoked: it stays valid until it expires (two requests of one web app may redeem it concurrently)."""
        with self._lock:
            grant = self._refresh_tokens.get(token)
        if grant is None or time.time() > grant.expires_at:
            with self._lock:
                self._refresh_tokens.pop(token, None)
            raise errors.invalid_grant("The refresh token is not valid or has expired.", 70008)
        return UserGrant(
            client_id=grant.client_id, user=grant.user, scopes=list(grant.scopes), expires_at=grant.expires_at
        )


def delegated_scope_name(scope: str) -> tuple[str, str] | None:
    """(resource name, scope name) of a resource scope such as `https://management.azure.com/user_impersonation`;
    None for the OpenID Connect scopes. `.default` stands for what the app may use, user_impersonation here."""
    if scope.lower() in OIDC_SCOPES or "/" not in scope:
        return None
    resource_name, name = scope.rsplit("/", 1)
    return resource_name, "user_impersonation" if name == ".default" else name


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _client_info(user: User) -> str:
    # MSAL builds its account ids from client_info: base64url JSON with uid and utid.
    document = json.dumps({"uid": user.object_id, "utid": user.tenant_id}).encode()
    return base64.urlsafe_b64encode(document).rstrip(b"=").decode()


class TokenEndpoint:
    """Handles POST /{tenant}/oauth2/v2.0/token for every supported grant."""

    def __init__(self, directory: Directory, issuer: TokenIssuer, grants: GrantStore) -> None:
        self.directory = directory
        self.issuer = issuer
        self.grants = grants

    def handle(self, tenant_segment: str, form: dict[str, str]) -> dict[str, Any]:
        """Answer a token request or raise EntraError."""
        tenant = self.directory.resolve_tenant(tenant_segment)
        if tenant is None and tenant_segment.lower() not in TENANT_ALIASES:
            raise errors.tenant_not_found(tenant_segment)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise errors.invalid_request("The request body must contain the following parameter: 'grant_type'.")
        if grant_type == "client_credentials":
            if tenant is None:
                raise errors.invalid_request(
                    f"Use a tenant-specific endpoint for the client credentials flow, not '/{tenant_segment}'.",
                    aadsts=700016,
                )
            return self._client_credentials(tenant, tenant_segment, form)
        if grant_type == "authorization_code":
            return self._authorization_code(tenant, tenant_segment, form)
        if grant_type == "refresh_token":
            return self._refresh_token(tenant, tenant_segment, form)
        raise errors.EntraError(
            "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'."
        )

    # Client authentication ------------------------------------------------------------------------

    def _authenticate_client(self, tenant_segment: str, form: dict[str, str]) -> tuple[AppRegistration, str]:
        """The calling app and its `azpacr`: "1" for a secret, "2" for a certificate assertion."""
        client_id = form.get("client_id", "")
        assertion = form.get("client_assertion")
        if not client_id and assertion:
            try:
                client_id = str(jwt.decode(assertion, options={"verify_signature": False}).get("iss", ""))
            except jwt.PyJWTError as error:
                raise errors.invalid_client(f"Client assertion is not a valid JWT: {error}", aadsts=50027) from error
        if not client_id:
            raise errors.invalid_request("The request body must contain the following parameter: 'client_id'.")
        app = self.directory.apps.get(client_id)
        if app is None:
            raise errors.unauthorized_client(client_id, tenant_segment)
        if form.get("client_secret") is not None:
            if not secrets.compare_digest(form["client_secret"], app.client_secret):
                raise errors.invalid_client(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                    f"secret value, not the client secret ID, for a secret added to app '{app.app_id}'."
                )
            return app, "1"
        if assertion is not None:
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise errors.invalid_request(f"client_assertion_type must be '{ASSERTION_TYPE}'.", aadsts=700025)
            self._verify_client_assertion(app, tenant_segment, assertion)
            return app, "2"
        raise errors.invalid_client(
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            aadsts=7000218,
        )

    def _verify_client_assertion(self, app: AppRegistration, tenant_segment: str, assertion: str) -> None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as error:
            raise errors.invalid_client(f"Client assertion is not a valid JWT: {error}", aadsts=50027) from error
        try:
            certificate = app.find_certificate(header.get("x5t"), header.get("x5t#S256"))
        except KeyError as error:
            raise errors.invalid_client(
                f"The certificate with identifier used to sign the client assertion is not registered on "
                f"application. [Reason - The key was not found., Thumbprint of key used by client: "
                f"'{header.get('x5t#S256') or header.get('x5t')}']",
                aadsts=700027,
            ) from error
        now = datetime.now(UTC)
        if not certificate.not_valid_before <= now <= certificate.not_valid_after:
            # The key credential's validity is the certificate's: an expired one signs nothing Entra accepts.
            raise errors.invalid_client(
                "Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of "
                f"key used by client: '{header.get('x5t#S256') or header.get('x5t')}']",
                aadsts=700027,
            )
        token_endpoints = {f"{self.issuer.authority_url}/{tenant_segment}/oauth2/v2.0/token"}
        tenant = self.directory.resolve_tenant(tenant_segment)
        if tenant is not None:
            token_endpoints |= {
                f"{self.issuer.authority_url}/{tenant.id}/oauth2/v2.0/token",
                f"{self.issuer.authority_url}/{tenant.domain}/oauth2/v2.0/token",
            }
        try:
            claims = jwt.decode(
                assertion,
                certificate.public_key,
                algorithms=["RS256", "PS256"],
                audience=list(token_endpoints),
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "aud", "iss", "sub"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise errors.invalid_client("Client assertion is not within its valid time range.", 700024) from error
        except jwt.InvalidAudienceError as error:
            raise errors.invalid_client(
                "Client assertion audience claim does not match Realm issuer.", aadsts=700212
            ) from error
        except jwt.PyJWTError as error:
            raise errors.invalid_client(f"Client assertion failed signature validation: {error}", 700027) from error
        if claims["iss"] != app.app_id or claims["sub"] != app.app_id:
            raise errors.invalid_client(
                "Client assertion application identifier doesn't match 'client_id' parameter.", aadsts=700021
            )

    def _require_service_principal(self, app: AppRegistration, tenant: Tenant) -> None:
        """A single-tenant app lives only in its home tenant; a multi-tenant one needs consent elsewhere."""
        if tenant.id != app.home_tenant_id and not app.is_multi_tenant:
            raise errors.unauthorized_client(app.app_id, tenant.id)
        if not self.directory.has_service_principal(tenant.id, app.app_id):
            raise errors.unauthorized_client(app.app_id, tenant.id)

    def _resource_of_scope(self, scope: str, tenant: Tenant) -> Resource:
        resource_name = scope.rsplit("/", 1)[0] if "/" in scope else scope
        resource = self.directory.resource_for(resource_name)
        if resource is None or not self.directory.has_service_principal(tenant.id, resource.app_id):
            raise errors.invalid_resource(resource_name, tenant.id)
        return resource

    # Grants ---------------------------------------------------------------------------------------

    def _client_credentials(self, tenant: Tenant, tenant_segment: str, form: dict[str, str]) -> dict[str, Any]:
        app, client_authentication = self._authenticate_client(tenant_segment, form)
        self._require_service_principal(app, tenant)
        scopes = form.get("scope", "").split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise errors.invalid_scope(form.get("scope", ""))
        resource_name = scopes[0].removesuffix("/.default")
        self._resource_of_scope(scopes[0], tenant)
        claims = self.issuer.app_token_claims(
            tenant_id=tenant.id,
            audience=resource_name,
            client_id=app.app_id,
            client_authentication=client_authentication,
            lifetime_seconds=ACCESS_TOKEN_SECONDS,
        )
        return {
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_SECONDS - 1,
            "ext_expires_in": ACCESS_TOKEN_SECONDS - 1,
            "access_token": self.issuer.sign(claims),
        }

    def _authorization_code(self, tenant: Tenant | None, tenant_segment: str, form: dict[str, str]) -> dict[str, Any]:
        app, client_authentication = self._authenticate_client(tenant_segment, form)
        code = form.get("code")
        if not code:
            raise errors.invalid_request("The request body must contain the following parameter: 'code'.")
        grant = self.grants.redeem_code(code)
        if grant.client_id != app.app_id:
            raise errors.invalid_grant("The authorization code was issued to another client.", 70000)
        if tenant is not None and tenant.id != grant.user.tenant_id:
            raise errors.invalid_grant("The authorization code was issued for another tenant.", 70000)
        if form.get("redirect_uri") != grant.redirect_uri:
            raise errors.invalid_grant(
                "The redirect URI does not match the one used in the authorization request.", aadsts=500112
            )
        if grant.code_challenge:
            verifier = form.get("code_verifier")
            if not verifier:
                raise errors.invalid_grant("The request body must contain the parameter 'code_verifier'.", 501491)
            if pkce_challenge(verifier) != grant.code_challenge:
                raise errors.invalid_grant(
                    "The code_verifier does not match the code_challenge supplied in the authorization request "
                    "for PKCE.",
                    aadsts=50148,
                )
        return self._user_token_response(app, grant, client_authentication, form)

    def _refresh_token(self, tenant: Tenant | None, tenant_segment: str, form: dict[str, str]) -> dict[str, Any]:
        app, client_authentication = self._authenticate_client(tenant_segment, form)
        grant = self.grants.redeem_refresh_token(form.get("refresh_token", ""))
        if grant.client_id != app.app_id or (tenant is not None and tenant.id != grant.user.tenant_id):
            raise errors.invalid_grant("The refresh token was issued to another client or tenant.", 70000)
        requested = form.get("scope", "").split()
        if requested:
            self._require_delegated_consent(app, grant.user, requested)
            grant.scopes = requested
        return self._user_token_response(app, grant, client_authentication, form)

    def _require_delegated_consent(self, app: AppRegistration, user: User, scopes: list[str]) -> None:
        """A refresh token reaches another Microsoft resource only for scopes consented for this app and user."""
        for scope in scopes:
            named = delegated_scope_name(scope)
            resource = self.directory.resource_for(named[0]) if named else None
            if named is None or resource is None or resource.app_id not in self.directory.resources:
                continue  # OpenID scopes, or the app's own API: covered by the sign-in itself
            granted = self.directory.delegated_scopes(user.tenant_id, app.app_id, resource.app_id, user.object_id)
            if named[1] not in granted:
                raise errors.consent_required(app.app_id, app.display_name)

    def _user_token_response(
        self, app: AppRegistration, grant: UserGrant, client_authentication: str, form: dict[str, str]
    ) -> dict[str, Any]:
        # The user as the directory holds them now: a refresh token reflects role assignments changed since.
        user = self.directory.current_user(grant.user.object_id)
        if user is None:
            raise errors.invalid_grant("The user account no longer exists in the directory.", 50034)
        user_tenant = self.directory.tenants[user.tenant_id]
        resource_scopes = [scope for scope in grant.scopes if scope.lower() not in OIDC_SCOPES]
        now = int(time.time())
        if resource_scopes:
            resource = self._resource_of_scope(resource_scopes[0], user_tenant)
            resource_name = resource_scopes[0].rsplit("/", 1)[0]
        else:
            resource, resource_name = app, app.app_id
        scope_names = [scope.rsplit("/", 1)[-1] for scope in resource_scopes]
        access_claims = self.issuer.app_token_claims(
            tenant_id=user.tenant_id,
            audience=resource_name,
            client_id=app.app_id,
            client_authentication=client_authentication,
            lifetime_seconds=ACCESS_TOKEN_SECONDS,
        )
        access_claims.pop("idtyp")
        access_claims.update(
            oid=user.object_id,
            sub=self._pairwise_subject(user, resource.app_id),
            scp=" ".join(name if name != ".default" else "user_impersonation" for name in scope_names) or "openid",
            name=user.display_name,
            preferred_username=user.user_principal_name,
            upn=user.user_principal_name,
        )
        roles = self.directory.app_roles_of_user(user, resource.app_id)
        if roles:
            access_claims["roles"] = roles
        if user.directory_roles:
            access_claims["wids"] = list(user.directory_roles)
        response: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(resource_scopes) or "openid profile",
            "expires_in": ACCESS_TOKEN_SECONDS - 1,
            "ext_expires_in": ACCESS_TOKEN_SECONDS - 1,
            "access_token": self.issuer.sign(access_claims),
        }
        if "openid" in grant.scopes:
            id_claims: dict[str, Any] = {
                "aud": app.app_id,
                "iss": issuer_v2(self.issuer.authority_url, user.tenant_id),
                "iat": now,
                "nbf": now,
                "exp": now + ACCESS_TOKEN_SECONDS,
                "oid": user.object_id,
                "sub": self._pairwise_subject(user, app.app_id),
                "tid": user.tenant_id,
                "name": user.display_name,
                "preferred_username": user.user_principal_name,
                "email": user.user_principal_name,
                "ver": "2.0",
                "uti": secrets.token_urlsafe(16),
            }
            user_roles = self.directory.app_roles_of_user(user, app.app_id)
            if user_roles:
                id_claims["roles"] = user_roles
            # Entra adds `wids` when the app's groupMembershipClaims include directory roles.
            if user.directory_roles:
                id_claims["wids"] = list(user.directory_roles)
            if grant.nonce:
                id_claims["nonce"] = grant.nonce
            response["id_token"] = self.issuer.sign(id_claims)
        if "offline_access" in grant.scopes:
            response["refresh_token"] = self.grants.issue_refresh_token(grant)
        if form.get("client_info") == "1":
            response["client_info"] = _client_info(user)
        return response

    @staticmethod
    def _pairwise_subject(user: User, app_id: str) -> str:
        return str(uuid.uuid5(PAIRWISE_SUBJECT_NAMESPACE, f"{user.object_id}:{app_id}"))

"""The emulated directory: tenants, app registrations, Microsoft resources, users and consents.

Loaded from `directory.toml`; client secrets are generated at load time and registered
certificates are added at run time, so nothing secret lives in the repository.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
import threading
import tomllib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import Encoding

DEFAULT_DIRECTORY_PATH = Path(__file__).with_name("directory.toml")
# Namespace for deriving stable service-principal object ids from (tenant, app).
SERVICE_PRINCIPAL_NAMESPACE = uuid.UUID("6f1d7e2a-3b4c-4d5e-8f60-718293a4b5c6")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
TENANT_ALIASES = {"common", "organizations"}
# The principal of a delegated permission grant an administrator gave for everyone in the tenant
# (Microsoft Graph's oAuth2PermissionGrant with consentType "AllPrincipals").
ALL_PRINCIPALS = "AllPrincipals"


@dataclass(frozen=True)
class Tenant:
    """An Entra tenant (directory)."""

    key: str
    id: str
    display_name: str
    domain: str


@dataclass(frozen=True)
class AppRole:
    """An app role declared by an app registration (appears in the `roles` claim)."""

    id: str
    value: str
    display_name: str
    allowed_member_types: tuple[str, ...]


@dataclass(frozen=True)
class RegisteredCertificate:
    """A certificate credential of an app registration, found by its SHA-1 or SHA-256 thumbprint."""

    sha1_thumbprint: str
    sha256_thumbprint: str
    public_key: RSAPublicKey
    pem: str
    # The key credential's validity is the certificate's own (Entra takes start and end from it).
    not_valid_before: datetime
    not_valid_after: datetime


@dataclass
class Resource:
    """Anything a token can be issued for: a Microsoft resource or one of our app registrations."""

    key: str
    app_id: str
    display_name: str
    identifier_uris: tuple[str, ...]
    access_token_version: int

    def names(self) -> set[str]:
        """Every string a scope or audience may use for this resource (app id and identifier URIs)."""
        return {self.app_id.lower(), *(uri.rstrip("/").lower() for uri in self.identifier_uris)}

    def audience_for(self, requested: str) -> str:
        """The `aud` claim: v2 tokens carry the app id; v1 tokens carry the name the client asked for."""
        if self.access_token_version == 2:
            return self.app_id
        return requested.rstrip("/")


@dataclass
class AppRegistration(Resource):
    """An app registration of the publisher: it signs in, holds credentials and may be a resource itself."""

    home_tenant_id: str = ""
    sign_in_audience: str = "AzureADMyOrg"
    redirect_uris: list[str] = field(default_factory=list)
    app_roles: tuple[AppRole, ...] = ()
    client_secret: str = ""
    certificates: dict[str, RegisteredCertificate] = field(default_factory=dict)

    @property
    def is_multi_tenant(self) -> bool:
        """True when users and service principals of other tenants may use the app."""
        return self.sign_in_audience != "AzureADMyOrg"

    def accepts_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact match, or a loopback URI matching scheme, host and path with any port."""
        if redirect_uri in self.redirect_uris:
            return True
        requested = urlsplit(redirect_uri)
        if requested.hostname not in LOOPBACK_HOSTS:
            return False
        for registered_uri in self.redirect_uris:
            registered = urlsplit(registered_uri)
            if (registered.scheme, registered.hostname, registered.path or "/") == (
                requested.scheme,
                requested.hostname,
                requested.path or "/",
            ):
                return True
        return False

    def accepts_post_logout_redirect_uri(self, redirect_uri: str) -> bool:
        """After logout the app may return to any page of the origin of one of its redirect URIs."""
        requested = urlsplit(redirect_uri)
        for registered_uri in self.redirect_uris:
            registered = urlsplit(registered_uri)
            same_host = (registered.scheme, registered.hostname) == (requested.scheme, requested.hostname)
            if same_host and (registered.port == requested.port or requested.hostname in LOOPBACK_HOSTS):
                return True
        return False

    def find_certificate(self, sha1_thumbprint: str | None, sha256_thumbprint: str | None) -> RegisteredCertificate:
        """The registered certificate with that thumbprint; KeyError when there is none."""
        wanted = {_thumbprint_bytes(value) for value in (sha1_thumbprint, sha256_thumbprint) if value}
        for certificate in self.certificates.values():
            if wanted & {
                _thumbprint_bytes(certificate.sha1_thumbprint),
                _thumbprint_bytes(certificate.sha256_thumbprint),
            }:
                return certificate
        raise KeyError("certificate not registered")


@dataclass(frozen=True)
class User:
    """A user of one tenant; `app_roles` maps an app key to the role values assigned on it."""

    key: str
    object_id: str
    tenant_id: str
    user_principal_name: str
    display_name: str
    is_tenant_admin: bool
    app_roles: dict[str, tuple[str, ...]]
    # Template ids of directory roles (Global Administrator, ...): the `wids` claim of the user's tokens.
    directory_roles: tuple[str, ...] = ()


def _thumbprint_bytes(thumbprint: str) -> bytes:
    # Clients send thumbprints as base64 or base64url, padded or not; compare the digests themselves.
    normalised = thumbprint.replace("-", "+").replace("_", "/")
    return base64.b64decode(normalised + "=" * (-len(normalised) % 4))


def _thumbprint(certificate: x509.Certificate, algorithm: str) -> str:
    # JWT headers carry certificate thumbprints as unpadded base64url of the DER digest.
    digest = hashlib.new(algorithm, certificate.public_bytes(Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Directory:
    """Thread-safe view of the directory; consents and certificates change at run time."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._lock = threading.Lock()
        self.tenants: dict[str, Tenant] = {}
        tenant_ids_by_key: dict[str, str] = {}
        for entry in document["tenants"]:
            tenant = Tenant(entry["key"], entry["id"], entry["display_name"], entry["domain"])
            self.tenants[tenant.id] = tenant
            tenant_ids_by_key[tenant.key] = tenant.id
        self.resources: dict[str, Resource] = {}
        for entry in document.get("resources", []):
            resource = Resource(
                entry["key"],
                entry["app_id"],
                entry["display_name"],
                tuple(entry.get("identifier_uris", [])),
                int(entry.get("access_token_version", 1)),
            )
            self.resources[resource.app_id] = resource
        self.apps: dict[str, AppRegistration] = {}
        app_ids_by_key: dict[str, str] = {}
        for entry in document["apps"]:
            app = AppRegistration(
                key=entry["key"],
                app_id=entry["app_id"],
                display_name=entry["display_name"],
                identifier_uris=tuple(entry.get("identifier_uris", [])),
                access_token_version=int(entry.get("access_token_version", 2)),
                home_tenant_id=tenant_ids_by_key[entry["home_tenant"]],
                sign_in_audience=entry.get("sign_in_audience", "AzureADMyOrg"),
                redirect_uris=list(entry.get("redirect_uris", [])),
                app_roles=tuple(
                    AppRole(role["id"], role["value"], role["display_name"], tuple(role["allowed_member_types"]))
                    for role in entry.get("app_roles", [])
                ),
                client_secret=secrets.token_urlsafe(32),
            )
            self.apps[app.app_id] = app
            app_ids_by_key[app.key] = app.app_id
        # (tenant id, app id) pairs: the tenant holds a service principal of the app, i.e. has consented.
        self._service_principals: set[tuple[str, str]] = set()
        for entry in document["tenants"]:
            for app_key in entry.get("service_principals", []):
                self._service_principals.add((entry["id"], app_ids_by_key[app_key]))
        self.users: dict[str, User] = {}
        for entry in document.get("users", []):
            user = User(
                key=entry["key"],
                object_id=entry["object_id"],
                tenant_id=tenant_ids_by_key[entry["tenant"]],
                user_principal_name=entry["user_principal_name"],
                display_name=entry["display_name"],
                is_tenant_admin=bool(entry.get("is_tenant_admin", False)),
                app_roles={app_ids_by_key[key]: tuple(roles) for key, roles in entry.get("app_roles", {}).items()},
                directory_roles=tuple(entry.get("directory_roles", [])),
            )
            self.users[user.object_id] = user
        self._keys = {"tenant": tenant_ids_by_key, "app": app_ids_by_key}
        # Delegated permission grants: (tenant id, client app id, resource app id, principal) -> scope names, where
        # the principal is a user's object id (their own consent) or ALL_PRINCIPALS (an administrator's).
        self._delegated_grants: dict[tuple[str, str, str, str], set[str]] = {}

    @classmethod
    def load(cls, path: Path = DEFAULT_DIRECTORY_PATH) -> Directory:
        """Read a directory TOML file."""
        with path.open("rb") as handle:
            return cls(tomllib.load(handle))

    # Look-ups ---------------------------------------------------------------------------------

    def tenant_by_key(self, key: str) -> Tenant:
        """The tenant with that key from the TOML file (e.g. "contoso")."""
        return self.tenants[self._keys["tenant"][key]]

    def app_by_key(self, key: str) -> AppRegistration:
        """The app registration with that key from the TOML file (e.g. "control-plane")."""
        return self.apps[self._keys["app"][key]]

    def user_by_key(self, key: str) -> User:
        """The user with that key from the TOML file (e.g. "contoso-admin")."""
        return next(user for user in self.users.values() if user.key == key)

    def resolve_tenant(self, tenant: str) -> Tenant | None:
        """A tenant from a path segment: its id or its domain; None for unknown or an alias."""
        lowered = tenant.lower()
        for candidate in self.tenants.values():
            if lowered in (candidate.id, candidate.domain.lower()):
                return candidate
        return None

    def user_by_name(self, user_principal_name: str) -> User | None:
        """A user from a typed sign-in name (case-insensitive)."""
        lowered = user_principal_name.strip().lower()
        return next((user for user in self.users.values() if user.user_principal_name.lower() == lowered), None)

    def resource_for(self, name: str) -> Resource | None:
        """The resource or app registration a scope prefix or audience names."""
        lowered = name.rstrip("/").lower()
        for resource in [*self.resources.values(), *self.apps.values()]:
            if lowered in resource.names():
                return resource
        return None

    def app_roles_of_user(self, user: User, app_id: str) -> list[str]:
        """Role values assigned to a user on an app (empty for other apps)."""
        return list(user.app_roles.get(app_id, ()))

    def current_user(self, object_id: str) -> User | None:
        """The user as the directory holds them now (assignments change at run time)."""
        with self._lock:
            return self.users.get(object_id)

    def assign_app_roles(self, object_id: str, app_id: str, roles: list[str]) -> User:
        """Replace the user's role assignments on an app, as a tenant admin does in the Entra portal."""
        app = self.apps[app_id]
        declared = {role.value for role in app.app_roles if "User" in role.allowed_member_types}
        unknown = sorted(set(roles) - declared)
        if unknown:
            raise ValueError(f"the app declares no user role {unknown}")
        with self._lock:
            user = self.users[object_id]
            assignments = {**user.app_roles, app_id: tuple(roles)}
            updated = dataclasses.replace(user, app_roles=assignments)
            self.users[object_id] = updated
            return updated

    # Consent (service principals) -------------------------------------------------------------

    def has_service_principal(self, tenant_id: str, app_id: str) -> bool:
        """Whether the tenant has consented to the app (Microsoft resources exist everywhere)."""
        if app_id in self.resources:
            return True
        with self._lock:
            return (tenant_id, app_id) in self._service_principals

    def grant_consent(self, tenant_id: str, app_id: str) -> None:
        """Create the app's service principal in the tenant (admin consent)."""
        with self._lock:
            self._service_principals.add((tenant_id, app_id))

    def revoke_consent(self, tenant_id: str, app_id: str) -> None:
        """Delete the app's service principal from the tenant."""
        with self._lock:
            self._service_principals.discard((tenant_id, app_id))

    def grant_delegated(
        self,
        tenant_id: str,
        client_app_id: str,
        resource_app_id: str,
        scopes: set[str],
        principal: str = ALL_PRINCIPALS,
    ) -> None:
        """Consent to a client app acting for a user (or, with ALL_PRINCIPALS, every user) on a resource."""
        key = (tenant_id, client_app_id, resource_app_id, principal)
        with self._lock:
            self._delegated_grants.setdefault(key, set()).update(scopes)

    def delegated_scopes(self, tenant_id: str, client_app_id: str, resource_app_id: str, object_id: str) -> set[str]:
        """The scopes on a resource that the client app may use for this user: theirs and their tenant's grants."""
        with self._lock:
            return {
                scope
                for principal in (object_id, ALL_PRINCIPALS)
                for scope in self._delegated_grants.get((tenant_id, client_app_id, resource_app_id, principal), ())
            }

    def revoke_delegated(self, tenant_id: str, client_app_id: str) -> None:
        """Delete every delegated permission grant of the client app in the tenant (the app's sign-in stays)."""
        with self._lock:
            for key in [key for key in self._delegated_grants if key[:2] == (tenant_id, client_app_id)]:
                del self._delegated_grants[key]

    def service_principal_object_id(self, tenant_id: str, app_id: str) -> str:
        """The stable object id of the app's service principal in a tenant (the `oid` of app tokens)."""
        return str(uuid.uuid5(SERVICE_PRINCIPAL_NAMESPACE, f"{tenant_id}:{app_id}"))

    # Credentials ------------------------------------------------------------------------------

    def register_certificate(self, app_id: str, certificate_pem: str) -> RegisteredCertificate:
        """Add a certificate credential (public part only) to an app registration."""
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
        public_key = certificate.public_key()
        if not isinstance(public_key, RSAPublicKey):
            raise ValueError("only RSA certificates are supported")
        registered = RegisteredCertificate(
            sha1_thumbprint=_thumbprint(certificate, "sha1"),
            sha256_thumbprint=_thumbprint(certificate, "sha256"),
            public_key=public_key,
            pem=certificate_pem,
            not_valid_before=certificate.not_valid_before_utc,
            not_valid_after=certificate.not_valid_after_utc,
        )
        with self._lock:
            self.apps[app_id].certificates[registered.sha256_thumbprint] = registered
        return registered

    def remove_certificate(self, app_id: str, thumbprint: str) -> bool:
        """Remove a certificate credential by its SHA-1 or SHA-256 thumbprint; False when the app has none such."""
        with self._lock:
            try:
                registered = self.apps[app_id].find_certificate(thumbprint, thumbprint)
            except KeyError:
                return False
            del self.apps[app_id].certificates[registered.sha256_thumbprint]
            return True

    def describe(self) -> dict[str, Any]:
        """The directory as JSON facts for emulators.json, including the generated client secrets."""
        with self._lock:
            consents = sorted(self._service_principals)
        return {
            "tenants": {tenant.key: {"id": tenant.id, "domain": tenant.domain} for tenant in self.tenants.values()},
            "apps": {
                app.key: {
                    "client_id": app.app_id,
                    "client_secret": app.client_secret,
                    "home_tenant_id": app.home_tenant_id,
                    "sign_in_audience": app.sign_in_audience,
                    "redirect_uris": list(app.redirect_uris),
                    "app_roles": [role.value for role in app.app_roles],
                    "consented_tenant_ids": [tenant for tenant, app_id in consents if app_id == app.app_id],
                }
                for app in self.apps.values()
            },
            "resources": {
                resource.key: {"app_id": resource.app_id, "identifier_uris": list(resource.identifier_uris)}
                for resource in self.resources.values()
            },
            "users": {
                user.key: {
                    "object_id": user.object_id,
                    "tenant_id": user.tenant_id,
                    "username": user.user_principal_name,
                    "display_name": user.display_name,
                    "is_tenant_admin": user.is_tenant_admin,
                    "directory_roles": list(user.directory_roles),
                    "app_roles": {app_id: list(roles) for app_id, roles in user.app_roles.items()},
                }
                for user in self.users.values()
            },
        }

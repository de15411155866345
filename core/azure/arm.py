"""The typed Azure Resource Manager client: the only module that imports the azure-mgmt-* and Key Vault SDKs.

One instance works in one customer subscription with the control-plane app's credential for the customer's
tenant. Long-running operations are only *started* here (no polling): the controller stores their handle and
checks them again later. The SDKs' own retry policy handles 408/429/5xx and honours Retry-After; we only tune
its budget. Errors leave this module as `ArmAccessDenied` (permanent, actionable) or `ArmRequestFailed`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import quote

import requests
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.rest import HttpRequest, HttpResponse
from azure.keyvault.keys import KeyClient
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.core.exceptions import ARMErrorFormat
from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import PrivateEndpointConnection, PrivateLinkServiceConnectionState
from azure.mgmt.resource.deployments import DeploymentsMgmtClient
from azure.mgmt.resource.resources import ResourceManagementClient

from core.azure.credentials import CredentialFactory, fresh_token_claims
from core.errors import ControlPlaneError
from core.settings import Settings

TERMINAL_DEPLOYMENT_STATES = frozenset({"Succeeded", "Failed", "Canceled"})
SUBSCRIPTIONS_API_VERSION = "2022-12-01"
DEPLOYMENTS_API_VERSION = "2026-06-01"  # what azure-mgmt-resource-deployments 2.0 speaks
RESOURCES_API_VERSION = "2021-04-01"
ROLE_ASSIGNMENTS_API_VERSION = "2022-04-01"
# The Bearer challenge ARM answers for a token it cannot validate (RFC 6750 error code).
INVALID_TOKEN_CHALLENGE = re.compile(r'^Bearer\b.*\berror="invalid_token"', re.IGNORECASE)
AUTHORIZATION_ERROR_CODES = frozenset(
    {"AuthorizationFailed", "LinkedAuthorizationFailed", "InvalidAuthenticationToken"}
)


class ArmAccessDenied(ControlPlaneError):
    """The control-plane app cannot act in the customer's subscription: no consent or a missing role."""

    status_code = 403
    code = "ArmAccessDenied"


class ArmRequestFailed(ControlPlaneError):
    """An ARM call failed after the SDK's retries; `transient` says whether trying later may help."""

    status_code = 502
    code = "ArmRequestFailed"

    def __init__(
        self, message: str, *, arm_code: str, status: int | None, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message, details={"arm_code": arm_code, "status": status, "details": details or []})
        self.arm_code = arm_code
        self.status = status
        self.arm_details = details or []

    @property
    def transient(self) -> bool:
        """Throttling, server errors and network failures may pass; a 4xx answer will not change by itself."""
        return self.status is None or self.status == 429 or self.status >= 500


@dataclass(frozen=True)
class ArmErrorInfo:
    """ARM's error body: code, message and nested details, kept as ARM gave them."""

    code: str
    message: str
    details: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class DeploymentObservation:
    """What ARM says about one deployment."""

    name: str
    provisioning_state: str
    outputs: dict[str, Any]
    error: ArmErrorInfo | None
    # The ids of the resources the deployment created or updated (ARM's outputResources).
    output_resources: tuple[str, ...] = ()

    @property
    def finished(self) -> bool:
        return self.provisioning_state in TERMINAL_DEPLOYMENT_STATES

    @property
    def succeeded(self) -> bool:
        return self.provisioning_state == "Succeeded"


@dataclass(frozen=True)
class ResourceGroupFacts:
    """A resource group as ARM holds it: where it is and its tags."""

    name: str
    location: str
    tags: dict[str, str]


@dataclass(frozen=True)
class EndpointConnection:
    """A consumer's private endpoint connection on a Private Link Service."""

    name: str
    resource_id: str
    private_endpoint_id: str | None
    status: str
    description: str | None


def access_denied_message(subscription_id: str, client_id: str | None, cause: str) -> str:
    """The actionable text operators and customer admins see when we cannot act in a subscription."""
    return (
        f"The control-plane application ({client_id or 'not configured'}) cannot manage Azure subscription "
        f"{subscription_id}: {cause}. A customer administrator must consent to the application in their tenant and "
        "grant it the Contributor role on the subscription (or the target resource group), then an operator retries."
    )


def _error_info(error: HttpResponseError) -> ArmErrorInfo:
    odata = getattr(error, "error", None)
    code = str(getattr(odata, "code", None) or error.reason or "HttpResponseError")
    message = str(getattr(odata, "message", None) or error.message)
    details = [
        {"code": getattr(item, "code", None), "message": getattr(item, "message", None)}
        for item in (getattr(odata, "details", None) or [])
    ]
    return ArmErrorInfo(code, message, details)


def _error_from_body(body: Any) -> ArmErrorInfo | None:
    """An error body from a deployment's properties.error."""
    if body is None:
        return None
    if not isinstance(body, dict):
        body = {"code": str(body), "message": str(body)}
    return ArmErrorInfo(
        code=str(body.get("code") or "DeploymentFailed"),
        message=str(body.get("message") or ""),
        details=[dict(item) for item in body.get("details") or []],
    )


def _enum_text(value: Any) -> str:
    """The wire value of an SDK enum (their str() is the member name, not the value)."""
    if value is None:
        return "Unknown"
    return str(getattr(value, "value", value))


def _observation(deployment: dict[str, Any]) -> DeploymentObservation:
    """A deployment as ARM's JSON gives it (from a GET or a list), reduced to state, plain outputs and error."""
    properties = deployment.get("properties") or {}
    outputs = {
        key: value["value"] if isinstance(value, dict) and "value" in value else value
        for key, value in (properties.get("outputs") or {}).items()
    }
    return DeploymentObservation(
        name=str(deployment.get("name")),
        provisioning_state=str(properties.get("provisioningState") or "Unknown"),
        outputs=outputs,
        error=_error_from_body(properties.get("error")),
        output_resources=tuple(
            str(item["id"])
            for item in properties.get("outputResources") or []
            if isinstance(item, dict) and item.get("id")
        ),
    )


def environment_http_settings(url: str, verify: str | bool) -> dict[str, Any]:
    """Proxy and CA bundle settings the environment gives for `url`, read once.

    requests reads them (and ~/.netrc) again on every request when a session trusts the environment, about 6%
    of a worker's CPU at a thousand clusters; one client talks to one host, so once is enough.
    """
    with requests.Session() as session:
        merged = session.merge_environment_settings(url, {}, None, verify, None)
    return {"proxies": merged["proxies"] or None, "connection_verify": merged["verify"]}


def _raise_for_status(response: HttpResponse) -> None:
    """The SDK's exceptions for an error answer, as its generated operations raise them."""
    if response.status_code == 404:
        raise ResourceNotFoundError(response=response, error_format=ARMErrorFormat)
    if response.status_code >= 400:
        raise HttpResponseError(response=response, error_format=ARMErrorFormat)


class FreshTokenOnRefusalPolicy(ARMChallengeAuthenticationPolicy):
    """ARM's bearer-token policy, plus one more try with a token issued from now on when ARM calls ours invalid.

    Entra can retire the key that signed a cached token (an emergency rollover); ARM then answers 401
    `error="invalid_token"` until the token expires, which azure-core's policy would not cure (it answers claims
    challenges only). A second refusal is ARM's real answer.
    """

    def on_challenge(self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]) -> bool:
        if super().on_challenge(request, response):
            return True
        challenge = response.http_response.headers.get("WWW-Authenticate", "")
        if not INVALID_TOKEN_CHALLENGE.search(challenge):
            return False
        self.authorize_request(request, *self._scopes, claims=fresh_token_claims())
        return True


class ArmClient:
    """ARM in one customer subscription, as the control-plane app signed in to that customer's tenant."""

    def __init__(
        self, settings: Settings, credentials: CredentialFactory, tenant_id: str, subscription_id: str
    ) -> None:
        self.settings = settings
        self.tenant_id = tenant_id
        self.subscription_id = subscription_id
        self._credentials = credentials

    @cached_property
    def _credential(self) -> TokenCredential:
        return self._credentials.customer_tenant(self.tenant_id)

    @cached_property
    def _environment(self) -> dict[str, Any]:
        return environment_http_settings(self.settings.arm_endpoint, self.settings.tls_verify)

    def _client_options(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "base_url": settings.arm_endpoint,
            "credential_scopes": [settings.arm_credential_scope],
            # A policy of its own per SDK client: a pipeline links its policies to each other.
            "authentication_policy": FreshTokenOnRefusalPolicy(self._credential, settings.arm_credential_scope),
            **self._environment,
            "use_env_settings": False,
            "connection_timeout": settings.http_timeout_seconds,
            "read_timeout": settings.http_timeout_seconds * 3,
            # azure-core's RetryPolicy: exponential backoff with jitter, Retry-After honoured on 429/503.
            "retry_total": settings.arm_retry_total,
            "retry_backoff_factor": settings.arm_retry_backoff_seconds,
            "retry_backoff_max": settings.arm_retry_backoff_max_seconds,
        }

    @cached_property
    def _resources(self) -> ResourceManagementClient:
        return ResourceManagementClient(self._credential, self.subscription_id, **self._client_options())

    @cached_property
    def _deployments(self) -> DeploymentsMgmtClient:
        return DeploymentsMgmtClient(self._credential, self.subscription_id, **self._client_options())

    @cached_property
    def _network(self) -> NetworkManagementClient:
        return NetworkManagementClient(self._credential, self.subscription_id, **self._client_options())

    @cached_property
    def _compute(self) -> ComputeManagementClient:
        return ComputeManagementClient(self._credential, self.subscription_id, **self._client_options())

    def _translate(self, error: Exception) -> ControlPlaneError:
        """One place that turns SDK exceptions into our two error kinds."""
        client_id = self.settings.control_plane_client_id
        if isinstance(error, ClientAuthenticationError) and getattr(error, "status_code", None) is None:
            # Raised by azure-identity before any ARM call: the tenant has not consented to the app.
            cause = f"sign-in to tenant {self.tenant_id} failed ({str(error)[:300]})"
            return ArmAccessDenied(access_denied_message(self.subscription_id, client_id, cause))
        if isinstance(error, HttpResponseError):
            info = _error_info(error)
            if info.code in AUTHORIZATION_ERROR_CODES or error.status_code in (401, 403):
                return ArmAccessDenied(
                    access_denied_message(self.subscription_id, client_id, f"{info.code}: {info.message}"),
                    details={"arm_code": info.code},
                )
            return ArmRequestFailed(
                f"ARM answered {error.status_code} {info.code}: {info.message}",
                arm_code=info.code,
                status=error.status_code,
                details=info.details,
            )
        if isinstance(error, ServiceRequestError | ServiceResponseError):
            return ArmRequestFailed(f"ARM could not be reached: {error}", arm_code="ServiceUnreachable", status=None)
        raise error

    # Resource groups --------------------------------------------------------------------------------------------
    def get_resource_group(self, name: str) -> ResourceGroupFacts | None:
        """The group's location and tags; None when it does not exist."""
        try:
            group = self._resources.resource_groups.get(name)
        except ResourceNotFoundError:
            return None
        except Exception as error:
            raise self._translate(error) from error
        return ResourceGroupFacts(str(group.name or name), str(group.location), dict(group.tags or {}))

    def create_resource_group(self, name: str, location: str, tags: dict[str, str]) -> bool:
        """PUT a new resource group with our tags; True when ARM created it (201), False when it already existed.

        Only for a group the caller just saw missing: a PUT of an existing group replaces its tags.
        """
        try:
            created = self._resources.resource_groups.create_or_update(
                name,
                {"location": location, "tags": tags},
                # ARM answers 201 for a new group and 200 for one that already existed.
                cls=lambda pipeline_response, *_: pipeline_response.http_response.status_code == 201,
            )
        except Exception as error:
            raise self._translate(error) from error
        return bool(created)

    def merge_resource_group_tags(self, name: str, tags: dict[str, str]) -> None:
        """Add or update our tags on the group with Tags - Update At Scope (Merge): the customer's tags stay."""
        scope = f"subscriptions/{self.subscription_id}/resourceGroups/{name}"
        try:
            self._resources.tags.begin_update_at_scope(
                scope, {"operation": "Merge", "properties": {"tags": tags}}, polling=False
            )
        except Exception as error:
            raise self._translate(error) from error

    def list_group_resource_ids(self, name: str) -> list[str]:
        """The ids of every top-level resource in the group, whoever created them; empty when the group is gone."""
        try:
            return [str(item.id) for item in self._resources.resources.list_by_resource_group(name) if item.id]
        except ResourceNotFoundError:
            return []
        except Exception as error:
            raise self._translate(error) from error

    def begin_delete_resource(self, resource_id: str, api_version: str) -> None:
        """Start deleting one resource (and its children); a resource already gone is fine."""
        try:
            self._resources.resources.begin_delete_by_id(resource_id, api_version=api_version, polling=False)
        except ResourceNotFoundError:
            return
        except Exception as error:
            raise self._translate(error) from error

    def accessible_subscription_ids(self) -> set[str]:
        """Lower-case ids of the subscriptions this app may read in the customer's tenant (what its consent covers)."""
        found: set[str] = set()
        url: str | None = f"/subscriptions?api-version={SUBSCRIPTIONS_API_VERSION}"
        try:
            while url:
                page = self._send(HttpRequest("GET", url, headers={"Accept": "application/json"}))
                for item in (page or {}).get("value") or []:
                    if item.get("subscriptionId"):
                        found.add(str(item["subscriptionId"]).lower())
                url = (page or {}).get("nextLink")
        except Exception as error:
            raise self._translate(error) from error
        return found

    def list_locations(self) -> set[str]:
        """Programmatic names of the regions ARM offers this subscription (Subscriptions - List Locations)."""
        url = f"/subscriptions/{quote(self.subscription_id, safe='')}/locations?api-version={SUBSCRIPTIONS_API_VERSION}"
        try:
            page = self._send(HttpRequest("GET", url, headers={"Accept": "application/json"}))
        except Exception as error:
            raise self._translate(error) from error
        return {str(item["name"]).lower() for item in (page or {}).get("value") or [] if item.get("name")}

    def resource_group_exists(self, name: str) -> bool:
        """True while the resource group exists (also while ARM is still deleting it)."""
        try:
            return bool(self._resources.resource_groups.check_existence(name))
        except Exception as error:
            raise self._translate(error) from error

    def begin_delete_resource_group(self, name: str) -> None:
        """Start deleting the resource group and everything in it; Key Vaults go to soft delete, never purged."""
        try:
            self._resources.resource_groups.begin_delete(name, polling=False)
        except ResourceNotFoundError:
            return
        except Exception as error:
            raise self._translate(error) from error

    # Generic reads ----------------------------------------------------------------------------------------------
    def get_resource(self, resource_id: str, api_version: str) -> dict[str, Any] | None:
        """Any resource by id, as ARM's JSON (camelCase keys); None when ARM has no such resource."""
        try:
            resource = self._resources.resources.get_by_id(resource_id, api_version=api_version)
        except ResourceNotFoundError:
            return None
        except Exception as error:
            raise self._translate(error) from error
        return dict(resource.as_dict())

    # Drift observation: plain JSON through the pipeline, like deployments (the observer only reads a few fields).
    def _get_json(self, path: str, api_version: str) -> Any:
        separator = "&" if "?" in path else "?"
        url = f"{quote(path, safe='/')}{separator}api-version={api_version}"
        return self._send(HttpRequest("GET", url, headers={"Accept": "application/json"}))

    def _list_json(self, path: str, api_version: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page = self._get_json(path, api_version)
        while True:
            items.extend(page.get("value") or [])
            next_link = page.get("nextLink")
            if not next_link:
                return items
            page = self._send(HttpRequest("GET", next_link, headers={"Accept": "application/json"}))

    def list_group_resources(self, resource_group: str) -> list[dict[str, Any]] | None:
        """The group's top-level resources (id, type, sku, tags) in one paged list; None when the group is gone."""
        path = f"/subscriptions/{self.subscription_id}/resourceGroups/{resource_group}/resources"
        try:
            return self._list_json(path, RESOURCES_API_VERSION)
        except ResourceNotFoundError:
            return None
        except Exception as error:
            raise self._translate(error) from error

    def read_resource(self, resource_id: str, api_version: str) -> dict[str, Any] | None:
        """A resource's ARM JSON by id (camelCase, as ARM sends it); None when ARM has no such resource."""
        try:
            body = self._get_json(resource_id, api_version)
        except ResourceNotFoundError:
            return None
        except Exception as error:
            raise self._translate(error) from error
        return dict(body or {})

    def list_role_assignments(self, scope: str) -> list[dict[str, Any]]:
        """Role assignments at exactly this scope (an empty list when the scope itself is gone)."""
        path = f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments"
        try:
            return self._list_json(path, ROLE_ASSIGNMENTS_API_VERSION)
        except ResourceNotFoundError:
            return []
        except Exception as error:
            raise self._translate(error) from error

    def subscription_tenant_id(self) -> str:
        """The Entra tenant that owns this subscription (what a publisher reads to learn whose it is)."""
        # azure-mgmt-resource 26 no longer ships the subscriptions client; a subscription is a resource id too.
        body = self.get_resource(f"/subscriptions/{self.subscription_id}", SUBSCRIPTIONS_API_VERSION)
        tenant_id = (body or {}).get("tenantId")
        if not tenant_id:
            raise ArmRequestFailed(
                f"ARM did not name the tenant of subscription {self.subscription_id}",
                arm_code="SubscriptionTenantUnknown",
                status=404 if body is None else 200,
            )
        return str(tenant_id)

    # Deployments ------------------------------------------------------------------------------------------------
    # Deployments go through the SDK's pipeline (credential, retries, ARM error format) as plain JSON: its model
    # (de)serialization was about a tenth of a worker's CPU at a thousand clusters, and a template is JSON anyway.
    def _deployments_path(self, resource_group: str, name: str | None = None) -> str:
        path = (
            f"/subscriptions/{quote(self.subscription_id, safe='')}/resourcegroups/{quote(resource_group, safe='')}"
            "/providers/Microsoft.Resources/deployments"
        )
        if name is not None:
            path += f"/{quote(name, safe='')}"
        return f"{path}?api-version={DEPLOYMENTS_API_VERSION}"

    def _send(self, request: HttpRequest) -> Any:
        """Send through the deployments client's pipeline; the JSON body, or the SDK's exception for an error."""
        response = self._deployments.send_request(request)
        _raise_for_status(response)
        return response.json() if response.content else None

    def begin_deployment(
        self, resource_group: str, name: str, template: dict[str, Any], parameters: dict[str, Any]
    ) -> str:
        """PUT an incremental deployment and return at once (the LRO is started, not awaited); returns its name."""
        body = {
            "properties": {
                "mode": "Incremental",
                "template": template,
                "parameters": {key: {"value": value} for key, value in parameters.items()},
            }
        }
        request = HttpRequest(
            "PUT",
            self._deployments_path(resource_group, name),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            content=json.dumps(body, separators=(",", ":")).encode(),
        )
        try:
            self._send(request)
        except Exception as error:
            raise self._translate(error) from error
        return name

    def get_deployment(self, resource_group: str, name: str) -> DeploymentObservation | None:
        """The deployment's state, plain output values and error; None when ARM has no such deployment."""
        request = HttpRequest(
            "GET", self._deployments_path(resource_group, name), headers={"Accept": "application/json"}
        )
        try:
            return _observation(self._send(request))
        except ResourceNotFoundError:
            return None
        except Exception as error:
            raise self._translate(error) from error

    def list_deployments(self, resource_group: str) -> dict[str, DeploymentObservation]:
        """Every deployment ARM keeps in the resource group, by name (empty when the group does not exist)."""
        found: dict[str, DeploymentObservation] = {}
        url: str | None = self._deployments_path(resource_group)
        try:
            while url:
                page = self._send(HttpRequest("GET", url, headers={"Accept": "application/json"}))
                for item in page.get("value") or []:
                    observation = _observation(item)
                    found[observation.name] = observation
                url = page.get("nextLink")
        except ResourceNotFoundError:
            return {}
        except Exception as error:
            raise self._translate(error) from error
        return found

    def created_by_deployment(self, resource_group: str, name: str) -> list[str]:
        """Resource ids a deployment's operations created or updated (Deployment Operations - List).

        ARM reports outputResources only for a succeeded deployment; a failed one may still have created some.
        """
        path = self._deployments_path(resource_group, name).replace("?", "/operations?", 1)
        created: list[str] = []
        url: str | None = path
        try:
            while url:
                page = self._send(HttpRequest("GET", url, headers={"Accept": "application/json"}))
                for item in (page or {}).get("value") or []:
                    properties = item.get("properties") or {}
                    target = properties.get("targetResource") or {}
                    if properties.get("provisioningState") == "Succeeded" and target.get("id"):
                        created.append(str(target["id"]))
                url = (page or {}).get("nextLink")
        except ResourceNotFoundError:
            return created
        except Exception as error:
            raise self._translate(error) from error
        return created

    # Scale set power ---------------------------------------------------------------------------------------------
    def begin_deallocate_scale_set(self, resource_group: str, name: str) -> None:
        """Start deallocating every instance (disks, data and keys stay)."""
        try:
            self._compute.virtual_machine_scale_sets.begin_deallocate(resource_group, name, polling=False)
        except Exception as error:
            raise self._translate(error) from error

    def begin_start_scale_set(self, resource_group: str, name: str) -> None:
        """Start every instance again."""
        try:
            self._compute.virtual_machine_scale_sets.begin_start(resource_group, name, polling=False)
        except Exception as error:
            raise self._translate(error) from error

    def scale_set_power_state(self, resource_group: str, name: str) -> str | None:
        """`running`, `deallocated`, `stopped`... from the instance view; None when the scale set is gone."""
        try:
            view = self._compute.virtual_machine_scale_sets.get_instance_view(resource_group, name)
        except ResourceNotFoundError:
            return None
        except Exception as error:
            raise self._translate(error) from error
        for summary in (view.virtual_machine.statuses_summary if view.virtual_machine else None) or []:
            code = str(summary.code or "")
            if code.startswith("PowerState/"):
                return code.split("/", 1)[1]
        return "deallocated"

    # Private Link Service connections ------------------------------------------------------------------------------
    def list_endpoint_connections(self, resource_group: str, service_name: str) -> list[EndpointConnection]:
        """Every consumer connection on the Private Link Service."""
        try:
            items = list(
                self._network.private_link_services.list_private_endpoint_connections(resource_group, service_name)
            )
        except Exception as error:
            raise self._translate(error) from error
        connections = []
        for item in items:
            state = item.private_link_service_connection_state
            connections.append(
                EndpointConnection(
                    name=str(item.name),
                    resource_id=str(item.id),
                    private_endpoint_id=item.private_endpoint.id if item.private_endpoint else None,
                    status=_enum_text(state.status) if state and state.status else "Pending",
                    description=state.description if state else None,
                )
            )
        return connections

    def set_endpoint_connection_status(
        self, resource_group: str, service_name: str, connection_name: str, status: str, description: str
    ) -> None:
        """Approve or reject a connection (`status` is Approved or Rejected)."""
        body = PrivateEndpointConnection(  # type: ignore[call-overload]  # the SDK's overloads omit this keyword
            private_link_service_connection_state=PrivateLinkServiceConnectionState(
                status=status, description=description[:140]
            )
        )
        try:
            self._network.private_link_services.update_private_endpoint_connection(
                resource_group, service_name, connection_name, body
            )
        except Exception as error:
            raise self._translate(error) from error

    # Key Vault ----------------------------------------------------------------------------------------------------
    def rotate_key(self, vault_url: str, key_name: str) -> str:
        """Rotate the customer-managed key now; returns the new versioned key id."""
        # The challenge names vault.azure.net; vaults outside that domain (sovereign clouds, the local emulator)
        # answer from their own host, so the resource check must not pin the domain.
        client = KeyClient(
            vault_url,
            self._credential,
            verify_challenge_resource=False,
            connection_verify=self.settings.tls_verify,
            retry_total=self.settings.arm_retry_total,
            retry_backoff_factor=self.settings.arm_retry_backoff_seconds,
        )
        try:
            with client:
                key = client.rotate_key(key_name)
        except Exception as error:
            raise self._translate(error) from error
        return str(key.id)


class ArmClientFactory:
    """One ArmClient per (tenant, subscription), sharing the per-tenant credentials."""

    def __init__(self, settings: Settings, credentials: CredentialFactory | None = None) -> None:
        self.settings = settings
        self.credentials = credentials or CredentialFactory(settings)
        self._clients: dict[tuple[str, str], ArmClient] = {}

    def for_subscription(self, tenant_id: str, subscription_id: str) -> ArmClient:
        """The client for a customer subscription in the customer's Entra tenant."""
        key = (tenant_id.lower(), subscription_id.lower())
        if key not in self._clients:
            self._clients[key] = ArmClient(self.settings, self.credentials, tenant_id, subscription_id)
        return self._clients[key]

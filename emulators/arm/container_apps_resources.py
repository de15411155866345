"""Microsoft.App: managed environments, container apps and jobs, with the checks ARM makes when they are PUT.

An environment gets its default domain; an app gets its revision name, ingress FQDN and outbound addresses.
Both app kinds are refused, as Container Apps refuses them, when the environment or a user-assigned identity
does not exist, a Key Vault secret names no identity of the resource, or a container or volume refers to a
secret the resource does not declare.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from emulators.arm.errors import ResourceFailure
from emulators.arm.resource_providers import PutRequest, ResourceHandler, ResourceProviders
from emulators.arm.store import StoredResource

ENVIRONMENT_TYPE = "microsoft.app/managedenvironments"


def _short_hash(*parts: str, length: int = 10) -> str:
    return hashlib.sha256("/".join(parts).lower().encode()).hexdigest()[:length]


class ManagedEnvironmentHandler(ResourceHandler):
    """managedEnvironments: a default domain per environment, a static IP, the log workspace checked."""

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        logs = request.properties.get("appLogsConfiguration") or {}
        if logs.get("destination") == "log-analytics":
            configuration = logs.get("logAnalyticsConfiguration") or {}
            if not configuration.get("customerId") or not configuration.get("sharedKey"):
                raise ResourceFailure(
                    "ManagedEnvironmentInvalidLogAnalyticsConfiguration",
                    "appLogsConfiguration.logAnalyticsConfiguration needs customerId and sharedKey.",
                )
            workspaces = providers.store.resources_of_type("Microsoft.OperationalInsights/workspaces")
            if not any(item.body["properties"].get("customerId") == configuration["customerId"] for item in workspaces):
                raise ResourceFailure(
                    "ManagedEnvironmentLogAnalyticsWorkspaceNotFound",
                    f"No Log Analytics workspace has the customer id '{configuration['customerId']}'.",
                )
        body = providers.base_body(request)
        previous = request.existing.body["properties"] if request.existing else {}
        location = str(request.body.get("location", "")).replace(" ", "").lower()
        properties = body["properties"]
        # The shared key is write-only, as in Azure.
        (properties.get("appLogsConfiguration") or {}).get("logAnalyticsConfiguration", {}).pop("sharedKey", None)
        properties["defaultDomain"] = previous.get("defaultDomain") or (
            f"{_short_hash(request.resource_id.id)}.{location}.azurecontainerapps.io"
        )
        properties["staticIp"] = previous.get("staticIp") or "20.50.{}.{}".format(
            *(int(_short_hash(request.resource_id.id, str(index), length=2), 16) for index in range(2))
        )
        properties.setdefault("zoneRedundant", False)
        return body


class _ContainerWorkloadHandler(ResourceHandler):
    """What container apps and jobs share: environment, identities, secrets and their references."""

    environment_property = "managedEnvironmentId"

    def check_workload(self, providers: ResourceProviders, request: PutRequest) -> StoredResource:
        """The environment the workload runs in, after every reference in the request was checked."""
        properties = request.properties
        environment_id = properties.get(self.environment_property) or properties.get("environmentId")
        environment = providers.store.resource(str(environment_id)) if environment_id else None
        if environment is None or environment.type.lower() != ENVIRONMENT_TYPE:
            raise ResourceFailure(
                "ManagedEnvironmentNotFound", f"The managed environment '{environment_id}' was not found."
            )
        identities = {key.lower() for key in ((request.body.get("identity") or {}).get("userAssignedIdentities") or {})}
        for identity_id in identities:
            if providers.store.resource(identity_id) is None:
                raise ResourceFailure(
                    "InvalidUserAssignedIdentity", f"The user-assigned identity '{identity_id}' was not found."
                )
        configuration = properties.get("configuration") or {}
        secret_names = set()
        for secret in configuration.get("secrets") or []:
            name = str(secret.get("name", ""))
            secret_names.add(name)
            if secret.get("keyVaultUrl"):
                identity = str(secret.get("identity", ""))
                if identity.lower() != "system" and identity.lower() not in identities:
                    raise ResourceFailure(
                        "ContainerAppSecretKeyVaultIdentityInvalid",
                        f"The secret '{name}' reads Key Vault through '{identity}', which is not an identity of "
                        "this resource.",
                    )
            elif "value" not in secret:
                raise ResourceFailure(
                    "ContainerAppSecretInvalid", f"The secret '{name}' has neither value nor keyVaultUrl."
                )
        for registry in configuration.get("registries") or []:
            identity = str(registry.get("identity", ""))
            if identity and identity.lower() != "system" and identity.lower() not in identities:
                raise ResourceFailure(
                    "ContainerAppRegistryIdentityInvalid",
                    f"The registry '{registry.get('server')}' is pulled through '{identity}', which is not an "
                    "identity of this resource.",
                )
        template = properties.get("template") or {}
        for container in [*(template.get("initContainers") or []), *(template.get("containers") or [])]:
            if not container.get("image"):
                raise ResourceFailure(
                    "ContainerAppImageRequired", f"The container '{container.get('name')}' needs an image."
                )
            for variable in container.get("env") or []:
                reference = variable.get("secretRef")
                if reference is not None and reference not in secret_names:
                    raise ResourceFailure(
                        "ContainerAppSecretRefNotFound",
                        f"The environment variable '{variable.get('name')}' refers to the secret '{reference}', which "
                        "is not declared in configuration.secrets.",
                    )
        volume_names = set()
        for volume in template.get("volumes") or []:
            volume_names.add(volume.get("name"))
            for item in volume.get("secrets") or []:
                if item.get("secretRef") not in secret_names:
                    raise ResourceFailure(
                        "ContainerAppSecretRefNotFound",
                        f"The volume '{volume.get('name')}' mounts the secret '{item.get('secretRef')}', which is not "
                        "declared in configuration.secrets.",
                    )
        for container in template.get("containers") or []:
            for mount in container.get("volumeMounts") or []:
                if mount.get("volumeName") not in volume_names:
                    raise ResourceFailure(
                        "ContainerAppVolumeMountInvalid",
                        f"The container '{container.get('name')}' mounts the undeclared volume "
                        f"'{mount.get('volumeName')}'.",
                    )
        return environment

    @staticmethod
    def strip_secret_values(body: dict[str, Any]) -> None:
        """Inline secret values are write-only: a GET never returns them."""
        for secret in (body["properties"].get("configuration") or {}).get("secrets") or []:
            secret.pop("value", None)


class ContainerAppHandler(_ContainerWorkloadHandler):
    """containerApps: a new revision when the template changes, the ingress FQDN on the environment's domain."""

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        environment = self.check_workload(providers, request)
        body = providers.base_body(request)
        self.strip_secret_values(body)
        properties = body["properties"]
        previous = request.existing.body["properties"] if request.existing else {}
        name = request.resource_id.leaf_name
        domain = environment.body["properties"]["defaultDomain"]
        # A revision-scope change (the template) makes a new revision; configuration changes do not.
        template_hash = _short_hash(repr(properties.get("template")), length=12)
        if previous.get("latestRevisionName") and previous.get("_templateHash") == template_hash:
            revision = previous["latestRevisionName"]
        else:
            suffix = (properties.get("template") or {}).get("revisionSuffix") or uuid.uuid4().hex[:7]
            revision = f"{name}--{suffix}"
        properties["_templateHash"] = template_hash
        properties["environmentId"] = environment.id
        properties["latestRevisionName"] = revision
        properties["latestReadyRevisionName"] = revision
        properties["runningStatus"] = "Running"
        properties["outboundIpAddresses"] = [environment.body["properties"]["staticIp"]]
        ingress = (properties.get("configuration") or {}).get("ingress")
        if ingress:
            internal = "" if ingress.get("external") else ".internal"
            ingress["fqdn"] = f"{name}{internal}.{domain}"
            properties["latestRevisionFqdn"] = f"{revision}{internal}.{domain}"
        configuration = properties.setdefault("configuration", {})
        configuration.setdefault("activeRevisionsMode", "Single")
        return body

    def render(self, providers: ResourceProviders, stored: StoredResource) -> dict[str, Any]:
        body = super().render(providers, stored)
        body["properties"].pop("_templateHash", None)
        return body


class ContainerAppJobHandler(_ContainerWorkloadHandler):
    """jobs: a trigger type and its configuration are required; no revisions (jobs are updated in place)."""

    environment_property = "environmentId"

    def prepare(self, providers: ResourceProviders, request: PutRequest) -> dict[str, Any]:
        environment = self.check_workload(providers, request)
        configuration = request.properties.get("configuration") or {}
        trigger = str(configuration.get("triggerType", ""))
        required = {"Manual": "manualTriggerConfig", "Schedule": "scheduleTriggerConfig", "Event": "eventTriggerConfig"}
        if trigger not in required:
            raise ResourceFailure("JobTriggerTypeInvalid", f"triggerType must be one of {', '.join(required)}.")
        if trigger == "Schedule" and not (configuration.get(required[trigger]) or {}).get("cronExpression"):
            raise ResourceFailure("JobScheduleTriggerConfigInvalid", "A scheduled job needs a cronExpression.")
        if not isinstance(configuration.get("replicaTimeout"), int):
            raise ResourceFailure("JobReplicaTimeoutRequired", "configuration.replicaTimeout (seconds) is required.")
        body = providers.base_body(request)
        self.strip_secret_values(body)
        body["properties"]["environmentId"] = environment.id
        body["properties"]["outboundIpAddresses"] = [environment.body["properties"]["staticIp"]]
        return body


def register_container_apps_handlers(providers: ResourceProviders) -> None:
    """Add the Microsoft.App handlers to the registry."""
    providers.register("Microsoft.App/managedEnvironments", ManagedEnvironmentHandler())
    providers.register("Microsoft.App/containerApps", ContainerAppHandler())
    providers.register("Microsoft.App/jobs", ContainerAppJobHandler())

"""The façade cluster's deployment steps: template files, order, deterministic names and output wiring.

The provisioning controller deploys the steps one by one with these names; the composer wires the same
steps into the managed application's mainTemplate.json.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# In the repository (and inside the installed package `arm_templates`): facade-cluster/ holds the step templates.
TEMPLATES_FOLDER = Path("arm_templates")
STEP_TEMPLATES_FOLDER = "facade-cluster"
FACADE_CLUSTER_FOLDER = TEMPLATES_FOLDER / STEP_TEMPLATES_FOLDER
# ARM deployment names are limited to 64 characters.
MAXIMUM_DEPLOYMENT_NAME_LENGTH = 64


@dataclass(frozen=True)
class OutputBinding:
    """A step parameter fed by an output of an earlier step."""

    step: str
    output: str


@dataclass(frozen=True)
class TemplateStep:
    """One step template and, per parameter it needs from earlier steps, where the value comes from."""

    name: str
    bindings: Mapping[str, OutputBinding] = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        """The template's file name inside the facade-cluster folder."""
        return f"{self.name}.json"

    @property
    def producer_steps(self) -> tuple[str, ...]:
        """The earlier steps this one reads outputs from, in first-use order."""
        return tuple(dict.fromkeys(binding.step for binding in self.bindings.values()))


IDENTITY_KEY_VAULT = "identity-keyvault"
CLUSTER = "cluster"
PRIVATE_LINK = "private-link"
DNS = "dns"
DIAGNOSTICS = "diagnostics"

FACADE_CLUSTER_STEPS: tuple[TemplateStep, ...] = (
    TemplateStep(IDENTITY_KEY_VAULT),
    TemplateStep(
        CLUSTER,
        {
            "managedIdentityResourceId": OutputBinding(IDENTITY_KEY_VAULT, "identityResourceId"),
            "managedIdentityClientId": OutputBinding(IDENTITY_KEY_VAULT, "identityClientId"),
            "keyVaultResourceId": OutputBinding(IDENTITY_KEY_VAULT, "keyVaultResourceId"),
            "keyIdWithVersion": OutputBinding(IDENTITY_KEY_VAULT, "keyIdWithVersion"),
            "keyUri": OutputBinding(IDENTITY_KEY_VAULT, "keyUri"),
        },
    ),
    TemplateStep(
        PRIVATE_LINK,
        {
            "loadBalancerFrontendIpConfigurationId": OutputBinding(CLUSTER, "loadBalancerFrontendIpConfigurationId"),
            "privateLinkSubnetId": OutputBinding(CLUSTER, "privateLinkSubnetId"),
        },
    ),
    TemplateStep(
        DNS,
        {
            "frontendPrivateIpAddress": OutputBinding(CLUSTER, "frontendPrivateIpAddress"),
            "virtualNetworkResourceId": OutputBinding(CLUSTER, "virtualNetworkResourceId"),
        },
    ),
    TemplateStep(
        DIAGNOSTICS,
        {
            "keyVaultName": OutputBinding(IDENTITY_KEY_VAULT, "keyVaultName"),
            "loadBalancerName": OutputBinding(CLUSTER, "loadBalancerName"),
            "scaleSetName": OutputBinding(CLUSTER, "scaleSetName"),
        },
    ),
)

# Parameters the managed application does not offer to the customer: the step templates' defaults apply.
MANAGED_APP_FIXED_PARAMETERS: frozenset[str] = frozenset(
    {
        "identityName",
        "keyVaultName",
        "keyName",
        "softDeleteRetentionInDays",
        "keyVaultNetworkDefaultAction",
        "keyNotifyDaysBeforeExpiry",
        "blobApiPort",
        "availabilityZones",
        "imageReference",
        "adminUsername",
        "privateLinkServiceName",
        "recordTimeToLiveSeconds",
        "logAnalyticsWorkspaceName",
    }
)


def step_named(name: str) -> TemplateStep:
    """The step called `name`; KeyError when there is none."""
    for step in FACADE_CLUSTER_STEPS:
        if step.name == name:
            return step
    raise KeyError(name)


def deployment_name(cluster_name: str, step: TemplateStep) -> str:
    """The deterministic ARM deployment name of `step` for a cluster, so a repeated deployment is a no-op PUT."""
    name = f"{cluster_name}-{step.name}"
    if len(name) > MAXIMUM_DEPLOYMENT_NAME_LENGTH:
        raise ValueError(f"deployment name {name!r} exceeds {MAXIMUM_DEPLOYMENT_NAME_LENGTH} characters")
    return name


def read_step_template(templates: Path, step: TemplateStep) -> dict[str, Any]:
    """The parsed template of `step` from a templates folder (the one holding facade-cluster/)."""
    document = json.loads((templates / STEP_TEMPLATES_FOLDER / step.file_name).read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{step.file_name} is not a JSON object")
    return document


def load_step_template(root: Path, step: TemplateStep) -> dict[str, Any]:
    """The parsed template of `step` from the repository at `root`."""
    return read_step_template(root / TEMPLATES_FOLDER, step)


def output_values(deployment_outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Plain output values from a deployment's `properties.outputs` (ARM wraps each as `{type, value}`)."""
    return {
        name: output["value"] if isinstance(output, Mapping) and "value" in output else output
        for name, output in deployment_outputs.items()
    }


def bound_parameters(step: TemplateStep, outputs_by_step: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The parameter values `step` takes from earlier steps' outputs (plain values, see `output_values`)."""
    values: dict[str, Any] = {}
    for parameter, binding in step.bindings.items():
        outputs = outputs_by_step.get(binding.step)
        if outputs is None or binding.output not in outputs:
            raise KeyError(f"step {step.name!r} needs output {binding.output!r} of step {binding.step!r}")
        values[parameter] = outputs[binding.output]
    return values

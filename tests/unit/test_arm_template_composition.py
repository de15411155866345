"""The step templates' contract with the controller, and the composed managed application mainTemplate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import armexpr
from core.arm_templates.composer import (
    MAIN_TEMPLATE_PATH,
    compose_main_template,
    deployment_variable,
    render_json,
)
from core.arm_templates.steps import (
    FACADE_CLUSTER_FOLDER,
    FACADE_CLUSTER_STEPS,
    MANAGED_APP_FIXED_PARAMETERS,
    bound_parameters,
    deployment_name,
    load_step_template,
    output_values,
    step_named,
)

pytestmark = pytest.mark.timeout(30)

REPOSITORY = Path(__file__).resolve().parents[2]

# The functions the ARM emulator evaluates (the list agreed between template and emulator authors).
SHARED_FUNCTIONS = frozenset(
    name.lower()
    for name in (
        "parameters",
        "variables",
        "concat",
        "format",
        "resourceId",
        "subscriptionResourceId",
        "extensionResourceId",
        "reference",
        "resourceGroup",
        "subscription",
        "tenant",
        "deployment",
        "uniqueString",
        "guid",
        "toLower",
        "toUpper",
        "trim",
        "if",
        "equals",
        "not",
        "and",
        "or",
        "empty",
        "length",
        "contains",
        "union",
        "createArray",
        "createObject",
        "copyIndex",
        "string",
        "int",
        "bool",
        "json",
        "substring",
        "replace",
        "split",
        "first",
        "last",
        "take",
        "skip",
        "coalesce",
        "uri",
        "startsWith",
        "endsWith",
        "indexOf",
        "range",
        "min",
        "max",
        "add",
        "sub",
        "mul",
        "div",
        "mod",
        "greater",
        "less",
        "greaterOrEquals",
        "lessOrEquals",
        "array",
        "base64",
        "null",
        "utcNow",
    )
)

# What the provisioning controller reads back from each step.
REQUIRED_OUTPUTS = {
    "identity-keyvault": {
        "identityResourceId",
        "identityPrincipalId",
        "identityClientId",
        "keyVaultResourceId",
        "keyVaultUri",
        "keyResourceId",
        "keyIdWithVersion",
    },
    "cluster": {
        "loadBalancerFrontendIpConfigurationId",
        "frontendPrivateIpAddress",
        "scaleSetResourceId",
        "clusterSubnetId",
        "privateLinkSubnetId",
    },
    "private-link": {"privateLinkServiceResourceId", "privateLinkServiceAlias"},
    "dns": {"endpointFqdn"},
    "diagnostics": {"logAnalyticsWorkspaceResourceId"},
}


def step_templates() -> dict[str, dict[str, Any]]:
    """Every step template by step name."""
    return {step.name: load_step_template(REPOSITORY, step) for step in FACADE_CLUSTER_STEPS}


def expressions_in(value: Any) -> list[armexpr.Node]:
    """Every parsed expression below a JSON value."""
    if isinstance(value, str):
        return [armexpr.parse(value)] if armexpr.is_expression(value) else []
    if isinstance(value, dict):
        return [node for item in value.values() for node in expressions_in(item)]
    if isinstance(value, list):
        return [node for item in value for node in expressions_in(item)]
    return []


def test_checked_in_main_template_is_what_the_composer_produces() -> None:
    checked_in = (REPOSITORY / MAIN_TEMPLATE_PATH).read_text(encoding="utf-8")
    assert checked_in == render_json(compose_main_template(REPOSITORY)), (
        "regenerate with: python -m core.arm_templates.composer"
    )


def test_step_folder_holds_exactly_the_steps() -> None:
    files = sorted(path.name for path in (REPOSITORY / FACADE_CLUSTER_FOLDER).glob("*.json"))
    assert files == sorted(step.file_name for step in FACADE_CLUSTER_STEPS)


@pytest.mark.parametrize("step", [step.name for step in FACADE_CLUSTER_STEPS])
def test_step_declares_the_outputs_the_controller_reads(step: str) -> None:
    outputs = step_templates()[step]["outputs"]
    assert REQUIRED_OUTPUTS[step] <= set(outputs)


def test_templates_use_only_functions_the_arm_emulator_evaluates() -> None:
    documents = [*step_templates().values(), json.loads((REPOSITORY / MAIN_TEMPLATE_PATH).read_text())]
    used = {
        node.name.lower()
        for document in documents
        for expression in expressions_in(document)
        for node in armexpr.walk(expression)
        if isinstance(node, armexpr.FunctionCall)
    }
    assert used <= SHARED_FUNCTIONS, used - SHARED_FUNCTIONS


def test_bindings_join_real_outputs_to_real_parameters() -> None:
    templates = step_templates()
    order = [step.name for step in FACADE_CLUSTER_STEPS]
    for step in FACADE_CLUSTER_STEPS:
        for parameter, binding in step.bindings.items():
            assert parameter in templates[step.name]["parameters"], (step.name, parameter)
            assert binding.output in templates[binding.step]["outputs"], (binding.step, binding.output)
            assert order.index(binding.step) < order.index(step.name)
            assert "defaultValue" not in templates[step.name]["parameters"][parameter]


def test_fixed_parameters_all_have_defaults() -> None:
    for step in FACADE_CLUSTER_STEPS:
        template = load_step_template(REPOSITORY, step)
        for name, definition in template["parameters"].items():
            if name in MANAGED_APP_FIXED_PARAMETERS and name not in step.bindings:
                assert "defaultValue" in definition, name


def test_location_defaults_to_the_resource_group_and_secrets_have_no_defaults() -> None:
    for name, template in step_templates().items():
        parameters = template["parameters"]
        if "location" in parameters:
            assert parameters["location"]["defaultValue"] == "[resourceGroup().location]", name
        for definition in parameters.values():
            if definition["type"].lower() in {"securestring", "secureobject"}:
                assert "defaultValue" not in definition


def test_key_vault_step_protects_the_key_and_grants_the_crypto_role_on_the_key() -> None:
    template = step_templates()["identity-keyvault"]
    resources = {resource["type"]: resource for resource in template["resources"]}
    vault = resources["Microsoft.KeyVault/vaults"]["properties"]
    assert vault["enableRbacAuthorization"] is True
    assert vault["enableSoftDelete"] is True
    assert vault["enablePurgeProtection"] is True
    key = resources["Microsoft.KeyVault/vaults/keys"]["properties"]
    assert {action["action"]["type"] for action in key["rotationPolicy"]["lifetimeActions"]} == {"rotate", "notify"}
    assignment = resources["Microsoft.Authorization/roleAssignments"]
    assert assignment["scope"].startswith("[format('Microsoft.KeyVault/vaults/{0}/keys/{1}'")
    assert "e147488a-f6f5-4113-8e2d-b22465e65bf6" in json.dumps(template["variables"])
    assert assignment["properties"]["principalType"] == "ServicePrincipal"
    assert assignment["name"].startswith("[guid(")
    assert template["parameters"]["keySize"]["allowedValues"] == [2048, 3072, 4096]


def test_private_link_nat_subnet_disables_network_policies() -> None:
    template = step_templates()["cluster"]
    network = next(r for r in template["resources"] if r["type"] == "Microsoft.Network/virtualNetworks")
    policies = {
        subnet["name"]: subnet["properties"]["privateLinkServiceNetworkPolicies"]
        for subnet in network["properties"]["subnets"]
    }
    assert policies["[parameters('privateLinkSubnetName')]"] == "Disabled"
    balancer = next(r for r in template["resources"] if r["type"] == "Microsoft.Network/loadBalancers")
    assert balancer["sku"]["name"] == "Standard"


def test_private_link_service_takes_one_to_eight_nat_configurations() -> None:
    template = step_templates()["private-link"]
    count = template["parameters"]["natIpConfigurationCount"]
    assert (count["minValue"], count["maxValue"]) == (1, 8)
    loop = template["resources"][0]["properties"]["copy"][0]
    assert loop["name"] == "ipConfigurations"
    assert loop["input"]["properties"]["primary"] == "[equals(copyIndex('ipConfigurations'), 0)]"


def test_main_template_nests_every_step_with_inner_scope_in_dependency_order() -> None:
    main = compose_main_template(REPOSITORY)
    assert [resource["name"] for resource in main["resources"]] == [
        f"[variables('{deployment_variable(step)}')]" for step in FACADE_CLUSTER_STEPS
    ]
    for resource, step in zip(main["resources"], FACADE_CLUSTER_STEPS, strict=True):
        assert resource["properties"]["expressionEvaluationOptions"] == {"scope": "Inner"}
        assert len(resource.get("dependsOn", [])) == len(step.producer_steps)
        passed = resource["properties"]["parameters"]
        for parameter in step.bindings:
            assert passed[parameter]["value"].startswith("[reference(resourceId('Microsoft.Resources/deployments'")
        # Fixed parameters keep their step defaults unless an earlier step's output feeds them.
        assert not (set(passed) - set(step.bindings)) & MANAGED_APP_FIXED_PARAMETERS


def test_main_template_surfaces_endpoint_alias_key_and_identity() -> None:
    outputs = compose_main_template(REPOSITORY)["outputs"]
    assert {"endpointFqdn", "privateLinkServiceAlias", "keyIdWithVersion", "identityResourceId"} <= set(outputs)


def test_deployment_names_are_deterministic_and_bounded() -> None:
    cluster = step_named("cluster")
    assert deployment_name("acme-blob", cluster) == "acme-blob-cluster"
    assert deployment_name("acme-blob", cluster) == deployment_name("acme-blob", cluster)
    with pytest.raises(ValueError, match="exceeds 64"):
        deployment_name("x" * 60, cluster)


def test_bound_parameters_come_from_earlier_step_outputs() -> None:
    arm_outputs = {
        "identityResourceId": {"type": "String", "value": "/subscriptions/s/id"},
        "identityClientId": {"type": "String", "value": "client"},
        "keyVaultResourceId": {"type": "String", "value": "/subscriptions/s/kv"},
        "keyIdWithVersion": {"type": "String", "value": "https://kv/keys/k/1"},
        "keyUri": {"type": "String", "value": "https://kv/keys/k"},
    }
    values = bound_parameters(step_named("cluster"), {"identity-keyvault": output_values(arm_outputs)})
    assert values == {
        "managedIdentityResourceId": "/subscriptions/s/id",
        "managedIdentityClientId": "client",
        "keyVaultResourceId": "/subscriptions/s/kv",
        "keyIdWithVersion": "https://kv/keys/k/1",
        "keyUri": "https://kv/keys/k",
    }
    incomplete = output_values(arm_outputs)
    del incomplete["keyUri"]
    with pytest.raises(KeyError, match="keyUri"):
        bound_parameters(step_named("cluster"), {"identity-keyvault": incomplete})

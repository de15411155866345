"""Template rules after the ARM template test toolkit's deployment-template tests that the core rules lack.

Each rule keeps the toolkit's intent (and its exceptions where the toolkit lists them) but works on the parsed
document and expressions rather than on the raw text, so findings carry a JSON path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import armexpr
from armexpr import FunctionCall, IndexAccess, Node, PropertyAccess
from core.arm_templates.api_versions import MAXIMUM_AGE_DAYS, api_version_date, is_allow_listed, is_preview
from core.arm_templates.expressions import function_name, literal_argument, parse_value, resource_id_call
from core.arm_templates.findings import child_path

if TYPE_CHECKING:
    from core.arm_templates.template_rules import TemplateRules

# Hosts of the Azure clouds' endpoints: a template names them through environment(), never literally.
AZURE_ENDPOINT_HOSTS = (
    "management.azure.com",
    "management.core.windows.net",
    "login.microsoftonline.com",
    "graph.windows.net",
    "graph.microsoft.com",
    "core.windows.net",
    "vault.azure.net",
    "database.windows.net",
    "azuredatalakestore.net",
    "azuredatalakeanalytics.net",
    "gallery.azure.com",
    "management.usgovcloudapi.net",
    "core.usgovcloudapi.net",
    "login.microsoftonline.us",
    "vault.usgovcloudapi.net",
    "management.chinacloudapi.cn",
    "core.chinacloudapi.cn",
    "login.chinacloudapi.cn",
    "vault.azure.cn",
)
HARDCODED_HOST = re.compile("|".join(re.escape(host) for host in AZURE_ENDPOINT_HOSTS), re.IGNORECASE)
SCHEMA_PREFIX = "https://schema."

# Properties whose empty value has a meaning of its own (the toolkit's list).
MAY_BE_EMPTY = frozenset(
    {
        "resources",
        "outputs",
        "variables",
        "parameters",
        "functions",
        "properties",
        "defaultvalue",
        "accesspolicies",
        "value",
        "promotioncode",
        "inputs",
        "notequals",
        "clientid",
        "allowedcalleripaddresses",
    }
)

# Properties that end in "id" but are not resource ids (the toolkit's list).
NOT_RESOURCE_IDS = frozenset(
    name.lower()
    for name in (
        "appId",
        "clientId",
        "DataTypeId",
        "defaultMenuItemId",
        "keyVaultSecretId",
        "keyId",
        "objectId",
        "menuId",
        "policyDefinitionReferenceId",
        "servicePrincipalClientId",
        "StartingDeviceID",
        "subscriptionId",
        "SyntheticMonitorId",
        "targetProtectionContainerId",
        "targetWorkerSizeId",
        "tenantId",
        "timezoneId",
        "vlanId",
        "workerSizeId",
    )
)
# A resource id property must come from one of these functions.
RESOURCE_ID_SOURCES = frozenset(
    {
        "extensionresourceid",
        "resourceid",
        "subscriptionresourceid",
        "tenantresourceid",
        "if",
        "parameters",
        "reference",
        "variables",
        "subscription",
        "guid",
    }
)
# resourceId-family and reference/list* calls must not build their first argument with these functions.
FORBIDDEN_FIRST_ARGUMENTS = {
    "resourceid": frozenset({"resourcegroup", "subscription", "concat"}),
    "tenantresourceid": frozenset({"concat"}),
    "extensionresourceid": frozenset({"concat"}),
    "subscriptionresourceid": frozenset({"subscription", "concat"}),
    "reference": frozenset({"concat"}),
}
URI_PROPERTY = re.compile(r"ur[il]$", re.IGNORECASE)
PASSWORD_LIKE = ("password", "secret", "accountkey")
# A `secret...` name that describes a secret without holding one (the toolkit's exceptions).
SECRET_DESCRIPTORS = ("permission", "version", "url", "uri", "name")
SECURE_TYPES = frozenset({"securestring", "secureobject"})
DEPLOYMENTS_TYPE = "microsoft.resources/deployments"


@dataclass(frozen=True)
class JsonProperty:
    """One `"key": value` pair of the document, with the path of the value."""

    path: str
    key: str
    value: Any


def check_toolkit_rules(rules: TemplateRules) -> None:
    """Run every toolkit rule on one template (inner templates are checked by their own `TemplateRules`)."""
    nested = {id(template) for entry in rules.resources if (template := rules.nested_template(entry.body))}
    properties = list(json_properties(rules.document, rules.root_path, nested))
    resources_path = rules.path("resources")
    variables_path = rules.path("variables")
    for item in properties:
        check_blank(rules, item)
        check_hardcoded_host(rules, item)
        inside_resources = item.path.startswith(resources_path)
        if inside_resources:
            check_vm_size(rules, item)
        if inside_resources or item.path.startswith(variables_path):
            check_resource_id_property(rules, item)
            check_admin_username(rules, item)
        check_uri_construction(rules, item)
    check_parameter_names_and_ranges(rules)
    check_output_names(rules)
    check_deployments(rules)
    for site in rules.sites:
        check_function_arguments(rules, site.path, site.node)
        check_reference_api_versions(rules, site.path, site.node)
        if site.section != "default":
            check_resource_group_location(rules, site.path, site.node)


def json_properties(value: Any, path: str, skip: set[int]) -> Iterator[JsonProperty]:
    """Every object property below `value`, depth first, leaving out the objects whose id is in `skip`."""
    if isinstance(value, dict):
        if id(value) in skip:
            return
        for key, item in value.items():
            item_path = child_path(path, key)
            yield JsonProperty(item_path, key, item)
            yield from json_properties(item, item_path, skip)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from json_properties(item, child_path(path, index), skip)


def is_blank(value: Any) -> bool:
    """An empty object, array or (whitespace-only) string, or null."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, dict | list) and not value


def check_blank(rules: TemplateRules, item: JsonProperty) -> None:
    """Empty values mean something in a declarative model; leave the property out instead."""
    key = item.key.strip()
    if key.lower() in MAY_BE_EMPTY or key.startswith("[") or key.lower().startswith("/subscriptions/"):
        return
    if is_blank(item.value):
        rules.report(item.path, "template-blank", f"property {item.key!r} is empty; leave it out instead")


def check_hardcoded_host(rules: TemplateRules, item: JsonProperty) -> None:
    """Cloud endpoints come from environment(), so the template deploys in every Azure cloud."""
    if not isinstance(item.value, str):
        return
    for match in HARDCODED_HOST.finditer(item.value):
        if item.value[: match.start()].lower().endswith(SCHEMA_PREFIX):
            continue
        rules.report(
            item.path, "uri-hardcoded", f"hard-coded Azure endpoint {match.group(0)!r}; use environment() instead"
        )
        return


def expression_head(node: Node) -> Node:
    """The call an expression starts with: `reference(x).outputs.y.value` -> `reference(x)`."""
    while isinstance(node, PropertyAccess | IndexAccess):
        node = node.target
    return node


def check_resource_id_property(rules: TemplateRules, item: JsonProperty) -> None:
    """A property named `...Id` holds a resource id built with resourceId() and friends, never a literal."""
    key = item.key.lower()
    if not key.endswith("id") or key in NOT_RESOURCE_IDS or ".metadata." in item.path or ".tags." in item.path:
        return
    value = item.value
    if isinstance(value, dict):
        value = value.get("value")
    if not isinstance(value, str):
        return
    if not value.strip():
        rules.report(item.path, "id-not-derived", f"resource id property {item.key!r} is blank")
        return
    try:
        head = expression_head(rules.expander.expand(parse_value(value)))
    except armexpr.ArmExpressionError:
        return  # reported as expression-syntax
    if function_name(head) not in RESOURCE_ID_SOURCES:
        rules.report(
            item.path,
            "id-not-derived",
            f"resource id property {item.key!r} must come from resourceId(), reference(), parameters() or the like",
        )


def mentions_parameters(node: Node) -> bool:
    """Whether a parameters() call appears anywhere in `node`."""
    return any(function_name(inner) == "parameters" for inner in armexpr.walk(node))


def check_vm_size(rules: TemplateRules, item: JsonProperty) -> None:
    """The VM size is the deployer's choice: a parameter (directly or through variables)."""
    if item.key.lower() != "vmsize" or not isinstance(item.value, str):
        return
    try:
        expanded = rules.expander.expand(parse_value(item.value))
    except armexpr.ArmExpressionError:
        return
    if not mentions_parameters(expanded):
        rules.report(item.path, "vm-size-literal", f"vmSize {item.value!r} must come from a parameter")


def check_admin_username(rules: TemplateRules, item: JsonProperty) -> None:
    """An administrator user name is never a literal every deployment shares."""
    if item.key.lower() != "adminusername":
        return
    value = item.value.get("value") if isinstance(item.value, dict) else item.value
    if isinstance(value, str) and not armexpr.is_expression(value.strip()):
        rules.report(item.path, "admin-username-literal", "adminUsername must be an expression, not a literal")


def first_call_index(node: Node, names: frozenset[str]) -> int | None:
    """Position, in source order, of the first call to one of `names`."""
    for index, inner in enumerate(armexpr.walk(node)):
        if function_name(inner) in names:
            return index
    return None


def check_uri_construction(rules: TemplateRules, item: JsonProperty) -> None:
    """A URI is joined with uri(), not glued with concat() or format()."""
    if not URI_PROPERTY.search(item.key) or not isinstance(item.value, str) or not armexpr.is_expression(item.value):
        return
    try:
        node = armexpr.parse(item.value)
    except armexpr.ArmExpressionError:
        return
    glued = first_call_index(node, frozenset({"concat", "format"}))
    joined = first_call_index(node, frozenset({"uri"}))
    if glued is not None and (joined is None or glued < joined):
        rules.report(item.path, "uri-construction", f"{item.key!r} is built with concat()/format(); use uri()")


def check_parameter_names_and_ranges(rules: TemplateRules) -> None:
    """Password-like parameters are secure; minValue and maxValue are integers and come together."""
    for name, definition in rules.parameters.items():
        if not isinstance(definition, dict):
            continue
        path = rules.path("parameters", name)
        lowered = name.lower()
        parameter_type = str(definition.get("type", "")).lower()
        describes_secret = "secret" in lowered and any(word in lowered for word in SECRET_DESCRIPTORS)
        if (
            any(word in lowered for word in PASSWORD_LIKE)
            and not describes_secret
            and parameter_type not in SECURE_TYPES
        ):
            rules.report(
                child_path(path, "type"),
                "parameter-not-secure",
                f"parameter {name!r} looks like a secret but is {definition.get('type')!r}; use secureString",
            )
        bounds = {key: definition[key] for key in ("minValue", "maxValue") if key in definition}
        for key, bound in bounds.items():
            if not isinstance(bound, int) or isinstance(bound, bool):
                rules.report(child_path(path, key), "parameter-min-max", f"{key} of {name!r} must be an integer")
        if len(bounds) == 1:
            missing = "maxValue" if "minValue" in bounds else "minValue"
            rules.report(path, "parameter-min-max", f"parameter {name!r} sets one bound; add {missing}")


def check_output_names(rules: TemplateRules) -> None:
    """An output named like a password suggests a secret leaves the deployment in clear text."""
    outputs = rules.document.get("outputs", {}) or {}
    for name in outputs:
        if "password" in name.lower():
            rules.report(rules.path("outputs", name), "output-name-secret", f"output name {name!r} suggests a secret")


def check_deployments(rules: TemplateRules) -> None:
    """Nested deployments log no request or response content, and pass parameters of the type they declare."""
    for entry in rules.resources:
        if entry.full_type.lower() != DEPLOYMENTS_TYPE:
            continue
        properties = entry.body.get("properties")
        if not isinstance(properties, dict):
            continue
        debug = properties.get("debugSetting")
        level = debug.get("detailLevel") if isinstance(debug, dict) else debug
        if debug is not None and str(level).lower() != "none":
            rules.report(
                child_path(child_path(entry.path, "properties"), "debugSetting"),
                "deployment-debug-setting",
                "debugSetting logs deployment content (secrets included); leave it out",
            )
        template = rules.nested_template(entry.body)
        if template is not None:
            check_nested_parameter_types(rules, entry.path, properties, template)


def check_nested_parameter_types(
    rules: TemplateRules, resource_path: str, properties: dict[str, Any], template: dict[str, Any]
) -> None:
    """`"x": {"value": "[parameters('y')]"}` passes y as x: both must be declared with the same type."""
    passed = properties.get("parameters")
    inner = template.get("parameters")
    if not isinstance(passed, dict) or not isinstance(inner, dict):
        return
    for name, binding in passed.items():
        value = binding.get("value") if isinstance(binding, dict) else None
        declared = inner.get(name)
        if not isinstance(value, str) or not armexpr.is_expression(value) or not isinstance(declared, dict):
            continue
        try:
            node = armexpr.parse(value)
        except armexpr.ArmExpressionError:
            continue
        source = (
            literal_argument(node, 0)
            if isinstance(node, FunctionCall) and function_name(node) == "parameters"
            else None
        )
        outer = rules.parameters.get(source) if source is not None else None
        if not isinstance(outer, dict):
            continue
        outer_type, inner_type = str(outer.get("type", "")).lower(), str(declared.get("type", "")).lower()
        if outer_type != inner_type:
            rules.report(
                child_path(child_path(child_path(resource_path, "properties"), "parameters"), name),
                "nested-parameter-type",
                f"{name!r} is a {declared.get('type')!r} in the nested template but receives the "
                f"{outer.get('type')!r} parameter {source!r}",
            )


def check_function_arguments(rules: TemplateRules, path: str, node: Node) -> None:
    """resourceId() and reference() take names and ids, not strings glued with concat() or context functions."""
    if path.lower().endswith(".keyvaultsecretid"):
        return  # an application gateway's secret URI, not a resource id (the toolkit's exception)
    for inner in armexpr.walk(node):
        name = function_name(inner)
        if name is None or not isinstance(inner, FunctionCall) or not inner.arguments:
            continue
        forbidden = FORBIDDEN_FIRST_ARGUMENTS.get(name, frozenset({"concat"}) if name.startswith("list") else None)
        first = function_name(inner.arguments[0])
        if forbidden is not None and first in forbidden:
            rules.report(
                path,
                "resource-id-function-argument",
                f"{inner.name}() must not start with {inner.arguments[0].name}(): pass names as separate arguments"
                if isinstance(inner.arguments[0], FunctionCall)
                else f"{inner.name}() has a forbidden first argument",
            )


def check_reference_api_versions(rules: TemplateRules, path: str, node: Node) -> None:
    """reference() and list*() name API versions as fresh as those of resources (age limit, no previews)."""
    oldest_allowed = rules.today - timedelta(days=MAXIMUM_AGE_DAYS)
    for inner in armexpr.walk(node):
        name = function_name(inner)
        if not isinstance(inner, FunctionCall) or name is None or not (name == "reference" or name.startswith("list")):
            continue
        api_version = literal_argument(inner, 1)
        released = api_version_date(api_version) if api_version is not None else None
        call = resource_id_call(rules.expander.expand(inner.arguments[0])) if inner.arguments else None
        if api_version is None or released is None or call is None:
            continue
        if is_allow_listed(call.resource_type, api_version):
            continue
        if released < oldest_allowed:
            rules.report(
                path,
                "reference-api-version",
                f"{inner.name}() of {call.resource_type} uses {api_version}, older than {MAXIMUM_AGE_DAYS} days",
            )
        elif is_preview(api_version):
            rules.report(
                path, "reference-api-version", f"{inner.name}() of {call.resource_type} uses preview {api_version}"
            )


def check_resource_group_location(rules: TemplateRules, path: str, node: Node) -> None:
    """resourceGroup().location and deployment().location belong in the location parameter's default only."""
    for inner in armexpr.walk(node):
        if (
            isinstance(inner, PropertyAccess)
            and inner.name.lower() == "location"
            and function_name(inner.target) in {"resourcegroup", "deployment"}
        ):
            rules.report(
                path,
                "location-resource-group",
                "use the location parameter; resourceGroup().location belongs only in its default value",
            )
            return

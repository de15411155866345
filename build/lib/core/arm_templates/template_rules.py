"""Offline rules for ARM deployment templates (languageVersion 1.0), after the ARM template test toolkit.

One `TemplateRules` instance checks one template; inline nested deployments with inner scope are checked
as templates of their own, with JSON paths continuing below the outer document.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import armexpr
from armexpr import FunctionCall, Node, PropertyAccess, StringLiteral
from core.arm_templates.api_versions import MAXIMUM_AGE_DAYS, api_version_date, is_allow_listed, is_preview
from core.arm_templates.expressions import (
    VariableExpander,
    canonical,
    function_name,
    is_resource_type,
    literal_argument,
    name_segments,
    parse_value,
    resource_id_call,
)
from core.arm_templates.findings import Finding, child_path
from core.arm_templates.toolkit_rules import check_toolkit_rules

SCHEMA_PATTERN = re.compile(
    r"^https://schema\.management\.azure\.com/schemas/\d{4}-\d{2}-\d{2}/"
    r"(deploymentTemplate|subscriptionDeploymentTemplate|managementGroupDeploymentTemplate|tenantDeploymentTemplate)"
    r"\.json#$"
)
CONTENT_VERSION_PATTERN = re.compile(r"^\d+(\.\d+){3}$")
TOP_LEVEL_KEYS = frozenset(
    {"$schema", "contentVersion", "apiProfile", "metadata", "parameters", "variables", "resources", "outputs"}
)
PARAMETER_TYPES = frozenset({"string", "securestring", "int", "bool", "object", "secureobject", "array"})
SECURE_TYPES = frozenset({"securestring", "secureobject"})
# 'global' is the location of global resources (private DNS zones), not a region.
NON_REGIONAL_LOCATIONS = frozenset({"global"})
DEPLOYMENTS_TYPE = "microsoft.resources/deployments"


@dataclass(frozen=True)
class ExpressionSite:
    """A parsed expression and where it is: its JSON path and the template section it belongs to."""

    path: str
    node: Node
    section: str


@dataclass
class ResourceEntry:
    """A declared resource (top-level or nested child) with what dependency resolution needs."""

    path: str
    body: dict[str, Any]
    full_type: str
    name_node: Node | None
    segments: tuple[Node, ...] | None
    copy_name: str | None
    inner_output_names: frozenset[str] | None = None
    dependencies: list[int] = field(default_factory=list)


class TemplateRules:
    """Checks one template document; `findings` holds the result after `check()`."""

    def __init__(self, document: Any, file: str, today: date, root_path: str = "$") -> None:
        self.document = document
        self.file = file
        self.today = today
        self.root_path = root_path
        self.findings: list[Finding] = []
        self.sites: list[ExpressionSite] = []
        self.resources: list[ResourceEntry] = []
        self.parameters: dict[str, Any] = {}
        self.variables: dict[str, Any] = {}
        self.variable_names: dict[str, str] = {}
        self.expander = VariableExpander({})

    # -- plumbing -------------------------------------------------------------------------------------------

    def report(self, path: str, rule: str, message: str) -> None:
        """Record one finding."""
        self.findings.append(Finding(self.file, path, rule, message))

    def path(self, *keys: str | int) -> str:
        """JSON path of `keys` below this template's root."""
        current = self.root_path
        for key in keys:
            current = child_path(current, key)
        return current

    def collect(self, value: Any, path: str, section: str, skip_keys: frozenset[str] = frozenset()) -> None:
        """Parse every expression string below `value`; syntax errors become findings."""
        if isinstance(value, str):
            if armexpr.is_expression(value):
                try:
                    self.sites.append(ExpressionSite(path, armexpr.parse(value), section))
                except armexpr.ArmExpressionError as error:
                    self.report(path, "expression-syntax", f"expression does not parse: {error}")
        elif isinstance(value, dict):
            for key, item in value.items():
                if key not in skip_keys:
                    self.collect(item, child_path(path, key), section)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.collect(item, child_path(path, index), section)

    # -- entry point ----------------------------------------------------------------------------------------

    def check(self) -> list[Finding]:
        """Run every rule on the document and return the findings."""
        if not self.check_structure():
            return self.findings
        self.parameters = self.document.get("parameters", {}) or {}
        self.variables = self.document.get("variables", {}) or {}
        self.expander = VariableExpander(self.variables)
        self.check_parameters()
        self.collect_variables()
        self.register_resources(self.document.get("resources", []), self.path("resources"), None, None)
        self.check_resources()
        self.check_outputs()
        self.check_expressions()
        self.check_dependencies()
        check_toolkit_rules(self)
        return self.findings

    # -- structure ------------------------------------------------------------------------------------------

    def check_structure(self) -> bool:
        """`$schema`, `contentVersion`, known top-level keys, languageVersion 1.0 (resources as an array)."""
        document = self.document
        if not isinstance(document, dict):
            self.report(self.root_path, "template-structure", "a template must be a JSON object")
            return False
        schema = document.get("$schema")
        if not isinstance(schema, str) or not SCHEMA_PATTERN.match(schema):
            self.report(self.path("$schema"), "template-structure", f"missing or unknown deployment schema: {schema!r}")
        content_version = document.get("contentVersion")
        if not isinstance(content_version, str) or not CONTENT_VERSION_PATTERN.match(content_version):
            self.report(
                self.path("contentVersion"),
                "template-structure",
                f"contentVersion must look like 1.0.0.0, found {content_version!r}",
            )
        for key in document:
            if key == "languageVersion":
                self.report(self.path(key), "template-structure", "only languageVersion 1.0 semantics are supported")
            elif key == "functions":
                self.report(self.path(key), "template-structure", "user-defined functions are not supported")
            elif key not in TOP_LEVEL_KEYS:
                self.report(self.path(key), "template-structure", f"unknown top-level property {key!r}")
        resources = document.get("resources")
        if not isinstance(resources, list):
            self.report(
                self.path("resources"),
                "template-structure",
                "resources must be an array (symbolic-name templates are not supported)",
            )
            return False
        for section in ("parameters", "variables", "outputs"):
            if section in document and not isinstance(document[section], dict):
                self.report(self.path(section), "template-structure", f"{section} must be an object")
                return False
        return True

    # -- parameters -----------------------------------------------------------------------------------------

    def check_parameters(self) -> None:
        """Types, descriptions, secure parameters without defaults, defaults inside their own constraints."""
        for name, definition in self.parameters.items():
            path = self.path("parameters", name)
            if not isinstance(definition, dict):
                self.report(path, "template-structure", "a parameter must be an object")
                continue
            parameter_type = str(definition.get("type", "")).lower()
            if parameter_type not in PARAMETER_TYPES:
                self.report(
                    child_path(path, "type"), "parameter-type", f"unknown parameter type {definition.get('type')!r}"
                )
            metadata = definition.get("metadata")
            if not (
                isinstance(metadata, dict) and isinstance(metadata.get("description"), str) and metadata["description"]
            ):
                self.report(path, "parameter-description", f"parameter {name!r} has no metadata.description")
            if "defaultValue" not in definition:
                continue
            default = definition["defaultValue"]
            default_path = child_path(path, "defaultValue")
            if parameter_type in SECURE_TYPES:
                self.report(
                    default_path, "secure-parameter-default", f"secure parameter {name!r} must not have a default"
                )
            if name.lower() == "location" and is_literal_region(default):
                self.report(default_path, "location-hardcoded", f"location default is the literal region {default!r}")
            self.check_default_constraints(name, definition, default, default_path)
            self.collect(default, default_path, "default")

    def check_default_constraints(self, name: str, definition: dict[str, Any], default: Any, path: str) -> None:
        """A literal default must be one of allowedValues and inside minValue/maxValue."""
        if isinstance(default, str) and armexpr.is_expression(default):
            return
        allowed = definition.get("allowedValues")
        if isinstance(allowed, list) and default not in allowed:
            self.report(path, "parameter-default-invalid", f"default of {name!r} is not one of its allowedValues")
        if isinstance(default, int) and not isinstance(default, bool):
            minimum, maximum = definition.get("minValue"), definition.get("maxValue")
            if (isinstance(minimum, int) and default < minimum) or (isinstance(maximum, int) and default > maximum):
                self.report(path, "parameter-default-invalid", f"default of {name!r} is outside minValue..maxValue")

    # -- variables ------------------------------------------------------------------------------------------

    def collect_variables(self) -> None:
        """Declared variable names (including copy loops) and the expressions inside them."""
        for name, value in self.variables.items():
            if name == "copy" and isinstance(value, list):
                for index, loop in enumerate(value):
                    if isinstance(loop, dict) and isinstance(loop.get("name"), str):
                        self.variable_names[loop["name"].lower()] = loop["name"]
                        self.collect(loop, self.path("variables", "copy", index), "variables")
                continue
            self.variable_names[name.lower()] = name
            self.collect(value, self.path("variables", name), "variables")

    # -- resources ------------------------------------------------------------------------------------------

    def register_resources(
        self,
        resources: Any,
        path: str,
        parent_type: str | None,
        parent_segments: tuple[Node, ...] | None,
    ) -> None:
        """Record every resource, nested children included, with full type and name segments."""
        if not isinstance(resources, list):
            self.report(path, "template-structure", "resources must be an array")
            return
        for index, resource in enumerate(resources):
            resource_path = child_path(path, index)
            if not isinstance(resource, dict):
                self.report(resource_path, "template-structure", "a resource must be an object")
                continue
            missing = [key for key in ("type", "apiVersion", "name") if not isinstance(resource.get(key), str)]
            if missing:
                self.report(resource_path, "template-structure", f"resource lacks {', '.join(missing)}")
                continue
            resource_type: str = resource["type"]
            if parent_type is not None and not is_resource_type(resource_type):
                resource_type = f"{parent_type}/{resource_type}"
            name_node: Node | None
            try:
                name_node = self.expander.expand(parse_value(resource["name"]))
            except armexpr.ArmExpressionError:
                name_node = None
            segments: tuple[Node, ...] | None = name_segments(name_node) if name_node is not None else None
            # A nested child's name is relative to its parent's (a full type means a full name was given).
            if parent_segments is not None and segments is not None and resource["type"] != resource_type:
                segments = parent_segments + segments
            copy = resource.get("copy")
            copy_name = copy.get("name") if isinstance(copy, dict) and isinstance(copy.get("name"), str) else None
            entry = ResourceEntry(resource_path, resource, resource_type, name_node, segments, copy_name)
            self.resources.append(entry)
            nested_template = self.nested_template(resource)
            skip = frozenset({"resources", "metadata"})
            if nested_template is not None:
                properties = resource["properties"]
                self.collect(
                    {k: v for k, v in resource.items() if k not in skip | {"properties"}}, resource_path, "resources"
                )
                self.collect(
                    {k: v for k, v in properties.items() if k != "template"},
                    child_path(resource_path, "properties"),
                    "resources",
                )
                self.check_nested_deployment(entry, nested_template)
            else:
                self.collect(resource, resource_path, "resources", skip)
            if "resources" in resource:
                self.register_resources(
                    resource["resources"], child_path(resource_path, "resources"), resource_type, segments
                )

    @staticmethod
    def nested_template(resource: dict[str, Any]) -> dict[str, Any] | None:
        """The inline template of a nested deployment, if this resource is one."""
        properties = resource.get("properties")
        if str(resource.get("type", "")).lower() != DEPLOYMENTS_TYPE or not isinstance(properties, dict):
            return None
        template = properties.get("template")
        return template if isinstance(template, dict) else None

    def check_nested_deployment(self, entry: ResourceEntry, template: dict[str, Any]) -> None:
        """Inner scope, parameters passed exactly as the inner template declares them, and the inner rules."""
        properties = entry.body["properties"]
        properties_path = child_path(entry.path, "properties")
        options = properties.get("expressionEvaluationOptions")
        scope = options.get("scope") if isinstance(options, dict) else None
        if not (isinstance(scope, str) and scope.lower() == "inner"):
            self.report(
                child_path(properties_path, "expressionEvaluationOptions"),
                "nested-deployment-scope",
                "inline nested deployments must set expressionEvaluationOptions.scope to 'inner'",
            )
        inner_parameters = template.get("parameters", {})
        inner_parameters = inner_parameters if isinstance(inner_parameters, dict) else {}
        passed = properties.get("parameters", {})
        passed = passed if isinstance(passed, dict) else {}
        for name in passed:
            if name not in inner_parameters:
                self.report(
                    child_path(child_path(properties_path, "parameters"), name),
                    "nested-parameter-undeclared",
                    f"parameter {name!r} is passed but the nested template does not declare it",
                )
        for name, definition in inner_parameters.items():
            if isinstance(definition, dict) and "defaultValue" not in definition and name not in passed:
                self.report(
                    child_path(properties_path, "parameters"),
                    "nested-parameter-missing",
                    f"required parameter {name!r} of the nested template is not passed",
                )
        outputs = template.get("outputs", {})
        entry.inner_output_names = frozenset(outputs) if isinstance(outputs, dict) else frozenset()
        inner = TemplateRules(template, self.file, self.today, child_path(properties_path, "template"))
        self.findings.extend(inner.check())

    def check_resources(self) -> None:
        """API versions and literal locations on every resource."""
        oldest_allowed = self.today - timedelta(days=MAXIMUM_AGE_DAYS)
        for entry in self.resources:
            api_version: str = entry.body["apiVersion"]
            version_path = child_path(entry.path, "apiVersion")
            released = api_version_date(api_version)
            if released is None:
                self.report(version_path, "api-version-format", f"{api_version!r} is not a literal API version")
            elif not is_allow_listed(entry.full_type, api_version):
                if released < oldest_allowed:
                    age = (self.today - released).days
                    self.report(
                        version_path,
                        "api-version-outdated",
                        f"{entry.full_type}@{api_version} is {age} days old (limit {MAXIMUM_AGE_DAYS}) "
                        "and not allow-listed as the newest stable version",
                    )
                elif is_preview(api_version):
                    self.report(version_path, "api-version-preview", f"{entry.full_type}@{api_version} is a preview")
            location = entry.body.get("location")
            if is_literal_region(location):
                self.report(
                    child_path(entry.path, "location"),
                    "location-hardcoded",
                    f"location is the literal region {location!r}; use a location parameter",
                )

    # -- outputs --------------------------------------------------------------------------------------------

    def check_outputs(self) -> None:
        """Collect output expressions and reject secure output types."""
        outputs = self.document.get("outputs", {}) or {}
        for name, output in outputs.items():
            path = self.path("outputs", name)
            if not isinstance(output, dict) or not isinstance(output.get("type"), str):
                self.report(path, "template-structure", "an output must be an object with a type")
                continue
            if output["type"].lower() in SECURE_TYPES:
                self.report(child_path(path, "type"), "output-secret", f"output {name!r} has a secure type")
            if "value" not in output and "copy" not in output:
                self.report(path, "template-structure", f"output {name!r} has neither value nor copy")
            self.collect(output, path, "outputs")

    # -- expressions ----------------------------------------------------------------------------------------

    def check_expressions(self) -> None:
        """Functions, parameter and variable references, resource ids, references and output secrets."""
        used_parameters: set[str] = set()
        used_variables: set[str] = set()
        declared_parameters = {name.lower() for name in self.parameters}
        for site in self.sites:
            for node in armexpr.walk(site.node):
                name = function_name(node)
                if name is None or not isinstance(node, FunctionCall):
                    continue
                if name not in armexpr.KNOWN_FUNCTIONS:
                    self.report(site.path, "expression-unknown-function", f"unknown template function {node.name!r}")
                elif name == "utcnow" and site.section != "default":
                    self.report(
                        site.path, "expression-function-context", "utcNow() is allowed only in parameter defaults"
                    )
                elif name == "parameters":
                    referenced = literal_argument(node, 0)
                    if referenced is not None:
                        used_parameters.add(referenced.lower())
                        if referenced.lower() not in declared_parameters:
                            self.report(site.path, "parameter-undeclared", f"parameter {referenced!r} is not declared")
                elif name == "variables":
                    referenced = literal_argument(node, 0)
                    if referenced is not None:
                        used_variables.add(referenced.lower())
                        if referenced.lower() not in self.variable_names:
                            self.report(site.path, "variable-undeclared", f"variable {referenced!r} is not declared")
                        elif site.section == "default":
                            self.report(
                                site.path, "expression-function-context", "parameter defaults cannot use variables()"
                            )
                elif name == "reference":
                    self.check_reference(site, node)
                self.check_resource_id(site, node)
            self.check_reference_outputs(site)
            if site.section == "outputs":
                self.check_output_site(site)
        for name in self.parameters:
            if name.lower() not in used_parameters:
                self.report(self.path("parameters", name), "parameter-unused", f"parameter {name!r} is never used")
        for key, name in self.variable_names.items():
            if key not in used_variables:
                path = self.path("variables", name) if name in self.variables else self.path("variables", "copy")
                self.report(path, "variable-unused", f"variable {name!r} is never used")

    def check_resource_id(self, site: ExpressionSite, node: FunctionCall) -> None:
        """A literal resource type needs exactly one name argument per type segment."""
        call = resource_id_call(node)
        if call is None:
            return
        if len(call.names) != call.expected_name_count:
            self.report(
                site.path,
                "resource-id-arguments",
                f"{node.name}() of {call.resource_type!r} needs {call.expected_name_count} name(s), "
                f"got {len(call.names)}",
            )

    def declared_types(self) -> set[str]:
        """Lower-case full types of every resource in this template."""
        return {entry.full_type.lower() for entry in self.resources}

    def check_reference(self, site: ExpressionSite, node: FunctionCall) -> None:
        """reference() without an apiVersion must point at a resource this template deploys."""
        if len(node.arguments) != 1:
            return
        target = self.expander.expand(node.arguments[0])
        call = resource_id_call(target)
        if call is not None:
            if call.resource_type.lower() not in self.declared_types():
                self.report(
                    site.path,
                    "reference-unresolvable",
                    f"reference() to {call.resource_type!r}, which this template does not deploy, needs an apiVersion",
                )
            return
        if isinstance(target, StringLiteral):
            if not self.matching_by_name(target):
                self.report(site.path, "reference-unresolvable", f"reference() to unknown resource {target.value!r}")
        elif function_name(target) == "parameters":
            self.report(
                site.path,
                "reference-unresolvable",
                "reference() to a resource given by parameter needs an apiVersion argument",
            )

    def check_reference_outputs(self, site: ExpressionSite) -> None:
        """`reference(<nested deployment>).outputs.<name>` must name an output of that nested template."""
        for node in armexpr.walk(site.node):
            if not (isinstance(node, PropertyAccess) and isinstance(node.target, PropertyAccess)):
                continue
            if node.target.name.lower() != "outputs" or function_name(node.target.target) != "reference":
                continue
            reference_call = node.target.target
            assert isinstance(reference_call, FunctionCall)
            if not reference_call.arguments:
                continue
            call = resource_id_call(self.expander.expand(reference_call.arguments[0]))
            if call is None or call.resource_type.lower() != DEPLOYMENTS_TYPE:
                continue
            for entry in self.matching_resources(call.resource_type, call.names) or []:
                if entry.inner_output_names is not None and node.name not in entry.inner_output_names:
                    self.report(
                        site.path,
                        "reference-output-unknown",
                        f"nested deployment {entry.path} has no output {node.name!r}",
                    )

    def check_output_site(self, site: ExpressionSite) -> None:
        """Outputs carry no secrets and their resource ids point at resources of this template."""
        expanded = self.expander.expand(site.node)
        secure = {name.lower() for name, value in self.parameters.items() if is_secure_parameter(value)}
        declared = self.declared_types()
        for node in armexpr.walk(expanded):
            name = function_name(node)
            if name is None or not isinstance(node, FunctionCall):
                continue
            if name.startswith("list"):
                self.report(site.path, "output-secret", f"outputs must not call {node.name}()")
            elif name == "parameters" and (literal_argument(node, 0) or "").lower() in secure:
                self.report(
                    site.path, "output-secret", f"output exposes secure parameter {literal_argument(node, 0)!r}"
                )
            elif name == "resourceid":
                call = resource_id_call(node)
                if call is not None and not any(
                    ancestor.lower() in declared for ancestor in ancestor_types(call.resource_type)
                ):
                    self.report(
                        site.path,
                        "output-resource-unresolvable",
                        f"output refers to {call.resource_type!r}, which this template does not deploy",
                    )

    # -- dependsOn ------------------------------------------------------------------------------------------

    def matching_by_name(self, name: StringLiteral) -> list[ResourceEntry]:
        """Resources whose literal name, last name segment or copy loop name equals `name`."""
        wanted = name.value.lower()
        matches = []
        for entry in self.resources:
            names = {canonical(entry.name_node)} if entry.name_node is not None else set()
            if entry.segments:
                names.add(canonical(entry.segments[-1]))
            if f"'{wanted}'" in names or (entry.copy_name or "").lower() == wanted:
                matches.append(entry)
        return matches

    def matching_resources(self, resource_type: str, names: tuple[Node, ...]) -> list[ResourceEntry] | None:
        """Resources of `resource_type` whose names equal `names`; None when none matches."""
        expanded = tuple(self.expander.expand(name) for name in names)
        matches = []
        for entry in self.resources:
            if entry.full_type.lower() != resource_type.lower():
                continue
            if entry.segments is None or names_match(entry.segments, expanded):
                matches.append(entry)
        return matches or None

    def resolve_dependency(self, text: str) -> list[ResourceEntry] | None:
        """The resources a dependsOn entry names, or None when it names none of this template's resources."""
        try:
            node = self.expander.expand(parse_value(text))
        except armexpr.ArmExpressionError:
            return None
        call = resource_id_call(node)
        if call is not None:
            return self.matching_resources(call.resource_type, call.names)
        if isinstance(node, StringLiteral):
            return self.matching_by_name(node) or None
        wanted = canonical(node)
        matches = [
            entry for entry in self.resources if entry.name_node is not None and canonical(entry.name_node) == wanted
        ]
        return matches or None

    def check_dependencies(self) -> None:
        """Every dependsOn entry resolves to a resource of this template, and the graph has no cycle."""
        index_of = {id(entry): index for index, entry in enumerate(self.resources)}
        for entry in self.resources:
            depends_on = entry.body.get("dependsOn", [])
            if not isinstance(depends_on, list):
                self.report(child_path(entry.path, "dependsOn"), "template-structure", "dependsOn must be an array")
                continue
            for position, dependency in enumerate(depends_on):
                path = child_path(child_path(entry.path, "dependsOn"), position)
                targets = self.resolve_dependency(dependency) if isinstance(dependency, str) else None
                if targets is None:
                    self.report(
                        path, "depends-on-unresolvable", f"dependsOn {dependency!r} names no resource of this template"
                    )
                    continue
                entry.dependencies.extend(index_of[id(target)] for target in targets)
        cycle = find_cycle([entry.dependencies for entry in self.resources])
        if cycle:
            described = " -> ".join(self.resources[index].path for index in cycle)
            self.report(
                child_path(self.resources[cycle[0]].path, "dependsOn"),
                "depends-on-cycle",
                f"dependsOn forms a cycle: {described}",
            )


def is_literal_region(value: Any) -> bool:
    """True for a location written as a literal region name instead of an expression ('global' excepted)."""
    return isinstance(value, str) and not armexpr.is_expression(value) and value.lower() not in NON_REGIONAL_LOCATIONS


def is_secure_parameter(definition: Any) -> bool:
    """True for a parameter declared secureString or secureObject."""
    return isinstance(definition, dict) and str(definition.get("type", "")).lower() in SECURE_TYPES


def ancestor_types(resource_type: str) -> Iterator[str]:
    """The type and each parent type: `A.B/x/y` gives `A.B/x/y`, `A.B/x`."""
    parts = resource_type.split("/")
    for length in range(len(parts), 1, -1):
        yield "/".join(parts[:length])


def names_match(declared: tuple[Node, ...], referenced: tuple[Node, ...]) -> bool:
    """Whether a resource's name segments equal resourceId() name arguments (lenient when not comparable)."""
    if len(declared) != len(referenced):
        # A name built by an opaque expression cannot be split; do not call that a mismatch.
        return len(declared) == 1 and not isinstance(declared[0], StringLiteral)
    return all(canonical(left) == canonical(right) for left, right in zip(declared, referenced, strict=True))


def find_cycle(edges: list[list[int]]) -> list[int]:
    """One cycle of the graph as a list of node indexes (first node repeated at the end), or []."""
    unvisited, in_progress, done = 0, 1, 2
    state = [unvisited] * len(edges)
    stack: list[int] = []

    def visit(node: int) -> list[int]:
        state[node] = in_progress
        stack.append(node)
        for successor in edges[node]:
            if state[successor] == in_progress:
                return [*stack[stack.index(successor) :], successor]
            if state[successor] == unvisited:
                found = visit(successor)
                if found:
                    return found
        stack.pop()
        state[node] = done
        return []

    for start in range(len(edges)):
        if state[start] == unvisited:
            found = visit(start)
            if found:
                return found
    return []

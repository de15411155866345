"""Offline rules for a managed application's createUiDefinition.json and viewDefinition.json."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import armexpr
from armexpr import FunctionCall, Node, PropertyAccess
from core.arm_templates.expressions import function_name, literal_argument
from core.arm_templates.findings import Finding, child_path
from core.arm_templates.ui_toolkit_rules import check_ui_toolkit_rules

UI_SCHEMA = "https://schema.management.azure.com/schemas/0.1.2-preview/CreateUIDefinition.MultiVm.json#"
UI_HANDLER = "Microsoft.Azure.CreateUIDef"
UI_VERSION = "0.1.2-preview"

# Element types the portal renders that take no input, so they need no validation message.
DISPLAY_ELEMENT_TYPES = frozenset(
    {"Microsoft.Common.Section", "Microsoft.Common.InfoBox", "Microsoft.Common.TextBlock"}
)
INPUT_ELEMENT_TYPES = frozenset(
    {
        "Microsoft.Common.TextBox",
        "Microsoft.Common.MultiLineTextBox",
        "Microsoft.Common.PasswordBox",
        "Microsoft.Common.DropDown",
        "Microsoft.Common.OptionsGroup",
        "Microsoft.Common.CheckBox",
        "Microsoft.Common.Slider",
        "Microsoft.Common.FileUpload",
        "Microsoft.Common.EditableGrid",
        "Microsoft.Common.ServicePrincipalSelector",
        "Microsoft.Common.SubscriptionSelector",
        "Microsoft.Common.ResourceGroupSelector",
        "Microsoft.Common.LocationSelector",
        "Microsoft.Common.TagsByResource",
        "Microsoft.Common.ArmApiControl",
        "Microsoft.Compute.CredentialsCombo",
        "Microsoft.Compute.SizeSelector",
        "Microsoft.Compute.UserNameTextBox",
        "Microsoft.KeyVault.KeyVaultCertificateSelector",
        "Microsoft.ManagedIdentity.IdentitySelector",
        "Microsoft.Network.PublicIpAddressCombo",
        "Microsoft.Network.VirtualNetworkCombo",
        "Microsoft.Solutions.ArmApiControl",
        "Microsoft.Solutions.ResourceSelector",
        "Microsoft.Storage.MultiStorageAccountCombo",
        "Microsoft.Storage.StorageAccountSelector",
    }
)
KNOWN_ELEMENT_TYPES = DISPLAY_ELEMENT_TYPES | INPUT_ELEMENT_TYPES
# Elements whose `constraints.validations` cannot be checked offline but take no free-form input at all.
VALIDATION_EXEMPT_TYPES = frozenset({"Microsoft.Common.ArmApiControl", "Microsoft.Solutions.ArmApiControl"})

# createUiDefinition functions (a different set from ARM template functions), lower-case.
UI_FUNCTIONS = frozenset(
    {
        "basics",
        "steps",
        "location",
        "resourcegroup",
        "subscription",
        "tenant",
        "parse",
        "string",
        "bool",
        "int",
        "float",
        "concat",
        "if",
        "equals",
        "not",
        "and",
        "or",
        "empty",
        "length",
        "contains",
        "first",
        "last",
        "take",
        "skip",
        "split",
        "replace",
        "tolower",
        "toupper",
        "trim",
        "substring",
        "startswith",
        "endswith",
        "indexof",
        "lastindexof",
        "guid",
        "add",
        "sub",
        "mul",
        "div",
        "mod",
        "min",
        "max",
        "range",
        "coalesce",
        "greater",
        "less",
        "greaterorequals",
        "lessorequals",
        "union",
        "intersection",
        "filter",
        "map",
        "encodebase64",
        "decodebase64",
        "encodeuricomponent",
        "decodeuricomponent",
        "utcnow",
        "addhours",
        "addminutes",
        "addseconds",
        "null",
        "lambda",
        "lambdavariables",
        "true",
        "false",
        "sort",
        "sortby",
    }
)
# Outputs the platform consumes itself; they need no template parameter.
RESERVED_OUTPUTS = frozenset(
    {"applicationresourcename", "managedidentity", "managedresourcegroupid", "jitaccesspolicy"}
)
VIEW_KINDS = frozenset({"Overview", "Metrics", "CustomResources", "Associations"})


@dataclass(frozen=True)
class UiElement:
    """An element of basics or of a step, with its children when it is a section."""

    name: str
    element_type: str
    path: str
    children: dict[str, UiElement]


class UiDefinitionRules:
    """Checks createUiDefinition.json against itself and against the main template's parameters."""

    def __init__(self, document: Any, file: str, template_parameters: dict[str, Any] | None) -> None:
        self.document = document
        self.file = file
        self.template_parameters = template_parameters
        self.findings: list[Finding] = []
        self.basics: dict[str, UiElement] = {}
        self.steps: dict[str, dict[str, UiElement]] = {}

    def report(self, path: str, rule: str, message: str) -> None:
        """Record one finding."""
        self.findings.append(Finding(self.file, path, rule, message))

    def check(self) -> list[Finding]:
        """Run every rule and return the findings."""
        parameters = self.check_structure()
        if parameters is None:
            return self.findings
        self.basics = self.read_elements(parameters.get("basics", []), "$.parameters.basics")
        for index, step in enumerate(parameters.get("steps", [])):
            step_path = f"$.parameters.steps[{index}]"
            if not isinstance(step, dict) or not isinstance(step.get("name"), str):
                self.report(step_path, "ui-structure", "a step needs a name")
                continue
            if step["name"] in self.steps or step["name"] == "basics":
                self.report(child_path(step_path, "name"), "ui-structure", f"duplicate step name {step['name']!r}")
            self.steps[step["name"]] = self.read_elements(step.get("elements", []), child_path(step_path, "elements"))
        self.check_expressions(parameters, "$.parameters")
        outputs = parameters.get("outputs")
        if isinstance(outputs, dict) and self.template_parameters is not None:
            self.check_outputs(outputs)
        check_ui_toolkit_rules(self, parameters)
        return self.findings

    def check_structure(self) -> dict[str, Any] | None:
        """Schema, handler, version and the basics/steps/outputs shape."""
        document = self.document
        if not isinstance(document, dict):
            self.report("$", "ui-structure", "createUiDefinition must be a JSON object")
            return None
        expected = {"$schema": UI_SCHEMA, "handler": UI_HANDLER, "version": UI_VERSION}
        for key, value in expected.items():
            if document.get(key) != value:
                self.report(child_path("$", key), "ui-structure", f"{key} must be {value!r}")
        parameters = document.get("parameters")
        if not isinstance(parameters, dict):
            self.report("$.parameters", "ui-structure", "parameters must be an object")
            return None
        for key, kind in (("basics", list), ("steps", list), ("outputs", dict)):
            if not isinstance(parameters.get(key), kind):
                self.report(
                    child_path("$.parameters", key), "ui-structure", f"parameters.{key} must be a {kind.__name__}"
                )
                return None
        return parameters

    def read_elements(self, elements: Any, path: str) -> dict[str, UiElement]:
        """Index elements by name, checking type, uniqueness and validation messages on the way."""
        result: dict[str, UiElement] = {}
        if not isinstance(elements, list):
            self.report(path, "ui-structure", "elements must be an array")
            return result
        for index, element in enumerate(elements):
            element_path = child_path(path, index)
            if not isinstance(element, dict) or not isinstance(element.get("name"), str):
                self.report(element_path, "ui-structure", "an element needs a name")
                continue
            name, element_type = element["name"], element.get("type")
            if name in result:
                self.report(
                    child_path(element_path, "name"), "ui-element-name-duplicate", f"duplicate element name {name!r}"
                )
            if element_type not in KNOWN_ELEMENT_TYPES:
                self.report(
                    child_path(element_path, "type"),
                    "ui-element-type-unknown",
                    f"unknown element type {element_type!r}",
                )
            elif needs_validation_message(str(element_type)) and not has_validation_message(element):
                self.report(
                    element_path,
                    "ui-validation-missing",
                    f"input element {name!r} has no validation message (constraints.validationMessage or .validations)",
                )
            children = self.read_elements(element.get("elements", []), child_path(element_path, "elements"))
            result[name] = UiElement(name, str(element_type), element_path, children)
        return result

    def check_expressions(self, value: Any, path: str) -> None:
        """Every `[...]` string parses, uses createUiDefinition functions and references real elements."""
        if isinstance(value, dict):
            for key, item in value.items():
                self.check_expressions(item, child_path(path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.check_expressions(item, child_path(path, index))
        elif isinstance(value, str) and armexpr.is_expression(value):
            try:
                node = armexpr.parse(value)
            except armexpr.ArmExpressionError as error:
                self.report(path, "ui-expression-syntax", f"expression does not parse: {error}")
                return
            for inner in armexpr.walk(node):
                name = function_name(inner)
                if name is not None and name not in UI_FUNCTIONS:
                    self.report(path, "ui-expression-unknown-function", f"unknown createUiDefinition function {name!r}")
            self.check_references(node, path)

    def check_references(self, node: Node, path: str) -> None:
        """`steps('x').y[.z]` and `basics('y')` must name a step and an element (through sections)."""
        for inner in armexpr.walk(node):
            if not isinstance(inner, FunctionCall):
                continue
            name = function_name(inner)
            if name == "basics":
                element = literal_argument(inner, 0)
                if element is not None and element not in self.basics:
                    self.report(path, "ui-reference-unresolvable", f"basics({element!r}) names no basics element")
            elif name == "steps":
                step = literal_argument(inner, 0)
                if step is None:
                    continue
                elements = self.basics if step == "basics" else self.steps.get(step)
                if elements is None:
                    self.report(path, "ui-reference-unresolvable", f"steps({step!r}) names no step")
                    continue
                chain = property_chain(node, inner)
                if chain and not resolves(elements, chain):
                    self.report(
                        path,
                        "ui-reference-unresolvable",
                        f"steps({step!r}).{'.'.join(chain)} names no element of that step",
                    )

    def check_outputs(self, outputs: dict[str, Any]) -> None:
        """Outputs map one to one onto the main template's parameters."""
        assert self.template_parameters is not None
        declared = {name.lower(): name for name in self.template_parameters}
        output_names = {name.lower() for name in outputs}
        for name in outputs:
            if name.lower() not in declared and name.lower() not in RESERVED_OUTPUTS:
                self.report(
                    child_path("$.parameters.outputs", name),
                    "ui-output-unmatched",
                    f"output {name!r} is not a parameter of mainTemplate.json",
                )
        for key, name in declared.items():
            if key not in output_names:
                self.report(
                    "$.parameters.outputs",
                    "ui-parameter-missing",
                    f"mainTemplate.json parameter {name!r} has no createUiDefinition output",
                )


def needs_validation_message(element_type: str) -> bool:
    """True for element types that take input the user could get wrong."""
    return element_type in INPUT_ELEMENT_TYPES and element_type not in VALIDATION_EXEMPT_TYPES


def has_validation_message(element: dict[str, Any]) -> bool:
    """True when an input element tells the user why a value is refused."""
    constraints = element.get("constraints")
    if not isinstance(constraints, dict):
        return False
    if isinstance(constraints.get("validationMessage"), str) and constraints["validationMessage"]:
        return True
    validations = constraints.get("validations")
    return isinstance(validations, list) and any(
        isinstance(rule, dict) and isinstance(rule.get("message"), str) and rule["message"] for rule in validations
    )


def property_chain(root: Node, call: FunctionCall) -> list[str]:
    """The property names accessed directly on `call` inside `root`, outermost last: `steps('s').a.b` -> [a, b]."""
    chains: list[list[str]] = []
    for node in armexpr.walk(root):
        names: list[str] = []
        current: Node = node
        while isinstance(current, PropertyAccess):
            names.append(current.name)
            current = current.target
        if current is call and names:
            chains.append(list(reversed(names)))
    return max(chains, key=len) if chains else []


def resolves(elements: dict[str, UiElement], chain: list[str]) -> bool:
    """Whether the first names of `chain` lead to an element, descending into sections."""
    first = elements.get(chain[0])
    if first is None:
        return False
    if first.element_type == "Microsoft.Common.Section" and len(chain) > 1:
        return resolves(first.children, chain[1:])
    return True


class ViewDefinitionRules:
    """Checks the shape of viewDefinition.json: schema, content version and known view kinds."""

    def __init__(self, document: Any, file: str) -> None:
        self.document = document
        self.file = file

    def check(self) -> list[Finding]:
        """Return the findings for this view definition."""
        findings: list[Finding] = []
        document = self.document
        if not isinstance(document, dict) or not isinstance(document.get("views"), list):
            return [Finding(self.file, "$.views", "view-structure", "viewDefinition needs a views array")]
        schema = document.get("$schema")
        if not (isinstance(schema, str) and schema.endswith("/ViewDefinition.json#")):
            findings.append(Finding(self.file, "$['$schema']", "view-structure", "unknown viewDefinition schema"))
        for index, view in enumerate(document["views"]):
            kind = view.get("kind") if isinstance(view, dict) else None
            if kind not in VIEW_KINDS:
                findings.append(
                    Finding(self.file, f"$.views[{index}].kind", "view-structure", f"unknown view kind {kind!r}")
                )
        return findings

"""createUiDefinition rules after the ARM template test toolkit's tests that the core UI rules lack."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import armexpr
from armexpr import FunctionCall, Node, PropertyAccess
from core.arm_templates.expressions import function_name, literal_argument
from core.arm_templates.findings import child_path
from core.arm_templates.toolkit_rules import SECURE_TYPES, is_blank

if TYPE_CHECKING:
    from core.arm_templates.ui_definition_rules import UiDefinitionRules

# Controls that show text and take no input have no tooltip (the toolkit's list).
NO_TOOLTIP_TYPES = frozenset({"Microsoft.Common.InfoBox", "Microsoft.Common.Section", "Microsoft.Common.TextBlock"})
UI_MAY_BE_EMPTY = frozenset({"basics", "defaultvalue", "steps"})
PASSWORD_BOX = "Microsoft.Common.PasswordBox"  # noqa: S105  # an element type, not a password
LOCATION_OUTPUT = "[location()]"


@dataclass(frozen=True)
class Control:
    """An element as the outputs reach it: `basics('name')`, or `steps('step').section.name` as a chain."""

    path: str
    body: dict[str, Any]
    step: str | None
    chain: tuple[str, ...]


def check_ui_toolkit_rules(rules: UiDefinitionRules, parameters: dict[str, Any]) -> None:
    """Tooltips, blanks and the location output; with the main template, allowed values and password boxes."""
    check_blanks(rules, rules.document, "$")
    controls = list(all_controls(parameters))
    for control in controls:
        element_type = control.body.get("type")
        if isinstance(element_type, str) and element_type not in NO_TOOLTIP_TYPES and not has_tooltip(control.body):
            rules.report(control.path, "ui-tooltip-missing", f"element {control.chain[-1]!r} has no toolTip")
    outputs = parameters.get("outputs")
    if not isinstance(outputs, dict):
        return
    location = outputs.get("location")
    if not (isinstance(location, str) and location.strip() == LOCATION_OUTPUT):
        rules.report("$.parameters.outputs.location", "ui-location-output", "outputs.location must be [location()]")
    if rules.template_parameters is None:
        return
    template_parameters = {name.lower(): value for name, value in rules.template_parameters.items()}
    for control in controls:
        output = first_output_of(control, outputs)
        definition = template_parameters.get(output.lower()) if output is not None else None
        if output is None or not isinstance(definition, dict):
            continue
        check_allowed_values(rules, control, output, definition)
        if control.body.get("type") == PASSWORD_BOX and str(definition.get("type", "")).lower() not in SECURE_TYPES:
            rules.report(
                control.path,
                "ui-password-parameter",
                f"password box {control.chain[-1]!r} fills {output!r}, which is not a secureString parameter",
            )


def check_blanks(rules: UiDefinitionRules, value: Any, path: str) -> None:
    """No empty values except where the portal gives them a meaning."""
    if isinstance(value, dict):
        for key, item in value.items():
            item_path = child_path(path, key)
            if key.lower() not in UI_MAY_BE_EMPTY and is_blank(item):
                rules.report(item_path, "ui-blank", f"property {key!r} is empty; leave it out instead")
            check_blanks(rules, item, item_path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_blanks(rules, item, child_path(path, index))


def has_tooltip(element: dict[str, Any]) -> bool:
    """A toolTip that says something (any case of the key, as the portal reads it)."""
    tooltip = next((value for key, value in element.items() if key.lower() == "tooltip"), None)
    if isinstance(tooltip, str):
        return bool(tooltip.strip())
    return tooltip is not None


def all_controls(parameters: dict[str, Any]) -> Iterator[Control]:
    """Every element of basics and of each step, sections' children included."""
    yield from controls_below(parameters.get("basics"), "$.parameters.basics", None, ())
    steps = parameters.get("steps")
    for index, step in enumerate(steps if isinstance(steps, list) else []):
        if isinstance(step, dict) and isinstance(step.get("name"), str):
            path = child_path(child_path("$.parameters.steps", index), "elements")
            yield from controls_below(step.get("elements"), path, step["name"], ())


def controls_below(elements: Any, path: str, step: str | None, prefix: tuple[str, ...]) -> Iterator[Control]:
    """The named elements of one container and, through sections, of theirs."""
    for index, element in enumerate(elements if isinstance(elements, list) else []):
        if not isinstance(element, dict) or not isinstance(element.get("name"), str):
            continue
        element_path = child_path(path, index)
        chain = (*prefix, element["name"])
        yield Control(element_path, element, step, chain)
        if "elements" in element:
            yield from controls_below(element["elements"], child_path(element_path, "elements"), step, chain)


def first_output_of(control: Control, outputs: dict[str, Any]) -> str | None:
    """The first output whose expression reads this control (the output the toolkit compares it with)."""
    for name, value in outputs.items():
        if isinstance(value, str) and armexpr.is_expression(value):
            try:
                node = armexpr.parse(value)
            except armexpr.ArmExpressionError:
                continue
            if any(reads_control(inner, node, control) for inner in armexpr.walk(node)):
                return name
    return None


def reads_control(call: Node, root: Node, control: Control) -> bool:
    """Whether `call` (inside `root`) is `basics('x')` or `steps('s').a.b` naming `control`."""
    if not isinstance(call, FunctionCall):
        return False
    name = function_name(call)
    if name == "basics" and control.step is None:
        return literal_argument(call, 0) == control.chain[0] and len(control.chain) == 1
    if name != "steps" or literal_argument(call, 0) != control.step:
        return False
    for node in armexpr.walk(root):
        names: list[str] = []
        current: Node = node
        while isinstance(current, PropertyAccess):
            names.append(current.name)
            current = current.target
        if current is call and tuple(reversed(names))[: len(control.chain)] == control.chain:
            return True
    return False


def check_allowed_values(rules: UiDefinitionRules, control: Control, output: str, definition: dict[str, Any]) -> None:
    """Every value a drop-down offers is one the main template parameter it fills allows."""
    constraints = control.body.get("constraints")
    offered = constraints.get("allowedValues") if isinstance(constraints, dict) else None
    allowed = definition.get("allowedValues")
    if not isinstance(offered, list) or not isinstance(allowed, list):
        return
    permitted = {canonical_value(value) for value in allowed}
    for index, item in enumerate(offered):
        value = item.get("value") if isinstance(item, dict) else item
        if canonical_value(value) not in permitted:
            rules.report(
                child_path(child_path(child_path(control.path, "constraints"), "allowedValues"), index),
                "ui-allowed-values",
                f"value {value!r} of {control.chain[-1]!r} is not an allowed value of parameter {output!r}",
            )


def canonical_value(value: Any) -> Any:
    """Strings compare without case (the toolkit's comparison is looser still); other values as they are."""
    return value.lower() if isinstance(value, str) else repr(value)

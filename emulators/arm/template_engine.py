"""Evaluates ARM templates (languageVersion 1.0): parameters, variables, resource expansion, ordering, outputs.

Validation (`plan`) happens when a deployment is submitted, like ARM's template validation: parameters
are bound and checked, every expression is parsed and its functions looked up, copy loops, conditions,
names and `dependsOn` are expanded and ordered. Resource bodies and outputs are evaluated later, while
the deployment is applied, because `reference()` reads resources created earlier in the same deployment.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import armexpr
from emulators.arm.errors import TemplateError
from emulators.arm.resource_ids import build_resource_id, id_key, resource_group_scope
from emulators.arm.template_functions import FUNCTIONS, index_value, property_value, type_name

PARAMETER_TYPES = {"string", "securestring", "int", "bool", "object", "secureobject", "array"}
SECURE_TYPES = {"securestring", "secureobject"}
# Keys of a resource declaration that describe the deployment rather than the resource.
DEPLOYMENT_ONLY_KEYS = {"copy", "condition", "dependson", "resources", "comments", "scope", "apiversion"}
OUTPUT_TYPE_NAMES = {
    "string": "String",
    "securestring": "SecureString",
    "int": "Int",
    "bool": "Bool",
    "object": "Object",
    "secureobject": "SecureObject",
    "array": "Array",
}


@dataclass(frozen=True)
class DeploymentContext:
    """Where a template is deployed: used by resourceGroup(), subscription(), deployment(), tenant()."""

    subscription_id: str
    subscription_display_name: str
    tenant_id: str
    resource_group_name: str
    resource_group_location: str
    resource_group_tags: dict[str, str]
    deployment_name: str


ReferenceResolver = Callable[[str, bool], Any]
"""(resource id, full) -> the resource's properties, or the whole resource when full; raises TemplateError."""

ListActionResolver = Callable[[str, str], Any]
"""(resource id, action such as "listKeys") -> the action's answer; raises ResourceFailure when not supported."""


@dataclass
class PlannedResource:
    """One resource instance after copy expansion, with what ordering and evaluation need."""

    position: int
    declaration: dict[str, Any]
    type: str
    name: str
    id: str
    api_version: str
    bindings: tuple[tuple[str, int], ...]
    loop_name: str | None
    condition: bool
    depends_on: list[str]
    parent_position: int | None
    dependencies: set[int] = field(default_factory=set)

    @property
    def is_deployment(self) -> bool:
        """True for an inline nested deployment."""
        return self.type.lower() == "microsoft.resources/deployments"


def _lookup_case_insensitive(container: dict[str, Any], name: str) -> tuple[str, Any] | None:
    for key, value in container.items():
        if key.lower() == name.lower():
            return key, value
    return None


def _strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings_in(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings_in(item)


@functools.lru_cache(maxsize=16_384)
def parse_expression(text: str) -> armexpr.Node:
    """Parse with ARM's InvalidTemplate error on bad syntax or unknown functions.

    Cached across deployments: the same templates come back with other parameters, and nodes are immutable.
    """
    try:
        node = armexpr.parse(text)
    except armexpr.ArmExpressionError as error:
        raise TemplateError(
            f"Deployment template language expression '{text}' is not valid: {error.message} "
            f"at position {error.position}."
        ) from None
    for item in armexpr.walk(node):
        if isinstance(item, armexpr.FunctionCall) and item.name.lower() not in armexpr.KNOWN_FUNCTIONS:
            raise TemplateError(
                f"Deployment template validation failed: 'The template function '{item.name}' is not valid. "
                "Please see https://aka.ms/arm-functions for usage details.'."
            )
    return node


def check_expressions(template: dict[str, Any]) -> None:
    """Parse every expression of the template (nested templates included) so errors surface at submission."""
    for text in _strings_in(template):
        if armexpr.is_expression(text):
            parse_expression(text)


class TemplateEvaluator:
    """Binds one template to its parameters and evaluates its expressions; implements FunctionScope."""

    def __init__(
        self,
        template: dict[str, Any],
        supplied_parameters: dict[str, Any],
        context: DeploymentContext,
        resolver: ReferenceResolver,
        outer: TemplateEvaluator | None = None,
        list_actions: ListActionResolver | None = None,
    ) -> None:
        if not isinstance(template, dict):
            raise TemplateError("Deployment template validation failed: the template must be a JSON object.")
        self.template = template
        self.context = context
        self.resolver = resolver
        self.list_actions = list_actions
        # An outer-scoped nested template reads its parent's parameters and variables.
        self.outer = outer
        self.subscription_id = context.subscription_id
        self.resource_group_name = context.resource_group_name
        self.tenant_id = context.tenant_id
        self._copy_bindings: list[tuple[str, int]] = []
        self._utc_now_allowed = False
        self._variable_values: dict[str, Any] = {}
        self._variables_in_progress: set[str] = set()
        self.template_resource_ids: dict[str, str] = {}
        declared = (template.get("parameters") or {}) if outer is None else {}
        self.parameter_names = {key.lower(): key for key in declared}
        self.parameter_declarations = {key.lower(): value for key, value in declared.items()}
        self.variable_declarations = self._collect_variables() if outer is None else {}
        self.parameter_values: dict[str, Any] = self._bind_parameters(supplied_parameters) if outer is None else {}

    # FunctionScope -----------------------------------------------------------------------------------------------
    def parameter(self, name: str) -> Any:
        """parameters('name')."""
        if self.outer is not None:
            return self.outer.parameter(name)
        if name.lower() not in self.parameter_values:
            raise TemplateError(f"The template parameter '{name}' is not found.")
        return self.parameter_values[name.lower()]

    def variable(self, name: str) -> Any:
        """variables('name'), evaluated on first use; a variable that needs itself is an error."""
        if self.outer is not None:
            return self.outer.variable(name)
        key = name.lower()
        if key in self._variable_values:
            return self._variable_values[key]
        if key not in self.variable_declarations:
            raise TemplateError(f"The template variable '{name}' is not found.")
        if key in self._variables_in_progress:
            raise TemplateError(f"The template variable '{name}' has a circular reference.")
        self._variables_in_progress.add(key)
        try:
            declaration = self.variable_declarations[key]
            if isinstance(declaration, _VariableCopy):
                value = self._evaluate_copy_array(declaration.name, declaration.count, declaration.input)
            else:
                value = self.evaluate(declaration)
        finally:
            self._variables_in_progress.discard(key)
        self._variable_values[key] = value
        return value

    def copy_index(self, loop_name: str | None) -> int:
        """copyIndex(): the innermost resource loop, or the named loop."""
        if not self._copy_bindings:
            raise TemplateError("The template function 'copyIndex' is not expected at this location.")
        if loop_name is None:
            return self._copy_bindings[0][1]
        for name, index in reversed(self._copy_bindings):
            if name.lower() == loop_name.lower():
                return index
        raise TemplateError(f"The template copy loop '{loop_name}' is not found for copyIndex.")

    def resource_group_object(self) -> dict[str, Any]:
        """resourceGroup()."""
        return {
            "id": resource_group_scope(self.context.subscription_id, self.context.resource_group_name),
            "name": self.context.resource_group_name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": self.context.resource_group_location,
            "tags": dict(self.context.resource_group_tags),
            "properties": {"provisioningState": "Succeeded"},
        }

    def subscription_object(self) -> dict[str, Any]:
        """subscription()."""
        return {
            "id": f"/subscriptions/{self.context.subscription_id}",
            "subscriptionId": self.context.subscription_id,
            "tenantId": self.context.tenant_id,
            "displayName": self.context.subscription_display_name,
        }

    def deployment_object(self) -> dict[str, Any]:
        """deployment()."""
        return {
            "name": self.context.deployment_name,
            "properties": {
                "template": {"contentVersion": self.template.get("contentVersion", "1.0.0.0")},
                "mode": "Incremental",
                "provisioningState": "Running",
            },
        }

    def reference(self, name_or_id: str, api_version: str | None, full: bool) -> Any:
        """reference(): a template resource by name, or any resource by id."""
        resource_id = name_or_id
        if not name_or_id.startswith("/"):
            found = self.template_resource_ids.get(name_or_id.lower())
            if found is None and self.outer is not None:
                found = self.outer.template_resource_ids.get(name_or_id.lower())
            if found is None:
                raise TemplateError(f"The template resource '{name_or_id}' is not found for reference().")
            resource_id = found
        return self.resolver(resource_id, full)

    def list_action(self, resource_id: str, action: str, api_version: str) -> Any:
        """listKeys() and its kin: a POST action on any resource, as ARM runs it while deploying."""
        if not resource_id.startswith("/"):
            raise TemplateError(f"The template function '{action}' needs a resource id, got '{resource_id}'.")
        if self.list_actions is None:
            raise TemplateError(f"The template function '{action}' is not expected at this location.")
        return self.list_actions(resource_id, action)

    def utc_now_allowed(self) -> bool:
        """utcNow() only in parameter defaults."""
        return self._utc_now_allowed

    # Evaluation --------------------------------------------------------------------------------------------------
    def evaluate(self, value: Any, *, skip_keys: frozenset[str] = frozenset()) -> Any:
        """Evaluate every expression inside a JSON value; property copy loops are expanded in objects."""
        if isinstance(value, str):
            if armexpr.is_expression(value):
                return self.evaluate_expression(value)
            return armexpr.unescape_literal(value)
        if isinstance(value, list):
            return [self.evaluate(item) for item in value]
        if isinstance(value, dict):
            result: dict[str, Any] = {}
            for key, item in value.items():
                if key.lower() in skip_keys:
                    result[key] = item
                elif key == "copy" and isinstance(item, list):
                    for loop in item:
                        result[loop["name"]] = self._evaluate_copy_array(
                            loop["name"], loop.get("count"), loop.get("input")
                        )
                else:
                    result[self.evaluate(key) if isinstance(key, str) else key] = self.evaluate(item)
            return result
        return value

    def evaluate_expression(self, text: str) -> Any:
        """Evaluate one `[...]` expression."""
        return self._evaluate_node(parse_expression(text))

    def _evaluate_node(self, node: armexpr.Node) -> Any:
        if isinstance(node, armexpr.StringLiteral | armexpr.NumberLiteral | armexpr.BooleanLiteral):
            return node.value
        if isinstance(node, armexpr.PropertyAccess):
            return property_value(self._evaluate_node(node.target), node.name)
        if isinstance(node, armexpr.IndexAccess):
            return index_value(self._evaluate_node(node.target), self._evaluate_node(node.index))
        if isinstance(node, armexpr.FunctionCall):
            name = node.name.lower()
            if name == "if":
                # Only the chosen branch is evaluated, so the other may reference what does not exist.
                if len(node.arguments) != 3:
                    raise TemplateError("The template language function 'if' requires 3 arguments.")
                condition = self._evaluate_node(node.arguments[0])
                if not isinstance(condition, bool):
                    raise TemplateError("The template language function 'if' expects a boolean condition.")
                return self._evaluate_node(node.arguments[1] if condition else node.arguments[2])
            arguments = [self._evaluate_node(argument) for argument in node.arguments]
            try:
                return FUNCTIONS[name](self, arguments)
            except TemplateError:
                raise
            except (IndexError, TypeError, ValueError, AttributeError) as error:
                raise TemplateError(f"Unable to evaluate template language function '{node.name}': {error}.") from None
        raise TemplateError(f"Unsupported expression node {type(node).__name__}.")

    def _evaluate_copy_array(self, name: str, count_value: Any, input_value: Any) -> list[Any]:
        count = self.evaluate(count_value)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0 or count > 800:
            raise TemplateError(f"The copy count of '{name}' must be an integer between 0 and 800, got '{count}'.")
        items = []
        for index in range(count):
            self._copy_bindings.append((name, index))
            try:
                items.append(self.evaluate(input_value))
            finally:
                self._copy_bindings.pop()
        return items

    # Parameters and variables ------------------------------------------------------------------------------------
    def _bind_parameters(self, supplied: dict[str, Any]) -> dict[str, Any]:
        unknown = [name for name in supplied if name.lower() not in self.parameter_declarations]
        if unknown:
            raise TemplateError(
                "Deployment template validation failed: 'The following parameters were supplied, but do not "
                f"correspond to any parameters defined in the template: '{', '.join(unknown)}'.'."
            )
        supplied_values: dict[str, Any] = {}
        for name, wrapper in supplied.items():
            if not isinstance(wrapper, dict) or "value" not in wrapper:
                raise TemplateError(
                    f"The value of the template parameter '{name}' must be given as {{\"value\": ...}}.",
                    code="InvalidDeploymentParameterValue",
                )
            supplied_values[name.lower()] = wrapper["value"]
        values: dict[str, Any] = {}
        self.parameter_values = values
        for key, declaration in self.parameter_declarations.items():
            declared_name = self.parameter_names[key]
            parameter_type = str(declaration.get("type", "")).lower()
            if parameter_type not in PARAMETER_TYPES:
                raise TemplateError(
                    f"Deployment template validation failed: 'The template parameter '{declared_name}' has an "
                    f"invalid type '{declaration.get('type')}'.'."
                )
            if key in supplied_values:
                value = supplied_values[key]
            elif "defaultValue" in declaration:
                self._utc_now_allowed = True
                try:
                    value = self.evaluate(declaration["defaultValue"])
                finally:
                    self._utc_now_allowed = False
            else:
                raise TemplateError(
                    f"Deployment template validation failed: 'The value for the template parameter "
                    f"'{declared_name}' is not provided. Please see https://aka.ms/arm-create-parameter-file for "
                    "usage details.'."
                )
            values[key] = self._check_parameter(declared_name, parameter_type, declaration, value)
        return values

    def _check_parameter(self, name: str, parameter_type: str, declaration: dict[str, Any], value: Any) -> Any:
        def invalid(reason: str) -> TemplateError:
            return TemplateError(
                f"Deployment template validation failed: 'The provided value for the template parameter '{name}' "
                f"is not valid. {reason}'.",
                code="InvalidTemplate",
            )

        if parameter_type == "int" and isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        if parameter_type == "bool" and isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        expected = {
            "string": "String",
            "securestring": "String",
            "int": "Integer",
            "bool": "Boolean",
            "object": "Object",
            "secureobject": "Object",
            "array": "Array",
        }[parameter_type]
        if type_name(value) != expected and not (value is None and parameter_type in ("object", "secureobject")):
            raise invalid(f"Expected a value of type '{expected}', but received a value of type '{type_name(value)}'.")
        allowed = declaration.get("allowedValues")
        if allowed is not None:
            candidates = value if parameter_type == "array" else [value]
            for candidate in candidates:
                if candidate not in allowed:
                    raise invalid(
                        f"The value '{candidate}' is not part of the allowed value(s): '{','.join(map(str, allowed))}'."
                    )
        if "minValue" in declaration and isinstance(value, int) and value < declaration["minValue"]:
            raise invalid(f"The value '{value}' is less than the minimum value '{declaration['minValue']}'.")
        if "maxValue" in declaration and isinstance(value, int) and value > declaration["maxValue"]:
            raise invalid(f"The value '{value}' is greater than the maximum value '{declaration['maxValue']}'.")
        if isinstance(value, str | list):
            if "minLength" in declaration and len(value) < declaration["minLength"]:
                raise invalid(
                    f"The length '{len(value)}' is less than the minimum length '{declaration['minLength']}'."
                )
            if "maxLength" in declaration and len(value) > declaration["maxLength"]:
                raise invalid(f"The length '{len(value)}' exceeds the maximum length '{declaration['maxLength']}'.")
        return value

    def _collect_variables(self) -> dict[str, Any]:
        declarations: dict[str, Any] = {}
        for name, value in (self.template.get("variables") or {}).items():
            if name == "copy" and isinstance(value, list):
                for loop in value:
                    declarations[loop["name"].lower()] = _VariableCopy(
                        loop["name"], loop.get("count"), loop.get("input")
                    )
            else:
                declarations[name.lower()] = value
        return declarations

    # Resources ---------------------------------------------------------------------------------------------------
    def plan(self) -> list[PlannedResource]:
        """Expand copy loops, nested children, conditions and ids; order by dependsOn (cycles are errors)."""
        resources = self.template.get("resources")
        if not isinstance(resources, list):
            raise TemplateError("Deployment template validation failed: 'The template must have a 'resources' array.'.")
        planned: list[PlannedResource] = []
        for declaration in resources:
            self._expand(declaration, None, None, planned)
        for resource in planned:
            self.template_resource_ids.setdefault(resource.name.lower(), resource.id)
            self.template_resource_ids.setdefault(resource.name.split("/")[-1].lower(), resource.id)
        self._resolve_dependencies(planned)
        return _topological_order(planned)

    def _expand(
        self,
        declaration: dict[str, Any],
        parent: PlannedResource | None,
        parent_bindings: tuple[tuple[str, int], ...] | None,
        planned: list[PlannedResource],
    ) -> None:
        if not isinstance(declaration, dict) or "type" not in declaration or "name" not in declaration:
            raise TemplateError("Deployment template validation failed: 'A resource must have a 'type' and a 'name'.'.")
        copy = declaration.get("copy")
        bindings_base = parent_bindings or ()
        if copy is not None:
            if parent is not None:
                raise TemplateError(
                    "Deployment template validation failed: 'Copying nested resources is not supported.'."
                )
            count = self._with_bindings(bindings_base, lambda: self.evaluate(copy.get("count")))
            if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 800:
                raise TemplateError(
                    f"Deployment template validation failed: 'The copy count of '{copy.get('name')}' must be an "
                    f"integer between 0 and 800.'."
                )
            instances = [(*bindings_base, (str(copy["name"]), index)) for index in range(count)]
            loop_name: str | None = str(copy["name"])
        else:
            instances = [bindings_base]
            loop_name = None
        for bindings in instances:
            planned_resource = self._with_bindings(
                bindings, functools.partial(self._plan_instance, declaration, parent, bindings, loop_name, len(planned))
            )
            planned.append(planned_resource)
            for child in declaration.get("resources") or []:
                self._expand(child, planned_resource, bindings, planned)

    def _plan_instance(
        self,
        declaration: dict[str, Any],
        parent: PlannedResource | None,
        bindings: tuple[tuple[str, int], ...],
        loop_name: str | None,
        position: int,
    ) -> PlannedResource:
        resource_type = self.evaluate(declaration["type"])
        name = self.evaluate(declaration["name"])
        if not isinstance(resource_type, str) or not isinstance(name, str) or not name:
            raise TemplateError("Deployment template validation failed: 'A resource type and name must be strings.'.")
        if parent is not None and "/" not in resource_type:
            resource_type = f"{parent.type}/{resource_type}"
            name = f"{parent.name}/{name}"
        condition = self.evaluate(declaration.get("condition", True))
        if not isinstance(condition, bool):
            raise TemplateError(f"The condition of the template resource '{name}' must be a boolean.")
        names = name.split("/")
        if len(resource_type.split("/")) - 1 != len(names):
            raise TemplateError(
                f"Deployment template validation failed: 'The template resource '{name}' for type '{resource_type}' "
                "has incorrect segment lengths. A nested resource type must have identical number of segments as "
                "its resource name.'."
            )
        scope_value = self.evaluate(declaration["scope"]) if "scope" in declaration else None
        if scope_value:
            scope = (
                scope_value
                if scope_value.startswith("/")
                else (f"{resource_group_scope(self.subscription_id, self.resource_group_name)}/providers/{scope_value}")
            )
        else:
            scope = resource_group_scope(self.subscription_id, self.resource_group_name)
        depends_on = self.evaluate(declaration.get("dependsOn") or [])
        if not isinstance(depends_on, list) or not all(isinstance(item, str) for item in depends_on):
            raise TemplateError(f"The dependsOn of the template resource '{name}' must be an array of strings.")
        return PlannedResource(
            position=position,
            declaration=declaration,
            type=resource_type,
            name=name,
            id=build_resource_id(scope, resource_type, names),
            api_version=str(declaration.get("apiVersion", "")),
            bindings=bindings,
            loop_name=loop_name,
            condition=condition and (parent.condition if parent else True),
            depends_on=depends_on,
            parent_position=parent.position if parent else None,
        )

    def _with_bindings(self, bindings: tuple[tuple[str, int], ...], action: Callable[[], Any]) -> Any:
        saved = self._copy_bindings
        self._copy_bindings = list(bindings)
        try:
            return action()
        finally:
            self._copy_bindings = saved

    def _resolve_dependencies(self, planned: list[PlannedResource]) -> None:
        by_id = {id_key(resource.id): resource.position for resource in planned}
        for resource in planned:
            if resource.parent_position is not None:
                resource.dependencies.add(resource.parent_position)
            for reference in resource.depends_on:
                matches = self._match_dependency(reference, planned, by_id)
                if not matches:
                    raise TemplateError(
                        f"Deployment template validation failed: 'The resource '{reference}' is not defined in the "
                        "template. Please see https://aka.ms/arm-syntax for usage details.'."
                    )
                resource.dependencies.update(matches - {resource.position})

    @staticmethod
    def _match_dependency(reference: str, planned: list[PlannedResource], by_id: dict[str, int]) -> set[int]:
        key = id_key(reference)
        if key in by_id:
            return {by_id[key]}
        lowered = reference.lower()
        loop_members = {item.position for item in planned if item.loop_name and item.loop_name.lower() == lowered}
        if loop_members:
            return loop_members
        # "Namespace/type/name" or just the resource name.
        return {
            item.position
            for item in planned
            if f"{item.type}/{item.name}".lower() == lowered
            or id_key(item.id).endswith("/" + lowered)
            or item.name.lower() == lowered
        }

    # Resource bodies and outputs ---------------------------------------------------------------------------------
    def evaluate_resource(self, resource: PlannedResource) -> dict[str, Any]:
        """The resource body to PUT: every declaration key but the deployment-only ones, evaluated."""
        body = {key: value for key, value in resource.declaration.items() if key.lower() not in DEPLOYMENT_ONLY_KEYS}
        body["name"] = resource.name
        body["type"] = resource.type

        def evaluate_body() -> dict[str, Any]:
            evaluated: dict[str, Any] = {}
            for key, value in body.items():
                if key in ("name", "type"):
                    evaluated[key] = value
                elif resource.is_deployment and key == "properties" and isinstance(value, dict):
                    # The inline template is evaluated by the nested deployment itself, in its own scope.
                    evaluated[key] = self.evaluate(value, skip_keys=frozenset({"template"}))
                else:
                    evaluated[key] = self.evaluate(value)
            return evaluated

        result: dict[str, Any] = self._with_bindings(resource.bindings, evaluate_body)
        return result

    def outputs(self) -> dict[str, Any]:
        """The evaluated outputs as ARM returns them: `{name: {"type": ..., "value": ...}}`."""
        results: dict[str, Any] = {}
        for name, declaration in (self.template.get("outputs") or {}).items():
            if not self.evaluate(declaration.get("condition", True)):
                continue
            output_type = str(declaration.get("type", "")).lower()
            if "copy" in declaration:
                copy = declaration["copy"]
                value = self._evaluate_copy_array(name, copy.get("count"), copy.get("input"))
            else:
                value = self.evaluate(declaration.get("value"))
            entry: dict[str, Any] = {"type": OUTPUT_TYPE_NAMES.get(output_type, declaration.get("type", ""))}
            if output_type not in SECURE_TYPES:
                entry["value"] = value
            results[name] = entry
        return results


@dataclass(frozen=True)
class _VariableCopy:
    name: str
    count: Any
    input: Any


def _topological_order(planned: list[PlannedResource]) -> list[PlannedResource]:
    """Kahn's algorithm keeping template order among independent resources; a cycle is InvalidTemplate."""
    remaining = {resource.position: set(resource.dependencies) for resource in planned}
    by_position = {resource.position: resource for resource in planned}
    ordered: list[PlannedResource] = []
    while remaining:
        ready = sorted(position for position, needs in remaining.items() if not needs)
        if not ready:
            cycle = ", ".join(sorted(by_position[position].name for position in remaining))
            raise TemplateError(
                f"Deployment template validation failed: 'Circular dependency detected on resource: '{cycle}'. "
                "Please see https://aka.ms/arm-syntax for usage details.'."
            )
        for position in ready:
            ordered.append(by_position[position])
            del remaining[position]
        for needs in remaining.values():
            needs.difference_update(ready)
    return ordered

"""What the checker needs on top of `armexpr`: canonical text, variable expansion and resource id analysis."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import armexpr
from armexpr import BooleanLiteral, FunctionCall, IndexAccess, Node, NumberLiteral, PropertyAccess, StringLiteral

# resourceId-like functions whose type argument is the first literal containing a '/'.
_RESOURCE_ID_FUNCTIONS = frozenset({"resourceid", "subscriptionresourceid", "tenantresourceid"})
_SEGMENTED_FORMAT = re.compile(r"^\{(\d+)\}(/\{(\d+)\})*$")
_RESOURCE_TYPE = re.compile(r"^[A-Za-z0-9]+(\.[A-Za-z0-9]+)+(/[A-Za-z0-9]+)+$")


def function_name(node: Node) -> str | None:
    """The lower-case function name when `node` is a call, else None."""
    return node.name.lower() if isinstance(node, FunctionCall) else None


def literal_argument(call: FunctionCall, index: int) -> str | None:
    """The string value of argument `index` when it is a string literal."""
    if index < len(call.arguments):
        argument = call.arguments[index]
        if isinstance(argument, StringLiteral):
            return argument.value
    return None


def canonical(node: Node) -> str:
    """A text form that is equal for expressions ARM treats as equal (function and literal case ignored)."""
    if isinstance(node, FunctionCall):
        return f"{node.name.lower()}({','.join(canonical(argument) for argument in node.arguments)})"
    if isinstance(node, StringLiteral):
        return "'" + node.value.lower() + "'"
    if isinstance(node, BooleanLiteral):
        return "true" if node.value else "false"
    if isinstance(node, NumberLiteral):
        return str(node.value)
    if isinstance(node, PropertyAccess):
        return f"{canonical(node.target)}.{node.name.lower()}"
    if isinstance(node, IndexAccess):
        return f"{canonical(node.target)}[{canonical(node.index)}]"
    return repr(node)


def parse_value(text: str) -> Node:
    """A template string as a node: its parsed expression, or a string literal when it is not one."""
    if armexpr.is_expression(text):
        return armexpr.parse(text)
    return StringLiteral(armexpr.unescape_literal(text))


class VariableExpander:
    """Replaces `variables('x')` by the expression of `x`, so that indirections can be followed statically."""

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self._variables = {name.lower(): value for name, value in variables.items() if name != "copy"}
        self._parsed: dict[str, Node | None] = {}

    def _variable_node(self, name: str) -> Node | None:
        key = name.lower()
        if key not in self._parsed:
            value = self._variables.get(key)
            node: Node | None = None
            if isinstance(value, str):
                try:
                    node = parse_value(value)
                except armexpr.ArmExpressionError:
                    node = None
            self._parsed[key] = node
        return self._parsed[key]

    def expand(self, node: Node, expanding: frozenset[str] = frozenset()) -> Node:
        """`node` with every resolvable string-valued variable inlined (cycles are left alone)."""
        if isinstance(node, FunctionCall):
            name = literal_argument(node, 0)
            if function_name(node) == "variables" and len(node.arguments) == 1 and name is not None:
                replacement = self._variable_node(name)
                if replacement is not None and name.lower() not in expanding:
                    return self.expand(replacement, expanding | {name.lower()})
                return node
            return FunctionCall(node.name, tuple(self.expand(argument, expanding) for argument in node.arguments))
        if isinstance(node, PropertyAccess):
            return PropertyAccess(self.expand(node.target, expanding), node.name)
        if isinstance(node, IndexAccess):
            return IndexAccess(self.expand(node.target, expanding), self.expand(node.index, expanding))
        return node


@dataclass(frozen=True)
class ResourceIdCall:
    """A resourceId-family call whose resource type is a literal: the type and the name arguments after it."""

    function: str
    resource_type: str
    type_position: int
    names: tuple[Node, ...]

    @property
    def expected_name_count(self) -> int:
        """How many names the type needs: one per type segment after the namespace."""
        return self.resource_type.count("/")


def is_resource_type(text: str) -> bool:
    """True for text shaped like `Namespace.Provider/type[/childType...]`."""
    return bool(_RESOURCE_TYPE.match(text))


def resource_id_call(node: Node) -> ResourceIdCall | None:
    """Analyse a resourceId / subscriptionResourceId / extensionResourceId call with a literal type."""
    if not isinstance(node, FunctionCall):
        return None
    name = node.name.lower()
    if name == "extensionresourceid":
        resource_type = literal_argument(node, 1)
        if resource_type is None:
            return None
        return ResourceIdCall(name, resource_type, 1, node.arguments[2:])
    if name not in _RESOURCE_ID_FUNCTIONS:
        return None
    for position, argument in enumerate(node.arguments):
        if isinstance(argument, StringLiteral) and is_resource_type(argument.value):
            return ResourceIdCall(name, argument.value, position, node.arguments[position + 1 :])
    return None


def name_segments(name: Node) -> tuple[Node, ...]:
    """Split a resource name into its '/'-separated segments where the expression makes them visible."""
    if isinstance(name, StringLiteral):
        return tuple(StringLiteral(part) for part in name.value.split("/"))
    if isinstance(name, FunctionCall) and name.name.lower() == "format":
        pattern = literal_argument(name, 0)
        if pattern is not None and _SEGMENTED_FORMAT.match(pattern):
            indexes = [int(index) for index in re.findall(r"\{(\d+)\}", pattern)]
            if all(index + 1 < len(name.arguments) for index in indexes):
                return tuple(name.arguments[index + 1] for index in indexes)
    if isinstance(name, FunctionCall) and name.name.lower() == "concat":
        segments: list[Node] = []
        expect_separator = False
        for argument in name.arguments:
            if expect_separator:
                if not (isinstance(argument, StringLiteral) and argument.value == "/"):
                    return (name,)
            else:
                segments.append(argument)
            expect_separator = not expect_separator
        if segments and expect_separator:
            return tuple(segments)
    return (name,)

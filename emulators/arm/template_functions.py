"""Implementations of the ARM template functions over JSON values (languageVersion 1.0).

Each function takes the evaluation scope and its already evaluated arguments; `if` is special-cased
by the evaluator because only the chosen branch is evaluated. Error messages follow ARM's wording.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, unquote, urljoin

from emulators.arm.errors import TemplateError
from emulators.arm.resource_ids import build_resource_id, resource_group_scope

# ARM derives guid() values from a fixed namespace; ours is our own, so values differ from Azure's but are stable.
GUID_NAMESPACE = uuid.UUID("11fb06fb-712d-4ddd-98c7-e71bbd588830")
UNIQUE_STRING_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


class FunctionScope(Protocol):
    """What the functions need from the evaluator."""

    subscription_id: str
    resource_group_name: str
    tenant_id: str

    def parameter(self, name: str) -> Any: ...
    def variable(self, name: str) -> Any: ...
    def copy_index(self, loop_name: str | None) -> int: ...
    def resource_group_object(self) -> dict[str, Any]: ...
    def subscription_object(self) -> dict[str, Any]: ...
    def deployment_object(self) -> dict[str, Any]: ...
    def reference(self, name_or_id: str, api_version: str | None, full: bool) -> Any: ...
    def list_action(self, resource_id: str, action: str, api_version: str) -> Any: ...
    def utc_now_allowed(self) -> bool: ...


Function = Callable[[FunctionScope, list[Any]], Any]


def type_name(value: Any) -> str:
    """ARM's name for a JSON value's type, for error messages."""
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int | float):
        return "Integer"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, dict):
        return "Object"
    return "Null"


def _argument_count(name: str, args: list[Any], minimum: int, maximum: int | None = None) -> None:
    if len(args) < minimum or (maximum is not None and len(args) > maximum):
        expected = str(minimum) if maximum == minimum else f"{minimum} to {maximum if maximum is not None else 'n'}"
        raise TemplateError(
            f"Unable to evaluate template language function '{name}': function requires {expected} argument(s) "
            f"while {len(args)} were provided."
        )


def _expect(name: str, value: Any, *types: type) -> Any:
    if isinstance(value, bool) and bool not in types:
        raise TemplateError(f"The template language function '{name}' does not accept an argument of type 'Boolean'.")
    if not isinstance(value, types):
        raise TemplateError(
            f"The template language function '{name}' expects its parameter to be of type "
            f"'{' or '.join(sorted({type_name(t()) for t in types}))}'. "
            f"The provided value is of type '{type_name(value)}'."
        )
    return value


def to_string(value: Any) -> str:
    """ARM's string(): JSON for objects/arrays, `True`/`False` for booleans."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _lookup(container: dict[str, Any], key: str) -> Any:
    """Case-insensitive property lookup, as ARM objects behave."""
    if key in container:
        return container[key]
    lowered = key.lower()
    for candidate, value in container.items():
        if candidate.lower() == lowered:
            return value
    raise KeyError(key)


def property_value(target: Any, name: str) -> Any:
    """`target.name` with ARM's error when the property does not exist."""
    if not isinstance(target, dict):
        raise TemplateError(
            f"The language expression property '{name}' can't be evaluated, property name must be a string "
            f"on an object; the target is of type '{type_name(target)}'."
        )
    try:
        return _lookup(target, name)
    except KeyError:
        available = ", ".join(f"'{key}'" for key in target)
        raise TemplateError(
            f"The language expression property '{name}' doesn't exist, available properties are {available}."
        ) from None


def index_value(target: Any, index: Any) -> Any:
    """`target[index]` for arrays (integer index) and objects (string key)."""
    if isinstance(target, list):
        if not isinstance(index, int) or isinstance(index, bool):
            raise TemplateError(f"The language expression array index '{index}' is not an integer.")
        if not 0 <= index < len(target):
            raise TemplateError(f"The language expression array index '{index}' is out of bounds.")
        return target[index]
    if isinstance(target, dict) and isinstance(index, str):
        return property_value(target, index)
    raise TemplateError(f"The language expression can't index a value of type '{type_name(target)}'.")


def _concat(scope: FunctionScope, args: list[Any]) -> Any:
    if args and all(isinstance(item, list) or item is None for item in args):
        return [element for item in args if item for element in item]
    return "".join(to_string(item) for item in args)


_FORMAT_ITEM = re.compile(r"\{\{|\}\}|\{(\d+)(?:,(-?\d+))?(?::([^}]*))?\}")


def _format_number(value: Any, specifier: str) -> str:
    kind, digits = specifier[:1].upper(), specifier[1:]
    if kind == "D" and isinstance(value, int):
        return str(value).zfill(int(digits) if digits else 0)
    if kind == "N" and isinstance(value, int | float):
        return f"{value:,.{int(digits) if digits else 2}f}"
    if kind == "X" and isinstance(value, int):
        return format(value, "x" if specifier[0] == "x" else "X").zfill(int(digits) if digits else 0)
    if specifier and set(specifier) <= {"0"} and isinstance(value, int):
        return str(value).zfill(len(specifier))
    return to_string(value)


def _format(scope: FunctionScope, args: list[Any]) -> str:
    _argument_count("format", args, 1)
    template = _expect("format", args[0], str)
    values = args[1:]

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "{{":
            return "{"
        if match.group(0) == "}}":
            return "}"
        position = int(match.group(1))
        if position >= len(values):
            raise TemplateError("The template language function 'format': index must be less than the argument count.")
        text = _format_number(values[position], match.group(3)) if match.group(3) else to_string(values[position])
        width = int(match.group(2)) if match.group(2) else 0
        return text.rjust(width) if width > 0 else text.ljust(-width)

    return _FORMAT_ITEM.sub(substitute, template)


def _split_type_and_names(function: str, args: list[Any]) -> tuple[list[str], str, list[str]]:
    """Arguments before the type (contains '/'), the type, and the names after it."""
    strings = [_expect(function, item, str) for item in args]
    for position, item in enumerate(strings):
        if "/" in item:
            names = strings[position + 1 :]
            expected = len(item.split("/")) - 1
            if len(names) != expected:
                raise TemplateError(
                    f"Unable to evaluate template language function '{function}': the type '{item}' requires "
                    f"'{expected}' resource name argument(s)."
                )
            return strings[:position], item, names
    raise TemplateError(f"Unable to evaluate template language function '{function}': the resource type is missing.")


def _resource_id(scope: FunctionScope, args: list[Any]) -> str:
    _argument_count("resourceId", args, 2)
    prefix, resource_type, names = _split_type_and_names("resourceId", args)
    subscription_id, resource_group = scope.subscription_id, scope.resource_group_name
    if len(prefix) == 1:
        resource_group = prefix[0]
    elif len(prefix) == 2:
        subscription_id, resource_group = prefix
    elif len(prefix) > 2:
        raise TemplateError("Unable to evaluate template language function 'resourceId': too many scope arguments.")
    return build_resource_id(resource_group_scope(subscription_id, resource_group), resource_type, names)


def _subscription_resource_id(scope: FunctionScope, args: list[Any]) -> str:
    _argument_count("subscriptionResourceId", args, 2)
    prefix, resource_type, names = _split_type_and_names("subscriptionResourceId", args)
    subscription_id = prefix[0] if prefix else scope.subscription_id
    return build_resource_id(f"/subscriptions/{subscription_id}", resource_type, names)


def _extension_resource_id(scope: FunctionScope, args: list[Any]) -> str:
    _argument_count("extensionResourceId", args, 3)
    base = _expect("extensionResourceId", args[0], str)
    _, resource_type, names = _split_type_and_names("extensionResourceId", args[1:])
    return build_resource_id(base, resource_type, names)


def _reference(scope: FunctionScope, args: list[Any]) -> Any:
    _argument_count("reference", args, 1, 3)
    target = _expect("reference", args[0], str)
    api_version = _expect("reference", args[1], str) if len(args) > 1 else None
    full = len(args) > 2 and isinstance(args[2], str) and args[2].lower() == "full"
    return scope.reference(target, api_version, full)


def _unique_string(scope: FunctionScope, args: list[Any]) -> str:
    _argument_count("uniqueString", args, 1)
    digest = hashlib.sha256("-".join(_expect("uniqueString", item, str) for item in args).encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    characters = []
    for _ in range(13):
        characters.append(UNIQUE_STRING_ALPHABET[number % 32])
        number //= 32
    return "".join(characters)


def _guid(scope: FunctionScope, args: list[Any]) -> str:
    _argument_count("guid", args, 1)
    return str(uuid.uuid5(GUID_NAMESPACE, "-".join(_expect("guid", item, str) for item in args)))


def _equals(scope: FunctionScope, args: list[Any]) -> bool:
    _argument_count("equals", args, 2, 2)
    return bool(args[0] == args[1] and type_name(args[0]) == type_name(args[1]))


def _boolean_operands(name: str, args: list[Any]) -> list[bool]:
    return [_expect(name, item, bool) for item in args]


def _empty(scope: FunctionScope, args: list[Any]) -> bool:
    _argument_count("empty", args, 1, 1)
    value = args[0]
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)


def _length(scope: FunctionScope, args: list[Any]) -> int:
    _argument_count("length", args, 1, 1)
    return len(_expect("length", args[0], str, list, dict))


def _contains(scope: FunctionScope, args: list[Any]) -> bool:
    _argument_count("contains", args, 2, 2)
    container, item = args
    if isinstance(container, str):
        return to_string(item) in container
    if isinstance(container, list):
        return item in container
    if isinstance(container, dict):
        return isinstance(item, str) and item.lower() in {key.lower() for key in container}
    raise TemplateError(f"The template language function 'contains' does not support type '{type_name(container)}'.")


def _deep_union(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    merged = dict(left)
    for key, value in right.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_union(merged[key], value)
        else:
            merged[key] = value
    return merged


def _union(scope: FunctionScope, args: list[Any]) -> Any:
    _argument_count("union", args, 1)
    if all(isinstance(item, dict) for item in args):
        merged: dict[str, Any] = {}
        for item in args:
            merged = _deep_union(merged, item)
        return merged
    if all(isinstance(item, list) for item in args):
        result: list[Any] = []
        for item in args:
            result.extend(element for element in item if element not in result)
        return result
    raise TemplateError("The template language function 'union' expects all arguments to be arrays or all objects.")


def _create_object(scope: FunctionScope, args: list[Any]) -> dict[str, Any]:
    if len(args) % 2:
        raise TemplateError("The template language function 'createObject' must have an even number of parameters.")
    return {_expect("createObject", args[index], str): args[index + 1] for index in range(0, len(args), 2)}


def _copy_index(scope: FunctionScope, args: list[Any]) -> int:
    _argument_count("copyIndex", args, 0, 2)
    loop_name: str | None = None
    offset = 0
    if args and isinstance(args[0], str):
        loop_name = args[0]
        if len(args) > 1:
            offset = _expect("copyIndex", args[1], int)
    elif args:
        offset = _expect("copyIndex", args[0], int)
    return scope.copy_index(loop_name) + offset


def _int(scope: FunctionScope, args: list[Any]) -> int:
    _argument_count("int", args, 1, 1)
    value = args[0]
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TemplateError(
            f"The template language function 'int' cannot convert '{to_string(value)}' to an integer."
        ) from None


def _bool(scope: FunctionScope, args: list[Any]) -> bool:
    _argument_count("bool", args, 1, 1)
    value = args[0]
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    raise TemplateError(f"The template language function 'bool' cannot convert '{to_string(value)}' to a boolean.")


def _json(scope: FunctionScope, args: list[Any]) -> Any:
    _argument_count("json", args, 1, 1)
    try:
        return json.loads(_expect("json", args[0], str))
    except json.JSONDecodeError as error:
        raise TemplateError(
            f"The template language function 'json' could not parse the argument: {error.msg}."
        ) from None


def _substring(scope: FunctionScope, args: list[Any]) -> str:
    _argument_count("substring", args, 2, 3)
    text = _expect("substring", args[0], str)
    start = _expect("substring", args[1], int)
    length = _expect("substring", args[2], int) if len(args) > 2 else len(text) - start
    if start < 0 or length < 0 or start + length > len(text):
        raise TemplateError(
            "The index and length parameters must refer to a location within the string. "
            f"The index parameter: '{start}', the length parameter: '{length}', the length of the string parameter: "
            f"'{len(text)}'."
        )
    return str(text[start : start + length])


def _split(scope: FunctionScope, args: list[Any]) -> list[str]:
    _argument_count("split", args, 2, 2)
    text = _expect("split", args[0], str)
    delimiters = [args[1]] if isinstance(args[1], str) else [_expect("split", item, str) for item in args[1]]
    return re.split("|".join(re.escape(item) for item in delimiters), text)


def _sequence_ends(name: str, args: list[Any], take_last: bool) -> Any:
    _argument_count(name, args, 1, 1)
    value = _expect(name, args[0], str, list)
    if not value:
        return "" if isinstance(value, str) else None
    return value[-1] if take_last else value[0]


def _take_or_skip(name: str, args: list[Any]) -> Any:
    _argument_count(name, args, 2, 2)
    value = _expect(name, args[0], str, list)
    count = max(0, _expect(name, args[1], int))
    return value[:count] if name == "take" else value[count:]


def _coalesce(scope: FunctionScope, args: list[Any]) -> Any:
    return next((item for item in args if item is not None), None)


def _uri(scope: FunctionScope, args: list[Any]) -> str:
    _argument_count("uri", args, 2, 2)
    return urljoin(str(_expect("uri", args[0], str)), str(_expect("uri", args[1], str)))


def _string_test(name: str, args: list[Any]) -> tuple[str, str]:
    _argument_count(name, args, 2, 2)
    # ARM compares these case-insensitively.
    return _expect(name, args[0], str).lower(), _expect(name, args[1], str).lower()


def _numbers_or_array(name: str, args: list[Any]) -> list[Any]:
    _argument_count(name, args, 1)
    values = args[0] if len(args) == 1 and isinstance(args[0], list) else args
    if not values:
        raise TemplateError(f"The template language function '{name}' requires at least one value.")
    return [_expect(name, item, int, float) for item in values]


def _arithmetic(name: str, args: list[Any]) -> int:
    _argument_count(name, args, 2, 2)
    left, right = (int(_expect(name, item, int)) for item in args)
    if name in ("div", "mod") and right == 0:
        raise TemplateError(f"The template language function '{name}' cannot divide by zero.")
    if name == "add":
        return left + right
    if name == "sub":
        return left - right
    if name == "mul":
        return left * right
    quotient = abs(left) // abs(right) * (1 if (left >= 0) == (right >= 0) else -1)
    return quotient if name == "div" else left - quotient * right


def _compare(name: str, args: list[Any]) -> bool:
    _argument_count(name, args, 2, 2)
    left, right = args
    if type_name(left) != type_name(right) or type_name(left) not in ("Integer", "String"):
        raise TemplateError(f"The template language function '{name}' expects two integers or two strings.")
    if name == "greater":
        return bool(left > right)
    if name == "less":
        return bool(left < right)
    if name == "greaterorequals":
        return bool(left >= right)
    return bool(left <= right)


def _utc_now(scope: FunctionScope, args: list[Any]) -> str:
    if not scope.utc_now_allowed():
        raise TemplateError(
            "The template function 'utcNow' is not expected at this location. It can only be used within the "
            "default value of a parameter."
        )
    _argument_count("utcNow", args, 0, 1)
    now = datetime.now(UTC)
    if not args or args[0] == "u":
        return now.strftime("%Y-%m-%d %H:%M:%SZ") if args else now.strftime("%Y%m%dT%H%M%SZ")
    # .NET custom format strings, the common tokens only.
    pattern = _expect("utcNow", args[0], str)
    for token, replacement in (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S")):
        pattern = pattern.replace(token, replacement)
    return now.strftime(pattern)


def _range(scope: FunctionScope, args: list[Any]) -> list[int]:
    _argument_count("range", args, 2, 2)
    start, count = (_expect("range", item, int) for item in args)
    if count < 0 or count > 10000:
        raise TemplateError("The template language function 'range' requires a count between 0 and 10000.")
    return list(range(start, start + count))


def _array(scope: FunctionScope, args: list[Any]) -> list[Any]:
    _argument_count("array", args, 1, 1)
    return args[0] if isinstance(args[0], list) else [args[0]]


def _list_keys(scope: FunctionScope, args: list[Any]) -> Any:
    # listKeys(resourceId, apiVersion): the provider's POST .../listKeys action, evaluated at deployment time.
    _argument_count("listKeys", args, 2, 2)
    resource_id = _expect("listKeys", args[0], str)
    api_version = _expect("listKeys", args[1], str)
    return scope.list_action(resource_id, "listKeys", api_version)


def _uri_component(scope: FunctionScope, args: list[Any]) -> str:
    _argument_count("uriComponent", args, 1, 1)
    # .NET's Uri.EscapeDataString: everything but the RFC 3986 unreserved characters is percent-encoded.
    return quote(to_string(args[0]) if not isinstance(args[0], str) else args[0], safe="-_.~")


def _index_of(scope: FunctionScope, args: list[Any]) -> int:
    text, item = _string_test("indexOf", args)
    return text.find(item)


FUNCTIONS: dict[str, Function] = {
    "parameters": lambda scope, args: scope.parameter(_expect("parameters", args[0], str)),
    "variables": lambda scope, args: scope.variable(_expect("variables", args[0], str)),
    "concat": _concat,
    "format": _format,
    "resourceid": _resource_id,
    "subscriptionresourceid": _subscription_resource_id,
    "extensionresourceid": _extension_resource_id,
    "reference": _reference,
    "resourcegroup": lambda scope, args: scope.resource_group_object(),
    "subscription": lambda scope, args: scope.subscription_object(),
    "tenant": lambda scope, args: {"tenantId": scope.tenant_id, "countryCode": "US", "displayName": ""},
    "deployment": lambda scope, args: scope.deployment_object(),
    "uniquestring": _unique_string,
    "guid": _guid,
    "tolower": lambda scope, args: _expect("toLower", args[0], str).lower(),
    "toupper": lambda scope, args: _expect("toUpper", args[0], str).upper(),
    "trim": lambda scope, args: _expect("trim", args[0], str).strip(),
    "equals": _equals,
    "not": lambda scope, args: not _boolean_operands("not", args[:1])[0],
    "and": lambda scope, args: all(_boolean_operands("and", args)),
    "or": lambda scope, args: any(_boolean_operands("or", args)),
    "empty": _empty,
    "length": _length,
    "contains": _contains,
    "union": _union,
    "createarray": lambda scope, args: list(args),
    "createobject": _create_object,
    "copyindex": _copy_index,
    "string": lambda scope, args: to_string(args[0]),
    "int": _int,
    "bool": _bool,
    "json": _json,
    "substring": _substring,
    "replace": lambda scope, args: _expect("replace", args[0], str).replace(
        _expect("replace", args[1], str), _expect("replace", args[2], str)
    ),
    "split": _split,
    "first": lambda scope, args: _sequence_ends("first", args, take_last=False),
    "last": lambda scope, args: _sequence_ends("last", args, take_last=True),
    "take": lambda scope, args: _take_or_skip("take", args),
    "skip": lambda scope, args: _take_or_skip("skip", args),
    "coalesce": _coalesce,
    "uri": _uri,
    "startswith": lambda scope, args: str.startswith(*_string_test("startsWith", args)),
    "endswith": lambda scope, args: str.endswith(*_string_test("endsWith", args)),
    "indexof": _index_of,
    "range": _range,
    "min": lambda scope, args: min(_numbers_or_array("min", args)),
    "max": lambda scope, args: max(_numbers_or_array("max", args)),
    "add": lambda scope, args: _arithmetic("add", args),
    "sub": lambda scope, args: _arithmetic("sub", args),
    "mul": lambda scope, args: _arithmetic("mul", args),
    "div": lambda scope, args: _arithmetic("div", args),
    "mod": lambda scope, args: _arithmetic("mod", args),
    "greater": lambda scope, args: _compare("greater", args),
    "less": lambda scope, args: _compare("less", args),
    "greaterorequals": lambda scope, args: _compare("greaterorequals", args),
    "lessorequals": lambda scope, args: _compare("lessorequals", args),
    "array": _array,
    "base64": lambda scope, args: base64.b64encode(_expect("base64", args[0], str).encode()).decode(),
    "null": lambda scope, args: None,
    "utcnow": _utc_now,
    "uricomponent": _uri_component,
    "uricomponenttostring": lambda scope, args: unquote(_expect("uriComponentToString", args[0], str)),
    "listkeys": _list_keys,
}

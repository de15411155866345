"""OpenAPI documentation that FastAPI cannot derive from a route's signature.

The webhook and the managed-application notification verify the caller before they parse anything, so their
bodies are not FastAPI parameters: `raw_json_body` documents such a body from the model the handler validates
it with. HTML pages whose parameter validation still answers JSON use `inline_schema` for that error body.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_LOCAL_REFERENCE = "#/$defs/"


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its nested models inlined, so it stands alone in any part of the document."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    definitions = schema.pop("$defs", {})
    inlined: dict[str, Any] = _inline(schema, definitions)
    return inlined


def raw_json_body(model: type[BaseModel], description: str) -> dict[str, Any]:
    """`openapi_extra=` for a route that validates its raw JSON body with `model`."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": inline_schema(model)}},
        }
    }


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    """Replace each `$ref` to a local definition with the definition itself (request models are not recursive)."""
    if isinstance(node, dict):
        reference = node.get("$ref")
        inlined = {key: _inline(value, definitions) for key, value in node.items() if key != "$ref"}
        if isinstance(reference, str) and reference.startswith(_LOCAL_REFERENCE):
            # Keywords beside the reference (a field's description) stay beside the inlined definition.
            return {**_inline(definitions[reference.removeprefix(_LOCAL_REFERENCE)], definitions), **inlined}
        return inlined if reference is None else {**inlined, "$ref": reference}
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    return node

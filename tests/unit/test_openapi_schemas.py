"""Request bodies that handlers read raw are documented from their models, standing alone in the document."""

from __future__ import annotations

import json
from typing import Any

from core.managed_apps.schemas import ManagedAppNotification
from core.subscriptions.schemas import WebhookPayload
from web.errors import ErrorResponse
from web.openapi_schemas import inline_schema, raw_json_body


def _references(node: Any) -> list[str]:
    text = json.dumps(node)
    return [part.split('"')[0] for part in text.split('"$ref": "')[1:]]


def test_a_raw_body_is_documented_with_its_nested_models_inlined() -> None:
    document = raw_json_body(WebhookPayload, "the operation")
    body = document["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert body["required"] is True
    assert _references(document) == []
    # The names Marketplace sends (aliases), the nested snapshot inlined, the action a closed set.
    assert {"subscriptionId", "action", "subscription"} <= set(schema["properties"])
    assert "ChangePlan" in json.dumps(schema["properties"]["action"])
    snapshot = next(option for option in schema["properties"]["subscription"]["anyOf"] if option.get("type") != "null")
    assert snapshot["properties"]["id"]["maxLength"] == 64


def test_keywords_beside_a_reference_survive_inlining() -> None:
    schema = inline_schema(ManagedAppNotification)
    assert _references(schema) == []
    assert schema["properties"]["plan"]["properties"]["publisher"]["maxLength"] == 128


def test_the_error_body_stands_alone() -> None:
    schema = inline_schema(ErrorResponse)
    assert _references(schema) == []
    assert schema["properties"]["error"]["required"] == ["code", "message", "details"]

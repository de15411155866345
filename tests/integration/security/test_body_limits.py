"""Oversized and deeply nested bodies are refused before any handler or JSON parser runs, on every route with a body.

Run against a real API process. A declared Content-Length above the limit and a chunked body that crosses
it both get 413; JSON nested deeper than the limit gets 400 (a body like `[[[[...` would otherwise make
Python's parser hit its recursion limit, a 500). Bodies exactly at the limits reach the handler, brackets in
JSON strings and in form fields are not nesting, and a refused webhook stores nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.db import Database
from tests.integration.lifecycle.conftest import ControlPlane
from tests.integration.lifecycle.marketplace_driver import Emulators
from tests.integration.security.routes import app_route_keys
from tests.integration.security.test_token_attacks import post_webhook, stored_webhooks, webhook_body

# Generous: the first test of the package waits for the control plane to start on a loaded machine.
pytestmark = [pytest.mark.broker, pytest.mark.timeout(150)]
CHUNK_BYTES = 64 * 1024
WEBHOOK = "/marketplace/webhook"


def limits(control_plane: ControlPlane) -> tuple[int, int]:
    """The size and depth limits the API process runs with."""
    return control_plane.settings.request_body_max_bytes, control_plane.settings.request_json_max_depth


def nested(depth: int) -> bytes:
    """A JSON array nested exactly `depth` levels deep."""
    return b"[" * depth + b"]" * depth


def chunks(body: bytes) -> Iterator[bytes]:
    """The body as a stream, so httpx sends it chunked without a Content-Length."""
    for start in range(0, len(body), CHUNK_BYTES):
        yield body[start : start + CHUNK_BYTES]


def post(base_url: str, path: str, content: bytes | Iterator[bytes], **headers: str) -> httpx.Response:
    return httpx.post(
        base_url + path, content=content, headers={"Content-Type": "application/json", **headers}, timeout=30
    )


def assert_too_large(response: httpx.Response, max_bytes: int, declared: int | None) -> None:
    assert response.status_code == 413, response.text[:300]
    details: dict[str, Any] = {"max_bytes": max_bytes}
    if declared is not None:
        details["content_length"] = declared
    assert response.json() == {
        "error": {
            "code": "PayloadTooLarge",
            "message": f"the request body is larger than {max_bytes} bytes",
            "details": details,
        }
    }


def assert_too_deep(response: httpx.Response, max_depth: int) -> None:
    assert response.status_code == 400, response.text[:300]
    assert response.json() == {
        "error": {
            "code": "BadRequest",
            "message": f"the JSON body nests deeper than {max_depth} levels",
            "details": {"max_depth": max_depth},
        }
    }


def stored_counts(database: Database) -> tuple[int, int, int, int]:
    """Refusals audited and the rows an accepted webhook creates: a body refused this early adds none of them."""
    stored = stored_webhooks(database)
    return len(stored.refusals), stored.inbound_events, stored.operations, stored.outbox_messages


def body_routes(control_plane: ControlPlane, database_url: str) -> list[str]:
    """Every route that takes a body, with a fresh id in each path parameter."""
    paths = []
    for key in sorted(app_route_keys(control_plane.settings, database_url)):
        method, path = key.split(" ", 1)
        if method in ("POST", "PUT", "PATCH"):
            parts = [str(uuid.uuid4()) if part.startswith("{") else part for part in path.split("/")]
            paths.append("/".join(parts))
    assert WEBHOOK in paths
    return paths


def test_every_route_with_a_body_refuses_oversized_and_deep_bodies(
    control_plane: ControlPlane, database_url: str
) -> None:
    max_bytes, max_depth = limits(control_plane)
    oversized = b" " * (max_bytes + 1)
    failures = []
    for path in body_routes(control_plane, database_url):
        try:
            assert_too_large(post(control_plane.base_url, path, oversized), max_bytes, declared=max_bytes + 1)
            assert_too_deep(post(control_plane.base_url, path, nested(max_depth + 1)), max_depth)
            # The streaming count is the same code on every route: one route per kind of caller shows it.
            if path == WEBHOOK or path.endswith(("/retry", "/sign-out")):
                assert_too_large(post(control_plane.base_url, path, chunks(oversized)), max_bytes, declared=None)
        except AssertionError as error:
            failures.append(f"{path}: {error}")
    assert failures == []


def test_every_route_with_a_body_refuses_nan_and_infinity(control_plane: ControlPlane, database_url: str) -> None:
    """Python's JSON parser reads NaN and Infinity; PostgreSQL's json columns refuse them (it was a 500)."""
    refusal = "NaN and Infinity are not JSON values; the body is not valid JSON"
    failures = []
    for path in body_routes(control_plane, database_url):
        for content in (b'{"value": NaN}', b'{"values": [1, -Infinity]}'):
            response = post(control_plane.base_url, path, content)
            if response.status_code != 400 or response.json()["error"]["message"] != refusal:
                failures.append(f"{path} {content!r}: {response.status_code} {response.text[:200]}")
    # Inside a string they are text like any other and reach the handler (the webhook's 401 here).
    assert post(control_plane.base_url, WEBHOOK, b'{"note": "NaN or Infinity"}').status_code == 401
    assert failures == []


def test_the_limits_are_exact(control_plane: ControlPlane) -> None:
    """At the limits the body reaches the handler (here: the webhook's 401 for a missing token)."""
    max_bytes, max_depth = limits(control_plane)
    document = json.dumps(webhook_body()).encode()
    at_limit = document + b" " * (max_bytes - len(document))
    for content in (at_limit, chunks(at_limit)):
        response = post(control_plane.base_url, WEBHOOK, content)
        assert response.status_code == 401, response.text[:300]
    assert_too_large(post(control_plane.base_url, WEBHOOK, at_limit + b" "), max_bytes, declared=max_bytes + 1)
    assert post(control_plane.base_url, WEBHOOK, nested(max_depth)).status_code == 401
    assert_too_deep(post(control_plane.base_url, WEBHOOK, nested(max_depth + 1)), max_depth)


def test_brackets_in_strings_and_form_fields_are_not_nesting(control_plane: ControlPlane, emulators: Emulators) -> None:
    _, max_depth = limits(control_plane)
    operator = emulators.control_plane_token(roles=["Operator"])
    deep_text = "[{" * (max_depth * 4)
    missing_cluster = str(uuid.uuid4())
    in_a_string = post(
        control_plane.base_url,
        f"/api/clusters/{missing_cluster}/retry",
        json.dumps({"reason": deep_text[:256]}).encode(),
        Authorization=f"Bearer {operator}",
    )
    assert in_a_string.status_code == 404, in_a_string.text  # the handler ran: no such cluster
    escaped_quotes = json.dumps({"reason": '\\"' + deep_text[:200]}).encode()
    answer = post(
        control_plane.base_url,
        f"/api/clusters/{missing_cluster}/retry",
        escaped_quotes,
        Authorization=f"Bearer {operator}",
    )
    assert answer.status_code == 404, answer.text
    form = httpx.post(
        f"{control_plane.base_url}/portal/sign-out", data={"csrf_token": deep_text}, follow_redirects=False, timeout=15
    )
    assert form.status_code == 401, form.text[:300]  # the handler ran: nobody is signed in


@pytest.mark.parametrize(
    ("content_type", "body_of"),
    [
        ("application/json", lambda depth: nested(depth)),
        ("text/plain", lambda depth: nested(depth)),
        ("application/json", lambda depth: json.dumps({**webhook_body(), "extra": json.loads(nested(depth))}).encode()),
    ],
    ids=["bare array", "declared as text", "inside a genuine webhook body"],
)
def test_a_deep_webhook_with_a_valid_token_is_refused_and_stores_nothing(
    content_type: str, body_of: Any, control_plane: ControlPlane, emulators: Emulators, database: Database
) -> None:
    """Deep enough to crash Python's JSON parser, were it to run: the webhook parses any body as JSON."""
    _, max_depth = limits(control_plane)
    before = stored_counts(database)
    body = body_of(max(max_depth + 1, 5000) if content_type == "text/plain" else max_depth + 1)
    response = post(
        control_plane.base_url,
        WEBHOOK,
        body,
        Authorization=f"Bearer {emulators.webhook_token()}",
        **{"Content-Type": content_type},
    )
    assert_too_deep(response, max_depth)
    assert stored_counts(database) == before
    assert httpx.get(f"{control_plane.base_url}/healthz", timeout=15).status_code == 200


def test_an_oversized_webhook_with_a_valid_token_stores_nothing(
    control_plane: ControlPlane, emulators: Emulators, database: Database
) -> None:
    max_bytes, _ = limits(control_plane)
    before = stored_counts(database)
    document = webhook_body()
    document["padding"] = "x" * max_bytes
    token = emulators.webhook_token()
    response = post_webhook(control_plane.base_url, token, document)
    assert_too_large(response, max_bytes, declared=len(json.dumps(document).encode()))
    assert stored_counts(database) == before

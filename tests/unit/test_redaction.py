"""What is redacted: secret query values, URL passwords, bearer tokens and JWTs, and secret-named fields."""

from __future__ import annotations

import json
import logging

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core.logging import JsonFormatter
from core.redaction import REDACTED, redact_text, redact_url, redact_value
from core.settings import Settings
from core.telemetry.tracing import RedactingSpanExporter, span_as_record
from portal.configuration_view import setting_lines

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJhcGkifQ.c2lnbmF0dXJl"


def test_oauth_and_marketplace_query_values_are_redacted_and_the_rest_kept() -> None:
    assert redact_url("https://cp.example/marketplace/landing?token=abc%2B%3D&plan=gold") == (
        f"https://cp.example/marketplace/landing?token={REDACTED}&plan=gold"
    )
    assert redact_url("/auth/callback?code=c0de&state=st4te&session_state=s") == (
        f"/auth/callback?code={REDACTED}&state={REDACTED}&session_state={REDACTED}"
    )
    assert redact_url("/managedapp/resource?sig=s1g") == f"/managedapp/resource?sig={REDACTED}"
    assert redact_url("/x?client_secret=a&api-key=b&db_password=c&page=2") == (
        f"/x?client_secret={REDACTED}&api-key={REDACTED}&db_password={REDACTED}&page=2"
    )


def test_connection_url_passwords_are_redacted_in_user_info_and_query() -> None:
    assert redact_url("postgresql://app:p%40ss@db:5432/cp?password=x&sslmode=require") == (
        f"postgresql://app:{REDACTED}@db:5432/cp?password={REDACTED}&sslmode=require"
    )
    assert redact_url("redis://:hunter22@cache:6379/0") == f"redis://:{REDACTED}@cache:6379/0"


def test_free_text_loses_named_values_bearer_tokens_and_jwts() -> None:
    text = f"GET https://x/landing?token=abc&q=1 failed; Authorization: Bearer {JWT}; id_token={JWT} amqp://u:pw@h//"
    redacted = redact_text(text)
    assert "abc" not in redacted
    assert JWT not in redacted
    assert ":pw@" not in redacted
    assert "q=1" in redacted
    assert "https://x/landing" in redacted


def test_structured_details_lose_secret_keys_but_keep_domain_codes_and_states() -> None:
    details = {"purchaseToken": "t0k", "code": "ValidationFailed", "state": "ready", "nested": [{"sig": "s"}]}
    assert redact_value(details) == {
        "purchaseToken": REDACTED,
        "code": "ValidationFailed",
        "state": "ready",
        "nested": [{"sig": REDACTED}],
    }


def test_spans_are_exported_without_secret_urls() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(memory)))
    with provider.get_tracer("test").start_as_current_span("GET /marketplace/landing") as span:
        span.set_attribute("http.url", "http://127.0.0.1/marketplace/landing?token=purchase-token")
        span.set_attribute("url.full", "http://127.0.0.1/auth/callback?code=auth-code&state=auth-state")
        span.set_attribute("http.target", "/managedapp/resource?sig=signature")
        span.set_attribute("url.query", "code=auth-code-2&state=auth-state-2")
        span.add_event("exception", {"exception.message": f"refused Bearer {JWT}"})
    record = json.dumps(span_as_record(memory.get_finished_spans()[0]))
    for secret in ("purchase-token", "auth-code", "auth-state", "signature", "auth-code-2", "auth-state-2", JWT):
        assert secret not in record
    assert "/marketplace/landing?token=[REDACTED]" in record


def test_log_lines_are_redacted_whatever_put_the_secret_there() -> None:
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "HTTP Request: GET %s", ("/x?code=c0de42",), None)
    record.url = "https://h/landing?token=t0ken42"
    line = JsonFormatter().format(record)
    assert "c0de42" not in line
    assert "t0ken42" not in line
    assert json.loads(line)["message"] == f"HTTP Request: GET /x?code={REDACTED}"


def test_the_configuration_view_hides_passwords_in_urls() -> None:
    settings = Settings(
        publisher_tenant_id="t",
        publisher_client_id="c",
        publisher_client_secret="s",
        database_url="postgresql://app:pw1@db/cp?password=pw2",
        broker_url="redis://:pw3@cache:6379/0",
        rate_limit_storage_url="redis://cache:6379/1?password=pw4",
    )
    endpoints, others = setting_lines(settings)
    shown = " ".join(line.value for line in endpoints + others)
    for password in ("pw1", "pw2", "pw3", "pw4"):
        assert password not in shown

"""W3C trace context round trip, and the JSON-lines span exporter's records."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from core.telemetry.tracing import JsonLinesSpanExporter, continued_trace, current_trace_ids, current_traceparent


def test_a_traceparent_taken_in_one_span_parents_spans_elsewhere(tmp_path: Path) -> None:
    spans_path = tmp_path / "spans.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(spans_path)))
    tracer = provider.get_tracer(__name__)

    assert current_traceparent() is None
    with tracer.start_as_current_span("request") as request_span:
        traceparent = current_traceparent()
        ids = current_trace_ids()
    assert traceparent is not None
    request_context = request_span.get_span_context()
    assert traceparent.split("-")[1] == format(request_context.trace_id, "032x")
    assert ids == (format(request_context.trace_id, "032x"), format(request_context.span_id, "016x"))

    # Later, in another context (the worker): the consumer's span continues the request's trace.
    with continued_trace(traceparent), tracer.start_as_current_span("consume"):
        pass
    with continued_trace(None), tracer.start_as_current_span("unrelated"):
        pass

    records = {record["name"]: record for record in map(json.loads, spans_path.read_text().splitlines())}
    assert records["consume"]["trace_id"] == records["request"]["trace_id"]
    assert records["consume"]["parent_span_id"] == records["request"]["span_id"]
    assert records["unrelated"]["trace_id"] != records["request"]["trace_id"]
    assert records["unrelated"]["parent_span_id"] is None

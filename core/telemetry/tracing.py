"""OpenTelemetry tracing: one tracer provider per process, an exporter chosen by settings, W3C trace context.

The trace context crosses the outbox as a W3C `traceparent` stored on the row, so the consumer's span
continues the trace of the request that enqueued the work: one purchase or operation is one trace.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import Status
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

from core.redaction import redact_text, redact_url
from core.settings import Settings

TRACEPARENT = "traceparent"
_propagator = TraceContextTextMapPropagator()
_configured_lock = threading.Lock()


class JsonLinesSpanExporter(SpanExporter):
    """Appends one JSON object per finished span to a file; several processes may share the file.

    Each span is written with one `write` of a whole line in append mode, so lines from different
    processes do not interleave.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write the spans as JSON lines."""
        lines = "".join(json.dumps(span_as_record(span), default=str) + "\n" for span in spans)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release: the file is opened per batch."""


class RedactingSpanExporter(SpanExporter):
    """Hands spans to another exporter with secret values replaced (core.redaction), whatever set them.

    Instrumentations record full URLs (`http.url`, `url.full`, `http.target`, ...) with their query, and
    exception events carry messages; the landing page's `?token=`, the sign-in callback's `?code=&state=` and
    the managed-app `?sig=` would otherwise reach every trace backend. Redacting at export covers every
    instrumentation, present and future, in one place.
    """

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export redacted copies of the spans."""
        return self.inner.export([redacted_span(span) for span in spans])

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self.inner.force_flush(timeout_millis)


def _redacted_attributes(attributes: Attributes) -> dict[str, object]:
    redacted: dict[str, object] = {}
    for key, value in (attributes or {}).items():
        if isinstance(value, str):
            # URLs are parsed (their query and user info); everything, `url.query` included, is also read as text.
            parsed = redact_url(value) if "url" in key or key.endswith(".target") else value
            redacted[key] = redact_text(parsed)
        elif isinstance(value, list | tuple):
            redacted[key] = [redact_text(item) if isinstance(item, str) else item for item in value]
        else:
            redacted[key] = value
    return redacted


def redacted_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of the span whose name, attributes, events and status description hold no secret value."""
    status = span.status
    if status.description:
        status = Status(status.status_code, redact_text(status.description))
    return ReadableSpan(
        name=redact_text(span.name),
        context=span.get_span_context(),
        parent=span.parent,
        resource=span.resource,
        attributes=_redacted_attributes(span.attributes),  # type: ignore[arg-type]
        events=[
            Event(event.name, _redacted_attributes(event.attributes), event.timestamp)  # type: ignore[arg-type]
            for event in span.events
        ],
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def span_as_record(span: ReadableSpan) -> dict[str, object]:
    """The fields of a span that tests and operators read: ids in hex, parent, kind, times and attributes."""
    span_context = span.get_span_context()
    assert span_context is not None
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": format(span_context.trace_id, "032x"),
        "span_id": format(span_context.span_id, "016x"),
        "parent_span_id": format(parent.span_id, "016x") if parent is not None else None,
        "kind": span.kind.name,
        "service": span.resource.attributes.get("service.name"),
        "instance": span.resource.attributes.get("service.instance.id"),
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
    }


def spans_exported(settings: Settings) -> bool:
    """True when the settings send spans somewhere: an exporter is named (OTLP also needs its endpoint).

    Instrumentation of the web framework, Celery and outgoing HTTP is installed only then: unexported spans
    would cost CPU on every request, task and call for nothing.
    """
    if settings.telemetry_traces_exporter == "otlp":
        return bool(settings.telemetry_otlp_endpoint)
    return settings.telemetry_traces_exporter != "none"


def build_span_exporter(settings: Settings) -> SpanExporter | None:
    """The exporter the settings name, or None when traces are not exported."""
    if not spans_exported(settings):
        return None
    return RedactingSpanExporter(_exporter_named(settings))


def _exporter_named(settings: Settings) -> SpanExporter:
    choice = settings.telemetry_traces_exporter
    if choice == "console":
        return ConsoleSpanExporter()
    if choice == "jsonl":
        return JsonLinesSpanExporter(settings.telemetry_traces_path or settings.data_dir / "traces.jsonl")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.telemetry_otlp_endpoint)


def configure_tracing(settings: Settings, component: str) -> TracerProvider:
    """Install this process's tracer provider once; instrument httpx and the Azure SDKs when spans are exported.

    A forked child (a prefork worker) keeps the provider it inherited; the SDK restarts batch threads after fork.
    """
    with _configured_lock:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            return current
        exporter = build_span_exporter(settings)
        provider = TracerProvider(
            resource=Resource.create(
                {"service.name": settings.telemetry_service_name, "service.instance.id": f"{component}-{os.getpid()}"}
            ),
            # With nowhere to send spans, recording them would only cost CPU on every request and task.
            sampler=None if exporter is not None else ALWAYS_OFF,
        )
        if exporter is not None:
            # Local files are written synchronously so a span is on disk when its request returns.
            processor = SimpleSpanProcessor(exporter) if settings.telemetry_traces_exporter == "jsonl" else None
            provider.add_span_processor(processor or BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        if exporter is not None:
            _instrument_outgoing_http()
        return provider


def _instrument_outgoing_http() -> None:
    from azure.core.settings import settings as azure_settings
    from azure.core.tracing.ext.opentelemetry_span import OpenTelemetrySpan
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
    # Azure SDK calls (ARM, Logs Ingestion, Blob) become spans of the current trace.
    azure_settings.tracing_implementation = OpenTelemetrySpan


def tracer(name: str) -> trace.Tracer:
    """A tracer for one module."""
    return trace.get_tracer(name)


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, or None outside a recorded trace."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(TRACEPARENT)


@contextmanager
def continued_trace(traceparent: str | None) -> Iterator[None]:
    """Make `traceparent` the parent of spans started in the block (no-op when None)."""
    if not traceparent:
        yield
        return
    token = otel_context.attach(_propagator.extract({TRACEPARENT: traceparent}))
    try:
        yield
    finally:
        otel_context.detach(token)


def current_trace_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) in hex of the current recording span, for log lines."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")

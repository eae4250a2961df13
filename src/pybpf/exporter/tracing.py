"""``tracing.spans``: ring buffer records become OpenTelemetry spans, exported over OTLP/HTTP.

A record's bytes are decoded with the span's labels. Labels with these names make the span
itself (the rest become string attributes, with ``ebpf_exporter.config``): ``trace_id``
(16 bytes, hex), ``span_id`` and ``parent_span_id`` (8 bytes, hex; zero: generated / none),
``span_monotonic_timestamp_ns`` (the kernel's ``bpf_ktime_get_ns()`` at the start),
``span_duration_ns`` and ``span_name`` (else the span's ``name``, else its ring buffer's).
Each ``service`` has its own tracer provider (resource ``service.name``); all share one
batch processor and its OTLP exporter (endpoint given, else the standard
``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` variables).
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Optional

from .config import Span

RESERVED = ("trace_id", "span_id", "parent_span_id", "span_monotonic_timestamp_ns",
            "span_duration_ns", "span_name")


def endpoint_configured(endpoint: Optional[str]) -> bool:
    return bool(endpoint or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or
                os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def ktime_to_epoch_ns(ktime_ns: int) -> int:
    """A CLOCK_MONOTONIC time (bpf_ktime_get_ns) as nanoseconds since the epoch."""
    return time.time_ns() + ktime_ns - time.monotonic_ns()


class SpanSink:
    """Turns decoded span labels into OpenTelemetry spans."""

    def __init__(self, endpoint: Optional[str] = None) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

        class PresetIds(IdGenerator):
            """Ids the record gives (per thread, used once), random ones otherwise."""

            def __init__(self) -> None:
                self.local = threading.local()
                self.random = RandomIdGenerator()

            def generate_span_id(self) -> int:
                value = getattr(self.local, "span_id", 0)
                self.local.span_id = 0
                return value or self.random.generate_span_id()

            def generate_trace_id(self) -> int:
                value = getattr(self.local, "trace_id", 0)
                self.local.trace_id = 0
                return value or self.random.generate_trace_id()

        self.ids = PresetIds()
        self.processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint) if endpoint
                                            else OTLPSpanExporter())
        self.providers: dict[str, Any] = {}

    def tracer(self, service: str) -> Any:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        service = service or os.environ.get("OTEL_SERVICE_NAME", "") or "ebpf_exporter"
        provider = self.providers.get(service)
        if provider is None:
            provider = TracerProvider(resource=Resource.create({"service.name": service}),
                                      id_generator=self.ids, shutdown_on_exit=False)
            provider.add_span_processor(self.processor)
            self.providers[service] = provider
        return provider.get_tracer("pybpf.exporter")

    def emit(self, config_name: str, span: Span, values: tuple[str, ...]) -> None:
        """One span from a record's label values (ValueError if an id or number is malformed)."""
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
        name = span.name or span.ringbuf
        trace_id = span_id = parent_id = 0
        start = time.time_ns()
        duration = 0
        attributes = {}
        for label, value in zip(span.labels, values):
            key = label.name
            if key == "trace_id":
                trace_id = _hex_id(value, 16, key)
            elif key == "span_id":
                span_id = _hex_id(value, 8, key)
            elif key == "parent_span_id":
                parent_id = _hex_id(value, 8, key)
            elif key == "span_monotonic_timestamp_ns":
                start = ktime_to_epoch_ns(_uint(value, key))
            elif key == "span_duration_ns":
                duration = _uint(value, key)
            elif key == "span_name":
                name = value
            else:
                attributes[key] = value
        attributes["ebpf_exporter.config"] = config_name
        context = None
        if trace_id and parent_id:
            context = trace.set_span_in_context(NonRecordingSpan(SpanContext(
                trace_id, parent_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))))
        else:
            self.ids.local.trace_id = trace_id
        self.ids.local.span_id = span_id
        otel_span = self.tracer(span.service).start_span(name, context=context, start_time=start,
                                                         attributes=attributes)
        otel_span.end(end_time=start + duration)

    def close(self) -> None:
        """Export what is queued, then stop the exporter."""
        self.processor.force_flush()
        self.processor.shutdown()


def _hex_id(value: str, size: int, key: str) -> int:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{key} {value!r} is not hex") from None
    if len(raw) != size:
        raise ValueError(f"{key} {value!r} is not {size} bytes")
    return int.from_bytes(raw, "big")


def _uint(value: str, key: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{key} {value!r} is not an unsigned integer") from None

"""Building real OTLP export requests with the OpenTelemetry SDK, and posting them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import fulfillwatch.instrumentation as fw
from fulfillwatch.instrumentation import _runtime

PROTOBUF = "application/x-protobuf"


@contextlib.contextmanager
def recorded_spans(service: str = "shop") -> Iterator[InMemorySpanExporter]:
    """Configure the instrumentation on a private SDK provider that keeps spans in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    fw.init(tracer_provider=provider, tracked_event_types="*")
    try:
        yield exporter
    finally:
        _runtime.reset()
        provider.shutdown()


def encode(spans: Sequence[ReadableSpan]) -> bytes:
    """The protobuf ExportTraceServiceRequest the SDK's OTLP exporter would send."""
    return encode_spans(spans).SerializeToString()


def post(url: str, body: bytes, content_type: str = PROTOBUF, **headers: str) -> httpx.Response:
    """POST a body to ``{url}/v1/traces``."""
    return httpx.post(
        f"{url}/v1/traces",
        content=body,
        headers={"Content-Type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}},
        timeout=30,
    )


def record_scenario(event_id: str, scenario: str, error: BaseException | None = None, **receipt: object) -> None:
    """A receipt, then what ``scenario`` says: ``failed`` (a failure with ``error``),
    ``skipped``, ``healthy`` (a success) or ``missing`` (no result)."""
    handle = fw.record_receipt(event_id, **receipt)  # type: ignore[arg-type]
    if scenario == "failed":
        fw.record_result(event_id, "failure", error=error, receipt=handle)
    elif scenario == "skipped":
        fw.record_result(event_id, "skipped", receipt=handle)
    elif scenario == "healthy":
        fw.record_result(event_id, "success", receipt=handle)
    elif scenario != "missing":
        raise ValueError(f"unknown scenario {scenario!r}")

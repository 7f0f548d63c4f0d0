"""Choosing the TracerProvider that carries fulfillment spans.

The app's own provider is reused whenever one is installed, so receipts and results also reach
the app's existing exporters (Jaeger, Honeycomb, ...). Only an app with no tracing at all gets a
private provider, built from the standard ``OTEL_*`` variables; the SDK and the OTLP exporter
are imported here and nowhere else, and only then.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry import trace

_logger = logging.getLogger("fulfillwatch.instrumentation")


def app_provider() -> Any | None:
    """The provider the app installed globally, or ``None`` when it installed none."""
    current = trace.get_tracer_provider()
    if isinstance(current, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    return current


def create_private_provider(service_name: str | None, ingest_key: str | None = None) -> Any:
    """A provider exporting over OTLP/HTTP, configured by ``OTEL_*`` variables.

    Honours ``OTEL_SDK_DISABLED`` and ``OTEL_TRACES_EXPORTER=none``; the exporter reads
    ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``, ``..._HEADERS``, ``..._TIMEOUT`` and
    ``..._COMPRESSION`` itself. ``ingest_key`` (``FULFILLWATCH_INGEST_KEY``) is sent as
    ``Authorization: Bearer <key>``, which Fulfillwatch's receiver requires. The SDK's
    ``BatchSpanProcessor`` exports from a background thread, so recording a span never waits on
    the network, and the SDK flushes it at exit.
    """
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        _logger.info("OTEL_SDK_DISABLED=true: fulfillment spans are not exported")
        return trace.NoOpTracerProvider()
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {SERVICE_NAME: service_name} if service_name else {}
    provider = TracerProvider(resource=Resource.create(attributes))
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if exporters == "none":
        _logger.info("OTEL_TRACES_EXPORTER=none: fulfillment spans are not exported")
        return provider
    if exporters not in ("otlp", ""):
        _logger.warning(
            "OTEL_TRACES_EXPORTER=%s is not supported by fulfillwatch's own provider; using otlp",
            exporters,
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    headers = {"authorization": f"Bearer {ingest_key}"} if ingest_key else None
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(headers=headers)))
    return provider

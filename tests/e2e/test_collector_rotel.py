"""Through a real OpenTelemetry collector: app (SDK, OTLP/HTTP exporter) → Rotel → ``fulfillwatch
serve`` → incidents.

Rotel (``pip install rotel``, Apache-2.0) is a collector shipped as a wheel; CI cannot run the
contrib collector's container, Rotel runs as a plain process. Its PyPI build has one traces
exporter, so here it forwards every span to Fulfillwatch, whose receiver keeps the fulfillment
spans and counts the others (``otel-collector.yaml`` shows the contrib collector splitting
them between Jaeger and Fulfillwatch). The app is started while Fulfillwatch is down: the
collector's retries deliver the spans once it is up — the outage loses nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import fulfillwatch.instrumentation as fw
from examples.processes import Child
from fulfillwatch.instrumentation import _runtime
from support.serve import ROOT, ServeProcess, free_port, wait_for


def _rotel_agent() -> str:
    import rotel

    return str(Path(rotel.__file__).with_name("rotel-agent"))


@pytest.fixture
def rotel(tmp_path: Path) -> Iterator[tuple[Child, str, ServeProcess]]:
    """Rotel forwarding to a ``serve`` that is not started yet."""
    server = ServeProcess(data_dir=tmp_path / "data", log_path=tmp_path / "serve.log")
    http_port, grpc_port = free_port(), free_port()
    collector = Child(
        "rotel",
        [
            _rotel_agent(),
            "start",
            "--otlp-http-endpoint",
            f"127.0.0.1:{http_port}",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{grpc_port}",
            "--exporter",
            "otlp",
            "--otlp-exporter-protocol",
            "http",
            "--otlp-exporter-endpoint",
            server.otlp_url,
            # Fulfillwatch may be down for a while: keep retrying, soon.
            "--otlp-exporter-retry-initial-backoff",
            "200ms",
            "--otlp-exporter-retry-max-backoff",
            "1s",
            "--otlp-exporter-retry-max-elapsed-time",
            "120s",
            "--batch-timeout",
            "100ms",
            "--pid-file",
            str(tmp_path / "rotel.pid"),
            "--log-file",
            str(tmp_path / "rotel-agent.log"),
        ],
        # The collector carries the project's ingest key (an env var keeps it off the command line).
        {
            **os.environ,
            "NO_COLOR": "1",
            "ROTEL_OTLP_EXPORTER_CUSTOM_HEADERS": f"authorization=Bearer {server.ingest_key}",
        },
        tmp_path / "rotel.log",
        ROOT,
    ).start()
    wait_for(lambda: "Starting Rotel" in collector.log() or not collector.alive(), timeout=30, what="Rotel")
    assert collector.alive(), collector.log()
    try:
        yield collector, f"http://127.0.0.1:{http_port}/v1/traces", server
    finally:
        collector.stop()
        if server.process is not None:
            assert server.stop() == 0, server.log()


def test_spans_reach_fulfillwatch_through_the_collector_and_become_incidents(
    rotel: tuple[Child, str, ServeProcess],
) -> None:
    collector, endpoint, server = rotel
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=100))
    fw.init(tracer_provider=provider)
    prefix = f"evt_rotel{os.getpid()}_"
    try:
        failed = fw.record_receipt(prefix + "failed", event_type="invoice.paid", timeout=600)
        fw.record_result(prefix + "failed", "failure", error=LookupError("no tenant row"), receipt=failed)
        fw.record_receipt(prefix + "missing", event_type="checkout.session.completed", timeout=1)
        healthy = fw.record_receipt(prefix + "healthy", event_type="invoice.paid", timeout=600)
        fw.record_result(prefix + "healthy", "success", receipt=healthy)
        with provider.get_tracer("shop").start_as_current_span("POST /stripe/webhook"):
            pass  # the app's own span: through the collector too, ignored by Fulfillwatch
        assert provider.force_flush(10_000)  # accepted by the collector while Fulfillwatch is down
    finally:
        _runtime.reset()
        provider.shutdown()

    server.start()  # Fulfillwatch comes up; the collector's retries deliver

    def incidents() -> dict[str, str] | None:
        with server.client() as client:
            items = client.get("/api/incidents", params={"limit": 100}).json()["items"]
        found = {item["stripe_event_id"]: item["kind"] for item in items if item["stripe_event_id"].startswith(prefix)}
        return found if len(found) == 2 else None

    found = wait_for(incidents, timeout=90, interval=0.5, what="incidents from spans sent through Rotel")
    assert found == {prefix + "failed": "result_failed", prefix + "missing": "result_missing"}
    with server.client() as client:
        ingest = client.get("/api/health").json()["ingest"]
    assert ingest["spans_ignored"] >= 1, ingest  # the HTTP span came through and was left alone
    assert collector.alive()

"""A customer app for the end-to-end tests: real OpenTelemetry SDK, real OTLP, one ``init()``.

Run as a separate process by the tests::

    python tests/apps/shop_app.py SCENARIO --prefix P [--count N] [--timeout S] [--spans-file F]

Scenarios (each event is a fixture event from ``examples/events/`` with id ``evt_<P><n>``):

* ``failed``   — receipt, then the job raises ``TenantNotFound`` → a failure result;
* ``missing``  — receipt only (the job is lost);
* ``success``  — a success result only (e.g. a late run of a lost job);
* ``skipped``  — receipt, then a ``skipped`` result only (the idempotency bug);
* ``healthy``  — receipt and a success result;
* ``app-provider`` — like ``failed``, but the app installs its own ``TracerProvider`` first,
  with an OTLP exporter *and* a JSON-lines file exporter (its "existing backend", ``--spans-file``).

It prints one JSON line with the event ids, then flushes and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from examples.traffic.generator import fresh_event, load_templates  # noqa: E402


class TenantNotFound(LookupError):
    """The account row does not exist yet."""


def _install_app_provider(spans_file: Path) -> None:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult

    class JsonLinesExporter(SpanExporter):
        """The app's 'existing tracing backend': one JSON object per span in a file."""

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            with spans_file.open("a") as out:
                for span in spans:
                    out.write(json.dumps({"name": span.name, "attributes": dict(span.attributes or {})}) + "\n")
            return SpanExportResult.SUCCESS

    provider = TracerProvider(resource=Resource.create({"service.name": "shop-with-own-tracing"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter()))
    trace.set_tracer_provider(provider)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=None, help="receipt deadline, seconds")
    parser.add_argument("--spans-file", type=Path)
    args = parser.parse_args()

    import fulfillwatch.instrumentation as fw

    if args.scenario == "app-provider":
        _install_app_provider(args.spans_file)
    fw.init(service_name=os.environ.get("OTEL_SERVICE_NAME", "shop"), tracked_event_types="*")

    templates = load_templates()
    events = [fresh_event(templates[i % len(templates)], args.prefix, i) for i in range(args.count)]
    for event in events:
        receipt = fw.record_receipt(event, timeout=args.timeout).carrier() if args.scenario != "success" else None
        if args.scenario in ("failed", "app-provider"):
            try:
                with fw.fulfillment(event["id"], receipt=receipt, attempt=1):
                    raise TenantNotFound(f"no tenant for {event['data']['object'].get('customer')}")
            except TenantNotFound:
                pass
        elif args.scenario in ("healthy", "success"):
            with fw.fulfillment(event["id"], receipt=receipt, attempt=1, event_type=event["type"]):
                pass
        elif args.scenario == "skipped":
            fw.record_result(event["id"], "skipped", receipt=receipt)
    print(json.dumps({"event_ids": [event["id"] for event in events]}), flush=True)
    if not fw.force_flush(30_000):
        sys.exit("spans were not flushed")
    if args.scenario == "app-provider":
        from opentelemetry import trace

        trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()

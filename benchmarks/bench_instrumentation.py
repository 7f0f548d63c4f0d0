"""Cost of the instrumentation in the app: one event's receipt + result vs two bare SDK spans.

Both sides use the real SDK with a ``BatchSpanProcessor`` (its export goes to an exporter that
drops spans, so the network is not what is measured). The candidate is what an app calls:
``record_receipt(event)`` in the webhook and a ``with fulfillment(...)`` block in the worker
(with the receipt's carrier, so the result span links to the receipt). The baseline is two
spans started and ended with the SDK tracer, carrying the same attributes.
Times are the CPU time of the calling thread (median of interleaved rounds).
Target: candidate <= 1.5 x baseline.

The parts of the candidate are timed in the same rounds, so a reader can tell which one moved
when the ratio does: an SDK span alone (with a receipt's attributes, and a result's), reading
the event, the receipt call, its carrier, a result without and with the receipt's link.

    python benchmarks/bench_instrumentation.py [--events 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fulfillwatch.instrumentation as fw
from benchmarks._report import report
from examples.traffic.generator import fresh_event, load_templates
from fulfillwatch.instrumentation import vocabulary as v
from fulfillwatch.instrumentation._events import event_info

TARGET = 1.5


class DropExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter()))  # SDK defaults
    fw.init(tracer_provider=provider)
    tracer = provider.get_tracer("baseline")
    template = fresh_event(load_templates()[0], "bench", 0)
    # Shallow copies: a distinct id per event without 20k copies of the payload in the heap.
    events = [{**template, "id": f"evt_bench{n:08d}"} for n in range(args.events)]
    # Long-lived setup objects go to the permanent generation, as an app's would be old: the
    # garbage collector then sees what the code under test allocates, not the fixtures.
    gc.collect()
    gc.freeze()

    receipt_attributes = {
        v.STRIPE_EVENT_ID: "evt_x",
        v.STRIPE_EVENT_TYPE: template["type"],
        v.STRIPE_LIVEMODE: False,
        v.STRIPE_CUSTOMER: "cus_x",
        v.STRIPE_AMOUNT: 2000,
        v.STRIPE_CURRENCY: "usd",
        v.STRIPE_EVENT_CREATED: 1,
        v.FULFILLMENT_TIMEOUT_S: 1800,
        v.FULFILLMENT_DUE_AT: "2026-01-01T00:00:00.000Z",
    }

    def baseline() -> None:
        for event in events:
            tracer.start_span(v.RECEIPT_SPAN, attributes={**receipt_attributes, v.STRIPE_EVENT_ID: event["id"]}).end()
            result = tracer.start_span(v.RESULT_SPAN, attributes={**receipt_attributes, v.STRIPE_EVENT_ID: event["id"]})
            result.set_attribute(v.FULFILLMENT_OUTCOME, "success")
            result.end()

    def candidate() -> None:
        for event in events:
            carrier = fw.record_receipt(event).carrier()
            with fw.fulfillment(event["id"], receipt=carrier):
                pass

    handle = fw.record_receipt(events[0])
    carrier = handle.carrier()
    receipt_span_attributes = {
        **event_info(template).span_attributes(),
        v.FULFILLMENT_TIMEOUT_S: 1800,
        v.FULFILLMENT_DUE_AT: "2026-01-01T00:00:00Z",
    }

    def sdk_receipt_span() -> None:
        for event in events:
            tracer.start_span(
                v.RECEIPT_SPAN, attributes={**receipt_span_attributes, v.STRIPE_EVENT_ID: event["id"]}
            ).end()

    def sdk_result_span() -> None:
        for event in events:
            result = tracer.start_span(v.RESULT_SPAN, attributes={v.STRIPE_EVENT_ID: event["id"]})
            result.set_attribute(v.FULFILLMENT_OUTCOME, "success")
            result.end()

    def read_event() -> None:
        for event in events:
            event_info(event)

    def receipt_only() -> None:
        for event in events:
            fw.record_receipt(event)

    def carrier_only() -> None:
        for _ in events:
            handle.carrier()

    def result_unlinked() -> None:
        for event in events:
            with fw.fulfillment(event["id"], event_type=template["type"]):
                pass

    def result_linked() -> None:
        for event in events:
            with fw.fulfillment(event["id"], receipt=carrier):
                pass

    parts: dict[str, Callable[[], None]] = {
        "sdk_span_receipt_attributes": sdk_receipt_span,
        "sdk_span_result_attributes": sdk_result_span,
        "read_event": read_event,
        "record_receipt": receipt_only,
        "carrier": carrier_only,
        "fulfillment_without_receipt": result_unlinked,
        "fulfillment_with_receipt_link": result_linked,
    }

    def timed(function: Callable[[], None]) -> float:
        # CPU time of the calling thread: what the app's request/worker thread pays. The BSP's
        # export thread runs beside it (and here only drops spans).
        provider.force_flush()
        started = time.thread_time()
        function()
        return time.thread_time() - started

    timed(baseline), timed(candidate)  # warm-up
    base_runs, cand_runs = [], []
    part_runs: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(args.rounds):  # interleaved, so drift affects all alike
        base_runs.append(timed(baseline))
        cand_runs.append(timed(candidate))
        for name, part in parts.items():
            part_runs[name].append(timed(part))
    # Medians of interleaved rounds (the ratio of the fastest rounds is reported too).
    base, cand = statistics.median(base_runs), statistics.median(cand_runs)
    result = {
        "events": args.events,
        "rounds": args.rounds,
        "baseline_us_per_event": round(base / args.events * 1e6, 2),
        "candidate_us_per_event": round(cand / args.events * 1e6, 2),
        "ratio": round(cand / base, 3),
        "fastest_round_ratio": round(min(cand_runs) / min(base_runs), 3),
        "target_ratio": TARGET,
        "parts_us_per_event": {
            name: round(statistics.median(runs) / args.events * 1e6, 2) for name, runs in part_runs.items()
        },
    }
    costs = result["parts_us_per_event"]
    result["derived_us_per_event"] = {
        # what Fulfillwatch adds around the SDK's own span work
        "receipt_beyond_its_span": round(costs["record_receipt"] - costs["sdk_span_receipt_attributes"], 2),
        "result_beyond_its_span": round(costs["fulfillment_without_receipt"] - costs["sdk_span_result_attributes"], 2),
        "link_to_receipt": round(costs["fulfillment_with_receipt_link"] - costs["fulfillment_without_receipt"], 2),
    }
    result["pass"] = result["ratio"] <= TARGET
    report(result, args.json)
    provider.shutdown()


if __name__ == "__main__":
    main()

"""Reading an existing ``otel_traces`` table (the Collector's ClickHouse exporter) instead of
receiving spans: the exporter's own table on the real ClickHouse engine (chDB), rows written
as the exporter writes them from real SDK spans, then the engine's importer and detection.

Only the Collector is not run here (its ClickHouse exporter needs a ClickHouse server, none
can run in CI): its rows are produced by ``support.otel_traces.exporter_rows`` following the
exporter's code.
"""

from __future__ import annotations

import os
from datetime import datetime

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import fulfillwatch.instrumentation as fw
from fulfillwatch.collector_processor.store import Store
from fulfillwatch.incident_engine.detection.engine import Engine, EngineSettings
from fulfillwatch.incident_engine.incidents.log_reads import IncidentFilter, list_incidents
from fulfillwatch.incident_engine.settings import SettingsError, load_settings
from fulfillwatch.incident_engine.sources.otel_traces import OtelTracesImporter
from support.otel_traces import create_otel_traces, exporter_rows, insert_rows
from support.otlp import recorded_spans
from support.serve import wait_for


class TenantNotFound(LookupError):
    pass


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _engine(store: Store) -> tuple[Engine, OtelTracesImporter]:
    importer = OtelTracesImporter(store, "otel_traces", default_timeout_s=1800, overlap_s=300)
    engine = Engine(store, EngineSettings(interval_s=0.2, ingest_overlap_s=1), importers=[importer])
    return engine, importer


def _incidents(store: Store, prefix: str) -> dict[str, tuple[str, str]]:
    page = list_incidents(store.client("test"), IncidentFilter(), limit=500, offset=0)
    return {
        item.identity.stripe_event_id: (item.kind, item.state.value)
        for item in page.items
        if item.identity.stripe_event_id.startswith(prefix)
    }


def _counts(store: Store, prefix: str) -> tuple[int, int]:
    client = store.client("test")
    signals = client.query(
        "SELECT count() FROM fw_signals FINAL WHERE startsWith(stripe_event_id, {p:String})", parameters={"p": prefix}
    ).result_rows[0][0]
    log_rows = client.query(
        "SELECT count() FROM fw_incident_log WHERE startsWith(stripe_event_id, {p:String})", parameters={"p": prefix}
    ).result_rows[0][0]
    return int(signals), int(log_rows)


def test_incidents_come_from_the_exporters_table_once_each(store: Store) -> None:
    prefix = f"evt_ot{os.getpid()}_"
    client = store.client("test")
    create_otel_traces(client)
    with recorded_spans(service="shop") as spans:
        failed = fw.record_receipt(prefix + "failed", event_type="invoice.paid", timeout=600)
        fw.record_result(prefix + "failed", "failure", error=TenantNotFound("no tenant row"), receipt=failed)
        fw.record_receipt(prefix + "missing", event_type="invoice.paid", timeout=1)
        healthy = fw.record_receipt(prefix + "healthy", event_type="checkout.session.completed", timeout=600)
        fw.record_result(prefix + "healthy", "success", receipt=healthy)
        fw.record_receipt(prefix + "only_skipped", event_type="invoice.paid", timeout=1)
        fw.record_result(prefix + "only_skipped", "skipped")
        first_batch = exporter_rows(spans.get_finished_spans())
    # Spans of other code: an HTTP span (not a fulfillment span: ignored), and a hand-made
    # result with only an error status and no outcome attribute, as written by an older
    # exporter (STATUS_CODE_ERROR).
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "legacy"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("legacy")
    with tracer.start_as_current_span("GET /healthz"):
        pass
    first_batch += exporter_rows(exporter.get_finished_spans())
    exporter.clear()
    with tracer.start_as_current_span("fulfillment.result") as span:
        span.set_attribute("stripe.event.id", prefix + "legacy")
        span.set_status(StatusCode.ERROR, "boom")
    legacy = exporter_rows(exporter.get_finished_spans(), {StatusCode.ERROR: "STATUS_CODE_ERROR"})
    insert_rows(client, first_batch + legacy)

    engine, importer = _engine(store)

    def detected() -> dict[str, tuple[str, str]] | None:
        engine.tick()
        found = _incidents(store, prefix)
        return found if len(found) == 4 else None

    found = wait_for(detected, timeout=30, interval=0.3, what="incidents from otel_traces")
    assert found == {
        prefix + "failed": ("result_failed", "open"),
        prefix + "missing": ("result_missing", "open"),
        prefix + "only_skipped": ("duplicate_suppressed", "open"),
        prefix + "legacy": ("result_failed", "open"),
    }
    assert importer.position_ns() > 0
    before = _counts(store, prefix)
    assert before[0] == 8  # 4 receipts + 4 results; the HTTP span is not a signal

    # The exporter retries a batch (the same rows again), and the engine restarts.
    insert_rows(client, first_batch)
    engine, importer = _engine(store)
    for _ in range(3):
        engine.tick()
    assert _counts(store, prefix) == before
    assert _incidents(store, prefix) == found

    # A late row (its span started before the position, within the overlap) is imported, and
    # a success for the failed event resolves its incident.
    with recorded_spans(service="shop") as spans:
        fw.record_result(prefix + "failed", "success")
        late = exporter_rows(spans.get_finished_spans())
    end_ns = _ns(late[0][0]) + late[0][12]
    late[0][0] = first_batch[0][0]  # a long span: it started before everything imported so far
    late[0][12] = end_ns - _ns(late[0][0])
    assert _ns(late[0][0]) < importer.position_ns()
    insert_rows(client, late)

    def resolved() -> bool:
        engine.tick()
        return _incidents(store, prefix)[prefix + "failed"] == ("result_failed", "resolved")

    wait_for(resolved, timeout=30, interval=0.3, what="the late success to resolve the incident")
    assert _counts(store, prefix)[0] == before[0] + 1


def test_a_bad_table_name_is_refused_at_start() -> None:
    with pytest.raises(SettingsError, match=r"otel_traces_table .*table name or database.table"):
        load_settings(demo=True, otel_traces_table="otel_traces; DROP TABLE x")
    assert load_settings(demo=True, otel_traces_table="otel.otel_traces").otel_traces_table == "otel.otel_traces"


def test_a_missing_table_does_not_stop_detection(store: Store) -> None:
    engine, _ = _engine(store)  # no otel_traces table in this database
    report = engine.tick()  # logs the import error and evaluates anyway
    assert report.caught_up and engine.last_completed is not None

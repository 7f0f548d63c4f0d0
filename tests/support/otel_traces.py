"""The OpenTelemetry Collector ClickHouse exporter's ``otel_traces`` table, on chDB.

The DDL is the exporter's own template
(``open-telemetry/opentelemetry-collector-contrib:exporter/clickhouseexporter/internal/sqltemplates/traces_table.sql``
at f92a5763be13aeb59ecf6f8b47e31d54109191bb, as quoted in ``shared/reference/otel-clickhouse-notes.md``
§2.1) with its placeholders filled the way the exporter fills them by default (``MergeTree()``, no
TTL). :func:`exporter_rows` turns SDK spans into rows the way the exporter does
(``exporter_traces.go``): ``Timestamp`` is the start, ``Duration`` nanoseconds, every attribute
value stringified like pdata's ``Value.AsString()``, ``StatusCode`` ``Unset|Ok|Error``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from clickhouse_connect.driver.client import Client
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

OTEL_TRACES_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (Timestamp DateTime64(9), Name LowCardinality(String),
                   Attributes Map(LowCardinality(String), String)) CODEC(ZSTD(1)),
    Links Nested (TraceId String, SpanId String, TraceState String,
                  Attributes Map(LowCardinality(String), String)) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = MergeTree()
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))
SETTINGS index_granularity=8192, ttl_only_drop_parts = 1
"""

COLUMNS = [
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
]
_STATUS = {StatusCode.UNSET: "Unset", StatusCode.OK: "Ok", StatusCode.ERROR: "Error"}


def create_otel_traces(client: Client, table: str = "otel_traces") -> None:
    """Create the exporter's table."""
    client.command(OTEL_TRACES_DDL.replace("{table}", table))


def as_string(value: object) -> str:
    """pdata ``Value.AsString()``: bools lowercase, numbers decimal, arrays as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return str(value)


def _time(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


def exporter_rows(
    spans: Sequence[ReadableSpan], status_code_names: dict[StatusCode, str] | None = None
) -> list[list[Any]]:
    """The rows the ClickHouse exporter writes for these spans."""
    names = status_code_names or _STATUS
    rows = []
    for span in spans:
        context = span.get_span_context()
        assert context is not None and span.start_time is not None and span.end_time is not None
        resource = {key: as_string(value) for key, value in span.resource.attributes.items()}
        links = list(span.links)
        rows.append(
            [
                _time(span.start_time),
                format(context.trace_id, "032x"),
                format(context.span_id, "016x"),
                format(span.parent.span_id, "016x") if span.parent else "",
                "",
                span.name,
                "Internal",
                resource.get("service.name", ""),
                resource,
                span.instrumentation_scope.name if span.instrumentation_scope else "",
                (span.instrumentation_scope.version or "") if span.instrumentation_scope else "",
                {key: as_string(value) for key, value in (span.attributes or {}).items()},
                span.end_time - span.start_time,
                names[span.status.status_code],
                span.status.description or "",
                [_time(event.timestamp) for event in span.events],
                [event.name for event in span.events],
                [{k: as_string(v) for k, v in (event.attributes or {}).items()} for event in span.events],
                [format(link.context.trace_id, "032x") for link in links],
                [format(link.context.span_id, "016x") for link in links],
                ["" for _ in links],
                [{} for _ in links],
            ]
        )
    return rows


def insert_rows(client: Client, rows: list[list[Any]], table: str = "otel_traces") -> None:
    """INSERT as the exporter does (one block)."""
    client.insert(table, rows, column_names=COLUMNS)

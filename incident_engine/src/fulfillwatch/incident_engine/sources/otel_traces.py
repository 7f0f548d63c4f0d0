"""Fulfillment spans from a table the OpenTelemetry Collector's ClickHouse exporter writes.

Teams that already send their spans to ClickHouse with the Collector's ``clickhouse`` exporter
(ClickStack, SigNoz-style setups) need no second copy of them: with ``otel_traces_table`` set,
every engine tick first imports the new fulfillment spans of that table into ``fw_signals``,
through the same conversion the OTLP receiver uses (:func:`signal_from_span`), so one detector
and one timeline serve both paths.

The exporter's schema (``exporter/clickhouseexporter/internal/sqltemplates/traces_table.sql``):
``Timestamp`` is the span's start, ``Duration`` its length in ns, every attribute value a
string in ``SpanAttributes``, ``StatusCode`` ``Error`` (``STATUS_CODE_ERROR`` before contrib
v0.108), links in the ``Links`` nested columns.

Incremental and restart-safe: the position (the newest ``Timestamp`` imported) is stored in
``fw_engine_state`` after the signals. Each run re-reads ``overlap_s`` before it, because the
exporter's batches land out of order, and skips spans whose signal id (trace id + span id, as
for OTLP) is already stored — so a replayed batch, a crash between the insert and the
position, or the same span also received over OTLP, never counts twice.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from clickhouse_connect.driver.exceptions import ClickHouseError

from fulfillwatch.collector_processor.signals import SIGNALS_TABLE, SOURCE_OTEL_TRACES, Signal, insert_signals
from fulfillwatch.collector_processor.span_signals import (
    UnusableSpan,
    signal_from_span,
    span_fields_from_otel_traces_row,
)
from fulfillwatch.collector_processor.store import Store, StoreUnavailable
from fulfillwatch.incident_engine.detection.engine_state import read_state, write_state
from fulfillwatch.instrumentation import vocabulary as v

_logger = logging.getLogger("fulfillwatch.otel_traces")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")

_NEW_SPANS = """
SELECT toUnixTimestamp64Nano(Timestamp) AS start_ns, TraceId, SpanId, SpanName, ServiceName, SpanAttributes,
       toUInt64(Duration) AS duration_ns, StatusCode, StatusMessage, Links.TraceId, Links.SpanId
FROM {table}
WHERE SpanName IN ({receipt:String}, {result:String})
  AND Timestamp >= fromUnixTimestamp64Nano({since_ns:Int64})
  AND concat(lower(TraceId), lower(SpanId)) NOT IN (
      SELECT signal_id FROM {signals} WHERE at >= fromUnixTimestamp64Micro({since_us:Int64}))
ORDER BY Timestamp
LIMIT {limit:UInt32}
"""


def validate_table_name(name: str) -> str:
    """``table`` or ``database.table``, plain identifiers only (it is put into SQL)."""
    if not _TABLE_NAME.match(name):
        raise ValueError(f"otel_traces_table must be a table name or database.table, got {name!r}")
    return name


@dataclass(frozen=True)
class ImportReport:
    """What one run imported."""

    spans: int
    signals: int
    unusable: int


class OtelTracesImporter:
    """Copies new fulfillment spans from an ``otel_traces`` table into the signals."""

    def __init__(
        self,
        store: Store,
        table: str,
        *,
        default_timeout_s: float,
        overlap_s: float = 300,
        batch_rows: int = 20_000,
    ) -> None:
        self._store = store
        self.table = validate_table_name(table)
        self._default_timeout_s = default_timeout_s
        self._overlap_ns = int(overlap_s * 1e9)
        self._batch_rows = batch_rows
        self._state_key = f"import:{self.table}"

    def position_ns(self) -> int:
        """The newest span start imported (ns since the epoch; 0 before the first import)."""
        state = read_state(self._store.client("otel_traces"), self._state_key)
        return int(state["timestamp_ns"]) if state else 0

    def run(self) -> ImportReport:
        """Import everything new, batch by batch."""
        try:
            return self._run()
        except (StoreUnavailable, ClickHouseError, OSError):
            self._store.discard("otel_traces")  # reconnect next time
            raise

    def _run(self) -> ImportReport:
        spans = signals = unusable = 0
        # Only the first batch re-reads the overlap: later ones start at the newest span read,
        # so spans that cannot be imported (and so are not skipped as stored) are not re-read
        # in a loop.
        position = self.position_ns()
        since_ns = max(0, position - self._overlap_ns)
        while True:
            batch, since_ns = self._import_batch(since_ns, position)
            position = max(position, since_ns)
            spans, signals, unusable = spans + batch.spans, signals + batch.signals, unusable + batch.unusable
            if batch.spans < self._batch_rows:
                if signals:
                    _logger.info("imported %d signals from %s (%d unusable spans)", signals, self.table, unusable)
                return ImportReport(spans, signals, unusable)

    def _import_batch(self, since_ns: int, position: int) -> tuple[ImportReport, int]:
        client = self._store.client("otel_traces")
        rows = client.query(
            _NEW_SPANS.replace("{table}", self.table).replace("{signals}", SIGNALS_TABLE),
            parameters={
                "receipt": v.RECEIPT_SPAN,
                "result": v.RESULT_SPAN,
                "since_ns": since_ns,
                "since_us": since_ns // 1000,
                "limit": self._batch_rows,
            },
        ).result_rows
        if not rows:
            return ImportReport(0, 0, 0), since_ns
        converted: list[Signal] = []
        unusable = 0
        for row in rows:
            try:
                converted.append(
                    signal_from_span(
                        span_fields_from_otel_traces_row(row),
                        default_timeout_s=self._default_timeout_s,
                        source=SOURCE_OTEL_TRACES,
                    )
                )
            except UnusableSpan as exc:
                unusable += 1
                _logger.warning("skipping span %s%s of %s: %s", row[1], row[2], self.table, exc)
        insert_signals(client, converted)
        newest = max(int(row[0]) for row in rows)
        if newest > position:
            write_state(client, self._state_key, {"timestamp_ns": newest}, _as_datetime(newest))
        return ImportReport(len(rows), len(converted), unusable), newest


def _as_datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)

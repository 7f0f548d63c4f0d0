"""Signals — receipts and results — as rows of ``fw_signals``, and how they are written.

A signal is keyed by ``signal_id`` (a span's trace id + span id, or a REST idempotency key), and
the table is a ``ReplacingMergeTree`` whose sorting key ends with it: a replayed OTLP batch or a
retried REST call adds rows that merges collapse and that every read ignores (reads use
``FINAL``/``LIMIT 1 BY`` or aggregates that duplicates cannot change, such as min and max).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone

import pyarrow as pa
from clickhouse_connect.driver.client import Client

from fulfillwatch.instrumentation.vocabulary import OUTCOME_FAILURE

from .ingest_auth import DEFAULT_PROJECT
from .migrations import Migration, RetentionRule

SIGNALS_TABLE = "fw_signals"
#: Idempotency keys of REST ingest requests (see rest_ingest).
REST_REQUESTS_TABLE = "fw_rest_requests"
RECEIPT = "receipt"
RESULT = "result"
#: Where a signal came from.
SOURCE_OTLP = "otlp"
SOURCE_REST = "rest"
SOURCE_OTEL_TRACES = "otel_traces"


SIGNAL_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "signals/0001_create_fw_signals",
        (
            f"""
            CREATE TABLE IF NOT EXISTS {SIGNALS_TABLE} (
                signal_id String,
                signal LowCardinality(String),
                stripe_event_id String,
                effect LowCardinality(String),
                event_type LowCardinality(String),
                service LowCardinality(String),
                outcome LowCardinality(String),
                at DateTime64(6, 'UTC'),
                due_at DateTime64(6, 'UTC'),
                attempt UInt16,
                error_type String,
                error_message String,
                replay_id String,
                livemode Nullable(Bool),
                account String,
                customer String,
                amount Nullable(Int64),
                currency LowCardinality(String),
                event_created UInt32,
                trace_id String,
                span_id String,
                receipt_trace_id String,
                receipt_span_id String,
                source LowCardinality(String),
                attributes Map(LowCardinality(String), String),
                ingested_at DateTime64(6, 'UTC') DEFAULT now64(6),
                INDEX idx_ingested_at ingested_at TYPE minmax GRANULARITY 1,
                INDEX idx_due_at due_at TYPE minmax GRANULARITY 1,
                INDEX idx_replay_id replay_id TYPE bloom_filter(0.01) GRANULARITY 4
            )
            ENGINE = ReplacingMergeTree
            PARTITION BY toYYYYMMDD(at)
            ORDER BY (stripe_event_id, effect, signal, signal_id)
            TTL toDateTime(at) + toIntervalDay(400)
            SETTINGS ttl_only_drop_parts = 1
            """,
        ),
    ),
    Migration(
        "signals/0002_create_fw_rest_requests",
        (
            f"""
            CREATE TABLE IF NOT EXISTS {REST_REQUESTS_TABLE} (
                signal_id String,
                fingerprint String,
                stripe_event_id String,
                received_at DateTime64(6, 'UTC')
            )
            ENGINE = ReplacingMergeTree
            ORDER BY signal_id
            TTL toDateTime(received_at) + toIntervalDay(30)
            """,
        ),
    ),
    Migration(
        # Signals belong to the project that owns their service (see ingest_auth); signals
        # stored before projects existed belong to the default project.
        "signals/0003_project",
        (
            f"ALTER TABLE {SIGNALS_TABLE} ADD COLUMN IF NOT EXISTS project LowCardinality(String) "
            f"DEFAULT '{DEFAULT_PROJECT}'",
        ),
    ),
)

SIGNAL_RETENTION = (RetentionRule(SIGNALS_TABLE, "at"),)


@dataclass(slots=True)
class Signal:
    """One receipt or result, as stored.

    Times are integer microseconds since the Unix epoch: converting ``datetime`` objects to
    Arrow costs several microseconds each, which is most of an insert's budget (use
    :func:`micros` to convert). ``due_at`` is 0 for results, which have no deadline.
    """

    signal_id: str
    signal: str
    stripe_event_id: str
    at: int
    effect: str = ""
    event_type: str = ""
    service: str = ""
    outcome: str = ""
    due_at: int = 0
    attempt: int = 0
    error_type: str = ""
    error_message: str = ""
    replay_id: str = ""
    livemode: bool | None = None
    account: str = ""
    customer: str = ""
    amount: int | None = None
    currency: str = ""
    event_created: int = 0
    trace_id: str = ""
    span_id: str = ""
    receipt_trace_id: str = ""
    receipt_span_id: str = ""
    source: str = SOURCE_OTLP
    attributes: dict[str, str] = field(default_factory=dict)
    #: The project that owns the signal's service (see :mod:`.ingest_auth`).
    project: str = DEFAULT_PROJECT


def micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch of an aware ``datetime``."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TIMESTAMP = pa.timestamp("us", tz="UTC")
_ARROW_SCHEMA = pa.schema(
    [
        ("signal_id", pa.string()),
        ("signal", pa.string()),
        ("stripe_event_id", pa.string()),
        ("at", _TIMESTAMP),
        ("effect", pa.string()),
        ("event_type", pa.string()),
        ("service", pa.string()),
        ("outcome", pa.string()),
        ("due_at", _TIMESTAMP),
        ("attempt", pa.uint16()),
        ("error_type", pa.string()),
        ("error_message", pa.string()),
        ("replay_id", pa.string()),
        ("livemode", pa.bool_()),
        ("account", pa.string()),
        ("customer", pa.string()),
        ("amount", pa.int64()),
        ("currency", pa.string()),
        ("event_created", pa.uint32()),
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("receipt_trace_id", pa.string()),
        ("receipt_span_id", pa.string()),
        ("source", pa.string()),
        ("attributes", pa.map_(pa.string(), pa.string())),
        ("project", pa.string()),
    ]
)
#: Columns the writer sends; ``ingested_at`` is set by the store at insert time.
INSERT_COLUMNS: tuple[str, ...] = tuple(_ARROW_SCHEMA.names)


# The Arrow columns are Signal's fields, in order (span_signals builds Signals positionally).
assert tuple(f.name for f in fields(Signal)) == tuple(_ARROW_SCHEMA.names), "Signal and its Arrow schema differ"
_ROW = operator.attrgetter(*_ARROW_SCHEMA.names)


def to_arrow_table(signals: Sequence[Signal]) -> pa.Table:
    """The signals as an Arrow table of the insert schema.

    Raises ``pyarrow.ArrowInvalid``/``OverflowError``/``UnicodeError`` when a value does not fit
    its column: callers build the table per request, so such a value fails only its request.
    """
    columns: list[pa.Array] = []
    # Rows as tuples (one C call each), transposed: much cheaper than a getattr per cell.
    by_column = zip(*map(_ROW, signals), strict=True) if signals else ([] for _ in _ARROW_SCHEMA.names)
    for values, name, arrow_type in zip(by_column, _ARROW_SCHEMA.names, _ARROW_SCHEMA.types, strict=True):
        if name == "attributes":
            columns.append(pa.array([list(d.items()) if d else [] for d in values], type=arrow_type))
        else:
            columns.append(pa.array(values, type=arrow_type))
    return pa.Table.from_arrays(columns, schema=_ARROW_SCHEMA)


def arrow_stream(tables: Sequence[pa.Table], schema: pa.Schema = _ARROW_SCHEMA) -> bytes:
    """Tables of one schema (default: the signals' insert schema) as one Arrow IPC stream (the
    fastest insert format for chDB)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as stream:
        for table in tables:
            stream.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


@dataclass(frozen=True)
class SignalBatch:
    """The signals of one request, ready to insert, and what the engine wants to know of them."""

    table: pa.Table
    rows: int
    results: int
    #: Results someone is waiting for: failures (open an incident at once) and results of a
    #: reprocess (resolve it at once). Routine successes can wait for the next evaluation.
    urgent: int

    @classmethod
    def of(cls, signals: Sequence[Signal]) -> SignalBatch:
        """Build the table (may raise, see :func:`to_arrow_table`) and count."""
        results = [signal for signal in signals if signal.signal == RESULT]
        urgent = sum(1 for signal in results if signal.outcome == OUTCOME_FAILURE or signal.replay_id)
        return cls(to_arrow_table(signals), len(signals), len(results), urgent)

    @classmethod
    def concat(cls, parts: Sequence[SignalBatch]) -> SignalBatch:
        """One batch of several (the tables are chained, not copied)."""
        if not parts:
            return cls.of([])
        return cls(
            pa.concat_tables([part.table for part in parts]),
            sum(part.rows for part in parts),
            sum(part.results for part in parts),
            sum(part.urgent for part in parts),
        )


#: Settings of every signal insert. A retried backlog may cover many days; retention bounds
#: how many daily partitions one insert can touch (the default limit, 100, is lower).
INSERT_SETTINGS = {"max_partitions_per_insert_block": 1000}


#: Rows per insert statement. The store's memory for an insert grows with its rows (about
#: 2.5 KB a row here, through the materialized views): slices of this size keep a 20 MiB batch
#: from costing hundreds of MiB at once, and are big enough that the fixed cost per insert
#: (milliseconds) stays small.
MAX_ROWS_PER_INSERT = 32_768


def insert_tables(client: Client, tables: Sequence[pa.Table], max_rows: int = MAX_ROWS_PER_INSERT) -> None:
    """Insert tables of signals, ``max_rows`` at a time; returns once the store has them all.

    Not atomic beyond one slice: a failure after the first slice leaves those rows stored, and
    the sender's retry stores them again — harmless, ingest is idempotent (see the module)."""
    if not tables:
        return
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    for offset in range(0, table.num_rows, max_rows):
        client.raw_insert(
            SIGNALS_TABLE,
            column_names=list(INSERT_COLUMNS),
            insert_block=arrow_stream([table.slice(offset, max_rows)]),
            fmt="ArrowStream",
            settings=INSERT_SETTINGS,
        )


def insert_signals(client: Client, signals: Sequence[Signal]) -> None:
    """Insert signals in one block; returns once the store has them."""
    if signals:
        insert_tables(client, [to_arrow_table(signals)])

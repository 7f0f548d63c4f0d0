"""Tables of reconciliation and declared expectations (appended to the engine's migrations).

* ``fw_stripe_events`` — every Stripe event the reconciler read from the Events API, once per
  ``(stripe_event_id, project)`` after merges: ``ReplacingMergeTree`` whose version is
  ``delivery_failed``, so a later sighting in a ``delivery_success=false`` listing wins over the
  plain one and a re-read of the overlap changes nothing. Reads aggregate (``max``/``min``) and
  never depend on merges having happened. Ordered by event id (read by key: the engine's checks,
  ``GET /api/events/{id}``, the reprocess body), partitioned by month of ``created``.
* ``fw_declared_expectations`` — the hot set of expectations that exist because something
  *declared* them, not because a signal arrived: a Stripe event the app must receive
  (``not_received``) or an effect a plan requires (``effect_missing``), with the deadline by
  which a signal must exist. ``EmbeddedRocksDB`` keyed by incident id, like
  ``fw_open_expectations``: its size is what is waiting, a row leaves when its deadline is
  checked, and the check reads it by a scan of what is live, never the history.
"""

from __future__ import annotations

from fulfillwatch.collector_processor.migrations import Migration, RetentionRule

STRIPE_EVENTS_TABLE = "fw_stripe_events"
STRIPE_PAGES_TABLE = "fw_stripe_pages"
DECLARED_TABLE = "fw_declared_expectations"


def declared_migrations(incident_id_sql: str) -> tuple[Migration, ...]:
    """The migrations, given ``schema.INCIDENT_ID_SQL``: a declared row's key is the incident id
    its expectation would have, computed by the store from the row (``DEFAULT``), as every
    incident id is."""
    return (_migration(incident_id_sql), _PAGES)


def _migration(incident_id_sql: str) -> Migration:
    return Migration(
        "engine/0009_stripe_events_and_declared_expectations",
        (
            f"""
            CREATE TABLE IF NOT EXISTS {STRIPE_EVENTS_TABLE} (
                project LowCardinality(String),
                account LowCardinality(String),
                stripe_event_id String,
                event_type LowCardinality(String),
                created DateTime64(6, 'UTC'),
                livemode UInt8,
                object_id String,
                customer String,
                amount Nullable(Int64),
                currency LowCardinality(String),
                delivery_failed UInt8,
                seen_at DateTime64(6, 'UTC'),
                raw String CODEC(ZSTD(3))
            )
            ENGINE = ReplacingMergeTree(delivery_failed)
            PARTITION BY toYYYYMM(created)
            ORDER BY (stripe_event_id, project)
            TTL toDateTime(created) + toIntervalDay(400)
            SETTINGS index_granularity = 256
            """,
            f"""
            CREATE TABLE IF NOT EXISTS {DECLARED_TABLE} (
                incident_id String DEFAULT {incident_id_sql},
                kind LowCardinality(String),
                project LowCardinality(String),
                stripe_event_id String,
                event_type LowCardinality(String),
                effect LowCardinality(String),
                service LowCardinality(String),
                account LowCardinality(String),
                declared_at DateTime64(6, 'UTC'),
                due_at DateTime64(6, 'UTC')
            )
            ENGINE = EmbeddedRocksDB
            PRIMARY KEY incident_id
            """,
        ),
    )


DECLARED_RETENTION = (RetentionRule(STRIPE_EVENTS_TABLE, "created"),)


#: A page of ``GET /v1/events`` as Stripe sent it, split into ``fw_stripe_events`` rows by the
#: store: each event's JSON (``JSONExtractArrayRaw``) and its key fields, each document parsed
#: once or twice with typed extraction. Parsing a backfill's hundreds of MiB of JSON again in
#: Python, to slice and extract, cost more than reading it from Stripe (``docs/BENCHMARKS.md``).
_PAGE_EVENTS = f"""
    SELECT project,
           if(head.account != '', head.account, account) AS account,
           head.id AS stripe_event_id,
           head.type AS event_type,
           toDateTime64(head.created, 6, 'UTC') AS created,
           toUInt8(head.livemode) AS livemode,
           fields.id AS object_id,
           if(JSONType(object, 'customer') = 'Object', JSONExtractString(object, 'customer', 'id'),
              JSONExtractString(object, 'customer')) AS customer,
           coalesce(fields.amount_total, fields.amount_paid, fields.amount) AS amount,
           fields.currency AS currency,
           delivery_failed,
           seen_at,
           raw
    FROM (
        SELECT project, account, delivery_failed, seen_at, raw,
               JSONExtract(raw, 'Tuple(id String, type String, created Int64, livemode Bool, account String)') AS head,
               JSONExtractRaw(raw, 'data', 'object') AS object,
               JSONExtract(object, 'Tuple(id String, currency String, amount_total Nullable(Int64),
                                          amount_paid Nullable(Int64), amount Nullable(Int64))') AS fields
        FROM {STRIPE_PAGES_TABLE}
        ARRAY JOIN JSONExtractArrayRaw(body, 'data') AS raw
    )
"""

_PAGES = Migration(
    "engine/0010_stripe_pages",
    (
        f"""
        CREATE TABLE IF NOT EXISTS {STRIPE_PAGES_TABLE} (
            project LowCardinality(String),
            account LowCardinality(String),
            delivery_failed UInt8,
            seen_at DateTime64(6, 'UTC'),
            body String
        )
        ENGINE = Null
        """,
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS fw_stripe_pages_mv TO {STRIPE_EVENTS_TABLE} AS {_PAGE_EVENTS}",
    ),
)

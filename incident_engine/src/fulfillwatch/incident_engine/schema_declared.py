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
DECLARED_TABLE = "fw_declared_expectations"


def declared_migrations(incident_id_sql: str) -> tuple[Migration, ...]:
    """The migrations, given ``schema.INCIDENT_ID_SQL``: a declared row's key is the incident id
    its expectation would have, computed by the store from the row (``DEFAULT``), as every
    incident id is."""
    return (_migration(incident_id_sql),)


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

"""Tables of the incident engine: the append-only incident log and the engine's own state.

``fw_incident_log`` is the single source of truth about incidents (DESIGN.md §7): one row per
transition, never updated or deleted (retention is the operator's TTL). Current state is derived
with ``argMax(state, seq)``. Every row has a deterministic ``transition_id``, and the table is a
``ReplacingMergeTree`` on ``(incident_id, transition_id)``, so a retried tick or an accidental
second engine writing the same transition cannot create a duplicate that reads can see
(reads use ``FINAL``).
"""

from __future__ import annotations

from fulfillwatch.collector_processor.migrations import Migration, RetentionRule

INCIDENT_LOG_TABLE = "fw_incident_log"
ENGINE_STATE_TABLE = "fw_engine_state"

#: The incident id of an expectation, computed in SQL only: every component reads it from rows.
INCIDENT_ID_SQL = "concat('inc_', substring(lower(hex(SHA256(concat(stripe_event_id, '\\x1f', effect)))), 1, 24))"

ENGINE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "engine/0001_create_fw_incident_log",
        (
            f"""
            CREATE TABLE IF NOT EXISTS {INCIDENT_LOG_TABLE} (
                incident_id String,
                transition_id String,
                seq UInt64,
                at DateTime64(6, 'UTC'),
                transition LowCardinality(String),
                state LowCardinality(String),
                kind LowCardinality(String),
                actor String,
                reason String,
                cause String,
                stripe_event_id String,
                effect LowCardinality(String),
                event_type LowCardinality(String),
                service LowCardinality(String),
                replay_id String,
                details String
            )
            ENGINE = ReplacingMergeTree
            ORDER BY (incident_id, transition_id)
            TTL toDateTime(at) + toIntervalDay(400)
            """,
        ),
    ),
    Migration(
        "engine/0002_create_fw_engine_state",
        (
            f"""
            CREATE TABLE IF NOT EXISTS {ENGINE_STATE_TABLE} (
                key String,
                value String,
                updated_at DateTime64(6, 'UTC')
            )
            ENGINE = ReplacingMergeTree(updated_at)
            ORDER BY key
            """,
        ),
    ),
)

ENGINE_RETENTION = (RetentionRule(INCIDENT_LOG_TABLE, "at"),)

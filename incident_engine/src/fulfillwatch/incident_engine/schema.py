"""Tables of the incident engine.

* ``fw_incident_log`` — the append-only incident log, the single source of truth about
  incidents: one row per transition, never updated or deleted (retention is the
  operator's TTL). Current state is derived with ``CURRENT_STATE_SQL``. Rows have a
  deterministic ``transition_id`` and the table is a ``ReplacingMergeTree`` on
  ``(incident_id, transition_id)``: a retried tick or an accidental second engine cannot
  create a duplicate that reads (``FINAL``) can see.
  Its projection ``by_seq`` holds the rows again (without ``details``) ordered by ``seq``:
  followers of the log (the alert sender, the upkeep of ``fw_active_incidents``) read what is
  new by a range of the projection's primary key, not a scan. (Before ``engine/0016`` a
  materialized view copied the rows into a table ``fw_log_feed``: every append ran a second
  insert, ~6 ms of each.)
* ``fw_active_incidents`` — the current summary of every incident that is still open,
  acknowledged or reprocessing (``EmbeddedRocksDB``, keyed by incident id): what listings of
  active incidents and the dispatcher's resume read, sized by what is live, not by history.
  Kept in step with the log by :mod:`.incidents.active_incidents`.
* ``fw_open_expectations`` — expectations still waiting for a success (from their receipt, or
  a skipped result, until a success or their deadline's evaluation), ``EmbeddedRocksDB`` keyed
  by incident id, kept by the engine from the arrivals it reads anyway (a view writing it at
  ingest made every stored span ~40 % dearer). With ``fw_active_incidents`` it is the live set
  a tick consults instead of the history.
* ``fw_engine_state`` — watermarks, heartbeat, lease and followers' positions, one JSON value
  per key (``EmbeddedRocksDB``: the latest write of a key wins);
* ``fw_write_probes`` — readiness's write probes (a part per probe, one row per process after
  merges);
  ``fw_bulk_jobs`` — bulk reprocess progress.
* Three tables fed by materialized views on ``fw_signals``, so that one evaluation costs what
  the window holds, not what the history holds:

  - ``fw_arrivals`` (ordered by ``ingested_at``; what arrived: signal, outcome, the deadline it
    sets) and ``fw_deadlines`` (ordered by deadline): which expectations a window touches, by
    a primary-key range read;
  - ``fw_expectations`` (``AggregatingMergeTree``, one row per expectation after merges): the
    summary of an expectation's signals, read by key. Every aggregate in it is insensitive
    to duplicates (min, max), so replayed signals change nothing. (The list of an
    expectation's results is not kept here: a per-row array state made every insert ~30 %
    dearer, and the engine needs the list only for expectations that have an incident.)

The point lookups use a small index granularity: a key read touches 256 rows, not 8192.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from clickhouse_connect.driver.client import Client

from fulfillwatch.collector_processor.ingest_auth import DEFAULT_PROJECT
from fulfillwatch.collector_processor.migrations import Migration, RetentionRule
from fulfillwatch.collector_processor.signals import SIGNALS_TABLE
from fulfillwatch.incident_engine.schema_declared import DECLARED_RETENTION, declared_migrations

_logger = logging.getLogger("fulfillwatch.store")

INCIDENT_LOG_TABLE = "fw_incident_log"
ENGINE_STATE_TABLE = "fw_engine_state"
#: Readiness's write probes: a part written per probe, as the data's inserts write them.
WRITE_PROBES_TABLE = "fw_write_probes"
ARRIVALS_TABLE = "fw_arrivals"
DEADLINES_TABLE = "fw_deadlines"
EXPECTATIONS_TABLE = "fw_expectations"
BULK_JOBS_TABLE = "fw_bulk_jobs"
#: The log's rows in ``seq`` order until ``engine/0016`` (now the log's projection ``by_seq``).
LOG_FEED_TABLE = "fw_log_feed"
#: The log's projection in ``seq`` order, which followers of the log read (``engine/0016``).
LOG_BY_SEQ = "by_seq"
#: Characters of a transition's reason the log keeps.
LOG_REASON_CHARS = 4096
ACTIVE_INCIDENTS_TABLE = "fw_active_incidents"
OPEN_EXPECTATIONS_TABLE = "fw_open_expectations"
#: Days ``fw_log_feed`` kept rows (until ``engine/0016``): how far back an alert sender with no
#: stored position starts.
LOG_FEED_DAYS = 30

#: Current state and kind of an incident from its log rows. Informational rows (notes, callback
#: and alert attempts, audit of results) carry an empty state/kind and never change them.
CURRENT_STATE_SQL = "argMaxIf(state, seq, state != '')"
CURRENT_KIND_SQL = "argMaxIf(kind, seq, kind != '')"

#: The incident id of an expectation, computed in SQL only: every component reads it from rows.
#: Expectations of the default project keep the id they had before projects existed (links,
#: PagerDuty dedup keys), so only other projects' ids include the project.
INCIDENT_ID_SQL = (
    "concat('inc_', substring(lower(hex(SHA256(if(project = 'default', "
    "concat(stripe_event_id, '\\x1f', effect), "
    "concat(project, '\\x1f', stripe_event_id, '\\x1f', effect))))), 1, 24))"
)

#: Stand-ins that min/max aggregates skip: "no receipt" and "no decisive result".
NEVER = datetime(2299, 12, 31, tzinfo=timezone.utc)
NEVER_SQL = f"toDateTime64('{NEVER:%Y-%m-%d %H:%M:%S}', 6, 'UTC')"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
EPOCH_SQL = "toDateTime64(0, 6, 'UTC')"
_RESULT = "Tuple(DateTime64(6, 'UTC'), String, String, String, String, String, UInt16)"

#: One expectation-summary row per (project, event, effect) in a block of signals.
_EXPECTATION_ROWS = f"""
    SELECT
        project,
        stripe_event_id,
        effect,
        max(event_type) AS event_type,
        maxIf(service, signal = 'receipt') AS receipt_service,
        max(service) AS any_service,
        min(at) AS first_at,
        min(if(signal = 'receipt', at, {NEVER_SQL})) AS receipt_at,
        min(if(signal = 'receipt', due_at, {NEVER_SQL})) AS due_at,
        max(if(outcome IN ('success', 'failure'),
               tuple(at, signal_id, outcome, error_type, error_message, replay_id, attempt),
               tuple({EPOCH_SQL}, '', '', '', '', '', toUInt16(0)))) AS last_result,
        max(outcome = 'skipped') AS has_skipped,
        max(ingested_at) AS last_ingested_at
    FROM {SIGNALS_TABLE}
    __WHERE__
    GROUP BY project, stripe_event_id, effect
"""


def incident_ids_in(client: Client, table: str) -> set[str]:
    """Every incident id a key-value table of the live set holds (``fw_open_expectations``,
    ``fw_active_incidents``): what the engine's in-memory copies are loaded from."""
    return {str(row[0]) for row in client.query(f"SELECT incident_id FROM {table}").result_rows}


def _backfill_derived_tables(client: Client) -> None:
    """Fill the view-fed tables from signals stored before the views existed, one partition
    at a time (bounded memory). Safe to repeat: every aggregate ignores duplicates and the
    arrival/deadline rows are only ever read as sets of keys."""
    partitions = client.query(
        "SELECT DISTINCT partition_id FROM system.parts WHERE database = currentDatabase() "
        "AND table = {t:String} AND active ORDER BY partition_id",
        parameters={"t": SIGNALS_TABLE},
    ).result_rows
    for (partition,) in partitions:
        where = "WHERE _partition_id = {p:String}"
        params = {"p": partition}
        client.command(
            f"INSERT INTO {EXPECTATIONS_TABLE} {_EXPECTATION_ROWS_V1.replace('__WHERE__', where)}", parameters=params
        )
        client.command(
            f"INSERT INTO {ARRIVALS_TABLE} {_ARRIVAL_ROWS_V1} AND _partition_id = {{p:String}}", parameters=params
        )
        client.command(
            f"INSERT INTO {DEADLINES_TABLE} {_DEADLINE_ROWS_V1} AND _partition_id = {{p:String}}", parameters=params
        )
    if partitions:
        _logger.info("backfilled expectation tables from %d partitions of %s", len(partitions), SIGNALS_TABLE)


_ARRIVAL_ROWS = f"SELECT ingested_at, project, stripe_event_id, effect FROM {SIGNALS_TABLE} WHERE 1"
# Receipts fall due at due_at; skipped results without receipt default_timeout after they were
# seen (the engine adds the timeout at query time: it is a setting, not data).
_DEADLINE_ROWS = f"""
    SELECT if(signal = 'receipt', 'receipt', 'skipped') AS kind,
           if(signal = 'receipt', due_at, at) AS due_at, project, stripe_event_id, effect
    FROM {SIGNALS_TABLE} WHERE (signal = 'receipt' OR outcome = 'skipped')"""

# The same views before projects existed, as migration 0003 created them. Applied migrations are
# never edited (their checksum is recorded): 0005 replaces these views with the ones above.
_EXPECTATION_ROWS_V1 = _EXPECTATION_ROWS.replace("        project,\n", "", 1).replace(
    "GROUP BY project, stripe_event_id, effect", "GROUP BY stripe_event_id, effect"
)
_ARRIVAL_ROWS_V1 = _ARRIVAL_ROWS.replace(" project,", "")
_DEADLINE_ROWS_V1 = _DEADLINE_ROWS.replace(" project,", "")


def _expectations_ddl(table: str, *, with_project: bool) -> str:
    project = "project LowCardinality(String),\n                " if with_project else ""
    key = "stripe_event_id, effect, project" if with_project else "stripe_event_id, effect"
    return f"""
            CREATE TABLE IF NOT EXISTS {table} (
                {project}stripe_event_id String,
                effect LowCardinality(String),
                event_type SimpleAggregateFunction(max, LowCardinality(String)),
                receipt_service SimpleAggregateFunction(max, LowCardinality(String)),
                any_service SimpleAggregateFunction(max, LowCardinality(String)),
                first_at SimpleAggregateFunction(min, DateTime64(6, 'UTC')),
                receipt_at SimpleAggregateFunction(min, DateTime64(6, 'UTC')),
                due_at SimpleAggregateFunction(min, DateTime64(6, 'UTC')),
                last_result SimpleAggregateFunction(max, {_RESULT}),
                has_skipped SimpleAggregateFunction(max, UInt8),
                last_ingested_at SimpleAggregateFunction(max, DateTime64(6, 'UTC'))
            )
            ENGINE = AggregatingMergeTree
            ORDER BY ({key})
            TTL toDateTime(last_ingested_at) + toIntervalDay(400)
            SETTINGS index_granularity = 256
            """


_SUMMARY_COLUMNS = (
    "stripe_event_id, effect, event_type, receipt_service, any_service, first_at, receipt_at, due_at, "
    "last_result, has_skipped, last_ingested_at"
)


def _add_project_to_expectations(client: Client) -> None:
    """The project joins the summary table's key (rows of different projects must never merge
    into one summary). ClickHouse cannot add a column with a default to a sorting key, so the
    table is copied into one with the new key (every old row in the default project) and swapped
    in. Safe to re-run: a table that already has the column is left alone."""
    next_table, old_table = f"{EXPECTATIONS_TABLE}_next", f"{EXPECTATIONS_TABLE}_before_projects"
    columns = client.query(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String}",
        parameters={"t": EXPECTATIONS_TABLE},
    ).result_rows
    if ("project",) not in columns:
        client.command(f"DROP TABLE IF EXISTS {next_table}")
        client.command(_expectations_ddl(next_table, with_project=True))
        client.command("DROP VIEW IF EXISTS fw_expectations_mv")  # re-created, with the project, below
        client.command(
            f"INSERT INTO {next_table} (project, {_SUMMARY_COLUMNS}) "
            f"SELECT '{DEFAULT_PROJECT}', {_SUMMARY_COLUMNS} FROM {EXPECTATIONS_TABLE}"
        )
        client.command(f"RENAME TABLE {EXPECTATIONS_TABLE} TO {old_table}, {next_table} TO {EXPECTATIONS_TABLE}")
    client.command(f"DROP TABLE IF EXISTS {old_table}")
    client.command(f"DROP TABLE IF EXISTS {next_table}")


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
            SETTINGS index_granularity = 256
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
                version UInt64,
                updated_at DateTime64(6, 'UTC')
            )
            ENGINE = ReplacingMergeTree(version)
            ORDER BY key
            """,
        ),
    ),
    Migration(
        "engine/0003_expectation_tables",
        (
            f"""
            CREATE TABLE IF NOT EXISTS {ARRIVALS_TABLE} (
                ingested_at DateTime64(6, 'UTC'),
                stripe_event_id String,
                effect LowCardinality(String)
            )
            ENGINE = MergeTree
            PARTITION BY toYYYYMMDD(ingested_at)
            ORDER BY ingested_at
            TTL toDateTime(ingested_at) + toIntervalDay(400)
            SETTINGS ttl_only_drop_parts = 1
            """,
            f"""
            CREATE TABLE IF NOT EXISTS {DEADLINES_TABLE} (
                kind LowCardinality(String),
                due_at DateTime64(6, 'UTC'),
                stripe_event_id String,
                effect LowCardinality(String)
            )
            ENGINE = MergeTree
            PARTITION BY toYYYYMM(due_at)
            ORDER BY (kind, due_at)
            TTL toDateTime(due_at) + toIntervalDay(400)
            """,
            _expectations_ddl(EXPECTATIONS_TABLE, with_project=False),
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS fw_arrivals_mv TO {ARRIVALS_TABLE} AS {_ARRIVAL_ROWS_V1}",
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS fw_deadlines_mv TO {DEADLINES_TABLE} AS {_DEADLINE_ROWS_V1}",
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS fw_expectations_mv TO {EXPECTATIONS_TABLE} AS "
            + _EXPECTATION_ROWS_V1.replace("__WHERE__", ""),
            _backfill_derived_tables,
        ),
    ),
    Migration(
        "engine/0004_create_fw_bulk_jobs",
        (
            f"""
            CREATE TABLE IF NOT EXISTS {BULK_JOBS_TABLE} (
                job_id String,
                document String,
                version UInt64,
                updated_at DateTime64(6, 'UTC')
            )
            ENGINE = ReplacingMergeTree(version)
            ORDER BY job_id
            TTL toDateTime(updated_at) + toIntervalDay(400)
            """,
        ),
    ),
)

_PROJECT_COLUMN = f"project LowCardinality(String) DEFAULT '{DEFAULT_PROJECT}'"
ENGINE_MIGRATIONS += (
    Migration(
        # Expectations and incidents belong to a project; everything stored before belongs to
        # the default project (whose incident ids do not change, see INCIDENT_ID_SQL). The
        # views are replaced: ClickHouse cannot change a view's query in place.
        "engine/0005_projects",
        (
            f"ALTER TABLE {INCIDENT_LOG_TABLE} ADD COLUMN IF NOT EXISTS {_PROJECT_COLUMN}",
            f"ALTER TABLE {ARRIVALS_TABLE} ADD COLUMN IF NOT EXISTS {_PROJECT_COLUMN}",
            f"ALTER TABLE {DEADLINES_TABLE} ADD COLUMN IF NOT EXISTS {_PROJECT_COLUMN}",
            _add_project_to_expectations,
            "DROP VIEW IF EXISTS fw_arrivals_mv",
            "DROP VIEW IF EXISTS fw_deadlines_mv",
            "DROP VIEW IF EXISTS fw_expectations_mv",
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS fw_arrivals_mv TO {ARRIVALS_TABLE} AS {_ARRIVAL_ROWS}",
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS fw_deadlines_mv TO {DEADLINES_TABLE} AS {_DEADLINE_ROWS}",
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS fw_expectations_mv TO {EXPECTATIONS_TABLE} AS "
            + _EXPECTATION_ROWS.replace("__WHERE__", ""),
        ),
    ),
)

#: The columns of the log's projection in ``seq`` order (those of ``fw_log_feed`` before it).
LOG_BY_SEQ_COLUMNS = """seq, incident_id, transition, state, kind, actor, reason, cause, at, replay_id,
    project, stripe_event_id, effect, event_type, service"""
ENGINE_MIGRATIONS += (
    Migration(
        "engine/0006_log_feed",
        (
            f"""
            CREATE TABLE IF NOT EXISTS {LOG_FEED_TABLE} (
                seq UInt64,
                incident_id String,
                transition LowCardinality(String),
                state LowCardinality(String),
                kind LowCardinality(String),
                actor String,
                reason String,
                cause String,
                at DateTime64(6, 'UTC'),
                replay_id String,
                project LowCardinality(String),
                stripe_event_id String,
                effect LowCardinality(String),
                event_type LowCardinality(String),
                service LowCardinality(String),
                written_at DateTime DEFAULT now()
            )
            ENGINE = MergeTree
            PARTITION BY toYYYYMMDD(written_at)
            ORDER BY seq
            TTL toDateTime(written_at) + toIntervalDay({LOG_FEED_DAYS})
            SETTINGS ttl_only_drop_parts = 1
            """,
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS fw_log_feed_mv TO {LOG_FEED_TABLE} AS "
            f"SELECT {LOG_BY_SEQ_COLUMNS} FROM {INCIDENT_LOG_TABLE}",
        ),
    ),
)


def _backfill_active_incidents(client: Client) -> None:
    # Imported here: those modules read this one's table names at import time.
    from fulfillwatch.incident_engine.detection.engine_state import save_active_incidents_position
    from fulfillwatch.incident_engine.incidents.active_incidents import rebuild

    save_active_incidents_position(client, rebuild(client))


ENGINE_MIGRATIONS += (
    Migration(
        # The incidents still open, acknowledged or being reprocessed, one row each, keyed for
        # point reads and deletes (a key-value table: it holds what is live, never the history).
        "engine/0007_active_incidents",
        (
            f"""
            CREATE TABLE IF NOT EXISTS {ACTIVE_INCIDENTS_TABLE} (
                incident_id String,
                state LowCardinality(String),
                kind LowCardinality(String),
                project LowCardinality(String),
                stripe_event_id String,
                event_type LowCardinality(String),
                effect LowCardinality(String),
                service LowCardinality(String),
                opened_at DateTime64(6, 'UTC'),
                updated_at DateTime64(6, 'UTC'),
                reason String,
                replay_id String
            )
            ENGINE = EmbeddedRocksDB
            PRIMARY KEY incident_id
            """,
            _backfill_active_incidents,
        ),
    ),
)


#: Arrivals say what arrived, so a tick can tell a routine receipt or success (nothing to decide)
#: from what needs a look, without reading the expectation's history. ``due_at`` is the deadline
#: the signal sets: a receipt's, or for a skipped result the time it was seen (the default
#: timeout, a setting, is added when it is read — as in ``fw_deadlines``).
_ARRIVAL_ROWS_WITH_SIGNAL = f"""
    SELECT ingested_at, project, stripe_event_id, effect, signal, outcome,
           multiIf(signal = 'receipt', due_at, outcome = 'skipped', at, {EPOCH_SQL}) AS due_at
    FROM {SIGNALS_TABLE}"""


def rebuild_open_expectations(client: Client) -> None:
    """Derive ``fw_open_expectations`` from the expectations' summaries: those whose deadline
    may still come (after the engine's due watermark, with a margin) and which have no success
    yet. Extra rows only cost one evaluation each. (The migration that creates the table, and
    benchmarks that load signals without running the engine.)"""
    # Imported here: that module reads this one's table names at import time.
    from fulfillwatch.incident_engine.detection.engine_state import load_watermarks

    horizon = load_watermarks(client).due - timedelta(hours=1)
    client.command(f"TRUNCATE TABLE {OPEN_EXPECTATIONS_TABLE}")
    client.command(
        f"""
        INSERT INTO {OPEN_EXPECTATIONS_TABLE}
        SELECT {INCIDENT_ID_SQL}, if(receipt_at < {NEVER_SQL}, due_at, first_at)
        FROM (
            SELECT project, stripe_event_id, effect, min(receipt_at) AS receipt_at, min(due_at) AS due_at,
                   min(first_at) AS first_at, max(last_result) AS last_result, max(has_skipped) AS has_skipped
            FROM {EXPECTATIONS_TABLE}
            GROUP BY project, stripe_event_id, effect
        )
        WHERE tupleElement(last_result, 3) != 'success'
          AND (receipt_at < {NEVER_SQL} OR has_skipped)
          -- a skipped result falls due a default timeout after it was seen: 30 days covers any
          AND if(receipt_at < {NEVER_SQL}, due_at, first_at + toIntervalDay(30)) > {{horizon:DateTime64(6, 'UTC')}}
        """,
        parameters={"horizon": horizon},
        # Aggregated in the table's key order, streaming: 1.2 GiB and 20 s at 10 M expectations
        # instead of 7.3 GiB and 39 s for a hash table of every expectation.
        settings={"optimize_aggregation_in_order": 1},
    )


ENGINE_MIGRATIONS += (
    Migration(
        # Hot state for detection: what arrived (signal, outcome, deadline) and which
        # expectations are still open, so that a tick reads its window and the live set, not
        # the history. fw_open_expectations is a key-value table: point reads and deletes.
        "engine/0008_open_expectations",
        (
            f"ALTER TABLE {ARRIVALS_TABLE} ADD COLUMN IF NOT EXISTS signal LowCardinality(String) DEFAULT ''",
            f"ALTER TABLE {ARRIVALS_TABLE} ADD COLUMN IF NOT EXISTS outcome LowCardinality(String) DEFAULT ''",
            f"ALTER TABLE {ARRIVALS_TABLE} ADD COLUMN IF NOT EXISTS due_at DateTime64(6, 'UTC') DEFAULT {EPOCH_SQL}",
            # The new view first, then the old one dropped: an arrival read twice is harmless,
            # one never written is not.
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS fw_arrivals_signal_mv TO {ARRIVALS_TABLE} "
            f"AS {_ARRIVAL_ROWS_WITH_SIGNAL}",
            "DROP VIEW IF EXISTS fw_arrivals_mv",
            f"""
            CREATE TABLE IF NOT EXISTS {OPEN_EXPECTATIONS_TABLE} (
                incident_id String,
                due_at DateTime64(6, 'UTC')
            )
            ENGINE = EmbeddedRocksDB
            PRIMARY KEY incident_id
            """,
            rebuild_open_expectations,
        ),
    ),
)

# Reconciliation with Stripe and declared expectations (plans): their own module, same sequence.
ENGINE_MIGRATIONS += declared_migrations(INCIDENT_ID_SQL)

ENGINE_MIGRATIONS += (
    Migration(
        # Active incidents are written a few rows at a time, after every transition. By default
        # EmbeddedRocksDB builds an SST file per insert ("bulk insert"): 8 ms for one row.
        # Through the memtable (and its write-ahead log) the same insert takes 2 ms. Not for
        # the open set: a burst enters it 100,000 rows at once, and memtables holding those
        # took serve past 1 GiB under six 20 MiB batches.
        "engine/0011_key_value_small_writes",
        (f"ALTER TABLE {ACTIVE_INCIDENTS_TABLE} MODIFY SETTING optimize_for_bulk_insert = 0",),
    ),
)


#: Every tick reads and writes a few keys: as a ``ReplacingMergeTree`` each write was a new part
#: (and a merge later) and each read a ``FINAL``; through RocksDB's memtable a write is a put and
#: a read a point get. The latest write of a key wins, which is what readers want (a lease claim,
#: a watermark moved back on purpose).
_ENGINE_STATE_KEY_VALUE = "ENGINE = EmbeddedRocksDB PRIMARY KEY key SETTINGS optimize_for_bulk_insert = 0"


def _engine_state_to_key_value(client: Client) -> None:
    """Move ``fw_engine_state`` from a ``ReplacingMergeTree`` to a key-value table, keeping
    each key's latest value. Safe to re-run after a crash at any step: the copy is keyed, and
    the exchange is made only while the table is not the key-value one yet."""
    engine = client.query(
        "SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
        parameters={"t": ENGINE_STATE_TABLE},
    ).result_rows
    moved = f"{ENGINE_STATE_TABLE}_key_value"
    if engine[0][0] != "EmbeddedRocksDB":
        client.command(f"CREATE TABLE IF NOT EXISTS {moved} AS {ENGINE_STATE_TABLE} {_ENGINE_STATE_KEY_VALUE}")
        client.command(f"INSERT INTO {moved} SELECT * FROM {ENGINE_STATE_TABLE} FINAL")
        client.command(f"EXCHANGE TABLES {ENGINE_STATE_TABLE} AND {moved}")
    client.command(f"DROP TABLE IF EXISTS {moved}")  # the old table, after the exchange


ENGINE_MIGRATIONS += (Migration("engine/0012_engine_state_key_value", (_engine_state_to_key_value,)),)
ENGINE_MIGRATIONS += (
    Migration(
        # Readiness probed the store by writing to fw_engine_state, a new part each time: on a
        # full disk it failed, as the data's inserts do. A key-value write goes to RocksDB's
        # write-ahead log and still succeeded there, so the probe writes a part of its own.
        "engine/0013_write_probes",
        (
            f"""
            CREATE TABLE IF NOT EXISTS {WRITE_PROBES_TABLE} (
                process String,
                at DateTime64(3, 'UTC')
            )
            ENGINE = ReplacingMergeTree(at)
            ORDER BY process
            """,
        ),
    ),
    Migration(
        # Before engine/0013, every process that ever ran left its readiness probe in
        # fw_engine_state under ``probe:<pid>``; nothing reads them now.
        "engine/0014_forget_old_probes",
        (f"DELETE FROM {ENGINE_STATE_TABLE} WHERE startsWith(key, 'probe:')",),
    ),
)
ENGINE_MIGRATIONS += (
    Migration(
        # Nearly every tick enters the few expectations its window saw waiting, before it stores
        # its watermarks: as a bulk insert (an SST file per insert, the default kept by
        # engine/0011) that took ~8 ms, through the memtable ~4, and ticks were ~4 ms faster
        # paired by window on the 10 M store. A burst's 100,000 rows pass through the memtable
        # too: the robustness test's six 20 MiB batches peaked at 780-917 MiB so, 831-850
        # without (972 against 901 when engine/0011 was measured; docs/BENCHMARKS.md).
        "engine/0015_open_set_small_writes",
        (f"ALTER TABLE {OPEN_EXPECTATIONS_TABLE} MODIFY SETTING optimize_for_bulk_insert = 0",),
    ),
)


def _alerts_start_where_the_feed_began(client: Client) -> None:
    """An alert sender that never stored a position read ``fw_log_feed`` from its first row: the
    rows written since ``engine/0006`` created it. Store a position there, so that following the
    whole log announces nothing the feed did not hold (a store upgraded from before durable
    alerts would otherwise announce its last days' transitions once)."""
    # Imported here: those modules read this one's table names at import time.
    from fulfillwatch.incident_engine.detection.engine_state import ALERT_POSITION_KEY, read_state, write_state
    from fulfillwatch.incident_engine.incidents.log_reads import latest_seq

    exists = f"SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = '{LOG_FEED_TABLE}'"
    if read_state(client, ALERT_POSITION_KEY) is not None or not client.query(exists).result_rows[0][0]:
        return  # the sender's own position, or a run of this migration that got past the drop
    first, rows = client.query(f"SELECT min(seq), count() FROM {LOG_FEED_TABLE}").result_rows[0]
    position = int(first) - 1 if rows else latest_seq(client)
    if position > 0:
        write_state(client, ALERT_POSITION_KEY, {"seq": position}, datetime.now(timezone.utc))


ENGINE_MIGRATIONS += (
    Migration(
        # Followers read the log in ``seq`` order from a projection of the log instead of a
        # table fed by a materialized view: the view's insert, planned per append, cost ~6 ms of
        # every append (an incident log append on the 10 M store: ~23 ms with the view, ~17 with
        # the projection, ~12 with neither; docs/BENCHMARKS.md). A ReplacingMergeTree keeps a
        # projection only when its merges rebuild it. Followers' positions are ``seq``s, which
        # the log holds too; the rows the feed held are all in the log (it kept 30 days).
        "engine/0016_log_feed_as_projection",
        (
            f"ALTER TABLE {INCIDENT_LOG_TABLE} MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild'",
            f"ALTER TABLE {INCIDENT_LOG_TABLE} ADD PROJECTION IF NOT EXISTS {LOG_BY_SEQ} "
            f"(SELECT {LOG_BY_SEQ_COLUMNS} ORDER BY seq)",
            f"ALTER TABLE {INCIDENT_LOG_TABLE} MATERIALIZE PROJECTION {LOG_BY_SEQ} SETTINGS mutations_sync = 1",
            _alerts_start_where_the_feed_began,
            "DROP VIEW IF EXISTS fw_log_feed_mv",
            f"DROP TABLE IF EXISTS {LOG_FEED_TABLE}",
        ),
    ),
)

#: Compressed blocks of about one granule (256 rows) for the tables the engine reads by key. A
#: read by key decompresses every block its granule lies in, and with the defaults (blocks of
#: 64 KiB to 1 MiB) the heads of 22 incidents decompressed 12.2 MB of the 100 M benchmark's log
#: (0.98 MB so, 22 → 12 ms) and the summaries of 22 expectations 25.7 MB of the 10 M store's
#: fw_expectations (2.1 MB, 25 → 12.5 ms); the files stay the same size (docs/BENCHMARKS.md).
SMALL_BLOCKS = "min_compress_block_size = 4096, max_compress_block_size = 16384"

ENGINE_MIGRATIONS += (
    Migration(
        # The rows stored before are rewritten once (a table's merged parts are never merged
        # again, so they would keep their large blocks): at 100 M expectations, minutes.
        "engine/0017_small_blocks_for_reads_by_key",
        (
            f"ALTER TABLE {INCIDENT_LOG_TABLE} MODIFY SETTING {SMALL_BLOCKS}",
            f"ALTER TABLE {EXPECTATIONS_TABLE} MODIFY SETTING {SMALL_BLOCKS}",
            f"OPTIMIZE TABLE {INCIDENT_LOG_TABLE} FINAL",
            f"OPTIMIZE TABLE {EXPECTATIONS_TABLE} FINAL",
        ),
    ),
)

ENGINE_RETENTION = (
    RetentionRule(INCIDENT_LOG_TABLE, "at"),
    RetentionRule(ARRIVALS_TABLE, "ingested_at"),
    RetentionRule(DEADLINES_TABLE, "due_at"),
    RetentionRule(EXPECTATIONS_TABLE, "last_ingested_at"),
    *DECLARED_RETENTION,
)

"""Reads by key decompress about what their granule holds.

In-process on a real chDB store: the tables the engine reads by key (the incident log for
heads, ``fw_expectations`` for summaries) write compressed blocks of about one granule
(``engine/0017``), and the migration rewrites the rows stored before it. With ClickHouse's
default blocks (64 KiB to 1 MiB) one read by key decompressed megabytes for a few rows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from clickhouse_connect.driver.client import Client

from fulfillwatch.collector_processor.migrations import apply_migrations
from fulfillwatch.collector_processor.signals import SIGNAL_MIGRATIONS
from fulfillwatch.collector_processor.store import Store, parse_dsn
from fulfillwatch.incident_engine.detection.expectations import expectations_of_events
from fulfillwatch.incident_engine.incidents import log_reads
from fulfillwatch.incident_engine.schema import ENGINE_MIGRATIONS

_MIGRATION = "engine/0017_small_blocks_for_reads_by_key"
_ROWS = 30_000
_HEADS = log_reads.heads_select("incident_id IN {ids:Array(String)}")  # as the engine reads them


def _decompressed(client: Client, read: Callable[[], object]) -> int:
    """Bytes the store decompressed during ``read``: the least of three reads, since the counter
    is the process's and a merge elsewhere could only add to it."""
    counter = "SELECT value FROM system.events WHERE event = 'CompressedReadBufferBytes'"

    def now() -> int:
        rows = client.query(counter).result_rows
        return int(rows[0][0]) if rows else 0

    def once() -> int:
        before = now()
        read()
        return now() - before

    return min(once() for _ in range(3))


def test_a_store_from_before_the_small_blocks_reads_a_few_kilobytes_per_key_after_the_upgrade(
    chdb_dir: str,
) -> None:
    client = Store(parse_dsn(f"chdb://{chdb_dir}?database=t_read_blocks")).client("test")
    ids = [m.id for m in ENGINE_MIGRATIONS]
    apply_migrations(client, SIGNAL_MIGRATIONS + ENGINE_MIGRATIONS[: ids.index(_MIGRATION)])
    at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    # Parts of a file per column, as a store's parts are beyond ~10 MB (a smaller part keeps all
    # its columns in one file, a block per granule already), with receipts and log rows enough
    # for blocks of the defaults' size.
    for table in ("fw_expectations", "fw_incident_log"):
        client.command(f"ALTER TABLE {table} MODIFY SETTING min_bytes_for_wide_part = 0")
    client.command(
        "INSERT INTO fw_signals (signal_id, signal, stripe_event_id, at, due_at, event_type, service) "
        "SELECT concat('r-', toString(number)), 'receipt', concat('evt_', toString(cityHash64(number))), "
        "{at:DateTime64(6, 'UTC')}, {at:DateTime64(6, 'UTC')} + toIntervalMinute(30), 'invoice.paid', 'shop' "
        "FROM numbers({rows:UInt64})",
        parameters={"at": at, "rows": _ROWS},
    )
    client.command(
        "INSERT INTO fw_incident_log (incident_id, transition_id, seq, at, transition, state, kind, actor, reason, "
        "cause, stripe_event_id, effect, event_type, service, replay_id, details) "
        "SELECT concat('inc_', toString(cityHash64(number))), 'opened', number + 1, {at:DateTime64(6, 'UTC')}, "
        "'opened', 'open', 'result_missing', 'system', repeat('no result by the deadline ', 4), 'deadline', "
        "concat('evt_', toString(cityHash64(number))), '', 'invoice.paid', 'shop', '', '{}' "
        "FROM numbers({rows:UInt64})",
        parameters={"at": at, "rows": _ROWS},
    )
    client.command("OPTIMIZE TABLE fw_expectations FINAL")
    client.command("OPTIMIZE TABLE fw_incident_log FINAL")
    events = [f"evt_{row[0]}" for row in client.query("SELECT cityHash64(number) FROM numbers(3)").result_rows]
    incidents = [f"inc_{event[4:]}" for event in events]

    def reads() -> tuple[int, int]:
        summaries = _decompressed(client, lambda: expectations_of_events(client, events))
        heads = _decompressed(client, lambda: client.query(_HEADS, parameters={"ids": incidents}).result_rows)
        return summaries, heads

    summaries_before, heads_before = reads()
    assert apply_migrations(client, SIGNAL_MIGRATIONS + ENGINE_MIGRATIONS) == [_MIGRATION]
    summaries_after, heads_after = reads()

    assert len(expectations_of_events(client, events)) == 3  # the rows are all still there
    assert client.query("SELECT count() FROM fw_incident_log").result_rows[0][0] == _ROWS
    # Three keys: three granules of 256 rows in each column read, a few KiB each.
    assert summaries_after < 400_000 < summaries_before, (summaries_before, summaries_after)
    assert heads_after < 400_000 < heads_before, (heads_before, heads_after)
    client.command("DROP DATABASE t_read_blocks")

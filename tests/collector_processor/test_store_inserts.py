"""Inserts through ``insert_rows``: the column types it remembers per table (chDB, in process)."""

from __future__ import annotations

from fulfillwatch.collector_processor.store import Store, insert_rows


def test_insert_rows_learns_a_column_added_after_its_first_insert(store: Store) -> None:
    client = store.client("test")
    client.command("CREATE TABLE t_grows (id String, n UInt32) ENGINE = MergeTree ORDER BY id")
    insert_rows(client, "t_grows", [["a", 1]], ["id", "n"])
    client.command("ALTER TABLE t_grows ADD COLUMN at DateTime64(3, 'UTC') DEFAULT 0")
    insert_rows(client, "t_grows", [["b", 2, "2026-12-03 01:02:03.456"]], ["id", "n", "at"])
    rows = client.query("SELECT id, n, toString(at) FROM t_grows ORDER BY id").result_rows
    assert rows == [("a", 1, "1970-01-01 00:00:00.000"), ("b", 2, "2026-12-03 01:02:03.456")]

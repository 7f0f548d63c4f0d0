"""Inserts through ``insert_rows``: rows sent inside the statement (chDB, in process)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from fulfillwatch.collector_processor.store import Store, insert_rows


def test_insert_rows_writes_a_column_added_after_its_first_insert(store: Store) -> None:
    client = store.client("test")
    client.command("CREATE TABLE t_grows (id String, n UInt32) ENGINE = MergeTree ORDER BY id")
    insert_rows(client, "t_grows", [["a", 1]], ["id", "n"])
    client.command("ALTER TABLE t_grows ADD COLUMN at DateTime64(3, 'UTC') DEFAULT 0")
    insert_rows(client, "t_grows", [["b", 2, "2026-12-03 01:02:03.456"]], ["id", "n", "at"])
    rows = client.query("SELECT id, n, toString(at) FROM t_grows ORDER BY id").result_rows
    assert rows == [("a", 1, "1970-01-01 00:00:00.000"), ("b", 2, "2026-12-03 01:02:03.456")]


def test_insert_rows_stores_sender_text_and_instants_exactly(store: Store) -> None:
    client = store.client("test")
    client.command(
        "CREATE TABLE t_exact (n UInt64, text String, at DateTime64(6, 'UTC'), day Date, tags Array(String))"
        " ENGINE = MergeTree ORDER BY n"
    )
    texts = ['it\'s "quoted"', "back\\slash\\n not a newline", "line\nbreak\ttab\r\x00nul", "é ✓ 支払い 💳", ""]
    utc = datetime(2026, 12, 3, 6, 7, 8, 123456, tzinfo=timezone.utc)
    elsewhere = timezone(timedelta(hours=-5, minutes=-30))
    rows = [
        [n, text, utc.astimezone(elsewhere) + timedelta(microseconds=n), date(2026, 12, 3), [text, "b"]]
        for n, text in enumerate(texts)
    ]
    rows.append([2**64 - 1, "largest", utc.replace(tzinfo=None), date(1970, 1, 1), []])  # naive: UTC, as the column

    insert_rows(client, "t_exact", rows, ["n", "text", "at", "day", "tags"])

    stored = client.query("SELECT n, text, at, day, tags FROM t_exact ORDER BY n").result_rows
    expected = [
        (n, text, utc + timedelta(microseconds=n), date(2026, 12, 3), [text, "b"]) for n, text in enumerate(texts)
    ]
    assert stored == [*expected, (2**64 - 1, "largest", utc, date(1970, 1, 1), [])]


def test_insert_rows_refuses_a_row_that_does_not_fit_its_columns(store: Store) -> None:
    client = store.client("test")
    client.command("CREATE TABLE t_refused (id String, n UInt32) ENGINE = MergeTree ORDER BY id")
    with pytest.raises(ValueError, match=r"a row for t_refused has 3 values for 2 columns"):
        insert_rows(client, "t_refused", [["a", 1], ["b", 2, 3]], ["id", "n"])
    with pytest.raises(TypeError, match=r"cannot store a set value"):
        insert_rows(client, "t_refused", [["a", {1}]], ["id", "n"])
    assert client.query("SELECT count() FROM t_refused").result_rows == [(0,)]

"""The incident log in the order it was written: followers read it from the log's projection.

In-process on a real chDB store: the follower statements are planned on the projection
``by_seq`` (a range of ``seq``, not a scan of the log), and a store written before
``engine/0016`` (with the table ``fw_log_feed`` fed by a view) keeps every row and every
follower's position across the migration.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from fulfillwatch.collector_processor.identity import ExpectationIdentity
from fulfillwatch.collector_processor.migrations import apply_migrations
from fulfillwatch.collector_processor.signals import SIGNAL_MIGRATIONS
from fulfillwatch.collector_processor.store import Store, parse_dsn
from fulfillwatch.incident_engine.detection.engine_state import ALERT_POSITION_KEY, read_state
from fulfillwatch.incident_engine.incidents import log_reads
from fulfillwatch.incident_engine.incidents.incident_log import append_transitions
from fulfillwatch.incident_engine.model.transitions import State, Transition, TransitionType
from fulfillwatch.incident_engine.schema import ENGINE_MIGRATIONS, LOG_BY_SEQ, LOG_FEED_TABLE

_AT = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
_MIGRATION = "engine/0016_log_feed_as_projection"


def _transitions(count: int, kind_of: TransitionType = TransitionType.NOTE) -> list[Transition]:
    """``count`` rows of as many incidents (random ids: spread over the log's order)."""
    rows = []
    for _ in range(count):
        incident_id = f"inc_{uuid.uuid4().hex[:24]}"
        identity = ExpectationIdentity("default", f"evt_{incident_id}", "grant", "invoice.paid", "shop")
        state = State.RESOLVED if kind_of is TransitionType.RESOLVED else None
        rows.append(Transition(incident_id, identity, kind_of, state, "", "bob", "", uuid.uuid4().hex, _AT))
    return rows


def _plan(store: Store, statement: str, parameters: dict[str, object]) -> str:
    explained = store.client("test").query(f"EXPLAIN indexes = 1 {statement}", parameters=parameters).result_rows
    return "\n".join(str(row[0]) for row in explained)


@pytest.mark.parametrize(
    ("statement", "parameters"),
    [
        (log_reads.FEED_AFTER, {"types": ["resolved"], "limit": 100}),
        (log_reads.CHANGES_AFTER, {}),
        (log_reads.LATEST_SEQ, {}),
        (log_reads.RESOLVED_SINCE, {"since": _AT}),
    ],
    ids=["feed_after", "changes_after", "latest_seq", "resolved_since"],
)
def test_followers_read_the_log_in_seq_order_from_its_projection(
    store: Store, statement: str, parameters: dict[str, object]
) -> None:
    client = store.client("test")
    for _ in range(4):  # a few parts, each many granules (the log's are 256 rows)
        append_transitions(client, _transitions(1_500))
    recent = log_reads.latest_seq(client)  # the position of a follower that is up to date
    recent_rows = _transitions(5, TransitionType.RESOLVED)
    append_transitions(client, recent_rows)
    plan = _plan(store, statement, {"seq": recent, "written_since": recent, **parameters})
    assert f"ReadFromMergeTree ({LOG_BY_SEQ})" in plan, plan
    # What they read: the rows after the position, in seq order.
    changes = log_reads.changes_after(client, recent)
    assert [incident_id for _, incident_id in changes] == [t.incident_id for t in recent_rows]
    assert [seq for seq, _ in changes] == sorted(seq for seq, _ in changes)
    assert log_reads.latest_seq(client) == changes[-1][0]
    feed = log_reads.feed_after(client, recent, [TransitionType.RESOLVED], 3)
    assert [row.transition.incident_id for row in feed] == [t.incident_id for t in recent_rows[:3]]


def test_a_store_from_before_the_projection_keeps_its_rows_and_followers_positions(chdb_dir: str) -> None:
    location = parse_dsn(f"chdb://{chdb_dir}?database=t_log_order")
    client = Store(location).client("test")
    ids = [m.id for m in ENGINE_MIGRATIONS]
    feed_created = ids.index("engine/0006_log_feed")
    apply_migrations(client, SIGNAL_MIGRATIONS + ENGINE_MIGRATIONS[:feed_created])  # before the feed
    before_the_feed = _transitions(2)
    append_transitions(client, before_the_feed)
    apply_migrations(client, SIGNAL_MIGRATIONS + ENGINE_MIGRATIONS[: ids.index(_MIGRATION)])  # the release before
    early = _transitions(3)
    append_transitions(client, early)
    in_the_feed = client.query(f"SELECT seq, incident_id FROM {LOG_FEED_TABLE} ORDER BY seq").result_rows
    assert [incident_id for _, incident_id in in_the_feed] == [t.incident_id for t in early]
    position = in_the_feed[-1][0]  # a follower read this far
    waiting = _transitions(2)
    append_transitions(client, waiting)  # written before the upgrade, not followed yet

    assert apply_migrations(client, SIGNAL_MIGRATIONS + ENGINE_MIGRATIONS[: ids.index(_MIGRATION) + 1]) == [_MIGRATION]
    after = _transitions(2)
    append_transitions(client, after)
    expected = [t.incident_id for t in waiting + after]
    assert [incident_id for _, incident_id in log_reads.changes_after(client, position)] == expected
    every_row = [t.incident_id for t in before_the_feed + early + waiting + after]
    assert [incident_id for _, incident_id in log_reads.changes_after(client, 0)] == every_row
    tables = {row[0] for row in client.query("SHOW TABLES").result_rows}
    assert LOG_FEED_TABLE not in tables and "fw_log_feed_mv" not in tables
    # The alert sender had no position: it read the feed from its first row, so it starts there
    # in the log, not at the rows from before the feed.
    assert read_state(client, ALERT_POSITION_KEY) == {"seq": in_the_feed[0][0] - 1}

    [migration] = [m for m in ENGINE_MIGRATIONS if m.id == _MIGRATION]
    for step in migration.statements:  # run again, as after a crash before it was recorded
        if callable(step):
            step(client)
        else:
            client.command(step)
    assert [incident_id for _, incident_id in log_reads.changes_after(client, position)] == expected
    assert read_state(client, ALERT_POSITION_KEY) == {"seq": in_the_feed[0][0] - 1}
    assert log_reads.time_to_resolve(client, datetime.now(timezone.utc) - timedelta(days=1)) == (0, None)
    client.command("DROP DATABASE t_log_order")


def test_a_store_from_before_durable_alerts_announces_nothing_old_after_the_upgrade(chdb_dir: str) -> None:
    """A store that skips from before the feed to the projection in one upgrade: its feed was
    empty, so the alert sender starts after the log's last row."""
    location = parse_dsn(f"chdb://{chdb_dir}?database=t_log_order_old")
    client = Store(location).client("test")
    ids = [m.id for m in ENGINE_MIGRATIONS]
    apply_migrations(client, SIGNAL_MIGRATIONS + ENGINE_MIGRATIONS[: ids.index("engine/0006_log_feed")])
    append_transitions(client, _transitions(3))
    last = client.query("SELECT max(seq) FROM fw_incident_log").result_rows[0][0]
    apply_migrations(client, SIGNAL_MIGRATIONS + ENGINE_MIGRATIONS)
    assert read_state(client, ALERT_POSITION_KEY) == {"seq": last}
    client.command("DROP DATABASE t_log_order_old")

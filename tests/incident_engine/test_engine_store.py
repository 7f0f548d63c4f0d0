"""The engine against the real ClickHouse engine (chDB, in this process)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from fulfillwatch.collector_processor.migrations import apply_migrations
from fulfillwatch.collector_processor.signals import SIGNAL_MIGRATIONS, Signal, insert_signals
from fulfillwatch.collector_processor.store import Store, parse_dsn
from fulfillwatch.incident_engine.detection.engine import Engine, EngineSettings
from fulfillwatch.incident_engine.detection.engine_state import (
    Watermarks,
    load_watermarks,
    read_state,
    save_watermarks,
    write_state,
)
from fulfillwatch.incident_engine.detection.expectations import (
    Window,
    evaluate_window,
    expectations_of_event,
    expectations_of_events,
)
from fulfillwatch.incident_engine.model.status import Health, assess
from fulfillwatch.incident_engine.schema import ENGINE_MIGRATIONS
from support.signals import receipt_signal, result_signal

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

TIMEOUT = timedelta(minutes=30)


def _now(store: Store) -> datetime:
    now: datetime = store.client("test").query("SELECT now64(6, 'UTC')").result_rows[0][0]
    return now


def test_the_sql_prefilter_never_hides_an_expectation_that_needs_an_incident(store: Store) -> None:
    rng = random.Random(7)
    now = _now(store)
    signals: list[Signal] = []
    for n in range(400):
        event_id = f"evt_mix{n}"
        start = now - timedelta(minutes=rng.uniform(0, 120))
        if rng.random() < 0.8:
            signals.append(receipt_signal(event_id, start, start + timedelta(minutes=rng.choice([1, 30, 90]))))
        for k in range(rng.choice([0, 0, 1, 2, 3])):
            outcome = rng.choice(["success", "failure", "skipped"])
            signals.append(result_signal(event_id, start + timedelta(seconds=10 * (k + 1)), outcome, k))
    insert_signals(store.client("test"), signals)
    insert_signals(store.client("test"), signals[::3])  # some replayed rows, not merged yet

    client = store.client("test")
    now = _now(store)  # after the inserts: the window must include their ingest times
    window = Window(since=EPOCH, until=now, due_since=EPOCH, due_until=now, now=now, default_timeout=TIMEOUT)
    returned = {expectation.incident_id for expectation, _ in evaluate_window(client, window)}
    every = expectations_of_events(client, [f"evt_mix{n}" for n in range(400)])
    failing = {e.incident_id for e in every if assess(e, now, TIMEOUT).health is Health.FAILING}
    assert len(every) == len({s.stripe_event_id for s in signals})
    assert 50 < len(failing) < 400  # the mix has plenty of both
    assert returned == failing  # no incidents yet: exactly the failing ones reach Python


def test_an_expectation_s_rows_not_merged_yet_summarise_as_the_table_merges_them(store: Store) -> None:
    client = store.client("test")
    now = _now(store)
    events = [f"evt_parts{n}" for n in range(6)]
    # One insert per signal: each expectation has rows in several parts of fw_expectations (kept
    # apart until the test merges them: a background merge under load made this flaky).
    client.command("SYSTEM STOP MERGES fw_expectations")
    for n, event_id in enumerate(events):
        start = now - timedelta(minutes=40 + n)
        insert_signals(client, [result_signal(event_id, start + timedelta(seconds=5), "skipped", 0)])
        if n % 2:
            insert_signals(client, [receipt_signal(event_id, start, start + timedelta(minutes=30))])
        for attempt, outcome in enumerate(["failure", "success", "failure"][: n % 4]):
            insert_signals(
                client, [result_signal(event_id, start + timedelta(seconds=20 * (attempt + 1)), outcome, attempt)]
            )
    parts = client.query("SELECT count() FROM system.parts WHERE active AND table = 'fw_expectations'").result_rows[0][
        0
    ]
    assert parts > 1
    before = sorted(expectations_of_events(client, events), key=lambda e: e.incident_id)

    client.command("SYSTEM START MERGES fw_expectations")
    client.command("OPTIMIZE TABLE fw_expectations FINAL")  # the table's own merge: one row each
    assert client.query("SELECT count() FROM fw_expectations").result_rows[0][0] == len(events)
    assert sorted(expectations_of_events(client, events), key=lambda e: e.incident_id) == before
    assert {e.has_skipped for e in before} == {True}
    assert {e.receipt_at is None for e in before} == {True, False}
    assert {e.last_result.outcome if e.last_result else None for e in before} == {None, "failure", "success"}


def test_a_failure_opens_once_and_a_success_resolves(store: Store) -> None:
    engine = Engine(store, EngineSettings())
    now = _now(store)
    client = store.client("test")
    insert_signals(client, [receipt_signal("evt_a", now, now + TIMEOUT), result_signal("evt_a", now, "failure")])
    assert engine.tick().transitions == 1
    assert engine.tick().transitions == 0
    insert_signals(client, [result_signal("evt_a", now + timedelta(seconds=1), "success", 1, replay_id="rpl_1")])
    assert engine.tick().transitions == 1
    rows = client.query("SELECT transition, state, reason FROM fw_incident_log FINAL ORDER BY seq").result_rows
    assert rows == [
        ("opened", "open", "TenantNotFound: no tenant"),
        ("resolved", "resolved", "reprocess succeeded (replay rpl_1)"),
    ]


def test_expectations_of_one_event_are_decided_apart_by_effect_and_project(store: Store) -> None:
    """The engine reads summaries and results by event id: rows of the same event's other
    effects and projects come back too, and must not leak into the expectation decided."""
    engine = Engine(store, EngineSettings())
    client = store.client("test")
    now = _now(store)

    def of(signal: Signal, effect: str, project: str = "default") -> Signal:
        return replace(signal, signal_id=f"{signal.signal_id}-{effect}-{project}", effect=effect, project=project)

    due = now + TIMEOUT
    insert_signals(
        client,
        [
            of(receipt_signal("evt_shared", now, due), "grant"),
            of(result_signal("evt_shared", now, "failure"), "grant"),
            of(receipt_signal("evt_shared", now, due), "email"),
            of(result_signal("evt_shared", now, "success"), "email"),
            of(receipt_signal("evt_shared", now, due), "grant", "shop-eu"),
            of(result_signal("evt_shared", now, "success"), "grant", "shop-eu"),
        ],
    )
    assert engine.tick().transitions == 1
    later = now + timedelta(seconds=1)
    insert_signals(
        client,
        [
            of(result_signal("evt_shared", later, "failure", 1), "grant"),
            of(result_signal("evt_shared", later, "failure", 1), "email"),
            of(result_signal("evt_shared", later, "failure", 1), "grant", "shop-eu"),
        ],
    )
    engine.tick()
    grant = client.query(
        "SELECT transition, cause FROM fw_incident_log FINAL "
        "WHERE effect = 'grant' AND project = 'default' ORDER BY seq"
    ).result_rows
    assert grant == [("opened", "x-evt_shared-0-grant-default"), ("result_seen", "x-evt_shared-1-grant-default")]
    # The other two expectations failed only now: each opened an incident of its own.
    others = client.query(
        "SELECT effect, project, transition, cause FROM fw_incident_log FINAL "
        "WHERE NOT (effect = 'grant' AND project = 'default') ORDER BY effect, project"
    ).result_rows
    assert others == [
        ("email", "default", "opened", "x-evt_shared-1-email-default"),
        ("grant", "shop-eu", "opened", "x-evt_shared-1-grant-shop-eu"),
    ]


def test_a_backlog_is_worked_off_in_bounded_steps(store: Store) -> None:
    client = store.client("test")
    now = _now(store)
    columns = ["signal_id", "signal", "stripe_event_id", "at", "event_type", "outcome", "error_type", "ingested_at"]
    rows = []
    for hour in range(3):  # failures stored 3, 2 and 1 hours ago (the engine was down)
        moment = now - timedelta(hours=3 - hour)
        rows.append([f"f{hour}", "result", f"evt_old{hour}", moment, "invoice.paid", "failure", "Boom", moment])
    client.insert("fw_signals", rows, column_names=columns)
    save_watermarks(client, Watermarks(now - timedelta(hours=4), now - timedelta(hours=4)))
    engine = Engine(store, EngineSettings(max_window_s=900))
    reports = [engine.tick()]
    while not reports[-1].caught_up:
        reports.append(engine.tick())
        assert len(reports) < 20
    assert sum(report.transitions for report in reports) == 3
    assert 3 <= len(reports) <= 6  # empty stretches skipped, no step longer than 15 min
    marks = load_watermarks(client)
    assert marks.ingested >= now


def test_watermarks_can_be_moved_back(store: Store) -> None:
    client = store.client("test")
    now = _now(store)
    save_watermarks(client, Watermarks(now, now))
    save_watermarks(client, Watermarks(now - timedelta(hours=1), now - timedelta(hours=1)))
    assert load_watermarks(client).ingested == now - timedelta(hours=1)


def test_an_engine_whose_watermarks_are_moved_back_evaluates_that_stretch_again(store: Store) -> None:
    engine = Engine(store, EngineSettings(ingest_overlap_s=0))  # a window starts where the last ended
    now = _now(store)
    client = store.client("test")
    insert_signals(client, [receipt_signal("evt_back", now, now + TIMEOUT), result_signal("evt_back", now, "failure")])
    assert engine.tick().transitions == 1
    assert engine.tick().expectations == 0  # nothing new: the incident is not looked at again
    engine.move_watermarks(Watermarks(now - timedelta(minutes=1), now - timedelta(minutes=1)))
    again = engine.tick()
    assert (again.expectations, again.transitions) == (1, 0)  # evaluated again; nothing new to record
    assert load_watermarks(client).ingested >= now


def test_the_migration_backfills_signals_stored_before_it(chdb_dir: str) -> None:
    location = parse_dsn(f"chdb://{chdb_dir}?database=t_backfill")
    early = Store(location)
    client = early.client("test")
    apply_migrations(client, SIGNAL_MIGRATIONS)  # a collector that ran before the engine
    now = _now(early)
    insert_signals(client, [receipt_signal("evt_b", now, now + TIMEOUT), result_signal("evt_b", now, "failure")])
    assert "engine/0003_expectation_tables" in apply_migrations(client, ENGINE_MIGRATIONS)
    [expectation] = expectations_of_event(client, "evt_b")
    assert expectation.last_result is not None and expectation.last_result.outcome == "failure"
    assert Engine(early, EngineSettings()).tick().transitions == 1
    client.command("DROP DATABASE t_backfill")


def test_the_engine_state_moves_to_a_key_value_table_with_each_keys_latest_value(chdb_dir: str) -> None:
    location = parse_dsn(f"chdb://{chdb_dir}?database=t_state_kv")
    client = Store(location).client("test")
    before = [m for m in ENGINE_MIGRATIONS if m.id != "engine/0012_engine_state_key_value"]
    apply_migrations(client, SIGNAL_MIGRATIONS + tuple(before))  # a store of the release before
    now = _now(Store(location))
    save_watermarks(client, Watermarks(now, now))
    save_watermarks(client, Watermarks(now - timedelta(hours=1), now - timedelta(hours=1)))  # moved back: wins
    write_state(client, "engine_lease", {"holder": "engine-a"}, now)
    assert apply_migrations(client, SIGNAL_MIGRATIONS + ENGINE_MIGRATIONS) == ["engine/0012_engine_state_key_value"]

    def tables() -> dict[str, str]:
        rows = client.query("SELECT name, engine FROM system.tables WHERE database = 't_state_kv'").result_rows
        return {name: engine for name, engine in rows if name.startswith("fw_engine_state")}

    assert tables() == {"fw_engine_state": "EmbeddedRocksDB"}
    assert load_watermarks(client).ingested == now - timedelta(hours=1)
    assert read_state(client, "engine_lease") == {"holder": "engine-a"}
    [migration] = [m for m in ENGINE_MIGRATIONS if m.id == "engine/0012_engine_state_key_value"]
    for step in migration.statements:  # run again, as after a crash before it was recorded
        assert callable(step)
        step(client)
    assert tables() == {"fw_engine_state": "EmbeddedRocksDB"}
    assert load_watermarks(client).ingested == now - timedelta(hours=1)
    save_watermarks(client, Watermarks(now, now))
    assert load_watermarks(client).ingested == now
    client.command("DROP DATABASE t_state_kv")


def test_readiness_probes_of_earlier_releases_leave_the_engine_state(chdb_dir: str) -> None:
    location = parse_dsn(f"chdb://{chdb_dir}?database=t_old_probes")
    client = Store(location).client("test")
    before = [m for m in ENGINE_MIGRATIONS if m.id != "engine/0014_forget_old_probes"]
    apply_migrations(client, SIGNAL_MIGRATIONS + tuple(before))
    now = _now(Store(location))
    write_state(client, "probe:4242", {"at": 1.0}, now)  # as readiness wrote before engine/0013
    write_state(client, "engine_lease", {"holder": "engine-a"}, now)
    assert apply_migrations(client, SIGNAL_MIGRATIONS + ENGINE_MIGRATIONS) == ["engine/0014_forget_old_probes"]
    assert read_state(client, "probe:4242") is None
    assert read_state(client, "engine_lease") == {"holder": "engine-a"}
    client.command("DROP DATABASE t_old_probes")

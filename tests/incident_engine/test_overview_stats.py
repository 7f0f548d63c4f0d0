"""The overview's figures (``GET /api/stats``) from the window's signals, against the real
ClickHouse engine (chDB, in this process)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fulfillwatch.collector_processor.signals import insert_signals
from fulfillwatch.collector_processor.store import Store
from fulfillwatch.incident_engine.detection.engine import Engine, EngineSettings
from fulfillwatch.incident_engine.incidents.stats import Outcomes, overview
from support.signals import receipt_signal, result_signal

DAY = timedelta(hours=24)


def test_the_window_s_expectations_are_counted_once_each_by_their_latest_result(store: Store) -> None:
    client = store.client("test")
    now = datetime.now(timezone.utc)
    received = now - timedelta(hours=2)
    signals = [
        # fulfilled in 10 s, the receipt and the success stored twice (a replayed batch)
        receipt_signal("evt_ok", received, received + timedelta(minutes=30)),
        result_signal("evt_ok", received + timedelta(seconds=10), "success"),
        # failed, then a retry succeeded 30 s after the receipt: fulfilled, latency 30 s
        receipt_signal("evt_retried", received, received + timedelta(minutes=30)),
        result_signal("evt_retried", received + timedelta(seconds=5), "failure"),
        result_signal("evt_retried", received + timedelta(seconds=30), "success", 1),
        # failed and not retried
        receipt_signal("evt_failed", received, received + timedelta(minutes=30)),
        result_signal("evt_failed", received + timedelta(seconds=5), "failure"),
        # no result: one past its deadline, one not yet due; a skipped result is not an outcome
        receipt_signal("evt_overdue", received, received + timedelta(minutes=30)),
        receipt_signal("evt_pending", now - timedelta(minutes=1), now + timedelta(minutes=29)),
        result_signal("evt_pending", now - timedelta(seconds=30), "skipped"),
        # the result was stamped a second before its receipt (clocks of two processes)
        receipt_signal("evt_early_result", received, received + timedelta(minutes=30)),
        result_signal("evt_early_result", received - timedelta(seconds=1), "success"),
        # received before the window: not counted, even though its result is in the window
        receipt_signal("evt_before", now - DAY - timedelta(minutes=5), now - DAY + timedelta(minutes=25)),
        result_signal("evt_before", now - DAY + timedelta(minutes=1), "success"),
    ]
    insert_signals(client, signals)
    insert_signals(client, signals[:2])
    engine = Engine(store, EngineSettings())
    for _ in range(50):  # a tick covers at most 15 minutes; the failed and the overdue one open
        if engine.tick().caught_up:
            break

    figures = overview(client, DAY, timedelta(seconds=30))

    assert figures.expectations == Outcomes(fulfilled=3, failed=1, overdue=1, pending=1)
    assert figures.success_rate == round(3 / 5, 5)
    [hour] = figures.latency  # successes after their receipt, in the receipts' hour
    assert (hour.event_type, hour.fulfilled) == ("invoice.paid", 2)
    assert hour.p50_s >= 10 and hour.p99_s <= 30
    assert figures.open_by_kind == {"result_failed": 1, "result_missing": 1}
    assert figures.open_by_event_type == {"invoice.paid": 2}

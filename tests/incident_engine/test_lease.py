"""The engine lease and two engines on one store, in-process on chDB, with a controllable clock."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fulfillwatch.collector_processor.signals import Signal, insert_signals, micros
from fulfillwatch.collector_processor.store import Store
from fulfillwatch.incident_engine.detection.engine import Engine, EngineSettings
from fulfillwatch.incident_engine.detection.lease import EngineLease
from support.inprocess import FakeClock


def test_the_lease_keeps_one_engine_evaluating(store: Store) -> None:
    clock = FakeClock()
    first = EngineLease(store, "engine-a", duration_s=30, settle_s=0, clock=clock)
    second = EngineLease(store, "engine-b", duration_s=30, settle_s=0, clock=clock)
    assert first.hold() and not second.hold()
    clock.advance(20)
    assert first.hold() and not second.hold()  # renewals keep it
    first.release()  # a clean shutdown hands over at once
    assert second.hold() and not first.hold()
    # The holder dies without releasing: the standby waits until the lease expires, then takes over.
    clock.advance(29)
    assert not first.hold()
    clock.advance(2)
    assert first.hold()
    assert not second.hold() and not second.held


def test_two_engines_evaluating_at_once_record_each_transition_once(store: Store) -> None:
    client = store.client("test")
    now = client.query("SELECT now64(6, 'UTC')").result_rows[0][0]
    prefix = f"evt_two{uuid.uuid4().hex[:8]}_"
    signals = []
    for n in range(50):
        event_id = f"{prefix}{n}"
        at = now - timedelta(minutes=5)
        signals.append(Signal(f"r-{event_id}", "receipt", event_id, micros(at), due_at=micros(at)))
        if n % 2:
            signals.append(
                Signal(f"x-{event_id}", "result", event_id, micros(at), outcome="failure", error_type="Boom")
            )
    insert_signals(client, signals)
    # No lease: as if two engines ran against one server anyway.
    engines = [Engine(store, EngineSettings(ingest_overlap_s=1)) for _ in range(2)]
    for _ in range(2):
        for engine in engines:
            engine.tick()
    rows = client.query(
        """SELECT count(), uniqExact(incident_id) FROM fw_incident_log FINAL
           WHERE startsWith(stripe_event_id, {p:String}) AND transition = 'opened'""",
        parameters={"p": prefix},
    ).result_rows[0]
    assert rows == (50, 50)

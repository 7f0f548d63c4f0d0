"""Idempotent ingest and crash safety of a real ``fulfillwatch serve`` on chDB."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import fulfillwatch.instrumentation as fw
from support.otlp import encode, recorded_spans
from support.receiver import Received, RecordingServer
from support.serve import ServeProcess, free_port, wait_for

ALERT_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class TenantNotFound(LookupError):
    pass


def _scenario_batch(prefix: str, timeout: float) -> tuple[bytes, list[str]]:
    """One OTLP batch: a failed, a missing, a skipped-only and a healthy event."""
    with recorded_spans() as spans:
        failed = fw.record_receipt(f"evt_{prefix}failed", event_type="invoice.paid", timeout=timeout)
        with pytest.raises(TenantNotFound), fw.fulfillment(failed.event_id, receipt=failed):
            raise TenantNotFound("tenant row missing")
        fw.record_receipt(f"evt_{prefix}missing", event_type="invoice.paid", timeout=timeout)
        skipped = fw.record_receipt(f"evt_{prefix}skipped", event_type="checkout.session.completed", timeout=timeout)
        fw.record_result(skipped.event_id, "skipped", receipt=skipped)
        healthy = fw.record_receipt(f"evt_{prefix}healthy", event_type="invoice.paid", timeout=timeout)
        with fw.fulfillment(healthy.event_id, receipt=healthy.carrier()):
            pass
        body = encode(spans.get_finished_spans())
    return body, [f"evt_{prefix}{name}" for name in ("failed", "missing", "skipped", "healthy")]


def _heartbeat(server: ServeProcess) -> datetime:
    return datetime.fromisoformat(server.get("/healthz")["engine"]["heartbeat_at"].replace("Z", "+00:00"))


def _snapshot(server: ServeProcess, event_ids: list[str]) -> dict[str, Any]:
    """Incidents and timelines, without the fields that differ between identical stories (ingest
    times) — everything any query shows about these events."""
    story: dict[str, Any] = {}
    for event_id in event_ids:
        event = server.get(f"/api/events/{event_id}")
        for signal in event["signals"]:
            signal.pop("ingested_at")
        story[event_id] = {"signals": event["signals"], "expectations": event["expectations"], "incidents": []}
        for incident in event["incidents"]:
            detail = server.get(f"/api/incidents/{incident['id']}")
            for entry in detail["timeline"]:
                entry["details"].pop("ingested_at", None)
            detail.pop("expectation")
            story[event_id]["incidents"].append(detail)
    return story


def test_the_same_batch_three_times_equals_once(server: ServeProcess, prefix: str) -> None:
    body, event_ids = _scenario_batch(prefix, timeout=1)
    assert server.post_spans(body).status_code == 200
    wait_for(
        lambda: len(server.incidents(kind="result_missing", stripe_event_id=event_ids[1])) == 1,
        timeout=15,
        what="deadlines evaluated",
    )
    wait_for(lambda: server.incident_for(event_ids[2]), timeout=15, what="duplicate_suppressed")
    once = _snapshot(server, event_ids)
    assert [len(once[e]["incidents"]) for e in event_ids] == [1, 1, 1, 0]

    for _ in range(2):
        assert server.post_spans(body).status_code == 200
    # Two evaluations after the replays: the second re-reads them through the overlap window.
    for _ in range(2):
        last = _heartbeat(server)
        wait_for(lambda last=last: _heartbeat(server) > last, timeout=10, what="an evaluation of the replays")
    assert _snapshot(server, event_ids) == once


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServeProcess]:
    process = ServeProcess(data_dir=tmp_path / "data", log_path=tmp_path / "serve.log").start()
    yield process
    process.kill()


def test_sigkill_after_acknowledgement_loses_nothing_and_deadlines_still_fire(
    own_server: ServeProcess, prefix: str
) -> None:
    server = own_server
    acknowledged: list[list[str]] = []
    stop = threading.Event()

    def sender() -> None:
        batch_number = 0
        while not stop.is_set():
            batch_number += 1
            with recorded_spans() as spans:
                ids = [f"evt_{prefix}{batch_number}x{n}" for n in range(20)]
                for event_id in ids:
                    fw.record_receipt(event_id, event_type="invoice.paid", timeout=6)
                body = encode(spans.get_finished_spans())
            try:
                if server.post_spans(body).status_code == 200:
                    acknowledged.append(ids)
            except Exception:  # the server died mid-request: not acknowledged
                return

    thread = threading.Thread(target=sender)
    thread.start()
    wait_for(lambda: len(acknowledged) >= 15, timeout=30, what="15 acknowledged batches")
    server.kill()  # SIGKILL while the sender is still posting
    stop.set()
    thread.join(timeout=30)

    server.start()  # same data directory
    expected = {event_id for batch in acknowledged for event_id in batch}
    for event_id in sorted(expected):
        signals = server.get(f"/api/events/{event_id}")["signals"]
        assert [s["signal"] for s in signals] == ["receipt"], f"{event_id} lost"

    # Receipts were due 6 s after sending: the restarted engine must still open incidents.
    def missing_incidents() -> set[str]:
        return {
            i["stripe_event_id"] for i in server.incidents(kind="result_missing") if i["stripe_event_id"] in expected
        }

    # No wall-clock bound here: how fast they fire on a busy machine is not what this checks.
    wait_for(lambda: missing_incidents() == expected, timeout=120, what="every pending deadline to fire")


def test_an_alert_whose_delivery_was_cut_by_sigkill_is_delivered_once_after_restart(
    tmp_path: Path, prefix: str
) -> None:
    """The incident's log row is written, its alert not delivered (the receiver is not up yet,
    so attempt 1 fails and the sender waits to retry), then SIGKILL. After the restart the alert
    goes out with its next attempt — and only once, whatever later restarts do."""
    port = free_port()
    server = ServeProcess(data_dir=tmp_path / "data", log_path=tmp_path / "serve.log")
    server.config = f"""
[alerts.hook]
type = "webhook"
url = "http://127.0.0.1:{port}/hook"
allow_plain_http = true
secret = "{ALERT_SECRET}"
retry_schedule_s = [0, 5, 5, 5, 5, 5]
"""
    server.start()
    receiver: RecordingServer | None = None
    try:
        body, (failed, *_) = _scenario_batch(prefix, timeout=3600)
        assert server.post_spans(body).status_code == 200
        incident = wait_for(lambda: server.incident_for(failed), timeout=30, what="the incident")

        def attempts() -> list[dict[str, Any]]:
            timeline = server.get(f"/api/incidents/{incident['id']}")["timeline"]
            return [e["details"] for e in timeline if e["type"] == "alert_attempt"]

        wait_for(attempts, timeout=30, what="a failed first attempt")
        server.kill()
        receiver = RecordingServer(port=port)
        server.start()

        def about(request: Received) -> bool:
            return bool(request.json()["incident"]["id"] == incident["id"])

        wait_for(lambda: [r for r in receiver.requests() if about(r)], timeout=30, what="the alert after restart")
        for restart in range(2):  # later restarts send nothing again
            if restart:
                assert server.stop() == 0
                server.start()
            body, (later, *_) = _scenario_batch(f"{prefix}{restart}", timeout=3600)
            assert server.post_spans(body).status_code == 200
            later_incident = wait_for(lambda e=later: server.incident_for(e), timeout=30, what="a later incident")
            wait_for(
                lambda i=later_incident["id"]: [r for r in receiver.requests() if r.json()["incident"]["id"] == i],
                timeout=30,
                what="the later incident's alert (alerts go out in log order)",
            )
            delivered = [r for r in receiver.requests() if about(r)]
            assert len(delivered) == 1, [r.headers["webhook-id"] for r in delivered]
        outcomes = [(a["attempt"], a["outcome"]) for a in attempts()]
        assert outcomes[-1][1] == "delivered" and [o for _, o in outcomes[:-1]] == ["retrying"] * (len(outcomes) - 1)
    finally:
        server.stop()
        if receiver is not None:
            receiver.close()

"""End to end: a real app process (SDK + ``init()``) → OTLP → ``fulfillwatch serve`` → API.

Every test runs the app of ``tests/apps/shop_app.py`` as its own process, exporting real OTLP
over HTTP to a real ``fulfillwatch serve`` subprocess on embedded ClickHouse (chDB).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from support.serve import ServeProcess, run_app, wait_for


def _kinds(timeline: list[dict]) -> list[str]:
    return [entry["type"] for entry in timeline]


def test_failed_result_opens_result_failed_without_waiting_for_the_deadline(server: ServeProcess, prefix: str) -> None:
    # The receipt's deadline is 30 minutes away: an incident now is one opened by the failure.
    # (How soon — about a second — is measured by benchmarks/bench_reprocess.py, not here.)
    [event_id] = run_app("failed", otlp_url=server.otlp_url, ingest_key=server.ingest_key, prefix=prefix)
    incident = wait_for(lambda: server.incident_for(event_id), timeout=60, what="result_failed incident")
    assert incident["kind"] == "result_failed"
    assert incident["state"] == "open"
    assert incident["service"] == "shop"
    assert "TenantNotFound" in incident["reason"]
    detail = server.get(f"/api/incidents/{incident['id']}")
    assert _kinds(detail["timeline"]) == ["receipt", "result", "opened"]
    result = detail["timeline"][1]["details"]
    assert result["outcome"] == "failure"
    assert result["error_type"].endswith("TenantNotFound")
    assert result["receipt_span_id"] == detail["timeline"][0]["details"]["span_id"]  # span link
    assert detail["timeline"][2]["actor"] == "system"
    assert detail["event"]["customer"] == "cus_QXg1o8vcGmoR32"


def test_missing_result_opens_after_the_deadline_and_late_success_resolves(server: ServeProcess, prefix: str) -> None:
    [event_id] = run_app("missing", otlp_url=server.otlp_url, ingest_key=server.ingest_key, prefix=prefix, timeout=3)
    sent = time.monotonic()
    assert server.incident_for(event_id) is None  # not before the deadline
    incident = wait_for(lambda: server.incident_for(event_id), timeout=15, what="result_missing incident")
    assert time.monotonic() - sent >= 2.0
    assert incident["kind"] == "result_missing" and incident["state"] == "open"

    run_app(
        "success", otlp_url=server.otlp_url, ingest_key=server.ingest_key, prefix=prefix
    )  # the lost job finally runs
    resolved = wait_for(
        lambda: (i := server.incident_for(event_id)) and i["state"] == "resolved" and i,
        timeout=5,
        what="resolution",
    )
    assert resolved["reason"] == "late success"
    detail = server.get(f"/api/incidents/{incident['id']}")
    assert _kinds(detail["timeline"]) == ["receipt", "opened", "result", "resolved"]
    resolution = detail["timeline"][-1]
    assert resolution["actor"] == "system" and resolution["details"]["resolved_by"] == "late_success"
    assert detail["opened_at"] == incident["opened_at"]  # the story is kept, not replaced


def test_only_skipped_results_become_duplicate_suppressed(server: ServeProcess, prefix: str) -> None:
    [event_id] = run_app("skipped", otlp_url=server.otlp_url, ingest_key=server.ingest_key, prefix=prefix, timeout=2)
    incident = wait_for(lambda: server.incident_for(event_id), timeout=15, what="duplicate_suppressed")
    assert incident["kind"] == "duplicate_suppressed"
    event = server.get(f"/api/events/{event_id}")
    assert [e["health"] for e in event["expectations"]] == ["failing"]
    assert [s["outcome"] for s in event["signals"]] == ["", "skipped"]


def test_a_thousand_healthy_events_open_no_incident(server: ServeProcess, prefix: str) -> None:
    before = server.get("/api/health")["ingest"]["signals_stored"]
    event_ids = run_app(
        "healthy", otlp_url=server.otlp_url, ingest_key=server.ingest_key, prefix=prefix, count=1000, timeout=1
    )
    assert len(set(event_ids)) == 1000
    wait_for(
        lambda: server.get("/api/health")["ingest"]["signals_stored"] - before >= 2000,
        timeout=10,
        what="2000 signals stored",
    )
    # The deadlines (1 s) have passed once an evaluation started 1.5 s from now has run.
    deadlines_passed = time.time() + 1.5
    wait_for(lambda: _heartbeat_after(server, deadlines_passed), timeout=15, what="an evaluation after the deadlines")
    for event_id in event_ids[::50]:
        assert [e["health"] for e in server.get(f"/api/events/{event_id}")["expectations"]] == ["healthy"]
    opened = [i for i in server.incidents() if i["stripe_event_id"].startswith(f"evt_{prefix}")]
    assert opened == []


def _heartbeat_after(server: ServeProcess, instant: float) -> bool:
    from datetime import datetime

    beat = server.get("/healthz")["engine"]["heartbeat_at"]
    return datetime.fromisoformat(beat.replace("Z", "+00:00")).timestamp() > instant


def test_spans_also_reach_the_apps_own_exporter(server: ServeProcess, prefix: str, tmp_path: Path) -> None:
    spans_file = tmp_path / "app-backend.jsonl"
    [event_id] = run_app(
        "app-provider", otlp_url=server.otlp_url, ingest_key=server.ingest_key, prefix=prefix, spans_file=spans_file
    )
    exported = [json.loads(line) for line in spans_file.read_text().splitlines()]
    assert [s["name"] for s in exported] == ["fulfillment.receipt", "fulfillment.result"]
    assert all(s["attributes"]["stripe.event.id"] == event_id for s in exported)
    incident = wait_for(lambda: server.incident_for(event_id), timeout=5, what="incident from the app provider")
    assert incident["service"] == "shop-with-own-tracing"  # the app's provider, not one we created

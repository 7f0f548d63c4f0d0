"""Reprocess latency: ``POST /api/incidents/{id}/reprocess`` → the callback at the repair endpoint.

``fulfillwatch serve`` runs with a repair target pointing at a local endpoint that records the
arrival time of every request. For ``--incidents`` failed incidents, one after another, the
benchmark posts a reprocess and waits for the callback carrying the returned replay id; the
latency is arrival time minus the time just before the POST. The baseline, measured in the same
run, is the same signed POST sent directly to the endpoint (what the network and the endpoint
cost by themselves). Target: median < 1 s.

    python benchmarks/bench_reprocess.py [--incidents 40]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import fulfillwatch.instrumentation as fw  # noqa: E402
from benchmarks._report import report  # noqa: E402
from fulfillwatch.incident_engine.delivery.signing import signed_request  # noqa: E402
from support.otlp import encode, recorded_spans  # noqa: E402
from support.receiver import RecordingServer  # noqa: E402
from support.serve import ServeProcess, wait_for  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TARGET_S = 1.0


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(values) * 1000, 1),
        "p95_ms": round(_percentile(values, 0.95) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=40)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    endpoint = RecordingServer()
    workdir = Path(tempfile.mkdtemp(prefix="fw-bench-reprocess-"))
    config_text = f'[repair_targets.bench-shop]\nurl = "{endpoint.url}/repair"\nsecrets = ["{SECRET}"]\n'
    server = ServeProcess(data_dir=workdir / "data", log_path=workdir / "serve.log")
    server.config = config_text
    server.extra_args = ("--log-level", "warning")
    try:
        server.start()
        result = run(server, endpoint, args.incidents)
        assert server.stop() == 0, server.log()
    finally:
        server.kill()
        endpoint.close()
        shutil.rmtree(workdir, ignore_errors=True)
    report(result, args.json)


def run(server: ServeProcess, endpoint: RecordingServer, count: int) -> dict[str, Any]:
    event_ids = [f"evt_benchreprocess{n:05d}" for n in range(count)]
    with recorded_spans(service="bench-shop") as spans:
        for event_id in event_ids:
            receipt = fw.record_receipt(event_id, event_type="invoice.paid")
            fw.record_result(event_id, "failure", error="tenant row missing", receipt=receipt)
        assert server.post_spans(encode(spans.get_finished_spans())).status_code == 200
    incidents = wait_for(
        lambda: (found := server.incidents(service="bench-shop")) and len(found) == count and found,
        timeout=60,
        what="the incidents",
    )

    def arrival(replay_id: str) -> float | None:
        return next((r.at for r in endpoint.requests() if r.headers.get("webhook-id") == replay_id), None)

    latencies: list[float] = []
    with server.client() as client:
        for incident in incidents:
            started = time.time()
            replay_id = client.post(f"/api/incidents/{incident['id']}/reprocess", json={}).json()["replay_id"]
            arrived = wait_for(lambda r=replay_id: arrival(r), timeout=30, interval=0.002, what="the callback")
            latencies.append(arrived - started)

    direct: list[float] = []
    with httpx.Client() as client:
        for n in range(count):
            body, headers = signed_request(f"rpl_direct{n}", {"replay_id": f"rpl_direct{n}"}, [SECRET])
            started = time.time()
            client.post(f"{endpoint.url}/repair", content=body, headers=headers)
            direct.append(
                next(r.at for r in endpoint.requests() if r.headers.get("webhook-id") == f"rpl_direct{n}") - started
            )

    # A failure result opens its incident at once (the writer wakes the engine), not at the
    # next interval: time from the span's acknowledgement to the incident in the API.
    opened: list[float] = []
    acknowledged: list[float] = []
    for n in range(min(count, 20)):
        event_id = f"evt_benchfailure{n:05d}"
        with recorded_spans(service="bench-shop") as spans:
            receipt = fw.record_receipt(event_id, event_type="invoice.paid")
            fw.record_result(event_id, "failure", error="tenant row missing", receipt=receipt)
            body = encode(spans.get_finished_spans())
        started = time.time()
        assert server.post_spans(body).status_code == 200
        acknowledged.append(time.time() - started)
        wait_for(lambda e=event_id: server.incident_for(e), timeout=30, interval=0.005, what="the incident")
        opened.append(time.time() - started)

    result: dict[str, Any] = {
        "incidents": count,
        "reprocess_to_callback": _summary(latencies),
        "baseline_direct_post": _summary(direct),
        "failure_to_incident": _summary(opened),
        "baseline_span_acknowledged": _summary(acknowledged),
        "target_median_ms": TARGET_S * 1000,
    }
    result["pass"] = result["reprocess_to_callback"]["median_ms"] < TARGET_S * 1000
    return result


if __name__ == "__main__":
    main()

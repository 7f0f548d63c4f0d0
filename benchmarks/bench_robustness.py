"""How fast ``fulfillwatch serve`` stays responsive while clients misbehave.

Against a real ``serve`` on a fresh store, three scenarios, each with a prober calling
``/readyz`` every 50 ms from its own thread; the baseline is the same prober against the same
server left alone, in the same run:

1. **aborted uploads** — 200 clients each send the head and 4 KiB of a 1 MB OTLP upload, then
   go away (half close, half reset). Target: prober p99 < 0.5 s.
2. **unauthenticated 300 MiB REST body** — the time until the refusal arrives while the client
   is still sending. Target: < 0.5 s.
3. **six concurrent 20 MiB OTLP batches** (just under the limit) (senders retry after 429 until accepted). Targets:
   ``/readyz`` p99 < 0.5 s during the batches, peak RSS < 1 GiB, every batch stored.

    python benchmarks/bench_robustness.py [--json FILE]
"""

from __future__ import annotations

import argparse
import concurrent.futures
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

from benchmarks._report import report  # noqa: E402
from support.abuse import Prober, abandon_upload, first_answer, receipts_batch_of_size, rss_mib  # noqa: E402
from support.serve import ServeProcess  # noqa: E402

MIB = 1024 * 1024
TARGET_P99_S = 0.5
TARGET_REFUSAL_S = 0.5
TARGET_RSS_MIB = 1024


def _latencies(answers: list[tuple[int, float]]) -> dict[str, Any]:
    times = sorted(seconds for _, seconds in answers)
    return {
        "probes": len(times),
        "unanswered": sum(1 for status, _ in answers if status == 0),
        "statuses": sorted({status for status, _ in answers}),
        "p50_s": round(statistics.median(times), 4),
        "p99_s": round(times[max(0, int(len(times) * 0.99) - 1)], 4),
        "max_s": round(times[-1], 4),
    }


def _probed(server: ServeProcess, work: Any) -> dict[str, Any]:
    prober = Prober(f"{server.api_url}/readyz").start()
    try:
        extra = work()
    finally:
        answers = prober.stop()
    return {**_latencies(answers), **(extra or {})}


def idle(server: ServeProcess) -> dict[str, Any]:
    return _probed(server, lambda: time.sleep(5))


def aborted_uploads(server: ServeProcess) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {server.ingest_key}", "Content-Type": "application/x-protobuf"}

    def work() -> dict[str, Any]:
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            list(
                pool.map(
                    lambda n: abandon_upload(server.otlp_port, "/v1/traces", headers, reset=n % 2 == 0), range(200)
                )
            )
        time.sleep(2)  # the server notices the last ones
        return {"clients": 200, "seconds": round(time.perf_counter() - started, 2)}

    return _probed(server, work)


def huge_unauthenticated_body(server: ServeProcess) -> dict[str, Any]:
    assert server.process is not None
    before = rss_mib(server.process.pid)
    times = []
    for _ in range(5):
        answer, seconds = first_answer(
            server.otlp_port, "/v1/receipt", 300 * MIB, {"Content-Type": "application/json"}, body_prefix=8 * MIB
        )
        assert answer.startswith("HTTP/1.1 401"), answer
        times.append(seconds)
    return {
        "refusal_s_median": round(statistics.median(times), 4),
        "refusal_s_max": round(max(times), 4),
        "rss_growth_mib": round(rss_mib(server.process.pid) - before, 1),
    }


def big_batches(server: ServeProcess) -> dict[str, Any]:
    assert server.process is not None
    made = [receipts_batch_of_size(f"evt_big{n}_", 20 * MIB - 4096, "shop") for n in range(6)]
    bodies, spans = [body for body, _ in made], made[0][1]
    headers = {"Authorization": f"Bearer {server.ingest_key}", "Content-Type": "application/x-protobuf"}

    def send(body: bytes) -> dict[str, Any]:
        throttled, started = 0, time.perf_counter()
        with httpx.Client(timeout=120) as client:
            while True:
                response = client.post(f"{server.otlp_url}/v1/traces", content=body, headers=headers)
                if response.status_code != 429:
                    return {"status": response.status_code, "throttled": throttled, "s": time.perf_counter() - started}
                throttled += 1
                time.sleep(int(response.headers.get("retry-after", "1")) / 5)

    def work() -> dict[str, Any]:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            outcomes = list(pool.map(send, bodies))
        return {
            "batch_mib": round(statistics.mean(len(body) for body in bodies) / MIB, 1),
            "spans_per_batch": spans,
            "batch_statuses": [outcome["status"] for outcome in outcomes],
            "answered_429": sum(outcome["throttled"] for outcome in outcomes),
            "all_stored_s": round(max(outcome["s"] for outcome in outcomes), 2),
            "peak_rss_mib": round(rss_mib(server.process.pid, "VmHWM")),
        }

    return _probed(server, work)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fw-bench-robust-"))
    server = ServeProcess(data_dir=workdir / "data", log_path=workdir / "serve.log")
    server.extra_args = ("--log-level", "warning")
    server.start()
    try:
        result: dict[str, Any] = {
            "idle": idle(server),
            "aborted_uploads": aborted_uploads(server),
            "huge_unauthenticated_body": huge_unauthenticated_body(server),
            "big_batches": big_batches(server),
        }
    finally:
        server.kill()
    result["targets"] = {"p99_s": TARGET_P99_S, "refusal_s": TARGET_REFUSAL_S, "rss_mib": TARGET_RSS_MIB}
    result["pass"] = bool(
        result["aborted_uploads"]["p99_s"] < TARGET_P99_S
        and result["aborted_uploads"]["unanswered"] == 0
        and result["huge_unauthenticated_body"]["refusal_s_max"] < TARGET_REFUSAL_S
        and result["big_batches"]["p99_s"] < TARGET_P99_S
        and result["big_batches"]["peak_rss_mib"] < TARGET_RSS_MIB
        and set(result["big_batches"]["batch_statuses"]) == {200}
    )
    report(result, args.json)


if __name__ == "__main__":
    main()

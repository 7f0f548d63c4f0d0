"""Cost of the Celery integration: publish + run of a no-op fulfillment task vs the same task
undeclared.

Real redis-server (broker and result backend), a real ``celery worker`` (solo pool) and
``fulfillwatch serve`` receiving the spans over OTLP. Both tasks live in one app with
``init()`` called in the publisher and the worker; only ``bench.fulfilled`` is declared, so the
difference is what declaring a task costs: the receipt span around the publish, the result span
at the end, the header, the export in the background. One round trip = ``apply_async`` until
``result.get()`` returns. The two tasks alternate round trip by round trip; their medians are
compared.
Target: ≤ 10 % added.

    python benchmarks/bench_celery.py [--tasks 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks._report import report  # noqa: E402
from support.processes import RedisServer, celery_worker  # noqa: E402
from support.serve import ServeProcess, wait_for  # noqa: E402

TARGET = 1.10


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=300, help="round trips per task per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fw-bench-celery-"))
    redis_server = RedisServer(workdir).start()
    # The key's project owns the bench app's service (celery_bench_app.py's service_name).
    server = ServeProcess(data_dir=workdir / "serve", log_path=workdir / "serve.log", services=("celery-bench",))
    server.extra_args = ("--log-level", "warning")
    worker = None
    try:
        server.start()
        os.environ.update(
            {
                "BENCH_BROKER_URL": redis_server.url,
                "BENCH_BACKEND_URL": redis_server.url.replace("/0", "/1"),
                **server.exporter_env(),
                "PYTHONPATH": str(ROOT / "benchmarks"),
            }
        )
        worker = celery_worker("celery_bench_app", dict(os.environ), workdir / "worker.log")
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import celery_bench_app as bench

        result = run(bench, args.tasks, args.rounds, server)
    finally:
        if worker is not None:
            worker.stop()
        server.kill()
        redis_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    report(result, args.json)


def run(bench: Any, tasks: int, rounds: int, server: ServeProcess) -> dict[str, Any]:
    def round_trip(task: Any, event_id: str) -> float:
        started = time.perf_counter()
        task.apply_async(args=(event_id,)).get(timeout=30)
        return time.perf_counter() - started

    for n in range(50):  # warm-up: connections, imports, the first exports
        round_trip(bench.plain, f"evt_benchwarm{n}"), round_trip(bench.fulfilled, f"evt_benchwarmf{n}")
    plain: list[float] = []
    fulfilled: list[float] = []
    # Alternate task by task, so background work (span export, the receiver) weighs on both alike.
    for number in range(rounds):
        for n in range(tasks):
            plain.append(round_trip(bench.plain, f"evt_benchp{number}x{n:06d}"))
            fulfilled.append(round_trip(bench.fulfilled, f"evt_benchf{number}x{n:06d}"))
    # Every declared task reached Fulfillwatch: receipt and result.
    last = f"evt_benchf{rounds - 1}x{tasks - 1:06d}"
    wait_for(lambda: len(server.get(f"/api/events/{last}")["signals"]) == 2, timeout=30, what="the last signals")
    base, cand = statistics.median(plain), statistics.median(fulfilled)
    result = {
        "round_trips_per_task": tasks * rounds,
        "plain_median_ms": round(base * 1000, 3),
        "fulfillment_median_ms": round(cand * 1000, 3),
        "added_ms": round((cand - base) * 1000, 3),
        "ratio": round(cand / base, 3),
        "target_ratio": TARGET,
    }
    result["pass"] = result["ratio"] <= TARGET
    return result


if __name__ == "__main__":
    main()

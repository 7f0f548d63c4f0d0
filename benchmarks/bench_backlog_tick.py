"""One engine tick over a burst: its time and how much memory it takes.

A fresh embedded store; the engine ticks 20 times with nothing to do (the baseline, median),
then:

* **receipts** — ``N`` receipts stored at once (one big OTLP batch, or an engine that was busy
  while they arrived): the tick must enter every one in the open set;
* **results** — ``N`` successes for those receipts: the tick must settle every one.

For each, the tick's duration and the growth of this process's RSS during it (sampled every
10 ms from a thread; chDB runs inside the process, so its memory counts too). The tick's cost
should follow the burst, and its memory should not hold the burst as Python objects.

    python benchmarks/bench_backlog_tick.py [--count 100000] [--json FILE]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks._report import report  # noqa: E402
from fulfillwatch.collector_processor.migrations import apply_migrations  # noqa: E402
from fulfillwatch.collector_processor.signals import SIGNAL_MIGRATIONS, insert_signals  # noqa: E402
from fulfillwatch.collector_processor.store import Store, parse_dsn  # noqa: E402
from fulfillwatch.incident_engine.detection.engine import Engine, EngineSettings  # noqa: E402
from fulfillwatch.incident_engine.detection.engine_state import store_now  # noqa: E402
from fulfillwatch.incident_engine.schema import ENGINE_MIGRATIONS, OPEN_EXPECTATIONS_TABLE  # noqa: E402
from support.signals import receipt_signal, result_signal  # noqa: E402


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _measured(tick: Callable[[], Any]) -> dict[str, float]:
    """Run ``tick`` while sampling RSS; its duration and the peak growth over the start."""
    gc.collect()
    start = _rss_mib()
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    began = time.perf_counter()
    tick()
    seconds = time.perf_counter() - began
    done.set()
    sampler.join()
    return {"tick_s": round(seconds, 4), "rss_growth_mib": round(peak[0] - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000, help="signals in each burst")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    store = Store(parse_dsn(f"chdb://{tempfile.mkdtemp(prefix='fw-backlog-')}"))
    client = store.client("bench")
    apply_migrations(client, SIGNAL_MIGRATIONS + ENGINE_MIGRATIONS)
    engine = Engine(store, EngineSettings())
    engine.tick()  # first tick: watermarks from the epoch to now
    idle = [_measured(engine.tick) for _ in range(20)]
    result: dict[str, Any] = {
        "count": args.count,
        "baseline": {key: statistics.median(tick[key] for tick in idle) for key in idle[0]},
    }

    now = store_now(client)
    ids = [f"evt_burst{n}" for n in range(args.count)]
    insert_signals(client, [receipt_signal(event, now, now + timedelta(minutes=30)) for event in ids])
    result["receipts"] = _measured(engine.tick)
    result["receipts"]["open_after"] = client.query(f"SELECT count() FROM {OPEN_EXPECTATIONS_TABLE}").result_rows[0][0]

    insert_signals(client, [result_signal(event, now + timedelta(seconds=1), "success") for event in ids])
    result["results"] = _measured(engine.tick)
    result["results"]["open_after"] = client.query(f"SELECT count() FROM {OPEN_EXPECTATIONS_TABLE}").result_rows[0][0]

    report(result, args.json)


if __name__ == "__main__":
    main()

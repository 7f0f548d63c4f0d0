"""Reconciliation against Stripe's Events API: 100,000 events against 100,000 stored receipts.

Stripe cannot be reached from here: the stand-in of ``examples/stripe_standin.py`` runs as its
own process on localhost (as Stripe is another machine) and the real ``stripe`` library reads
it, 100 events per page (Stripe's largest page). The store holds a receipt for 99 % of the
events. Measured, in one run:

* **baseline** — walking every page through the ``stripe`` library with nothing stored
  (what reading Stripe costs by itself);
* **reconcile** — a first ``Reconciler.poll()`` (backfill covering every event: the events
  stored, their expectations declared, the undelivered ones listed) plus the check once their
  grace has passed (each event matched with its receipt; 1 % open ``not_received``). Target:
  ≤ 30 s end to end;
* the stand-in's own time answering (beside both).

With ``--tick-store DIR`` (a store ``bench_detection.py --keep`` left, e.g. 10 M expectations)
it also measures the engine's 5 s tick with and without reconciliation on: the engine's leader
runs a poll and a check between two ticks (never during one), here after every tick (the
worst case; in production every 60 s and 15 s); the time they take between ticks is reported
beside. Target: the tick within 1.3 times.

    python benchmarks/bench_reconcile.py [--events 100000] [--tick-store DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._processes import in_process  # noqa: E402
from benchmarks._report import report  # noqa: E402

KEY = "rk_test_51BenchmarkStandInKey0123456789"
TARGET_TOTAL_S = 30.0
TARGET_TICK_RATIO = 1.3
MISSING_EVERY = 100  # one event in a hundred has no receipt
GRACE_S = 900

_RECEIPTS = """
INSERT INTO fw_signals (signal_id, signal, stripe_event_id, at, effect, event_type, service, outcome, due_at,
                        attempt, error_type, error_message, event_created, trace_id, span_id, source, ingested_at)
SELECT concat('r', toString(number)), 'receipt', concat('evt_r', leftPad(toString(number), 8, '0')),
       fromUnixTimestamp64Micro(toInt64({first_us:Int64} + number * {step_us:Int64}), 'UTC'), '', 'invoice.paid',
       'bench-shop', '', fromUnixTimestamp64Micro(toInt64({first_us:Int64} + number * {step_us:Int64} + 1800000000),
       'UTC'), 0, '', '', toUInt32(intDiv({first_us:Int64} + number * {step_us:Int64}, 1000000)), '', '', 'rest',
       fromUnixTimestamp64Micro(toInt64({first_us:Int64} + number * {step_us:Int64} + 1000000), 'UTC')
FROM numbers({count:UInt64}) WHERE number % {every:UInt64} != 7
"""


class StandIn:
    """The stand-in for Stripe's Events API as a process on a free port."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "examples.stripe_standin", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "STRIPE_STANDIN_KEY": KEY},
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/v1/events", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the stand-in did not start")

    def add(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Add events (in batches); returns the stand-in's counters."""
        answer: dict[str, Any] = {}
        for start in range(0, len(events), 5_000):
            batch = [{"event": e, "undelivered": e["id"].endswith("07")} for e in events[start : start + 5_000]]
            response = httpx.post(f"{self.url}/_standin/events", json={"events": batch}, timeout=120)
            response.raise_for_status()
            answer = response.json()
        return answer

    def counters(self) -> dict[str, Any]:
        """Time spent answering list requests, and how many there were."""
        response = httpx.post(f"{self.url}/_standin/events", json={"events": []}, timeout=30)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _events(count: int, first: int, step_s: float) -> list[dict[str, Any]]:
    from examples.stripe_standin import stripe_event

    template = stripe_event("invoice.paid", "evt_template", first)
    made = []
    for number in range(count):
        event = dict(template)
        event["id"] = f"evt_r{number:08d}"
        event["created"] = int(first + number * step_s)
        made.append(event)
    return made


def _settings(data_dir: str, url: str) -> Any:
    from fulfillwatch.incident_engine.settings import load_settings

    config = Path(data_dir).parent / "bench.toml"
    config.write_text(
        f'[stripe]\nservice = "bench-shop"\nmode = "test"\napi_base = "{url}"\nevent_types = ["invoice.paid"]\n'
        f'grace_s = {GRACE_S}\nbackfill = "7d"\n'
    )
    os.environ["STRIPE_API_KEY"] = KEY
    return load_settings(config, demo=True, data_dir=Path(data_dir))


def reconcile_run(data_dir: str, url: str, count: int, results: Any) -> None:
    """Fill the store with receipts, then measure the baseline walk and the reconciliation."""
    from fulfillwatch.incident_engine.detection.declared import DeclaredCheck
    from fulfillwatch.incident_engine.incidents.incident_log import Journal
    from fulfillwatch.incident_engine.server import prepare_store
    from fulfillwatch.incident_engine.sources.stripe_events import Reconciler

    settings = _settings(data_dir, url)
    store = prepare_store(settings)
    client = store.client("bench")
    now = client.query("SELECT now64(6, 'UTC')").result_rows[0][0]
    first_us = int((now - timedelta(days=6)).timestamp() * 1e6)
    step_us = int(timedelta(days=5).total_seconds() * 1e6 / count)
    client.command(
        _RECEIPTS, parameters={"first_us": first_us, "step_us": step_us, "count": count, "every": MISSING_EVERY}
    )
    assert settings.stripe is not None
    reconciler = Reconciler(store, settings.stripe, "default", {})

    started = time.perf_counter()
    walked = sum(len(page.events) for _, page in reconciler.pages_since(now - timedelta(days=7)))
    baseline_s = time.perf_counter() - started
    baseline_requests = reconciler.api.requests

    started = time.perf_counter()
    poll = reconciler.poll()
    poll_s = time.perf_counter() - started
    check = DeclaredCheck(store, Journal(store), {}, clock=lambda _c: now + timedelta(seconds=GRACE_S + 60))
    started = time.perf_counter()
    checked = check.check()
    check_s = time.perf_counter() - started
    results.put(
        {
            "events_walked": walked,
            "baseline_requests": baseline_requests,
            "baseline_s": round(baseline_s, 2),
            "poll": {
                "pages": poll.pages,
                "events": poll.events,
                "new": poll.new_events,
                "undelivered": poll.failed_deliveries,
            },
            "poll_s": round(poll_s, 2),
            "check_s": round(check_s, 2),
            "decided": checked.decided,
            "not_received_opened": checked.opened,
            "reconcile_total_s": round(poll_s + check_s, 2),
        }
    )


def tick_run(data_dir: str, url: str, rounds: int, results: Any) -> None:
    """5 s ticks on a big store, alone and with reconciliation on: the engine's leader runs the
    reconciler and the declared check between two ticks (``Engine.chores``) — here after every
    tick, the worst case (in production every 60 s and 15 s)."""
    from fulfillwatch.incident_engine.detection.declared import DeclaredCheck
    from fulfillwatch.incident_engine.detection.engine import Engine, EngineSettings
    from fulfillwatch.incident_engine.detection.engine_state import Watermarks
    from fulfillwatch.incident_engine.incidents.incident_log import Journal
    from fulfillwatch.incident_engine.server import prepare_store
    from fulfillwatch.incident_engine.sources.stripe_events import Reconciler

    settings = _settings(data_dir, url)
    store = prepare_store(settings)
    client = store.client("bench")
    end = client.query("SELECT max(ingested_at) FROM fw_arrivals").result_rows[0][0] + timedelta(seconds=1)
    engine = Engine(store, EngineSettings())
    assert settings.stripe is not None
    check = DeclaredCheck(store, Journal(store), {}, interval_s=0)
    reconciler = Reconciler(store, settings.stripe, "default", {}, backfill=timedelta(hours=1), declare_lock=check.lock)
    reconciler.config = reconciler.config.model_copy(update={"poll_interval_s": 0.0})

    def cycles(offset: int, chores: bool) -> tuple[list[float], list[float]]:
        ticks, between = [], []
        for number in range(rounds):
            until = end - timedelta(seconds=5 * (offset + number))
            engine.clock = lambda _client, moment=until: moment
            engine.move_watermarks(Watermarks(until - timedelta(seconds=5), until - timedelta(seconds=5)))
            ticks.append(engine.tick().duration_s)
            if chores:
                started = time.perf_counter()
                reconciler.run_due()
                check.run_due()
                between.append(time.perf_counter() - started)
        return ticks, between

    cycles(0, True)  # warm caches; the first poll reads the backfill hour
    alone, beside, chore_s = [], [], []
    # Alternating blocks, many of them: a tick's time depends on the merges the previous inserts
    # started, and the machine's noise must hit both sides alike.
    for block in range(8):
        ticks, between = cycles(1 + block * rounds, chores=block % 2 == 1)
        (beside if block % 2 else alone).extend(ticks)
        chore_s.extend(between)
    results.put(
        {
            "tick_s_median_alone": round(statistics.median(alone), 4),
            "tick_s_median_with_reconciliation": round(statistics.median(beside), 4),
            "ratio": round(statistics.median(beside) / statistics.median(alone), 2),
            "chores_between_ticks_s_median": round(statistics.median(chore_s), 4),
            "chores_between_ticks_s_max": round(max(chore_s), 4),
            "stripe_requests": reconciler.api.requests,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--tick-store", type=Path, help="a bench_detection store to measure ticks on (copied)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    standin = StandIn(_free_port())
    figures: dict[str, Any] = {"events": args.events}
    work = Path(tempfile.mkdtemp(prefix="fw-bench-reconcile-"))
    try:
        now = int(time.time())
        started = time.perf_counter()
        standin.add(_events(args.events, now - 6 * 86400, 5 * 86400 / args.events))
        figures["standin_load_s"] = round(time.perf_counter() - started, 1)
        before = standin.counters()
        figures["reconcile"] = in_process(context, reconcile_run, str(work / "store"), standin.url, args.events)
        after = standin.counters()
        figures["standin_busy_s_both_walks"] = round(after["busy_s"] - before["busy_s"], 2)
        figures["standin_requests_both_walks"] = after["requests"] - before["requests"]
        total = figures["reconcile"]["reconcile_total_s"]
        figures["target_total_s"] = TARGET_TOTAL_S
        figures["met_total"] = total <= TARGET_TOTAL_S
        if args.tick_store is not None:
            copy = work / "tick-store"
            shutil.copytree(args.tick_store, copy, symlinks=True)  # chDB links metadata to its store
            figures["tick"] = in_process(context, tick_run, str(copy), standin.url, args.rounds)
            figures["tick"]["target_ratio"] = TARGET_TICK_RATIO
            figures["tick"]["met"] = figures["tick"]["ratio"] <= TARGET_TICK_RATIO
    finally:
        standin.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(figures, args.json)


if __name__ == "__main__":
    main()

"""Detection cost: one engine evaluation over a store of 10 M (and 100 M) expectations.

The store is filled inside chDB (``INSERT … SELECT … FROM numbers()``) with the same events per
day for every size (10 M over 7 days, 100 M over 70 days), ending now. Per event: a receipt
(deadline 30 min) and — 98 % — a success result; 0.5 % a failure only; 0.5 % a failure then a
successful retry; 1 % no result at all. Failing and missing expectations older than the
measured window already have an incident in the log (as if the engine had been running); with
``--live-days N`` the ones opened more than N days before it were ignored since, so that the live
set holds N days of incidents at every size (by default all stay live: 150 k at 10 M, 1.5 M at
100 M).

An evaluation is one ``Engine.tick()`` over a window of ``window`` seconds ending at the data's
end: 5 s is the steady state (the default interval), 15 min the largest step the engine takes
when working off a backlog. Every round evaluates a window of its own (the one before the
previous), as the engine meets each window once. Each is measured on every store, the stores
taking turns tick by tick (a process each), so that a ratio between them does not carry the
machine's drift; the ratios are reported of the medians and, round by round, as the median of
the per-round ratios ("paired"). The issue's targets: the steady-state tick ≤ 50 ms at 10 M,
and a larger store / 10 M ≤ 1.2 for the same window (≤ 1.5 for the 15-minute step: cost
follows the window, not the history). Then
``fulfillwatch serve`` runs on the largest store for a while (engine ticking, API queried) and
its peak RSS is read from /proc: target < 1.5 GiB.

    python benchmarks/bench_detection.py [--sizes 10000000,100000000] [--keep DIR] [--against CHECKOUT]

``--against CHECKOUT`` measures another checkout of this repository (the code before a change)
beside this one: each store is copied once per run, each copy gets a worker running the other
code (its ``*/src`` first on the worker's ``sys.path``), and the two tick the same windows in turn, so
``against`` in the result compares them window by window — the only comparison that holds on
a machine whose speed drifts by a factor of two within the hour.

The default is the 10 M store alone (about 4 minutes to generate, 3 GiB). A 100 M store takes
about 27 minutes and 26 GiB of disk to generate (``--keep DIR`` keeps it for later runs, which
then measure it in place; ``--live-days 7`` gives it the 10 M store's live set).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks._processes import in_process  # noqa: E402
from benchmarks._report import report  # noqa: E402

EVENTS_PER_DAY = 10_000_000 / 7
WINDOWS_S = (5, 60, 900)
TARGET_TICK_S = 0.05
TARGET_SCALING = 1.2
TARGET_SCALING_BACKLOG = 1.5  # the 15-minute step
TARGET_RSS_MIB = 1536
CHUNK = 2_500_000

#: The events of numbers [start, start + count): a random-looking id (Stripe's are random: a
#: sequential id would make every read by key of a window's expectations hit neighbouring
#: granules), a time in the order of the numbers (each at a random instant of its own slot, so
#: that a chunk of the load covers a stretch of days: at 100 M, random times made every chunk
#: write a part into each of 70 daily partitions, and the load took hours), and what follows.
_EVENTS = """
    SELECT n, concat('evt_', lower(hex(cityHash64(n, 5)))) AS stripe_event_id, t, kinds,
           arrayMap(k -> t + (k - 1) * 1500000 + (k = 3) * 60000000, arrayEnumerate(kinds)) AS at_us
    FROM (
        SELECT number AS n,
               {end_us:Int64} - toInt64(({last:UInt64} - number) * {us_per_event:UInt64})
                   - toInt64(cityHash64(number, 3) % {us_per_event:UInt64}) AS t,
               multiIf(b < 980, ['', 'success'], b < 985, ['', 'failure'], b < 990, ['', 'failure', 'success'], [''])
                   AS kinds
        FROM (SELECT number, cityHash64(number, 1) % 1000 AS b FROM numbers({start:UInt64}, {count:UInt64}))
    )
"""

_SIGNAL_ROWS = f"""
INSERT INTO fw_signals (signal_id, signal, stripe_event_id, at, effect, event_type, service, outcome, due_at,
                        attempt, error_type, error_message, event_created, trace_id, span_id, source, ingested_at)
SELECT
    concat('g', toString(n), '-', toString(k)) AS signal_id,
    if(k = 1, 'receipt', 'result') AS signal,
    stripe_event_id,
    fromUnixTimestamp64Micro(at_us[k], 'UTC') AS at,
    '' AS effect,
    'invoice.paid' AS event_type,
    'bench-shop' AS service,
    kinds[k] AS outcome,
    if(k = 1, fromUnixTimestamp64Micro(toInt64(t + 1800000000), 'UTC'), toDateTime64(0, 6, 'UTC')) AS due_at,
    toUInt16(k - 1) AS attempt,
    if(kinds[k] = 'failure', 'TenantNotFound', '') AS error_type,
    if(kinds[k] = 'failure', 'no tenant row', '') AS error_message,
    toUInt32(intDiv(t, 1000000)) AS event_created,
    lower(hex(cityHash64(n, 7))) AS trace_id,
    lower(hex(cityHash64(n, k))) AS span_id,
    'otlp' AS source,
    fromUnixTimestamp64Micro(at_us[k] + 1000000, 'UTC') AS ingested_at
FROM ({_EVENTS})
ARRAY JOIN arrayEnumerate(kinds) AS k
"""

#: Incidents for what failed or went missing before the measured windows, as if the engine had
#: been running: an event with a signal before ``before`` and no success before it. Those that
#: opened before ``triaged_before`` were ignored a day later (or at ``triaged_before``), as
#: on-call does with what it will not repair: the live set holds the last days' incidents, not
#: every one ever opened.
_OLD_INCIDENTS = f"""
INSERT INTO fw_incident_log (incident_id, transition_id, seq, at, transition, state, kind, actor, reason, cause,
                             stripe_event_id, effect, event_type, service, replay_id, details)
SELECT __INCIDENT_ID__ AS incident_id, concat('bench-', step, '-', stripe_event_id),
       toUInt64(toUnixTimestamp64Micro(step_at) * 1000), step_at, step, if(step = 'opened', 'open', 'ignored'),
       kind, if(step = 'opened', 'system', 'bench-oncall'), 'benchmark history', 'bench', stripe_event_id, effect,
       'invoice.paid', 'bench-shop', '', '{{}}'
FROM (
    SELECT 'default' AS project, stripe_event_id, '' AS effect,
           if(arrayExists((o, a) -> o = 'failure' AND a < before, kinds, at_us), 'result_failed', 'result_missing')
               AS kind,
           fromUnixTimestamp64Micro(toInt64(t + 1800000000), 'UTC') AS opened,
           toUnixTimestamp64Micro({{before:DateTime64(6, 'UTC')}}) AS before,
           if(opened < {{triaged_before:DateTime64(6, 'UTC')}}, ['opened', 'ignored'], ['opened']) AS steps
    FROM ({_EVENTS})
    WHERE t < before AND NOT arrayExists((o, a) -> o = 'success' AND a < before, kinds, at_us)
)
ARRAY JOIN steps AS step, arrayMap(
    s -> if(s = 'opened', opened, least(opened + toIntervalDay(1), {{triaged_before:DateTime64(6, 'UTC')}})), steps
) AS step_at
"""


def generate(data_dir: str, expectations: int, live_days: float, results: Any) -> None:
    """Fill a fresh store; report the time it took and the rows. History incidents opened more
    than ``live_days`` before the measured windows were ignored (0: all are still live)."""
    from fulfillwatch.collector_processor.migrations import apply_migrations
    from fulfillwatch.collector_processor.signals import SIGNAL_MIGRATIONS
    from fulfillwatch.collector_processor.store import Store, parse_dsn
    from fulfillwatch.incident_engine.detection.engine_state import Watermarks, save_watermarks
    from fulfillwatch.incident_engine.schema import ENGINE_MIGRATIONS, INCIDENT_ID_SQL, rebuild_open_expectations

    client = Store(parse_dsn(f"chdb://{data_dir}")).client("generate")
    apply_migrations(client, SIGNAL_MIGRATIONS + ENGINE_MIGRATIONS)
    now = client.query("SELECT now64(6, 'UTC')").result_rows[0][0]
    end_us = int(now.timestamp() * 1e6) - 10_000_000  # the newest receipt: 10 s ago
    us_per_event = int(86400 * 1e6 / EVENTS_PER_DAY)
    history_end = now - timedelta(seconds=max(WINDOWS_S) + 1800 + 60)
    triaged_before = history_end - timedelta(days=live_days) if live_days else datetime(1970, 1, 1, tzinfo=timezone.utc)
    started = time.perf_counter()
    for start in range(0, expectations, CHUNK):
        end = min(start + CHUNK, expectations)
        chunk = {
            "end_us": end_us,
            "last": expectations - 1,
            "us_per_event": us_per_event,
            "start": start,
            "count": end - start,
        }
        client.command(_SIGNAL_ROWS, parameters=chunk)
        client.command(
            _OLD_INCIDENTS.replace("__INCIDENT_ID__", INCIDENT_ID_SQL),
            parameters={**chunk, "before": history_end, "triaged_before": triaged_before},
        )
    generated = time.perf_counter() - started
    client.command("OPTIMIZE TABLE fw_incident_log FINAL")
    # As if the engine had been running: watermarks shortly before the end of the data, and only
    # what is still waiting for a result in the live set (the view added every receipt).
    save_watermarks(client, Watermarks(history_end, history_end))
    rebuild_open_expectations(client)
    row = client.query(
        "SELECT (SELECT count() FROM fw_signals), (SELECT uniqExact(incident_id) FROM fw_incident_log), "
        "(SELECT countIf(transition = 'ignored') FROM fw_incident_log), "
        "(SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND table = 'fw_signals')"
    ).result_rows[0]
    results.put(
        {
            "expectations": expectations,
            "days": round(expectations / EVENTS_PER_DAY, 1),
            "signal_rows": int(row[0]),
            "incidents_in_history": int(row[1]),
            "of_them_live": int(row[1]) - int(row[2]),
            "signals_on_disk_mib": round(int(row[3]) / 2**20),
            "generate_s": round(generated, 1),
        }
    )


def tick_worker(data_dir: str, commands: Connection, source: str | None = None) -> None:
    """One store's engine, ticking the windows it is sent (``(window_s, round)``; ``None`` ends).

    The store is first brought to the code's schema (as ``serve`` would at start; the time is
    reported), with the engine's watermarks two hours before the end of the data, and left to
    finish its merges; caches are warmed by a read-only evaluation of an earlier window (below).
    A window ends at the data's last arrival + 1 s minus ``round`` windows (the engine's clock is
    set there), so a store kept from an earlier run is measured on the same traffic as right
    after it was generated, and every round meets a window of its own, as the engine meets each
    window once (a re-run would find the live set already settled). ``source``: the packages'
    directories of another checkout, imported instead of this one's (``--against``; a spawned
    process takes its parent's ``sys.path``, not ``PYTHONPATH``)."""
    if source is not None:
        sys.path[:0] = source.split(os.pathsep)
    from fulfillwatch.collector_processor.migrations import apply_migrations
    from fulfillwatch.collector_processor.signals import SIGNAL_MIGRATIONS
    from fulfillwatch.collector_processor.store import Store, parse_dsn
    from fulfillwatch.incident_engine.detection.engine import Engine, EngineSettings
    from fulfillwatch.incident_engine.detection.engine_state import Watermarks, save_watermarks
    from fulfillwatch.incident_engine.detection.expectations import evaluate_window
    from fulfillwatch.incident_engine.detection.window import Window
    from fulfillwatch.incident_engine.schema import ENGINE_MIGRATIONS

    store = Store(parse_dsn(f"chdb://{data_dir}"))
    client = store.client("bench")
    data_end = client.query("SELECT max(ingested_at) FROM fw_arrivals").result_rows[0][0]
    end = data_end + timedelta(seconds=1)
    # A store migrated now sees an engine that ran up to shortly before its data's end.
    save_watermarks(client, Watermarks(end - timedelta(hours=2), end - timedelta(hours=2)))
    started = time.perf_counter()
    migrations = apply_migrations(client, SIGNAL_MIGRATIONS + ENGINE_MIGRATIONS)
    migration_s = time.perf_counter() - started
    # Measure a settled store, not one still merging the parts the load just wrote.
    settle_deadline = time.monotonic() + 1800
    while client.query("SELECT count() FROM system.merges").result_rows[0][0] and time.monotonic() < settle_deadline:
        time.sleep(1)
    parts = client.query(
        "SELECT table, count() FROM system.parts WHERE active AND database = currentDatabase() GROUP BY table"
    ).result_rows
    # A running engine's reads find each part's primary index and marks loaded; the first read
    # by key of a fresh process loads them (the first summary ~100 ms instead of ~15 here). A
    # read-only evaluation of a window long before the measured ones loads them, changing
    # nothing in the store.
    warm_until = end - timedelta(hours=6)
    warm_from = warm_until - timedelta(seconds=900)
    started = time.perf_counter()
    warm_pairs = evaluate_window(
        client, Window(warm_from, warm_until, warm_from, warm_until, warm_until, timedelta(minutes=30))
    )
    warm_up = {"warm_up_s": round(time.perf_counter() - started, 2), "warm_up_expectations": len(warm_pairs)}
    commands.send(
        {"migrations_applied": migrations, "migration_s": round(migration_s, 1), "parts": dict(parts), **warm_up}
    )
    engine = Engine(store, EngineSettings())
    # The code before 2026-12-03 (measured as a baseline) read the watermarks every tick.
    move_watermarks = getattr(engine, "move_watermarks", lambda marks: save_watermarks(client, marks))
    while (command := commands.recv()) is not None:
        window, round_number = command
        until = end - timedelta(seconds=window * round_number)
        engine.clock = lambda _client, moment=until: moment
        move_watermarks(Watermarks(until - timedelta(seconds=window), until - timedelta(seconds=window)))
        tick = engine.tick()
        commands.send((tick.duration_s, tick.expectations, tick.transitions))


def _answer(worker: Any, connection: Connection, timeout: float) -> Any:
    """The worker's next message; fail loudly if it dies or stalls first."""
    waited = 0.0
    while not connection.poll(1):
        waited += 1
        if not worker.is_alive():
            raise RuntimeError(f"a tick worker exited with {worker.exitcode}")
        if waited > timeout:
            worker.kill()
            raise TimeoutError(f"a tick worker did not answer in {timeout} s")
    return connection.recv()


def _source_path(checkout: Path) -> str:
    """The directories a worker imports the packages of ``checkout`` from."""
    packages = ("incident_engine", "collector_processor", "instrumentation", "dashboard")
    return os.pathsep.join(str(checkout.resolve() / package / "src") for package in packages)


def measure_ticks(
    context: Any, data_dirs: dict[str, Path], rounds: int, sources: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Median ``Engine.tick()`` time per window and store, the stores' ticks interleaved.

    Each store has a process of its own (a chDB path belongs to one process); they tick in
    turn, window by window and round by round, the order of the stores alternating between
    rounds. So a store is measured in the same minutes as the others, and a ratio between
    stores does not carry how the machine's speed drifted in between (measured one after the
    other, a minute or two apart, one run's ratio moved by more than the targets' margins).
    Round 0 warms caches and is reported apart; ``tick_s_paired`` are the per-round ticks, for
    ratios taken round by round. ``sources``: the packages' directories of a store's worker
    when it runs another checkout's code (``--against``)."""
    workers: dict[str, tuple[Any, Connection]] = {}
    reports: dict[str, dict[str, Any]] = {}
    try:
        for size, data_dir in data_dirs.items():
            ours, theirs = context.Pipe()
            worker = context.Process(target=tick_worker, args=(str(data_dir), theirs, (sources or {}).get(size)))
            worker.start()
            workers[size] = (worker, ours)
        for size, (worker, connection) in workers.items():  # the first tick of a fresh store is slow
            reports[size] = _answer(worker, connection, timeout=7200)
        sizes = list(workers)
        for window in WINDOWS_S:
            ticks: dict[str, list[tuple[float, int, int]]] = {size: [] for size in sizes}
            for round_number in range(rounds + 1):
                for size in sizes if round_number % 2 == 0 else reversed(sizes):
                    worker, connection = workers[size]
                    connection.send((window, round_number))
                    ticks[size].append(_answer(worker, connection, timeout=3600))
            for size in sizes:
                first, *measured = ticks[size]
                reports[size][f"{window}s"] = {
                    "tick_s_median": round(statistics.median(t[0] for t in measured), 4),
                    "tick_s_first": round(first[0], 4),
                    "tick_s_paired": [round(t[0], 4) for t in measured],
                    "expectations_needing_attention": round(statistics.median(t[1] for t in measured), 1),
                    "transitions_first_run": first[2],
                }
        for worker, connection in workers.values():
            connection.send(None)
            worker.join(timeout=600)
    finally:
        for worker, _connection in workers.values():
            if worker.is_alive():
                worker.kill()
    return reports


def serve_memory(data_dir: str, seconds: float) -> dict[str, Any]:
    """Run ``fulfillwatch serve`` on the store for a while; its peak RSS and last tick."""
    from support.serve import ServeProcess

    log = Path(data_dir).parent / "serve.log"
    server = ServeProcess(data_dir=Path(data_dir), log_path=log, engine_interval=5.0)
    server.extra_args = ("--log-level", "warning")
    server.start(wait=False)
    server.wait_ready(timeout=600)
    deadline = time.monotonic() + seconds
    listing_s: list[float] = []
    stats_s: list[float] = []
    with server.client() as client:
        while time.monotonic() < deadline:
            # Mostly the on-call listing; every tenth request the overview's figures (24 h).
            path, params, times = (
                ("/api/stats", {}, stats_s)
                if (len(listing_s) + len(stats_s)) % 10 == 9
                else ("/api/incidents", {"limit": 50, "state": "open"}, listing_s)
            )
            started = time.perf_counter()
            client.get(path, params=params).raise_for_status()
            times.append(time.perf_counter() - started)
    health = httpx.get(f"{server.api_url}/healthz").json()
    rss = _peak_rss_mib(server.process.pid)  # type: ignore[union-attr]
    assert server.stop() == 0, server.log()
    return {
        "seconds": seconds,
        "incident_pages_served": len(listing_s),
        "open_incidents_page_s_median": round(statistics.median(listing_s), 4),
        "stats_s_median": round(statistics.median(stats_s), 4) if stats_s else None,
        "peak_rss_mib": round(rss),
        "engine": health["engine"],
    }


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _pairs(ours: dict[str, Any], theirs: dict[str, Any], window: str) -> list[tuple[float, float]]:
    """Two workers' ticks of ``window``, round by round (each pair measured seconds apart)."""
    return list(zip(ours[window]["tick_s_paired"], theirs[window]["tick_s_paired"], strict=True))


def _paired(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """This code's ticks against the other checkout's, window by window: the median of the
    per-round ratios and differences, and in how many rounds this code was faster."""
    # Which migrations each worker applied to its copy shows which code it ran.
    compared: dict[str, Any] = {
        "migrations_applied": ours["migrations_applied"],
        "against_migrations_applied": theirs["migrations_applied"],
    }
    for window in (f"{w}s" for w in WINDOWS_S):
        pairs = _pairs(ours, theirs, window)
        compared[window] = {
            "tick_s_median": ours[window]["tick_s_median"],
            "against_tick_s_median": theirs[window]["tick_s_median"],
            "ratio_paired": round(statistics.median(a / b for a, b in pairs), 3),
            "difference_ms_paired": round(statistics.median(a - b for a, b in pairs) * 1000, 1),
            "faster_in": f"{sum(a < b for a, b in pairs)} of {len(pairs)}",
        }
    return compared


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--sizes", default="10000000", help="expectations per store, comma-separated (e.g. 10000000,100000000)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve-seconds", type=float, default=60)
    parser.add_argument("--keep", type=Path, help="keep the stores in this directory")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--live-days",
        type=float,
        default=0,
        help="history incidents opened more than this many days before the measured windows were ignored "
        "(0, the default: every one is still live, 1.5 M of them at 100 M)",
    )
    parser.add_argument(
        "--against",
        type=Path,
        help="another checkout of this repository: its code ticks copies of the stores beside this code's",
    )
    args = parser.parse_args()
    if args.against is not None and not (args.against / "incident_engine" / "src").is_dir():
        parser.error(f"--against {args.against}: not a checkout of this repository (no incident_engine/src)")
    context = multiprocessing.get_context("spawn")
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="fw-bench-detect-"))
    sizes = [int(size) for size in args.sizes.split(",")]
    result: dict[str, Any] = {"cpu_count": os.cpu_count(), "events_per_day": round(EVENTS_PER_DAY), "stores": {}}
    try:
        data_dirs = {str(size): workdir / f"store-{size}" / "data" for size in sizes}
        for size, data_dir in data_dirs.items():
            if not data_dir.exists():
                data_dir.parent.mkdir(parents=True, exist_ok=True)
                store = in_process(context, generate, str(data_dir), int(size), args.live_days)
            else:
                store = {"expectations": int(size), "reused": True}
            result["stores"][size] = store
        sources: dict[str, str] = {}
        if args.against is not None:  # copies made now: both codes start from the same store
            for size in list(data_dirs):
                copy = workdir / f"store-{size}-against"
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(data_dirs[size].parent, copy, symlinks=True)
                data_dirs[f"{size}-against"] = copy / "data"
                sources[f"{size}-against"] = _source_path(args.against)
        measured = measure_ticks(context, data_dirs, args.rounds, sources)
        for size in map(str, sizes):
            result["stores"][size]["ticks"] = measured[size]
            print(json.dumps({size: result["stores"][size]}, indent=2), flush=True)
        if args.against is not None:
            result["against"] = {
                "checkout": str(args.against.resolve()),
                "stores": {size: _paired(measured[size], measured[f"{size}-against"]) for size in map(str, sizes)},
            }
            for size in map(str, sizes):
                shutil.rmtree(workdir / f"store-{size}-against", ignore_errors=True)
        smallest, largest = str(min(sizes)), str(max(sizes))
        steady = result["stores"][smallest]["ticks"]["5s"]["tick_s_median"]
        result["steady_tick_s"] = steady
        scaling: dict[str, float] = {}
        if smallest != largest:
            small, large = result["stores"][smallest]["ticks"], result["stores"][largest]["ticks"]
            windows = [f"{w}s" for w in WINDOWS_S]
            scaling = result[f"scaling_{largest}_vs_{smallest}"] = {
                window: round(large[window]["tick_s_median"] / small[window]["tick_s_median"], 3) for window in windows
            }
            # The same, round by round (each pair of ticks measured within seconds of each other).
            result[f"scaling_paired_{largest}_vs_{smallest}"] = {
                window: round(statistics.median(a / b for a, b in _pairs(large, small, window)), 3)
                for window in windows
            }
        if args.serve_seconds > 0:  # 0: ticks only
            result["serve_on_largest"] = serve_memory(str(workdir / f"store-{largest}" / "data"), args.serve_seconds)
        result["targets"] = {
            "tick_s": TARGET_TICK_S,
            "scaling": TARGET_SCALING,
            "scaling_backlog_step": TARGET_SCALING_BACKLOG,
            "serve_rss_mib": TARGET_RSS_MIB,
        }
        result["pass"] = bool(
            steady <= TARGET_TICK_S
            and all(scaling.get(window, 0) <= TARGET_SCALING for window in ("5s", "60s"))
            and scaling.get("900s", 0) <= TARGET_SCALING_BACKLOG
            and result.get("serve_on_largest", {}).get("peak_rss_mib", TARGET_RSS_MIB) < TARGET_RSS_MIB
        )
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    report(result, args.json)


if __name__ == "__main__":
    main()

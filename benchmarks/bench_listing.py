"""Listing active incidents with their total, at 100 k and 10 M incidents in the log.

Each store gets ``N`` incidents written straight into ``fw_incident_log`` inside chDB
(``INSERT … SELECT … FROM numbers()``): all but ``--live`` of them resolved (3 rows each:
opened, result_seen, resolved — 30 M rows at 10 M), the rest still open (1 row each), the same
number of live incidents in both stores. The migration that creates ``fw_active_incidents``
derives it from that log (its time is reported). Then, in the same process and the same run:

* **log aggregate** — the listing as it was before: the current state of every incident
  aggregated from the log, filtered to ``open``, one page and the total;
* **active table** — the same page and total from ``fw_active_incidents``;

and finally ``GET /api/incidents?state=open&limit=50`` against ``fulfillwatch serve`` on the
store, over HTTP (median of the requests). Targets: ≤ 150 ms at 10 M incidents, and 10 M /
100 k ≤ 1.2.

    python benchmarks/bench_listing.py [--sizes 100000,10000000] [--live 1000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
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

from benchmarks._processes import in_process  # noqa: E402
from benchmarks._report import report  # noqa: E402

TARGET_MS = 150
TARGET_SCALING = 1.2
CHUNK = 2_000_000

# Incident n: opened at t, a result seen 1 s later, resolved 2 s later — unless it is one of the
# last `live` ones, which stay open. Ids and seqs are deterministic, as the engine's are.
_LOG_ROWS = """
INSERT INTO fw_incident_log (incident_id, transition_id, seq, at, transition, state, kind, actor, reason, cause,
                             stripe_event_id, effect, event_type, service, replay_id, details, project)
SELECT
    concat('inc_bench', leftPad(toString(n), 15, '0')) AS incident_id,
    concat('t', toString(n), '-', toString(k)) AS transition_id,
    toUInt64(toUnixTimestamp64Micro(t) * 1000 + k * 1000000000) AS seq,
    t + toIntervalSecond(k - 1) AS at,
    ['opened', 'result_seen', 'resolved'][k] AS transition,
    ['open', '', 'resolved'][k] AS state,
    if(k = 1, if(n % 3 = 0, 'result_missing', 'result_failed'), '') AS kind,
    'system' AS actor,
    ['no result before the deadline', 'a result arrived', 'a success result arrived'][k] AS reason,
    concat('bench:', toString(k)) AS cause,
    concat('evt_l', leftPad(toString(n), 12, '0')) AS stripe_event_id,
    '' AS effect,
    ['invoice.paid', 'checkout.session.completed'][1 + n % 2] AS event_type,
    'bench-shop' AS service,
    '' AS replay_id,
    '{}' AS details,
    'default' AS project
FROM (
    SELECT number AS n,
           fromUnixTimestamp64Micro(toInt64({end_us:Int64} - ({total:UInt64} - number) * 1000), 'UTC') AS t
    FROM numbers({start:UInt64}, {count:UInt64})
)
ARRAY JOIN range(1, if(n >= {total:UInt64} - {live:UInt64}, 2, 4)) AS k
"""


def generate(data_dir: str, incidents: int, live: int, results: Any) -> None:
    """Fill a store's log, then apply the migration that derives the active table."""
    from fulfillwatch.collector_processor.migrations import apply_migrations
    from fulfillwatch.collector_processor.signals import SIGNAL_MIGRATIONS
    from fulfillwatch.collector_processor.store import Store, parse_dsn
    from fulfillwatch.incident_engine.schema import ENGINE_MIGRATIONS

    client = Store(parse_dsn(f"chdb://{data_dir}")).client("generate")
    # The log is filled before fw_active_incidents exists (and the later steps that alter it).
    before_active = tuple(itertools.takewhile(lambda m: m.id != "engine/0007_active_incidents", ENGINE_MIGRATIONS))
    apply_migrations(client, SIGNAL_MIGRATIONS + before_active)
    end_us = int(client.query("SELECT now64(6, 'UTC')").result_rows[0][0].timestamp() * 1e6) - 60_000_000
    started = time.perf_counter()
    for start in range(0, incidents, CHUNK):
        params = {"end_us": end_us, "total": incidents, "live": live, "start": start}
        client.command(_LOG_ROWS, parameters={**params, "count": min(CHUNK, incidents - start)})
    client.command("OPTIMIZE TABLE fw_incident_log FINAL")
    generated = time.perf_counter() - started
    started = time.perf_counter()
    apply_migrations(client, SIGNAL_MIGRATIONS + ENGINE_MIGRATIONS)  # 0007: fw_active_incidents
    migrated = time.perf_counter() - started
    rows, active = client.query(
        "SELECT (SELECT count() FROM fw_incident_log), (SELECT count() FROM fw_active_incidents)"
    ).result_rows[0]
    results.put(
        {
            "incidents": incidents,
            "log_rows": int(rows),
            "live_incidents": int(active),
            "generate_s": round(generated, 1),
            "active_table_migration_s": round(migrated, 1),
        }
    )


def measure_queries(data_dir: str, rounds: int, results: Any) -> None:
    """The open-incidents page and its total: from the log aggregate (before) and the table."""
    from fulfillwatch.collector_processor.store import Store, parse_dsn
    from fulfillwatch.incident_engine.incidents import log_reads
    from fulfillwatch.incident_engine.incidents.log_reads import IncidentFilter

    client = Store(parse_dsn(f"chdb://{data_dir}")).client("bench")
    chosen = IncidentFilter(states=("open",))
    where, having, params = chosen.conditions()
    before = f"""
        SELECT *, count() OVER () AS total FROM ({log_reads.summary_select(where, having)})
        ORDER BY updated_at DESC, id LIMIT 50"""

    def timed(run: Any, rounds: int = rounds) -> float:
        times = []
        for _ in range(rounds + 1):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return round(statistics.median(times[1:]) * 1000, 1)  # the first run warms caches

    page = log_reads.list_incidents(client, chosen, 50, 0)
    results.put(
        {
            # Seconds per run at 10 M incidents: three runs say enough.
            "log_aggregate_ms": timed(lambda: client.query(before, parameters=params).result_rows, min(rounds, 3)),
            "active_table_ms": timed(lambda: log_reads.list_incidents(client, chosen, 50, 0)),
            "total_open": page.total,
        }
    )


def measure_http(data_dir: Path, requests: int) -> float:
    """Median ``GET /api/incidents?state=open&limit=50`` on ``fulfillwatch serve``, in ms."""
    from support.serve import ServeProcess

    server = ServeProcess(data_dir=data_dir, log_path=data_dir.parent / "serve.log")
    server.extra_args = ("--log-level", "warning")
    server.start(wait=False)
    server.wait_ready(timeout=600)
    times = []
    try:
        with httpx.Client(base_url=server.api_url, headers={"Authorization": f"Bearer {server.token}"}) as client:
            for _ in range(requests + 1):
                started = time.perf_counter()
                response = client.get("/api/incidents", params={"state": "open", "limit": 50})
                times.append(time.perf_counter() - started)
                response.raise_for_status()
    finally:
        server.stop()
    return round(statistics.median(times[1:]) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,10000000", help="incidents per store, comma-separated")
    parser.add_argument("--live", type=int, default=1000, help="incidents still open, in every store")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--keep", type=Path, help="keep the stores in this directory")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="fw-bench-listing-"))
    sizes = [int(size) for size in args.sizes.split(",")]
    result: dict[str, Any] = {"live_incidents": args.live, "stores": {}}
    try:
        for size in sizes:
            data_dir = workdir / f"store-{size}" / "data"
            if not data_dir.exists():
                data_dir.parent.mkdir(parents=True, exist_ok=True)
                store = in_process(context, generate, str(data_dir), size, args.live)
            else:
                store = {"incidents": size, "reused": True}
            store.update(in_process(context, measure_queries, str(data_dir), args.rounds))
            store["http_ms"] = measure_http(data_dir, args.rounds)
            result["stores"][str(size)] = store
            print(json.dumps({str(size): store}, indent=2), flush=True)
        smallest, largest = result["stores"][str(min(sizes))], result["stores"][str(max(sizes))]
        result["http_scaling"] = round(largest["http_ms"] / smallest["http_ms"], 3)
        result["log_aggregate_scaling"] = round(largest["log_aggregate_ms"] / smallest["log_aggregate_ms"], 3)
        result["targets"] = {"http_ms": TARGET_MS, "scaling": TARGET_SCALING}
        result["pass"] = largest["http_ms"] <= TARGET_MS and result["http_scaling"] <= TARGET_SCALING
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    report(result, args.json)


if __name__ == "__main__":
    main()

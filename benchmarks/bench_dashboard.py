"""Dashboard: the incidents page's first page with 100,000 incidents stored.

For each store size (a small baseline, then ``--incidents``) the incident log is filled inside
chDB (``INSERT … SELECT … FROM numbers()``): every incident has its ``opened`` row, 20 % were
then acknowledged, 30 % resolved — about 1.5 log rows per incident, as after a few months of
use. Then ``fulfillwatch serve`` runs on the store and three things are timed:

* ``api``: ``GET /api/incidents?limit=50`` (the page's one query: server-side pagination, the
  total included), median of 10;
* ``script``: the incidents page's Streamlit script run to completion
  (``streamlit.testing.v1.AppTest``), median of 5;
* ``browser``: Debian's chromium (Playwright) loads ``/incidents`` until the table is drawn and
  Streamlit is idle, median of 3 — what a user waits for.

Target: browser < 2 s with 100,000 incidents. The baseline, measured in the same run, is the
same page on the small store: the ratio shows what the 100,000 incidents cost.

    python benchmarks/bench_dashboard.py [--incidents 100000] [--baseline 100]
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks._processes import in_process  # noqa: E402

TARGET_BROWSER_S = 2.0
APP = ROOT / "dashboard/src/fulfillwatch/dashboard/app.py"

_INCIDENT_ROWS = """
INSERT INTO fw_incident_log (incident_id, transition_id, seq, at, transition, state, kind, actor, reason, cause,
                             stripe_event_id, effect, event_type, service, replay_id, details)
SELECT __INCIDENT_ID__ AS incident_id, concat('bench-', toString(n), '-', toString(k)) AS transition_id,
       toUInt64((t + (k - 1) * 600000000) * 1000 + k) AS seq, fromUnixTimestamp64Micro(t + (k - 1) * 600000000, 'UTC'),
       steps[k] AS transition,
       if(steps[k] = 'opened', 'open', steps[k]) AS state, kind,
       if(k = 1, 'system', 'user:bench') AS actor, concat('benchmark ', steps[k]) AS reason, 'bench' AS cause,
       stripe_event_id, effect, event_type, service, '' AS replay_id, '{}' AS details
FROM (
    SELECT number AS n, 'default' AS project,
           concat('evt_b', leftPad(toString(number), 9, '0')) AS stripe_event_id,
           ['grant_credits', 'unlock_access', 'send_receipt'][number % 3 + 1] AS effect,
           ['invoice.paid', 'checkout.session.completed'][number % 2 + 1] AS event_type,
           ['shop', 'billing'][intDiv(number, 7) % 2 + 1] AS service,
           ['result_failed', 'result_missing', 'duplicate_suppressed'][cityHash64(number) % 3 + 1] AS kind,
           multiIf(cityHash64(number, 1) % 10 < 2, ['opened', 'acknowledged'],
                   cityHash64(number, 1) % 10 < 5, ['opened', 'resolved'], ['opened']) AS steps,
           {end_us:Int64} - toInt64(cityHash64(number, 2) % 7776000000000) AS t
    FROM numbers({count:UInt64})
)
ARRAY JOIN arrayEnumerate(steps) AS k
"""


def generate(data_dir: str, incidents: int, results: Any) -> None:
    """Fill a fresh store with ``incidents`` incidents; report the rows."""
    from fulfillwatch.collector_processor.migrations import apply_migrations
    from fulfillwatch.collector_processor.signals import SIGNAL_MIGRATIONS
    from fulfillwatch.collector_processor.store import Store, parse_dsn
    from fulfillwatch.incident_engine.schema import ENGINE_MIGRATIONS, INCIDENT_ID_SQL

    client = Store(parse_dsn(f"chdb://{data_dir}")).client("generate")
    apply_migrations(client, SIGNAL_MIGRATIONS + ENGINE_MIGRATIONS)
    now = client.query("SELECT now64(6, 'UTC')").result_rows[0][0]
    sql = _INCIDENT_ROWS.replace("__INCIDENT_ID__", INCIDENT_ID_SQL)
    client.command(sql, parameters={"end_us": int(now.timestamp() * 1e6) - 3_600_000_000, "count": incidents})
    client.command("OPTIMIZE TABLE fw_incident_log FINAL")
    row = client.query("SELECT count(), uniqExact(incident_id) FROM fw_incident_log").result_rows[0]
    results.put({"log_rows": int(row[0]), "incidents": int(row[1])})


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def _time_script(api_url: str, token: str, rounds: int) -> list[float]:
    from streamlit.testing.v1 import AppTest

    from fulfillwatch.dashboard.settings import reset_settings

    os.environ.update(
        FULFILLWATCH_DASHBOARD_API_URL=api_url, FULFILLWATCH_API_TOKEN=token, FULFILLWATCH_DASHBOARD_DEMO="1"
    )
    reset_settings()
    timings = []
    for _ in range(rounds):
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.run()
        at.switch_page("screens/incidents.py")
        started = time.perf_counter()
        at.run()
        timings.append(time.perf_counter() - started)
        shown = [str(element.value) for kind in ("error", "info", "warning") for element in getattr(at, kind)]
        assert not at.exception and at.dataframe and len(at.dataframe[0].value) == 50, (at.exception, shown)
    return timings


def _time_browser(dashboard_url: str, rounds: int) -> list[float]:
    from playwright.sync_api import sync_playwright
    from test_browser_demo import CHROMIUM_ARGS

    timings = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS
        )
        # One browser context, as one user's browser: the first load fills its cache with
        # Streamlit's JavaScript bundle and is not counted.
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        for _ in range(rounds + 1):
            page = context.new_page()
            started = time.perf_counter()
            page.goto(f"{dashboard_url}/incidents")
            page.wait_for_selector('[data-testid="stDataFrame"]', timeout=60_000)
            page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=60_000)
            timings.append(time.perf_counter() - started)
            page.close()
        browser.close()
    return timings[1:]


def measure(data_dir: Path, rounds: int) -> dict[str, Any]:
    """Start serve and the dashboard on the store; time the API, the script and the browser."""
    from examples.processes import Child, answers
    from support.serve import ServeProcess, free_port, wait_for

    server = ServeProcess(data_dir=data_dir, log_path=data_dir.parent / "serve.log")
    server.extra_args = ("--log-level", "warning")
    server.start(wait=False)
    server.wait_ready(timeout=600)
    port = free_port()
    env = {
        **os.environ,
        "FULFILLWATCH_DASHBOARD_API_URL": server.api_url,
        "FULFILLWATCH_API_TOKEN": server.token,
        "FULFILLWATCH_DASHBOARD_DEMO": "1",
    }
    dashboard = Child(
        "dashboard",
        [sys.executable, "-m", "fulfillwatch.dashboard", "--port", str(port)],
        env,
        data_dir.parent / "dashboard.log",
        ROOT,
    ).start()
    try:
        import httpx

        wait_for(lambda: answers(f"http://127.0.0.1:{port}/_stcore/health"), timeout=60, what="the dashboard")
        api = []
        with server.client() as client:
            for _ in range(10):
                started = time.perf_counter()
                page = client.get("/api/incidents", params={"limit": 50})
                api.append(time.perf_counter() - started)
                page.raise_for_status()
            total = page.json()["total"]
        script = _time_script(server.api_url, server.token, rounds)
        browser = _time_browser(f"http://127.0.0.1:{port}", rounds)
        assert httpx.get(f"{server.api_url}/healthz").status_code == 200
    finally:
        dashboard.stop()
        assert server.stop() == 0, server.log()
    return {
        "incidents_listed": total,
        "api_median_s": _median(api),
        "script_median_s": _median(script),
        "browser_median_s": _median(browser),
        "browser_max_s": round(max(browser), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    workdir = Path(tempfile.mkdtemp(prefix="fw-bench-dashboard-"))
    report: dict[str, Any] = {"target_browser_s": TARGET_BROWSER_S, "stores": {}}
    try:
        sizes = (args.baseline, args.incidents)
        stores = {size: workdir / f"store-{size}" / "data" for size in sizes}
        # All stores first: AppTest replaces __main__, after which spawn cannot find generate().
        for size, store in stores.items():
            store.mkdir(parents=True)
            report["stores"][str(size)] = in_process(context, generate, str(store), size)
        for size, store in stores.items():
            report["stores"][str(size)].update(measure(store, args.rounds))
            print(f"{size:>8} incidents: {json.dumps(report['stores'][str(size)])}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    large, small = report["stores"][str(args.incidents)], report["stores"][str(args.baseline)]
    report["browser_ratio"] = round(large["browser_median_s"] / small["browser_median_s"], 2)
    report["met"] = large["browser_median_s"] < TARGET_BROWSER_S
    print(
        f"incidents page with {args.incidents:,} incidents: {large['browser_median_s']} s in the browser "
        f"(baseline {args.baseline}: {small['browser_median_s']} s, x{report['browser_ratio']}); "
        f"API {large['api_median_s']} s; target < {TARGET_BROWSER_S} s: {'met' if report['met'] else 'NOT met'}"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

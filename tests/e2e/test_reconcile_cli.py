"""``fulfillwatch reconcile``: Stripe's record of a period against the receipts the app recorded.

A real ``fulfillwatch serve`` stores the receipts (REST ingest), then stops; the command runs as
its own process on the same data directory (one process owns a chDB directory). Stripe is the
stand-in of ``examples/stripe_standin.py`` on localhost — Stripe's API cannot be reached from
here — spoken to by the real ``stripe`` library.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from support.serve import ServeProcess
from support.stripe_api import STRIPE_TEST_KEY, StandInStripeServer, stripe_event

MISSING = {"evt_cli_07", "evt_cli_23", "evt_cli_41"}


def _reconcile(server: ServeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fulfillwatch.incident_engine", "reconcile", "--since", "3d", *args],
        env={
            **os.environ,
            "STRIPE_API_KEY": STRIPE_TEST_KEY,
            "FULFILLWATCH_DATA_DIR": str(server.data_dir),
            "FULFILLWATCH_API_TOKEN": server.token,
            "COLUMNS": "160",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dry_run_lists_the_events_without_receipts_and_the_real_run_records_them(
    tmp_path: Path, stripe_api: StandInStripeServer
) -> None:
    now = int(time.time())
    events = [stripe_event("invoice.paid", f"evt_cli_{i:02d}", now - 7200 + i * 60) for i in range(50)]
    for event in events:
        stripe_api.state.add(event, undelivered=event["id"] == "evt_cli_23")
    config = f'[stripe]\nservice = "shop"\nmode = "test"\napi_base = "{stripe_api.url}"\npoll_interval_s = 3600\n'
    # The serve below reconciles too, with a key the stand-in refuses: only the CLI reads Stripe.
    server = ServeProcess(
        data_dir=tmp_path / "data",
        log_path=tmp_path / "serve.log",
        config=config,
        extra_env={"STRIPE_API_KEY": "rk_test_RefusedByTheStandIn000"},
    ).start()
    for event in events:
        if event["id"] not in MISSING:
            answer = httpx.post(
                f"{server.otlp_url}/v1/receipt",
                json={"stripe_event_id": event["id"], "event_type": event["type"], "service": "shop"},
                headers={**server.otlp_headers(), "Idempotency-Key": event["id"]},
                timeout=30,
            )
            assert answer.status_code == 201, answer.text
    server.stop()
    config_path = server.config_path

    dry = _reconcile(server, "--dry-run", "--config", str(config_path))
    assert dry.returncode == 0, dry.stderr
    assert "seen            50" in dry.stdout and "with receipts   47" in dry.stdout
    assert "without         3  (3 past their grace" in dry.stdout
    listed = {line.split()[0] for line in dry.stdout.splitlines() if line.startswith("evt_cli_")}
    assert listed == MISSING
    [failed] = [line for line in dry.stdout.splitlines() if line.startswith("evt_cli_23")]
    assert failed.rstrip().endswith("failed")

    real = _reconcile(server, "--config", str(config_path))
    assert real.returncode == 0, real.stderr
    assert "recorded        50 new event(s), 3 incident(s) opened" in real.stdout

    server.start()
    opened = server.incidents(kind="not_received")
    assert {item["stripe_event_id"] for item in opened} == MISSING
    server.stop()


def test_without_a_stripe_table_it_says_so(tmp_path: Path) -> None:
    server = ServeProcess(data_dir=tmp_path / "data", log_path=tmp_path / "serve.log")
    server.write_config()
    answer = _reconcile(server, "--dry-run", "--config", str(server.config_path))
    assert answer.returncode == 2
    assert "has no [stripe] table" in answer.stdout

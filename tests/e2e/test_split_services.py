"""Split services (``fulfillwatch collector | engine | api``) as processes.

What can run here runs for real: the commands' refusal of chDB, and ``serve`` taking spans only
from an ``otel_traces`` table. The split services themselves need a ClickHouse server, which
cannot run in CI here; that test is marked ``clickhouse_server`` and runs elsewhere with
``FULFILLWATCH_TEST_CLICKHOUSE_DSN=http://default:@localhost:8123/default pytest -m
clickhouse_server``. The engine lease and two engines on one store are tested in-process
(``tests/incident_engine/test_lease.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import fulfillwatch.instrumentation as fw
from examples.processes import Child, answers
from support.otlp import encode, post, recorded_spans
from support.serve import ROOT, ServeProcess, free_port, sha256, wait_for

TOKEN = "split-services-test-token"
INGEST_KEY = "fwk_split_services_key"


def _fulfillwatch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fulfillwatch.incident_engine", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "FULFILLWATCH_API_TOKEN": TOKEN, "COLUMNS": "200", **(env or {})},
        cwd=ROOT,
    )


@pytest.mark.parametrize("command", ["collector", "engine", "api"])
def test_split_services_refuse_an_embedded_store(command: str, tmp_path: Path) -> None:
    done = _fulfillwatch(command, env={"FULFILLWATCH_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    message = " ".join(done.stderr.split())
    assert f"fulfillwatch {command}: needs a ClickHouse server" in message
    assert "can be opened by one process only" in message and "fulfillwatch serve" in message
    assert not any(tmp_path.iterdir()), "the refused command must not have opened the store"


# --- against a ClickHouse server (not available in CI here) ---------------------------------


@pytest.fixture
def clickhouse_dsn() -> str:
    dsn = os.environ.get("FULFILLWATCH_TEST_CLICKHOUSE_DSN")
    if not dsn:
        pytest.skip("needs a ClickHouse server: set FULFILLWATCH_TEST_CLICKHOUSE_DSN (none can run in CI here)")
    return dsn


@pytest.fixture
def split_services(clickhouse_dsn: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    database = f"fw_split_{uuid.uuid4().hex[:8]}"
    base = clickhouse_dsn.rstrip("/").rsplit("/", 1)[0]
    httpx.post(base, content=f"CREATE DATABASE {database}").raise_for_status()
    otlp, api = free_port(), free_port()
    env = {
        **os.environ,
        "FULFILLWATCH_API_TOKEN": TOKEN,
        "FULFILLWATCH_CLICKHOUSE_DSN": f"{base}/{database}",
        "FULFILLWATCH_ENGINE_INTERVAL_S": "0.5",
        "FULFILLWATCH_PROJECTS": '{"shop": {"services": ["shop"]}}',
        "FULFILLWATCH_INGEST_KEYS": f'{{"shop": {{"sha256": "{sha256(INGEST_KEY)}", "projects": ["shop"]}}}}',
    }
    python = [sys.executable, "-m", "fulfillwatch.incident_engine"]
    children = [
        Child("collector", [*python, "collector", "--otlp-port", str(otlp)], env, tmp_path / "collector.log", ROOT),
        Child("collector-2", [*python, "collector", "--otlp-port", str(free_port())], env, tmp_path / "c2.log", ROOT),
        Child("engine", [*python, "engine"], env, tmp_path / "engine.log", ROOT),
        Child("engine-standby", [*python, "engine"], env, tmp_path / "engine-2.log", ROOT),
        Child("api", [*python, "api", "--api-port", str(api)], env, tmp_path / "api.log", ROOT),
    ]
    for child in children:
        child.start()
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{api}/healthz"), timeout=60, what="the api")
        yield {"otlp": f"http://127.0.0.1:{otlp}", "api": f"http://127.0.0.1:{api}"}
    finally:
        for child in children:
            child.stop()
        httpx.post(base, content=f"DROP DATABASE IF EXISTS {database}")


@pytest.mark.clickhouse_server
def test_split_services_detect_an_incident_on_a_clickhouse_server(split_services: dict[str, str]) -> None:
    event_id = f"evt_split{uuid.uuid4().hex[:8]}"
    with recorded_spans(service="shop") as spans:
        receipt = fw.record_receipt(event_id, event_type="invoice.paid", timeout=600)
        fw.record_result(event_id, "failure", error=ValueError("no plan"), receipt=receipt)
        body = encode(spans.get_finished_spans())
        assert post(split_services["otlp"], body, authorization=f"Bearer {INGEST_KEY}").status_code == 200

    def incident() -> list[dict[str, object]]:
        response = httpx.get(
            f"{split_services['api']}/api/incidents",
            params={"stripe_event_id": event_id},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        items: list[dict[str, object]] = response.json()["items"]
        return items

    found = wait_for(incident, timeout=30, interval=0.5, what="the incident")
    assert [item["kind"] for item in found] == ["result_failed"]


def test_serve_can_take_spans_only_from_an_otel_traces_table(tmp_path: Path) -> None:
    server = ServeProcess(
        data_dir=tmp_path / "data",
        log_path=tmp_path / "serve.log",
        extra_env={"FULFILLWATCH_RECEIVE_OTLP": "false", "FULFILLWATCH_OTEL_TRACES_TABLE": "otel_traces"},
    ).start()
    try:
        assert "importing  fulfillment spans from otel_traces" in server.log()
        assert "OTLP/HTTP" not in server.log()
        with pytest.raises(httpx.ConnectError):
            httpx.post(f"{server.otlp_url}/v1/traces", content=b"", timeout=2)
        # The table does not exist yet: the engine keeps running and says why nothing comes in.
        wait_for(lambda: "otel_traces" in server.log() and "failed" in server.log(), timeout=20, what="the error")
        assert httpx.get(f"{server.api_url}/healthz").status_code == 200
    finally:
        assert server.stop() == 0, server.log()

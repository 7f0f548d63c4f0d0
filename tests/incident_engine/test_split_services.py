"""Split services (``fulfillwatch collector | engine | api``) and the engine lease.

What can run here runs for real: the commands' refusal of chDB, the lease and two engines
evaluating one store (chDB, in this process). The split services themselves need a ClickHouse
server, which cannot run in CI here; that test is marked ``clickhouse_server`` and runs
elsewhere with ``FULFILLWATCH_TEST_CLICKHOUSE_DSN=http://default:@localhost:8123/default
pytest -m clickhouse_server``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

import fulfillwatch.instrumentation as fw
from examples.processes import Child, answers
from fulfillwatch.collector_processor.signals import Signal, insert_signals, micros
from fulfillwatch.collector_processor.store import Store
from fulfillwatch.incident_engine.detection.engine import Engine, EngineSettings
from fulfillwatch.incident_engine.detection.lease import EngineLease
from support.otlp import encode, post, recorded_spans
from support.serve import ROOT, ServeProcess, free_port, wait_for

TOKEN = "split-services-test-token"


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


def test_the_lease_keeps_one_engine_evaluating(store: Store) -> None:
    first = EngineLease(store, "engine-a", duration_s=2, settle_s=0.05)
    second = EngineLease(store, "engine-b", duration_s=2, settle_s=0.05)
    assert first.hold() and not second.hold()
    assert first.hold() and not second.hold()  # renewals keep it
    first.release()  # a clean shutdown hands over at once
    assert second.hold() and not first.hold()
    # The holder dies without releasing: the standby takes over once the lease expires.
    wait_for(first.hold, timeout=10, interval=0.2, what="the standby to take over an expired lease")
    assert not second.hold() and not second.held


def test_two_engines_evaluating_at_once_record_each_transition_once(store: Store) -> None:
    client = store.client("test")
    now = client.query("SELECT now64(6, 'UTC')").result_rows[0][0]
    prefix = f"evt_two{uuid.uuid4().hex[:8]}_"
    signals = []
    for n in range(50):
        event_id = f"{prefix}{n}"
        at = now - timedelta(minutes=5)
        signals.append(Signal(f"r-{event_id}", "receipt", event_id, micros(at), due_at=micros(at)))
        if n % 2:
            signals.append(
                Signal(f"x-{event_id}", "result", event_id, micros(at), outcome="failure", error_type="Boom")
            )
    insert_signals(client, signals)
    # No lease: as if two engines ran against one server anyway.
    engines = [Engine(store, EngineSettings(ingest_overlap_s=1)) for _ in range(2)]
    for _ in range(2):
        for engine in engines:
            engine.tick()
    rows = client.query(
        """SELECT count(), uniqExact(incident_id) FROM fw_incident_log FINAL
           WHERE startsWith(stripe_event_id, {p:String}) AND transition = 'opened'""",
        parameters={"p": prefix},
    ).result_rows[0]
    assert rows == (50, 50)


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
        assert post(split_services["otlp"], encode(spans.get_finished_spans())).status_code == 200

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

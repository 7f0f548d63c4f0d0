"""A real ``fulfillwatch serve`` against broken and hostile clients: nothing they do stalls the
process, fails other clients' requests, or grows it without bound.

The time each thing takes is measured by ``benchmarks/bench_robustness.py``; these tests check
what must hold on any machine, however busy.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from fulfillwatch.collector_processor.store import CHDB_ALLOCATOR_CONF
from support.abuse import Prober, abandon_upload, first_answer, receipts_batch, receipts_batch_of_size, rss_mib
from support.serve import ServeProcess, wait_for

MIB = 1024 * 1024
DAY_NS = 86_400 * 10**9


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(data_dir=tmp_path / "data", log_path=tmp_path / "serve.log").start()
    yield server
    server.kill()


def _health(server: ServeProcess) -> dict[str, int]:
    with server.client() as client:
        return dict(client.get("/api/health").json()["ingest"])


def test_clients_that_disconnect_mid_upload_stall_nothing(own_server: ServeProcess) -> None:
    server = own_server
    prober = Prober(f"{server.api_url}/readyz").start()
    headers = {"Authorization": f"Bearer {server.ingest_key}", "Content-Type": "application/x-protobuf"}
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda n: abandon_upload(server.otlp_port, "/v1/traces", headers, reset=n % 2 == 0), range(200)))
    # Each went away mid-body (counted, one log line) — or, while the abandoned uploads still
    # held the in-flight budget, was refused at once with 429.
    counted = wait_for(
        lambda: (h := _health(server))["client_disconnects"] + h["requests_throttled"] == 200 and h,
        timeout=60,
        what="every aborted upload accounted for",
    )
    answers = prober.stop()
    assert answers and all(status in (200, 503) for status, _ in answers), answers  # every probe answered
    assert server.post_spans(receipts_batch("evt_after_abort", 5, "shop")).status_code == 200
    log = server.log()
    assert "Traceback" not in log
    assert log.count("disconnected before sending its whole body") == counted["client_disconnects"] > 0
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0


def _poison_overflow(n: int) -> bytes:
    """Values that decode but do not fit the store's columns (rejected span by span)."""
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": f"{n:032x}",
                                    "spanId": f"{index + 1:016x}",
                                    "name": "fulfillment.receipt",
                                    "endTimeUnixNano": str(end),
                                    "attributes": [
                                        {"key": "stripe.event.id", "value": {"stringValue": f"evt_poison{n}_{index}"}},
                                        {"key": key, "value": value},
                                    ],
                                }
                                for index, (key, value, end) in enumerate(
                                    [
                                        ("stripe.amount", {"intValue": str(2**70)}, time.time_ns()),
                                        ("stripe.event.created", {"intValue": str(2**40)}, time.time_ns()),
                                        ("fulfillment.timeout_s", {"doubleValue": 1e300}, time.time_ns()),
                                        ("fulfillment.timeout_s", {"stringValue": "inf"}, time.time_ns()),
                                        ("stripe.event.type", {"stringValue": "invoice.paid"}, 10**30),
                                    ]
                                )
                            ]
                        }
                    ],
                }
            ]
        }
    ).encode()


def _poison_partitions(n: int) -> bytes:
    """Valid spans spread over 1,200 days: the store refuses such an insert (too many partitions)."""
    start = time.time_ns() - 1300 * DAY_NS
    return receipts_batch(f"evt_old{n}_", 1200, "shop", end_times_ns=lambda index: start + index * DAY_NS)


def test_poison_batches_fail_alone(own_server: ServeProcess) -> None:
    server = own_server
    headers = {"Authorization": f"Bearer {server.ingest_key}"}

    def valid_sender(sender: int) -> list[int]:
        statuses = []
        with httpx.Client(base_url=server.otlp_url, headers=headers, timeout=60) as client:
            for batch in range(100):
                body = receipts_batch(f"evt_valid{sender}_{batch}_", 20, "shop")
                response = client.post("/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"})
                rejected = ExportTraceServiceResponse.FromString(response.content).partial_success.rejected_spans
                statuses.append(response.status_code if not rejected else -1)
        return statuses

    def poison_sender(kind: str, done: threading.Event) -> list[tuple[int, str]]:
        seen: list[tuple[int, str]] = []
        with httpx.Client(base_url=server.otlp_url, headers=headers, timeout=60) as client:
            while not done.is_set() or len(seen) < 3:
                if kind == "overflow":
                    body, media = _poison_overflow(len(seen)), "application/json"
                else:
                    body, media = _poison_partitions(len(seen)), "application/x-protobuf"
                response = client.post("/v1/traces", content=body, headers={"Content-Type": media})
                if kind == "overflow":
                    seen.append((response.status_code, json.dumps(response.json())))
                else:
                    message = Status.FromString(response.content).message if response.status_code != 200 else ""
                    seen.append((response.status_code, message))
        return seen

    done = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        valid = [pool.submit(valid_sender, sender) for sender in range(4)]
        poison = [pool.submit(poison_sender, kind, done) for kind in ("overflow", "partitions")]
        results = [future.result(timeout=600) for future in valid]
        done.set()
    statuses = [status for result in results for status in result]
    assert len(statuses) == 400 and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    overflow, partitions = (future.result(timeout=600) for future in poison)
    for status, body in overflow:  # refused span by span, with the field named: not retried
        assert status == 200 and '"rejectedSpans": "5"' in body
        for field in ("stripe.amount", "stripe.event.created", "fulfillment.timeout_s", "end time"):
            assert field in body, body
    for status, message in partitions:  # the store refused this request's rows: 400, not 503
        assert status == 400 and "do not retry" in message and "partitions" in message, message


def test_an_unauthenticated_huge_rest_body_is_refused_before_it_is_read(own_server: ServeProcess) -> None:
    server = own_server
    assert server.process is not None
    before = rss_mib(server.process.pid)
    headers = {"Content-Type": "application/json", "Idempotency-Key": "k"}
    answer, _ = first_answer(server.otlp_port, "/v1/receipt", 300 * MIB, headers, body_prefix=8 * MIB)
    assert answer.startswith("HTTP/1.1 401"), answer
    # With a key, the REST limit (64 KiB) refuses it just as early.
    headers["Authorization"] = f"Bearer {server.ingest_key}"
    answer, _ = first_answer(server.otlp_port, "/v1/receipt", 300 * MIB, headers, body_prefix=8 * MIB)
    assert answer.startswith("HTTP/1.1 413"), answer
    assert rss_mib(server.process.pid) - before < 50


def _allocator_conf_seen(operator_value: str | None, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Open an embedded store in a new process; print the allocator setting chDB was loaded with."""
    script = (
        "import os, sys\n"
        "from fulfillwatch.collector_processor.store import Store, parse_dsn\n"
        "store = Store(parse_dsn(sys.argv[1]))\n"
        "store.client('probe').query('SELECT 1')\n"
        "print(os.environ.get('JE_MALLOC_CONF'))\n"
    )
    env = {k: val for k, val in os.environ.items() if k != "JE_MALLOC_CONF"}
    if operator_value is not None:
        env["JE_MALLOC_CONF"] = operator_value
    command = [sys.executable, "-c", script, f"chdb://{tmp_path / 'data'}"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_the_embedded_store_has_chdb_hand_freed_memory_back(tmp_path: Path) -> None:
    assert _allocator_conf_seen(None, tmp_path).stdout.strip() == CHDB_ALLOCATOR_CONF
    assert _allocator_conf_seen("dirty_decay_ms:1000", tmp_path).stdout.strip() == "dirty_decay_ms:1000"  # theirs
    # chDB reads that variable: an option its allocator does not know stops it at load.
    refused = _allocator_conf_seen("abort_conf:true,no_such_option:1", tmp_path)
    assert refused.returncode != 0 and refused.stdout == "", refused


def test_big_batches_beyond_the_budget_are_throttled_and_nothing_acknowledged_is_lost(
    own_server: ServeProcess,
) -> None:
    server = own_server
    assert server.process is not None
    # Six batches just under OTLP's 20 MiB limit, each with its own events.
    made = [receipts_batch_of_size(f"evt_big{n}_", 20 * MIB - 4096, "shop") for n in range(6)]
    bodies, spans = [body for body, _ in made], made[0][1]
    assert all(19 * MIB < len(body) < 20 * MIB for body in bodies)
    headers = {"Authorization": f"Bearer {server.ingest_key}", "Content-Type": "application/x-protobuf"}

    def send(body: bytes) -> list[int]:
        """Send until accepted, honouring Retry-After like an OTLP exporter (its statuses)."""
        statuses = []
        with httpx.Client(timeout=120) as client:
            while True:
                response = client.post(f"{server.otlp_url}/v1/traces", content=body, headers=headers)
                statuses.append(response.status_code)
                if response.status_code != 429:
                    return statuses
                assert response.headers["retry-after"].isdigit()
                time.sleep(0.2)  # a sender that retries sooner than asked: still served in the end

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(send, bodies))
    assert all(statuses[-1] == 200 for statuses in outcomes), outcomes
    assert any(429 in statuses for statuses in outcomes), outcomes  # the excess was throttled
    # Measured 886-901 MiB in this scenario (docs/BENCHMARKS.md, "Misbehaving clients"); it was
    # 974-1,036 MiB before big requests were read span by span and chDB kept freed pages for 1 s
    # only (a CI run failed at 1,036), 1,033-1,062 under contention while the engine pulled
    # every touched row into Python, and 1.5 GiB without any in-flight budget.
    assert rss_mib(server.process.pid, "VmHWM") < 1024
    for n in range(6):  # every acknowledged batch is stored, first to last span
        for index in (0, spans // 2, spans - 1):
            signals = server.get(f"/api/events/evt_big{n}_{index}")["signals"]
            assert [s["signal"] for s in signals] == ["receipt"], (n, index)

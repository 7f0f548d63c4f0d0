"""``opentelemetry-instrument`` picks the Celery integration up with no code change.

A Celery app that never imports Fulfillwatch (``tests/apps/plain_celery_app.py``) runs as a real
prefork worker and a publisher, both under ``opentelemetry-instrument`` (the OpenTelemetry distro
configures OTLP/HTTP to ``fulfillwatch serve``). The receipt and the result must arrive, the
result in the same trace as the receipt (propagated by opentelemetry-instrumentation-celery)
and linked to it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.processes import RedisServer, celery_worker
from support.serve import ROOT, ServeProcess, wait_for


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


def _env(server: ServeProcess, redis_server: RedisServer) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT / "tests" / "apps"),
        "PLAIN_BROKER_URL": redis_server.url,
        "OTEL_SERVICE_NAME": "plain-celery",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        **server.exporter_env(),
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }


def test_opentelemetry_instrument_enables_fulfillwatch_for_celery(
    server: ServeProcess, redis_server: RedisServer, tmp_path: Path
) -> None:
    instrument = str(Path(sys.executable).with_name("opentelemetry-instrument"))
    env = _env(server, redis_server)
    worker = celery_worker("plain_celery_app", env, tmp_path / "worker.log", pool="prefork", launcher=(instrument,))
    try:
        ok, failing = f"evt_plain{uuid.uuid4().hex[:10]}", f"evt_plainfail{uuid.uuid4().hex[:8]}"
        for arguments in ([ok], [failing, "fail"]):
            subprocess.run(
                [instrument, sys.executable, str(ROOT / "tests/apps/plain_celery_app.py"), *arguments],
                env=env,
                check=True,
                timeout=60,
                cwd=tmp_path,
            )

        def signals(event_id: str) -> list[dict[str, object]] | None:
            found = server.get(f"/api/events/{event_id}")["signals"]
            return found if len(found) == 2 else None

        found = wait_for(lambda: signals(ok), timeout=20, what="receipt and result")
        # In time order; on a loaded machine the worker's span may start before the webhook's ends.
        receipt, result = sorted(found, key=lambda signal: signal["signal"] != "receipt")
        assert (receipt["signal"], result["signal"], result["outcome"]) == ("receipt", "result", "success")
        assert receipt["service"] == "plain-celery" and receipt["effect"] == "grant_credits"
        # One trace from the webhook request to the worker (the result's parent is the context
        # opentelemetry-instrumentation-celery propagated), and the link to the receipt.
        assert result["trace_id"] == receipt["trace_id"]
        assert result["receipt_span_id"] == receipt["span_id"]
        incident = wait_for(lambda: server.incident_for(failing), timeout=20, what="the failed task's incident")
        assert incident["kind"] == "result_failed" and incident["reason"] == "RuntimeError: credits service unavailable"
    finally:
        worker.stop()

"""Fulfillwatch's service built inside the test process, on the real chDB engine.

No ``serve`` subprocess: :class:`InProcessService` wires the same parts ``serve`` does
(:func:`fulfillwatch.incident_engine.server.build_service`) around a migrated store of the test
process's chDB directory. The API is driven through FastAPI's ``TestClient``; ingest through an
ASGI client on the service's own event loop (a thread here, as in ``serve``), where the writer,
the dispatcher and the alerts run; the engine is ticked by the test, with a clock the test
controls — so deadlines, retries and transitions are tested without waiting on the wall clock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

import fulfillwatch.instrumentation as fw
from fulfillwatch.collector_processor.store import Store
from fulfillwatch.incident_engine.delivery.attempts import Sleep
from fulfillwatch.incident_engine.detection.engine import TickReport, store_now
from fulfillwatch.incident_engine.server import Service, build_service
from fulfillwatch.incident_engine.settings import load_settings
from support.otlp import PROTOBUF, encode, recorded_spans
from support.serve import TEST_SERVICES, TEST_TOKENS, sha256, toml_list

_T = TypeVar("_T")


class TenantNotFound(LookupError):
    """The failure the tests' fulfillments raise."""


API_TOKEN = "in-process-api-token-0123456789"
INGEST_KEY = "fwk_in_process_key"


class LoopThread:
    """An asyncio event loop running in a thread: where the service's background tasks live."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="service-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, _T], timeout: float = 60) -> _T:
        """Run ``coroutine`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Start ``coroutine`` on the loop without waiting."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class FakeClock:
    """The engine's clock, moved forward by the test: the store's time plus an offset the test
    grows (signals are stamped by the store when they arrive; the engine must never see "now"
    before them)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self, client: Client) -> datetime:
        return store_now(client) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


class InProcessService:
    """The whole service in this process, around ``store`` (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        tmp_path: Path,
        config: str = "",
        *,
        http_transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
        run_alerts: bool = True,
        **settings: Any,
    ) -> None:
        config_file = tmp_path / "fulfillwatch.toml"
        base = f"[projects.default]\nservices = {toml_list(TEST_SERVICES)}\n\n"
        base += f'[ingest_keys.tests]\nsha256 = "{sha256(INGEST_KEY)}"\nprojects = ["default"]\n\n'
        for name, scopes in TEST_TOKENS.items():
            base += f'[api_tokens.{name}]\nsha256 = "{sha256(self.token_for(name))}"\nscopes = {toml_list(scopes)}\n\n'
        config_file.write_text(config + "\n" + base)  # the test's top-level keys before any table
        self.settings = load_settings(config_file, api_token=API_TOKEN, **settings)
        self.store = store
        self.clock = FakeClock()
        self.service: Service = build_service(
            self.settings, store, http_transport=http_transport, sleep=sleep or asyncio.sleep
        )
        self.service.engine.clock = self.clock
        for part in (self.service.declared, self.service.reconciler):
            if part is not None:
                part.clock = self.clock
        self.loop = LoopThread()
        self._stop = self.loop.run(_event())
        self.loop.run(self.service.writer.start())
        self._background = [self.loop.spawn(self.service.dispatcher.run(self._stop))]
        if run_alerts:  # off: as if the process died before the sender got to anything
            self._background.append(self.loop.spawn(self.service.alerts.run(self._stop)))
        self.api = TestClient(self.service.api_app, headers={"Authorization": f"Bearer {API_TOKEN}"})
        self._ingest = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.service.ingest_app), base_url="http://ingest"
        )

    @staticmethod
    def token_for(name: str) -> str:
        """The API token named ``name`` (one of ``TEST_TOKENS``)."""
        return f"in-process-token-{name}-0123456789"

    def as_token(self, name: str, **headers: str) -> TestClient:
        """An API client with the token named ``name``."""
        return TestClient(self.service.api_app, headers={"Authorization": f"Bearer {self.token_for(name)}", **headers})

    def post_spans(self, body: bytes, key: str | None = INGEST_KEY, **headers: str) -> httpx.Response:
        """POST an OTLP protobuf body to the ingest app (on the service's loop)."""
        sent = {"content-type": PROTOBUF, **headers}
        if key is not None:
            sent["authorization"] = f"Bearer {key}"
        return self.loop.run(self._ingest.post("/v1/traces", content=body, headers=sent))

    def post_rest(
        self, path: str, body: Mapping[str, Any], idempotency_key: str, key: str = INGEST_KEY
    ) -> httpx.Response:
        """POST to the REST ingest (``receipt`` or ``result``)."""
        headers = {"authorization": f"Bearer {key}", "idempotency-key": idempotency_key}
        return self.loop.run(self._ingest.post(f"/v1/{path}", json=dict(body), headers=headers))

    def open_failed_incident(self, event_id: str, service: str = "shop") -> dict[str, Any]:
        """Post a receipt and a failed result for ``event_id``, tick, and return the incident
        the engine opened (as ``GET /api/incidents`` lists it)."""
        with recorded_spans(service=service) as spans:
            receipt = fw.record_receipt(event_id, event_type="invoice.paid")
            fw.record_result(event_id, "failure", error=TenantNotFound("no tenant row"), receipt=receipt)
            assert self.post_spans(encode(spans.get_finished_spans())).status_code == 200
        self.tick()
        [incident] = self.api.get("/api/incidents", params={"stripe_event_id": event_id}).json()["items"]
        return dict(incident)

    def tick(self, advance_s: float = 0.0) -> TickReport:
        """Move the engine's clock forward, then evaluate once."""
        self.clock.advance(advance_s)
        return self.service.engine.tick()

    def close(self) -> None:
        self.loop.run(_set(self._stop))
        for task in self._background:
            task.result(timeout=30)
        self.loop.run(self.service.writer.stop())
        self.loop.run(self._ingest.aclose())
        self.api.close()
        self.loop.close()


async def _event() -> asyncio.Event:
    return asyncio.Event()


async def _set(event: asyncio.Event) -> None:
    event.set()

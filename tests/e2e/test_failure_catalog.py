"""The failure catalog: every way a paid event goes unapplied, reproduced and detected.

Real parts only: a ``redis-server``, the example shop (``examples/stripe_shop``: a FastAPI
webhook endpoint verifying ``Stripe-Signature`` with the ``stripe`` SDK, Celery tasks, SQLite)
run as a uvicorn process, ``celery worker`` processes, and ``fulfillwatch serve``. Events are
fixture events delivered as signed webhooks. See docs/FAILURE_CATALOG.md.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.stripe_shop import db as shop_db
from support.processes import ManagedProcess, RedisServer, celery_worker, uvicorn_app
from support.serve import ROOT, ServeProcess, free_port, wait_for
from support.stripe_events import EVENTS, WEBHOOK_SECRET, deliver, event, stripe_signature

REPAIR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CUSTOMER = "cus_QXg1o8vcGmoR32"  # the fixtures' customer
SHORT = 4  # seconds: the deadline of checkout.session.completed in these tests
EXPIRES_S = 6  # seconds: queued jobs older than this are dropped by the worker
SHOP_APP = "examples.stripe_shop.tasks"


class Shop:
    """The example shop's processes and files."""

    def __init__(self, directory: Path, redis_url: str, otlp_url: str, ingest_key: str) -> None:
        self.directory = directory
        self.port = free_port()
        self.db = directory / "shop.sqlite"
        self.inbox = directory / "inbox.sqlite"
        self.env = {
            **os.environ,
            "SHOP_BROKER_URL": redis_url,
            "SHOP_DB": str(self.db),
            "SHOP_INBOX": str(self.inbox),
            "SHOP_TASK_EXPIRES_S": str(EXPIRES_S),
            "SHOP_REPAIR_SECRETS": REPAIR_SECRET,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "FULFILLWATCH_TIMEOUTS": f"checkout.session.completed={SHORT}s,invoice.paid=20s",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_url,
            # init()'s own exporter sends it (the shop has no tracing of its own)
            "FULFILLWATCH_INGEST_KEY": ingest_key,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_SERVICE_NAME": "stripe-shop",
        }
        self.web: ManagedProcess | None = None

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stripe/webhook"

    def start_web(self) -> None:
        self.web = uvicorn_app(
            "examples.stripe_shop.webhook:app", self.port, self.env, self.directory / "web.log", "/docs"
        )

    def worker(self, name: str, **options: Any) -> ManagedProcess:
        env = {**self.env, **options.pop("env", {})}
        return celery_worker(SHOP_APP, env, self.directory / f"worker-{name}.log", **options)

    def send(self, stripe_event: dict[str, Any]) -> None:
        response = deliver(self.webhook_url, stripe_event)
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, Shop]]:
    directory = tmp_path_factory.mktemp("catalog")
    redis_server = RedisServer(directory).start()
    shop_port = free_port()
    config_text = (
        f'[repair_targets.stripe-shop]\nurl = "http://127.0.0.1:{shop_port}/fulfillwatch/repair"\n'
        f'secrets = ["{REPAIR_SECRET}"]\nretry_schedule_s = [0, 0.5, 1]\n'
    )
    server = ServeProcess(data_dir=directory / "serve", log_path=directory / "serve.log")
    server.config = config_text
    server.start()
    shop = Shop(directory, redis_server.url, server.otlp_url, server.ingest_key)
    shop.port = shop_port
    shop_db.ensure_schema(shop.db, shop.inbox)
    shop_db.add_tenant(shop.db, CUSTOMER)
    shop.start_web()
    yield server, shop
    assert shop.web is not None
    shop.web.stop()
    assert server.stop() == 0, server.log()
    redis_server.stop()


@pytest.fixture
def workers(services: tuple[ServeProcess, Shop]) -> Iterator[Callable[..., ManagedProcess]]:
    """Start workers for one test; they are stopped (or were killed) at its end."""
    started: list[ManagedProcess] = []

    def start(name: str = "solo", **options: Any) -> ManagedProcess:
        worker = services[1].worker(f"{name}-{uuid.uuid4().hex[:6]}", **options)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(timeout=5)


def _id(label: str) -> str:
    return f"evt_cat{label}{uuid.uuid4().hex[:12]}"


def _incident(server: ServeProcess, event_id: str, *, state: str | None = None, timeout: float = 20) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        incident = server.incident_for(event_id)
        return incident if incident is not None and (state is None or incident["state"] == state) else None

    return wait_for(found, timeout=timeout, what=f"an incident for {event_id} ({state or 'any state'})")


def _timeline(server: ServeProcess, incident: dict[str, Any]) -> list[dict[str, Any]]:
    return list(server.get(f"/api/incidents/{incident['id']}")["timeline"])


def _reprocess(server: ServeProcess, incident: dict[str, Any]) -> str:
    with server.client() as client:
        response = client.post(f"/api/incidents/{incident['id']}/reprocess", json={"reason": "catalog test"})
    assert response.status_code == 202, response.text
    return str(response.json()["replay_id"])


def test_the_test_signer_matches_the_stripe_vectors() -> None:
    path = ROOT / "tests" / "fixtures" / "signature-vectors" / "derived-vectors-assembled-events.json"
    vectors = json.loads(path.read_text())["vectors"]
    for vector in vectors:
        payload = (EVENTS / Path(vector["payload_file"]).name).read_text()
        assert stripe_signature(payload, vector["secret"], vector["timestamp"]) == vector["header"]
    assert len(vectors) >= 5


def test_1_no_worker_when_queued_becomes_missing_and_reprocess_resolves(services, workers) -> None:  # type: ignore[no-untyped-def]
    server, shop = services
    event_id = _id("noworker")
    sent = time.time()
    shop.send(event("checkout.session.completed", event_id))  # queued; nobody consumes it
    incident = _incident(server, event_id, state="open")
    assert incident["kind"] == "result_missing" and incident["effect"] == "unlock_access"
    # The job's expiry passes too (the shop queues with expires=6 s), then a worker comes back:
    # it drops the expired job instead of running it. Only a reprocess can repair this now.
    wait_for(lambda: time.time() > sent + EXPIRES_S + 0.5, timeout=EXPIRES_S + 5, what="the job's expiry")
    workers()
    repair = _reprocess(server, incident)
    resolved = _incident(server, event_id, state="resolved")
    assert resolved["reason"] == f"reprocess succeeded (replay {repair})"
    kinds = [entry["type"] for entry in _timeline(server, incident)]
    assert kinds[:2] == ["receipt", "opened"] and kinds[-2:] == ["result", "resolved"]
    assert "reprocess_requested" in kinds and "callback_attempt" in kinds
    assert shop_db.entitlement(shop.db, CUSTOMER)["access"] == 1  # type: ignore[index]


def test_2_the_job_raises_after_acceptance(services, workers) -> None:  # type: ignore[no-untyped-def]
    server, shop = services
    workers()
    event_id = _id("raise")
    shop.send(event("checkout.session.completed", event_id, chaos="raise"))
    incident = _incident(server, event_id)
    assert incident["kind"] == "result_failed"
    assert incident["reason"].startswith("examples.stripe_shop.effects.PlanMappingError: no plan configured")
    result = next(e for e in _timeline(server, incident) if e["type"] == "result")["details"]
    assert result["error_type"] == "examples.stripe_shop.effects.PlanMappingError" and result["attempt"] == 1


def test_3_the_database_write_fails_after_acknowledgement(services, workers) -> None:  # type: ignore[no-untyped-def]
    server, shop = services
    workers()
    event_id = _id("locked")
    with closing(sqlite3.connect(shop.db, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        try:
            shop.send(event("checkout.session.completed", event_id))
            incident = _incident(server, event_id)
        finally:
            holder.execute("ROLLBACK")
    assert incident["kind"] == "result_failed"
    assert incident["reason"] == "sqlite3.OperationalError: database is locked"


def test_4_a_duplicate_delivery_trips_the_idempotency_bug(services, workers) -> None:  # type: ignore[no-untyped-def]
    server, shop = services
    workers("buggy", pool="prefork", concurrency=2, env={"SHOP_IDEMPOTENCY_BUG": "1"})
    event_id = _id("dup")
    delivery = event("checkout.session.completed", event_id, chaos="hang")
    shop.send(delivery)  # the first run marks the event done, then hangs
    shop.send(delivery)  # Stripe delivers again: "already done", skipped
    incident = _incident(server, event_id)
    assert incident["kind"] == "duplicate_suppressed"
    results = [e["details"] for e in _timeline(server, incident) if e["type"] == "result"]
    assert [r["outcome"] for r in results] == ["skipped"]
    assert [e["type"] for e in _timeline(server, incident)].count("receipt") == 2


def test_5_the_tenant_row_is_missing_then_reprocess_after_onboarding(services, workers) -> None:  # type: ignore[no-untyped-def]
    server, shop = services
    workers()
    customer = f"cus_new{uuid.uuid4().hex[:10]}"
    event_id = _id("tenant")
    shop.send(event("checkout.session.completed", event_id, customer=customer))
    incident = _incident(server, event_id)
    assert incident["kind"] == "result_failed"
    assert incident["reason"] == f"examples.stripe_shop.effects.TenantNotFound: no tenant row for customer {customer}"
    shop_db.add_tenant(shop.db, customer)  # onboarding catches up
    replay_id = _reprocess(server, incident)
    resolved = _incident(server, event_id, state="resolved")
    assert resolved["replay_id"] == replay_id
    assert shop_db.entitlement(shop.db, customer) == {"access": 1, "credits": 0, "plan": "", "seats": 0}


def test_6_the_worker_is_killed_mid_task(services, workers) -> None:  # type: ignore[no-untyped-def]
    server, shop = services
    worker = workers()
    event_id = _id("killed")
    shop.send(event("checkout.session.completed", event_id, chaos="slow:30"))
    # Celery logs "Task ...unlock_access[<id>] received"; the solo pool then runs it at once.
    wait_for(lambda: "unlock_access[" in worker.log() and "received" in worker.log(), timeout=10, what="the task")
    worker.kill()  # SIGKILL mid-task: no result will ever come
    incident = _incident(server, event_id)
    assert incident["kind"] == "result_missing"
    assert [e["type"] for e in _timeline(server, incident)] == ["receipt", "opened"]


def test_7_healthy_traffic_opens_no_incident(services, workers) -> None:  # type: ignore[no-untyped-def]
    server, shop = services
    workers()
    prefix = f"evt_cathealthy{uuid.uuid4().hex[:8]}"
    deliveries = []
    for n in range(500):
        delivery = event("invoice.paid", f"{prefix}{n:04d}", chaos="transient" if n % 10 == 3 else None)
        deliveries.append(delivery)
        if n % 25 == 7:
            deliveries.append(delivery)  # delivered twice, correctly deduplicated
    with httpx.Client(timeout=30) as client:
        for delivery in deliveries:
            assert deliver(shop.webhook_url, delivery, client).status_code == 200

    def done() -> list[dict[str, Any]] | None:
        expectations = [server.get(f"/api/events/{prefix}{n:04d}")["expectations"] for n in range(0, 500, 7)]
        return expectations if all(e and e[0]["health"] == "healthy" for e in expectations) else None

    sampled = wait_for(done, timeout=120, interval=0.5, what="healthy events")
    assert all(e[0]["last_result"]["attempt"] == (2 if n * 7 % 10 == 3 else 1) for n, e in enumerate(sampled))
    # Past every deadline (20 s after the last receipt), evaluated: still no incident.
    deadline = wait_for(lambda: server.get("/healthz")["engine"]["heartbeat_at"], timeout=5, what="heartbeat")
    wait_for(
        lambda: server.get("/healthz")["engine"]["heartbeat_at"] > deadline and _past_deadline(server, prefix),
        timeout=60,
        interval=0.5,
        what="an evaluation after the deadlines",
    )
    assert [i for i in server.incidents() if i["stripe_event_id"].startswith(prefix)] == []
    twice = server.get(f"/api/events/{prefix}0007")["signals"]
    assert sorted(s["outcome"] for s in twice if s["signal"] == "result") == ["skipped", "success"]


def _past_deadline(server: ServeProcess, prefix: str) -> bool:
    from datetime import datetime

    last = server.get(f"/api/events/{prefix}0499")["expectations"][0]
    due = datetime.fromisoformat(last["due_at"].replace("Z", "+00:00"))
    beat = datetime.fromisoformat(server.get("/healthz")["engine"]["heartbeat_at"].replace("Z", "+00:00"))
    return beat > due

"""Declared expectations end to end: fulfillment plans (``effect_missing``), the repair of a
``not_received`` incident, and where the Stripe key must never show up.

In this process on chDB with the engine's clock moved by the test. Stripe is the stand-in of
support.stripe_api (Stripe cannot be reached from here); the repair endpoint is a real FastAPI
app built with our own ``repair_router``, reached through httpx's ASGI transport; the app's
spans come from the real instrumentation and OpenTelemetry SDK.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from standardwebhooks import Webhook

import fulfillwatch.instrumentation as fw
from fulfillwatch.collector_processor.store import Store
from fulfillwatch.instrumentation.repair import RepairRequest, repair_router, verify_repair_request
from support.inprocess import InProcessService
from support.otlp import encode, recorded_spans
from support.serve import wait_for
from support.stripe_api import STRIPE_TEST_KEY, StandInStripeServer, stripe_event, stripe_table

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PLAN = """
[plans."checkout.session.completed"]
effects = ["unlock_access", "send_receipt_email"]
"""


def _incidents(service: InProcessService, **filters: str) -> list[dict[str, Any]]:
    return list(service.api.get("/api/incidents", params={"limit": 200, **filters}).json()["items"])


def test_a_planned_effect_without_its_own_receipt_opens_effect_missing(store: Store, tmp_path: Path) -> None:
    service = InProcessService(store, tmp_path, PLAN)
    declared = service.service.declared
    assert declared is not None
    now = int(time.time())
    partial = stripe_event("checkout.session.completed", "evt_plan_partial", now)
    healthy = stripe_event("checkout.session.completed", "evt_plan_healthy", now)
    with recorded_spans(service="shop") as spans:
        fw.record_receipt(partial, effect="unlock_access")
        fw.record_result("evt_plan_partial", "success", effect="unlock_access", event_type=partial["type"])
        for effect in ("unlock_access", "send_receipt_email"):
            fw.record_receipt(healthy, effect=effect)
            fw.record_result("evt_plan_healthy", "success", effect=effect, event_type=healthy["type"])
        assert service.post_spans(encode(spans.get_finished_spans())).status_code == 200
    service.tick()
    assert declared.check().opened == 0  # the plan's effects are declared, none due yet
    service.clock.advance(1801)  # past the receipts' 30-minute deadline
    service.tick()
    assert declared.check().opened == 1
    [missing] = _incidents(service)
    assert (missing["stripe_event_id"], missing["effect"], missing["kind"]) == (
        "evt_plan_partial",
        "send_receipt_email",
        "effect_missing",
    )
    assert "requires 'send_receipt_email'" in missing["reason"]
    service.close()


class RecordingRepairApp(httpx.AsyncBaseTransport):
    """The app's repair endpoint (our ``repair_router`` in a FastAPI app), keeping what it was sent."""

    def __init__(self) -> None:
        self.repaired: list[RepairRequest] = []
        app = FastAPI()
        app.include_router(repair_router(self.repaired.append, [SECRET]))
        self._app = httpx.ASGITransport(app=app)
        self.received: list[tuple[dict[str, str], bytes]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.received.append((dict(request.headers), body))
        return await self._app.handle_async_request(request)


def test_reprocess_of_not_received_sends_the_stripe_event_and_the_repair_resolves_it(
    store: Store, tmp_path: Path, stripe_api: StandInStripeServer
) -> None:
    stripe_api.state.add(stripe_event("invoice.paid", "evt_nr_repair", int(time.time()) - 60))
    repair_app = RecordingRepairApp()
    target = f'[repair_targets.shop]\nurl = "https://repair.example.test/fulfillwatch/repair"\nsecrets = ["{SECRET}"]\n'
    service = InProcessService(store, tmp_path, stripe_table(stripe_api.url) + target, http_transport=repair_app)
    assert service.service.reconciler is not None and service.service.declared is not None
    service.service.reconciler.poll()
    service.clock.advance(901)
    service.service.declared.check()
    [incident] = _incidents(service, kind="not_received")

    with recorded_spans(service="shop") as spans:
        answer = service.as_token("alice").post(f"/api/incidents/{incident['id']}/reprocess", json={"reason": "r"})
        assert answer.status_code == 202, answer.text
        wait_for(lambda: repair_app.repaired, timeout=30, what="the repair endpoint's call")
        headers, body = repair_app.received[0]
        payload = Webhook(SECRET).verify(body, headers)  # the Standard Webhooks library
        ours = verify_repair_request(headers, body, [SECRET])  # our helper
        assert payload["kind"] == "not_received" and payload["stripe_event"]["id"] == "evt_nr_repair"
        assert ours.not_received and ours.stripe_event == payload["stripe_event"]
        assert repair_app.repaired[0].stripe_event is not None
        assert repair_app.repaired[0].stripe_event["data"]["object"]["object"] == "invoice"
        finished = wait_for(lambda: len(spans.get_finished_spans()) >= 2 and spans.get_finished_spans(), timeout=30)
        assert sorted(span.name for span in finished) == ["fulfillment.receipt", "fulfillment.result"]
        assert service.post_spans(encode(finished)).status_code == 200
    service.tick()
    resolved = service.api.get(f"/api/incidents/{incident['id']}").json()
    assert resolved["state"] == "resolved", resolved["timeline"][-3:]
    assert resolved["reason"].startswith("reprocess succeeded")
    service.close()


def test_the_stripe_key_never_appears_in_logs_api_answers_or_the_store(
    store: Store, tmp_path: Path, stripe_api: StandInStripeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stripe_api.state.add(stripe_event("invoice.paid", "evt_key_scan", int(time.time()) - 60))
    service = InProcessService(store, tmp_path, stripe_table(stripe_api.url))
    assert service.service.reconciler is not None and service.service.declared is not None
    service.service.reconciler.poll()
    service.clock.advance(901)
    service.service.declared.check()
    [incident] = _incidents(service)
    # A refused key: Stripe's error text names it redacted; the log must not gain more of it.
    stripe_api.state.key = "rk_test_NotTheKeyWeSend000000"
    with pytest.raises(Exception, match="refused"):
        service.service.reconciler.poll()

    answers = [
        service.api.get(path).text
        for path in (
            "/healthz",
            "/api/health",
            "/api/incidents",
            f"/api/incidents/{incident['id']}",
            "/api/events/evt_key_scan",
            "/api/stats",
            "/openapi.json",
        )
    ]
    client = store.client("test")
    tables = client.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT LIKE '%View'"
    ).result_rows
    dump = "\n".join(client.raw_query(f"SELECT * FROM `{name}` FORMAT TSV").decode() for (name,) in tables)
    assert "evt_key_scan" in dump and "evt_key_scan" in "".join(answers)  # the scan sees what was stored
    for where, text in {"logs": caplog.text, "API answers": "".join(answers), "store": dump}.items():
        assert STRIPE_TEST_KEY not in text, where
        assert STRIPE_TEST_KEY[:-4] not in text, where
    service.close()


def test_receipts_that_stop_open_signals_stopped_and_resolve_when_they_resume(store: Store, tmp_path: Path) -> None:
    config = '[silence.shop]\nevent_types = ["invoice.paid"]\nquiet_after_s = 600\n'
    service = InProcessService(store, tmp_path, config)
    declared = service.service.declared
    assert declared is not None

    def receipt(event_id: str) -> None:
        with recorded_spans(service="shop") as spans:
            fw.record_receipt(stripe_event("invoice.paid", event_id, int(time.time())))
            assert service.post_spans(encode(spans.get_finished_spans())).status_code == 200

    receipt("evt_silence_1")
    assert declared.check().opened == 0
    service.clock.advance(601)
    assert declared.check().opened == 1
    assert declared.check().opened == 0  # one incident per silence, not one per check
    [stopped] = _incidents(service, kind="signals_stopped")
    assert (
        stopped["state"] == "open" and stopped["service"] == "shop" and "no invoice.paid receipt" in stopped["reason"]
    )

    receipt("evt_silence_2")
    assert declared.check().resolved == 1
    resumed = service.api.get(f"/api/incidents/{stopped['id']}").json()
    assert resumed["state"] == "resolved" and resumed["reason"].startswith("receipts resumed")

    service.clock.advance(601)  # silent again: the same incident reopens
    assert declared.check().opened == 1
    [again] = _incidents(service, kind="signals_stopped")
    assert again["id"] == stopped["id"] and again["state"] == "open"
    service.close()


def test_with_stripe_a_silence_counts_only_while_stripe_shows_newer_events(
    store: Store, tmp_path: Path, stripe_api: StandInStripeServer
) -> None:
    config = stripe_table(stripe_api.url) + '\n[silence.shop]\nevent_types = ["invoice.paid"]\nquiet_after_s = 600\n'
    service = InProcessService(store, tmp_path, config)
    reconciler, declared = service.service.reconciler, service.service.declared
    assert reconciler is not None and declared is not None
    now = int(time.time())
    with recorded_spans(service="shop") as spans:
        fw.record_receipt(stripe_event("invoice.paid", "evt_quiet_1", now))
        assert service.post_spans(encode(spans.get_finished_spans())).status_code == 200
    stripe_api.state.add(stripe_event("invoice.paid", "evt_quiet_1", now - 5))  # Stripe's record of it
    reconciler.poll()
    declared.check()
    service.clock.advance(601)
    # Quiet for longer than quiet_after_s, but Stripe has sent nothing newer: nothing is missing.
    assert declared.check().opened == 0
    stripe_api.state.add(stripe_event("invoice.paid", "evt_quiet_2", now + 30))  # Stripe sends; the app is silent
    reconciler.poll()
    assert declared.check().opened == 1
    [stopped] = _incidents(service, kind="signals_stopped")
    assert "while Stripe shows newer events" in stopped["reason"]
    service.close()

"""Ingest keys bound to projects, and what a key of one project can do to another's incidents.

In-process (the service on a real chDB store, ingest through its ASGI app). Two projects: the
shop (web app + worker) and billing. Billing's key is what an attacker who got one key holds.
The shop's repair endpoint is a local recording server: nothing may reach it on billing's behalf.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

import fulfillwatch.instrumentation as fw
from fulfillwatch.collector_processor.store import Store
from support.inprocess import InProcessService
from support.otlp import encode, recorded_spans
from support.receiver import RecordingServer
from support.serve import sha256

SHOP_KEY, BILLING_KEY, COLLECTOR_KEY = "fwk_shop_key", "fwk_billing_key", "fwk_collector_key"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class TenantNotFound(LookupError):
    pass


@pytest.fixture
def repair_endpoint() -> Iterator[RecordingServer]:
    server = RecordingServer()
    yield server
    server.close()


@pytest.fixture
def projects(store: Store, tmp_path: Path, repair_endpoint: RecordingServer) -> Iterator[InProcessService]:
    config = f"""
[projects.shop]
services = ["shop-web", "shop-worker"]

[projects.billing]
services = ["billing-api"]

[ingest_keys.shop]
sha256 = "{sha256(SHOP_KEY)}"
projects = ["shop"]

[ingest_keys.billing]
sha256 = "{sha256(BILLING_KEY)}"
projects = ["billing"]

[ingest_keys.collector]
sha256 = "{sha256(COLLECTOR_KEY)}"
projects = ["shop", "billing"]

[repair_targets.shop-web]
url = "{repair_endpoint.url}/repair"
secrets = ["{SECRET}"]
"""
    made = InProcessService(store, tmp_path, config)
    yield made
    made.close()


def _spans(service: str, *steps: tuple[str, str]) -> bytes:
    """A batch from ``service``: ``("receipt", event)``, ``("failure", event)``, ``("success", event)``."""
    with recorded_spans(service=service) as spans:
        for step, event_id in steps:
            if step == "receipt":
                fw.record_receipt(event_id, event_type="invoice.paid")
            elif step == "failure":
                fw.record_result(event_id, "failure", error=TenantNotFound("no tenant"), event_type="invoice.paid")
            else:
                fw.record_result(event_id, "success", event_type="invoice.paid")
        return encode(spans.get_finished_spans())


def _incidents(service: InProcessService, event_id: str) -> list[dict[str, Any]]:
    return list(service.api.get("/api/incidents", params={"stripe_event_id": event_id}).json()["items"])


def _rejections(response: Any) -> tuple[int, str]:
    parsed = ExportTraceServiceResponse.FromString(response.content)
    return parsed.partial_success.rejected_spans, parsed.partial_success.error_message


def _shop_incident(projects: InProcessService, event_id: str) -> dict[str, Any]:
    response = projects.post_spans(_spans("shop-web", ("receipt", event_id), ("failure", event_id)), key=SHOP_KEY)
    assert response.status_code == 200 and _rejections(response) == (0, "")
    projects.tick()
    [incident] = _incidents(projects, event_id)
    assert (incident["project"], incident["state"], incident["kind"]) == ("shop", "open", "result_failed")
    return incident


@pytest.mark.parametrize("key", [None, "fwk_guessed"])
def test_spans_without_a_valid_key_are_refused(projects: InProcessService, key: str | None) -> None:
    response = projects.post_spans(_spans("shop-web", ("receipt", "evt_nokey")), key=key)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert "ingest key" in Status.FromString(response.content).message
    projects.tick()
    assert projects.api.get("/api/events/evt_nokey").json()["signals"] == []


def test_another_projects_key_cannot_resolve_or_touch_an_incident(
    projects: InProcessService, repair_endpoint: RecordingServer
) -> None:
    incident = _shop_incident(projects, "evt_attacked")
    # Billing's key, claiming the shop's service: the span is refused.
    forged = projects.post_spans(_spans("shop-web", ("success", "evt_attacked")), key=BILLING_KEY)
    rejected, reason = _rejections(forged)
    assert forged.status_code == 200 and rejected == 1
    assert "'shop-web' is not in a project granted to ingest key 'billing'" in reason
    # Billing's key, under its own service, with the shop's event id: billing's own expectation.
    assert projects.post_spans(_spans("billing-api", ("success", "evt_attacked")), key=BILLING_KEY).status_code == 200
    projects.tick()
    assert projects.api.get(f"/api/incidents/{incident['id']}").json()["state"] == "open"
    expectations = projects.api.get("/api/events/evt_attacked").json()["expectations"]
    assert {(e["project"], e["health"]) for e in expectations} == {("shop", "failing"), ("billing", "healthy")}
    # A forged failure opens billing's incident, not the shop's; reprocessing it calls no one.
    projects.post_spans(_spans("billing-api", ("failure", "evt_attacked")), key=BILLING_KEY)
    projects.tick()
    billing = next(i for i in _incidents(projects, "evt_attacked") if i["project"] == "billing")
    assert billing["id"] != incident["id"]
    refused = projects.api.post(f"/api/incidents/{billing['id']}/reprocess", json={})
    assert refused.status_code == 409 and "no repair target" in refused.json()["detail"]
    assert repair_endpoint.requests() == []


def test_rest_signals_are_bound_to_the_keys_projects(projects: InProcessService) -> None:
    incident = _shop_incident(projects, "evt_rest_attacked")
    success = {"stripe_event_id": "evt_rest_attacked", "status": "success", "event_type": "invoice.paid"}
    refused = projects.post_rest("result", {**success, "service": "shop-web"}, "attack-1", key=BILLING_KEY)
    assert refused.status_code == 403 and "not in a project granted" in refused.json()["detail"]
    assert projects.post_rest("result", success, "attack-2", key=BILLING_KEY).status_code == 201  # billing-api
    projects.tick()
    assert projects.api.get(f"/api/incidents/{incident['id']}").json()["state"] == "open"
    # The shop's own key resolves it; the shop has two services, so the signal names one.
    ambiguous = projects.post_rest("result", success, "fix-1", key=SHOP_KEY)
    assert ambiguous.status_code == 422 and "service is required" in ambiguous.json()["detail"]
    assert projects.post_rest("result", {**success, "service": "shop-worker"}, "fix-2", key=SHOP_KEY).status_code == 201
    projects.tick()
    assert projects.api.get(f"/api/incidents/{incident['id']}").json()["state"] == "resolved"


def test_a_key_of_several_projects_writes_each_span_to_its_services_project(projects: InProcessService) -> None:
    assert projects.post_spans(_spans("shop-web", ("receipt", "evt_shared")), key=COLLECTOR_KEY).status_code == 200
    assert projects.post_spans(_spans("billing-api", ("receipt", "evt_shared")), key=COLLECTOR_KEY).status_code == 200
    projects.tick()
    signals = projects.api.get("/api/events/evt_shared").json()["signals"]
    assert sorted((s["project"], s["service"]) for s in signals) == [("billing", "billing-api"), ("shop", "shop-web")]


def test_a_service_of_no_project_is_refused(projects: InProcessService) -> None:
    response = projects.post_spans(_spans("unknown-app", ("receipt", "evt_orphan")), key=COLLECTOR_KEY)
    rejected, reason = _rejections(response)
    assert rejected == 1 and "'unknown-app' belongs to no project" in reason

"""Reprocess callbacks and the incident lifecycle in-process: retries on the target's schedule,
rejection, exhaustion, resumption after a restart, and what each action records.

The repair endpoints are apps outside this process: an ``httpx.MockTransport`` answers for them
(support.http_peer) and retry waits are recorded instead of waited out, so a schedule of
minutes runs in milliseconds and no assertion depends on the wall clock. The real repair app
over real HTTP is in tests/e2e/test_reprocess.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

import fulfillwatch.instrumentation as fw
from fulfillwatch.collector_processor.store import Store
from support.http_peer import ScriptedPeer, Waits, route
from support.inprocess import InProcessService
from support.otlp import encode, recorded_spans
from support.serve import wait_for

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HOST = "repair.example.test"
TARGET = f"""
[repair_targets.shop]
url = "https://{HOST}/fulfillwatch/repair"
secrets = ["{SECRET}"]
retry_schedule_s = [0, 5, 30, 120]
result_timeout_s = 600
"""


def _start(store: Store, directory: Path, peer: ScriptedPeer, waits: Waits) -> InProcessService:
    directory.mkdir(exist_ok=True)
    return InProcessService(store, directory, TARGET, http_transport=route({HOST: peer}), sleep=waits)


@pytest.fixture
def peer() -> ScriptedPeer:
    return ScriptedPeer()


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest.fixture
def service(store: Store, tmp_path: Path, peer: ScriptedPeer, waits: Waits) -> Iterator[InProcessService]:
    made = _start(store, tmp_path / "run", peer, waits)
    yield made
    made.close()


def _detail(service: InProcessService, incident_id: str) -> dict[str, Any]:
    return dict(service.api.get(f"/api/incidents/{incident_id}").json())


def _rows(service: InProcessService, incident_id: str, kind: str) -> list[dict[str, Any]]:
    return [entry for entry in _detail(service, incident_id)["timeline"] if entry["type"] == kind]


def _when_state(service: InProcessService, incident_id: str, state: str) -> dict[str, Any]:
    return wait_for(
        lambda: (detail := _detail(service, incident_id))["state"] == state and detail,
        timeout=30,
        what=f"state {state}",
    )


def _reprocess(service: InProcessService, incident_id: str) -> str:
    answer = service.as_token("alice").post(f"/api/incidents/{incident_id}/reprocess", json={"reason": "fixed"})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["replay_id"])


def test_5xx_is_retried_on_the_schedule_then_the_apps_success_resolves(
    service: InProcessService, peer: ScriptedPeer, waits: Waits
) -> None:
    peer.statuses = [503, 502]
    incident = service.open_failed_incident("evt_dispatch_retry")
    replay_id = _reprocess(service, incident["id"])
    wait_for(lambda: len(_rows(service, incident["id"], "callback_attempt")) == 3, timeout=30, what="3 attempts")
    assert waits.delays == [5.0, 30.0]
    calls = peer.received()
    assert [call.headers["webhook-id"] for call in calls] == [replay_id] * 3
    assert [Webhook(SECRET).verify(call.body, call.headers)["attempt"] for call in calls] == [1, 2, 3]
    outcomes = [row["details"]["outcome"] for row in _rows(service, incident["id"], "callback_attempt")]
    assert outcomes == ["retrying", "retrying", "delivered"]
    assert _detail(service, incident["id"])["state"] == "reprocessing"  # delivered: waits for the result

    with recorded_spans(service="shop") as spans:
        fw.record_result("evt_dispatch_retry", "success", event_type="invoice.paid", replay_id=replay_id)
        assert service.post_spans(encode(spans.get_finished_spans())).status_code == 200
    service.tick()
    resolved = _detail(service, incident["id"])
    assert resolved["state"] == "resolved" and resolved["reason"] == f"reprocess succeeded (replay {replay_id})"


def test_a_4xx_is_not_retried_and_the_incident_returns_to_open(
    service: InProcessService, peer: ScriptedPeer, waits: Waits
) -> None:
    peer.statuses = [400]
    incident = service.open_failed_incident("evt_dispatch_rejected")
    _reprocess(service, incident["id"])
    reopened = _when_state(service, incident["id"], "open")
    assert len(peer.received()) == 1 and waits.delays == []
    [failed] = [entry for entry in reopened["timeline"] if entry["type"] == "reprocess_failed"]
    assert "rejected the callback (HTTP 400)" in failed["reason"] and "not retried" in failed["reason"]


def test_an_unreachable_endpoint_exhausts_the_schedule_and_returns_to_open(
    service: InProcessService, peer: ScriptedPeer, waits: Waits
) -> None:
    peer.fail_with = httpx.ConnectError
    incident = service.open_failed_incident("evt_dispatch_down")
    _reprocess(service, incident["id"])
    reopened = _when_state(service, incident["id"], "open")
    assert waits.delays == [5.0, 30.0, 120.0]
    [failed] = [entry for entry in reopened["timeline"] if entry["type"] == "reprocess_failed"]
    assert "after 4 attempts" in failed["reason"] and "ConnectError" in failed["reason"]


def test_a_delivery_interrupted_by_a_restart_resumes_with_its_next_attempt(
    store: Store, tmp_path: Path, peer: ScriptedPeer
) -> None:
    peer.statuses = [503]
    first = _start(store, tmp_path / "first", peer, Waits(hold_after=0))  # parked before attempt 2
    incident = first.open_failed_incident("evt_dispatch_resume")
    replay_id = _reprocess(first, incident["id"])
    wait_for(lambda: _rows(first, incident["id"], "callback_attempt"), timeout=30, what="attempt 1")
    first.close()

    after, waits = ScriptedPeer(), Waits()
    second = _start(store, tmp_path / "second", after, waits)
    try:
        [resumed] = wait_for(lambda: after.received(), timeout=30, what="the resumed attempt")
        assert resumed.headers["webhook-id"] == replay_id
        assert Webhook(SECRET).verify(resumed.body, resumed.headers)["attempt"] == 2
        # The restart came well within attempt 1's 5 s wait: what was left of it was waited.
        assert len(waits.delays) == 1 and 0 < waits.delays[0] <= 5.0
        attempts = wait_for(lambda: _rows(second, incident["id"], "callback_attempt")[1:], timeout=30, what="2 rows")
        assert attempts[-1]["details"]["outcome"] == "delivered"
        assert _detail(second, incident["id"])["state"] == "reprocessing"
    finally:
        second.close()


def test_two_requests_at_once_make_one_dispatch_and_actions_record_their_actor(
    service: InProcessService, peer: ScriptedPeer
) -> None:
    incident = service.open_failed_incident("evt_dispatch_twice")
    alice, bob = service.as_token("alice"), service.as_token("bob")
    assert alice.post(f"/api/incidents/{incident['id']}/acknowledge", json={"reason": "mine"}).status_code == 200
    first = alice.post(f"/api/incidents/{incident['id']}/reprocess", json={}).json()
    second = bob.post(f"/api/incidents/{incident['id']}/reprocess", json={}).json()
    assert second["replay_id"] == first["replay_id"] and second["already_running"] is True
    wait_for(lambda: _rows(service, incident["id"], "callback_attempt"), timeout=30, what="the callback")
    assert len(peer.received()) == 1
    assert bob.post(f"/api/incidents/{incident['id']}/ignore", json={"reason": "test order"}).status_code == 200
    again = bob.post(f"/api/incidents/{incident['id']}/acknowledge", json={})
    assert again.status_code == 409 and "ignored" in again.json()["detail"]
    story = [
        (e["type"], e["actor"])
        for e in _detail(service, incident["id"])["timeline"]
        if e["actor"] not in (None, "system")
    ]
    assert story == [("acknowledged", "alice"), ("reprocess_requested", "alice"), ("ignored", "bob")]

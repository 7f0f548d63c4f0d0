"""Reprocess end to end: ``fulfillwatch serve`` → signed callback → the app's repair → resolution.

The repair endpoint of service ``shop`` is a real app process (``tests/apps/repair_app.py``,
FastAPI + ``repair_router``). The other services' endpoints are local recording servers that
answer scripted statuses, to drive the dispatcher's retry rules.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

import fulfillwatch.instrumentation as fw
from fulfillwatch.instrumentation.repair import verify_repair_request
from support.otlp import encode, recorded_spans
from support.receiver import RecordingServer
from support.serve import ROOT, ServeProcess, free_port, run_app, wait_for

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
FAST = "retry_schedule_s = [0, 0.3, 0.3]"


class Endpoints:
    def __init__(self, tmp: Path) -> None:
        self.flaky = RecordingServer(statuses=[500, 500])  # then 200
        self.strict = RecordingServer(statuses=[400])
        self.down_port = free_port()  # nothing listens
        self.repair_port = free_port()
        self.record = tmp / "repair-requests.jsonl"
        self.record.touch()

    def config(self) -> str:
        return f"""
[repair_targets.shop]
url = "http://127.0.0.1:{self.repair_port}/fulfillwatch/repair"
secrets = ["{SECRET}", "{NEW_SECRET}"]
{FAST}

[repair_targets.flaky-shop]
url = "{self.flaky.url}/repair"
secrets = ["{SECRET}"]
{FAST}

[repair_targets.strict-shop]
url = "{self.strict.url}/repair"
secrets = ["{SECRET}"]
{FAST}

[repair_targets.down-shop]
url = "http://127.0.0.1:{self.down_port}/repair"
secrets = ["{SECRET}"]
{FAST}
"""

    def repair_requests(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.record.read_text().splitlines()]


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    made = Endpoints(tmp_path_factory.mktemp("endpoints"))
    yield made
    made.flaky.close()
    made.strict.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, endpoints: Endpoints) -> Iterator[ServeProcess]:
    directory = tmp_path_factory.mktemp("serve")
    config_text = endpoints.config()
    process = ServeProcess(data_dir=directory / "data", log_path=directory / "serve.log")
    process.config = config_text
    process.start()
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture(scope="module")
def repair_app(endpoints: Endpoints, server: ServeProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    env = {
        **os.environ,
        **server.exporter_env(),
        "OTEL_SERVICE_NAME": "shop",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    log = (tmp_path_factory.mktemp("repair") / "repair.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "apps" / "repair_app.py"),
            "--port",
            str(endpoints.repair_port),
            "--secret",
            NEW_SECRET,
            "--record",
            str(endpoints.record),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def listening() -> bool:
        try:
            return (
                httpx.post(f"http://127.0.0.1:{endpoints.repair_port}/fulfillwatch/repair", timeout=1).status_code
                == 400
            )
        except httpx.HTTPError:
            return False

    wait_for(listening, timeout=30, what="the repair app")
    endpoints.record.write_text("")
    yield
    process.terminate()
    process.wait(timeout=30)


def _failed_incident(server: ServeProcess, prefix: str, service: str) -> dict[str, Any]:
    [event_id] = run_app(
        "failed", otlp_url=server.otlp_url, ingest_key=server.ingest_key, prefix=prefix, service=service
    )
    return wait_for(lambda: server.incident_for(event_id), timeout=10, what="an incident to reprocess")


def _reprocess(server: ServeProcess, incident_id: str, actor: str = "alice", reason: str = "") -> httpx.Response:
    # A header naming someone else is ignored: the actor is the token's name.
    with server.client(token=actor) as client:
        return client.post(
            f"/api/incidents/{incident_id}/reprocess", json={"reason": reason}, headers={"X-Fulfillwatch-Actor": "ciso"}
        )


def _state(server: ServeProcess, incident_id: str, state: str, after: str = "") -> dict[str, Any] | None:
    """The incident once it is in ``state`` (and, if given, has an ``after`` row in its timeline)."""
    detail = server.get(f"/api/incidents/{incident_id}")
    if detail["state"] != state or (after and after not in [e["type"] for e in detail["timeline"]]):
        return None
    return detail


def test_reprocess_reaches_the_repair_app_signed_and_its_success_resolves(
    server: ServeProcess, endpoints: Endpoints, repair_app: None, prefix: str
) -> None:
    incident = _failed_incident(server, prefix, "shop")
    response = _reprocess(server, incident["id"], reason="tenant row created by support")
    assert response.status_code == 202, response.text
    replay_id = response.json()["replay_id"]

    [received] = wait_for(lambda: endpoints.repair_requests(), timeout=10, what="the callback at the repair app")
    body, headers = base64.b64decode(received["body"]), received["headers"]
    assert headers["webhook-id"] == replay_id
    document = Webhook(SECRET).verify(body, headers)  # the third-party library, with either secret
    Webhook(NEW_SECRET).verify(body, headers)
    assert verify_repair_request(headers, body, [SECRET]).replay_id == replay_id  # and our helper
    assert document["incident_id"] == incident["id"] and document["requested_by"] == "alice"
    assert document["stripe_event_id"] == incident["stripe_event_id"]

    resolved = wait_for(lambda: _state(server, incident["id"], "resolved"), timeout=10, what="resolution")
    steps = [(entry["type"], entry["actor"]) for entry in resolved["timeline"]]
    assert steps == [
        ("receipt", None),
        ("result", None),
        ("opened", "system"),
        ("reprocess_requested", "alice"),
        ("callback_attempt", "system"),
        ("result", None),
        ("resolved", "system"),
    ]
    attempt = resolved["timeline"][4]["details"]
    assert attempt["status"] == 200 and attempt["outcome"] == "delivered" and attempt["latency_ms"] > 0
    assert '"status":"repaired"' in attempt["response_excerpt"].replace(" ", "")
    assert resolved["timeline"][5]["details"]["replay_id"] == replay_id
    assert resolved["timeline"][-1]["details"]["resolved_by"] == "reprocess"
    assert resolved["reason"] == f"reprocess succeeded (replay {replay_id})"
    # Nothing is deleted: the whole story is still there, with times and actors.
    assert all(entry["at"] for entry in resolved["timeline"])
    assert server.get(f"/api/incidents/{incident['id']}")["timeline"] == resolved["timeline"]


def test_5xx_is_retried_until_delivered_and_the_apps_success_resolves(
    server: ServeProcess, endpoints: Endpoints, prefix: str
) -> None:
    incident = _failed_incident(server, prefix, "flaky-shop")
    replay_id = _reprocess(server, incident["id"]).json()["replay_id"]
    wait_for(lambda: len(endpoints.flaky.requests()) == 3, timeout=10, what="three attempts")
    assert [r.headers["webhook-id"] for r in endpoints.flaky.requests()] == [replay_id] * 3
    assert [r.json()["attempt"] for r in endpoints.flaky.requests()] == [1, 2, 3]

    with recorded_spans(service="flaky-shop") as spans:  # the app's repair ran: its success result
        fw.record_result(incident["stripe_event_id"], "success", replay_id=replay_id, event_type=incident["event_type"])
        assert server.post_spans(encode(spans.get_finished_spans())).status_code == 200
    resolved = wait_for(lambda: _state(server, incident["id"], "resolved"), timeout=10, what="resolution")
    attempts = [e["details"] for e in resolved["timeline"] if e["type"] == "callback_attempt"]
    assert [(a["status"], a["outcome"]) for a in attempts] == [(500, "retrying"), (500, "retrying"), (200, "delivered")]


def test_an_unreachable_endpoint_exhausts_the_schedule_and_reopens(server: ServeProcess, prefix: str) -> None:
    incident = _failed_incident(server, prefix, "down-shop")
    _reprocess(server, incident["id"])
    reopened = wait_for(
        lambda: _state(server, incident["id"], "open", after="reprocess_failed"), timeout=15, what="back to open"
    )
    attempts = [e["details"] for e in reopened["timeline"] if e["type"] == "callback_attempt"]
    assert len(attempts) == 3 and all(a["status"] is None and a["error"] for a in attempts)
    assert "failed after 3 attempts" in reopened["reason"]


def test_a_400_is_not_retried(server: ServeProcess, endpoints: Endpoints, prefix: str) -> None:
    incident = _failed_incident(server, prefix, "strict-shop")
    _reprocess(server, incident["id"])
    reopened = wait_for(
        lambda: _state(server, incident["id"], "open", after="reprocess_failed"), timeout=15, what="back to open"
    )
    assert len(endpoints.strict.requests()) == 1
    assert [e["details"]["status"] for e in reopened["timeline"] if e["type"] == "callback_attempt"] == [400]
    assert "rejected" in reopened["reason"]


def test_two_reprocess_requests_at_the_same_moment_make_one_dispatch(
    server: ServeProcess, endpoints: Endpoints, repair_app: None, prefix: str
) -> None:
    incident = _failed_incident(server, prefix, "shop")
    before = len(endpoints.repair_requests())
    barrier = threading.Barrier(2)
    answers: list[dict[str, Any]] = []

    def click() -> None:
        barrier.wait()
        answers.append(_reprocess(server, incident["id"]).json())

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {answer["replay_id"] for answer in answers} == {answers[0]["replay_id"]}
    assert sorted(answer["already_running"] for answer in answers) == [False, True]
    wait_for(lambda: _state(server, incident["id"], "resolved"), timeout=10, what="resolution")
    assert len(endpoints.repair_requests()) - before == 1
    timeline = server.get(f"/api/incidents/{incident['id']}")["timeline"]
    assert [e["type"] for e in timeline].count("reprocess_requested") == 1


def test_lifecycle_actions_are_recorded_with_their_actor(server: ServeProcess, prefix: str) -> None:
    incident = _failed_incident(server, prefix, "nowhere-shop")
    with server.client(token="bob") as bob:
        acked = bob.post(
            f"/api/incidents/{incident['id']}/acknowledge",
            json={"reason": "looking"},
            headers={"X-Fulfillwatch-Actor": "alice@security (CISO)"},  # ignored: the token says who
        )
    with server.client() as client:
        assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
        noted = client.post(f"/api/incidents/{incident['id']}/notes", json={"text": "tenant sync is lagging"})
        assert noted.json()["state"] == "acknowledged"  # a note changes nothing
        no_target = client.post(f"/api/incidents/{incident['id']}/reprocess", json={})
        assert no_target.status_code == 409 and "no repair target" in no_target.json()["detail"]
        assert client.post(f"/api/incidents/{incident['id']}/ignore", json={}).status_code == 422  # reason needed
        ignored = client.post(f"/api/incidents/{incident['id']}/ignore", json={"reason": "test tenant"})
        assert ignored.json()["state"] == "ignored"
        assert client.post("/api/incidents/inc_nope/acknowledge").status_code == 404
    timeline = server.get(f"/api/incidents/{incident['id']}")["timeline"]
    actions = [
        (e["type"], e["actor"], e["reason"], e["state"]) for e in timeline if e["actor"] and e["actor"] != "system"
    ]
    assert actions == [
        ("acknowledged", "bob", "looking", "acknowledged"),
        ("note", "api", "tenant sync is lagging", None),
        ("ignored", "api", "test tenant", "ignored"),
    ]


def test_bulk_reprocess_dry_run_then_a_job_with_progress(
    server: ServeProcess, endpoints: Endpoints, prefix: str
) -> None:
    incidents = [_failed_incident(server, f"{prefix}{n}", "flaky-shop") for n in range(3)]
    endpoints.flaky.statuses.clear()  # answers 200 from now on
    with server.client() as client:
        dry = client.post(
            "/api/reprocess", json={"filter": {"service": "flaky-shop", "kind": "result_failed"}, "dry_run": True}
        ).json()
        assert dry["dry_run"] and dry["count"] >= 3
        started = client.post("/api/reprocess", json={"filter": {"service": "flaky-shop"}, "reason": "bulk"})
        assert started.status_code == 202
        job = started.json()
        assert started.headers["location"] == f"/api/reprocess/{job['id']}"
        done = wait_for(
            lambda: (j := client.get(f"/api/reprocess/{job['id']}").json())["state"] == "done" and j,
            timeout=20,
            what="the bulk job",
        )
    assert done["processed"] == done["total"] == dry["count"]
    for incident in incidents:
        timeline = server.get(f"/api/incidents/{incident['id']}")["timeline"]
        [requested] = [e for e in timeline if e["type"] == "reprocess_requested"]
        assert requested["details"]["bulk_job_id"] == job["id"]


def test_a_delivery_interrupted_by_a_crash_resumes_after_restart(tmp_path: Path, prefix: str) -> None:
    endpoint = RecordingServer(statuses=[503])  # then 200
    config_text = (
        f'[repair_targets.slow-shop]\nurl = "{endpoint.url}/repair"\nsecrets = ["{SECRET}"]\n'
        "retry_schedule_s = [0, 2]\n"
    )
    server = ServeProcess(data_dir=tmp_path / "data", log_path=tmp_path / "serve.log")
    server.config = config_text
    try:
        server.start()
        incident = _failed_incident(server, prefix, "slow-shop")
        replay_id = _reprocess(server, incident["id"]).json()["replay_id"]
        wait_for(lambda: len(endpoint.requests()) == 1, timeout=10, what="the first attempt")
        wait_for(
            lambda: (
                "callback_attempt" in [e["type"] for e in server.get(f"/api/incidents/{incident['id']}")["timeline"]]
            ),
            timeout=10,
            what="the first attempt logged",
        )
        server.kill()  # while the second attempt waits for its 2 s delay
        server.start()
        wait_for(lambda: len(endpoint.requests()) == 2, timeout=20, what="the resumed attempt")
        assert [r.headers["webhook-id"] for r in endpoint.requests()] == [replay_id, replay_id]

        def attempts() -> list[dict[str, Any]]:
            timeline = server.get(f"/api/incidents/{incident['id']}")["timeline"]
            found = [e["details"] for e in timeline if e["type"] == "callback_attempt"]
            return found if len(found) == 2 else []

        logged = wait_for(attempts, timeout=10, what="both attempts logged")
        assert [(a["attempt"], a["status"]) for a in logged] == [(1, 503), (2, 200)]
        assert server.get(f"/api/incidents/{incident['id']}")["state"] == "reprocessing"  # awaiting the app's result
    finally:
        server.kill()
        endpoint.close()

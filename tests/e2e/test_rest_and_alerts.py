"""REST ingest and alerts against a real ``fulfillwatch serve`` with a configuration file.

Slack's, PagerDuty's and a generic webhook receiver's endpoints are local recording servers
(those services are outside this project and unreachable here); the payloads sent to them are
checked as the real services would read them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

import fulfillwatch.instrumentation as fw
from support.otlp import encode, record_scenario, recorded_spans
from support.receiver import RecordingServer
from support.serve import ServeProcess, free_port, wait_for

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
REST_KEY = "fw_rest_test_key_0123456789abcdef"


class TenantNotFound(LookupError):
    pass


ERROR_TYPE = f"{__name__}.TenantNotFound"


class Receivers:
    def __init__(self) -> None:
        self.hook = RecordingServer()
        self.slack = RecordingServer()
        self.pagerduty = RecordingServer(default=202)
        self.broken_port = free_port()

    def close(self) -> None:
        for server in (self.hook, self.slack, self.pagerduty):
            server.close()


@pytest.fixture(scope="module")
def receivers() -> Iterator[Receivers]:
    made = Receivers()
    yield made
    made.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, receivers: Receivers) -> Iterator[ServeProcess]:
    directory = tmp_path_factory.mktemp("serve")
    config_text = f"""
[ingest_keys.legacy]
sha256 = "{hashlib.sha256(REST_KEY.encode()).hexdigest()}"
projects = ["default"]

[alerts.hook]
type = "webhook"
url = "{receivers.hook.url}/hook"
secret = "{SECRET}"

[alerts.chat]
type = "slack"
url = "{receivers.slack.url}/services/T000/B000/XXX"

[alerts.pager]
type = "pagerduty"
url = "{receivers.pagerduty.url}/v2/enqueue"
routing_key = "R0123456789abcdef0123456789abcdef"
on = ["opened", "reopened", "acknowledged", "resolved"]

[alerts.broken]
type = "slack"
url = "http://127.0.0.1:{receivers.broken_port}/never"
retry_schedule_s = [0, 0.2, 0.2]
"""
    process = ServeProcess(data_dir=directory / "data", log_path=directory / "serve.log")
    process.config = config_text
    process.start()
    yield process
    assert process.stop() == 0, process.log()


def _rest(server: ServeProcess, path: str, body: dict[str, Any], key: str, token: str = REST_KEY) -> httpx.Response:
    # The key writes for the tests' default project, which has several services: name one.
    return httpx.post(
        f"{server.otlp_url}/v1/{path}",
        json={"service": "shop", **body},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
    )


_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?")


def _story(server: ServeProcess, event_id: str) -> list[tuple[Any, ...]]:
    """An incident's story without ids, times and ingest channel: what a human reads."""
    incident = server.incident_for(event_id)
    assert incident is not None, f"no incident for {event_id}"
    detail = server.get(f"/api/incidents/{incident['id']}")
    reason = _TIME.sub("<time>", detail["reason"])
    story: list[tuple[Any, ...]] = [(detail["kind"], detail["state"], reason, detail["service"])]
    for entry in detail["timeline"]:
        if entry["type"] in ("receipt", "result"):
            details = entry["details"]
            story.append(
                (entry["type"], details.get("outcome"), details.get("error_type"), details.get("error_message"))
            )
        elif entry["type"] != "alert_attempt":
            story.append((entry["type"], entry["state"], _TIME.sub("<time>", entry["reason"])))
    return story


def test_spans_and_rest_ingest_tell_the_same_story(server: ServeProcess, prefix: str) -> None:
    scenarios = ("failed", "missing", "skipped", "healthy")
    with recorded_spans(service="shop") as spans:
        for scenario in scenarios:
            record_scenario(
                f"evt_{prefix}span{scenario}",
                scenario,
                TenantNotFound("no tenant row"),
                event_type="invoice.paid",
                timeout=1,
            )
        assert server.post_spans(encode(spans.get_finished_spans())).status_code == 200
    for scenario in scenarios:
        event_id = f"evt_{prefix}rest{scenario}"
        receipt = {"stripe_event_id": event_id, "event_type": "invoice.paid", "timeout_minutes": 1 / 60}
        assert _rest(server, "receipt", receipt, f"{event_id}-r").status_code == 201
        result: dict[str, Any] = {"stripe_event_id": event_id, "event_type": "invoice.paid"}
        if scenario == "failed":
            result |= {"status": "failed", "error_code": ERROR_TYPE, "error_message": "no tenant row"}
        elif scenario == "skipped":
            result |= {"status": "skipped"}
        elif scenario == "healthy":
            result |= {"status": "success"}
        if "status" in result:
            assert _rest(server, "result", result, f"{event_id}-x").status_code == 201

    for scenario in ("failed", "missing", "skipped"):
        wait_for(
            lambda s=scenario: server.incident_for(f"evt_{prefix}rest{s}"), timeout=15, what=f"{scenario} via REST"
        )
        wait_for(
            lambda s=scenario: server.incident_for(f"evt_{prefix}span{s}"), timeout=15, what=f"{scenario} via spans"
        )
        assert _story(server, f"evt_{prefix}rest{scenario}") == _story(server, f"evt_{prefix}span{scenario}")
    for channel in ("span", "rest"):
        expectations = server.get(f"/api/events/evt_{prefix}{channel}healthy")["expectations"]
        assert [e["health"] for e in expectations] == ["healthy"]
        assert server.incident_for(f"evt_{prefix}{channel}healthy") is None


def test_rest_ingest_is_idempotent_and_authenticated(server: ServeProcess, prefix: str) -> None:
    body = {"stripe_event_id": f"evt_{prefix}idem", "event_type": "invoice.paid"}
    first = _rest(server, "receipt", body, "k1")
    assert first.status_code == 201 and first.json()["status"] == "stored"
    again = _rest(server, "receipt", body, "k1")
    assert again.status_code == 200 and again.json() == {"status": "duplicate", "signal_id": first.json()["signal_id"]}
    conflict = _rest(server, "receipt", {**body, "event_type": "checkout.session.completed"}, "k1")
    assert conflict.status_code == 409 and "different request" in conflict.json()["detail"]
    assert len(server.get(f"/api/events/evt_{prefix}idem")["signals"]) == 1

    assert _rest(server, "receipt", body, "k2", token="wrong-key").status_code == 401
    missing_key = httpx.post(
        f"{server.otlp_url}/v1/receipt", json=body, headers={"Authorization": f"Bearer {REST_KEY}"}
    )
    assert missing_key.status_code == 422 and "idempotency-key" in missing_key.text.lower()
    bad = _rest(server, "result", {"stripe_event_id": f"evt_{prefix}idem", "status": "maybe"}, "k3")
    assert bad.status_code == 422 and "status" in bad.text


def _incident(server: ServeProcess, event_id: str) -> dict[str, Any]:
    return wait_for(lambda: server.incident_for(event_id), timeout=15, what=f"an incident for {event_id}")


def test_alerts_reach_every_destination_and_one_down_blocks_none(
    server: ServeProcess, receivers: Receivers, prefix: str
) -> None:
    event_id = f"evt_{prefix}alert"
    with recorded_spans(service="shop") as spans:
        receipt = fw.record_receipt(event_id, event_type="invoice.paid")
        fw.record_result(event_id, "failure", error=TenantNotFound("no tenant row"), receipt=receipt)
        assert server.post_spans(encode(spans.get_finished_spans())).status_code == 200
    incident = _incident(server, event_id)
    with server.client() as client:
        assert client.post(f"/api/incidents/{incident['id']}/acknowledge", json={}).status_code == 200
    with recorded_spans(service="shop") as spans:
        fw.record_result(event_id, "success", event_type="invoice.paid")
        assert server.post_spans(encode(spans.get_finished_spans())).status_code == 200

    def delivered(recorder: RecordingServer, count: int) -> list[Any]:
        # PagerDuty's acknowledge/resolve carry only the dedup key (the incident id).
        mine = [r for r in recorder.requests() if event_id in r.body.decode() or incident["id"] in r.body.decode()]
        return mine if len(mine) >= count else []

    pager = wait_for(lambda: delivered(receivers.pagerduty, 3), timeout=20, what="three PagerDuty events")
    assert [r.json()["event_action"] for r in pager] == ["trigger", "acknowledge", "resolve"]
    assert {r.json()["dedup_key"] for r in pager} == {incident["id"]}
    assert pager[0].json()["payload"]["severity"] == "error" and pager[0].json()["payload"]["source"] == "shop"
    assert all(r.json()["routing_key"] == "R0123456789abcdef0123456789abcdef" for r in pager)

    hooks = wait_for(lambda: delivered(receivers.hook, 2), timeout=20, what="two webhook alerts")
    assert [Webhook(SECRET).verify(r.body, r.headers)["type"] for r in hooks] == [
        "incident.opened",
        "incident.resolved",
    ]
    slack = wait_for(lambda: delivered(receivers.slack, 2), timeout=20, what="two Slack messages")
    assert "opened" in slack[0].json()["text"] and "resolved" in slack[1].json()["text"]

    def broken_attempts() -> list[dict[str, Any]]:
        timeline = server.get(f"/api/incidents/{incident['id']}")["timeline"]
        attempts = [e["details"] for e in timeline if e["type"] == "alert_attempt"]
        failed = [a for a in attempts if a["destination"] == "broken"]
        return failed if len(failed) == 6 else []  # 3 attempts for each of opened, resolved

    failed = wait_for(broken_attempts, timeout=20, what="every attempt to the broken destination logged")
    assert all(a["status"] is None and a["error"] for a in failed)
    assert failed[-1]["outcome"] == "gave_up"
    timeline = server.get(f"/api/incidents/{incident['id']}")["timeline"]
    ok = [e["details"] for e in timeline if e["type"] == "alert_attempt" and e["details"]["destination"] != "broken"]
    assert all(a["outcome"] == "delivered" for a in ok) and len(ok) == 7  # 3 pager + 2 hook + 2 chat
    assert server.get(f"/api/incidents/{incident['id']}")["state"] == "resolved"


def test_configuration_errors_name_the_key(tmp_path: Path) -> None:
    from fulfillwatch.incident_engine.settings import SettingsError, load_settings

    config = tmp_path / "bad.toml"
    config.write_text(
        """
[repair_targets.shop]
url = "http://shop.example.com/repair"
secrets = ["not-a-whsec"]
typo = 1
"""
    )
    with pytest.raises(SettingsError) as error:
        load_settings(config, demo=True)
    message = str(error.value)
    assert "repair_targets.shop.secrets" in message and "whsec_" in message
    assert "repair_targets.shop.typo" in message
    config.write_text('[repair_targets.shop]\nurl = "http://shop.example.com/x"\nsecrets = ["' + SECRET + '"]\n')
    with pytest.raises(SettingsError, match="must use https"):
        load_settings(config, demo=True)
    config.write_text("[repair_targets.shop\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(config, demo=True)
    with pytest.raises(SettingsError, match="looks like a placeholder"):
        load_settings(None, api_token="changeme")

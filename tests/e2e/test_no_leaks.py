"""Secrets stay secret, and text from senders stays text.

A real ``fulfillwatch serve`` with every kind of secret configured — the API token, an ingest
key, named API tokens, a Slack webhook URL (itself a credential), a PagerDuty routing key, a
signed webhook alert, and a repair URL carrying ``user:password@`` and ``?token=`` — runs a whole
scenario (an incident, its alerts, a reprocess). Afterwards none of those strings is in its
output, in any API answer, or anywhere in the store; and a failure message written to address
everyone on Slack (``<!channel>``) reaches Slack escaped. Slack's, PagerDuty's and the app's
endpoints are local recording servers (outside this project, unreachable here).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fulfillwatch.instrumentation as fw
from support.otlp import encode, recorded_spans
from support.receiver import RecordingServer
from support.serve import ROOT, ServeProcess, wait_for

SLACK_PATH = "/services/T0SECRETWS/B0SECRETWS/sLaCkWeBhOoKsEcReT"
ROUTING_KEY = "R0UTINGKEYSECRET0123456789abcdef"
WEBHOOK_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
REPAIR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
REPAIR_PASSWORD = "hunter2RepairPassword"
REPAIR_TOKEN = "rEpAiRqUeRyToKeN42"
HOSTILE = "<!channel> tenant gone, see <https://evil.example/login|the fix>"


class TenantNotFound(LookupError):
    pass


@pytest.fixture
def endpoints() -> Iterator[dict[str, RecordingServer]]:
    servers = {"slack": RecordingServer(), "pagerduty": RecordingServer(default=202), "hook": RecordingServer()}
    servers["repair"] = RecordingServer()
    yield servers
    for server in servers.values():
        server.close()


def _store_dump(data_dir: Path) -> str:
    """Every row of every table, as text (in a fresh process: one chDB directory per process)."""
    code = (
        "import sys\n"
        "from fulfillwatch.collector_processor.store import Store, parse_dsn\n"
        "client = Store(parse_dsn('chdb://' + sys.argv[1])).client('dump')\n"
        'for (table,) in client.query("SELECT name FROM system.tables WHERE database = currentDatabase()'
        " AND engine NOT LIKE '%View%'\").result_rows:\n"
        "    print(table, client.query(f'SELECT * FROM {table}').result_rows)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(data_dir)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return done.stdout


def test_no_secret_leaks_and_sender_text_stays_text(endpoints: dict[str, RecordingServer], tmp_path: Path) -> None:
    repair_url = endpoints["repair"].url.replace("http://", f"http://shop:{REPAIR_PASSWORD}@")
    server = ServeProcess(data_dir=tmp_path / "data", log_path=tmp_path / "serve.log")
    server.config = f"""
[repair_targets.shop]
url = "{repair_url}/repair?token={REPAIR_TOKEN}"
secrets = ["{REPAIR_SECRET}"]

[alerts.chat]
type = "slack"
url = "{endpoints["slack"].url}{SLACK_PATH}"

[alerts.pager]
type = "pagerduty"
url = "{endpoints["pagerduty"].url}/v2/enqueue"
routing_key = "{ROUTING_KEY}"

[alerts.hook]
type = "webhook"
url = "{endpoints["hook"].url}/hook"
secret = "{WEBHOOK_SECRET}"
"""
    server.extra_args = ("--log-level", "debug")  # even the most talkative level leaks nothing
    secrets = [SLACK_PATH, "sLaCkWeBhOoKsEcReT", ROUTING_KEY, WEBHOOK_SECRET, REPAIR_SECRET, REPAIR_PASSWORD]
    secrets += [REPAIR_TOKEN, server.token, server.ingest_key, *(server.token_for(n) for n in ("alice", "reader"))]
    server.start()
    answers: list[str] = []
    try:
        with recorded_spans(service="shop") as spans:
            receipt = fw.record_receipt("evt_leak", event_type="invoice.paid")
            fw.record_result("evt_leak", "failure", error=TenantNotFound(HOSTILE), receipt=receipt)
            assert server.post_spans(encode(spans.get_finished_spans())).status_code == 200
        incident = wait_for(lambda: server.incident_for("evt_leak"), timeout=30, what="the incident")
        wait_for(lambda: endpoints["slack"].requests(), timeout=30, what="the Slack alert")
        with server.client(token="alice") as alice:
            answers.append(alice.post(f"/api/incidents/{incident['id']}/reprocess", json={}).text)
        wait_for(lambda: endpoints["repair"].requests(), timeout=30, what="the callback")
        wait_for(
            lambda: any(
                e["type"] == "callback_attempt" for e in server.get(f"/api/incidents/{incident['id']}")["timeline"]
            ),
            timeout=30,
            what="the attempt logged",
        )
        with server.client() as client:
            for path in (
                f"/api/incidents/{incident['id']}",
                "/api/incidents",
                "/api/events/evt_leak",
                "/api/health",
                "/api/stats",
                "/healthz",
                "/readyz",
                "/livez",
                "/openapi.json",
            ):
                answers.append(client.get(path).text)
        # What Slack received: the sender's text, escaped so that it cannot ping or link.
        slack = endpoints["slack"].requests()[0].json()
        assert "&lt;!channel&gt;" in slack["text"] and "<!channel>" not in json.dumps(slack)
        assert "<https://evil.example" not in json.dumps(slack)
        # The repair target is shown without its credentials.
        detail: dict[str, Any] = json.loads(answers[1])
        [requested] = [e for e in detail["timeline"] if e["type"] == "reprocess_requested"]
        assert requested["details"]["target"] == endpoints["repair"].url + "/…"
    finally:
        assert server.stop() == 0
    everything = {
        "serve output": server.log(),
        "API answers": "\n".join(answers),
        "store": _store_dump(server.data_dir),
    }
    for where, text in everything.items():
        for secret in secrets:
            assert secret not in text, f"a secret ({secret[:6]}…) is in the {where}"

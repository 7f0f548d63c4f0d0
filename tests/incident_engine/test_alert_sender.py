"""Alerts in-process: sent from the log, retried on their schedule, resumed after a restart, never
sent twice for the same transition and destination.

Slack, PagerDuty and a webhook receiver are outside this project: an ``httpx.MockTransport``
stands in for them (support.http_peer), and retry waits are recorded instead of waited out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
from standardwebhooks import Webhook

from fulfillwatch.collector_processor.identity import ExpectationIdentity
from fulfillwatch.collector_processor.store import Store
from fulfillwatch.incident_engine.detection.engine_state import write_state
from fulfillwatch.incident_engine.incidents import log_reads
from fulfillwatch.incident_engine.incidents.incident_log import append_transitions
from fulfillwatch.incident_engine.model.transitions import State, Transition, TransitionType
from fulfillwatch.incident_engine.schema import INCIDENT_LOG_TABLE
from support.http_peer import Call, ScriptedPeer, Waits, route
from support.inprocess import InProcessService
from support.serve import wait_for

_T = TypeVar("_T")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ALERTS = f"""
[alerts.hook]
type = "webhook"
url = "https://hook.example.test/incidents"
secret = "{SECRET}"
retry_schedule_s = [0, 5, 30]

[alerts.chat]
type = "slack"
url = "https://slack.example.test/services/T0/B0/X"

[alerts.pager]
type = "pagerduty"
url = "https://pagerduty.example.test/v2/enqueue"
routing_key = "R0123456789abcdef0123456789abcdef"
on = ["opened", "acknowledged", "resolved"]
"""


HOOK, SLACK, PAGER = HOSTS = ("hook.example.test", "slack.example.test", "pagerduty.example.test")


def _peers(hook: list[int] | None = None) -> dict[str, ScriptedPeer]:
    """One scripted peer per destination; the webhook receiver answers ``hook`` first."""
    return {host: ScriptedPeer(statuses=list(hook or []) if host == HOOK else []) for host in HOSTS}


class Services:
    """Services built one after another on one store, as restarts of one process would be."""

    def __init__(self, store: Store, tmp_path: Path) -> None:
        self._store = store
        self._tmp_path = tmp_path
        self._running: list[InProcessService] = []
        self._started = 0

    def start(self, peers: dict[str, ScriptedPeer], waits: Waits | None = None, **options: Any) -> InProcessService:
        self._started += 1
        directory = self._tmp_path / f"run{self._started}"
        directory.mkdir()
        made = InProcessService(
            self._store, directory, ALERTS, http_transport=route(peers), sleep=waits or Waits(), **options
        )
        self._running.append(made)
        return made

    def stop(self, service: InProcessService) -> None:
        self._running.remove(service)
        service.close()

    def close(self) -> None:
        for service in list(self._running):
            self.stop(service)


@pytest.fixture
def services(store: Store, tmp_path: Path) -> Iterator[Services]:
    made = Services(store, tmp_path)
    yield made
    made.close()


def _mentions(incident_id: str, event_id: str) -> Callable[[Call], bool]:
    """Requests about one incident: by id (webhook, PagerDuty) or event id (Slack's text)."""
    return lambda call: incident_id in call.body.decode() or event_id in call.body.decode()


def _at_least(count: int, fetch: Callable[[], list[_T]], what: str) -> list[_T]:
    """``fetch()`` once it holds ``count`` items (polled with a deadline)."""
    return wait_for(lambda: (found := fetch())[count - 1 :] and found, timeout=30, what=what)


def _alert_attempts(service: InProcessService, incident_id: str, destination: str) -> list[dict[str, Any]]:
    timeline = service.api.get(f"/api/incidents/{incident_id}").json()["timeline"]
    return [
        entry["details"]
        for entry in timeline
        if entry["type"] == "alert_attempt" and entry["details"]["destination"] == destination
    ]


def _actions(peer: ScriptedPeer) -> list[str]:
    return [call.json()["event_action"] for call in peer.received()]


def test_alerts_go_out_signed_retried_on_schedule_and_each_attempt_is_logged(services: Services) -> None:
    peers = _peers(hook=[503])
    waits = Waits()
    service = services.start(peers, waits)
    incident_id = service.open_failed_incident("evt_alert_retry")["id"]

    first, second = _at_least(2, peers[HOOK].received, "a retried webhook")
    assert waits.delays == [5.0]  # the schedule's second step, recorded, not waited out
    assert first.headers["webhook-id"] == second.headers["webhook-id"]  # one notification, two attempts
    document = Webhook(SECRET).verify(second.body, second.headers)
    assert document["type"] == "incident.opened" and document["incident"]["id"] == incident_id
    attempts = _at_least(2, lambda: _alert_attempts(service, incident_id, "hook"), "two logged attempts")
    assert [(a["attempt"], a["status"], a["outcome"]) for a in attempts] == [
        (1, 503, "retrying"),
        (2, 200, "delivered"),
    ]

    acknowledged = service.api.post(f"/api/incidents/{incident_id}/acknowledge", json={"reason": "on it"})
    assert acknowledged.status_code == 200
    assert _at_least(2, lambda: _actions(peers[PAGER]), "the acknowledgement at PagerDuty") == [
        "trigger",
        "acknowledge",
    ]
    # Slack is not told about acknowledgements (its default events are opened, reopened, resolved).
    assert len(peers[SLACK].received()) == 1


def test_an_alert_not_yet_sent_when_the_process_died_is_sent_once_after_restart(services: Services) -> None:
    # The first run writes the incident's log row and dies before its sender does anything.
    first = services.start(_peers(), run_alerts=False)
    incident_id = first.open_failed_incident("evt_alert_crash")["id"]
    services.stop(first)

    peers = _peers()
    second = services.start(peers)
    about = _mentions(incident_id, "evt_alert_crash")
    _at_least(1, lambda: peers[HOOK].received(about), "the alert after restart")
    # A later incident's alert is the sync point: each destination sends in log order.
    later = second.open_failed_incident("evt_sync_crash")["id"]
    for host in HOSTS:
        _at_least(1, lambda h=host: peers[h].received(_mentions(later, "evt_sync_crash")), f"later at {host}")
        assert len(peers[host].received(about)) == 1, host


def test_a_delivery_parked_mid_schedule_resumes_with_its_next_attempt_and_never_repeats(
    services: Services, store: Store
) -> None:
    peers = _peers(hook=[503])
    first = services.start(peers, Waits(hold_after=0))  # the retry's wait never ends, as in a crash
    incident_id = first.open_failed_incident("evt_alert_resume")["id"]
    about = _mentions(incident_id, "evt_alert_resume")
    _at_least(1, lambda: _alert_attempts(first, incident_id, "hook"), "the first attempt")
    for host in (SLACK, PAGER):
        _at_least(1, lambda h=host: peers[h].received(about), f"the alert at {host}")
    services.stop(first)

    # Restarted with the stored read position forgotten: the log alone says what was sent.
    write_state(store.client("test"), "alert_feed", {"seq": 0}, datetime.now(timezone.utc))
    after = _peers()
    second = services.start(after)
    [resumed] = _at_least(1, lambda: after[HOOK].received(about), "the resumed attempt")
    assert resumed.headers["webhook-id"] == peers[HOOK].received(about)[0].headers["webhook-id"]
    attempts = _at_least(2, lambda: _alert_attempts(second, incident_id, "hook"), "attempt 2 logged")
    assert [(a["attempt"], a["outcome"]) for a in attempts] == [(1, "retrying"), (2, "delivered")]
    later = second.open_failed_incident("evt_sync_resume")["id"]
    for host in HOSTS:
        _at_least(1, lambda h=host: after[h].received(_mentions(later, "evt_sync_resume")), f"later at {host}")
    assert not after[SLACK].received(about) and not after[PAGER].received(about)  # delivered before


def test_transitions_written_by_another_process_are_announced(services: Services) -> None:
    """The API of a split deployment writes acknowledgements in its own process: the sender
    finds them in the log, not through its own journal."""
    peers = _peers()
    service = services.start(peers)
    incident_id = service.open_failed_incident("evt_alert_other")["id"]
    _at_least(1, lambda: _actions(peers[PAGER]), "the trigger")
    incident = service.api.get(f"/api/incidents/{incident_id}").json()
    identity = ExpectationIdentity.of(
        incident["stripe_event_id"],
        incident["effect"],
        incident["event_type"],
        incident["service"],
        incident["project"],
    )
    elsewhere = Transition(
        incident_id,
        identity,
        TransitionType.ACKNOWLEDGED,
        State.ACKNOWLEDGED,
        "",
        "bob",
        "looking",
        "acknowledged-elsewhere",
        datetime.now(timezone.utc),
    )
    append_transitions(service.store.client("another-process"), [elsewhere])
    assert _at_least(2, lambda: _actions(peers[PAGER]), "the acknowledgement") == ["trigger", "acknowledge"]


def test_a_first_start_announces_the_last_30_days_of_the_log_not_all_of_it(services: Services, store: Store) -> None:
    """With no position stored (alerts configured for the first time), the sender starts as far
    back as the log's feed reached when it was a table of its own (30 days), not at the log's
    first row: a year of old openings is not paged out."""
    now = datetime.now(timezone.utc)
    opened = {"old": now - timedelta(days=40), "recent": now - timedelta(days=1)}
    for name, at in opened.items():
        store.client("test").command(
            f"""INSERT INTO {INCIDENT_LOG_TABLE} (incident_id, transition_id, seq, at, transition, state, kind,
                    actor, reason, cause, stripe_event_id, effect, event_type, service, project)
                VALUES ({{id:String}}, {{id:String}}, {{seq:UInt64}}, {{at:DateTime64(6, 'UTC')}}, 'opened',
                    'open', 'result_failed', 'system', 'failed', 'c', {{event:String}}, 'grant',
                    'invoice.paid', 'shop', 'default')""",
            parameters={"id": f"inc_first_{name}", "seq": log_reads.seq_at(at), "at": at, "event": f"evt_first_{name}"},
        )
    peers = _peers()
    services.start(peers)
    announced = _at_least(1, lambda: peers[PAGER].received(), "the recent opening")
    assert [_mentions("inc_first_recent", "evt_first_recent")(call) for call in announced] == [True]
    assert not any(_mentions("inc_first_old", "evt_first_old")(call) for call in peers[HOOK].received())

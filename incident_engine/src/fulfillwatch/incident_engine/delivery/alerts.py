"""Alerts: announcing incidents that open, reopen, get acknowledged or resolve.

Destinations come from the ``[alerts.<name>]`` tables of the configuration:

* ``webhook`` — a JSON document signed like reprocess callbacks (Standard Webhooks);
* ``slack`` — an incoming-webhook message;
* ``pagerduty`` — Events API v2: ``trigger`` on open/reopen, ``acknowledge``, ``resolve``, with
  the incident id as ``dedup_key`` so PagerDuty folds them into one alert.

Every destination has its own queue and worker, so one that is down never delays the others;
each delivery is retried on its schedule (:func:`.delivery.deliver`) and every attempt is an
``alert_attempt`` row in the incident's log.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from fulfillwatch.incident_engine.config import AlertDestination
from fulfillwatch.incident_engine.delivery.attempts import Attempt, deliver
from fulfillwatch.incident_engine.delivery.signing import signed_request
from fulfillwatch.incident_engine.incidents.incident_log import Journal
from fulfillwatch.incident_engine.model.transitions import SYSTEM_ACTOR, Transition, TransitionType

_logger = logging.getLogger("fulfillwatch.alerts")

#: Which transitions are announced, under which event name.
ALERT_EVENTS = {
    TransitionType.OPENED: "opened",
    TransitionType.REOPENED: "reopened",
    TransitionType.RESOLVED: "resolved",
    TransitionType.ACKNOWLEDGED: "acknowledged",
}
_PAGERDUTY_ACTIONS = {"opened": "trigger", "reopened": "trigger", "acknowledged": "acknowledge", "resolved": "resolve"}
_SEVERITY = {"result_failed": "error", "result_missing": "error", "duplicate_suppressed": "warning"}
_SLACK_ICONS = {
    "opened": ":rotating_light:",
    "reopened": ":rotating_light:",
    "acknowledged": ":eyes:",
    "resolved": ":white_check_mark:",
}


def summary(transition: Transition, event: str) -> str:
    """One line for humans (plain text: escape it for the medium it is shown in)."""
    identity = transition.identity
    effect = f" ({identity.effect})" if identity.effect else ""
    service = f" in {identity.service}" if identity.service else ""
    return (
        f"Fulfillment incident {event}: {transition.kind or 'incident'} for {identity.event_type}"
        f"{effect} {identity.stripe_event_id}{service}: {transition.reason}"
    )


def slack_escape(text: str) -> str:
    """Text shown literally by Slack: its three control characters escaped (Slack's rules), so
    that ``<!channel>`` or ``<https://evil.example|click>`` in a reason stays text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _incident(transition: Transition) -> dict[str, Any]:
    identity = transition.identity
    return {
        "id": transition.incident_id,
        "kind": transition.kind,
        "state": transition.state.value if transition.state is not None else None,
        "project": identity.project,
        "stripe_event_id": identity.stripe_event_id,
        "event_type": identity.event_type,
        "effect": identity.display_effect,
        "service": identity.service,
    }


def payload(destination: AlertDestination, transition: Transition, event: str) -> dict[str, Any]:
    """The JSON body for one destination."""
    if destination.type == "slack":
        text = slack_escape(summary(transition, event))
        return {
            "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"{_SLACK_ICONS[event]} {text}"}}],
        }
    if destination.type == "pagerduty":
        assert destination.routing_key is not None
        body: dict[str, Any] = {
            "routing_key": destination.routing_key.get_secret_value(),
            "event_action": _PAGERDUTY_ACTIONS[event],
            "dedup_key": transition.incident_id,
        }
        if body["event_action"] == "trigger":
            body["payload"] = {
                "summary": summary(transition, event)[:1024],
                "source": transition.identity.service or "fulfillwatch",
                "severity": _SEVERITY.get(transition.kind, "error"),
                "component": transition.identity.event_type,
                "group": transition.identity.display_effect,
                "class": transition.kind,
                "custom_details": {**_incident(transition), "reason": transition.reason},
            }
        return body
    return {
        "type": f"incident.{event}",
        "incident": _incident(transition),
        "transition": {
            "type": transition.transition.value,
            "at": transition.at.isoformat(),
            "actor": transition.actor,
            "reason": transition.reason,
        },
    }


def alert_id(destination: str, transition: Transition) -> str:
    """Stable per (destination, transition): the receiver's idempotency key."""
    return "alrt_" + hashlib.sha256(f"{destination}|{transition.transition_id}".encode()).hexdigest()[:24]


class AlertDispatcher:
    """Queues announcements from the journal and delivers them, one worker per destination."""

    def __init__(self, destinations: Mapping[str, AlertDestination], journal: Journal) -> None:
        self._destinations = dict(destinations)
        self._journal = journal
        self._queues: dict[str, asyncio.Queue[tuple[Transition, str]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._early: list[tuple[str, Transition, str]] = []
        if self._destinations:
            journal.subscribe(self.notify)

    def notify(self, transitions: Sequence[Transition]) -> None:
        """Journal listener: queue what deserves an alert (safe from any thread)."""
        for transition in transitions:
            event = ALERT_EVENTS.get(transition.transition)
            if event is None:
                continue
            for name, destination in self._destinations.items():
                if event in destination.on:
                    self._put(name, transition, event)

    def _put(self, name: str, transition: Transition, event: str) -> None:
        if self._loop is None:
            self._early.append((name, transition, event))
        else:
            self._loop.call_soon_threadsafe(self._queues[name].put_nowait, (transition, event))

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set."""
        if not self._destinations:
            await stop.wait()
            return
        self._queues = {name: asyncio.Queue() for name in self._destinations}
        self._loop = asyncio.get_running_loop()
        for name, transition, event in self._early:
            self._queues[name].put_nowait((transition, event))
        self._early.clear()
        async with httpx.AsyncClient() as client:
            workers = [asyncio.create_task(self._work(client, name, stop)) for name in self._destinations]
            await stop.wait()
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self, client: httpx.AsyncClient, name: str, stop: asyncio.Event) -> None:
        destination = self._destinations[name]
        queue = self._queues[name]
        while not stop.is_set():
            transition, event = await queue.get()
            try:
                await self._send(client, name, destination, transition, event)
            except Exception:  # a bug in one delivery must not stop this destination
                _logger.exception("alert %s for %s failed", name, transition.incident_id)

    async def _send(
        self, client: httpx.AsyncClient, name: str, destination: AlertDestination, transition: Transition, event: str
    ) -> None:
        document = payload(destination, transition, event)
        message_id = alert_id(name, transition)

        def body(attempt: int) -> tuple[bytes, dict[str, str]]:
            if destination.type == "webhook":
                assert destination.secret is not None
                return signed_request(message_id, document, [destination.secret.get_secret_value()])
            return json.dumps(document).encode(), {"content-type": "application/json"}

        async def record(attempt: Attempt) -> None:
            row = Transition(
                transition.incident_id,
                transition.identity,
                TransitionType.ALERT_ATTEMPT,
                None,
                "",
                SYSTEM_ACTOR,
                f"alert {name} ({destination.type}, {event}): {attempt.describe()}",
                f"{message_id}#{attempt.number}",
                attempt.at,
                details={
                    **attempt.details(),
                    "destination": name,
                    "destination_type": destination.type,
                    "event": event,
                },
            )
            await asyncio.to_thread(self._journal.append, [row], purpose="alerts")

        await deliver(
            client,
            str(destination.target_url()),
            body,
            schedule=destination.retry_schedule_s,
            timeout_s=destination.timeout_s,
            on_attempt=record,
        )

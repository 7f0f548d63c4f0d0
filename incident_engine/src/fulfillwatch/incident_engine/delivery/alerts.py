"""What alerts say: the payload of each destination type for one transition.

Destinations come from the ``[alerts.<name>]`` tables of the configuration:

* ``webhook`` — a JSON document signed like reprocess callbacks (Standard Webhooks);
* ``slack`` — an incoming-webhook message;
* ``pagerduty`` — Events API v2: ``trigger`` on open/reopen, ``acknowledge``, ``resolve``, with
  the incident id as ``dedup_key`` so PagerDuty folds them into one alert.

Sending them — from the log, durably — is :mod:`.alert_sender`'s job.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fulfillwatch.incident_engine.config import AlertDestination
from fulfillwatch.incident_engine.model.transitions import Transition, TransitionType

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

"""Assembling an incident's story: signals and transitions on one time axis."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from fulfillwatch.incident_engine.model.status import Expectation, assess

_SIGNAL_DETAIL_KEYS = (
    "signal_id",
    "outcome",
    "attempt",
    "error_type",
    "error_message",
    "replay_id",
    "service",
    "due_at",
    "trace_id",
    "span_id",
    "receipt_trace_id",
    "receipt_span_id",
    "source",
    "ingested_at",
)


def _signal_entry(signal: dict[str, Any]) -> dict[str, Any]:
    details = {key: signal[key] for key in _SIGNAL_DETAIL_KEYS if signal.get(key) not in ("", None)}
    if signal["signal"] == "receipt":
        details.pop("outcome", None)
    else:
        details.pop("due_at", None)
    return {"at": signal["at"], "type": signal["signal"], "details": details}


def _transition_entry(row: dict[str, Any]) -> dict[str, Any]:
    details = dict(row["details"])
    if row["replay_id"]:
        details.setdefault("replay_id", row["replay_id"])
    if row["kind"]:
        details["kind"] = row["kind"]
    return {
        "at": row["at"],
        "type": row["transition"],
        "actor": row["actor"],
        "reason": row["reason"],
        "state": row["state"] or None,  # informational rows do not change the state
        "details": details,
    }


def build_timeline(signals: Sequence[dict[str, Any]], transitions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every signal and transition, in time order (signals first on equal times)."""
    entries = [(s["at"], 0, i, _signal_entry(s)) for i, s in enumerate(signals)]
    entries += [(t["at"], 1, i, _transition_entry(t)) for i, t in enumerate(transitions)]
    return [entry for *_, entry in sorted(entries, key=lambda e: (e[0], e[1], e[2]))]


def event_fields(signals: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Key fields of the Stripe event (from the receipt when there is one)."""
    ordered = sorted(signals, key=lambda s: s["signal"] != "receipt")
    fields: dict[str, Any] = {}
    for key in ("event_type", "customer", "amount", "currency", "livemode", "account"):
        for signal in ordered:
            if signal.get(key) not in ("", None):
                fields[key] = signal[key]
                break
    return fields


def expectation_view(expectation: Expectation, now: datetime, default_timeout: timedelta) -> dict[str, Any]:
    """An expectation with its current verdict, for API responses."""
    verdict = assess(expectation, now, default_timeout)
    last = expectation.last_result
    return {
        "incident_id": expectation.incident_id,
        "stripe_event_id": expectation.stripe_event_id,
        "effect": expectation.effect or expectation.event_type,
        "event_type": expectation.event_type,
        "service": expectation.service,
        "health": verdict.health.value,
        "kind": verdict.kind.value if verdict.kind else None,
        "reason": verdict.reason,
        "receipt_at": expectation.receipt_at,
        "due_at": expectation.deadline(default_timeout),
        "last_result": None
        if last is None
        else {
            "signal_id": last.signal_id,
            "at": last.at,
            "outcome": last.outcome,
            "error_type": last.error_type,
            "error_message": last.error_message,
            "replay_id": last.replay_id,
            "attempt": last.attempt,
        },
    }

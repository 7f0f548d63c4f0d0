"""Typed rows read from the store: incidents as listed, log entries, signals.

The query layer returns these, and everything above it — lifecycle actions, timelines, the API,
alerts — works with them; no ``dict`` rows cross a module boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fulfillwatch.collector_processor.identity import ExpectationIdentity
from fulfillwatch.incident_engine.model.transitions import State, Transition, TransitionType


@dataclass(frozen=True)
class IncidentSummary:
    """An incident as listed: its expectation and its current state, derived from the log."""

    id: str
    identity: ExpectationIdentity
    state: State
    kind: str
    opened_at: datetime
    updated_at: datetime
    #: Reason of the latest state change.
    reason: str
    #: Replay id of the latest reprocess request ("" when none).
    replay_id: str


@dataclass(frozen=True)
class LogEntry:
    """One row of an incident's log, as read back."""

    transition: TransitionType
    state: State | None  # None: informational, the state did not change
    kind: str
    actor: str
    reason: str
    at: datetime
    seq: int
    replay_id: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SignalRecord:
    """One stored receipt or result (each signal once)."""

    signal: str  # receipt | result
    signal_id: str
    identity: ExpectationIdentity
    outcome: str
    at: datetime
    due_at: datetime | None
    attempt: int
    error_type: str
    error_message: str
    replay_id: str
    livemode: bool | None
    account: str
    customer: str
    amount: int | None
    currency: str
    trace_id: str
    span_id: str
    receipt_trace_id: str
    receipt_span_id: str
    source: str
    ingested_at: datetime


@dataclass(frozen=True)
class LoggedTransition:
    """A transition as read back from the log, with the ``seq`` that orders it."""

    seq: int
    transition: Transition


@dataclass(frozen=True)
class StripeEventRecord:
    """One stored Stripe event, as the API and the reprocess body show it."""

    stripe_event_id: str
    event_type: str
    account: str
    created: datetime
    livemode: bool
    object_id: str
    customer: str
    amount: int | None
    currency: str
    delivery_failed: bool
    seen_at: datetime
    raw: dict[str, Any]

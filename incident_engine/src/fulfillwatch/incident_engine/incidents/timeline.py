"""Assembling an incident's story: signals and transitions on one time axis, and the verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fulfillwatch.collector_processor.identity import ExpectationIdentity
from fulfillwatch.incident_engine.incidents.records import LogEntry, SignalRecord, StripeEventRecord
from fulfillwatch.incident_engine.model.status import Expectation, ResultInfo, assess
from fulfillwatch.incident_engine.model.transitions import TransitionType


@dataclass(frozen=True)
class TimelineItem:
    """One receipt, result or log row on the incident's time axis."""

    at: datetime
    type: str  # receipt | result | a transition type
    actor: str | None = None
    reason: str | None = None
    state: str | None = None  # the state after a state-changing row
    details: dict[str, Any] = field(default_factory=dict)


def _signal_item(signal: SignalRecord) -> TimelineItem:
    details: dict[str, Any] = {
        "signal_id": signal.signal_id,
        "outcome": signal.outcome,
        "attempt": signal.attempt,
        "error_type": signal.error_type,
        "error_message": signal.error_message,
        "replay_id": signal.replay_id,
        "service": signal.identity.service,
        "due_at": signal.due_at,
        "trace_id": signal.trace_id,
        "span_id": signal.span_id,
        "receipt_trace_id": signal.receipt_trace_id,
        "receipt_span_id": signal.receipt_span_id,
        "source": signal.source,
        "ingested_at": signal.ingested_at,
    }
    if signal.signal == "receipt":
        details.pop("outcome")
    details = {key: value for key, value in details.items() if value not in ("", None)}
    return TimelineItem(at=signal.at, type=signal.signal, details=details)


def _log_item(entry: LogEntry) -> TimelineItem:
    details = dict(entry.details)
    if entry.replay_id:
        details.setdefault("replay_id", entry.replay_id)
    if entry.kind:
        details["kind"] = entry.kind
    return TimelineItem(
        at=entry.at,
        type=entry.transition.value,
        actor=entry.actor,
        reason=entry.reason,
        state=entry.state.value if entry.state is not None else None,
        details=details,
    )


def _stripe_items(stripe: StripeEventRecord, log: Sequence[LogEntry]) -> list[TimelineItem]:
    """Stripe's side of the story: when it created the event, when the reconciler read it, and
    the grace deadline by which the app had to record it (from the ``opened`` row)."""
    facts = {"delivery_failed": stripe.delivery_failed, "account": stripe.account}
    items = [
        TimelineItem(
            stripe.created, "stripe_event_created", "stripe", f"Stripe created {stripe.event_type}", None, facts
        ),
        TimelineItem(stripe.seen_at, "stripe_event_read", "reconciler", "read from Stripe's Events API", None, facts),
    ]
    opened = next((e for e in log if e.transition is TransitionType.OPENED and e.details.get("due_at")), None)
    if opened is not None:
        due = datetime.fromisoformat(str(opened.details["due_at"]))
        items.append(TimelineItem(due, "grace_deadline", None, "a receipt was due by now", None, {}))
    return items


def build_timeline(
    signals: Sequence[SignalRecord], log: Sequence[LogEntry], stripe: StripeEventRecord | None = None
) -> list[TimelineItem]:
    """Every signal and log row (and Stripe's record of the event, when read), in time order
    (Stripe's and signals first on equal times)."""
    entries = [(s.at, 0, i, _signal_item(s)) for i, s in enumerate(signals)]
    if stripe is not None:
        entries += [(item.at, -1, i, item) for i, item in enumerate(_stripe_items(stripe, log))]
    entries += [(e.at, 1, i, _log_item(e)) for i, e in enumerate(log)]
    return [entry for *_, entry in sorted(entries, key=lambda e: (e[0], e[1], e[2]))]


@dataclass(frozen=True)
class EventFacts:
    """Key fields of the Stripe event, as the app reported them."""

    event_type: str | None = None
    customer: str | None = None
    amount: int | None = None
    currency: str | None = None
    livemode: bool | None = None
    account: str | None = None


def event_facts(signals: Sequence[SignalRecord]) -> EventFacts:
    """Key fields of the Stripe event (from the receipt when there is one)."""
    ordered = sorted(signals, key=lambda s: s.signal != "receipt")

    def first(values: Sequence[Any]) -> Any:
        return next((value for value in values if value not in ("", None)), None)

    return EventFacts(
        event_type=first([s.identity.event_type for s in ordered]),
        customer=first([s.customer for s in ordered]),
        amount=first([s.amount for s in ordered]),
        currency=first([s.currency for s in ordered]),
        livemode=first([s.livemode for s in ordered]),
        account=first([s.account for s in ordered]),
    )


@dataclass(frozen=True)
class ExpectationView:
    """An expectation with its current verdict."""

    incident_id: str
    identity: ExpectationIdentity
    health: str  # pending | healthy | failing
    kind: str | None
    reason: str
    receipt_at: datetime | None
    due_at: datetime
    last_result: ResultInfo | None


def expectation_view(expectation: Expectation, now: datetime, default_timeout: timedelta) -> ExpectationView:
    """An expectation with its verdict at ``now``."""
    verdict = assess(expectation, now, default_timeout)
    return ExpectationView(
        incident_id=expectation.incident_id,
        identity=expectation.identity,
        health=verdict.health.value,
        kind=verdict.kind.value if verdict.kind else None,
        reason=verdict.reason,
        receipt_at=expectation.receipt_at,
        due_at=expectation.deadline(default_timeout),
        last_result=expectation.last_result,
    )

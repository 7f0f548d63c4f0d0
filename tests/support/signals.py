"""Signals built directly (no span, no HTTP) for tests of the engine against a real store."""

from __future__ import annotations

from datetime import datetime

from fulfillwatch.collector_processor.signals import Signal, micros


def receipt_signal(event_id: str, at: datetime, due: datetime, n: int = 0) -> Signal:
    """The ``n``-th receipt of ``event_id`` (an ``invoice.paid``), due at ``due``."""
    return Signal(f"r-{event_id}-{n}", "receipt", event_id, micros(at), event_type="invoice.paid", due_at=micros(due))


def result_signal(event_id: str, at: datetime, outcome: str, n: int = 0, replay_id: str = "") -> Signal:
    """The ``n``-th result of ``event_id``; a failure carries a ``TenantNotFound`` error."""
    failed = outcome == "failure"
    return Signal(
        f"x-{event_id}-{n}",
        "result",
        event_id,
        micros(at),
        event_type="invoice.paid",
        outcome=outcome,
        error_type="TenantNotFound" if failed else "",
        error_message="no tenant" if failed else "",
        replay_id=replay_id,
    )

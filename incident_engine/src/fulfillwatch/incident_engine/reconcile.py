"""``fulfillwatch reconcile``: compare Stripe's record of a period with what the app reported.

Reads every event of the tracked types Stripe created since ``--since`` (through the same
:class:`~.sources.stripe_events.Reconciler` the server runs, cursors untouched) and checks which
ones the app recorded (a receipt or result for any effect in the store). The events without
one are what the engine turns into ``not_received`` incidents once their grace has passed.
With ``--dry-run`` nothing is written; otherwise the events are stored and their expectations
declared as a poll would, and one check of declared expectations runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from fulfillwatch.incident_engine.detection.declared import DeclaredCheck, signalled
from fulfillwatch.incident_engine.sources.stripe_events import Reconciler


@dataclass(frozen=True)
class UnreportedEvent:
    """A Stripe event the app has not reported."""

    stripe_event_id: str
    event_type: str
    account: str
    created: datetime
    grace_passed: bool
    #: Stripe lists it as not delivered (the endpoint is down or rejects the signature).
    delivery_failed: bool = False


@dataclass
class ReconcileSummary:
    """What a reconciliation found."""

    seen: int = 0
    with_receipts: int = 0
    unreported: list[UnreportedEvent] = field(default_factory=list)
    recorded: int = 0  # new events stored (not in a dry run)
    opened: int = 0  # not_received incidents opened by the check (not in a dry run)


def reconcile(
    reconciler: Reconciler,
    since: timedelta,
    *,
    dry_run: bool,
    check: DeclaredCheck | None = None,
    on_page: Callable[[int], Any] = lambda events: None,
) -> ReconcileSummary:
    """Read Stripe's events of the last ``since`` and compare them with the store."""
    client = reconciler.store.client("reconcile")
    now = reconciler.clock(client)
    summary = ReconcileSummary()
    for account, page in reconciler.pages_since(now - since):
        events = page.events
        found = {(project, event) for project, event, _ in signalled(client, (e["id"] for e in events))}
        for event in events:
            summary.seen += 1
            if (reconciler.project, event["id"]) in found:
                summary.with_receipts += 1
                continue
            created = datetime.fromtimestamp(int(event["created"]), tz=timezone.utc)
            summary.unreported.append(
                UnreportedEvent(
                    event["id"],
                    event["type"],
                    str(event.get("account") or account),
                    created,
                    created + reconciler.config.grace(event["type"]) <= now,
                )
            )
        if not dry_run:
            summary.recorded += reconciler.record(client, account, page)
        on_page(len(events))
    if not dry_run and check is not None:
        summary.opened = check.check().opened
    if summary.unreported:
        failed_pages = reconciler.pages_since(now - since, delivery_success=False)
        undelivered = {e["id"] for _, page in failed_pages for e in page.events}
        summary.unreported = [replace(e, delivery_failed=e.stripe_event_id in undelivered) for e in summary.unreported]
    summary.unreported.sort(key=lambda e: e.created)
    return summary

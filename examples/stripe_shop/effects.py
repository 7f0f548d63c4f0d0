"""The shop's business effects, with its idempotency table and switches to inject failures.

An event's effect is applied once: ``processed_events`` records it. The correct order is
"do the work, then mark it done, in one transaction"; ``SHOP_IDEMPOTENCY_BUG=1`` switches to
the classic bug — mark it done first, work second — so that a duplicate delivery arriving while
the first run is still working (or after it died) is skipped although nothing was applied.

Failures are injected per event through ``data.object.metadata.fw_chaos`` (tests set it):
``raise`` (a bug in the job), ``transient`` (the first attempt fails, Celery retries),
``slow:<seconds>``, ``hang``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from typing import Any

from . import db
from .config import CONFIG

#: Which effect each tracked event type needs.
EFFECTS = {
    "checkout.session.completed": "unlock_access",
    "invoice.paid": "grant_credits",
    "customer.subscription.updated": "update_plan",
}
CREDITS_PER_CENT = 1


class TenantNotFound(LookupError):
    """The customer's tenant row does not exist (yet): onboarding lags behind payment."""


class TransientError(RuntimeError):
    """A temporary failure (a flaky dependency); the job is retried."""


class PlanMappingError(ValueError):
    """A bug: the job cannot map the purchase to a plan."""


def _chaos(event: dict[str, Any], attempt: int) -> None:
    metadata = event["data"]["object"].get("metadata") or {}
    chaos = str(metadata.get("fw_chaos", ""))
    if chaos == "raise":
        raise PlanMappingError(f"no plan configured for the purchase in {event['id']}")
    if chaos == "transient" and attempt == 1:
        raise TransientError("payment provider timed out")
    if chaos.startswith("slow:"):
        time.sleep(float(chaos.split(":", 1)[1]))
    if chaos == "hang":
        time.sleep(3600)


def _apply(connection: sqlite3.Connection, effect: str, event: dict[str, Any]) -> None:
    obj = event["data"]["object"]
    customer = obj.get("customer")
    if not connection.execute("SELECT 1 FROM tenants WHERE customer_id = ?", (customer,)).fetchone():
        raise TenantNotFound(f"no tenant row for customer {customer}")
    connection.execute("INSERT OR IGNORE INTO entitlements (customer_id) VALUES (?)", (customer,))
    if effect == "unlock_access":
        connection.execute("UPDATE entitlements SET access = 1 WHERE customer_id = ?", (customer,))
    elif effect == "grant_credits":
        credits = int(obj.get("amount_paid") or 0) * CREDITS_PER_CENT
        connection.execute("UPDATE entitlements SET credits = credits + ? WHERE customer_id = ?", (credits, customer))
    elif effect == "update_plan":
        items = (obj.get("items") or {}).get("data") or [{}]
        plan = (items[0].get("price") or {}).get("id", "")
        seats = int(items[0].get("quantity") or 1)
        connection.execute("UPDATE entitlements SET plan = ?, seats = ? WHERE customer_id = ?", (plan, seats, customer))
    else:
        raise ValueError(f"unknown effect {effect!r}")


def apply(
    effect: str,
    event: dict[str, Any],
    *,
    attempt: int = 1,
    already_done: Callable[[], None],
    repairing: bool = False,
) -> bool:
    """Apply ``effect`` for ``event`` once; ``already_done()`` is called (and ``False``
    returned) when the idempotency table says it was applied before. Injected failures do not
    apply to a repair (``repairing``): by then "the bug was fixed"."""
    chaos = (lambda: None) if repairing else (lambda: _chaos(event, attempt))
    with closing(db.connect(CONFIG.db_path)) as connection:
        key = (event["id"], effect)
        if CONFIG.idempotency_bug:
            try:  # BUG: "done" before the work is done
                connection.execute("INSERT INTO processed_events VALUES (?, ?, 'done')", key)
            except sqlite3.IntegrityError:
                already_done()
                return False
            chaos()
            _apply(connection, effect, event)
            return True
        if connection.execute("SELECT 1 FROM processed_events WHERE event_id = ? AND effect = ?", key).fetchone():
            already_done()
            return False
        chaos()
        connection.execute("BEGIN IMMEDIATE")
        try:
            _apply(connection, effect, event)
            connection.execute("INSERT OR IGNORE INTO processed_events VALUES (?, ?, 'done')", key)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return True

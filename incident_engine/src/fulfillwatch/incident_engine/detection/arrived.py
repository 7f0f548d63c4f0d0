"""Receipts that arrived since a stored position — what plans and the silence watch follow.

Both read the same thing: the events whose receipts were stored in ``(position - overlap,
until]``, found by the arrivals' primary-key range (``fw_arrivals`` is ordered by
``ingested_at``), then their signals by key. The overlap re-reads a few seconds because
concurrent inserts become visible out of order; a first run looks back an hour.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fulfillwatch.incident_engine.schema import ARRIVALS_TABLE

#: Receipts are re-read this far behind the position (inserts land out of order).
OVERLAP = timedelta(seconds=5)
#: How far back a follower without a position looks.
FIRST_LOOK_BACK = timedelta(hours=1)

#: A condition on ``stripe_event_id``: events with a receipt stored in ``(since, until]``.
RECEIPTS_ARRIVED_SQL = f"""stripe_event_id IN (
    SELECT stripe_event_id FROM {ARRIVALS_TABLE}
    WHERE ingested_at > {{since:DateTime64(6, 'UTC')}} AND ingested_at <= {{until:DateTime64(6, 'UTC')}}
      AND signal = 'receipt')"""


def since(position: dict[str, Any] | None, until: datetime) -> datetime:
    """Where a read up to ``until`` starts, given the stored position (``{"at": iso}``)."""
    return datetime.fromisoformat(position["at"]) - OVERLAP if position else until - FIRST_LOOK_BACK


def position(until: datetime) -> dict[str, Any]:
    """The position to store after a read up to ``until``."""
    return {"at": until.isoformat()}

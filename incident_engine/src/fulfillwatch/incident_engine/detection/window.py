"""What one evaluation window touched, and which of it needs deciding.

A window is the signals stored in ``(since, until]`` and the deadlines in ``(due_since,
due_until]``. Both come from narrow tables read by primary-key range (``fw_arrivals``,
``fw_deadlines``), one query. Most of what a window touches needs no decision: a routine
receipt whose deadline is ahead, a success of an expectation without an active incident. So
only these are evaluated (their history read, see :mod:`.expectations`):

* arrivals that are not routine — a failure or skipped result, a receipt already past its
  deadline, a row written before arrivals said what they were (signal ``''``), or anything
  about an expectation whose incident is active (``fw_active_incidents``: a success resolves it);
* deadlines of expectations still open (``fw_open_expectations``: no success seen yet).

Membership in the two live tables is one key lookup. After the window's transitions are stored,
the engine enters what it saw waiting in ``fw_open_expectations`` and removes what the window
settled (:func:`update_open_set`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from clickhouse_connect.driver.client import Client

from fulfillwatch.incident_engine.schema import (
    ACTIVE_INCIDENTS_TABLE,
    ARRIVALS_TABLE,
    DEADLINES_TABLE,
    INCIDENT_ID_SQL,
    OPEN_EXPECTATIONS_TABLE,
)

_Key = tuple[str, str, str]  # (project, stripe event id, stored effect)
#: Keys per lookup or delete: a key-value read costs ~17 µs a key up to a few thousand, but a
#: literal list of tens of thousands made one read take a minute (measured at 30,000).
_BATCH = 2_000


@dataclass(frozen=True)
class Window:
    """What one evaluation looks at: signals stored in ``(since, until]`` and deadlines in
    ``(due_since, due_until]``; verdicts are taken at ``now``."""

    since: datetime
    until: datetime
    due_since: datetime
    due_until: datetime
    now: datetime
    default_timeout: timedelta


@dataclass(frozen=True)
class Touch:
    """One row of what the window touched: an arrival (``signal`` set) or a deadline."""

    key: _Key
    incident_id: str
    is_deadline: bool
    signal: str = ""
    outcome: str = ""
    #: The deadline the arrival sets: a receipt's, or when a skipped result was seen.
    due_at: datetime | None = None


_TOUCHED = f"""
    SELECT 0 AS is_deadline, project, stripe_event_id, effect, signal, outcome, due_at,
           {INCIDENT_ID_SQL} AS incident_id
    FROM {ARRIVALS_TABLE}
    WHERE ingested_at > {{since:DateTime64(6, 'UTC')}} AND ingested_at <= {{until:DateTime64(6, 'UTC')}}
    UNION ALL
    SELECT 1, project, stripe_event_id, effect, '', '', due_at, {INCIDENT_ID_SQL}
    FROM {DEADLINES_TABLE}
    WHERE (kind = 'receipt'
           AND due_at > {{due_since:DateTime64(6, 'UTC')}} AND due_at <= {{due_until:DateTime64(6, 'UTC')}})
       -- results without a receipt fall due default_timeout after they were seen
       OR (kind = 'skipped'
           AND due_at > {{due_since:DateTime64(6, 'UTC')}} - toIntervalSecond({{timeout_s:UInt32}})
           AND due_at <= {{due_until:DateTime64(6, 'UTC')}} - toIntervalSecond({{timeout_s:UInt32}}))
"""
_LIVE = f"""
    SELECT incident_id, 'active' FROM {ACTIVE_INCIDENTS_TABLE} WHERE incident_id IN {{ids:Array(String)}}
    UNION ALL
    SELECT incident_id, 'open' FROM {OPEN_EXPECTATIONS_TABLE} WHERE incident_id IN {{ids:Array(String)}}
"""


def touched(client: Client, window: Window) -> list[Touch]:
    """Every arrival and deadline of the window (duplicates included)."""
    rows = client.query(
        _TOUCHED,
        parameters={
            "since": window.since,
            "until": window.until,
            "due_since": window.due_since,
            "due_until": window.due_until,
            "timeout_s": int(window.default_timeout.total_seconds()),
        },
    ).result_rows
    return [
        Touch((project, event, effect), incident_id, bool(is_deadline), signal, outcome, due_at)
        for is_deadline, project, event, effect, signal, outcome, due_at, incident_id in rows
    ]


def _arrives_decided(touch: Touch, window: Window) -> bool:
    """An arrival whose deadline this tick has already reached (it is decided now)."""
    if touch.signal == "receipt":
        return touch.due_at is not None and touch.due_at <= window.due_until
    if touch.outcome == "skipped":
        return touch.due_at is not None and touch.due_at + window.default_timeout <= window.due_until
    return False


Live = dict[str, set[str]]  # incident id → {"active", "open"} (absent: neither)


def live_membership(client: Client, touches: list[Touch]) -> Live:
    """Which of the touched expectations are in the live tables (one key lookup)."""
    ids = sorted({touch.incident_id for touch in touches})
    live: Live = {}
    for start in range(0, len(ids), _BATCH):
        batch = ids[start : start + _BATCH]
        for incident_id, kind in client.query(_LIVE, parameters={"ids": batch}).result_rows:
            live.setdefault(incident_id, set()).add(kind)
    return live


def needing_decision(window: Window, touches: list[Touch], live: Live) -> dict[_Key, str]:
    """The window's expectations that may need a transition, with their incident ids."""
    chosen: dict[_Key, str] = {}
    for touch in touches:
        membership = live.get(touch.incident_id, set())
        if touch.is_deadline:
            needed = "open" in membership
        else:
            needed = (
                touch.signal == ""
                or touch.outcome in ("failure", "skipped")
                or "active" in membership
                or _arrives_decided(touch, window)
            )
        if needed:
            chosen[touch.key] = touch.incident_id
    return chosen


def update_open_set(client: Client, window: Window, touches: list[Touch], live: Live) -> None:
    """Bring ``fw_open_expectations`` up to date with the window, after its transitions are
    stored (a crash in between only makes the next tick do it again; both steps are
    idempotent):

    * a receipt or skipped result whose deadline is still ahead opens its expectation — unless
      a success arrived in the same window;
    * what the window settled leaves: expectations with a success, and those whose deadline it
      evaluated, in the deadline window or arriving already past it (an incident, if one was
      needed, is open by now and followed in ``fw_active_incidents``). Only keys the lookup
      found open are deleted (a delete costs about 0.5 ms a key).
    """
    succeeded = {touch.incident_id for touch in touches if touch.outcome == "success"}
    opened: dict[str, datetime] = {}
    for touch in touches:
        waits = touch.signal == "receipt" or touch.outcome == "skipped"
        if waits and touch.due_at is not None and touch.incident_id not in succeeded:
            if _arrives_decided(touch, window):
                continue
            opened[touch.incident_id] = min(touch.due_at, opened.get(touch.incident_id, touch.due_at))
    if opened:
        client.insert(OPEN_EXPECTATIONS_TABLE, list(opened.items()), column_names=["incident_id", "due_at"])
    settled = sorted(
        {
            touch.incident_id
            for touch in touches
            if "open" in live.get(touch.incident_id, set())
            and (touch.is_deadline or touch.outcome == "success" or _arrives_decided(touch, window))
        }
    )
    for start in range(0, len(settled), _BATCH):
        # By key: a key-value table deletes a list of keys at once, but scans for a subquery.
        client.command(
            f"DELETE FROM {OPEN_EXPECTATIONS_TABLE} WHERE incident_id IN {{ids:Array(String)}}",
            parameters={"ids": settled[start : start + _BATCH]},
        )

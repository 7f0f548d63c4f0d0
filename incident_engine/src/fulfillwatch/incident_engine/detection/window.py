"""What one evaluation window touched, and which of it needs deciding.

A window is the signals stored in ``(since, until]`` and the deadlines in ``(due_since,
due_until]``. Both come from narrow tables read by primary-key range (``fw_arrivals``,
``fw_deadlines``). Most of what a window touches needs no decision: a routine receipt whose
deadline is ahead, a success of an expectation without an active incident. So only these are
evaluated (their history read, see :mod:`.expectations`):

* arrivals that are not routine — a failure or skipped result, a receipt already past its
  deadline, a row written before arrivals said what they were (signal ``''``), or anything
  about an expectation whose incident is active (``fw_active_incidents``: a success resolves it);
* deadlines of expectations still open (``fw_open_expectations``: no success seen yet).

All of that is decided in the store, in one query (:func:`decide`): the window's rows are
summarised per expectation and joined to the two key-value tables by key (``join_algorithm =
'direct'``: a key lookup per expectation, no scan). Only what needs evaluating, leaves the open
set or enters it comes back to Python. After the window's transitions are stored, the engine
removes what the window settled from ``fw_open_expectations`` and inserts what it saw waiting
(:func:`update_open_set`). A burst — more than a few thousand rows to return — is decided again
without its waiting rows, and those enter with an ``INSERT … SELECT`` in the store, so a
hundred thousand receipts cost three statements and a few MiB. (Shipping every touched row to
Python and looking its key up from there took 4 s and ~100 MiB per 100,000 rows, and set the
peak memory of ``serve`` under big batches.)
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
#: Keys per delete: a literal list of tens of thousands made one statement take a minute
#: (measured at 30,000 with a key-value read).
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
class Decisions:
    """What a window asks of the engine: expectations to evaluate (key → incident id), the
    incident ids of open expectations the window settled, and the expectations it saw waiting
    for a result (incident id, deadline) — ``None`` for a burst, whose waiting ones enter the
    open set in the store."""

    to_evaluate: dict[_Key, str]
    settled: list[str]
    waiting: list[tuple[str, datetime]] | None


_WINDOW_ROWS = f"""
    SELECT 0 AS is_deadline, project, stripe_event_id, effect, signal, outcome, due_at
    FROM {ARRIVALS_TABLE}
    WHERE ingested_at > {{since:DateTime64(6, 'UTC')}} AND ingested_at <= {{until:DateTime64(6, 'UTC')}}
    UNION ALL
    SELECT 1, project, stripe_event_id, effect, '', '', due_at
    FROM {DEADLINES_TABLE}
    WHERE (kind = 'receipt'
           AND due_at > {{due_since:DateTime64(6, 'UTC')}} AND due_at <= {{due_until:DateTime64(6, 'UTC')}})
       -- results without a receipt fall due default_timeout after they were seen
       OR (kind = 'skipped'
           AND due_at > {{due_since:DateTime64(6, 'UTC')}} - toIntervalSecond({{timeout_s:UInt32}})
           AND due_at <= {{due_until:DateTime64(6, 'UTC')}} - toIntervalSecond({{timeout_s:UInt32}}))
"""
#: An arrival that waits for a result: a receipt (until its deadline) or a skipped result
#: (until ``default_timeout`` after it was seen; ``due_at`` holds when it was seen).
_WAITS = "(NOT is_deadline AND (signal = 'receipt' OR outcome = 'skipped'))"
#: A waiting arrival whose deadline this window has already reached: it is decided now.
_DECIDED = f"""({_WAITS} AND if(signal = 'receipt', due_at,
    due_at + toIntervalSecond({{timeout_s:UInt32}})) <= {{due_until:DateTime64(6, 'UTC')}})"""
_PER_EXPECTATION = f"""
    SELECT {INCIDENT_ID_SQL} AS incident_id, project, stripe_event_id, effect,
           max(is_deadline) AS has_deadline,
           max(NOT is_deadline) AS has_arrival,
           max(NOT is_deadline AND (signal = '' OR outcome IN ('failure', 'skipped'))) AS unusual,
           max({_DECIDED}) AS decided,
           max(outcome = 'success') AS succeeded,
           max({_WAITS} AND NOT {_DECIDED}) AND NOT succeeded AS enters,
           minIf(due_at, {_WAITS} AND NOT {_DECIDED}) AS waits_until
    FROM ({_WINDOW_ROWS})
    -- the id once per expectation, not per row: it is a hash, and planning it costs too
    GROUP BY project, stripe_event_id, effect
"""
_DECISIONS = f"""
    SELECT e.incident_id, e.project, e.stripe_event_id, e.effect,
           (e.has_deadline AND open.incident_id != '') OR e.unusual OR e.decided
               OR (e.has_arrival AND active.incident_id != '') AS to_evaluate,
           open.incident_id != '' AND (e.has_deadline OR e.succeeded OR e.decided) AS settled,
           e.enters, e.waits_until
    FROM ({_PER_EXPECTATION}) AS e
    LEFT JOIN {ACTIVE_INCIDENTS_TABLE} AS active ON active.incident_id = e.incident_id
    LEFT JOIN {OPEN_EXPECTATIONS_TABLE} AS open ON open.incident_id = e.incident_id
    WHERE to_evaluate OR settled OR (e.enters AND {{with_waiting:UInt8}})
    LIMIT {{limit:UInt64}}
    SETTINGS join_algorithm = 'direct'
"""
#: Rows a window's decision may bring back with its waiting ones, which Python then inserts
#: itself (on small ticks a statement less than :data:`_ENTER_WAITING`, which chDB takes ~20 ms
#: to plan). A burst above that is decided again without them, and they enter in the store:
#: 100,000 waiting rows returned to Python took serve's peak under six 20 MiB batches from
#: 750 to 860-900 MiB.
_RETURNED_ROWS = 5_000
# A burst's waiting arrivals enter in the store (the same rule as ``enters`` above: it is that
# query's column).
_ENTER_WAITING = f"""
    INSERT INTO {OPEN_EXPECTATIONS_TABLE} (incident_id, due_at)
    SELECT incident_id, waits_until FROM ({_PER_EXPECTATION}) WHERE enters
"""


def _parameters(window: Window) -> dict[str, object]:
    return {
        "since": window.since,
        "until": window.until,
        "due_since": window.due_since,
        "due_until": window.due_until,
        "timeout_s": int(window.default_timeout.total_seconds()),
    }


def decide(client: Client, window: Window) -> Decisions:
    """Which of the window's expectations need evaluating, which open ones it settled, and —
    unless the window is a burst — which it saw waiting."""
    parameters = _parameters(window)
    rows = client.query(_DECISIONS, parameters={**parameters, "with_waiting": 1, "limit": _RETURNED_ROWS + 1})
    waiting: list[tuple[str, datetime]] | None = []
    if len(rows.result_rows) > _RETURNED_ROWS:
        rows = client.query(_DECISIONS, parameters={**parameters, "with_waiting": 0, "limit": 2**63 - 1})
        waiting = None
    decisions = Decisions({}, [], waiting)
    for incident_id, project, event, effect, evaluate, settles, enters, waits_until in rows.result_rows:
        if evaluate:
            decisions.to_evaluate[(project, event, effect)] = incident_id
        if settles:
            decisions.settled.append(incident_id)
        if enters and decisions.waiting is not None:
            decisions.waiting.append((incident_id, waits_until))
    decisions.settled.sort()
    return decisions


def update_open_set(client: Client, window: Window, decisions: Decisions) -> None:
    """Bring ``fw_open_expectations`` up to date with the window, after its transitions are
    stored (a crash in between only makes the next tick do it again; both steps are
    idempotent):

    * what the window settled leaves: expectations with a success, and those whose deadline it
      evaluated, in the deadline window or arriving already past it (an incident, if one was
      needed, is open by now and followed in ``fw_active_incidents``);
    * then a receipt or skipped result whose deadline is still ahead opens its expectation —
      unless a success arrived in the same window. In this order, an expectation whose first
      deadline passed in the window while a later receipt moved it stays open until the later one.
    """
    for start in range(0, len(decisions.settled), _BATCH):
        # By key: a key-value table deletes a list of keys at once, but scans for a subquery.
        client.command(
            f"DELETE FROM {OPEN_EXPECTATIONS_TABLE} WHERE incident_id IN {{ids:Array(String)}}",
            parameters={"ids": decisions.settled[start : start + _BATCH]},
        )
    if decisions.waiting is None:
        client.command(_ENTER_WAITING, parameters=_parameters(window))
    elif decisions.waiting:
        client.insert(OPEN_EXPECTATIONS_TABLE, decisions.waiting, column_names=["incident_id", "due_at"])

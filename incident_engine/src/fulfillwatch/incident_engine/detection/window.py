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

How (:func:`decide`): the window's rows come back to Python as stored (with their incident id,
computed in the store; the arrivals and the deadlines are two statements, side by side when the
engine has two clients); Python says what each row means (:meth:`_Seen.add_arrival`), folds
them per expectation, looks them up in the engine's in-memory copies of the two key-value
tables (:class:`Live`) and applies the rules (:func:`_decide`). After the window's transitions
are stored, the engine removes what the window settled from ``fw_open_expectations`` and
inserts what it saw waiting (:mod:`.open_set`). A burst — more than a few thousand rows — stays
in the store: the rows are folded there (:data:`_ARRIVAL_ROWS` says in SQL what
:meth:`_Seen.add_arrival` says in Python) and joined to the key-value tables by key
(``join_algorithm = 'direct'``), only the expectations that may need something come back to the
same rules, and the waiting ones enter with an ``INSERT … SELECT``, so a hundred thousand
receipts cost four statements and a few MiB. (Shipping every touched row to Python and looking
its key up from there took 4 s and ~100 MiB per 100,000 rows, and set the peak memory of
``serve`` under big batches.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Set
from concurrent.futures import Executor, wait
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client

from fulfillwatch.incident_engine.schema import (
    ACTIVE_INCIDENTS_TABLE,
    ARRIVALS_TABLE,
    DEADLINES_TABLE,
    INCIDENT_ID_SQL,
    OPEN_EXPECTATIONS_TABLE,
    incident_ids_in,
)

_Key = tuple[str, str, str]  # (project, stripe event id, stored effect)
_Here = TypeVar("_Here")
_There = TypeVar("_There")


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

    def still_open(self, pending: Set[str]) -> Decisions:
        """These decisions, with the expectations evaluated ``pending`` not settled: a deadline
        came (a skipped result's timeout), but the verdict waits for a later one — a receipt
        due after it — and only an open expectation is looked at when that deadline comes
        (its row in ``fw_deadlines`` comes in a later window). Settled there, such an
        expectation never paged (found on 2026-12-03)."""
        if not pending:
            return self
        return replace(self, settled=[incident_id for incident_id in self.settled if incident_id not in pending])


_DT = "DateTime64(6, 'UTC')"
_ARRIVALS_IN_WINDOW = f"FROM {ARRIVALS_TABLE} WHERE ingested_at > {{since:{_DT}}} AND ingested_at <= {{until:{_DT}}}"
_DEADLINES_IN_WINDOW = f"""
    FROM {DEADLINES_TABLE}
    WHERE (kind = 'receipt' AND due_at > {{due_since:{_DT}}} AND due_at <= {{due_until:{_DT}}})
       -- results without a receipt fall due default_timeout after they were seen
       OR (kind = 'skipped'
           AND due_at > {{due_since:{_DT}}} - toIntervalSecond({{timeout_s:UInt32}})
           AND due_at <= {{due_until:{_DT}}} - toIntervalSecond({{timeout_s:UInt32}}))
"""
#: The window's rows, each with what it says on its own: an arrival (``r_unusual``: a failure or
#: skipped result, or a row written before arrivals said what they were; ``r_waits``: a receipt
#: or skipped result, waiting for a result — until a receipt's deadline, or ``default_timeout``
#: after a skipped result was seen (``r_due`` holds the deadline or that time, as the open set
#: stores it); ``r_decided``: waiting, but the window has reached its deadline already;
#: ``r_succeeded``) or a deadline in the deadline range (:data:`_DEADLINE_ROWS`, the same columns).
_ARRIVAL_ROWS = f"""
    SELECT {INCIDENT_ID_SQL} AS incident_id, project, stripe_event_id, effect,
           0 AS r_deadline,
           signal = '' OR outcome IN ('failure', 'skipped') AS r_unusual,
           signal = 'receipt' OR outcome = 'skipped' AS r_waits,
           due_at AS r_due,
           r_waits AND if(signal = 'receipt', due_at, due_at + toIntervalSecond({{timeout_s:UInt32}}))
               <= {{due_until:{_DT}}} AS r_decided,
           outcome = 'success' AS r_succeeded
    {_ARRIVALS_IN_WINDOW}
"""
_DEADLINE_ROWS = f"""
    SELECT {INCIDENT_ID_SQL} AS incident_id, project, stripe_event_id, effect,
           1 AS r_deadline, 0 AS r_unusual, 0 AS r_waits, due_at AS r_due, 0 AS r_decided, 0 AS r_succeeded
    {_DEADLINES_IN_WINDOW}
"""
_ROWS = f"{_ARRIVAL_ROWS} UNION ALL {_DEADLINE_ROWS}"
#: The same, one row per expectation (:class:`_Seen`'s fields): for a burst, in the store.
_PER_EXPECTATION = f"""
    SELECT incident_id, any(project) AS project, any(stripe_event_id) AS event, any(effect) AS effect_,
           max(r_deadline) AS has_deadline, max(NOT r_deadline) AS has_arrival, max(r_unusual) AS unusual,
           max(r_decided) AS decided, max(r_succeeded) AS succeeded,
           max(r_waits AND NOT r_decided) AND NOT succeeded AS enters,
           minIf(r_due, r_waits AND NOT r_decided) AS waits_until
    FROM ({_ROWS})
    GROUP BY incident_id
"""


def _with_live(columns: str, source: str, where: str = "1") -> str:
    """``columns`` of the rows of ``source`` (as ``s``) with whether each expectation is open
    (``is_open``) and has an active incident (``is_active``), looked up in the key-value tables
    by key as the rows stream (``join_algorithm = 'direct'``: a lookup per row, no scan)."""
    return f"""
    SELECT {columns}, open.incident_id != '' AS is_open, active.incident_id != '' AS is_active
    FROM ({source}) AS s
    LEFT JOIN {ACTIVE_INCIDENTS_TABLE} AS active ON active.incident_id = s.incident_id
    LEFT JOIN {OPEN_EXPECTATIONS_TABLE} AS open ON open.incident_id = s.incident_id
    WHERE {where}
    SETTINGS join_algorithm = 'direct'
"""


#: A burst's expectations that may need something of the engine (a superset: :func:`_decide`
#: has the rules), with whether each is open and has an active incident.
_BURST = _with_live(
    "s.incident_id AS id, s.project AS project, s.event AS event, s.effect_ AS effect_, "
    "s.has_deadline AS has_deadline, s.has_arrival AS has_arrival, s.unusual AS unusual, "
    "s.decided AS decided, s.succeeded AS succeeded",
    _PER_EXPECTATION,
    "is_open OR is_active OR s.unusual OR s.decided",
)
#: The window's rows a tick brings to Python, to decide them there (a statement of chDB costs
#: what it takes to plan: folding the rows here saves the aggregation's planning, ~10 ms of
#: the ~21 that the burst's statement takes on a 5 s window). A window with more rows is a
#: burst, decided in the store (:data:`_BURST`) with its waiting expectations entering the open
#: set there (:data:`_ENTER_WAITING`): 100,000 waiting rows returned to Python took serve's peak
#: under six 20 MiB batches from 750 to 860-900 MiB.
_RETURNED_ROWS = 5_000
_ENTER_WAITING = f"""
    INSERT INTO {OPEN_EXPECTATIONS_TABLE} (incident_id, due_at)
    SELECT incident_id, waits_until FROM ({_PER_EXPECTATION}) WHERE enters
"""
#: The window's arrivals and its deadlines as stored, at most ``limit`` of each. A statement of
#: chDB costs what it takes to plan: each derived column and each lookup in a key-value table
#: adds to it. Without them, a 5 s window's arrivals take ~8 ms instead of ~16 (~13 with the
#: lookups, the flags computed in Python; docs/BENCHMARKS.md). Two statements, run side
#: by side on two clients when the engine has a second one.
_ARRIVALS = f"""
    SELECT {INCIDENT_ID_SQL} AS incident_id, project, stripe_event_id, effect, signal, outcome, due_at
    {_ARRIVALS_IN_WINDOW}
    LIMIT {{limit:UInt64}}
"""
_DEADLINES = f"""
    SELECT {INCIDENT_ID_SQL} AS incident_id, project, stripe_event_id, effect, due_at
    {_DEADLINES_IN_WINDOW}
    LIMIT {{limit:UInt64}}
"""


@dataclass(frozen=True)
class Live:
    """What is live, by incident id: expectations waiting for a result (``fw_open_expectations``)
    and incidents still active (``fw_active_incidents``)."""

    open: Set[str]
    active: Set[str]

    @classmethod
    def read(cls, client: Client) -> Live:
        """Both, read from the store (for one evaluation; the engine keeps copies in memory)."""
        return cls(incident_ids_in(client, OPEN_EXPECTATIONS_TABLE), incident_ids_in(client, ACTIVE_INCIDENTS_TABLE))


@dataclass(frozen=True)
class Beside:
    """A second client of the same store and the thread that runs its statements: chDB plans
    and runs the statements of two clients at once, so a tick reads two things side by side."""

    client: Client
    executor: Executor


def side_by_side(
    client: Client, beside: Beside | None, here: Callable[[Client], _Here], there: Callable[[Client], _There]
) -> tuple[_Here, _There]:
    """``here(client)`` and ``there(beside.client)`` at once; without ``beside``, both on
    ``client``, one after the other."""
    if beside is None:
        return here(client), there(client)
    pending = beside.executor.submit(there, beside.client)
    try:
        result = here(client)
    except BaseException:
        wait([pending])  # nothing of a failed tick keeps running behind it
        raise
    return result, pending.result()


@dataclass(slots=True)  # a burst can bring back 100,000 of them
class _Seen:
    """What a window shows of one expectation (the columns of :data:`_PER_EXPECTATION`)."""

    incident_id: str
    key: _Key
    has_deadline: bool = False
    has_arrival: bool = False
    unusual: bool = False
    decided: bool = False
    succeeded: bool = False
    waits: bool = False  # a waiting row whose deadline the window has not reached
    waits_until: datetime | None = None

    @property
    def enters(self) -> bool:
        """Waits for a result past this window (and none came in it): it opens."""
        return self.waits and not self.succeeded

    def add_arrival(self, signal: str, outcome: str, due: datetime, window: Window) -> None:
        """Fold in an arrival (a row of :data:`_ARRIVALS`): what it means, as
        :data:`_ARRIVAL_ROWS` says it in the store."""
        waits = signal == "receipt" or outcome == "skipped"
        falls_due = due if signal == "receipt" else due + window.default_timeout
        self.add(
            deadline=False,
            unusual=signal == "" or outcome in ("failure", "skipped"),
            waits=waits,
            due=due,
            decided=waits and falls_due <= window.due_until,
            success=outcome == "success",
        )

    def add(self, deadline: bool, unusual: bool, waits: bool, due: datetime, decided: bool, success: bool) -> None:
        """Fold one row of :data:`_ROWS` in (as :data:`_PER_EXPECTATION` does in the store)."""
        self.has_deadline |= deadline
        self.has_arrival |= not deadline
        self.unusual |= unusual
        self.decided |= decided
        self.succeeded |= success
        if waits and not decided:
            self.waits = True
            self.waits_until = due if self.waits_until is None else min(self.waits_until, due)


def _parameters(window: Window) -> dict[str, object]:
    return {
        "since": window.since,
        "until": window.until,
        "due_since": window.due_since,
        "due_until": window.due_until,
        "timeout_s": int(window.default_timeout.total_seconds()),
    }


def _decide(decisions: Decisions, seen: _Seen, is_open: bool, is_active: bool) -> None:
    """The rules: evaluate what is unusual, reached its deadline in an arrival, or is about an
    open expectation whose deadline came or an active incident; settle open expectations that
    succeeded or whose deadline was evaluated (unless the evaluation finds them still pending:
    :meth:`Decisions.still_open`); remember what waits past the window."""
    if (seen.has_deadline and is_open) or seen.unusual or seen.decided or (seen.has_arrival and is_active):
        decisions.to_evaluate[seen.key] = seen.incident_id
    if is_open and (seen.has_deadline or seen.succeeded or seen.decided):
        decisions.settled.append(seen.incident_id)
    if seen.enters and decisions.waiting is not None and seen.waits_until is not None:
        decisions.waiting.append((seen.incident_id, seen.waits_until))


def decide(client: Client, window: Window, live: Live, beside: Beside | None = None) -> Decisions:
    """Which of the window's expectations need evaluating, which open ones it settled, and —
    unless the window is a burst — which it saw waiting. ``beside``: where the deadlines are
    read while the arrivals are read on ``client``."""
    parameters = _parameters(window)
    limited = {**parameters, "limit": _RETURNED_ROWS + 1}

    def rows(statement: str) -> Callable[[Client], Sequence[Sequence[Any]]]:
        return lambda on: on.query(statement, parameters=limited).result_rows

    arrivals, deadlines = side_by_side(client, beside, rows(_ARRIVALS), rows(_DEADLINES))
    if len(arrivals) + len(deadlines) > _RETURNED_ROWS:
        return _decide_burst(client, parameters)
    seen: dict[str, _Seen] = {}

    def of(incident_id: str, project: str, event: str, effect: str) -> _Seen:
        item = seen.get(incident_id)
        if item is None:
            item = seen[incident_id] = _Seen(incident_id, (project, event, effect))
        return item

    for incident_id, project, event, effect, signal, outcome, due in arrivals:
        of(incident_id, project, event, effect).add_arrival(signal, outcome, due, window)
    for incident_id, project, event, effect, due in deadlines:
        of(incident_id, project, event, effect).add(True, False, False, due, False, False)
    decisions = Decisions({}, [], [])
    for incident_id, item in seen.items():
        _decide(decisions, item, incident_id in live.open, incident_id in live.active)
    decisions.settled.sort()
    return decisions


def _decide_burst(client: Client, parameters: dict[str, object]) -> Decisions:
    """A burst, decided from what the store returns of it; its waiting expectations stay there."""
    decisions = Decisions({}, [], None)
    rows = client.query(_BURST, parameters=parameters).result_rows
    for incident_id, project, event, effect, deadline, arrival, unusual, decided, succeeded, is_open, is_active in rows:
        item = _Seen(incident_id, (project, event, effect), deadline, arrival, unusual, decided, succeeded)
        _decide(decisions, item, bool(is_open), bool(is_active))
    decisions.settled.sort()
    return decisions


def enter_waiting_of_burst(client: Client, window: Window) -> None:
    """Open the expectations a burst saw waiting (:data:`_ENTER_WAITING`), in the store."""
    client.command(_ENTER_WAITING, parameters=_parameters(window))

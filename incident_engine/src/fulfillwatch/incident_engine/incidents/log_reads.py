"""Every read of the incident log: lists, details, heads, dispatch state, alert progress, the feed.

The log (``fw_incident_log``, see :mod:`..schema`) is the only record of incidents, so
everything about an incident's present is derived from it here: current state is the latest
non-empty ``state`` by ``seq`` (``argMaxIf(..., seq)`` over ``FINAL`` rows), never stored
apart, so it cannot disagree with the audit trail. Queries are assembled from fixed condition
strings that carry server-side parameters (``{name:Type}``); no value is ever spliced into SQL.

Whoever follows the log as it grows (the alert sender, the upkeep of active incidents) reads
its rows in ``seq`` order from the log's projection ``by_seq``: a range read by the
projection's primary key instead of a scan of the log.

Listings that ask only for active states (open, acknowledged, reprocessing — the on-call view,
bulk reprocess, the overview's counts) read ``fw_active_incidents`` instead of aggregating the
log: the same summary columns, kept in step with the log by :mod:`.active_incidents`, so their
cost follows how many incidents are live, not how many ever were.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from fulfillwatch.collector_processor.identity import ExpectationIdentity, display_effect_sql
from fulfillwatch.incident_engine.incidents.records import IncidentSummary, LogEntry, LoggedTransition
from fulfillwatch.incident_engine.model.transitions import (
    ACTIVE_STATES,
    IncidentHead,
    State,
    Transition,
    TransitionType,
)
from fulfillwatch.incident_engine.schema import (
    ACTIVE_INCIDENTS_TABLE,
    CURRENT_KIND_SQL,
    CURRENT_STATE_SQL,
    INCIDENT_LOG_TABLE,
    LOG_BY_SEQ_COLUMNS,
)

Params = dict[str, Any]


def _all(conditions: Sequence[str]) -> str:
    return " AND ".join(f"({condition})" for condition in conditions) if conditions else "1"


def summary_select(where: Sequence[str] = (), having: Sequence[str] = ()) -> str:
    """The per-incident summary query: ``where`` filters stored columns, ``having`` the derived
    ones (``current_state``, ``current_kind``, ``opened_at``, ``updated_at``)."""
    # Aliases differ from column names on purpose: ClickHouse resolves aliases before columns,
    # and WHERE must see the stored columns while HAVING sees the derived current state.
    return f"""
        SELECT
            incident_id AS id,
            {CURRENT_STATE_SQL} AS current_state,
            {CURRENT_KIND_SQL} AS current_kind,
            any(project) AS project_name,
            any(stripe_event_id) AS event_id,
            any(event_type) AS type,
            any(effect) AS stored_effect,
            any(service) AS service_name,
            min(at) AS opened_at,
            maxIf(at, transition != 'alert_attempt') AS updated_at,
            argMaxIf(reason, seq, transition NOT IN ('note', 'callback_attempt', 'alert_attempt')) AS last_reason,
            argMaxIf(replay_id, seq, transition = 'reprocess_requested') AS last_replay_id
        FROM {INCIDENT_LOG_TABLE} FINAL
        WHERE {_all(where)}
        GROUP BY incident_id
        HAVING {_all(having)}
    """


def active_summary_select(where: Sequence[str] = (), having: Sequence[str] = ()) -> str:
    """:func:`summary_select`'s columns from ``fw_active_incidents`` (active incidents only)."""
    return f"""
        SELECT * FROM (
            SELECT
                incident_id AS id,
                state AS current_state,
                kind AS current_kind,
                project AS project_name,
                stripe_event_id AS event_id,
                event_type AS type,
                effect AS stored_effect,
                service AS service_name,
                opened_at,
                updated_at,
                reason AS last_reason,
                replay_id AS last_replay_id
            FROM {ACTIVE_INCIDENTS_TABLE}
            WHERE {_all(where)}
        )
        WHERE {_all(having)}
    """


_ACTIVE_STATE_VALUES = frozenset(state.value for state in ACTIVE_STATES)


@dataclass(frozen=True)
class IncidentFilter:
    """Filters of ``GET /api/incidents`` and of bulk reprocess (all optional)."""

    states: tuple[str, ...] = ()  # any of these current states
    kind: str | None = None
    project: str | None = None
    event_type: str | None = None
    effect: str | None = None  # display form
    service: str | None = None
    stripe_event_id: str | None = None
    incident_ids: tuple[str, ...] = ()
    opened_since: datetime | None = None
    opened_until: datetime | None = None

    def conditions(self) -> tuple[list[str], list[str], Params]:
        """Conditions on stored columns, on derived state, and their parameters."""
        where: list[str] = []
        having: list[str] = []
        params: Params = {}
        checks: tuple[tuple[list[str], str, str, object], ...] = (
            (where, "project", "project = {project:String}", self.project),
            (where, "event_type", "event_type = {event_type:String}", self.event_type),
            (where, "effect", f"{display_effect_sql()} = {{effect:String}}", self.effect),
            (where, "service", "service = {service:String}", self.service),
            (where, "stripe_event_id", "stripe_event_id = {stripe_event_id:String}", self.stripe_event_id),
            (where, "incident_ids", "incident_id IN {incident_ids:Array(String)}", list(self.incident_ids)),
            (having, "states", "current_state IN {states:Array(String)}", list(self.states)),
            (having, "kind", "current_kind = {kind:String}", self.kind),
            (having, "opened_since", "opened_at >= {opened_since:DateTime64(6, 'UTC')}", self.opened_since),
            (having, "opened_until", "opened_at < {opened_until:DateTime64(6, 'UTC')}", self.opened_until),
        )
        for conditions, name, condition, value in checks:
            if value:
                conditions.append(condition)
                params[name] = value
        return where, having, params

    def summaries(self) -> tuple[str, Params]:
        """The query of the matching incidents' summaries, and its parameters: from the active
        incidents when only active states are asked for, else from the whole log."""
        where, having, params = self.conditions()
        only_active = bool(self.states) and set(self.states) <= _ACTIVE_STATE_VALUES
        select = active_summary_select if only_active else summary_select
        return select(where, having), params


@dataclass
class IncidentPage:
    """One page of incident summaries and how many match in all."""

    items: list[IncidentSummary] = field(default_factory=list)
    total: int = 0


def _summary(row: dict[str, Any]) -> IncidentSummary:
    return IncidentSummary(
        id=row["id"],
        identity=ExpectationIdentity(
            row["project_name"], row["event_id"], row["stored_effect"], row["type"], row["service_name"]
        ),
        state=State(row["current_state"]),
        kind=row["current_kind"],
        opened_at=row["opened_at"],
        updated_at=row["updated_at"],
        reason=row["last_reason"],
        replay_id=row["last_replay_id"],
    )


def list_incidents(client: Client, filters: IncidentFilter, limit: int, offset: int) -> IncidentPage:
    """Incidents matching ``filters``, most recently updated first."""
    summaries, params = filters.summaries()
    sql = f"""
        SELECT *, count() OVER () AS total FROM ({summaries})
        ORDER BY updated_at DESC, id
        LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}
    """
    rows = list(client.query(sql, parameters={**params, "limit": limit, "offset": offset}).named_results())
    page = IncidentPage(items=[_summary(row) for row in rows], total=int(rows[0]["total"]) if rows else 0)
    if not rows and offset > 0:  # past the end: still report the total
        page.total = count_incidents(client, filters)
    return page


def count_incidents(client: Client, filters: IncidentFilter) -> int:
    """How many incidents match ``filters``."""
    summaries, params = filters.summaries()
    return int(client.query(f"SELECT count() FROM ({summaries})", parameters=params).result_rows[0][0])


def get_incident(client: Client, incident_id: str) -> IncidentSummary | None:
    """One incident summary, or ``None``."""
    page = list_incidents(client, IncidentFilter(incident_ids=(incident_id,)), 1, 0)
    return page.items[0] if page.items else None


#: Groupings :func:`count_by` offers, as SQL over the summary's columns.
GROUPINGS = {
    "kind": "current_kind",
    "event_type": "type",
    "effect": display_effect_sql("stored_effect", "type"),
}


def count_by(client: Client, filters: IncidentFilter, grouping: str) -> dict[str, int]:
    """How many incidents match ``filters`` per kind, event type or effect (most first)."""
    return counts_by(client, filters, (grouping,))[grouping]


def counts_by(client: Client, filters: IncidentFilter, groupings: Sequence[str]) -> dict[str, dict[str, int]]:
    """:func:`count_by` for several groupings, in one pass over the incidents."""
    # One scan, each incident counted once per grouping (three queries read the live set
    # three times: 18 s instead of 6 with 1.5 M active incidents).
    pairs = ", ".join(f"('{grouping}', toString({GROUPINGS[grouping]}))" for grouping in groupings)
    summaries, params = filters.summaries()
    rows = client.query(
        f"""SELECT tupleElement(pair, 1), tupleElement(pair, 2), count() FROM ({summaries})
            ARRAY JOIN [{pairs}] AS pair GROUP BY pair ORDER BY count() DESC""",
        parameters=params,
    ).result_rows
    counts: dict[str, dict[str, int]] = {grouping: {} for grouping in groupings}
    for grouping, key, count in rows:
        counts[str(grouping)][str(key)] = int(count)
    return counts


def seq_at(moment: datetime) -> int:
    """The ``seq`` of a row appended at ``moment``, to the second: a ``seq`` is the time of its
    append in nanoseconds since the epoch (:mod:`.incident_log`)."""
    return max(0, int(moment.timestamp())) * 1_000_000_000


#: The incidents with a ``resolved`` row since ``since`` written since ``written_since`` (a
#: ``seq``), from the log's projection in ``seq`` order.
RESOLVED_SINCE = f"""SELECT incident_id FROM {INCIDENT_LOG_TABLE}
    WHERE seq >= {{written_since:UInt64}} AND transition = 'resolved' AND at >= {{since:DateTime64(6, 'UTC')}}"""


def time_to_resolve(client: Client, since: datetime) -> tuple[int, float | None]:
    """Incidents resolved since ``since`` and their mean time from opening to resolution (s).

    Which incidents: those with a ``resolved`` row since then, found by when the rows were
    written (``seq``, in the log's projection in ``seq`` order) — so the cost follows the
    window's resolutions, not the log's size — and only their rows are read from the log."""
    # A row is written at or after its transition's time: a day's margin covers clock skew.
    count, mean_ms = client.query(
        f"""
        SELECT count(), avg(dateDiff('millisecond', opened, resolved))
        FROM (
            SELECT incident_id, min(at) AS opened, maxIf(at, transition = 'resolved') AS resolved
            FROM {INCIDENT_LOG_TABLE} FINAL
            WHERE incident_id IN ({RESOLVED_SINCE})
            GROUP BY incident_id
            HAVING countIf(transition = 'resolved') > 0 AND resolved >= {{since:DateTime64(6, 'UTC')}}
        )""",
        parameters={"since": since, "written_since": seq_at(since - timedelta(days=1))},
    ).result_rows[0]
    return int(count), (round(float(mean_ms) / 1000, 3) if count else None)


def entries(client: Client, incident_id: str) -> list[LogEntry]:
    """The incident's log rows in order."""
    result = client.query(
        f"""SELECT transition, state, kind, actor, reason, at, seq, replay_id, details
            FROM {INCIDENT_LOG_TABLE} FINAL WHERE incident_id = {{id:String}} ORDER BY seq""",
        parameters={"id": incident_id},
    )
    return [
        LogEntry(
            transition=TransitionType(row["transition"]),
            state=State(row["state"]) if row["state"] else None,
            kind=row["kind"],
            actor=row["actor"],
            reason=row["reason"],
            at=row["at"],
            seq=int(row["seq"]),
            replay_id=row["replay_id"],
            details=json.loads(row["details"]) if row["details"] else {},
        )
        for row in result.named_results()
    ]


# --- incident heads, for the engine -------------------------------------------------------

#: Transitions after which an incident is in a new state (``state_since``).
_STATE_CHANGES_SQL = ", ".join(
    f"'{t.value}'"
    for t in (
        TransitionType.OPENED,
        TransitionType.REOPENED,
        TransitionType.RESOLVED,
        TransitionType.IGNORED,
        TransitionType.ACKNOWLEDGED,
        TransitionType.REPROCESS_REQUESTED,
        TransitionType.REPROCESS_FAILED,
    )
)


def heads_select(condition: str) -> str:
    """The head (:class:`IncidentHead`) of every incident whose log rows match ``condition``."""
    return f"""
        SELECT
            incident_id,
            {CURRENT_STATE_SQL} AS state,
            {CURRENT_KIND_SQL} AS kind,
            maxIf(at, transition IN ({_STATE_CHANGES_SQL})) AS state_since,
            min(at) AS opened_at,
            -- log.state: the stored column, not the alias `state` above
            groupUniqArrayIf(cause, log.state != '') AS causes,
            groupUniqArrayIf(cause, log.state = '') AS audited,
            argMaxIf(replay_id, seq, transition = 'reprocess_requested') AS reprocess_replay_id
        FROM {INCIDENT_LOG_TABLE} AS log FINAL
        WHERE {condition}
        GROUP BY incident_id
    """


def head_from_row(row: dict[str, Any], prefix: str = "") -> IncidentHead:
    """An :class:`IncidentHead` from a row of :func:`heads_select` (columns maybe prefixed)."""
    return IncidentHead(
        incident_id=row["incident_id"],
        state=State(row[f"{prefix}state"]),
        kind=row[f"{prefix}kind"],
        state_since=row[f"{prefix}state_since"],
        opened_at=row[f"{prefix}opened_at"],
        causes=frozenset(row[f"{prefix}causes"]),
        audited=frozenset(row[f"{prefix}audited"]),
        replay_id=row[f"{prefix}replay_id" if prefix else "reprocess_replay_id"],
    )


# --- reprocess dispatch state ---------------------------------------------------------------


def reprocess_state(client: Client, incident_id: str) -> tuple[str, str]:
    """The incident's current state and the replay id of its latest reprocess request."""
    row = client.query(
        f"""SELECT {CURRENT_STATE_SQL}, argMaxIf(replay_id, seq, transition = 'reprocess_requested')
            FROM {INCIDENT_LOG_TABLE} FINAL WHERE incident_id = {{id:String}}""",
        parameters={"id": incident_id},
    ).result_rows[0]
    return str(row[0]), str(row[1])


def reprocessing(client: Client) -> list[tuple[str, str]]:
    """``(incident id, replay id)`` of every incident whose reprocess is in flight."""
    page = list_incidents(client, IncidentFilter(states=(State.REPROCESSING.value,)), 1_000_000, 0)
    return [(incident.id, incident.replay_id) for incident in page.items]


#: A transition's columns as the log's projection in ``seq`` order holds them (all but ``details``).
_TRANSITION_COLUMNS = LOG_BY_SEQ_COLUMNS


def _logged(row: dict[str, Any], details: dict[str, Any] | None = None) -> LoggedTransition:
    return LoggedTransition(
        seq=int(row["seq"]),
        transition=Transition(
            incident_id=row["incident_id"],
            identity=ExpectationIdentity(
                row["project"], row["stripe_event_id"], row["effect"], row["event_type"], row["service"]
            ),
            transition=TransitionType(row["transition"]),
            state=State(row["state"]) if row["state"] else None,
            kind=row["kind"],
            actor=row["actor"],
            reason=row["reason"],
            cause=row["cause"],
            at=row["at"],
            replay_id=row["replay_id"],
            details=details or {},
        ),
    )


def rows_of_replay(client: Client, incident_id: str, replay_id: str) -> list[LoggedTransition]:
    """The log rows of one reprocess (its request and callback attempts, with details), in order."""
    result = client.query(
        f"""SELECT {_TRANSITION_COLUMNS}, details FROM {INCIDENT_LOG_TABLE} FINAL
            WHERE incident_id = {{id:String}} AND replay_id = {{replay:String}} ORDER BY seq""",
        parameters={"id": incident_id, "replay": replay_id},
    )
    return [_logged(row, json.loads(row["details"]) if row["details"] else {}) for row in result.named_results()]


# --- following the log: its rows in seq order, and alert progress ----------------------------
#
# These reads name only columns of the log's projection ``by_seq`` and no ``FINAL``, so that
# ClickHouse reads them from the projection by a range of ``seq`` (a test checks the plan).


FEED_AFTER = f"""SELECT {_TRANSITION_COLUMNS} FROM {INCIDENT_LOG_TABLE}
    WHERE seq > {{seq:UInt64}} AND transition IN {{types:Array(String)}}
    ORDER BY seq LIMIT {{limit:UInt32}}"""
CHANGES_AFTER = f"""SELECT seq, incident_id FROM {INCIDENT_LOG_TABLE}
    WHERE seq > {{seq:UInt64}} AND transition != 'alert_attempt' ORDER BY seq"""
#: The last row in seq order, not ``max(seq)``: an aggregate would read every row's seq.
LATEST_SEQ = f"SELECT seq FROM {INCIDENT_LOG_TABLE} ORDER BY seq DESC LIMIT 1"


def feed_after(client: Client, seq: int, types: Sequence[TransitionType], limit: int) -> list[LoggedTransition]:
    """Up to ``limit`` transitions of the given types with ``seq`` above ``seq``, in ``seq``
    order (the same transition may appear twice when it was written twice: callers dedupe by
    ``transition_id``)."""
    result = client.query(
        FEED_AFTER,
        parameters={"seq": seq, "types": [t.value for t in types], "limit": limit},
    )
    return [_logged(row) for row in result.named_results()]


def changes_after(client: Client, seq: int) -> list[tuple[int, str]]:
    """``(seq, incident id)`` of every log row above ``seq`` other than an alert attempt."""
    rows = client.query(CHANGES_AFTER, parameters={"seq": seq}).result_rows
    return [(int(row_seq), str(incident_id)) for row_seq, incident_id in rows]


def latest_seq(client: Client) -> int:
    """The highest ``seq`` in the log (0 when it is empty)."""
    rows = client.query(LATEST_SEQ).result_rows
    return int(rows[0][0]) if rows else 0


@dataclass(frozen=True)
class AlertProgress:
    """What the log says about one notification: its last attempt."""

    attempt: int
    outcome: str  # delivered | retrying | rejected | gave_up
    at: datetime
    next_delay_s: float | None  # when retrying: the wait it asked for before the next attempt


def alert_progress(client: Client, incident_ids: Sequence[str]) -> dict[str, AlertProgress]:
    """The last recorded attempt of every notification about these incidents, by alert id
    (attempt rows carry ``<alert id>#<attempt>`` as their cause)."""
    if not incident_ids:
        return {}
    result = client.query(
        f"""SELECT cause, JSONExtractString(details, 'outcome'), at,
                   JSONExtract(details, 'next_delay_s', 'Nullable(Float64)')
            FROM {INCIDENT_LOG_TABLE} FINAL
            WHERE incident_id IN {{ids:Array(String)}} AND transition = 'alert_attempt'""",
        parameters={"ids": list(set(incident_ids))},
    )
    progress: dict[str, AlertProgress] = {}
    for cause, outcome, at, next_delay_s in result.result_rows:
        alert, _, number = str(cause).rpartition("#")
        if not number.isdigit():
            continue
        known = progress.get(alert)
        if known is None or int(number) > known.attempt:
            progress[alert] = AlertProgress(int(number), str(outcome), at, next_delay_s)
    return progress

"""Figures for the dashboard's overview: open incidents, success rate, latency, time to resolve.

All of it over a window of receipt time (default 24 h), from the same tables the engine uses:
the window's receipts come from ``fw_signals`` (partition-pruned by time), their summaries from
``fw_expectations``, incidents from the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from clickhouse_connect.driver.client import Client

from fulfillwatch.collector_processor.signals import SIGNALS_TABLE
from fulfillwatch.incident_engine.detection.engine_state import load_heartbeat, load_watermarks
from fulfillwatch.incident_engine.incidents import log_reads
from fulfillwatch.incident_engine.incidents.log_reads import IncidentFilter
from fulfillwatch.incident_engine.model.transitions import ACTIVE_STATES
from fulfillwatch.incident_engine.schema import EPOCH_SQL, EXPECTATIONS_TABLE

_WINDOW_EXPECTATIONS = f"""
    SELECT project, stripe_event_id, effect, max(event_type) AS type, min(receipt_at) AS received,
           min(due_at) AS due, max(last_result) AS result
    FROM {EXPECTATIONS_TABLE}
    WHERE (stripe_event_id, effect, project) IN (
        SELECT stripe_event_id, effect, project FROM {SIGNALS_TABLE}
        WHERE signal = 'receipt' AND at >= {{since:DateTime64(6, 'UTC')}}
    )
    GROUP BY project, stripe_event_id, effect
"""

_OUTCOMES = f"""
    SELECT
        countIf(tupleElement(result, 1) > {EPOCH_SQL} AND tupleElement(result, 3) = 'success') AS fulfilled,
        countIf(tupleElement(result, 1) > {EPOCH_SQL} AND tupleElement(result, 3) = 'failure') AS failed,
        countIf(tupleElement(result, 1) = {EPOCH_SQL} AND due <= {{now:DateTime64(6, 'UTC')}}) AS overdue,
        countIf(tupleElement(result, 1) = {EPOCH_SQL} AND due > {{now:DateTime64(6, 'UTC')}}) AS pending
    FROM ({_WINDOW_EXPECTATIONS})
"""

_LATENCY = f"""
    SELECT toStartOfHour(received) AS hour, type,
           count() AS fulfilled,
           quantiles(0.5, 0.95, 0.99)(
               toFloat64(dateDiff('millisecond', received, tupleElement(result, 1))) / 1000) AS seconds
    FROM ({_WINDOW_EXPECTATIONS})
    WHERE tupleElement(result, 3) = 'success' AND tupleElement(result, 1) >= received
    GROUP BY hour, type
    ORDER BY hour, type
"""


@dataclass(frozen=True)
class Outcomes:
    """What became of the window's expectations."""

    fulfilled: int
    failed: int
    overdue: int
    pending: int


@dataclass(frozen=True)
class LatencyRow:
    """Receipt → success latency percentiles of one event type in one hour."""

    hour: datetime
    event_type: str
    fulfilled: int
    p50_s: float
    p95_s: float
    p99_s: float


@dataclass(frozen=True)
class EngineStatus:
    """The engine's heartbeat and how far behind its evaluation is."""

    heartbeat_at: datetime | None = None
    heartbeat_age_s: float | None = None
    stale: bool = True
    evaluation_lag_s: float | None = None
    last_tick_ms: float | None = None


@dataclass(frozen=True)
class Overview:
    """Everything the overview page shows."""

    window_hours: float
    generated_at: datetime
    open_by_kind: dict[str, int]
    open_by_event_type: dict[str, int]
    open_by_effect: dict[str, int]
    expectations: Outcomes
    success_rate: float | None
    latency: list[LatencyRow]
    resolved: int
    mean_time_to_resolve_s: float | None
    engine: EngineStatus = field(default_factory=EngineStatus)


def _open_by(client: Client, grouping: str) -> dict[str, int]:
    return log_reads.count_by(client, IncidentFilter(states=tuple(state.value for state in ACTIVE_STATES)), grouping)


def overview(client: Client, window: timedelta, stale_after: timedelta) -> Overview:
    """Everything the overview page shows, computed now."""
    now = datetime.now(timezone.utc)
    since = now - window
    params = {"since": since, "now": now}
    fulfilled, failed, overdue, pending = client.query(_OUTCOMES, parameters=params).result_rows[0]
    decided = fulfilled + failed + overdue
    resolved, mean_time_to_resolve_s = log_reads.time_to_resolve(client, since)
    heartbeat = load_heartbeat(client)
    engine = EngineStatus()
    if heartbeat is not None:
        age = (now - heartbeat.at).total_seconds()
        engine = EngineStatus(
            heartbeat_at=heartbeat.at,
            heartbeat_age_s=round(age, 3),
            stale=age > stale_after.total_seconds(),
            evaluation_lag_s=round(max(0.0, (now - load_watermarks(client).ingested).total_seconds()), 3),
            last_tick_ms=heartbeat.tick_ms,
        )
    return Overview(
        window_hours=round(window.total_seconds() / 3600, 3),
        generated_at=now,
        open_by_kind=_open_by(client, "kind"),
        open_by_event_type=_open_by(client, "event_type"),
        open_by_effect=_open_by(client, "effect"),
        expectations=Outcomes(int(fulfilled), int(failed), int(overdue), int(pending)),
        success_rate=round(fulfilled / decided, 5) if decided else None,
        latency=[
            LatencyRow(hour, event_type, int(count), seconds[0], seconds[1], seconds[2])
            for hour, event_type, count, seconds in client.query(_LATENCY, parameters=params).result_rows
        ],
        resolved=resolved,
        mean_time_to_resolve_s=mean_time_to_resolve_s,
        engine=engine,
    )

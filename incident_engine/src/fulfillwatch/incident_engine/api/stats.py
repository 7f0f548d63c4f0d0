"""``GET /api/stats``: the overview's figures (``read`` scope)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from fulfillwatch.incident_engine.api.auth import ReadDep
from fulfillwatch.incident_engine.api.context import ClientDep, ContextDep
from fulfillwatch.incident_engine.incidents import stats

router = APIRouter(prefix="/api", tags=["stats"])


class OutcomesModel(BaseModel):
    """What became of the window's expectations."""

    fulfilled: int
    failed: int
    overdue: int
    pending: int


class LatencyModel(BaseModel):
    """Receipt → success latency percentiles of one event type in one hour."""

    hour: datetime
    event_type: str
    fulfilled: int
    p50_s: float
    p95_s: float
    p99_s: float


class EngineStatusModel(BaseModel):
    """The engine's heartbeat and evaluation lag."""

    heartbeat_at: datetime | None = None
    heartbeat_age_s: float | None = None
    stale: bool = True
    evaluation_lag_s: float | None = None
    last_tick_ms: float | None = None


class StatsModel(BaseModel):
    """The overview: open incidents, success rate, latency, time to resolve, engine."""

    window_hours: float
    generated_at: datetime
    open_by_kind: dict[str, int]
    open_by_event_type: dict[str, int]
    open_by_effect: dict[str, int]
    expectations: OutcomesModel
    success_rate: float | None
    latency: list[LatencyModel]
    resolved: int
    mean_time_to_resolve_s: float | None
    engine: EngineStatusModel


@router.get("/stats", response_model=StatsModel, summary="Open incidents, success rate, latency, time to resolve")
def get_stats(
    _: ReadDep,
    client: ClientDep,
    context: ContextDep,
    window_hours: Annotated[float, Query(gt=0, le=24 * 31, description="Receipts of the last N hours")] = 24,
) -> StatsModel:
    """Open incidents by kind, event type and effect; the window's fulfillment success rate and
    receipt→success latency (p50/p95/p99 per event type and hour); mean time to resolve; the
    engine's heartbeat and evaluation lag."""
    overview = stats.overview(
        client, timedelta(hours=window_hours), timedelta(seconds=context.settings.engine_heartbeat_stale_s)
    )
    return StatsModel.model_validate(asdict(overview))

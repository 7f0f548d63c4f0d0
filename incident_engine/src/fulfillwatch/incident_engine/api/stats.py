"""``GET /api/stats``: the overview's figures."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from fulfillwatch.incident_engine.incidents import stats

from .auth import PrincipalDep
from .context import ClientDep, ContextDep

router = APIRouter(prefix="/api", tags=["stats"])


@router.get("/stats", summary="Open incidents, success rate, latency, time to resolve, engine health")
def get_stats(
    _: PrincipalDep,
    client: ClientDep,
    context: ContextDep,
    window_hours: Annotated[float, Query(gt=0, le=24 * 31, description="Receipts of the last N hours")] = 24,
) -> dict[str, Any]:
    """Open incidents by kind, event type and effect; the window's fulfillment success rate and
    receipt→success latency (p50/p95/p99 per event type and hour); mean time to resolve; the
    engine's heartbeat and evaluation lag."""
    return stats.overview(
        client, timedelta(hours=window_hours), timedelta(seconds=context.settings.engine_heartbeat_stale_s)
    )

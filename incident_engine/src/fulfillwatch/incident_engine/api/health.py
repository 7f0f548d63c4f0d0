"""``GET /healthz``: store reachable, engine heartbeat age, ingest counters (no auth)."""

from __future__ import annotations

from datetime import datetime, timezone

from clickhouse_connect.driver.exceptions import ClickHouseError
from fastapi import APIRouter, Response

from fulfillwatch.incident_engine.detection.engine_state import load_heartbeat

from .context import STORE_ERRORS, ContextDep
from .models import HealthModel

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthModel, summary="Liveness and health")
def healthz(context: ContextDep, response: Response) -> HealthModel:
    """200 when the store answers and the engine's heartbeat is fresh, else 503.

    Unauthenticated on purpose (load balancers, orchestrators); it shows no incident data.
    """
    store = {"reachable": False, "location": context.store.location.describe()}
    engine: dict[str, object] = {"heartbeat_at": None, "heartbeat_age_s": None, "stale": True}
    try:
        client = context.store.client("health")
        heartbeat = load_heartbeat(client)
        store["reachable"] = True
    except (*STORE_ERRORS, ClickHouseError) as exc:
        context.store.discard("health")
        store["error"] = str(exc)
        heartbeat = None
    if heartbeat is not None:
        age = (datetime.now(timezone.utc) - heartbeat.at).total_seconds()
        engine = {
            "heartbeat_at": heartbeat.at,
            "heartbeat_age_s": round(age, 3),
            "stale": age > context.settings.engine_heartbeat_stale_s,
            "engine_id": heartbeat.engine_id,
            "last_tick_ms": heartbeat.tick_ms,
            "last_tick_expectations": heartbeat.expectations,
            "last_tick_transitions": heartbeat.transitions,
        }
    healthy = bool(store["reachable"]) and not engine["stale"]
    response.status_code = 200 if healthy else 503
    return HealthModel(
        status="ok" if healthy else "degraded", store=store, engine=engine, ingest=context.counters.snapshot()
    )

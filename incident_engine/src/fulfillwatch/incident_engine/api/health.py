"""Health: ``/livez``, ``/readyz``, ``/healthz`` (no auth, nothing revealing) and ``GET /api/health``.

* ``/livez`` — the process answers;
* ``/readyz`` — it can do its job now (:mod:`~fulfillwatch.incident_engine.readiness`): 503
  with the names of the failing checks otherwise;
* ``/healthz`` — kept for load balancers configured before ``/readyz``: 200 when the store
  answers and the engine's heartbeat is fresh; with ``[stripe]`` it also says whether Stripe's
  Events API is being read (a refused key shows here, but is not a reason for 503: detection of
  everything else goes on);
* ``/api/health`` (``read`` scope) — the same with the store's location and the ingest counters.

Unauthenticated answers carry no paths, hosts or counters.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from clickhouse_connect.driver.exceptions import ClickHouseError
from fastapi import APIRouter, Response

from fulfillwatch.incident_engine.api.auth import ReadDep
from fulfillwatch.incident_engine.api.context import STORE_ERRORS, ApiContext, ContextDep
from fulfillwatch.incident_engine.api.models import EngineHealth, HealthModel, Probe, StoreHealth, StripeHealth
from fulfillwatch.incident_engine.detection.engine_state import load_heartbeat
from fulfillwatch.incident_engine.readiness import Readiness
from fulfillwatch.incident_engine.sources.stripe_events import load_status

router = APIRouter(tags=["health"])


def probe_router(readiness: Readiness) -> APIRouter:
    """``/livez`` and ``/readyz`` (mounted on every listener of the process)."""
    probes = APIRouter(tags=["health"])

    @probes.get("/livez", response_model=Probe, summary="The process is up")
    def livez() -> Probe:
        return Probe(status="alive")

    @probes.get(
        "/readyz",
        response_model=Probe,
        summary="The process can do its job now",
        responses={503: {"model": Probe, "description": "Not ready; `failing` names the checks"}},
    )
    def readyz(response: Response) -> Probe:
        failing = readiness.failing()
        response.status_code = 503 if failing else 200
        return Probe(status="not ready" if failing else "ready", failing=failing)

    return probes


def _health(context: ApiContext, *, detailed: bool) -> tuple[bool, HealthModel]:
    store = StoreHealth(reachable=False, location=context.store.location.describe() if detailed else None)
    engine = EngineHealth()
    stripe: StripeHealth | None = None
    try:
        client = context.store.client("health")
        heartbeat = load_heartbeat(client)
        store.reachable = True
        if context.settings.stripe is not None:
            stripe = _stripe_health(load_status(client))
    except (*STORE_ERRORS, ClickHouseError) as exc:
        context.store.discard("health")
        store.error = str(exc).splitlines()[0][:300] if detailed else "unreachable"
        heartbeat = None
    if heartbeat is not None:
        age = (datetime.now(timezone.utc) - heartbeat.at).total_seconds()
        engine = EngineHealth(
            heartbeat_at=heartbeat.at,
            heartbeat_age_s=round(age, 3),
            stale=age > context.settings.engine_heartbeat_stale_s,
            engine_id=heartbeat.engine_id if detailed else None,
            last_tick_ms=heartbeat.tick_ms if detailed else None,
            last_tick_expectations=heartbeat.expectations if detailed else None,
            last_tick_transitions=heartbeat.transitions if detailed else None,
        )
    healthy = store.reachable and not engine.stale
    return healthy, HealthModel(
        status="ok" if healthy else "degraded",
        store=store,
        engine=engine,
        stripe=stripe,
        ingest=context.counters.snapshot() if detailed else None,
        failing=context.readiness.failing() if detailed else [],
    )


def _stripe_health(status: dict[str, Any] | None) -> StripeHealth:
    if status is None:
        return StripeHealth(ok=False, error="no poll has completed yet")
    return StripeHealth(
        ok=bool(status.get("ok")),
        error=str(status.get("error") or ""),
        last_poll_at=status.get("last_poll_at"),
        warnings=list(status.get("warnings") or []),
    )


@router.get("/healthz", response_model=HealthModel, response_model_exclude_none=True, summary="Health (no auth)")
def healthz(context: ContextDep, response: Response) -> HealthModel:
    """200 when the store answers and the engine's heartbeat is fresh, else 503."""
    healthy, model = _health(context, detailed=False)
    response.status_code = 200 if healthy else 503
    return model


@router.get("/api/health", response_model=HealthModel, summary="Health with the store's location and counters")
def api_health(_: ReadDep, context: ContextDep, response: Response) -> HealthModel:
    """What ``/healthz`` says, plus where the store is, the ingest counters and the failing
    readiness checks."""
    healthy, model = _health(context, detailed=True)
    response.status_code = 200 if healthy else 503
    return model

"""The Fulfillwatch HTTP API (FastAPI; OpenAPI at ``/docs``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from fulfillwatch.incident_engine.version import __version__

from . import actions, health, incidents, stats
from .context import STORE_ERRORS, ApiContext

__all__ = ["ApiContext", "create_api_app"]


def create_api_app(context: ApiContext) -> FastAPI:
    """The API application bound to ``context``."""
    app = FastAPI(
        title="Fulfillwatch API",
        version=__version__,
        description="Incidents of Stripe events whose business effect failed or never happened.",
    )
    app.state.context = context
    app.include_router(health.router)
    app.include_router(incidents.router)
    app.include_router(actions.router)
    app.include_router(stats.router)

    async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
        context.store.discard("api")
        return JSONResponse({"detail": f"store unavailable: {exc}"}, status_code=503, headers={"Retry-After": "5"})

    for error in STORE_ERRORS:
        app.add_exception_handler(error, store_unavailable)
    return app

"""The Fulfillwatch HTTP API (FastAPI; OpenAPI at ``/docs``).

* :mod:`.auth` / :mod:`.tokens` — API tokens, scopes and the actor they record;
* :mod:`.incidents`, :mod:`.actions`, :mod:`.stats`, :mod:`.health` — the routes;
* :mod:`.models` — request and response models (the OpenAPI schema); :mod:`.dates` — checks
  of dates in queries;
* :mod:`.errors` — the one map from errors to HTTP answers;
* :mod:`.context` — what the routes share (settings, store, engine, actions).
"""

from __future__ import annotations

from fastapi import FastAPI

from fulfillwatch.incident_engine.api import actions, health, incidents, stats
from fulfillwatch.incident_engine.api.context import ApiContext
from fulfillwatch.incident_engine.api.errors import install_error_handlers
from fulfillwatch.incident_engine.version import __version__

__all__ = ["ApiContext", "create_api_app"]


def create_api_app(context: ApiContext) -> FastAPI:
    """The API application bound to ``context``."""
    app = FastAPI(
        title="Fulfillwatch API",
        version=__version__,
        description="Incidents of Stripe events whose business effect failed or never happened. "
        "Every /api route needs an API token (`Authorization: Bearer <token>`) with the scope it names.",
    )
    app.state.context = context
    app.include_router(health.router)
    app.include_router(health.probe_router(context.readiness))
    app.include_router(incidents.router)
    app.include_router(actions.router)
    app.include_router(stats.router)
    install_error_handlers(app, context)
    return app

"""The ingest application: the OTLP receiver and the REST ingest API as one FastAPI app."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI

from .counters import IngestCounters
from .receiver import ReceiverSettings, build_receiver_router
from .rest_ingest import IngestProjectKey, build_rest_router
from .store import Store
from .version import __version__
from .writer import SignalWriter


def create_ingest_app(
    writer: SignalWriter,
    store: Store,
    counters: IngestCounters,
    settings: ReceiverSettings,
    rest_keys: Mapping[str, IngestProjectKey] | None = None,
) -> FastAPI:
    """The ingest app; the caller owns the writer's lifecycle (``start``/``stop``).

    ``rest_keys`` maps SHA-256 digests of REST API keys to their project (none: every REST
    call is refused with 401).
    """
    app = FastAPI(
        title="Fulfillwatch ingest",
        version=__version__,
        description="OTLP/HTTP trace receiver keeping Stripe fulfillment spans, and REST ingest.",
    )
    app.include_router(build_receiver_router(writer, counters, settings))
    app.include_router(build_rest_router(writer, store, counters, rest_keys or {}, settings.default_timeout_s))
    return app

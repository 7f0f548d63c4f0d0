"""The ingest application (OTLP receiver today; REST ingest joins it) as one FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI

from .counters import IngestCounters
from .receiver import ReceiverSettings, build_receiver_router
from .version import __version__
from .writer import SignalWriter


def create_ingest_app(writer: SignalWriter, counters: IngestCounters, settings: ReceiverSettings) -> FastAPI:
    """The ingest app; the caller owns the writer's lifecycle (``start``/``stop``)."""
    app = FastAPI(
        title="Fulfillwatch ingest",
        version=__version__,
        description="OTLP/HTTP trace receiver keeping Stripe fulfillment spans.",
    )
    app.include_router(build_receiver_router(writer, counters, settings))
    return app

"""The ingest application: the OTLP receiver and the REST ingest API as one FastAPI app."""

from __future__ import annotations

import concurrent.futures

from fastapi import FastAPI

from .catch_all import CatchAll
from .counters import IngestCounters
from .ingest_auth import IngestAccess
from .ingest_gate import ByteBudget, IngestGate, IngestLimits
from .receiver import ReceiverSettings, build_receiver_router
from .rest_ingest import build_rest_router
from .store import Store
from .version import __version__
from .writer import SignalWriter

#: Threads decoding requests: enough to keep the writer busy, few enough to leave the event
#: loop (and the API it also serves) a core.
DECODE_THREADS = 1


def create_ingest_app(
    writer: SignalWriter,
    store: Store,
    counters: IngestCounters,
    settings: ReceiverSettings,
    access: IngestAccess,
    *,
    limits: IngestLimits | None = None,
    budget: ByteBudget | None = None,
) -> FastAPI:
    """The ingest app; the caller owns the writer's lifecycle (``start``/``stop``).

    ``access`` says which ingest keys exist and which projects own which services; ``budget``
    (shared with readiness checks) bounds the bytes in flight.
    """
    limits = limits or IngestLimits(max_body_bytes=settings.max_body_bytes)
    budget = budget or ByteBudget(limits.inflight_bytes)
    pool = concurrent.futures.ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="fw-decode")
    app = FastAPI(
        title="Fulfillwatch ingest",
        version=__version__,
        description="OTLP/HTTP trace receiver keeping Stripe fulfillment spans, and REST ingest. "
        "Every route needs an ingest key (`Authorization: Bearer <key>`) unless ingest "
        "authentication is off.",
    )
    app.include_router(build_receiver_router(writer, counters, settings, access, pool))
    app.include_router(build_rest_router(writer, store, counters, access, settings.default_timeout_s))
    app.add_middleware(IngestGate, access=access, limits=limits, counters=counters, budget=budget)
    app.add_middleware(CatchAll)  # outermost: nothing escapes as a traceback
    app.state.decode_pool = pool
    return app

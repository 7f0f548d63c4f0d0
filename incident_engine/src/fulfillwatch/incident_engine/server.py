"""``fulfillwatch serve``: receiver, engine and API in one process around one store — and the
split services ``fulfillwatch collector | engine | api``, which run the same code with one
role each.

On the embedded default (chDB) ``serve`` is the only process allowed to open the data directory
(a chDB directory is locked by one process), so everything that needs the data runs here and
everyone else — the dashboard, scripts — goes through the API. Against a ClickHouse server the roles can run apart:

* ``collector`` — the OTLP/REST receiver and the signal writer (stateless: scale it out);
* ``engine`` — detection (and the ``otel_traces`` import) and the alerts (which follow the
  whole log), under the engine lease: exactly one should run, a second one stands by;
* ``api`` — the HTTP API, lifecycle actions, the reprocess dispatcher and bulk jobs.

Listeners share one event loop. SIGTERM/SIGINT stop everything, let queued inserts commit, and
close the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import uvicorn
from fastapi import FastAPI

from fulfillwatch.collector_processor.app import create_ingest_app
from fulfillwatch.collector_processor.counters import IngestCounters
from fulfillwatch.collector_processor.ingest_auth import DEFAULT_PROJECT
from fulfillwatch.collector_processor.ingest_gate import ByteBudget
from fulfillwatch.collector_processor.migrations import apply_migrations, apply_retention
from fulfillwatch.collector_processor.receiver import ReceiverSettings
from fulfillwatch.collector_processor.signals import SIGNAL_MIGRATIONS, SIGNAL_RETENTION
from fulfillwatch.collector_processor.store import Store, parse_dsn
from fulfillwatch.collector_processor.writer import SignalWriter, StoredBatch
from fulfillwatch.incident_engine.api import ApiContext, create_api_app
from fulfillwatch.incident_engine.api.health import probe_router
from fulfillwatch.incident_engine.delivery.alert_sender import AlertSender
from fulfillwatch.incident_engine.delivery.attempts import Sleep
from fulfillwatch.incident_engine.delivery.reprocess import Dispatcher
from fulfillwatch.incident_engine.detection.declared import DeclaredCheck
from fulfillwatch.incident_engine.detection.engine import Engine, EngineSettings
from fulfillwatch.incident_engine.detection.engine_state import machine_now, store_now
from fulfillwatch.incident_engine.detection.lease import EngineLease
from fulfillwatch.incident_engine.detection.silence import SilenceCheck, watches
from fulfillwatch.incident_engine.incidents.bulk import BulkReprocessor
from fulfillwatch.incident_engine.incidents.incident_log import Journal
from fulfillwatch.incident_engine.incidents.lifecycle import IncidentActions
from fulfillwatch.incident_engine.readiness import Readiness
from fulfillwatch.incident_engine.schema import ENGINE_MIGRATIONS, ENGINE_RETENTION
from fulfillwatch.incident_engine.settings import ALL_ROLES, Role, ServerSettings
from fulfillwatch.incident_engine.sources.otel_traces import OtelTracesImporter
from fulfillwatch.incident_engine.sources.stripe_events import Reconciler

_logger = logging.getLogger("fulfillwatch.server")
#: Seconds uvicorn waits for open requests at a stop, and after which the process exits anyway.
GRACEFUL_S = 5
STOP_DEADLINE_S = 9.0
#: Seconds between two checks of plans' declared effects when Stripe is not configured.
DECLARED_CHECK_S = 15.0


class _Listener(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :class:`Service`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def prepare_store(settings: ServerSettings) -> Store:
    """Open the store and bring its schema and retention up to date."""
    store = Store(parse_dsn(settings.clickhouse_dsn, settings.data_dir))
    client = store.client("migrations")
    apply_migrations(client, SIGNAL_MIGRATIONS + ENGINE_MIGRATIONS)
    apply_retention(client, SIGNAL_RETENTION + ENGINE_RETENTION, settings.retention_days)
    return store


@dataclass
class Service:
    """The running parts of ``serve``."""

    settings: ServerSettings
    store: Store
    counters: IngestCounters
    engine: Engine
    dispatcher: Dispatcher
    alerts: AlertSender
    bulk: BulkReprocessor
    writer: SignalWriter
    readiness: Readiness
    ingest_app: FastAPI
    api_app: FastAPI
    #: Declared expectations (Stripe's record, plans): ``None`` when neither is configured.
    declared: DeclaredCheck | None = None
    #: Reads Stripe's Events API: ``None`` without ``[stripe]``.
    reconciler: Reconciler | None = None


def build_service(
    settings: ServerSettings,
    store: Store,
    roles: Collection[Role] = ALL_ROLES,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
    stripe_backfill: timedelta | None = None,
) -> Service:
    """Wire receiver, writer, engine and API around ``store``. Callbacks and alerts go out
    through ``http_transport`` (default: the network) and wait between attempts with ``sleep``:
    tests pass an ``httpx.MockTransport`` and a sleep that does not wait. ``stripe_backfill``
    overrides how far back a first reconciliation reads (``--stripe-backfill``)."""
    counters = IngestCounters()
    journal = Journal(store)
    importers = []
    if settings.otel_traces_table:
        importers.append(
            OtelTracesImporter(
                store,
                settings.otel_traces_table,
                default_timeout_s=settings.default_timeout_s,
                overlap_s=settings.otel_traces_overlap_s,
            )
        )
    engine = Engine(
        store,
        EngineSettings(
            interval_s=settings.engine_interval_s,
            default_timeout_s=settings.default_timeout_s,
            ingest_overlap_s=settings.ingest_overlap_s,
        ),
        journal=journal,
        importers=importers,
        clock=machine_now if store.location.embedded else store_now,
    )
    if not store.location.embedded:
        # On a server another engine may run (a replica, an overlapping deploy); on chDB the
        # directory lock already guarantees this process is the only one.
        engine.lease = EngineLease(store, engine.engine_id, settings.engine_lease_s)
    dispatcher = Dispatcher(
        store,
        journal,
        settings.repair_targets,
        settings.service_projects(),
        sleep=sleep,
        transport=http_transport,
    )
    alerts = AlertSender(store, settings.alerts, journal, sleep=sleep, transport=http_transport)
    actions = IncidentActions(store, journal, dispatcher)
    bulk = BulkReprocessor(store, actions, settings.bulk_reprocess_per_s)
    limits = settings.ingest_limits()
    budget = ByteBudget(limits.inflight_bytes)
    readiness = Readiness(
        store,
        engine_last_tick=(lambda: engine.last_completed) if "engine" in roles else None,
        budget=budget if "collector" in roles else None,
        stale_after_s=settings.engine_heartbeat_stale_s,
    )

    def results_stored(batch: StoredBatch) -> None:
        if batch.urgent:  # failures open at once, reprocess results resolve at once
            engine.wake()

    writer = SignalWriter(store, on_stored=results_stored)
    ingest_app = create_ingest_app(
        writer,
        store,
        counters,
        ReceiverSettings(max_body_bytes=settings.max_body_bytes, default_timeout_s=settings.default_timeout_s),
        settings.ingest_access(),
        limits=limits,
        budget=budget,
    )
    ingest_app.include_router(probe_router(readiness))
    api_app = create_api_app(
        ApiContext(
            settings=settings,
            store=store,
            counters=counters,
            readiness=readiness,
            engine=engine,
            actions=actions,
            bulk=bulk,
        )
    )
    plans = {event_type: plan.effects for event_type, plan in settings.plans.items()}
    watched = watches(settings.silence, settings.service_projects())
    silence = SilenceCheck(journal, watched, stripe_reconciling=settings.stripe is not None) if watched else None
    interval = settings.stripe.check_interval_s if settings.stripe is not None else DECLARED_CHECK_S
    declared = None
    if plans or settings.stripe or silence:
        declared = DeclaredCheck(store, journal, plans, silence=silence, interval_s=interval)
    reconciler = None
    if settings.stripe is not None:
        project = settings.service_projects().get(settings.stripe.service, DEFAULT_PROJECT)
        assert declared is not None  # built above whenever [stripe] is configured
        reconciler = Reconciler(
            store, settings.stripe, project, plans, backfill=stripe_backfill, declare_lock=declared.lock
        )
    # The engine's leader runs them between its ticks: Stripe first, then what fell due.
    engine.chores = [chore for chore in (reconciler, declared) if chore is not None]
    return Service(
        settings,
        store,
        counters,
        engine,
        dispatcher,
        alerts,
        bulk,
        writer,
        readiness,
        ingest_app,
        api_app,
        declared,
        reconciler,
    )


def _listener(app: FastAPI, host: str, port: int, max_connections: int) -> _Listener:
    return _Listener(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_S,
            # Beyond this many connections and tasks, new requests get 503 at once.
            limit_concurrency=max_connections,
            timeout_keep_alive=15,
        )
    )


def _exit_if_stuck(deadline_s: float) -> threading.Timer:
    """SIGTERM must stop the process within ``deadline_s`` whatever the load: a stop that hangs
    (a client holding a connection, a long query) ends the process. Acknowledged spans are
    stored before they are acknowledged, so nothing acknowledged is lost."""

    def force() -> None:
        _logger.warning("still stopping after %.0f s: exiting now", deadline_s)
        logging.shutdown()
        os._exit(0)

    timer = threading.Timer(deadline_s, force)
    timer.daemon = True
    timer.start()
    return timer


async def serve(
    settings: ServerSettings, roles: Collection[Role] = ALL_ROLES, *, stripe_backfill: timedelta | None = None
) -> None:
    """Run ``roles`` until SIGTERM/SIGINT (all of them: ``fulfillwatch serve``)."""
    unknown = set(roles) - ALL_ROLES
    if unknown or not roles:
        raise ValueError(f"roles must be some of {sorted(ALL_ROLES)}, got {sorted(roles)}")
    store = await asyncio.to_thread(prepare_store, settings)
    service = build_service(settings, store, roles, stripe_backfill=stripe_backfill)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    listeners = []
    if "collector" in roles and settings.receive_otlp:
        listeners.append(_listener(service.ingest_app, settings.host, settings.otlp_port, settings.max_connections))
    if "api" in roles:
        listeners.append(_listener(service.api_app, settings.host, settings.api_port, settings.max_connections))
    await service.writer.start()
    # Everything loaded so far (modules, the engine, the apps) lives as long as the process.
    # Moving it out of the collector's generations keeps full collections, which otherwise
    # walk every imported module's objects, short while spans are being decoded.
    gc.collect()
    gc.freeze()
    # Decoding a batch allocates tens of thousands of short-lived objects; young collections
    # every 700 allocations (the default) cost more than they free here.
    gc.set_threshold(20_000, 20, 20)
    background = [asyncio.create_task(service.readiness.run(stop))]
    if "api" in roles:
        await asyncio.to_thread(service.bulk.mark_interrupted)
        background.append(asyncio.create_task(service.dispatcher.run(stop)))
    if "engine" in roles:
        background.append(asyncio.create_task(service.engine.run(stop)))
        # Alerts follow the whole log (what the API and the dispatcher write too), so exactly one
        # process sends them: the engine, and on a server only while it holds the lease.
        background.append(asyncio.create_task(service.alerts.run(stop, active=service.engine.is_leader)))
    serving = [asyncio.create_task(listener.serve()) for listener in listeners]
    stopped = asyncio.create_task(stop.wait())
    # A listener that exits on its own (port in use) stops the whole service.
    done, _ = await asyncio.wait([stopped, *serving], return_when=asyncio.FIRST_COMPLETED)
    failed = [task for task in serving if task in done]
    _logger.info("shutting down")
    watchdog = _exit_if_stuck(STOP_DEADLINE_S)
    stop.set()
    for listener in listeners:
        listener.should_exit = True
    service.bulk.stop()
    await asyncio.gather(*serving, return_exceptions=True)
    await asyncio.gather(*background)
    await service.writer.stop()
    service.ingest_app.state.decode_pool.shutdown(wait=False, cancel_futures=True)
    store.close()
    watchdog.cancel()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(signum)
    if failed or any(not listener.started for listener in listeners):
        raise RuntimeError("a listener failed to start (is the port already in use?)")

"""Fulfillwatch instrumentation: know when a paid Stripe event was never fulfilled.

Stripe confirms a payment, your webhook answers 200 and queues the real work. If that work
never happens or fails, the customer paid and got nothing. This library records two spans on
your existing OpenTelemetry pipeline: a *receipt* when you durably accept the event and a
*result* when its business effect is applied. Fulfillwatch opens an incident when the result is
missing after a deadline, failed, or was only ever "skipped".

Setup — one call, after your own tracing setup (if any)::

    import fulfillwatch.instrumentation as fw

    fw.init()                                   # reuse the app's TracerProvider, or create one
    fw.init(timeouts={"invoice.paid": 3600})    # per-event-type deadlines (seconds/timedelta)

``init()`` reuses the global ``TracerProvider`` when the app installed one, so the spans also
reach the app's existing backends. Otherwise it creates one exporting OTLP/HTTP, configured by
the standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``, ...). Options:
``tracked_event_types`` (default ``checkout.session.completed`` and ``invoice.paid``; ``"*"``
for all), ``default_timeout`` (30 min), ``timeouts`` (per event type), ``tracer_provider``,
``service_name``, ``ingest_key`` (the key Fulfillwatch's receiver requires; sent by the exporter
``init()`` creates — an app exporting through its own provider or a Collector sets
``OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<key>`` there instead). Unknown options
raise ``TypeError``. The ``FULFILLWATCH_TRACKED_EVENT_TYPES``, ``FULFILLWATCH_DEFAULT_TIMEOUT``,
``FULFILLWATCH_TIMEOUTS`` and ``FULFILLWATCH_INGEST_KEY`` variables set the same options.
After ``init()`` returns, nothing in this library raises into your code: internal errors are
logged to the ``fulfillwatch.instrumentation`` logger and swallowed.

In the webhook handler, once the event is durably queued::

    event = stripe.Webhook.construct_event(payload, sig_header, endpoint_secret)
    receipt = fw.record_receipt(event)                  # or fw.watch_event(event): tracked only
    grant_credits.delay(event.id, receipt=receipt.carrier())

In the worker::

    def grant_credits(event_id, receipt):
        with fw.fulfillment(event_id, receipt=receipt) as scope:
            if already_granted(event_id):
                scope.skip()                            # the idempotency path
                return
            apply_credits(event_id)                     # raising here records a failure

or explicitly: ``fw.record_result(event_id, "failure", error=exc)``.

An event needing several effects records one receipt per effect
(``record_receipt(event, effect="grant_credits")``) and names the same effect on the result
(the receipt's ``carrier()`` carries it). Spans are exported in the background
(``BatchSpanProcessor``); short-lived scripts call :func:`force_flush` before exiting.

The span names and attribute keys are in :mod:`fulfillwatch.instrumentation.vocabulary`.
"""

from __future__ import annotations

import importlib.util

from . import vocabulary
from ._config import ALL_EVENT_TYPES, Options
from ._receipt import ReceiptHandle, record_receipt, watch_event
from ._result import Fulfillment, fulfillment, record_result
from ._runtime import configure as _configure
from ._runtime import force_flush
from ._runtime import safely as _safely
from .version import __version__

__all__ = [
    "ALL_EVENT_TYPES",
    "Fulfillment",
    "Options",
    "ReceiptHandle",
    "__version__",
    "force_flush",
    "fulfillment",
    "init",
    "record_receipt",
    "record_result",
    "vocabulary",
    "watch_event",
]


def init(**options: object) -> Options:
    """Configure Fulfillwatch; see the module documentation for the options.

    When Celery is importable this also enables the Celery integration
    (:mod:`fulfillwatch.instrumentation.celery`); ``instrument_celery=False`` prevents it.
    Idempotent: calling it again re-applies options and never creates a second provider.
    Raises ``TypeError`` for an unknown option and ``TypeError``/``ValueError`` for a bad value.
    """
    instrument_celery = options.pop("instrument_celery", True)
    configured = _configure(options)
    if instrument_celery:
        _safely(_instrument_celery, None)
    return configured


def _instrument_celery() -> None:
    if importlib.util.find_spec("celery") is None:
        return
    from .celery import CeleryFulfillmentInstrumentor

    instrumentor = CeleryFulfillmentInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()

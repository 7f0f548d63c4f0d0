"""Sources other than the ingest listeners: what else says what should have happened.

* :mod:`.otel_traces` — fulfillment spans from the Collector ClickHouse exporter's table, run
  by the engine before each tick;
* :mod:`.stripe_events` — Stripe's own record: the reconciler, storing what the Events API lists;
* :mod:`.stripe_api` — talking to the Events API: the ``stripe`` library, retries, the envelope.
"""

__all__ = ["otel_traces", "stripe_api", "stripe_events"]
